//! Confirmation of destructive calls: the user is asked with a form elicitation that says exactly what
//! will happen; declined means nothing reaches the provider; a client that cannot ask gets an `isError`
//! saying how to proceed; a 2026-07-28 client is asked through `input_required`.

mod common;

use std::sync::{Arc, Mutex};

use common::*;
use devgate::sim::Sim;
use rmcp::model::{
    CallToolRequestParams, CallToolResponse, CallToolResult, ClientCapabilities, ClientConfig,
    ElicitRequestParams, ElicitResult, ElicitationAction, ElicitationCapability,
    FormElicitationCapability, Implementation, InputRequest, ProtocolVersion,
};
use rmcp::service::{RequestContext, RunningService};
use rmcp::transport::TokioChildProcess;
use rmcp::{ClientHandler, ErrorData, RoleClient, ServiceExt};
use serde_json::{Value, json};
use tokio::process::Command;

/// A client whose user answers every confirmation the same way, and which keeps what it was asked.
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

fn devgate(sim: &Sim, extra: &str) -> Command {
    let config = config_for(sim, extra);
    let mut cmd = Command::new(BIN);
    cmd.arg("stdio").arg("--config").arg(&config);
    for (k, v) in token_env() {
        cmd.env(k, v);
    }
    cmd
}

async fn connect(sim: &Sim, user: &User, extra: &str) -> RunningService<RoleClient, User> {
    user.clone()
        .serve(TokioChildProcess::new(devgate(sim, extra)).unwrap())
        .await
        .unwrap()
}

async fn call_as(
    client: &RunningService<RoleClient, User>,
    tool: &str,
    a: Value,
) -> CallToolResult {
    client
        .call_tool(CallToolRequestParams::new(tool.to_string()).with_arguments(args(a)))
        .await
        .unwrap_or_else(|e| panic!("{tool}: {e}"))
}

fn posts(sim: &Sim, path_end: &str) -> usize {
    sim.requests()
        .iter()
        .filter(|r| r.method == "POST" && r.path.ends_with(path_end))
        .count()
}

/// The summary the user should see for merging PR 21 with squash, from the PR itself.
async fn merge_summary(client: &RunningService<RoleClient, User>) -> String {
    let pr = call_as(
        client,
        "bitbucket_get_pull_request",
        json!({"repo_slug": "api", "pull_request_id": 21}),
    )
    .await;
    let pr = pr.structured_content.unwrap();
    format!(
        "Merge PR #21 '{}' from `{}` into `{}` in acme/api with squash. Go ahead?",
        pr["title"].as_str().unwrap(),
        pr["source"].as_str().unwrap(),
        pr["destination"].as_str().unwrap()
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn an_accepted_confirmation_sends_the_call() {
    let sim = Sim::start().await.unwrap();
    let user = User::new(true, true, ProtocolVersion::V_2025_11_25);
    let client = connect(&sim, &user, "").await;
    let expected = merge_summary(&client).await;
    let merged = call_as(
        &client,
        "bitbucket_merge_pull_request",
        json!({"repo_slug": "api", "pull_request_id": 21, "strategy": "squash"}),
    )
    .await;
    assert_eq!(ok("merge", &merged)["state"], "MERGED");
    assert_eq!(
        user.asked(),
        vec![expected],
        "asked once, with exactly what will happen"
    );
    assert_eq!(posts(&sim, "/pullrequests/21/merge"), 1);
    client.cancel().await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_declined_confirmation_sends_nothing() {
    let sim = Sim::start().await.unwrap();
    let user = User::new(false, true, ProtocolVersion::V_2025_11_25);
    let client = connect(&sim, &user, "").await;
    // Even `confirm: true` from the agent does not replace asking a client that can ask.
    let declined = call_as(
        &client,
        "bitbucket_decline_pull_request",
        json!({"repo_slug": "api", "pull_request_id": 20, "confirm": true}),
    )
    .await;
    assert!(is_error(&declined));
    assert!(
        text(&declined).contains("did not confirm"),
        "{}",
        text(&declined)
    );
    assert!(
        user.asked()[0].starts_with("Decline PR #20 '"),
        "{:?}",
        user.asked()
    );
    assert_eq!(posts(&sim, "/decline"), 0, "nothing reached Bitbucket");
    client.cancel().await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_client_that_cannot_ask_is_told_how_to_proceed() {
    let sim = Sim::start().await.unwrap();
    let user = User::new(true, false, ProtocolVersion::V_2025_11_25);
    let client = connect(&sim, &user, "").await;
    let arguments = json!({"project": "web", "pipeline": "build-and-test", "execution_id": 5127});
    let refused = call_as(&client, "buddy_stop_execution", arguments.clone()).await;
    assert!(is_error(&refused));
    let message = text(&refused);
    assert!(
        message.contains("\"Stop run #5127 (INPROGRESS) of pipeline build-and-test on `")
            && message.contains("`confirm: true`")
            && message.contains("confirm_destructive"),
        "{message}"
    );
    assert!(
        !sim.requests().iter().any(|r| r.method == "PATCH"),
        "nothing reached Buddy"
    );
    let mut confirmed = arguments;
    confirmed["confirm"] = json!(true);
    let stopped = call_as(&client, "buddy_stop_execution", confirmed).await;
    assert_eq!(ok("stop", &stopped)["status"], "TERMINATED");
    assert!(user.asked().is_empty());
    client.cancel().await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_2026_client_is_asked_through_input_required() {
    let sim = Sim::start().await.unwrap();
    let user = User::new(true, true, ProtocolVersion::V_2026_07_28);
    let client = rmcp::service::serve_client_with_lifecycle(
        user.clone(),
        TokioChildProcess::new(devgate(&sim, "")).unwrap(),
        rmcp::service::ClientLifecycleMode::Discover {
            preferred_versions: vec![ProtocolVersion::V_2026_07_28],
        },
    )
    .await
    .unwrap();
    let request = CallToolRequestParams::new("bitbucket_merge_pull_request")
        .with_arguments(args(json!({"repo_slug": "api", "pull_request_id": 21})));
    let response = client.call_tool_once(request.clone()).await.unwrap();
    let CallToolResponse::InputRequired(required) = response else {
        panic!("expected input_required, got {response:?}");
    };
    let requests = required.input_requests.expect("input requests");
    let Some(InputRequest::Elicitation(elicit)) = requests.get("confirm") else {
        panic!("expected a confirmation: {requests:?}");
    };
    let ElicitRequestParams::FormElicitationParams { message, .. } = &elicit.params else {
        panic!("expected a form");
    };
    assert!(
        message.starts_with("Merge PR #21 '")
            && message.contains("with the repository's default strategy"),
        "{message}"
    );
    assert_eq!(posts(&sim, "/merge"), 0);

    let mut declined = request.clone();
    declined.input_responses = Some([("confirm".to_string(), json!({"action": "decline"}))].into());
    let CallToolResponse::Complete(result) = client.call_tool_once(declined).await.unwrap() else {
        panic!("a declined confirmation completes the call");
    };
    assert!(is_error(&result));
    assert_eq!(posts(&sim, "/merge"), 0);

    let mut accepted = request;
    accepted.input_responses = Some([("confirm".to_string(), json!({"action": "accept"}))].into());
    let CallToolResponse::Complete(result) = client.call_tool_once(accepted).await.unwrap() else {
        panic!("an accepted confirmation completes the call");
    };
    assert_eq!(ok("merge", &result)["state"], "MERGED");
    assert_eq!(posts(&sim, "/merge"), 1);
    client.cancel().await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn what_is_confirmed_is_configurable() {
    let sim = Sim::start().await.unwrap();
    let user = User::new(true, true, ProtocolVersion::V_2025_11_25);
    let client = connect(
        &sim,
        &user,
        "\n[tools]\nconfirm_destructive = false\nconfirm = [\"buddy_run_pipeline\"]",
    )
    .await;
    let merged = call_as(
        &client,
        "bitbucket_merge_pull_request",
        json!({"repo_slug": "api", "pull_request_id": 21}),
    )
    .await;
    assert_eq!(ok("merge", &merged)["state"], "MERGED");
    assert!(
        user.asked().is_empty(),
        "merge not confirmed: {:?}",
        user.asked()
    );
    let run = call_as(
        &client,
        "buddy_run_pipeline",
        json!({"project": "web", "pipeline": "build-and-test"}),
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
