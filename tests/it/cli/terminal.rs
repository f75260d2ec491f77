//! Walking a user through connecting from the sandbox and the terminal; keys, status and disconnect; version.

use super::*;

#[tokio::test(flavor = "multi_thread")]
async fn sandbox_walks_a_new_user_through_connecting() {
    let config_path = temp_path("sandbox").join("devgate.toml");
    let mut child = tokio::process::Command::new(BIN)
        .args([
            "sandbox",
            "--listen",
            "127.0.0.1:0",
            "--buddy",
            "127.0.0.1:0",
            "--bitbucket",
            "127.0.0.1:0",
            "--write-config",
        ])
        .arg(&config_path)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let (url, links) = tokio::time::timeout(Duration::from_secs(30), async {
        let mut url = None;
        let mut links = Vec::new();
        while let Some(line) = lines.next_line().await.unwrap() {
            let line = line.trim().to_string();
            if let Some(u) = line.strip_prefix("MCP over HTTP:") {
                url = Some(u.trim().to_string());
            } else if line.contains("/connect/") {
                links.push(link_in(&line));
            } else if line.starts_with("3.") {
                break;
            }
        }
        (url.expect("the sandbox printed its MCP URL"), links)
    })
    .await
    .unwrap();
    assert_eq!(links.len(), 2, "a connect link per provider: {links:?}");

    let client = http_client(&url).await;
    let before = call(
        &client,
        "bitbucket_list_pull_requests",
        json!({"repo_slug": "api"}),
    )
    .await;
    assert!(
        is_error(&before) && text(&before).contains("/connect/bitbucket"),
        "asks to connect first"
    );
    for link in &links {
        let account = if link.contains("/connect/buddy") {
            "mike"
        } else {
            "ann"
        };
        let walk = walk_connect(link, account, "allow").await;
        assert!(
            walk.final_url.contains("/connected"),
            "{link} -> {}",
            walk.final_url
        );
    }
    let prs = ok(
        "bitbucket_list_pull_requests",
        &call(
            &client,
            "bitbucket_list_pull_requests",
            json!({"repo_slug": "api"}),
        )
        .await,
    );
    assert!(!prs["items"].as_array().unwrap().is_empty());
    client.cancel().await.unwrap();

    // The written config lets a stdio client (as the sandbox user) use the same connections.
    let mut cmd = tokio::process::Command::new(BIN);
    cmd.args(["stdio", "--user", "local", "--config"])
        .arg(&config_path);
    let transport = rmcp::transport::TokioChildProcess::new(cmd).unwrap();
    let stdio_client = rmcp::ServiceExt::serve((), transport).await.unwrap();
    let user = ok(
        "buddy_get_user",
        &call(&stdio_client, "buddy_get_user", json!({})).await,
    );
    assert!(user.get("name").is_some());
    stdio_client.cancel().await.unwrap();
    child.kill().await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn keys_status_and_disconnect_from_a_terminal() {
    let sim = Sim::start().await.unwrap();
    let c = connected_users(&sim, &[("alice", "ann", "mike")], "").await;
    let run = |args: &[&str]| {
        let mut cmd = Command::new(BIN);
        cmd.args(args).arg("--config").arg(&c.setup.config);
        for (k, v) in oauth_env() {
            cmd.env(k, v);
        }
        cmd.output().unwrap()
    };
    let status = run(&["status", "--user", "alice"]);
    let out = String::from_utf8_lossy(&status.stdout);
    assert!(
        out.contains("bitbucket: connected as Ann Dev")
            && out.contains("buddy: connected as Mike Benson"),
        "{out}"
    );

    let listed = run(&["keys", "list", "alice"]);
    let id = c.keys[0].trim_start_matches("dgk_")[..12].to_string();
    assert!(String::from_utf8_lossy(&listed.stdout).contains(&id));
    assert!(
        !String::from_utf8_lossy(&listed.stdout).contains(&c.keys[0]),
        "the key itself is never listed"
    );

    // Buddy has a revocation endpoint: disconnect revokes both tokens there too (RFC 7009, with hints).
    let gone = run(&["disconnect", "buddy", "--user", "alice"]);
    let said =
        String::from_utf8_lossy(&gone.stdout).to_string() + &String::from_utf8_lossy(&gone.stderr);
    assert!(
        said.contains("revoked the refresh and access tokens at the provider"),
        "{said}"
    );
    assert_eq!(sim.state.live_grants(devgate::sim::Account::Mike), 0);
    let revoked: Vec<(String, Option<String>)> = sim
        .state
        .revocations(devgate::sim::Which::Buddy)
        .into_iter()
        .map(|r| {
            assert_eq!(r.account, Some(devgate::sim::Account::Mike));
            (r.kind, r.hint)
        })
        .collect();
    assert_eq!(
        revoked,
        [
            (
                "refresh_token".to_string(),
                Some("refresh_token".to_string())
            ),
            ("access_token".to_string(), Some("access_token".to_string())),
        ]
    );
    // Bitbucket has none: disconnect says where to revoke.
    let gone = run(&["disconnect", "bitbucket", "--user", "alice"]);
    assert!(String::from_utf8_lossy(&gone.stdout).contains("no revocation API"));
    let status = run(&["status", "--user", "alice"]);
    let out = String::from_utf8_lossy(&status.stdout);
    assert!(
        out.contains("bitbucket: not connected") && out.contains("devgate connect bitbucket"),
        "{out}"
    );
    let after = call(&c.clients[0], "bitbucket_get_current_user", json!({})).await;
    assert!(is_error(&after) && text(&after).contains("/connect/bitbucket"));

    // A revoked key stops working.
    let revoked = run(&["keys", "revoke", "alice", &id]);
    assert!(
        revoked.status.success(),
        "{}",
        String::from_utf8_lossy(&revoked.stderr)
    );
    let rejected = reqwest::Client::new()
        .post(&c.gateway.url)
        .bearer_auth(&c.keys[0])
        .header("Accept", "application/json, text/event-stream")
        .json(&json!({"jsonrpc": "2.0", "id": 1, "method": "tools/list"}))
        .send()
        .await
        .unwrap();
    assert_eq!(rejected.status(), 401);
}

#[test]
fn auth_none_is_refused_off_loopback() {
    let path = temp_path("open.toml");
    std::fs::write(
        &path,
        "[http]\nauth = \"none\"\n[providers.buddy]\ntoken = \"sim-x\"\n",
    )
    .unwrap();
    let out = devgate(
        &[
            "http",
            "--listen",
            "0.0.0.0:0",
            "--config",
            path.to_str().unwrap(),
        ],
        &[],
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr)
            .contains("the listen address 0.0.0.0:0 is not loopback")
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn connect_from_a_terminal_serves_the_callback_until_it_arrives() {
    let sim = Sim::start().await.unwrap();
    let setup = oauth_setup(&sim, "");
    setup.reserve_public_url();
    // No gateway runs on public_url: `devgate connect` serves the pages itself.
    let mut cmd = tokio::process::Command::new(BIN);
    cmd.args(["connect", "bitbucket", "--user", "zed", "--config"])
        .arg(&setup.config)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true);
    for (k, v) in oauth_env() {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let link = tokio::time::timeout(Duration::from_secs(20), async {
        while let Some(line) = lines.next_line().await.unwrap() {
            if line.contains("/connect/bitbucket?ticket=") {
                return link_in(&line);
            }
        }
        panic!("no link printed");
    })
    .await
    .unwrap();
    let walk = walk_connect(&link, "ben", "allow").await;
    assert!(walk.final_url.contains("/connected"), "{}", walk.final_url);
    let status = tokio::time::timeout(Duration::from_secs(20), child.wait())
        .await
        .unwrap()
        .unwrap();
    assert!(status.success());
    let mut rest = String::new();
    while let Ok(Some(line)) = lines.next_line().await {
        rest.push_str(&line);
    }
    assert!(
        rest.contains("Connected Bitbucket Cloud account Ben Ortiz for zed"),
        "{rest}"
    );
}

#[test]
fn version_names_the_binary_and_each_catalog() {
    let out = devgate(&["--version"], &[]);
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains(env!("CARGO_PKG_VERSION")), "{text}");
    for provider in devgate::catalog::Catalog::builtin().unwrap().providers {
        let version = &provider.version;
        assert!(
            text.contains(&format!("{} catalog {version}", provider.spec.id)),
            "{text}"
        );
    }
    let toml_version = include_str!("../../../tools/buddy.toml")
        .lines()
        .find_map(|l| l.strip_prefix("version = "))
        .unwrap()
        .trim_matches('"');
    assert!(
        text.contains(&format!("buddy catalog {toml_version}")),
        "{text}"
    );
}
