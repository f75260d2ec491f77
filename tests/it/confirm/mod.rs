//! Confirmation of destructive calls: an answer counts only if devgate asked for it.
//!
//! - A client with form elicitation is always asked, whatever the agent passes (`confirm: true` is
//!   never consent): by an elicitation request up to 2025-11-25, by `input_required` from 2026-07-28.
//! - A 2026-07-28 answer counts only with the `requestState` devgate issued for this user, tool,
//!   arguments and summary, unexpired and once; anything else is asked again, and nothing reaches the
//!   provider (checked on the sim's request log).
//! - A client that cannot ask gets a confirm-page link; the page names the user and approves once, and
//!   then exactly one retry with the same arguments, by the same user, runs.
//!
//! Each runs over stdio, stateful HTTP and stateless HTTP, against the real binary.

mod answers;
mod pages;

use std::process::Stdio;
use std::sync::{Arc, Mutex};

use crate::common::*;
use devgate::sim::Sim;
use rmcp::model::{
    CallToolRequestParams, CallToolResponse, CallToolResult, ClientCapabilities, ClientConfig,
    ElicitRequestParams, ElicitResult, ElicitationAction, ElicitationCapability,
    FormElicitationCapability, Implementation, InputRequest, JsonObject, ProtocolVersion,
};
use rmcp::service::{ClientLifecycleMode, RequestContext, RunningService};
use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
use rmcp::transport::{StreamableHttpClientTransport, TokioChildProcess};
use rmcp::{ClientHandler, ErrorData, RoleClient};
use serde_json::{Value, json};
use tokio::process::Command;

/// A client whose user answers every question the same way, and which keeps what they were asked.
#[derive(Clone)]
struct User {
    info: ClientConfig,
    accept: bool,
    asked: Arc<Mutex<Vec<String>>>,
}

impl User {
    fn new(accept: bool, form: bool, version: ProtocolVersion) -> Self {
        let mut capabilities = ClientCapabilities::default();
        if form {
            capabilities.elicitation =
                Some(ElicitationCapability::new().with_form(FormElicitationCapability::new()));
        }
        Self {
            info: ClientConfig::new(capabilities, Implementation::new("confirm-test", "1"))
                .with_protocol_version(version),
            accept,
            asked: Arc::default(),
        }
    }

    fn asked(&self) -> Vec<String> {
        self.asked.lock().unwrap().clone()
    }

    fn modern(&self) -> bool {
        self.info.protocol_version == ProtocolVersion::V_2026_07_28
    }
}

impl ClientHandler for User {
    fn get_info(&self) -> ClientConfig {
        self.info.clone()
    }

    async fn create_elicitation(
        &self,
        request: ElicitRequestParams,
        _context: RequestContext<RoleClient>,
    ) -> Result<ElicitResult, ErrorData> {
        if let ElicitRequestParams::FormElicitationParams { message, .. } = request {
            self.asked.lock().unwrap().push(message);
        }
        Ok(ElicitResult::new(if self.accept {
            ElicitationAction::Accept
        } else {
            ElicitationAction::Decline
        }))
    }
}

type Session = RunningService<RoleClient, User>;

/// How the client reaches devgate.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Mode {
    Stdio,
    Stateful,
    Stateless,
}

/// A devgate for these tests: the providers' static tokens, API keys for HTTP callers, a store in a
/// fresh directory, and a public URL where the confirm page is served.
struct Gateway {
    setup: OAuthSetup,
    http: Option<HttpGateway>,
}

fn write_setup(sim: &Sim, extra: &str) -> OAuthSetup {
    let dir = temp_path("confirm");
    std::fs::create_dir_all(&dir).unwrap();
    let text = format!(
        r#"{extra}

[http]
auth = "api_key"

[store]
url = "sqlite://{db}"

[upstream]
backoff_ms = 5

[providers.buddy]
api_base = "{buddy}"
token = "${{TEST_BUDDY_TOKEN}}"
workspace = "acme"

[providers.bitbucket]
api_base = "{bitbucket}"
token = "${{TEST_BITBUCKET_TOKEN}}"
workspace = "acme"
"#,
        db = dir.join("devgate.db").display(),
        buddy = sim.buddy_url,
        bitbucket = sim.bitbucket_url,
    );
    let config = dir.join("devgate.toml");
    std::fs::write(&config, text).unwrap();
    OAuthSetup::new(config, dir)
}

/// The sealing key, the providers' tokens, and devgate's own debug logs (rmcp's debug level would
/// print every message, results included, which is rmcp's to decide).
fn with_env(cmd: &mut Command) {
    cmd.env("DEVGATE_SECRET_KEY", TEST_SECRET_KEY)
        .env("DEVGATE_LOG", "debug,rmcp=info");
    for (k, v) in token_env() {
        cmd.env(k, v);
    }
}

impl Gateway {
    /// For `mode`: stdio serves the confirm page itself on a port reserved for it; HTTP starts
    /// `devgate http` on port 0, and the address it announces is the public URL.
    async fn start(sim: &Sim, mode: Mode, extra: &str) -> Self {
        let setup = write_setup(sim, extra);
        let http = match mode {
            Mode::Stdio => {
                setup.reserve_public_url();
                None
            }
            Mode::Stateful | Mode::Stateless => {
                let mut cmd = Command::new(BIN);
                cmd.arg("http")
                    .arg("--config")
                    .arg(&setup.config)
                    .arg("--listen")
                    .arg("127.0.0.1:0")
                    .stdout(Stdio::null())
                    .stderr(Stdio::piped())
                    .kill_on_drop(true);
                if mode == Mode::Stateless {
                    cmd.arg("--stateless");
                }
                with_env(&mut cmd);
                let gateway = spawn_http(cmd).await;
                setup.served_by(&gateway);
                Some(gateway)
            }
        };
        Self { setup, http }
    }

    /// `devgate keys create <user>`.
    fn key(&self, user: &str) -> String {
        let mut cmd = std::process::Command::new(BIN);
        cmd.args(["keys", "create", user, "--config"])
            .arg(&self.setup.config)
            .env("DEVGATE_SECRET_KEY", TEST_SECRET_KEY);
        for (k, v) in token_env() {
            cmd.env(k, v);
        }
        let out = cmd.output().expect("devgate keys runs");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap().trim().to_string()
    }

    /// A session for `user` (stdio: `devgate stdio --user`; HTTP: their API key).
    async fn session(&self, user: &str, handler: User) -> Session {
        let lifecycle = if handler.modern() {
            ClientLifecycleMode::Discover {
                preferred_versions: vec![ProtocolVersion::V_2026_07_28],
            }
        } else {
            ClientLifecycleMode::Initialize
        };
        match &self.http {
            None => {
                let mut cmd = Command::new(BIN);
                cmd.args(["stdio", "--user", user, "--config"])
                    .arg(&self.setup.config);
                with_env(&mut cmd);
                let (transport, _) = TokioChildProcess::builder(cmd)
                    .stderr(Stdio::null())
                    .spawn()
                    .unwrap();
                rmcp::service::serve_client_with_lifecycle(handler, transport, lifecycle)
                    .await
                    .unwrap()
            }
            Some(http) => {
                let config = StreamableHttpClientTransportConfig::with_uri(http.url.clone())
                    .auth_header(self.key(user));
                rmcp::service::serve_client_with_lifecycle(
                    handler,
                    StreamableHttpClientTransport::from_config(config),
                    lifecycle,
                )
                .await
                .unwrap()
            }
        }
    }

    fn logs(&self) -> String {
        self.http
            .as_ref()
            .map(|h| h.stderr.text())
            .unwrap_or_default()
    }
}

fn request(tool: &str, a: Value) -> CallToolRequestParams {
    CallToolRequestParams::new(tool.to_string()).with_arguments(args(a))
}

async fn once(client: &Session, request: CallToolRequestParams) -> CallToolResponse {
    client
        .call_tool_once(request)
        .await
        .unwrap_or_else(|e| panic!("tools/call: {e}"))
}

/// A call that must complete (not `input_required`).
async fn complete(client: &Session, request: CallToolRequestParams) -> CallToolResult {
    match once(client, request).await {
        CallToolResponse::Complete(result) => result,
        other => panic!("expected a result, got {other:?}"),
    }
}

/// A call that must be asked through `input_required`: the question and its `requestState`.
async fn asked(client: &Session, request: CallToolRequestParams) -> (String, String) {
    let response = once(client, request).await;
    let CallToolResponse::InputRequired(required) = response else {
        panic!("expected the user to be asked (input_required), got {response:?}");
    };
    let requests = required.input_requests.expect("input requests");
    let Some(InputRequest::Elicitation(elicit)) = requests.get("confirm") else {
        panic!("expected a confirmation: {requests:?}");
    };
    let ElicitRequestParams::FormElicitationParams { message, .. } = &elicit.params else {
        panic!("expected a form");
    };
    (
        message.clone(),
        required.request_state.expect("a requestState"),
    )
}

/// `request` retried with an answer to the confirmation and, if given, a `requestState`.
fn answered(
    request: &CallToolRequestParams,
    action: &str,
    state: Option<&str>,
) -> CallToolRequestParams {
    let mut retried = request.clone();
    retried.input_responses = Some([("confirm".to_string(), json!({ "action": action }))].into());
    retried.request_state = state.map(str::to_string);
    retried
}

fn posts(sim: &Sim, path_end: &str) -> usize {
    sim.requests()
        .iter()
        .filter(|r| r.method == "POST" && r.path.ends_with(path_end))
        .count()
}

const MERGE: &str = "bitbucket_merge_pull_request";

fn merge_21() -> Value {
    json!({"repo_slug": "api", "pull_request_id": 21, "strategy": "squash"})
}

/// The arguments of [`merge_21`] as devgate validates them (the configured workspace filled in).
fn merge_21_validated() -> JsonObject {
    args(
        json!({"workspace": "acme", "repo_slug": "api", "pull_request_id": 21, "strategy": "squash"}),
    )
}

/// A `requestState` sealed the way devgate seals one, with its key, for `summary` and `expires_at`.
fn forged_state(user: &str, summary: &str, expires_at: i64) -> String {
    let (key, _) =
        devgate::vault::key::load_key(Some(TEST_SECRET_KEY.to_string()), None, false).unwrap();
    let key =
        devgate::vault::seal::Sealer::new(key).derive_key(devgate::confirm::REQUEST_STATE_KEY);
    let binding = devgate::confirm::Binding::new(user, MERGE, &merge_21_validated(), summary);
    devgate::confirm::StateCodec::new(key).seal(&binding, expires_at)
}

// --- clients that can ask ----------------------------------------------------------------------

/// A call by another session of alice's whose user accepts (rmcp's client answers `input_required`).
async fn client_call_confirmed(gateway: &Gateway, tool: &str, a: Value) -> CallToolResult {
    let client = gateway
        .session(
            "alice",
            User::new(true, true, ProtocolVersion::V_2026_07_28),
        )
        .await;
    let result = client.call_tool(request(tool, a)).await.unwrap();
    client.cancel().await.unwrap();
    result
}
