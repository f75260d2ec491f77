//! Cursors are MAC'd: an agent can only hand back a next page devgate issued to the same user, for the
//! same tool and arguments. A forged, borrowed, re-targeted or altered cursor is refused with a message
//! saying what to do, before anything goes upstream; instances sharing a store accept each other's.

use crate::common::*;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use devgate::sim::{Sim, lock};
use serde_json::{Value, json};

/// A cursor in devgate's former, unsigned format (`base64url(tool \n relative URL)`), as an agent that
/// decoded one could write it.
fn unsigned(tool: &str, relative_url: &str) -> String {
    URL_SAFE_NO_PAD.encode(format!("{tool}\n{relative_url}"))
}

/// `arguments` with `cursor` added.
fn with_cursor(arguments: &Value, cursor: &str) -> Value {
    let mut arguments = arguments.clone();
    arguments["cursor"] = json!(cursor);
    arguments
}

fn assert_refused(what: &str, tool: &str, result: &rmcp::model::CallToolResult) {
    assert!(is_error(result), "{what}: accepted: {}", text(result));
    let message = text(result);
    assert!(
        message.starts_with(&format!("{tool}: cursor: "))
            && message.contains("pass next_cursor exactly as returned, with the same arguments"),
        "{what}: {message}"
    );
}

/// The report's reproduction: a cursor crafted for the diffstat tool listed the repository's pipelines
/// (outside its toolset). Now it is refused and nothing reaches the provider; genuine diffstat pages,
/// which Bitbucket serves from the redirected `/diffstat/{spec}` resource, still page through.
#[tokio::test(flavor = "multi_thread")]
async fn a_crafted_cursor_reaches_nothing() {
    let sim = Sim::start().await.unwrap();
    let (client, stderr) = stdio(&config_for(&sim, "")).await;
    let tool = "bitbucket_get_pull_request_diffstat";
    let arguments = json!({"repo_slug": "api", "pull_request_id": 1});

    for crafted in [
        unsigned(tool, "/repositories/acme/api/pipelines?pagelen=5"),
        unsigned(tool, "/repositories/acme/api/refs/branches"),
    ] {
        sim.state.clear_requests();
        let result = call(&client, tool, with_cursor(&arguments, &crafted)).await;
        assert_refused("crafted", tool, &result);
        assert!(
            sim.requests().is_empty(),
            "nothing upstream: {:?}",
            sim.requests()
        );
    }

    // A genuine cursor with its URL swapped for another resource, keeping the tag: refused too.
    let first = ok(
        tool,
        &call(
            &client,
            tool,
            json!({"repo_slug": "api", "pull_request_id": 26, "limit": 1}),
        )
        .await,
    );
    let genuine = first["next_cursor"].as_str().expect("several files");
    let mut raw = URL_SAFE_NO_PAD.decode(genuine).unwrap();
    let url_at = raw
        .windows(14)
        .position(|w| w == b"/repositories/")
        .expect("a cursor carries its URL");
    raw.truncate(url_at);
    raw.extend_from_slice(b"/repositories/acme/api/pipelines?pagelen=5");
    sim.state.clear_requests();
    let swapped = call(
        &client,
        tool,
        json!({"repo_slug": "api", "pull_request_id": 26, "limit": 1, "cursor": URL_SAFE_NO_PAD.encode(&raw)}),
    )
    .await;
    assert_refused("swapped URL", tool, &swapped);
    assert!(sim.requests().is_empty(), "{:?}", sim.requests());

    // Normal paging through the redirect still works, to the end.
    let all = ok(
        tool,
        &call(
            &client,
            tool,
            json!({"repo_slug": "api", "pull_request_id": 26}),
        )
        .await,
    );
    let total = all["items"].as_array().unwrap().len();
    assert!(total >= 2, "a PR with several files: {all}");
    let mut paged = first["items"].as_array().unwrap().clone();
    let mut cursor = first["next_cursor"].clone();
    while let Some(c) = cursor.as_str() {
        let page = ok(
            tool,
            &call(
                &client,
                tool,
                json!({"repo_slug": "api", "pull_request_id": 26, "limit": 1, "cursor": c}),
            )
            .await,
        );
        paged.extend(page["items"].as_array().unwrap().iter().cloned());
        cursor = page.get("next_cursor").cloned().unwrap_or(Value::Null);
        assert!(paged.len() <= total, "paging ends");
    }
    assert_eq!(&paged, all["items"].as_array().unwrap());
    client.cancel().await.unwrap();
    assert!(!stderr.text().contains("panicked"), "{}", stderr.text());
}

/// Two users on one gateway, and a second stateless instance on the same store: a cursor works for the
/// user, tool and arguments it was issued for, on either instance, and for nothing else.
#[tokio::test(flavor = "multi_thread")]
async fn cursors_are_bound_to_user_tool_and_arguments_across_instances() {
    let sim = Sim::start().await.unwrap();
    let c = connected_users(
        &sim,
        &[("alice", "ann", "mike"), ("bob", "ben", "nina")],
        "",
    )
    .await;
    let (alice, bob) = (&c.clients[0], &c.clients[1]);
    let tool = "bitbucket_list_pull_requests";
    let arguments = json!({"repo_slug": "api", "limit": 2});
    let first = ok(tool, &call(alice, tool, arguments.clone()).await);
    let cursor = first["next_cursor"]
        .as_str()
        .expect("more than one page")
        .to_string();

    let mut tampered = URL_SAFE_NO_PAD.decode(&cursor).unwrap();
    let at = tampered
        .windows(6)
        .position(|w| w == b"page=2")
        .expect("the second page's URL");
    tampered[at + 5] = b'3';
    let tampered = URL_SAFE_NO_PAD.encode(&tampered);
    let refused = [
        (
            "another user's cursor",
            bob,
            tool,
            with_cursor(&arguments, &cursor),
        ),
        (
            "other arguments (state)",
            alice,
            tool,
            json!({"repo_slug": "api", "limit": 2, "state": ["MERGED"], "cursor": cursor}),
        ),
        (
            "other arguments (sort)",
            alice,
            tool,
            json!({"repo_slug": "api", "limit": 2, "sort": "id", "cursor": cursor}),
        ),
        (
            "another tool",
            alice,
            "bitbucket_list_branches",
            with_cursor(&arguments, &cursor),
        ),
        (
            "a tampered byte",
            alice,
            tool,
            with_cursor(&arguments, &tampered),
        ),
    ];
    // Every case is tried, and all that got through are reported together.
    let mut accepted = Vec::new();
    for (what, client, tool, arguments) in refused {
        sim.state.clear_requests();
        let result = call(client, tool, arguments).await;
        if !is_error(&result) {
            accepted.push(what);
            continue;
        }
        assert_refused(what, tool, &result);
        assert!(
            sim.requests().is_empty(),
            "{what}: nothing upstream: {:?}",
            sim.requests()
        );
    }
    assert!(accepted.is_empty(), "accepted: {accepted:?}");

    // The same cursor, as issued, on this instance and on a second, stateless one sharing the store.
    let second = oauth_http_elsewhere(&c.setup, &["--stateless"]).await;
    let alice_there = http_client_with_key(&second.url, &c.keys[0]).await;
    let here = ok(
        tool,
        &call(alice, tool, with_cursor(&arguments, &cursor)).await,
    );
    let there = ok(
        tool,
        &call(
            &alice_there,
            tool,
            // A different page size is not part of the binding (the cursor keeps its own).
            json!({"repo_slug": "api", "limit": 5, "cursor": cursor}),
        )
        .await,
    );
    assert_eq!(here["items"], there["items"]);
    assert_eq!(here["items"].as_array().unwrap().len(), 2);

    // Alternating instances, the pages add up to every open pull request once.
    let open = lock(&sim.state.bitbucket)
        .repos
        .iter()
        .find(|r| r.workspace == "acme" && r.slug == "api")
        .map(|r| r.pull_requests.iter().filter(|p| p.state == "OPEN").count())
        .unwrap();
    let mut ids: Vec<i64> = first["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["id"].as_i64().unwrap())
        .collect();
    let mut next = first["next_cursor"].clone();
    for turn in 0.. {
        let Some(cursor) = next.as_str() else { break };
        assert!(turn < 50, "paging ends");
        let client = if turn % 2 == 0 { &alice_there } else { alice };
        let page = ok(
            tool,
            &call(client, tool, with_cursor(&arguments, cursor)).await,
        );
        ids.extend(
            page["items"]
                .as_array()
                .unwrap()
                .iter()
                .map(|p| p["id"].as_i64().unwrap()),
        );
        next = page.get("next_cursor").cloned().unwrap_or(Value::Null);
    }
    let listed = ids.len();
    ids.sort();
    ids.dedup();
    assert_eq!((listed, ids.len()), (open, open), "each open PR once");
    alice_there.cancel().await.unwrap();
}
