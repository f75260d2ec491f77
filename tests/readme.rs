//! The README's tool table is the one `devgate tools --all --format md` prints.

mod common;

use std::process::Command;

#[test]
fn readme_tool_table_is_current() {
    let output = Command::new(common::BIN)
        .args(["tools", "--all", "--format", "md"])
        .env_remove("DEVGATE_CONFIG")
        .output()
        .expect("devgate tools runs");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let generated = String::from_utf8(output.stdout).unwrap();
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    let start = readme.find("<!-- tools:start -->\n").expect("start marker")
        + "<!-- tools:start -->\n".len();
    let end = readme.find("<!-- tools:end -->").expect("end marker");
    if readme[start..end] != generated {
        if std::env::var_os("UPDATE_README").is_some() {
            let updated = format!("{}{generated}{}", &readme[..start], &readme[end..]);
            std::fs::write(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md"), updated).unwrap();
        } else {
            panic!(
                "README.md's tool table is stale: run `UPDATE_README=1 cargo test --test readme`"
            );
        }
    }
}

/// The client configurations under "Point an agent at devgate" work when pasted: every JSON block
/// parses, every stdio entry runs a devgate command the binary accepts with a config named, every HTTP
/// entry points at the default `/mcp` with a Bearer header, and so do the `claude mcp add` lines.
#[test]
fn readme_client_snippets_are_valid() {
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    let start = readme
        .find("## Point an agent at devgate")
        .expect("section");
    let section = &readme[start..];
    let section = &section[..section[3..].find("\n## ").map_or(section.len(), |e| e + 3)];
    let accepted = |args: &[String]| {
        let out = Command::new(common::BIN)
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
