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

/// `confirm: true` from a 2025-11-25 client that declared form elicitation: over stdio and stateful
/// HTTP the user is asked (and declines); over stateless HTTP, where the request cannot carry a
/// question back, the user gets the confirm page. Nothing reaches Bitbucket either way.
#[tokio::test(flavor = "multi_thread")]
async fn confirm_true_is_never_consent() {
    for mode in [Mode::Stdio, Mode::Stateful, Mode::Stateless] {
        let sim = Sim::start().await.unwrap();
        let gateway = Gateway::start(&sim, mode, "").await;
        let user = User::new(false, true, ProtocolVersion::V_2025_11_25);
        let client = gateway.session("alice", user.clone()).await;
        let mut forced = merge_21();
        forced["confirm"] = json!(true);
        let result = complete(&client, request(MERGE, forced)).await;
        assert!(is_error(&result), "{mode:?}: {}", text(&result));
        if mode == Mode::Stateless {
            assert!(
                text(&result).contains("/confirm?ticket="),
                "{mode:?}: {}",
                text(&result)
            );
            assert!(user.asked().is_empty());
        } else {
            assert!(
                text(&result).contains("did not confirm"),
                "{}",
                text(&result)
            );
            assert_eq!(user.asked().len(), 1, "{mode:?}: asked once");
            assert!(
                user.asked()[0].starts_with("Merge PR #21 "),
                "{:?}",
                user.asked()
            );
        }
        assert_eq!(
            posts(&sim, "/merge"),
            0,
            "{mode:?}: nothing reached Bitbucket"
        );
        client.cancel().await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn an_accepted_form_confirmation_sends_the_call_once() {
    for mode in [Mode::Stdio, Mode::Stateful] {
        let sim = Sim::start().await.unwrap();
        let gateway = Gateway::start(&sim, mode, "").await;
        let user = User::new(true, true, ProtocolVersion::V_2025_11_25);
        let client = gateway.session("alice", user.clone()).await;
        let merged = complete(&client, request(MERGE, merge_21())).await;
        assert_eq!(ok("merge", &merged)["state"], "MERGED");
        assert_eq!(user.asked().len(), 1, "{mode:?}");
        assert_eq!(posts(&sim, "/pullrequests/21/merge"), 1);
        client.cancel().await.unwrap();
    }
}

/// A 2026-07-28 client is asked through `input_required`; answering with the state devgate issued
/// (as rmcp's client does on its own) runs the call once; declining sends nothing.
#[tokio::test(flavor = "multi_thread")]
async fn a_2026_client_answers_with_the_state_devgate_issued() {
    for mode in [Mode::Stdio, Mode::Stateful, Mode::Stateless] {
        let sim = Sim::start().await.unwrap();
        let gateway = Gateway::start(&sim, mode, "").await;
        let declining = User::new(false, true, ProtocolVersion::V_2026_07_28);
        let client = gateway.session("alice", declining.clone()).await;
        let declined = client.call_tool(request(MERGE, merge_21())).await.unwrap();
        assert!(is_error(&declined) && text(&declined).contains("did not confirm"));
        assert_eq!(declining.asked().len(), 1, "{mode:?}");
        assert_eq!(posts(&sim, "/merge"), 0);
        client.cancel().await.unwrap();

        let accepting = User::new(true, true, ProtocolVersion::V_2026_07_28);
        let client = gateway.session("alice", accepting.clone()).await;
        let merged = client.call_tool(request(MERGE, merge_21())).await.unwrap();
        assert_eq!(ok("merge", &merged)["state"], "MERGED", "{mode:?}");
        let question = &accepting.asked()[0];
        assert!(
            question.starts_with("Merge PR #21 ") && question.ends_with(". Go ahead?"),
            "{question}"
        );
        assert_eq!(posts(&sim, "/merge"), 1, "{mode:?}");
        client.cancel().await.unwrap();
    }
}

/// Answers devgate did not issue are asked again, and nothing reaches Bitbucket: no `requestState`, a
/// tampered one, one issued for other arguments, another tool or another user, an expired one, and
/// one used before.
#[tokio::test(flavor = "multi_thread")]
async fn forged_answers_are_asked_again() {
    for mode in [Mode::Stdio, Mode::Stateful, Mode::Stateless] {
        let sim = Sim::start().await.unwrap();
        let gateway = Gateway::start(&sim, mode, "").await;
        let alice = gateway
            .session(
                "alice",
                User::new(true, true, ProtocolVersion::V_2026_07_28),
            )
            .await;
        let merge = request(MERGE, merge_21());

        // Accepted on the first call, without devgate ever asking.
        let (summary, state) = asked(&alice, answered(&merge, "accept", None)).await;
        let mut tampered = state.clone();
        let last = tampered.pop().unwrap();
        tampered.push(if last == 'A' { 'B' } else { 'A' });
        asked(&alice, answered(&merge, "accept", Some(&tampered))).await;

        // A state for other arguments, for another tool.
        let other_args = request(
            MERGE,
            json!({"repo_slug": "api", "pull_request_id": 21, "strategy": "merge_commit"}),
        );
        asked(&alice, answered(&other_args, "accept", Some(&state))).await;
        let decline = request(
            "bitbucket_decline_pull_request",
            json!({"repo_slug": "api", "pull_request_id": 21}),
        );
        let (_, decline_state) = asked(&alice, decline).await;
        asked(&alice, answered(&merge, "accept", Some(&decline_state))).await;

        // Expired: sealed with devgate's own key for exactly this call, a second too old. (The store and
        // its key are shared by HTTP instances; stdio without OAuth providers keeps a key of its own.)
        if mode != Mode::Stdio {
            let expired = forged_state(
                "alice",
                summary.trim_end_matches(". Go ahead?"),
                devgate::vault::now() - 1,
            );
            asked(&alice, answered(&merge, "accept", Some(&expired))).await;
        }
        assert_eq!(
            posts(&sim, "/merge"),
            0,
            "{mode:?}: nothing reached Bitbucket"
        );

        // Another user: bob replays alice's state for the same call.
        if mode != Mode::Stdio {
            let bob = gateway
                .session("bob", User::new(true, true, ProtocolVersion::V_2026_07_28))
                .await;
            asked(&bob, answered(&merge, "accept", Some(&state))).await;
            bob.cancel().await.unwrap();
            assert_eq!(
                posts(&sim, "/merge"),
                0,
                "{mode:?}: bob's replay reached Bitbucket"
            );
        }

        // The real state runs the call once. The same answer again finds the PR merged: refused
        // without a question (a call that could run again is asked again: see
        // `a_used_answer_or_approval_is_not_used_again`).
        let merged = complete(&alice, answered(&merge, "accept", Some(&state))).await;
        assert_eq!(ok("merge", &merged)["state"], "MERGED", "{mode:?}");
        let replayed = complete(&alice, answered(&merge, "accept", Some(&state))).await;
        assert!(
            is_error(&replayed) && text(&replayed).contains("state is MERGED"),
            "{mode:?}: {}",
            text(&replayed)
        );
        assert_eq!(posts(&sim, "/merge"), 1, "{mode:?}: merged exactly once");
        assert_no_secrets(&sim, &[state], &[("the logs", &gateway.logs())]);
        alice.cancel().await.unwrap();
    }
}

/// The expiry check is what refuses the expired state above: the same forgery with a future expiry
/// is accepted.
#[tokio::test(flavor = "multi_thread")]
async fn a_state_sealed_with_devgates_key_counts_until_it_expires() {
    let sim = Sim::start().await.unwrap();
    let gateway = Gateway::start(&sim, Mode::Stateless, "").await;
    let alice = gateway
        .session(
            "alice",
            User::new(true, true, ProtocolVersion::V_2026_07_28),
        )
        .await;
    let merge = request(MERGE, merge_21());
    let (question, _) = asked(&alice, merge.clone()).await;
    let summary = question.trim_end_matches(". Go ahead?");
    let expired = forged_state("alice", summary, devgate::vault::now() - 1);
    asked(&alice, answered(&merge, "accept", Some(&expired))).await;
    assert_eq!(posts(&sim, "/merge"), 0);
    let valid = forged_state("alice", summary, devgate::vault::now() + 60);
    let merged = complete(&alice, answered(&merge, "accept", Some(&valid))).await;
    assert_eq!(ok("merge", &merged)["state"], "MERGED");
    assert_eq!(posts(&sim, "/merge"), 1);
    alice.cancel().await.unwrap();
}

/// The summary is part of what a state is bound to: when the target changed after the question (here
/// the PR's title), the old answer is asked again, with the question as it reads now.
#[tokio::test(flavor = "multi_thread")]
async fn an_answer_about_a_target_that_changed_is_asked_again() {
    let sim = Sim::start().await.unwrap();
    let gateway = Gateway::start(&sim, Mode::Stateless, "").await;
    let alice = gateway
        .session(
            "alice",
            User::new(true, true, ProtocolVersion::V_2026_07_28),
        )
        .await;
    let merge = request(MERGE, merge_21());
    let (before, state) = asked(&alice, merge.clone()).await;

    let renamed = client_call_confirmed(
        &gateway,
        "bitbucket_update_pull_request",
        json!({"repo_slug": "api", "pull_request_id": 21, "title": "Renamed meanwhile"}),
    )
    .await;
    assert_eq!(ok("update", &renamed)["title"], "Renamed meanwhile");

    let (after, fresh) = asked(&alice, answered(&merge, "accept", Some(&state))).await;
    assert_ne!(before, after);
    assert!(after.contains("title: \"Renamed meanwhile\""), "{after}");
    assert_eq!(posts(&sim, "/merge"), 0);
    let merged = complete(&alice, answered(&merge, "accept", Some(&fresh))).await;
    assert_eq!(ok("merge", &merged)["state"], "MERGED");
    assert_eq!(posts(&sim, "/merge"), 1);
    alice.cancel().await.unwrap();
}

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

// --- clients that cannot ask: the confirm page ---------------------------------------------------

/// Follows a confirm link as a browser would: the page (which must name `user`), then its button.
/// Returns the page and the answer to the POST.
async fn approve_on_page(link: &str, user: &str) -> (String, reqwest::Response) {
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let page = http.get(link).send().await.unwrap();
    assert_eq!(page.status(), 200, "confirm page at {link}");
    let csp = page.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_string();
    assert!(
        csp.contains("default-src 'none'") && csp.contains("form-action 'self'"),
        "{csp}"
    );
    let cookie = page
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().split(';').next().unwrap().to_string())
        .collect::<Vec<_>>()
        .join("; ");
    let html = page.text().await.unwrap();
    assert!(html.contains(&format!("<strong>{user}</strong>")), "{html}");
    let action = form_action(&html, link);
    let fields = hidden_fields(&html);
    // Without the cookie the page set (a cross-site form), nothing is approved.
    let forged = http.post(&action).form(&fields).send().await.unwrap();
    assert_eq!(forged.status(), 403);
    let posted = http
        .post(&action)
        .header("cookie", cookie)
        .form(&fields)
        .send()
        .await
        .unwrap();
    (html, posted)
}

/// A client without elicitation (even passing `confirm: true`) gets a link; the page names the user
/// and states the summary; after the approval one retry with the same arguments runs, once; the next
/// finds the PR merged and is refused without a link (a repeatable call's next retry needs a new
/// confirmation: `a_used_answer_or_approval_is_not_used_again`); another user's identical call cannot
/// use the approval.
#[tokio::test(flavor = "multi_thread")]
async fn a_client_that_cannot_ask_gets_a_confirm_page() {
    for mode in [Mode::Stdio, Mode::Stateful, Mode::Stateless] {
        let sim = Sim::start().await.unwrap();
        let gateway = Gateway::start(&sim, mode, "").await;
        let alice = gateway
            .session(
                "alice",
                User::new(true, false, ProtocolVersion::V_2025_11_25),
            )
            .await;
        let mut forced = merge_21();
        forced["confirm"] = json!(true);
        let refused = complete(&alice, request(MERGE, forced.clone())).await;
        assert!(is_error(&refused));
        let message = text(&refused);
        assert!(
            message.contains("Merge PR #21 from `")
                && message.contains("call again with the same arguments"),
            "{message}"
        );
        let link = link_in(&message);
        assert!(
            link.starts_with(&format!("{}/confirm?ticket=", gateway.setup.public_url())),
            "{link}"
        );
        assert_eq!(posts(&sim, "/merge"), 0, "{mode:?}");

        let (page, approved) = approve_on_page(&link, "alice").await;
        assert!(page.contains("Merge PR #21 from"), "{page}");
        assert_eq!(approved.status(), 200);
        let again = reqwest::Client::new().get(&link).send().await.unwrap();
        assert_eq!(again.status(), 410, "the link works once");

        if mode != Mode::Stdio {
            // Bob's identical call is his own: it gets a link of its own, and nothing runs.
            let bob = gateway
                .session("bob", User::new(true, false, ProtocolVersion::V_2025_11_25))
                .await;
            let bobs = complete(&bob, request(MERGE, forced.clone())).await;
            assert!(text(&bobs).contains("/confirm?ticket="), "{}", text(&bobs));
            assert_eq!(
                posts(&sim, "/merge"),
                0,
                "{mode:?}: bob used alice's approval"
            );
            bob.cancel().await.unwrap();
        }

        // Other arguments are not what alice approved.
        let other = complete(
            &alice,
            request(
                MERGE,
                json!({"repo_slug": "api", "pull_request_id": 21, "strategy": "merge_commit"}),
            ),
        )
        .await;
        assert!(
            text(&other).contains("/confirm?ticket="),
            "{}",
            text(&other)
        );
        assert_eq!(posts(&sim, "/merge"), 0);

        let merged = complete(&alice, request(MERGE, forced.clone())).await;
        assert_eq!(ok("merge", &merged)["state"], "MERGED", "{mode:?}");
        assert_eq!(posts(&sim, "/merge"), 1);
        let second = complete(&alice, request(MERGE, forced)).await;
        assert!(
            is_error(&second)
                && text(&second).contains("state is MERGED")
                && !text(&second).contains("/confirm?ticket="),
            "{mode:?}: a second retry finds the PR merged: {}",
            text(&second)
        );
        assert_eq!(posts(&sim, "/merge"), 1, "{mode:?}: merged exactly once");
        let ticket = link.split("ticket=").nth(1).unwrap().to_string();
        assert_no_secrets(&sim, &[ticket], &[("the logs", &gateway.logs())]);
        alice.cancel().await.unwrap();
    }
}

/// An answer or an approval counts once even where the same call could run again (a run, confirmed
/// through `tools.confirm`, whose target does not change): the answered request replayed is asked
/// again, and the retry after the one a page approval let through gets a new link. Each ran once.
#[tokio::test(flavor = "multi_thread")]
async fn a_used_answer_or_approval_is_not_used_again() {
    const RUN: &str = "buddy_run_pipeline";
    let runs = |sim: &Sim| posts(sim, "/executions");
    for mode in [Mode::Stdio, Mode::Stateful, Mode::Stateless] {
        let sim = Sim::start().await.unwrap();
        let gateway =
            Gateway::start(&sim, mode, "[tools]\nconfirm = [\"buddy_run_pipeline\"]").await;
        let arguments = json!({"project": "web", "pipeline": 1, "branch": "main"});

        let modern = gateway
            .session(
                "alice",
                User::new(true, true, ProtocolVersion::V_2026_07_28),
            )
            .await;
        let run = request(RUN, arguments.clone());
        let (_, state) = asked(&modern, run.clone()).await;
        let answer = answered(&run, "accept", Some(&state));
        ok(RUN, &complete(&modern, answer.clone()).await);
        asked(&modern, answer).await;
        assert_eq!(runs(&sim), 1, "{mode:?}: the answer ran one run");
        modern.cancel().await.unwrap();

        let plain = gateway
            .session(
                "alice",
                User::new(true, false, ProtocolVersion::V_2025_11_25),
            )
            .await;
        let first = complete(&plain, request(RUN, arguments.clone())).await;
        let (_, approved) = approve_on_page(&link_in(&text(&first)), "alice").await;
        assert_eq!(approved.status(), 200);
        ok(
            RUN,
            &complete(&plain, request(RUN, arguments.clone())).await,
        );
        let second = complete(&plain, request(RUN, arguments)).await;
        assert!(
            is_error(&second) && text(&second).contains("/confirm?ticket="),
            "{mode:?}: the next retry needs a new confirmation: {}",
            text(&second)
        );
        assert_eq!(runs(&sim), 2, "{mode:?}: the approval ran one run");
        plain.cancel().await.unwrap();
    }
}

/// stdio without `public_url`: no page can be served, and the error says so and names the fixes.
#[tokio::test(flavor = "multi_thread")]
async fn without_a_public_url_the_error_names_the_fixes() {
    let sim = Sim::start().await.unwrap();
    let client = in_process_for(&sim, "").await;
    let arguments = json!({"project": "web", "pipeline": "build-and-test", "execution_id": 5127, "confirm": true});
    let refused = call(&client, "buddy_stop_execution", arguments).await;
    assert!(is_error(&refused));
    let message = text(&refused);
    for needed in [
        "\"Stop run #5127 (INPROGRESS) of pipeline build-and-test on `",
        "public_url",
        "form elicitation",
        "confirm_destructive = false",
    ] {
        assert!(message.contains(needed), "{needed}: {message}");
    }
    assert!(!message.contains("confirm: true"), "{message}");
    assert!(
        !sim.requests().iter().any(|r| r.method == "PATCH"),
        "nothing reached Buddy"
    );
    client.cancel().await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn what_is_confirmed_is_configurable() {
    let sim = Sim::start().await.unwrap();
    let gateway = Gateway::start(
        &sim,
        Mode::Stdio,
        "\n[tools]\nconfirm_destructive = false\nconfirm = [\"buddy_run_pipeline\"]",
    )
    .await;
    let user = User::new(true, true, ProtocolVersion::V_2025_11_25);
    let client = gateway.session("alice", user.clone()).await;
    let merged = complete(&client, request(MERGE, merge_21())).await;
    assert_eq!(ok("merge", &merged)["state"], "MERGED");
    assert!(
        user.asked().is_empty(),
        "merge not confirmed: {:?}",
        user.asked()
    );
    let run = complete(
        &client,
        request(
            "buddy_run_pipeline",
            json!({"project": "web", "pipeline": "build-and-test"}),
        ),
    )
    .await;
    ok("run", &run);
    assert_eq!(
        user.asked(),
        vec![
            "Run pipeline build-and-test in acme/web on `its default branch`. Go ahead?"
                .to_string()
        ]
    );
    client.cancel().await.unwrap();
}
