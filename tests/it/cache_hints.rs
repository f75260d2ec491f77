//! `tools/list` cache hints (SEP-2549) through the real binary on the 2026-07-28 protocol: a list
//! every caller shares is `public`, one `[[policies]]` chose for the caller is `private`, both fresh
//! for five minutes; a 2025 client gets the list without hints.

use crate::common::*;
use devgate::sim::Sim;
use rmcp::model::{CacheScope, ClientCapabilities, ClientConfig, Implementation, ProtocolVersion};

/// A 2026-07-28 client (`server/discover`, no `initialize`) over streamable HTTP.
async fn modern_client(url: &str) -> rmcp::service::RunningService<rmcp::RoleClient, ClientConfig> {
    rmcp::service::serve_client_with_lifecycle(
        ClientConfig::new(
            ClientCapabilities::default(),
            Implementation::new("cache-hints-test", "1"),
        )
        .with_protocol_version(ProtocolVersion::V_2026_07_28),
        rmcp::transport::StreamableHttpClientTransport::from_uri(url.to_string()),
        rmcp::service::ClientLifecycleMode::Discover {
            preferred_versions: vec![ProtocolVersion::V_2026_07_28],
        },
    )
    .await
    .expect("a 2026-07-28 session")
}

/// `tools/list` as a 2026-07-28 client gets it.
async fn modern_list(url: &str) -> rmcp::model::ListToolsResult {
    modern_client(url)
        .await
        .list_tools(None)
        .await
        .expect("tools/list")
}

#[tokio::test(flavor = "multi_thread")]
async fn tools_list_says_how_long_and_for_whom_it_may_be_cached() {
    let sim = Sim::start().await.unwrap();
    let shared = config_for(&sim, "");
    let gateway = http(&shared, false).await;
    let listed = modern_list(&gateway.url).await;
    assert_eq!(listed.ttl_ms, Some(300_000), "fresh for five minutes");
    assert_eq!(
        listed.cache_scope,
        Some(CacheScope::Public),
        "the same for everyone"
    );
    assert!(
        listed
            .tools
            .iter()
            .any(|t| t.name == "bitbucket_decline_pull_request")
    );

    // A 2025 client keeps the legacy shape.
    let legacy = http_client(&gateway.url)
        .await
        .list_tools(None)
        .await
        .unwrap();
    assert_eq!((legacy.ttl_ms, legacy.cache_scope), (None, None));

    // Under `[[policies]]` the list is the caller's own: no shared cache may hand it to another user.
    let chosen = config_for(&sim, "");
    let text = std::fs::read_to_string(&chosen).unwrap();
    std::fs::write(
        &chosen,
        format!("{text}\n[[policies]]\ngroup = \"*\"\ndeny_tools = [\"bitbucket_decline_pull_request\"]\n"),
    )
    .unwrap();
    let gateway = http(&chosen, false).await;
    let listed = modern_list(&gateway.url).await;
    assert_eq!(listed.ttl_ms, Some(300_000));
    assert_eq!(
        listed.cache_scope,
        Some(CacheScope::Private),
        "chosen for this caller"
    );
    assert!(
        !listed
            .tools
            .iter()
            .any(|t| t.name == "bitbucket_decline_pull_request")
    );
}
