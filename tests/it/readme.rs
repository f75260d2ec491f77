//! The README says what is true: its tool and scope tables are generated from the catalogs, its client
//! snippets are accepted by the binary, its build instructions match Cargo.toml and Cargo.lock, and the
//! 401 it shows is the one devgate answers.

use std::collections::{BTreeMap, BTreeSet};
use std::process::Command;

use crate::common::devgate_stdout;
use serde_json::Value;

const README: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/README.md");

fn readme() -> String {
    std::fs::read_to_string(README).unwrap()
}

/// Checks that the README holds `generated` between `<!-- {name}:start -->` and `<!-- {name}:end -->`;
/// with `UPDATE_README` set, writes it there instead.
fn check_generated(name: &str, generated: &str) {
    let readme = readme();
    let start_marker = format!("<!-- {name}:start -->\n");
    let start = readme.find(&start_marker).expect("start marker") + start_marker.len();
    let end = readme
        .find(&format!("<!-- {name}:end -->"))
        .expect("end marker");
    if readme[start..end] != *generated {
        if std::env::var_os("UPDATE_README").is_some() {
            let updated = format!("{}{generated}{}", &readme[..start], &readme[end..]);
            std::fs::write(README, updated).unwrap();
        } else {
            panic!(
                "README.md's {name} table is stale: run `UPDATE_README=1 cargo test --test it readme::`"
            );
        }
    }
}

#[test]
fn readme_tool_table_is_current() {
    check_generated(
        "tools",
        &devgate_stdout(&["tools", "--all", "--format", "md"]),
    );
}

/// The permission box of a Bitbucket OAuth consumer that grants each scope the catalog uses (Bitbucket
/// takes a token's scopes from these boxes, not from the request).
const BITBUCKET_BOXES: &[(&str, &str)] = &[
    ("account", "Account: Read"),
    ("repository", "Repositories: Read"),
    ("repository:write", "Repositories: Write"),
    ("pullrequest", "Pull requests: Read"),
    ("pullrequest:write", "Pull requests: Write"),
    ("issue", "Issues: Read"),
    ("issue:write", "Issues: Write"),
    ("pipeline", "Pipelines: Read"),
    ("pipeline:write", "Pipelines: Write"),
];

/// The scopes each toolset needs, per provider, from the catalogs (`devgate tools --all`): what its
/// read-only tools need, and what its other tools need on top.
fn scopes_table() -> String {
    // Provider titles, from the headings of the tool table.
    let mut title_of = BTreeMap::new();
    let mut title = String::new();
    for line in devgate_stdout(&["tools", "--all", "--format", "md"]).lines() {
        if let Some(heading) = line.strip_prefix("### ") {
            title = heading.split(" (").next().unwrap().to_string();
        } else if let Some(row) = line.strip_prefix("| `") {
            title_of.insert(row.split('`').next().unwrap().to_string(), title.clone());
        }
    }
    let tools: Vec<Value> =
        serde_json::from_str(&devgate_stdout(&["tools", "--all", "--format", "json"])).unwrap();
    // provider title → toolset → (tools, read scopes, write scopes)
    type Needs = (usize, BTreeSet<String>, BTreeSet<String>);
    let mut providers: Vec<(String, BTreeMap<String, Needs>)> = Vec::new();
    for tool in &tools {
        let name = tool["name"].as_str().unwrap();
        let title = &title_of[name];
        if providers.last().is_none_or(|(t, _)| t != title) {
            providers.push((title.clone(), BTreeMap::new()));
        }
        let toolset = tool["toolset"].as_str().unwrap().to_string();
        let needs = providers.last_mut().unwrap().1.entry(toolset).or_default();
        needs.0 += 1;
        let scopes = tool["scopes"].as_array().unwrap().iter();
        let scopes = scopes.map(|s| s.as_str().unwrap().to_string());
        if tool["read_only"] == true {
            needs.1.extend(scopes);
        } else {
            needs.2.extend(scopes);
        }
    }
    let mut out = String::new();
    for (title, toolsets) in &providers {
        let bitbucket = title.starts_with("Bitbucket");
        let show = |scopes: &BTreeSet<String>| {
            if scopes.is_empty() {
                return "–".to_string();
            }
            let shown: Vec<String> = scopes
                .iter()
                .map(|scope| {
                    if !bitbucket {
                        return format!("`{scope}`");
                    }
                    let (_, label) = BITBUCKET_BOXES
                        .iter()
                        .find(|(s, _)| s == scope)
                        .unwrap_or_else(|| {
                            panic!(
                                "add Bitbucket's permission box for `{scope}` to BITBUCKET_BOXES"
                            )
                        });
                    format!("{label} (`{scope}`)")
                })
                .collect();
            shown.join(", ")
        };
        out.push_str(&format!(
            "**{title}**\n\n| Toolset | Tools | Read-only tools need | The other tools also need |\n|---|---:|---|---|\n"
        ));
        for (toolset, (count, read, write)) in toolsets {
            let write: BTreeSet<String> = write.difference(read).cloned().collect();
            out.push_str(&format!(
                "| {toolset} | {count} | {} | {} |\n",
                show(read),
                show(&write)
            ));
        }
        out.push('\n');
    }
    out
}

/// Generated like the tool table, so a catalog change (a tool's scopes, a new toolset) shows up here.
#[test]
fn readme_scopes_table_is_current() {
    check_generated("scopes", &scopes_table());
}

/// The client configurations under "Point an agent at devgate" work when pasted: every JSON block
/// parses, every stdio entry runs a devgate command the binary accepts with a config named, every HTTP
/// entry points at the default `/mcp` with a Bearer header, and so do the `claude mcp add` lines.
#[test]
fn readme_client_snippets_are_valid() {
    let readme = readme();
    let start = readme
        .find("## Point an agent at devgate")
        .expect("section");
    let section = &readme[start..];
    let section = &section[..section[3..].find("\n## ").map_or(section.len(), |e| e + 3)];
    let accepted = |args: &[String]| {
        let out = Command::new(crate::common::BIN)
            .args(args)
            .arg("--help")
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "devgate {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    let (mut stdio, mut http) = (0, 0);
    for block in section.split("```").skip(1).step_by(2) {
        let (lang, body) = block.split_once('\n').unwrap();
        match lang {
            "json" => {
                let value: serde_json::Value = serde_json::from_str(body)
                    .unwrap_or_else(|e| panic!("a JSON snippet does not parse ({e}):\n{body}"));
                let servers = value
                    .get("mcpServers")
                    .or(value.get("servers"))
                    .and_then(|s| s.as_object())
                    .expect("mcpServers or servers");
                for (name, entry) in servers {
                    if let Some(command) = entry["command"].as_str() {
                        assert!(command.ends_with("devgate"), "{name}: {command}");
                        let args: Vec<String> =
                            serde_json::from_value(entry["args"].clone()).unwrap();
                        accepted(&args);
                        assert!(entry["env"]["DEVGATE_CONFIG"].is_string(), "{name}");
                        stdio += 1;
                    } else {
                        assert_eq!(entry["url"], "http://127.0.0.1:8080/mcp", "{name}");
                        let auth = entry["headers"]["Authorization"].as_str().unwrap();
                        assert!(auth.starts_with("Bearer ${"), "{name}: {auth}");
                        http += 1;
                    }
                }
            }
            "sh" => {
                for line in body.lines().filter(|l| l.starts_with("claude mcp add")) {
                    if let Some((_, command)) = line.split_once(" -- ") {
                        let mut words = command.split_whitespace().map(String::from);
                        assert_eq!(words.next().as_deref(), Some("devgate"), "{line}");
                        accepted(&words.collect::<Vec<_>>());
                        stdio += 1;
                    } else {
                        assert!(line.contains(" http://127.0.0.1:8080/mcp "), "{line}");
                        assert!(line.contains("\"Authorization: Bearer $"), "{line}");
                        http += 1;
                    }
                }
            }
            _ => {}
        }
    }
    // Claude Desktop, Claude Code, Cursor and VS Code: stdio for each, HTTP for the three that take it.
    assert!(stdio >= 4 && http >= 3, "stdio {stdio}, http {http}");
}

/// The quickstart's build is the light one and packaging keeps whole-program optimisation (Cargo.toml's
/// profiles, as the README names them); no C-built crypto library is compiled (Cargo.lock); and the Rust
/// version the README asks for is Cargo.toml's `rust-version`, which no locked package exceeds.
#[test]
fn readme_build_instructions_match_cargo_toml_and_cargo_lock() {
    let readme = readme();
    let manifest: toml::Table =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/Cargo.toml"))
            .unwrap()
            .parse()
            .unwrap();
    let profiles = manifest["profile"].as_table().unwrap();

    let quickstart = &readme[readme.find("## Quickstart").expect("Quickstart")..];
    let command = quickstart
        .lines()
        .find(|l| l.starts_with("cargo run "))
        .expect("the quickstart's cargo command");
    assert_eq!(command, "cargo run --release -- sandbox");
    let release = profiles["release"].as_table().unwrap();
    assert!(
        release
            .get("lto")
            .is_none_or(|lto| lto.as_str() == Some("thin")
                || lto.as_bool() == Some(false)
                || lto.as_str() == Some("off")),
        "the quickstart's release profile must not use fat LTO: {release:?}"
    );
    assert!(
        release
            .get("codegen-units")
            .is_none_or(|units| units.as_integer() != Some(1)),
        "the quickstart's release profile must keep parallel code generation: {release:?}"
    );
    let dist = profiles["dist"].as_table().expect("[profile.dist]");
    assert_eq!(dist["inherits"].as_str(), Some("release"));
    assert_eq!(dist["lto"].as_str(), Some("fat"));
    assert_eq!(dist["codegen-units"].as_integer(), Some(1));
    assert!(
        readme.contains("cargo bench --bench harness --profile dist"),
        "the README measures the budgets with the profile it recommends for running devgate"
    );
    assert!(
        readme.contains("cargo install --path . --profile dist"),
        "the README names the packaging profile"
    );

    let lock = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/Cargo.lock")).unwrap();
    for crate_built_from_c in ["aws-lc-sys", "aws-lc-fips-sys", "openssl-sys", "cmake"] {
        assert!(
            !lock.contains(&format!("name = \"{crate_built_from_c}\"")),
            "Cargo.lock has {crate_built_from_c}"
        );
    }

    let rust_version = manifest["package"]["rust-version"].as_str().unwrap();
    assert!(
        quickstart.contains(&format!("Rust {rust_version} or newer")),
        "the quickstart names Rust {rust_version}, Cargo.toml's rust-version"
    );
    // Not --offline: every platform's packages are needed, and a fresh machine's build fetched only its own
    // (cargo fetches the rest from the registry once).
    let metadata = Command::new(env!("CARGO"))
        .args(["metadata", "--format-version", "1", "--locked"])
        .arg("--manifest-path")
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/Cargo.toml"))
        .output()
        .expect("cargo metadata runs");
    assert!(
        metadata.status.success(),
        "{}",
        String::from_utf8_lossy(&metadata.stderr)
    );
    let metadata: Value = serde_json::from_slice(&metadata.stdout).unwrap();
    // "1.94" and "1.94.0" are the same version.
    let version = |v: &str| -> [u32; 3] {
        let mut parts = v.split('.').map(|n| n.parse().unwrap());
        std::array::from_fn(|_| parts.next().unwrap_or(0))
    };
    for package in metadata["packages"].as_array().unwrap() {
        if let Some(needs) = package["rust_version"].as_str() {
            assert!(
                version(needs) <= version(rust_version),
                "{} {} needs Rust {needs}: raise rust-version in Cargo.toml and the README",
                package["name"],
                package["version"]
            );
        }
    }
}

/// The 401 and the resource metadata the README shows for `auth = "api_key"` are what devgate answers
/// a client without a key: the challenge header, the hint, and metadata that names no authorization
/// server.
#[tokio::test]
async fn readme_shows_the_401_a_client_without_a_key_gets() {
    let readme = readme();
    let at = readme
        .find("```text\nHTTP/1.1 401 Unauthorized\n")
        .expect("the README shows the 401");
    let block = &readme[at + "```text\n".len()..];
    let block = &block[..block.find("```").unwrap()];
    let lines: Vec<&str> = block.lines().collect();
    let [_, challenge, "", body] = lines[..] else {
        panic!("status, header, blank line, body: {block}")
    };
    let challenge = challenge
        .strip_prefix("www-authenticate: ")
        .expect("the challenge header");
    let after = &readme[at..];
    let json = &after[after.find("```json\n").unwrap() + "```json\n".len()..];
    let metadata: Value = serde_json::from_str(&json[..json.find("```").unwrap()]).unwrap();
    let public_url = metadata["resource"]
        .as_str()
        .unwrap()
        .strip_suffix("/mcp")
        .unwrap();

    let dir = crate::common::temp_path("readme-401");
    std::fs::create_dir_all(&dir).unwrap();
    let config = dir.join("devgate.toml");
    std::fs::write(
        &config,
        format!(
            "public_url = \"{public_url}\"\n\n[http]\nauth = \"api_key\"\n\n[store]\nurl = \"sqlite://{}\"\n\n[providers.bitbucket]\ntoken = \"${{TEST_BITBUCKET_TOKEN}}\"\n",
            dir.join("devgate.db").display()
        ),
    )
    .unwrap();
    let mut cmd = tokio::process::Command::new(crate::common::BIN);
    cmd.arg("http")
        .arg("--config")
        .arg(&config)
        .args(["--listen", "127.0.0.1:0"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true);
    for (k, v) in crate::common::token_env() {
        cmd.env(k, v);
    }
    let gateway = crate::common::spawn_http(cmd).await;
    let http = reqwest::Client::new();
    let response = http
        .post(&gateway.url)
        .header("Accept", "application/json, text/event-stream")
        .json(&serde_json::json!({"jsonrpc": "2.0", "id": 1, "method": "tools/list"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);
    assert_eq!(response.headers()["www-authenticate"], challenge);
    assert_eq!(response.text().await.unwrap().trim_end(), body);
    let served: Value = http
        .get(
            gateway
                .url
                .replace("/mcp", "/.well-known/oauth-protected-resource"),
        )
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(served, metadata);
}
