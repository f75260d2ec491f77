//! The catalog file format: what `tools/<provider>.toml` may say.
//!
//! Every struct denies unknown keys, so a typo in a catalog is a load error with the file and tool named
//! rather than a silently ignored setting.

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::Value;

/// One catalog file: a provider, its scopes and its tools.
#[derive(Debug, Clone, Deserialize)]
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
}

/// How to reach a provider and how it behaves on the wire.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProviderSpec {
    /// Short id used in tool names (`<id>_<tool>`) and config (`[providers.<id>]`).
    pub id: String,
    pub title: String,
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
    /// Hosts, besides the API's own, that redirects may lead to (e.g. log storage).
    #[serde(default)]
    pub redirect_hosts: Vec<String>,
    /// Where a personal/static token is created, for error messages.
    #[serde(default)]
    pub token_help: Option<String>,
    /// How to learn which account a token belongs to.
    pub whoami: Whoami,
}

#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum ClientAuth {
    /// HTTP Basic `client_id:client_secret`.
    Basic,
    /// `client_id` and `client_secret` in the form body.
    Form,
}

/// How a provider pages its lists.
#[derive(Debug, Clone, Deserialize)]
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
    NextUrl { next: String },
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Whoami {
    pub path: String,
    /// Dot path to a human account name (shown on status pages).
    pub account: String,
    /// Dot path to a stable account id.
    pub id: String,
}

#[derive(Debug, Clone, Deserialize)]
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
#[derive(Debug, Clone, Deserialize)]
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
    /// Example arguments: checked at load, shown in docs, and called against the sim by the tests.
    #[serde(default)]
    pub example: Option<serde_json::Map<String, Value>>,
}

#[derive(Debug, Clone, Copy, Deserialize)]
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

#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
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

#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum ResponseKind {
    /// A JSON body, projected by `output`.
    Json,
    /// Text (file, diff, log), capped with an `offset` to read on.
    Text,
    /// No body worth returning (204); the result says the call succeeded.
    Empty,
}

/// A tool parameter; also used for array items and object properties.
#[derive(Debug, Clone, Deserialize)]
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

#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
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

#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum DefaultFrom {
    Workspace,
}

/// A lookup that rewrites one parameter before the call.
#[derive(Debug, Clone, Deserialize)]
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

#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
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
#[derive(Debug, Clone, Deserialize)]
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

/// One state in which a run waits for someone, e.g. Buddy's `WAITING_FOR_APPLY`.
#[derive(Debug, Clone, Deserialize)]
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
#[derive(Debug, Clone, Deserialize)]
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
#[derive(Debug, Clone, Deserialize)]
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
