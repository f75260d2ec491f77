//! Output shaping: project a provider's JSON down to the fields an agent needs, and page with
//! opaque cursors, MAC'd so an agent can only follow pages devgate offered it ([`CursorKey`]).
//!
//! A field spec, as written in a catalog's `output.fields`:
//! - `title`: keep `title` under the same name;
//! - `author=author.display_name`: take a dot path, store it under a new name;
//! - `reviewers=reviewers[].display_name`: `[]` maps the rest of the path over an array;
//! - `branch{name,default}` or `commits[]{hash,message|80}`: project the value (or each item) again;
//! - `description|300`: cut a string to 300 characters, marking the cut with `…`.
//!
//! Absent, `null` and empty-string values are left out: every byte returned costs the user tokens.
//! So are default values ([`is_default`]): `false`, an empty list or object, and a zero count (a
//! source key ending in `_count`); the server instructions say so once. Timestamps (a source key
//! named like one, [`is_timestamp_key`]) come out in UTC at second precision, `2025-10-06T09:39:21Z`,
//! whatever precision and offset the provider sent.

use std::borrow::Cow;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, KeyInit as _, Mac};
use serde_json::{Map, Value};
use sha2::Sha256;

mod plan;
mod reply;
mod skip;

pub use reply::Malformed;

/// One output field.
#[derive(Debug, Clone, PartialEq)]
pub struct Field {
    pub out: String,
    pub path: Vec<Segment>,
    pub sub: Option<Vec<Field>>,
    pub max_chars: Option<usize>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Segment {
    pub key: String,
    /// `key[]`: the value is an array; the rest applies to each item.
    pub each: bool,
}

/// Parses a list of field specs.
pub fn parse_fields(specs: &[String]) -> Result<Vec<Field>, String> {
    specs
        .iter()
        .map(|s| {
            let mut p = Parser {
                s: s.as_bytes(),
                i: 0,
            };
            let field = p.field()?;
            if p.i != p.s.len() {
                return Err(format!("unexpected `{}` in field `{s}`", &s[p.i..]));
            }
            Ok(field)
        })
        .collect()
}

/// An output name given to two fields of one projection (or of one `{…}`), which would leave one of
/// them out depending on the order of the provider's keys: a catalog mistake, refused when compiled.
pub fn named_twice(fields: &[Field]) -> Option<&str> {
    fields.iter().enumerate().find_map(|(i, field)| {
        if fields[..i].iter().any(|f| f.out == field.out) {
            return Some(field.out.as_str());
        }
        field.sub.as_deref().and_then(named_twice)
    })
}

struct Parser<'a> {
    s: &'a [u8],
    i: usize,
}

impl Parser<'_> {
    fn peek(&self) -> Option<u8> {
        self.s.get(self.i).copied()
    }

    fn ident(&mut self) -> Result<String, String> {
        let start = self.i;
        while self
            .peek()
            .is_some_and(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
        {
            self.i += 1;
        }
        if start == self.i {
            return Err(format!(
                "expected a field name at `{}`",
                String::from_utf8_lossy(&self.s[start..])
            ));
        }
        Ok(String::from_utf8_lossy(&self.s[start..self.i]).into_owned())
    }

    fn path(&mut self) -> Result<Vec<Segment>, String> {
        let mut path = Vec::new();
        loop {
            let key = self.ident()?;
            let each = self.s[self.i..].starts_with(b"[]");
            if each {
                self.i += 2;
            }
            path.push(Segment { key, each });
            if self.peek() == Some(b'.') {
                self.i += 1;
            } else {
                return Ok(path);
            }
        }
    }

    fn field(&mut self) -> Result<Field, String> {
        let save = self.i;
        let first = self.ident()?;
        let (out, path) = if self.peek() == Some(b'=') {
            self.i += 1;
            (first, self.path()?)
        } else {
            self.i = save;
            let path = self.path()?;
            (path.last().map(|s| s.key.clone()).unwrap_or_default(), path)
        };
        let sub = if self.peek() == Some(b'{') {
            self.i += 1;
            let mut fields = vec![self.field()?];
            while self.peek() == Some(b',') {
                self.i += 1;
                fields.push(self.field()?);
            }
            if self.peek() != Some(b'}') {
                return Err("expected `}`".into());
            }
            self.i += 1;
            Some(fields)
        } else {
            None
        };
        let max_chars = if self.peek() == Some(b'|') {
            self.i += 1;
            let start = self.i;
            while self.peek().is_some_and(|b| b.is_ascii_digit()) {
                self.i += 1;
            }
            let n = std::str::from_utf8(&self.s[start..self.i])
                .ok()
                .and_then(|d| d.parse().ok())
                .ok_or("expected a number after `|`")?;
            Some(n)
        } else {
            None
        };
        Ok(Field {
            out,
            path,
            sub,
            max_chars,
        })
    }
}

/// Projects one object through the fields.
pub fn project(value: &Value, fields: &[Field]) -> Value {
    let mut out = Map::with_capacity(fields.len());
    for field in fields {
        if let Some(v) = extract(value, &field.path, field) {
            out.insert(field.out.clone(), v);
        }
    }
    Value::Object(out)
}

fn extract(value: &Value, path: &[Segment], field: &Field) -> Option<Value> {
    let Some((seg, rest)) = path.split_first() else {
        return finish(Cow::Borrowed(value), field);
    };
    take(value.get(&seg.key)?, seg, rest, field)
}

/// The field from `next`, the value found at `seg`'s key (mapped over it for `key[]`).
fn take(next: &Value, seg: &Segment, rest: &[Segment], field: &Field) -> Option<Value> {
    if seg.each {
        let items = next.as_array()?;
        return Some(Value::Array(
            items
                .iter()
                .filter_map(|item| extract(item, rest, field))
                .collect(),
        ));
    }
    extract(next, rest, field)
}

/// The value a field's path reached, as it goes out (or `None` to leave it out). Owned when the
/// reader read it for this field alone, so a kept string is moved rather than copied.
fn finish(value: Cow<'_, Value>, field: &Field) -> Option<Value> {
    if value.is_null() || value.as_str() == Some("") {
        return None;
    }
    let key = field.path.last().map_or("", |s| s.key.as_str());
    if is_default(key, &value) {
        return None;
    }
    if let Value::String(s) = &*value
        && field.sub.is_none()
        && is_timestamp_key(key)
        && let Some(utc) = utc_seconds(s)
    {
        return Some(Value::String(utc));
    }
    if let Some(sub) = &field.sub {
        return Some(match &*value {
            Value::Array(items) => Value::Array(items.iter().map(|i| project(i, sub)).collect()),
            other => project(other, sub),
        });
    }
    if let (Some(max), Value::String(s)) = (field.max_chars, &*value) {
        return Some(Value::String(truncate_chars(s, max)));
    }
    Some(value.into_owned())
}

/// Whether the provider's object has a value for the field (default values included), so an asked
/// field left out as a default is not reported as a path no item had.
pub fn reaches(value: &Value, field: &Field) -> bool {
    fn walk(value: &Value, path: &[Segment]) -> bool {
        let Some((seg, rest)) = path.split_first() else {
            return !(value.is_null() || value.as_str() == Some(""));
        };
        match value.get(&seg.key) {
            Some(next) if seg.each => next.is_array(),
            Some(next) => walk(next, rest),
            None => false,
        }
    }
    walk(value, &field.path)
}

/// Whether a value is its field's default, left out of a result: `false`, an empty list or object,
/// or `0` under a source key ending in `_count` (other zeros, such as an exit code or a line number,
/// carry meaning and stay).
pub fn is_default(source_key: &str, value: &Value) -> bool {
    match value {
        Value::Bool(b) => !b,
        Value::Array(items) => items.is_empty(),
        Value::Object(map) => map.is_empty(),
        Value::Number(n) => source_key.ends_with("_count") && n.as_f64() == Some(0.0),
        _ => false,
    }
}

/// Whether a provider's key names a timestamp: `date`, `*_date` (Buddy: `create_date`, `start_date`),
/// `*_on` (Bitbucket: `created_on`, `participated_on`) or `*_at`.
pub fn is_timestamp_key(key: &str) -> bool {
    key == "date" || key.ends_with("_date") || key.ends_with("_on") || key.ends_with("_at")
}

/// An RFC 3339 timestamp in UTC at second precision (`2025-10-06T09:39:21Z`), or `None` for a string
/// that is not one (it is then returned as the provider sent it).
pub fn utc_seconds(s: &str) -> Option<String> {
    if let Some(utc) = utc_seconds_already_utc(s) {
        return Some(utc);
    }
    let at = chrono::DateTime::parse_from_rfc3339(s).ok()?;
    Some(
        at.with_timezone(&chrono::Utc)
            .to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
    )
}

/// [`utc_seconds`] for a timestamp already in UTC (`Z` or `+00:00`, with or without a fraction), as
/// both providers send nearly all of theirs: its first 19 characters and a `Z`, without chrono's parse
/// and formatter. `None` sends anything else to chrono, which also settles leap seconds and lower-case
/// separators the same way as before.
fn utc_seconds_already_utc(s: &str) -> Option<String> {
    let b = s.as_bytes();
    let digits = |range: std::ops::Range<usize>| {
        b.get(range.clone())
            .filter(|d| d.iter().all(u8::is_ascii_digit))
            .map(|d| d.iter().fold(0u32, |n, d| n * 10 + u32::from(d - b'0')))
    };
    let (year, month, day) = (digits(0..4)?, digits(5..7)?, digits(8..10)?);
    let (hour, minute, second) = (digits(11..13)?, digits(14..16)?, digits(17..19)?);
    if b[4] != b'-' || b[7] != b'-' || b[10] != b'T' || b[13] != b':' || b[16] != b':' {
        return None;
    }
    let mut rest = &b[19..];
    if let Some(fraction) = rest.strip_prefix(b".") {
        let n = fraction.iter().take_while(|d| d.is_ascii_digit()).count();
        if n == 0 {
            return None;
        }
        rest = &fraction[n..];
    }
    if rest != b"Z" && rest != b"+00:00" {
        return None;
    }
    chrono::NaiveDate::from_ymd_opt(year as i32, month, day)?;
    if hour > 23 || minute > 59 || second > 59 {
        return None;
    }
    let mut out = String::with_capacity(20);
    out.push_str(&s[..19]);
    out.push('Z');
    Some(out)
}

fn truncate_chars(s: &str, max: usize) -> String {
    match s.char_indices().nth(max) {
        Some((cut, _)) => format!("{}…", &s[..cut]),
        None => s.to_string(),
    }
}

/// Follows a dot path (no `[]`) through a JSON value.
pub fn pointer<'a>(value: &'a Value, dot_path: &str) -> Option<&'a Value> {
    dot_path
        .split('.')
        .filter(|k| !k.is_empty())
        .try_fold(value, |v, key| match v {
            Value::Array(items) => key.parse::<usize>().ok().and_then(|i| items.get(i)),
            _ => v.get(key),
        })
}

/// [`pointer`] for changing the value found.
pub fn pointer_mut<'a>(value: &'a mut Value, dot_path: &str) -> Option<&'a mut Value> {
    dot_path
        .split('.')
        .filter(|k| !k.is_empty())
        .try_fold(value, |v, key| match v {
            Value::Array(items) => key.parse::<usize>().ok().and_then(|i| items.get_mut(i)),
            _ => v.get_mut(key),
        })
}

/// What a cursor is bound to: the tool, the user, and the arguments that define the listing (in a
/// canonical form: object keys sorted, so the same arguments in another order match).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CursorScope {
    tool: String,
    user: String,
    args: String,
}

impl CursorScope {
    /// The scope of a call of `tool` by `user` with `args`, leaving out the arguments named in `skip`
    /// (the cursor itself, and those that shape or size a page rather than choose what is listed).
    pub fn new(tool: &str, user: &str, args: &Map<String, Value>, skip: &[&str]) -> Self {
        let kept: Map<String, Value> = args
            .iter()
            .filter(|(k, _)| !skip.contains(&k.as_str()))
            .map(|(k, v)| (k.clone(), canonical(v)))
            .collect();
        Self {
            tool: tool.to_string(),
            user: user.to_string(),
            args: canonical(&Value::Object(kept)).to_string(),
        }
    }
}

/// The value with every object's keys in sorted order (serde_json keeps insertion order when its
/// `preserve_order` feature is on anywhere in the build).
fn canonical(value: &Value) -> Value {
    match value {
        Value::Object(map) => {
            let mut entries: Vec<(&String, &Value)> = map.iter().collect();
            entries.sort_by(|a, b| a.0.cmp(b.0));
            Value::Object(
                entries
                    .into_iter()
                    .map(|(k, v)| (k.clone(), canonical(v)))
                    .collect(),
            )
        }
        Value::Array(items) => Value::Array(items.iter().map(canonical).collect()),
        other => other.clone(),
    }
}

/// Why a cursor was refused. Deliberately coarse: a MAC cannot tell which part of the scope differs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum CursorError {
    #[error("is not a cursor devgate issued")]
    Malformed,
    #[error("was not issued for this call (another tool, user or arguments), or was altered")]
    Mismatch,
}

/// Cursor format version, the first byte of every cursor.
const CURSOR_V1: u8 = 1;
/// Bytes of the HMAC-SHA256 tag a cursor carries: 128 bits cannot be guessed, and cursors stay short.
const CURSOR_TAG_LEN: usize = 16;

/// Issues and checks cursors: `base64url(version ‖ tag ‖ relative URL of the next page)`, where the tag
/// is an HMAC over the [`CursorScope`] and the URL. An agent can only hand back a page devgate offered
/// to the same user, for the same tool and arguments; a cursor it made up or edited is refused before
/// anything is sent upstream. Instances that share a key (derived from the sealing key) accept each
/// other's cursors.
#[derive(Clone)]
pub struct CursorKey {
    mac: Hmac<Sha256>,
}

impl std::fmt::Debug for CursorKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CursorKey { key: <redacted> }")
    }
}

impl CursorKey {
    pub fn new(key: [u8; 32]) -> Self {
        Self {
            mac: <Hmac<Sha256>>::new_from_slice(&key).expect("HMAC takes a key of any length"),
        }
    }

    /// A key for this process only: for devgate without a store, whose cursors need not outlive it.
    pub fn random() -> Self {
        Self::new(rand::random())
    }

    fn tag(&self, scope: &CursorScope, relative_url: &str) -> Hmac<Sha256> {
        let mut mac = self.mac.clone();
        mac.update(&[CURSOR_V1]);
        // Length-prefixed, so no two different scopes feed the MAC the same bytes.
        for part in [&scope.tool, &scope.user, &scope.args] {
            mac.update(&(part.len() as u64).to_be_bytes());
            mac.update(part.as_bytes());
        }
        mac.update(relative_url.as_bytes());
        mac
    }

    /// A cursor for the next page at `relative_url`, valid only within `scope`.
    pub fn issue(&self, scope: &CursorScope, relative_url: &str) -> String {
        let tag = self.tag(scope, relative_url).finalize().into_bytes();
        let mut raw = Vec::with_capacity(1 + CURSOR_TAG_LEN + relative_url.len());
        raw.push(CURSOR_V1);
        raw.extend_from_slice(&tag[..CURSOR_TAG_LEN]);
        raw.extend_from_slice(relative_url.as_bytes());
        URL_SAFE_NO_PAD.encode(raw)
    }

    /// The relative URL a cursor issued for `scope` leads to. The caller still checks where it leads:
    /// the provider chose that URL.
    pub fn open(&self, scope: &CursorScope, cursor: &str) -> Result<String, CursorError> {
        let raw = URL_SAFE_NO_PAD
            .decode(cursor.trim())
            .map_err(|_| CursorError::Malformed)?;
        let (&version, rest) = raw.split_first().ok_or(CursorError::Malformed)?;
        if version != CURSOR_V1 || rest.len() < CURSOR_TAG_LEN {
            return Err(CursorError::Malformed);
        }
        let (tag, url) = rest.split_at(CURSOR_TAG_LEN);
        let url = std::str::from_utf8(url).map_err(|_| CursorError::Malformed)?;
        self.tag(scope, url)
            .verify_truncated_left(tag)
            .map_err(|_| CursorError::Mismatch)?;
        Ok(url.to_string())
    }
}

/// The parts of a provider's JSON reply a tool reads (its output fields, list and paging paths), so the
/// reply is parsed into only those: Bitbucket's `links`, avatars and repository blocks are skipped
/// without being allocated (`shape/reply.rs`). Arrays are transparent: what is kept of an array is
/// kept of each item.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Reads {
    whole: bool,
    /// Few per node, so a list, searched with [`same_key`].
    keys: Vec<(String, Reads)>,
    /// Objects here are read straight into this projection ([`Reads::project_at`]).
    plan: Option<Box<plan::Plan>>,
    /// [`Reads::dot_paths`], once asked (on the root; any change clears it).
    dot_paths: std::sync::OnceLock<Option<String>>,
}

impl Reads {
    /// Everything below a dot path (numeric segments, array indexes, are transparent).
    pub fn add_path(&mut self, dot_path: &str) {
        self.dot_paths = Default::default();
        self.node(dot_path.split('.')).whole = true;
    }

    /// What projecting the value at `dot_path` (empty: the root) through `fields` reads.
    pub fn add_fields(&mut self, dot_path: &str, fields: &[Field]) {
        self.dot_paths = Default::default();
        self.node(dot_path.split('.')).add_fields_here(fields);
    }

    /// Like [`Self::add_fields`], and the reader projects while it reads: the parsed reply holds, at
    /// `dot_path`, the projection of the object there or (`list`) of each item of the array there,
    /// equal to what [`project`] makes of the object or item (an item that is not an object comes out
    /// `{}`). The rest of the reply is parsed as [`Self::add_path`] and [`Self::add_fields`] say.
    pub fn project_at(&mut self, dot_path: &str, fields: &[Field], list: bool) {
        self.dot_paths = Default::default();
        let node = self.node(dot_path.split('.'));
        node.add_fields_here(fields);
        node.plan = Some(Box::new(plan::Plan::new(fields, list)));
    }

    /// The same reads without [`Self::project_at`]'s projections: the reply's objects come out
    /// pruned, for a caller that projects them itself.
    pub fn without_projection(mut self) -> Reads {
        fn clear(node: &mut Reads) {
            node.plan = None;
            node.keys.iter_mut().for_each(|(_, below)| clear(below));
        }
        clear(&mut self);
        self
    }

    fn add_fields_here(&mut self, fields: &[Field]) {
        for field in fields {
            self.add_field_from(field, 0);
        }
    }

    /// What `field` reads from its path's segment `from` on (below the value at the segment before).
    fn add_field_from(&mut self, field: &Field, from: usize) {
        let node = self.node(field.path[from..].iter().map(|s| s.key.as_str()));
        match &field.sub {
            Some(sub) => node.add_fields_here(sub),
            None => node.whole = true,
        }
    }

    fn node<'a>(&mut self, path: impl Iterator<Item = &'a str>) -> &mut Reads {
        path.filter(|k| !k.is_empty() && !k.bytes().all(|b| b.is_ascii_digit()))
            .fold(self, |node, key| {
                let i = match node.keys.iter().position(|(k, _)| k == key) {
                    Some(i) => i,
                    None => {
                        node.keys.push((key.to_string(), Reads::default()));
                        node.keys.len() - 1
                    }
                };
                &mut node.keys[i].1
            })
    }

    /// The key as kept and what is read below it, when `key` is read.
    fn kept(&self, key: &[u8]) -> Option<(&str, &Reads)> {
        self.keys
            .iter()
            .find(|(k, _)| same_key(k, key))
            .map(|(k, below)| (k.as_str(), below))
    }

    /// What is read, as the dot paths of a partial-response request (Bitbucket's `fields`), joined by
    /// commas: one path per part read whole; `None` when the whole document is read. Worked out once.
    pub fn dot_paths(&self) -> Option<&str> {
        self.dot_paths
            .get_or_init(|| self.work_out_dot_paths())
            .as_deref()
    }

    fn work_out_dot_paths(&self) -> Option<String> {
        fn walk(node: &Reads, prefix: &mut String, out: &mut String) {
            if node.whole || node.keys.is_empty() {
                if !out.is_empty() {
                    out.push(',');
                }
                out.push_str(prefix);
                return;
            }
            for (key, below) in &node.keys {
                let len = prefix.len();
                if !prefix.is_empty() {
                    prefix.push('.');
                }
                prefix.push_str(key);
                walk(below, prefix, out);
                prefix.truncate(len);
            }
        }
        if self.whole || self.keys.is_empty() {
            return None;
        }
        let mut out = String::new();
        walk(self, &mut String::new(), &mut out);
        Some(out)
    }

    /// Parses a JSON document, keeping only what is read. A document cut short, with trailing data,
    /// a broken string anywhere or a malformed kept value is an error (see `shape/reply.rs` for what
    /// is checked inside a skipped object or array).
    pub fn parse(&self, bytes: &[u8]) -> Result<Value, reply::Malformed> {
        reply::parse(self, bytes)
    }
}

/// Whether a catalog key is a reply's key. Lengths, then first bytes, settle nearly every comparison
/// of a reply's keys with a projection's without a call to `memcmp`.
fn same_key(known: &str, key: &[u8]) -> bool {
    known.len() == key.len() && known.as_bytes().first() == key.first() && known.as_bytes() == key
}

#[cfg(test)]
#[path = "shape_tests.rs"]
mod tests;
