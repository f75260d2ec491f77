//! `tools/list` as committed snapshots, one JSON file per catalog under `tests/toolsnaps/` (and
//! `devgate.json` for the built-in tools): every change to a tool's name, description, annotations or
//! input schema shows in review as a diff of those files. `UPDATE_SNAPSHOTS=1` rewrites them.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::common::*;
use devgate::catalog::Catalog;

fn snapshot_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/toolsnaps")
}

/// The tools devgate offers when users connect both providers with OAuth (so the built-in
/// `devgate_connections` is offered too) and every scope is configured, by the catalog declaring them.
async fn listed_by_catalog() -> BTreeMap<String, Vec<rmcp::model::Tool>> {
    // Fixed bases: nothing is called, and the snapshot must not depend on a port.
    let store = temp_path("toolsnaps");
    std::fs::create_dir_all(&store).expect("store dir");
    let config = format!(
        r#"public_url = "http://127.0.0.1:9"

[store]
url = "sqlite://{db}"

[providers.buddy]
api_base = "http://127.0.0.1:9/buddy"
client_id = "snapshot"
client_secret = "${{TEST_BUDDY_CLIENT_SECRET}}"
workspace = "acme"

[providers.bitbucket]
api_base = "http://127.0.0.1:9/2.0"
authorize_url = "http://127.0.0.1:9/site/oauth2/authorize"
token_url = "http://127.0.0.1:9/site/oauth2/access_token"
client_id = "snapshot"
client_secret = "${{TEST_BITBUCKET_CLIENT_SECRET}}"
workspace = "acme"
"#,
        db = store.join("devgate.db").display()
    );
    let client = in_process(&config, "snapshots").await;
    let tools = client.list_all_tools().await.expect("tools/list");
    client.cancel().await.expect("closed");
    let catalog = Catalog::builtin().expect("the shipped catalogs load");
    let mut groups: BTreeMap<String, Vec<rmcp::model::Tool>> = BTreeMap::new();
    for tool in tools {
        let owner = catalog
            .providers
            .iter()
            .flat_map(|p| p.tools.iter())
            .find(|t| t.name == tool.name)
            .map_or("devgate".to_string(), |t| t.provider.clone());
        groups.entry(owner).or_default().push(tool);
    }
    for tools in groups.values_mut() {
        tools.sort_by(|a, b| a.name.cmp(&b.name));
    }
    groups
}

/// Each catalog's `tools/list` entries equal the committed snapshot, and no snapshot is left over
/// from a catalog that is gone.
#[tokio::test(flavor = "multi_thread")]
async fn tools_list_matches_the_committed_snapshots() {
    let update = std::env::var_os("UPDATE_SNAPSHOTS").is_some();
    let dir = snapshot_dir();
    let groups = listed_by_catalog().await;
    assert!(
        ["buddy", "bitbucket", "devgate"]
            .iter()
            .all(|g| groups.contains_key(*g)),
        "groups: {:?}",
        groups.keys().collect::<Vec<_>>()
    );
    let mut stale = Vec::new();
    for (group, tools) in &groups {
        let path = dir.join(format!("{group}.json"));
        let want = serde_json::to_string_pretty(tools).expect("tools are JSON") + "\n";
        if update {
            std::fs::create_dir_all(&dir).expect("snapshot dir");
            std::fs::write(&path, &want).expect("snapshot written");
        }
        let have = std::fs::read_to_string(&path).unwrap_or_default();
        if have != want {
            stale.push(format!("tests/toolsnaps/{group}.json"));
        }
    }
    let leftover: Vec<String> = std::fs::read_dir(&dir)
        .expect("tests/toolsnaps exists")
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|name| {
            name.strip_suffix(".json")
                .is_none_or(|group| !groups.contains_key(group))
        })
        .collect();
    assert!(
        stale.is_empty(),
        "tools/list changed: {stale:?} differ from what devgate lists; review the change and run \
         `UPDATE_SNAPSHOTS=1 cargo test --test it toolsnaps::` to accept it"
    );
    assert!(
        leftover.is_empty(),
        "tests/toolsnaps holds files no catalog lists: {leftover:?}"
    );
}
