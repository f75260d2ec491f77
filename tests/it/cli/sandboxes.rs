//! Sandboxes side by side and restarted.

use super::*;

/// A `devgate sandbox` on ephemeral ports, and what its banner said.
struct SandboxRun {
    child: tokio::process::Child,
    url: String,
    links: Vec<String>,
    config: std::path::PathBuf,
    state: Option<String>,
}

impl SandboxRun {
    async fn start(args: &[&str], tmpdir: Option<&std::path::Path>) -> Self {
        let mut cmd = tokio::process::Command::new(BIN);
        cmd.args([
            "sandbox",
            "--listen",
            "127.0.0.1:0",
            "--buddy",
            "127.0.0.1:0",
            "--bitbucket",
            "127.0.0.1:0",
        ])
        .args(args)
        .env_remove("DEVGATE_CONFIG")
        .env_remove("DEVGATE_SECRET_KEY")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true);
        if let Some(dir) = tmpdir {
            cmd.env("TMPDIR", dir);
        }
        let mut child = cmd.spawn().unwrap();
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let (mut url, mut links, mut config, mut state) = (None, Vec::new(), None, None);
        tokio::time::timeout(Duration::from_secs(30), async {
            while let Some(line) = lines.next_line().await.unwrap() {
                let line = line.trim().to_string();
                if let Some(u) = line.strip_prefix("MCP over HTTP:") {
                    url = Some(u.trim().to_string());
                } else if let Some(c) = line.strip_prefix("Config written:") {
                    config = Some(std::path::PathBuf::from(c.trim()));
                } else if let Some(s) = line.strip_prefix("State (database, sealing key):") {
                    state = Some(s.trim().to_string());
                } else if line.contains("/connect/") {
                    links.push(link_in(&line));
                } else if line.starts_with("3.") {
                    break;
                }
            }
        })
        .await
        .expect("the sandbox prints its banner");
        Self {
            child,
            url: url.expect("the sandbox printed its MCP URL"),
            links,
            config: config.expect("the sandbox names its config"),
            state,
        }
    }

    fn link(&self, provider: &str) -> String {
        let marker = format!("/connect/{provider}");
        self.links
            .iter()
            .find(|l| l.contains(&marker))
            .cloned()
            .unwrap_or_else(|| panic!("no {provider} link in {:?}", self.links))
    }

    /// `devgate status` with the sandbox's config, as the sandbox user unless `user` says otherwise.
    fn status(&self, user: Option<&str>) -> String {
        let mut cmd = Command::new(BIN);
        cmd.arg("status")
            .arg("--config")
            .arg(&self.config)
            .env_remove("DEVGATE_CONFIG")
            .env_remove("DEVGATE_SECRET_KEY")
            .env("USER", "someone-else");
        if let Some(u) = user {
            cmd.args(["--user", u]);
        }
        let out = cmd.output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).to_string()
    }

    /// SIGTERM, as Ctrl-C would stop it, and waits for it to exit.
    async fn stop(mut self) {
        let pid = self.child.id().expect("running").to_string();
        let sent = Command::new("kill").args(["-TERM", &pid]).status().unwrap();
        assert!(sent.success());
        tokio::time::timeout(Duration::from_secs(20), self.child.wait())
            .await
            .expect("the sandbox stops on SIGTERM")
            .unwrap();
    }
}

/// Two sandboxes started the same way share nothing: each has its own state directory (named in the
/// banner, removed when it stops), so connecting in one connects nothing in the other; and
/// `devgate status` speaks for the sandbox's user (`local`), not the OS user.
#[tokio::test(flavor = "multi_thread")]
async fn two_sandboxes_side_by_side_share_nothing() {
    let tmp = temp_path("tmpdir");
    std::fs::create_dir_all(&tmp).unwrap();
    let first = SandboxRun::start(&[], Some(&tmp)).await;
    let second = SandboxRun::start(&[], Some(&tmp)).await;
    assert_ne!(first.config, second.config, "each sandbox its own config");
    let state = first.state.clone().expect("the banner names the state");
    assert!(state.contains("removed when the sandbox stops"), "{state}");
    let dir = first.config.parent().unwrap().to_path_buf();
    assert!(dir.starts_with(&tmp) && state.starts_with(dir.to_str().unwrap()));

    let walk = walk_connect(&first.link("bitbucket"), "ann", "allow").await;
    assert!(walk.final_url.contains("/connected"), "{}", walk.final_url);
    let status = first.status(None);
    assert!(
        status.contains("devgate user: local")
            && status.contains("bitbucket: connected as Ann Dev"),
        "{status}"
    );
    assert!(
        second.status(None).contains("bitbucket: not connected"),
        "{}",
        second.status(None)
    );
    for (sandbox, connected) in [(&first, true), (&second, false)] {
        let client = http_client(&sandbox.url).await;
        let result = call(&client, "bitbucket_get_current_user", json!({})).await;
        assert_eq!(!is_error(&result), connected, "{}", text(&result));
        client.cancel().await.unwrap();
    }

    second.stop().await;
    first.stop().await;
    assert!(!dir.exists(), "the temporary state is removed on stop");
}

/// A sandbox restarted on the same state forgets the connections it had: the new simulator never
/// issued their tokens.
#[tokio::test(flavor = "multi_thread")]
async fn a_restarted_sandbox_does_not_report_stale_connections() {
    let config = temp_path("restart").join("devgate.toml");
    let config_arg = config.to_str().unwrap();
    let first = SandboxRun::start(&["--write-config", config_arg], None).await;
    let walk = walk_connect(&first.link("bitbucket"), "ann", "allow").await;
    assert!(walk.final_url.contains("/connected"), "{}", walk.final_url);
    assert!(
        first
            .status(Some("local"))
            .contains("bitbucket: connected as Ann Dev")
    );
    first.stop().await;

    let again = SandboxRun::start(&["--write-config", config_arg], None).await;
    assert_eq!(again.config, config);
    let status = again.status(Some("local"));
    assert!(status.contains("bitbucket: not connected"), "{status}");
    let client = http_client(&again.url).await;
    let result = call(&client, "bitbucket_get_current_user", json!({})).await;
    assert!(
        is_error(&result) && text(&result).contains("/connect/bitbucket"),
        "{}",
        text(&result)
    );
    client.cancel().await.unwrap();
    again.stop().await;
    assert!(config.exists(), "a named state is kept");
}
