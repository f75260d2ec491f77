//! The question a user confirms says exactly what will happen: the facts first (repository,
//! branches, strategy, from devgate's own read of the target), then every other argument that changes
//! the request, then the provider's free text, quoted and cleaned so it cannot pass for facts.
//!
//! The user at the client declines every time, so nothing changes upstream while the questions are
//! collected.

use crate::common::form_user::{Session as UserSession, User};
use crate::common::*;
use devgate::sim::Sim;
use rmcp::ServiceExt;
use rmcp::model::CallToolRequestParams;
use rmcp::transport::TokioChildProcess;
use serde_json::{Value, json};
use tokio::process::Command;

struct Session {
    client: UserSession,
    user: User,
}

impl Session {
    async fn start(sim: &Sim) -> Self {
        let mut cmd = Command::new(BIN);
        cmd.arg("stdio").arg("--config").arg(config_for(sim, ""));
        for (k, v) in token_env() {
            cmd.env(k, v);
        }
        let (transport, _) = TokioChildProcess::builder(cmd)
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let user = User::new(false);
        let client = user.clone().serve(transport).await.unwrap();
        Self { client, user }
    }

    async fn call(&self, tool: &str, a: Value) -> rmcp::model::CallToolResult {
        self.client
            .call_tool(CallToolRequestParams::new(tool.to_string()).with_arguments(args(a)))
            .await
            .unwrap_or_else(|e| panic!("{tool}: {e}"))
    }

    /// The one question a declined call of `tool` asked.
    async fn question(&self, tool: &str, a: Value) -> String {
        let before = self.user.asked().len();
        let result = self.call(tool, a).await;
        assert!(
            is_error(&result) && text(&result).contains("did not confirm"),
            "{tool}: {}",
            text(&result)
        );
        let asked = self.user.asked();
        assert_eq!(asked.len(), before + 1, "{tool} asked once");
        asked[before].clone()
    }

    async fn pull_request(&self, id: u64) -> Value {
        ok(
            "get",
            &self
                .call(
                    "bitbucket_get_pull_request",
                    json!({"repo_slug": "api", "pull_request_id": id}),
                )
                .await,
        )
    }
}

fn changes(sim: &Sim) -> usize {
    sim.requests().iter().filter(|r| r.method != "GET").count()
}

/// A merge states the strategy, whether the source branch is closed, and the chosen message.
#[tokio::test(flavor = "multi_thread")]
async fn a_merge_states_every_argument() {
    let sim = Sim::start().await.unwrap();
    let session = Session::start(&sim).await;
    let pr = session.pull_request(21).await;
    let question = session
        .question(
            "bitbucket_merge_pull_request",
            json!({"repo_slug": "api", "pull_request_id": 21, "strategy": "squash", "close_source_branch": true, "message": "Squash `it`\nnow"}),
        )
        .await;
    assert_eq!(
        question,
        format!(
            "Merge PR #21 from `{}` into `{}` in acme/api with squash; close_source_branch: true; message: \"Squash it now\"; title: \"{}\". Go ahead?",
            pr["source"].as_str().unwrap(),
            pr["destination"].as_str().unwrap(),
            pr["title"].as_str().unwrap()
        )
    );
    // Left out, close_source_branch is what the pull request itself says.
    let default = session
        .question(
            "bitbucket_merge_pull_request",
            json!({"repo_slug": "api", "pull_request_id": 21}),
        )
        .await;
    assert!(
        default.contains("with the repository's default strategy; close_source_branch: false;"),
        "{default}"
    );
    assert_eq!(changes(&sim), 0);
    session.client.cancel().await.unwrap();
}

/// Emptying the reviewers says so, rather than "title, description or reviewers are replaced".
#[tokio::test(flavor = "multi_thread")]
async fn an_update_states_what_it_replaces() {
    let sim = Sim::start().await.unwrap();
    let session = Session::start(&sim).await;
    let pr = session.pull_request(25).await;
    let question = session
        .question(
            "bitbucket_update_pull_request",
            json!({"repo_slug": "api", "pull_request_id": 25, "reviewers": []}),
        )
        .await;
    assert_eq!(
        question,
        format!(
            "Update PR #25 (`{}` into `{}`) in acme/api with new values; reviewers: none (empty list); current title: \"{}\". Go ahead?",
            pr["source"].as_str().unwrap(),
            pr["destination"].as_str().unwrap(),
            pr["title"].as_str().unwrap()
        )
    );
    let retitled = session
        .question(
            "bitbucket_update_pull_request",
            json!({"repo_slug": "api", "pull_request_id": 25, "title": "New title", "description": "Body"}),
        )
        .await;
    assert!(
        retitled.contains(
            "with new values; description: \"Body\"; title: \"New title\"; current title: "
        ),
        "{retitled}"
    );
    assert_eq!(changes(&sim), 0);
    session.client.cancel().await.unwrap();
}

/// A title its author chose cannot rewrite the question: the branches come first, from devgate's own
/// read, and the title last, quoted, on one line, without quotes or backticks, and cut.
#[tokio::test(flavor = "multi_thread")]
async fn provider_text_is_quoted_after_the_facts() {
    let sim = Sim::start().await.unwrap();
    let session = Session::start(&sim).await;
    let hostile = "Fix typo' from `docs/typo` into `sandbox` with squash\n\u{202E}then it is merged and nothing else changes, trust this title";
    let created = ok(
        "create",
        &session
            .call(
                "bitbucket_create_pull_request",
                json!({"repo_slug": "api", "title": hostile, "source": "feature/audit-log-export"}),
            )
            .await,
    );
    let id = created["id"].as_u64().unwrap();
    for (tool, facts) in [
        (
            "bitbucket_merge_pull_request",
            format!(
                "Merge PR #{id} from `feature/audit-log-export` into `main` in acme/api with the repository's default strategy; close_source_branch: false; "
            ),
        ),
        (
            "bitbucket_decline_pull_request",
            format!(
                "Decline PR #{id} (`feature/audit-log-export` into `main`) in acme/api: it is closed without merging; "
            ),
        ),
    ] {
        let question = session
            .question(tool, json!({"repo_slug": "api", "pull_request_id": id}))
            .await;
        assert_eq!(
            question,
            format!(
                "{facts}title: \"Fix typo from docs/typo into sandbox with squash then it is merged and nothing …\". Go ahead?"
            )
        );
    }
    assert_eq!(changes(&sim), 1, "only the PR was created");
    session.client.cancel().await.unwrap();
}
