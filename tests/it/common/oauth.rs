//! OAuth test setups: devgate configured so users connect their own accounts at the sim, API keys,
//! and gateways with users already connected.

use std::path::PathBuf;
use std::process::Stdio;

use devgate::sim::Sim;
use tokio::process::Command;

use super::{
    BIN, Client, HttpGateway, call, http_client_with_key, is_error, link_in, spawn_http, temp_path,
    text, walk_connect,
};

/// A fixed sealing key for tests (32 bytes, base64).
pub const TEST_SECRET_KEY: &str = "ZGV2Z2F0ZS10ZXN0LXNlY3JldC1rZXktMzItYnl0ZXM=";

/// A loopback port that was free a moment ago.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A devgate set up for OAuth against the sim: config, store directory and public URL.
pub struct OAuthSetup {
    pub config: PathBuf,
    pub dir: PathBuf,
    pub port: u16,
    pub public_url: String,
}

impl OAuthSetup {
    pub fn env(&self) -> Vec<(&'static str, String)> {
        vec![("DEVGATE_SECRET_KEY", TEST_SECRET_KEY.to_string())]
    }
}

/// Writes a config where both providers use OAuth at the sim, HTTP callers use API keys, and the
/// store lives in a fresh directory. `extra` is appended at the top level.
pub fn oauth_setup(sim: &Sim, extra: &str) -> OAuthSetup {
    let dir = temp_path("oauth");
    std::fs::create_dir_all(&dir).unwrap();
    let port = free_port();
    let public_url = format!("http://127.0.0.1:{port}");
    let bitbucket_origin = sim.bitbucket_url.trim_end_matches("/2.0");
    let text = format!(
        r#"public_url = "{public_url}"
{extra}

[http]
auth = "api_key"

[store]
url = "sqlite://{db}"

[upstream]
backoff_ms = 5

[providers.buddy]
api_base = "{buddy}"
client_id = "{buddy_id}"
client_secret = "${{TEST_BUDDY_CLIENT_SECRET}}"
workspace = "acme"

[providers.bitbucket]
api_base = "{bitbucket}"
authorize_url = "{bitbucket_origin}/site/oauth2/authorize"
token_url = "{bitbucket_origin}/site/oauth2/access_token"
client_id = "{bitbucket_id}"
client_secret = "${{TEST_BITBUCKET_CLIENT_SECRET}}"
workspace = "acme"
"#,
        db = dir.join("devgate.db").display(),
        buddy = sim.buddy_url,
        bitbucket = sim.bitbucket_url,
        buddy_id = devgate::sim::BUDDY_CLIENT_ID,
        bitbucket_id = devgate::sim::BITBUCKET_CLIENT_ID,
    );
    let config = dir.join("devgate.toml");
    std::fs::write(&config, text).unwrap();
    OAuthSetup {
        config,
        dir,
        port,
        public_url,
    }
}

/// The environment every OAuth test process gets: the sealing key and the client secrets.
pub fn oauth_env() -> Vec<(&'static str, &'static str)> {
    vec![
        ("DEVGATE_SECRET_KEY", TEST_SECRET_KEY),
        (
            "TEST_BUDDY_CLIENT_SECRET",
            devgate::sim::BUDDY_CLIENT_SECRET,
        ),
        (
            "TEST_BITBUCKET_CLIENT_SECRET",
            devgate::sim::BITBUCKET_CLIENT_SECRET,
        ),
    ]
}

/// `devgate keys create <user>`: returns the key.
pub fn create_api_key(setup: &OAuthSetup, user: &str) -> String {
    let mut cmd = std::process::Command::new(BIN);
    cmd.args(["keys", "create", user, "--config"])
        .arg(&setup.config);
    for (k, v) in oauth_env() {
        cmd.env(k, v);
    }
    let out = cmd.output().expect("devgate keys runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

/// `devgate http` on the setup's port, with TRACE logs captured.
pub async fn oauth_http(setup: &OAuthSetup, extra_args: &[&str]) -> HttpGateway {
    oauth_http_on(setup, setup.port, extra_args).await
}

/// `devgate http` with the setup's config on another port (a second instance).
pub async fn oauth_http_on(setup: &OAuthSetup, port: u16, extra_args: &[&str]) -> HttpGateway {
    let mut cmd = Command::new(BIN);
    cmd.arg("http")
        .arg("--config")
        .arg(&setup.config)
        .arg("--listen")
        .arg(format!("127.0.0.1:{port}"))
        .args(extra_args)
        .env("DEVGATE_LOG", "trace")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    for (k, v) in oauth_env() {
        cmd.env(k, v);
    }
    spawn_http(cmd).await
}

/// A running OAuth gateway with users already connected.
pub struct Connected {
    pub setup: OAuthSetup,
    pub gateway: HttpGateway,
    pub clients: Vec<Client>,
    pub keys: Vec<String>,
}

/// Starts devgate for OAuth, gives each `(user, bitbucket account, buddy account)` an API key and
/// walks them through connecting both providers.
pub async fn connected_users(sim: &Sim, users: &[(&str, &str, &str)], extra: &str) -> Connected {
    let setup = oauth_setup(sim, extra);
    let keys: Vec<String> = users
        .iter()
        .map(|(u, _, _)| create_api_key(&setup, u))
        .collect();
    let gateway = oauth_http(&setup, &[]).await;
    let mut clients = Vec::new();
    for ((_, bitbucket, buddy), key) in users.iter().zip(&keys) {
        let client = http_client_with_key(&gateway.url, key).await;
        for (tool, account) in [
            ("bitbucket_get_current_user", bitbucket),
            ("buddy_get_user", buddy),
        ] {
            let result = call(&client, tool, serde_json::json!({})).await;
            assert!(is_error(&result), "{tool} asks to connect first");
            let walk = walk_connect(&link_in(&text(&result)), account, "allow").await;
            assert!(walk.final_url.contains("/connected"), "{}", walk.final_url);
        }
        clients.push(client);
    }
    Connected {
        setup,
        gateway,
        clients,
        keys,
    }
}

/// Fails if any secret the sim issued or saw, or any of `extra`, appears in `haystacks`.
pub fn assert_no_secrets(sim: &Sim, extra: &[String], haystacks: &[(&str, &str)]) {
    let mut secrets = sim.state.issued_secrets();
    secrets.extend(extra.iter().cloned());
    secrets.extend([
        devgate::sim::BUDDY_CLIENT_SECRET.to_string(),
        devgate::sim::BITBUCKET_CLIENT_SECRET.to_string(),
        TEST_SECRET_KEY.to_string(),
    ]);
    for secret in secrets.iter().filter(|s| s.len() >= 8) {
        for (what, text) in haystacks {
            assert!(!text.contains(secret.as_str()), "a secret reached {what}");
        }
    }
}
