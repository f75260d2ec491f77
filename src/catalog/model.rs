//! The catalog file format: what `tools/<provider>.toml` may say.
//!
//! Every struct denies unknown keys, so a typo in a catalog is a load error with the file and tool named
//! rather than a silently ignored setting.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::Value;

/// One catalog file: a provider, its scopes and its tools.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CatalogFile {
    /// Bumped when a tool's name, parameters or output change; shown by `devgate --version`.
    pub version: String,
    pub provider: ProviderSpec,
    #[serde(default)]
    pub scopes: Vec<ScopeSpec>,
    /// Parameters shared by many tools. A placeholder a tool uses but does not declare takes the shared
    /// parameter of that name, so `workspace` or `repo_slug` is written once per file.
    #[serde(default)]
    pub params: BTreeMap<String, ParamSpec>,
    /// Lookups applied to every tool that has the parameter they rewrite (e.g. every tool taking a
    /// `pipeline` accepts its identifier). A tool's own `resolve` entries come after these.
    #[serde(default)]
    pub resolve: Vec<ResolveSpec>,
    #[serde(default)]
    pub tools: Vec<ToolSpec>,
    /// What the provider took away (scopes, toolsets, tools), for configs written before: devgate warns
    /// about such a name and ignores it, rather than refusing to start over a line that can no longer
    /// mean anything.
    #[serde(default)]
    pub retired: Vec<RetiredSpec>,
}

/// Names a provider retired, and why.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RetiredSpec {
    /// Why, as the warning says it: "Bitbucket removed its issue tracker on 2026-08-20".
    pub why: String,
    #[serde(default)]
    pub scopes: Vec<String>,
    #[serde(default)]
    pub toolsets: Vec<String>,
    /// Tool names without the provider prefix.
    #[serde(default)]
    pub tools: Vec<String>,
}

/// How to reach a provider and how it behaves on the wire.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ProviderSpec {
    /// Short id used in tool names (`<id>_<tool>`) and config (`[providers.<id>]`).
    pub id: String,
    pub title: String,
    /// What the arguments its tools share mean (`workspace`, ids), said once in the server
    /// instructions instead of in every schema: a clause such as "`workspace` is the workspace slug".
    #[serde(default)]
    pub arguments: Option<String>,
    /// API base URL; every tool path is relative to it. Config may override it.
    pub api_base: String,
    /// OAuth endpoints: absolute, or relative to `api_base` when they start with `/`.
    pub authorize_url: String,
    pub token_url: String,
    #[serde(default)]
    pub revoke_url: Option<String>,
    /// How the OAuth client authenticates at the token endpoint.
    pub client_auth: ClientAuth,
    /// Whether the authorize request carries a `scope` parameter.
    #[serde(default = "yes")]
    pub send_scope: bool,
    #[serde(default = "space")]
    pub scope_separator: String,
    #[serde(default = "yes")]
    pub pkce: bool,
    /// Extra fixed query parameters on the authorize URL (Buddy wants `type=web_server`).
    #[serde(default)]
    pub authorize_params: BTreeMap<String, String>,
    pub pagination: Pagination,
    /// Dot paths, tried in order, to the human message in a provider error body.
    pub error_message: Vec<String>,
    /// Dot paths to extra detail (Bitbucket's `error.detail`, which may be a string or an object).
    #[serde(default)]
    pub error_detail: Vec<String>,
    /// Dot path to an object whose keys name the request fields the provider rejected (Bitbucket's
    /// `error.fields`), so an error hint names the argument to correct only when one was named.
    #[serde(default)]
    pub error_fields: Option<String>,
    /// Dot path to the list of scopes a 403 body says the call needs (Bitbucket's
    /// `error.detail.required`), so the agent gets a reconnect link that asks for them.
    #[serde(default)]
    pub error_scopes: Option<String>,
    /// Hosts, besides the API's own, that redirects may lead to (e.g. log storage).
    #[serde(default)]
    pub redirect_hosts: Vec<String>,
    /// Where a personal/static token is created, for error messages.
    #[serde(default)]
    pub token_help: Option<String>,
    /// Whether an account email with an API token (`email` + `api_token` in config, sent as HTTP
    /// Basic) is a way to give this provider static credentials; the config's "no credentials"
    /// problem then names it beside `token`.
    #[serde(default)]
    pub email_api_token: bool,
    /// How to learn which account a token belongs to.
    pub whoami: Whoami,
    /// The query parameter that asks for a partial response (Bitbucket's `fields`: a comma-separated
    /// list of dot paths, `values.` first on a collection): a JSON GET then asks for only what its
    /// tool reads, so the provider sends a few KB where it would send 48 KB for ten pull requests.
    #[serde(default)]
    pub partial_response: Option<String>,
}

#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ClientAuth {
    /// HTTP Basic `client_id:client_secret`.
    Basic,
    /// `client_id` and `client_secret` in the form body.
    Form,
}

/// How a provider pages its lists.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(tag = "style", rename_all = "snake_case", deny_unknown_fields)]
pub enum Pagination {
    /// `?page=N` (1-based); the next page exists while a page comes back full, or while
    /// `page < total_pages` when the body says so.
    Page {
        page_param: String,
        size_param: String,
        #[serde(default)]
        total_pages: Option<String>,
    },
    /// The body carries the absolute URL of the next page.
    NextUrl {
        next: String,
        /// When a page comes without `next` but its counters say more follow, the next page by number.
        #[serde(default)]
        numbered: Option<Numbered>,
    },
}

/// The counters of a page (`page`, `pagelen`, `size`), for lists that leave out `next` although more
/// follow: Bitbucket's pipelines list has been reported to (BCLOUD-20639), and clients page it by number.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Numbered {
    /// The page number: the field of the body, and the query parameter that asks for a page.
    pub page: String,
    /// The body's page length and total count.
    pub pagelen: String,
    pub size: String,
}

#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Whoami {
    pub path: String,
    /// Dot path to a human account name (shown on status pages).
    pub account: String,
    /// Dot path to a stable account id.
    pub id: String,
}

#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ScopeSpec {
    pub name: String,
    pub description: String,
    /// Scopes this one grants as well (`repository:write` implies `repository`).
    #[serde(default)]
    pub implies: Vec<String>,
    /// Other names the provider accepts for the same permission (Buddy's newer `PIPELINE_READ` for
    /// `EXECUTION_INFO`). A grant under any of them satisfies a tool; tools name `name`; a config that
    /// lists an alias makes devgate ask for the aliases rather than the names.
    #[serde(default)]
    pub aliases: Vec<String>,
}

/// One tool as written in the catalog.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ToolSpec {
    /// Name without the provider prefix.
    pub name: String,
    pub title: String,
    /// One or two sentences for an agent: what it needs and what it returns.
    pub description: String,
    pub toolset: String,
    /// Scopes required, all of them.
    pub scopes: Vec<String>,
    pub annotations: AnnotationSpec,
    pub method: Method,
    /// Path template relative to the API base. `{name}` is one percent-encoded segment;
    /// `{+name}` may span segments (each encoded, `.`/`..`/empty segments refused).
    pub path: String,
    /// Query template: values are placeholders or literals; absent arguments drop the key.
    #[serde(default)]
    pub query: BTreeMap<String, String>,
    /// JSON body template (non-GET only).
    #[serde(default)]
    pub body: Option<Value>,
    #[serde(default)]
    pub params: BTreeMap<String, ParamSpec>,
    /// Groups of parameters of which at least one must be given.
    #[serde(default)]
    pub require_one_of: Vec<Vec<String>>,
    /// Parameters that, when given, need at least one of the listed others too, where the provider
    /// accepts no request with the one alone (a Bitbucket commit runs with a branch or a named pipeline).
    #[serde(default)]
    pub requires: BTreeMap<String, Vec<String>>,
    /// Lookups run before the call, rewriting a parameter (e.g. a pipeline identifier to its id).
    #[serde(default)]
    pub resolve: Vec<ResolveSpec>,
    /// Read the current object first and send back these fields under the body (PUT that replaces).
    #[serde(default)]
    pub keep_current: Option<Vec<String>>,
    #[serde(default = "json_kind")]
    pub response: ResponseKind,
    /// For `response = "text"`: a dot path to an array of lines in a JSON body, joined with newlines.
    #[serde(default)]
    pub text_lines: Option<String>,
    /// For `response = "text"`: the tool takes `tail` (the last N lines; logs fail at their end). With
    /// `text_lines`, `text_total` (dot path to the total line count) and `text_start` (the parameter that
    /// sets the first line) let the engine fetch the right page of lines.
    #[serde(default)]
    pub text_tail: bool,
    #[serde(default)]
    pub text_total: Option<String>,
    #[serde(default)]
    pub text_start: Option<String>,
    /// Where the tool's redirects may lead (default: only within the API).
    #[serde(default)]
    pub redirects: Redirects,
    #[serde(default)]
    pub output: Option<OutputSpec>,
    /// A prefix template a pagination cursor's path must start with, when the provider's next-page
    /// URL leaves the tool's own path (e.g. after a redirect). Default: the rendered path itself. It
    /// ends in `/` and may cover no other tool's path (checked at load).
    #[serde(default)]
    pub cursor_prefix: Option<String>,
    /// Messages for particular upstream statuses, added to the provider's own message.
    #[serde(default)]
    pub errors: BTreeMap<String, String>,
    /// What the user is asked to confirm before a destructive call (see [`ConfirmSpec`]).
    #[serde(default)]
    pub confirm: Option<ConfirmSpec>,
    /// For a tool that starts a run: how `wait` follows the run to its end.
    #[serde(default)]
    pub wait: Option<WaitSpec>,
    /// What a 202 answer means for this tool: the provider works on the request as a task (see
    /// [`AcceptedSpec`]), which devgate follows to its result.
    #[serde(default)]
    pub accepted: Option<AcceptedSpec>,
    /// The call may run as an MCP task (the tasks extension of 2026-07-28): for a client that declared
    /// the extension, the call answers with a task once the run started (or the provider accepted the
    /// request with 202), and devgate follows it as `wait` (or `accepted`) would, keeping the same final
    /// result for `tasks/get`. Clients without tasks keep `wait`. Needs `wait` or `accepted`.
    #[serde(default)]
    pub task: bool,
    /// Example arguments: checked at load, shown in docs, and called against the sim by the tests.
    #[serde(default)]
    pub example: Option<serde_json::Map<String, Value>>,
}

#[derive(Debug, Clone, Copy, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AnnotationSpec {
    pub read_only: bool,
    #[serde(default)]
    pub destructive: bool,
    #[serde(default)]
    pub idempotent: Option<bool>,
    #[serde(default = "yes")]
    pub open_world: bool,
}

impl AnnotationSpec {
    /// Read-only tools are idempotent unless the catalog says otherwise.
    pub fn idempotent(&self) -> bool {
        self.idempotent.unwrap_or(self.read_only)
    }
}

#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "UPPERCASE")]
pub enum Method {
    Get,
    Post,
    Put,
    Patch,
    Delete,
}

impl Method {
    pub fn as_reqwest(self) -> reqwest::Method {
        match self {
            Method::Get => reqwest::Method::GET,
            Method::Post => reqwest::Method::POST,
            Method::Put => reqwest::Method::PUT,
            Method::Patch => reqwest::Method::PATCH,
            Method::Delete => reqwest::Method::DELETE,
        }
    }
}

#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ResponseKind {
    /// A JSON body, projected by `output`.
    Json,
    /// Text (file, diff, log), capped with an `offset` to read on.
    Text,
    /// No body worth returning (204); the result says the call succeeded.
    Empty,
}

/// Where a tool's redirects may lead.
#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Redirects {
    /// Within the provider's API only.
    #[default]
    Api,
    /// Also to the provider's long-term storage on another host (Bitbucket moves a finished step's
    /// log there and answers 307 with a pre-signed URL): fetched without credentials, https only, never
    /// a private or loopback address unless the API base itself is on loopback. Text tools only.
    Storage,
}

/// A tool parameter; also used for array items and object properties.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ParamSpec {
    #[serde(rename = "type")]
    pub ty: ParamType,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub required: bool,
    #[serde(default, rename = "enum")]
    pub enum_values: Option<Vec<Value>>,
    #[serde(default)]
    pub default: Option<Value>,
    /// Take the default from the provider's config (`workspace`).
    #[serde(default)]
    pub default_from: Option<DefaultFrom>,
    #[serde(default)]
    pub minimum: Option<i64>,
    #[serde(default)]
    pub maximum: Option<i64>,
    #[serde(default)]
    pub max_length: Option<usize>,
    /// `false` leaves the parameter out of `inputSchema` (it is still accepted and checked): for
    /// arguments every list shares, such as `limit`, which the server instructions describe once.
    #[serde(default = "yes")]
    pub listed: bool,
    #[serde(default)]
    pub items: Option<Box<ParamSpec>>,
    #[serde(default)]
    pub properties: Option<BTreeMap<String, ParamSpec>>,
}

#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ParamType {
    String,
    Integer,
    Number,
    Boolean,
    Array,
    Object,
}

impl ParamType {
    pub fn as_str(self) -> &'static str {
        match self {
            ParamType::String => "string",
            ParamType::Integer => "integer",
            ParamType::Number => "number",
            ParamType::Boolean => "boolean",
            ParamType::Array => "array",
            ParamType::Object => "object",
        }
    }
}

#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum DefaultFrom {
    Workspace,
}

/// A lookup that rewrites one parameter before the call.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ResolveSpec {
    pub param: String,
    pub when: ResolveWhen,
    pub path: String,
    #[serde(default)]
    pub query: BTreeMap<String, String>,
    /// Dot path to the replacement value in the lookup's response.
    pub take: String,
    /// Scopes the lookup needs; every tool that has it needs them too (Buddy's identifiers lookup
    /// needs `WORKSPACE`).
    #[serde(default)]
    pub scopes: Vec<String>,
}

#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ResolveWhen {
    /// The value is not all digits (a name rather than a numeric id).
    NotNumeric,
    /// The value contains a `/` (a branch name where a commit is needed).
    ContainsSlash,
}

/// How a tool that starts a run follows it when called with `wait`: other read tools of the same
/// provider are called with the run tool's arguments, and every field named here is an output name
/// of those tools (their shaped result), so the catalog speaks the same language an agent reads.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct WaitSpec {
    /// The read tool that returns the run's state.
    pub poll: String,
    /// `poll`'s parameters filled from fields of the run tool's result (`execution_id = "id"`).
    pub args: BTreeMap<String, String>,
    /// The run's state in `poll`'s result, and the states in which it is still going.
    pub state: String,
    pub running: Vec<String>,
    /// The field with the final outcome (default: `state`) and the outcomes that are a success.
    #[serde(default)]
    pub outcome: Option<String>,
    pub success: Vec<String>,
    /// A tool listing the steps (same arguments as `poll`), when `poll`'s result does not have them.
    #[serde(default)]
    pub steps_tool: Option<String>,
    /// The list of steps (in `poll`'s or `steps_tool`'s result), each step's name, and the fields
    /// giving its state, first present wins (a result before a state).
    pub steps: String,
    pub step_name: String,
    pub step_state: Vec<String>,
    /// Step states that mark the step whose log is fetched when the run did not succeed.
    pub step_failed: Vec<String>,
    /// The log tool (it must take `tail`), and its parameters filled from fields of the failed step.
    pub log: String,
    pub log_args: BTreeMap<String, String>,
    /// States in which the run stops until someone acts (an approval, variables, a manual step):
    /// `wait` returns at once with the tool that moves the run on, instead of polling a run that
    /// cannot move by itself.
    #[serde(default)]
    pub waiting: Vec<WaitingSpec>,
}

/// A request the provider answers with 202 and a `Location` to a task's status (Bitbucket's slow merges:
/// `…/merge/task-status/{id}`). devgate polls that status, bounded and with progress, until it leaves the
/// `pending` states, then returns the task's `result` shaped as the tool's output; when the bound is
/// reached first it says the task still runs and which tool checks the target.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AcceptedSpec {
    /// A path template (ending in `/`) the `Location` must lie under, inside the API: only this tool's
    /// own tasks are polled, with the user's credential.
    pub under: String,
    /// Dot path to the task's state in its status body, and the states that mean it still runs.
    pub state: String,
    pub pending: Vec<String>,
    /// Dot path to the finished object in the status body.
    pub result: String,
    /// A read tool of the same provider that shows the target, for when the task outlasts the wait.
    pub check: String,
    /// How long devgate follows the task before it answers that the task still runs.
    #[serde(default = "accepted_secs")]
    pub seconds: u64,
}

fn accepted_secs() -> u64 {
    30
}

/// One state in which a run waits for someone, e.g. Buddy's `WAITING_FOR_APPLY`.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct WaitingSpec {
    /// The output field of `poll` that shows it (default: the wait's `state`) and its value.
    #[serde(default)]
    pub field: Option<String>,
    pub value: String,
    /// What the run waits for, completing "the run waits for …" ("someone to approve it").
    pub waits_for: String,
    /// The tool that moves the run on, called with `poll`'s arguments; without one (or when it is not
    /// offered) the user acts in the provider's own interface and `poll` checks the run afterwards.
    #[serde(default)]
    pub next: Option<String>,
}

/// The sentence a user confirms before a call that cannot be undone, e.g. "Merge PR #42 from `feature/x`
/// into `main` in acme/api with squash; title: "Fix login"" (see [`crate::confirm::summary`]).
/// `summary` states the facts: `{name}` is the argument of that name, else the field of that name in
/// `read`'s result; `{current.name}` is always the field of `read`'s result (the state before the
/// change); `{name|text}` uses `text` when neither has a value. Every argument the template leaves out
/// is added after it by the engine, and the `quote` fields after those.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ConfirmSpec {
    /// A read tool of the same provider called with this tool's arguments to describe the target.
    #[serde(default)]
    pub read: Option<String>,
    pub summary: String,
    /// Free text of `read`'s result (`field`, or `label=field`) shown quoted after the facts, such as a
    /// PR's title: text its author chose, which must not sit among the facts.
    #[serde(default)]
    pub quote: Vec<String>,
    /// States of the target in which the call cannot succeed, by output field of `read` (a merged PR
    /// cannot be merged, a finished run cannot be stopped): such a call is refused at once, naming the
    /// state and the read tool, instead of asking the user to approve something that will fail.
    #[serde(default)]
    pub refuse: BTreeMap<String, Vec<String>>,
}

/// How to shape a JSON response for an agent.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct OutputSpec {
    /// Dot path to the array of items; absent for a single object.
    #[serde(default)]
    pub list: Option<String>,
    /// Field specs (see [`crate::shape`]): `name`, `out=path`, `path[]{sub}`, `path|200`.
    pub fields: Vec<String>,
}

fn yes() -> bool {
    true
}

fn space() -> String {
    " ".into()
}

fn json_kind() -> ResponseKind {
    ResponseKind::Json
}

/// The JSON Schema of a catalog file, generated from these types so that it cannot drift from what the
/// loader accepts. `tools/catalog.schema.json` is this, committed for editors (taplo and Even Better
/// TOML read the `#:schema` line at the top of each catalog) and checked by the test below.
pub fn file_schema() -> Value {
    serde_json::to_value(schemars::schema_for!(CatalogFile)).expect("a schema is plain JSON")
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    /// The committed schema is the one these types generate; `UPDATE_SCHEMA=1 cargo test --lib` writes it.
    #[test]
    fn the_committed_catalog_schema_is_current() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tools/catalog.schema.json");
        let want = serde_json::to_string_pretty(&super::file_schema()).unwrap() + "\n";
        if std::env::var_os("UPDATE_SCHEMA").is_some() {
            std::fs::write(&path, &want).unwrap();
        }
        let have = std::fs::read_to_string(&path).unwrap_or_default();
        assert!(
            have == want,
            "tools/catalog.schema.json is stale: run `UPDATE_SCHEMA=1 cargo test --lib catalog_schema`"
        );
    }

    /// Every key the shipped catalogs use is one the schema names, at the place the schema names it, so
    /// an editor that validates with it raises no false alarm on a real catalog.
    #[test]
    fn the_shipped_catalogs_use_only_keys_the_schema_names() {
        let schema = super::file_schema();
        for name in ["bitbucket.toml", "buddy.toml"] {
            let path = Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("tools")
                .join(name);
            let text = std::fs::read_to_string(&path).unwrap();
            let file: toml::Value = toml::from_str(&text).unwrap();
            let file = serde_json::to_value(file).unwrap();
            let mut unknown = Vec::new();
            keys_known(&schema, &schema, &file, name.to_string(), &mut unknown);
            assert!(
                unknown.is_empty(),
                "keys the schema does not name: {unknown:?}"
            );
        }
    }

    /// Walks `value` beside `node` (a schema), collecting object keys that no `properties` allows.
    fn keys_known(
        root: &serde_json::Value,
        node: &serde_json::Value,
        value: &serde_json::Value,
        at: String,
        unknown: &mut Vec<String>,
    ) {
        let node = resolve(root, node);
        let alternatives: Vec<&serde_json::Value> = ["oneOf", "anyOf", "allOf"]
            .iter()
            .filter_map(|k| node.get(*k).and_then(|v| v.as_array()))
            .flatten()
            .map(|n| resolve(root, n))
            .collect();
        if !alternatives.is_empty() {
            // The alternative whose properties cover this object best is the one it matches.
            let best = alternatives
                .into_iter()
                .min_by_key(|alt| {
                    let mut miss = Vec::new();
                    keys_known(root, alt, value, at.clone(), &mut miss);
                    miss.len()
                })
                .unwrap();
            return keys_known(root, best, value, at, unknown);
        }
        match value {
            serde_json::Value::Object(map) => {
                let props = node.get("properties").and_then(|p| p.as_object());
                let extra = node.get("additionalProperties");
                for (key, v) in map {
                    let at = format!("{at}.{key}");
                    if let Some(sub) = props.and_then(|p| p.get(key)) {
                        keys_known(root, sub, v, at, unknown);
                    } else if let Some(sub) = extra.filter(|e| e.is_object()) {
                        keys_known(root, sub, v, at, unknown);
                    } else if props.is_some() || extra == Some(&serde_json::Value::Bool(false)) {
                        unknown.push(at);
                    }
                }
            }
            serde_json::Value::Array(items) => {
                if let Some(sub) = node.get("items") {
                    for (i, v) in items.iter().enumerate() {
                        keys_known(root, sub, v, format!("{at}[{i}]"), unknown);
                    }
                }
            }
            _ => {}
        }
    }

    fn resolve<'a>(
        root: &'a serde_json::Value,
        node: &'a serde_json::Value,
    ) -> &'a serde_json::Value {
        match node.get("$ref").and_then(|r| r.as_str()) {
            Some(r) => {
                let pointer = r.trim_start_matches('#');
                resolve(
                    root,
                    root.pointer(pointer).expect("a $ref inside the schema"),
                )
            }
            None => node,
        }
    }
}
