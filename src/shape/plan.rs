//! A projection compiled for the reader ([`super::Reads::project_at`]), so a reply's objects are read
//! straight into their projection: no pruned copy of each item is built, inserted, walked and dropped
//! on the way, which was a third of what shaping a list page cost.
//!
//! A plan says, per source key of an object, either "read on inside this object into the same output"
//! (a dot path such as `source.branch.name`) or "read this value and take these fields from it" with
//! [`super::take`] (a path's last key, a `[]` segment, or a key several kinds of field go through).
//! Taking from the value read at the key is exactly what [`super::project`] does on a parsed tree,
//! which keeps the two equal (a property test checks it).
//!
//! Each output name has a slot, numbered in the order of the names: an object's values are put in
//! their slots as its keys come and become a map at the end, already sorted, rather than inserted one
//! by one into a `BTreeMap` as the keys come.

use serde_json::{Map, Value};

use super::{Field, Reads};

/// The projection of one object, by source key.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Plan {
    keys: Vec<(String, Step)>,
    /// The output names in order, one per slot (the outermost plan's; inner plans share its slots).
    outs: Vec<String>,
    /// The fields, for a value that is not an object (projected the ordinary way, to `{}`).
    pub(super) fields: Vec<Field>,
    /// Whether the plan applies to each item of an array (a tool's list) rather than to one object.
    pub(super) list: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub(super) enum Step {
    /// Every field through this key goes on to a key of the object here: read it into the same output.
    Inner(Plan),
    /// Read the value (only what `reads` keeps) and take each field from it.
    Taken { fields: Vec<Taken>, reads: Reads },
}

/// A field taken from the value at a key.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Taken {
    field: Field,
    /// The index of this key's segment in the field's path.
    depth: usize,
    slot: usize,
}

/// A field on its way through [`compile`]: the segment it is at and its output slot.
type At<'a> = (&'a Field, usize, usize);

impl Plan {
    pub(super) fn new(fields: &[Field], list: bool) -> Self {
        let mut outs: Vec<String> = fields.iter().map(|f| f.out.clone()).collect();
        outs.sort();
        outs.dedup();
        let at: Vec<At> = fields
            .iter()
            .map(|f| (f, 0, outs.binary_search(&f.out).unwrap_or_default()))
            .collect();
        Plan {
            keys: compile(&at),
            outs,
            fields: fields.to_vec(),
            list,
        }
    }

    pub(super) fn step(&self, key: &[u8]) -> Option<&Step> {
        self.keys
            .iter()
            .find(|(k, _)| super::same_key(k, key))
            .map(|(_, step)| step)
    }

    /// Empty slots for one object's output.
    pub(super) fn slots(&self) -> Vec<Option<Value>> {
        vec![None; self.outs.len()]
    }

    /// The output made of filled slots.
    pub(super) fn output(&self, slots: Vec<Option<Value>>) -> Value {
        Value::Object(
            self.outs
                .iter()
                .zip(slots)
                .filter_map(|(out, value)| Some((out.clone(), value?)))
                .collect::<Map<String, Value>>(),
        )
    }
}

/// Groups the fields by the key of their segment at this depth, in first-seen order.
fn compile(at: &[At]) -> Vec<(String, Step)> {
    let mut keys: Vec<&str> = Vec::new();
    for (field, depth, _) in at {
        let key = field.path[*depth].key.as_str();
        if !keys.contains(&key) {
            keys.push(key);
        }
    }
    keys.into_iter()
        .map(|key| {
            let group: Vec<At> = at
                .iter()
                .filter(|(f, d, _)| f.path[*d].key == key)
                .copied()
                .collect();
            let goes_on = group
                .iter()
                .all(|(f, d, _)| !f.path[*d].each && d + 1 < f.path.len());
            let step = if goes_on {
                let below: Vec<At> = group.iter().map(|(f, d, s)| (*f, d + 1, *s)).collect();
                Step::Inner(Plan {
                    keys: compile(&below),
                    outs: Vec::new(),
                    fields: Vec::new(),
                    list: false,
                })
            } else {
                let mut reads = Reads::default();
                for (field, depth, _) in &group {
                    let rest = field.path[depth + 1..].iter().map(|s| s.key.as_str());
                    let node = reads.node(rest);
                    match &field.sub {
                        Some(sub) => node.add_fields_here(sub),
                        None => node.whole = true,
                    }
                }
                Step::Taken {
                    fields: group
                        .iter()
                        .map(|(f, d, s)| Taken {
                            field: (*f).clone(),
                            depth: *d,
                            slot: *s,
                        })
                        .collect(),
                    reads,
                }
            };
            (key.to_string(), step)
        })
        .collect()
}

/// Takes each field of a [`Step::Taken`] from the value read at its key into its slot. The common
/// case, one field ending at this key, moves the value instead of copying it.
pub(super) fn emit(fields: &[Taken], value: Value, slots: &mut [Option<Value>]) {
    if let [one] = fields
        && !one.field.path[one.depth].each
        && one.depth + 1 == one.field.path.len()
    {
        slots[one.slot] = super::finish(std::borrow::Cow::Owned(value), &one.field);
        return;
    }
    for taken in fields {
        let path = &taken.field.path[taken.depth..];
        slots[taken.slot] = super::take(&value, &path[0], &path[1..], &taken.field);
    }
}
