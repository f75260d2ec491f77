//! devgate killed (SIGKILL) in the middle of a refresh, then restarted: the connection still works or
//! asks to reconnect, and the stored row is whole (it opens, and its version moved only with a
//! complete token change).

use crate::common::*;
use devgate::sim::{Fault, Sim, Which};
use devgate::vault::Store;
use serde_json::json;

async fn crash_during_refresh(provider: Which, token_path: &str, tool: &str) -> (bool, String) {
    let sim = Sim::start().await.unwrap();
    sim.state.set_token_lifetime(provider, 30);
    let mut c = connected_users(
        &sim,
        &[("alice", "ann", "mike")],
        "[oauth]\nrefresh_lease_secs = 2",
    )
    .await;
    sim.state.set_token_lifetime(provider, 3600);
    let store_url = format!("sqlite://{}", c.setup.dir.join("devgate.db").display());
    let before = {
        let store = devgate::vault::sqlite::SqliteStore::open(&store_url)
            .await
            .unwrap();
        let p = if provider == Which::Buddy {
            "buddy"
        } else {
            "bitbucket"
        };
        store.connection("alice", p).await.unwrap().unwrap()
    };

    let mut hold = Fault::on(provider, token_path, 1);
    hold.hold = true;
    sim.state.add_fault(hold);
    let client = c.clients.remove(0);
    let tool_name = tool.to_string();
    let pending = tokio::spawn(async move {
        client
            .call_tool(
                rmcp::model::CallToolRequestParams::new(tool_name).with_arguments(args(json!({}))),
            )
            .await
    });
    eventually("the refresh reached the provider", || {
        sim.state.held_requests() == 1
    })
    .await;
    c.gateway.crash().await;
    sim.state.release_held();
    // The call died with the process; its client is abandoned.
    pending.abort();

    let gateway = oauth_http(&c.setup, &[]).await;
    let client = http_client_with_key(&gateway.url, &c.keys[0]).await;
    let result = call(&client, tool, json!({})).await;
    let store = devgate::vault::sqlite::SqliteStore::open(&store_url)
        .await
        .unwrap();
    let p = if provider == Which::Buddy {
        "buddy"
    } else {
        "bitbucket"
    };
    let after = store.connection("alice", p).await.unwrap().unwrap();
    // The row is whole: it still opens with the key, through devgate's own path (the call above).
    assert!(after.version >= before.version);
    client.cancel().await.unwrap();
    (!is_error(&result), text(&result))
}

#[tokio::test(flavor = "multi_thread")]
async fn a_crash_mid_refresh_keeps_a_non_rotating_connection_working() {
    let (worked, message) =
        crash_during_refresh(Which::Buddy, "/oauth2/token", "buddy_get_user").await;
    assert!(
        worked,
        "Buddy's refresh token does not rotate: the next refresh works ({message})"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_crash_mid_refresh_with_rotating_tokens_works_or_asks_to_reconnect() {
    let (worked, message) = crash_during_refresh(
        Which::Bitbucket,
        "/site/oauth2/access_token",
        "bitbucket_get_current_user",
    )
    .await;
    assert!(
        worked || message.contains("/connect/bitbucket?ticket="),
        "{message}"
    );
}
