//! Policies per group and tool (`[[policies]]`): which of the tools config offers each user may see and
//! call, which only if they change nothing, and which only after the user confirms. Pure decisions
//! over a user's groups and a tool's facts; the gateway applies them in `tools/list` and `tools/call`.
//!
//! Precedence (README "Policies"):
//! - No `[[policies]]` at all: every user gets what config offers, as without this module.
//! - An entry applies to users in its `group`, or to everyone with `group = "*"`.
//! - Denials beat allowances, whichever entries they come from: a tool (or its toolset) in `deny_tools`
//!   or `deny_toolsets` of an entry that applies, or a tool that changes something under an entry with
//!   `read_only = true`, is denied.
//! - As soon as any entry has `allow_tools` or `allow_toolsets`, policies are allow lists: a user gets
//!   only the tools some entry applying to them allows (the union over their groups). Without any such
//!   entry, users get everything no entry denies them.
//! - `confirm_tools` / `confirm_toolsets`: an allowed tool that changes something runs only on the
//!   user's own answer to devgate's question (form elicitation, `input_required`, or the confirm page),
//!   as destructive tools do; never on anything the model sends.
//! - Policies only narrow: config's `[tools]` selection and the provider scopes decide first, and
//!   `devgate_connections` is always offered.

use std::fmt;

use serde::Deserialize;

use crate::catalog::{Catalog, Tool};

/// How many of a user's groups, and how much of each, a text names.
const SHOWN_GROUPS: usize = 8;
const SHOWN_GROUP_CHARS: usize = 64;

/// The `group` of an entry that applies to every user.
pub const EVERYONE: &str = "*";

/// One `[[policies]]` entry.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyConfig {
    /// The group this entry applies to (from an API key, the JWT's groups claim, sign-in, or
    /// `devgate stdio --group`), or `"*"` for everyone.
    pub group: String,
    /// Toolsets this group may use (`all` for every one); any entry with an allow list makes policies
    /// allow lists for everyone.
    #[serde(default)]
    pub allow_toolsets: Vec<String>,
    /// Tools this group may use, by exposed name.
    #[serde(default)]
    pub allow_tools: Vec<String>,
    /// Toolsets this group may not use (`all` for every one); beats any allow.
    #[serde(default)]
    pub deny_toolsets: Vec<String>,
    /// Tools this group may not use; beats any allow.
    #[serde(default)]
    pub deny_tools: Vec<String>,
    /// Only tools the catalog marks read-only, whatever other entries allow.
    #[serde(default)]
    pub read_only: bool,
    /// Tools this group may call only after confirming each call.
    #[serde(default)]
    pub confirm_tools: Vec<String>,
    /// Toolsets whose tools that change something this group may call only after confirming.
    #[serde(default)]
    pub confirm_toolsets: Vec<String>,
}

/// Which list of an entry matched.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RuleKind {
    AllowTools,
    AllowToolsets,
    DenyTools,
    DenyToolsets,
    ReadOnly,
    ConfirmTools,
    ConfirmToolsets,
}

impl RuleKind {
    /// The config key.
    pub fn key(self) -> &'static str {
        match self {
            RuleKind::AllowTools => "allow_tools",
            RuleKind::AllowToolsets => "allow_toolsets",
            RuleKind::DenyTools => "deny_tools",
            RuleKind::DenyToolsets => "deny_toolsets",
            RuleKind::ReadOnly => "read_only",
            RuleKind::ConfirmTools => "confirm_tools",
            RuleKind::ConfirmToolsets => "confirm_toolsets",
        }
    }
}

/// A rule of one entry that matched a tool for a user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    /// The entry's place in `[[policies]]`, from 1.
    pub entry: usize,
    pub group: String,
    pub kind: RuleKind,
    /// The name in the list that matched (a tool, a toolset or `all`); none for `read_only`.
    pub name: Option<String>,
}

impl fmt::Display for Rule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "[[policies]] #{} (group \"{}\") {}",
            self.entry,
            self.group,
            self.kind.key()
        )?;
        match &self.name {
            Some(name) => write!(f, " \"{name}\""),
            None => Ok(()),
        }
    }
}

/// What a decision needs to know of a tool.
#[derive(Debug, Clone, Copy)]
pub struct ToolFacts<'a> {
    pub name: &'a str,
    pub toolset: &'a str,
    pub read_only: bool,
}

impl<'a> From<&'a Tool> for ToolFacts<'a> {
    fn from(tool: &'a Tool) -> Self {
        Self {
            name: &tool.name,
            toolset: &tool.spec.toolset,
            read_only: tool.spec.annotations.read_only,
        }
    }
}

/// Whether a user may call a tool, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// By this allow rule; `None` when no policy restricts the tool (no policies, or no allow lists
    /// and no denial).
    Allowed(Option<Rule>),
    /// By this deny or read-only rule.
    Denied(Rule),
    /// Policies are allow lists and no entry applying to the user allows the tool.
    NotAllowed,
}

/// A decision for one user (by their groups) and one tool.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    /// Whether any `[[policies]]` exist (else the decision is today's behaviour and goes unrecorded).
    pub active: bool,
    pub groups: Vec<String>,
    /// Every rule that matched, in entry order.
    pub matched: Vec<Rule>,
    pub verdict: Verdict,
    /// When allowed: the rule that makes the user confirm each call.
    pub confirm: Option<Rule>,
}

impl Decision {
    pub fn allowed(&self) -> bool {
        matches!(self.verdict, Verdict::Allowed(_))
    }

    /// One line for the audit log; empty without policies.
    pub fn audit_text(&self) -> String {
        if !self.active {
            return String::new();
        }
        let mut text = match &self.verdict {
            Verdict::Allowed(Some(rule)) => format!("allowed by {rule}"),
            Verdict::Allowed(None) => "allowed: no [[policies]] entry denies it".to_string(),
            Verdict::Denied(rule) => format!("denied by {rule}"),
            Verdict::NotAllowed => format!(
                "denied: no [[policies]] entry allows it to {}",
                self.groups_text()
            ),
        };
        if let Some(rule) = &self.confirm {
            text.push_str(&format!("; confirmation required by {rule}"));
        }
        text
    }

    /// The `isError` text of a denied call: which policy denied it and what the agent can do.
    pub fn denied_text(&self, tool: &str, user: &str) -> String {
        let why = match &self.verdict {
            Verdict::Denied(rule) if rule.kind == RuleKind::ReadOnly => {
                format!(
                    "{rule} lets {user} use only tools that change nothing, and this one changes things"
                )
            }
            Verdict::Denied(rule) => format!("denied by devgate policy {rule}"),
            _ => format!(
                "no devgate policy ([[policies]]) allows it to {user} ({})",
                self.groups_text()
            ),
        };
        format!(
            "{tool}: {why}; nothing was sent. Do not retry: tell the user, who can ask a devgate administrator to change [[policies]] (`devgate policy check {user} {tool}` explains the decision)."
        )
    }

    /// The user's groups for a text: at most [`SHOWN_GROUPS`], each cut short (a token may list many).
    fn groups_text(&self) -> String {
        if self.groups.is_empty() {
            return "a user in no group".to_string();
        }
        let shown: Vec<_> = self
            .groups
            .iter()
            .take(SHOWN_GROUPS)
            .map(|g| crate::audit::clip(g, SHOWN_GROUP_CHARS))
            .collect();
        let more = match self.groups.len().saturating_sub(SHOWN_GROUPS) {
            0 => String::new(),
            n => format!(" and {n} more"),
        };
        format!("groups {}{more}", shown.join(", "))
    }
}

/// The `[[policies]]` in force.
#[derive(Debug, Clone, Default)]
pub struct Policies {
    entries: Vec<PolicyConfig>,
    /// Whether any entry has an allow list (then policies are allow lists for everyone).
    allow_lists: bool,
}

impl Policies {
    pub fn new(entries: &[PolicyConfig]) -> Self {
        Self {
            allow_lists: entries
                .iter()
                .any(|e| !e.allow_tools.is_empty() || !e.allow_toolsets.is_empty()),
            entries: entries.to_vec(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Whether some entry may ask users to confirm (for the server instructions).
    pub fn confirms_any(&self) -> bool {
        self.entries
            .iter()
            .any(|e| !e.confirm_tools.is_empty() || !e.confirm_toolsets.is_empty())
    }

    /// The decision for a user in `groups` calling `tool`.
    pub fn decide(&self, groups: &[String], tool: ToolFacts<'_>) -> Decision {
        let mut matched = Vec::new();
        for (i, entry) in self.entries.iter().enumerate() {
            if entry.group != EVERYONE && !groups.contains(&entry.group) {
                continue;
            }
            let rule = |kind, name: Option<&String>| Rule {
                entry: i + 1,
                group: entry.group.clone(),
                kind,
                name: name.cloned(),
            };
            let by_tool = |list| named(list, tool.name);
            let by_set = |list| named(list, tool.toolset).or_else(|| named(list, "all"));
            let writes = !tool.read_only;
            for (kind, name, applies) in [
                (RuleKind::DenyTools, by_tool(&entry.deny_tools), true),
                (RuleKind::DenyToolsets, by_set(&entry.deny_toolsets), true),
                (RuleKind::AllowTools, by_tool(&entry.allow_tools), true),
                (RuleKind::AllowToolsets, by_set(&entry.allow_toolsets), true),
                (
                    RuleKind::ConfirmTools,
                    by_tool(&entry.confirm_tools),
                    writes,
                ),
                (
                    RuleKind::ConfirmToolsets,
                    by_set(&entry.confirm_toolsets),
                    writes,
                ),
            ] {
                if let Some(name) = name.filter(|_| applies) {
                    matched.push(rule(kind, Some(name)));
                }
            }
            if entry.read_only && writes {
                matched.push(rule(RuleKind::ReadOnly, None));
            }
        }
        let first = |kinds: &[RuleKind]| matched.iter().find(|r| kinds.contains(&r.kind)).cloned();
        let denial = first(&[
            RuleKind::DenyTools,
            RuleKind::DenyToolsets,
            RuleKind::ReadOnly,
        ]);
        let allow = first(&[RuleKind::AllowTools, RuleKind::AllowToolsets]);
        let verdict = match (denial, allow) {
            (Some(rule), _) => Verdict::Denied(rule),
            (None, Some(rule)) => Verdict::Allowed(Some(rule)),
            (None, None) if self.allow_lists => Verdict::NotAllowed,
            (None, None) => Verdict::Allowed(None),
        };
        let confirm = match verdict {
            Verdict::Allowed(_) => first(&[RuleKind::ConfirmTools, RuleKind::ConfirmToolsets]),
            _ => None,
        };
        Decision {
            active: !self.entries.is_empty(),
            groups: groups.to_vec(),
            matched,
            verdict,
            confirm,
        }
    }
}

/// `name` in a policy list.
fn named<'a>(list: &'a [String], name: &str) -> Option<&'a String> {
    list.iter().find(|n| *n == name)
}

/// How an entry is named in config problems.
fn entry_name(i: usize, entry: &PolicyConfig) -> String {
    format!("[[policies]] #{} (group \"{}\")", i + 1, entry.group)
}

/// The tool and toolset lists of an entry, by key, and whether each holds tools.
fn lists(entry: &PolicyConfig) -> [(&'static str, &[String], bool); 6] {
    [
        ("allow_toolsets", &entry.allow_toolsets, false),
        ("allow_tools", &entry.allow_tools, true),
        ("deny_toolsets", &entry.deny_toolsets, false),
        ("deny_tools", &entry.deny_tools, true),
        ("confirm_toolsets", &entry.confirm_toolsets, false),
        ("confirm_tools", &entry.confirm_tools, true),
    ]
}

/// Every problem of `[[policies]]` against the catalog, each naming its entry: a missing group, an
/// entry that says nothing, an unknown tool or toolset, a read-only tool to confirm. Retired names are
/// no problem ([`retired_names`] warns about them).
pub fn problems(entries: &[PolicyConfig], catalog: &Catalog) -> Vec<String> {
    let tools = || catalog.providers.iter().flat_map(|p| p.tools.iter());
    let mut toolsets: Vec<&str> = tools().map(|t| t.spec.toolset.as_str()).collect();
    toolsets.sort_unstable();
    toolsets.dedup();
    let mut problems = Vec::new();
    for (i, entry) in entries.iter().enumerate() {
        let name = entry_name(i, entry);
        if entry.group.trim().is_empty() {
            problems.push(format!(
                "{name}: group: give a group name, or \"*\" for everyone"
            ));
        }
        let lists = lists(entry);
        if !entry.read_only && lists.iter().all(|(_, list, _)| list.is_empty()) {
            problems.push(format!(
                "{name}: says nothing: give it allow_tools, allow_toolsets, deny_tools, deny_toolsets, read_only, confirm_tools or confirm_toolsets"
            ));
        }
        for (key, list, of_tools) in lists {
            for item in list {
                if of_tools {
                    match tools().find(|t| &t.name == item) {
                        None if catalog.retired_tool(item).is_some() => {}
                        None if item == crate::gateway::CONNECTIONS_TOOL => problems.push(format!(
                            "{name}: {key}: `{item}` is built in and always offered; remove it"
                        )),
                        None => problems.push(format!(
                            "{name}: {key}: unknown tool `{item}` (`devgate tools --all` lists them)"
                        )),
                        Some(t) if key == "confirm_tools" && t.spec.annotations.read_only => {
                            problems.push(format!(
                                "{name}: {key}: `{item}` changes nothing, so there is nothing to confirm"
                            ))
                        }
                        Some(_) => {}
                    }
                } else if item != "all"
                    && !toolsets.contains(&item.as_str())
                    && catalog.retired_toolset(item).is_none()
                {
                    problems.push(format!(
                        "{name}: {key}: unknown toolset `{item}` (known: all, {})",
                        toolsets.join(", ")
                    ));
                }
            }
        }
    }
    problems
}

/// Warnings for names `[[policies]]` still use that a provider retired: each is ignored (the catalog's
/// `[[retired]]` rule, as for `[tools]`).
pub fn retired_names(entries: &[PolicyConfig], catalog: &Catalog) -> Vec<String> {
    let mut warnings = Vec::new();
    for (i, entry) in entries.iter().enumerate() {
        for (key, list, of_tools) in lists(entry) {
            for item in list {
                let why = if of_tools {
                    catalog.retired_tool(item)
                } else {
                    catalog.retired_toolset(item)
                };
                if let Some(why) = why {
                    warnings.push(format!(
                        "{}: {key}: `{item}` is retired ({why}); it is ignored: remove it",
                        entry_name(i, entry)
                    ));
                }
            }
        }
    }
    warnings
}

#[cfg(test)]
mod tests;
