//! Store-reading commands without secrets or a config; check's problem lists and counts.

use super::*;

/// `devgate check` reports every kind of problem in one run: unset variables, unknown keys and bad
/// values (which stop the config from loading), and what the settings mean together.
#[test]
fn check_lists_unset_variables_unknown_keys_and_bad_values_at_once() {
    let path = temp_path("many.toml");
    std::fs::write(
        &path,
        r#"
[tools]
read_onyl = true
text_cap_bytes = "large"
toolsets = ["pipelines", "nonsense"]
[upstream]
retries = -1
[providers.buddy]
token = "${DEVGATE_TEST_UNSET_A}"
[providers.bitbucket]
client_id = "${DEVGATE_TEST_UNSET_B}"
client_secret = "${DEVGATE_TEST_UNSET_C}"
colour = "blue"
[providers.gitlab]
token = "x"
"#,
    )
    .unwrap();
    let out = devgate(&["check", "--config", path.to_str().unwrap()], &[]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    for expected in [
        "providers.buddy.token: environment variable DEVGATE_TEST_UNSET_A is not set",
        "providers.bitbucket.client_id: environment variable DEVGATE_TEST_UNSET_B is not set",
        "providers.bitbucket.client_secret: environment variable DEVGATE_TEST_UNSET_C is not set",
        "unknown field `read_onyl`",
        "unknown field `colour`",
        "in `tools.text_cap_bytes`",
        "in `upstream.retries`",
        "unknown toolset `nonsense`",
        "providers.gitlab: unknown provider",
    ] {
        assert!(err.contains(expected), "missing `{expected}` in:\n{err}");
    }
}

/// `audit` and `keys` without any config say so, rather than making a new store (and sealing key)
/// in the current directory.
#[test]
fn audit_and_keys_without_a_config_say_so_and_create_nothing() {
    let dir = temp_path("no-config");
    std::fs::create_dir_all(&dir).unwrap();
    for args in [
        &["audit"][..],
        &["keys", "list"],
        &["keys", "create", "alice"],
    ] {
        let out = Command::new(BIN)
            .args(args)
            .current_dir(&dir)
            .env_remove("DEVGATE_CONFIG")
            .env_remove("DEVGATE_SECRET_KEY")
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {err}");
        assert!(
            err.contains("no configuration") && err.contains("--config"),
            "{args:?}: {err}"
        );
        let made: Vec<_> = std::fs::read_dir(&dir).unwrap().collect();
        assert!(made.is_empty(), "{args:?} made {made:?}");
    }
}

/// The reading commands run without the OAuth client secrets (only the sealing key opens the store),
/// `keys list` without a user lists everyone's keys, and times are written for people (RFC 3339 in
/// JSON).
#[tokio::test(flavor = "multi_thread")]
async fn reading_commands_need_no_client_secret_and_show_readable_times() {
    let sim = Sim::start().await.unwrap();
    let c = connected_users(
        &sim,
        &[("alice", "ann", "mike"), ("bob", "ben", "nina")],
        "",
    )
    .await;
    ok(
        "bitbucket_get_current_user",
        &call(&c.clients[0], "bitbucket_get_current_user", json!({})).await,
    );
    // Only the sealing key: the config's ${TEST_*_CLIENT_SECRET} are unset.
    let run = |args: &[&str]| {
        let out = Command::new(BIN)
            .args(args)
            .arg("--config")
            .arg(&c.setup.config)
            .env_remove("DEVGATE_CONFIG")
            .env_remove("TEST_BUDDY_CLIENT_SECRET")
            .env_remove("TEST_BITBUCKET_CLIENT_SECRET")
            .env("DEVGATE_SECRET_KEY", TEST_SECRET_KEY)
            .output()
            .unwrap();
        let (stdout, stderr) = (
            String::from_utf8_lossy(&out.stdout).to_string(),
            String::from_utf8_lossy(&out.stderr).to_string(),
        );
        assert!(out.status.success(), "{args:?}: {stderr}");
        stdout
    };
    let readable = |text: &str| {
        // `2026-11-23 10:00:05 UTC`
        text.split_whitespace()
            .map(|w| w.trim_start_matches('('))
            .any(|w| w.len() == 10 && chrono::NaiveDate::parse_from_str(w, "%Y-%m-%d").is_ok())
            && text.contains(" UTC")
    };

    let status = run(&["status", "--user", "alice"]);
    let line = status
        .lines()
        .find(|l| l.starts_with("bitbucket: connected as Ann Dev"))
        .unwrap_or_else(|| panic!("{status}"));
    assert!(
        line.contains("token expires in ") && line.ends_with(" UTC)") && readable(line),
        "{line}"
    );

    let keys = run(&["keys", "list"]);
    for (user, key) in [("alice", &c.keys[0]), ("bob", &c.keys[1])] {
        let id = &key.trim_start_matches("dgk_")[..12];
        let line = keys
            .lines()
            .find(|l| l.contains(id))
            .unwrap_or_else(|| panic!("{user}'s key in {keys}"));
        assert!(line.contains(user) && readable(line), "{line}");
        assert!(
            !keys.contains(key.as_str()),
            "the key itself is never listed"
        );
    }
    assert!(!run(&["keys", "list", "alice"]).contains("bob"));

    // Records are written off the call's path: wait (bounded) for alice's.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let rows: Vec<Value> = loop {
        let rows: Vec<Value> =
            serde_json::from_str(&run(&["audit", "--user", "alice", "--format", "json"])).unwrap();
        if !rows.is_empty() || std::time::Instant::now() > deadline {
            break rows;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(!rows.is_empty());
    for row in &rows {
        let at = row["at"].as_str().unwrap_or_else(|| panic!("{row}"));
        chrono::DateTime::parse_from_rfc3339(at).unwrap_or_else(|e| panic!("{at}: {e}"));
    }
    let text = run(&["audit", "--user", "alice"]);
    assert!(text.lines().next().is_some_and(readable), "{text}");
}

/// A provider devgate does not know is named as such, with the ones it knows.
#[tokio::test(flavor = "multi_thread")]
async fn an_unknown_provider_is_named_with_the_known_ones() {
    let sim = Sim::start().await.unwrap();
    let setup = oauth_setup(&sim, "");
    setup.reserve_public_url();
    for command in ["connect", "disconnect"] {
        let mut cmd = Command::new(BIN);
        cmd.args([command, "gitlab", "--config"])
            .arg(&setup.config)
            .env_remove("DEVGATE_CONFIG");
        for (k, v) in oauth_env() {
            cmd.env(k, v);
        }
        let out = cmd.output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success());
        assert!(
            err.contains("unknown provider `gitlab` (known: bitbucket, buddy)"),
            "{command}: {err}"
        );
    }
}

/// `check` counts what an agent's tools/list holds, the built-in `devgate_connections` included.
#[tokio::test(flavor = "multi_thread")]
async fn check_counts_the_tools_an_agent_sees() {
    let sim = Sim::start().await.unwrap();
    let setup = oauth_setup(&sim, "");
    setup.reserve_public_url();
    let mut envs: Vec<(&str, &str)> = oauth_env();
    envs.push(("DEVGATE_LOG", "warn"));
    let out = devgate(
        &["check", "--config", setup.config.to_str().unwrap()],
        &envs,
    );
    let said = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let key = create_api_key(&setup, "alice");
    let gateway = oauth_http(&setup, &[]).await;
    let client = http_client_with_key(&gateway.url, &key).await;
    let listed = client.list_all_tools().await.unwrap();
    assert!(listed.iter().any(|t| t.name == "devgate_connections"));
    assert!(
        said.contains(&format!(
            "ok ({} tools offered, devgate_connections included)",
            listed.len()
        )),
        "{said} vs {} listed",
        listed.len()
    );
    client.cancel().await.unwrap();
}
