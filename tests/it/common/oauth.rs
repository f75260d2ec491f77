//! OAuth test setups: devgate configured so users connect their own accounts at the sim, API keys,
//! and gateways with users already connected.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::OnceLock;

use devgate::sim::Sim;
use tokio::process::Command;

use super::{
    BIN, Client, HttpGateway, call, http_client_with_key, is_error, link_in, spawn_http, temp_path,
    text, walk_connect,
};

/// A fixed sealing key for tests (32 bytes, base64).
pub const TEST_SECRET_KEY: &str = "ZGV2Z2F0ZS10ZXN0LXNlY3JldC1rZXktMzItYnl0ZXM=";

/// A loopback port that was free a moment ago. Another process may take it before it is bound again,
/// so this is only for the processes that must be told their port up front (chromedriver, and the
/// page servers of `devgate stdio` and `devgate connect`, which take it from `public_url`); `devgate
/// http` binds port 0 and announces its address instead.
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
    /// Where browsers reach devgate's pages: the address the first gateway started for this setup
    /// announced (it binds port 0), or one reserved for a process that serves the pages itself. Once
    /// known it is written into the config, so every later devgate process links there too.
    public_url: OnceLock<String>,
}

impl OAuthSetup {
    /// A setup for `config` (which names no `public_url`) with its store in `dir`.
    pub fn new(config: PathBuf, dir: PathBuf) -> Self {
        Self {
            config,
            dir,
            public_url: OnceLock::new(),
        }
    }

    /// The public URL, known once a gateway for this setup has started or one was reserved.
    pub fn public_url(&self) -> &str {
        self.public_url.get().expect(
            "public_url is not known yet: start a gateway (oauth_http) or reserve_public_url first",
        )
    }

    /// The port of the public URL.
    pub fn port(&self) -> u16 {
        url::Url::parse(self.public_url())
            .expect("public_url is a URL")
            .port()
            .expect("public_url has a port")
    }

    /// For processes that serve the pages on `public_url` themselves and so must be told its port
    /// (`devgate stdio`, `devgate connect`): a loopback URL on a port free now ([`free_port`]).
    pub fn reserve_public_url(&self) -> &str {
        if self.public_url.get().is_none() {
            self.settle(&format!("http://127.0.0.1:{}", free_port()));
        }
        self.public_url()
    }

    /// Takes the public URL from the address `gateway` announced (it serves the pages).
    pub fn served_by(&self, gateway: &HttpGateway) {
        self.settle(gateway.url.trim_end_matches("/mcp"));
    }

    /// Records `url` as the public URL and puts it at the top of the config file.
    fn settle(&self, url: &str) {
        if self.public_url.set(url.to_string()).is_ok() {
            let text = std::fs::read_to_string(&self.config).expect("config readable");
            std::fs::write(&self.config, format!("public_url = \"{url}\"\n{text}"))
                .expect("config writable");
        }
        assert_eq!(self.public_url(), url, "one public_url per setup");
    }

    pub fn env(&self) -> Vec<(&'static str, String)> {
        vec![("DEVGATE_SECRET_KEY", TEST_SECRET_KEY.to_string())]
    }
}

/// Writes a config where both providers use OAuth at the sim, HTTP callers use API keys, and the
/// store lives in a fresh directory. `extra` is appended at the top level.
pub fn oauth_setup(sim: &Sim, extra: &str) -> OAuthSetup {
    let dir = temp_path("oauth");
    std::fs::create_dir_all(&dir).unwrap();
    let bitbucket_origin = sim.bitbucket_url.trim_end_matches("/2.0");
    let text = format!(
        r#"{extra}

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
    OAuthSetup::new(config, dir)
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

/// `devgate http` serving the setup's public URL, with TRACE logs captured.
pub async fn oauth_http(setup: &OAuthSetup, extra_args: &[&str]) -> HttpGateway {
    oauth_http_logging(setup, Some("trace"), extra_args).await
}

/// `devgate http` serving the setup's public URL, logging at `level` (`None`: devgate's default). The
/// first binds port 0 and the address it announces becomes the public URL; later ones (a restart)
/// listen on the public URL's port again.
pub async fn oauth_http_logging(
    setup: &OAuthSetup,
    level: Option<&str>,
    extra_args: &[&str],
) -> HttpGateway {
    let listen = match setup.public_url.get() {
        Some(_) => format!("127.0.0.1:{}", setup.port()),
        None => "127.0.0.1:0".to_string(),
    };
    let gateway = spawn_oauth_http(&setup.config, &listen, level, extra_args).await;
    setup.served_by(&gateway);
    gateway
}

/// A second `devgate http` on the setup's config and store, on a port of its own (bound at 0); its
/// links point at the public URL, which another instance serves.
pub async fn oauth_http_elsewhere(setup: &OAuthSetup, extra_args: &[&str]) -> HttpGateway {
    setup.public_url();
    spawn_oauth_http(&setup.config, "127.0.0.1:0", Some("trace"), extra_args).await
}

async fn spawn_oauth_http(
    config: &Path,
    listen: &str,
    level: Option<&str>,
    extra_args: &[&str],
) -> HttpGateway {
    let mut cmd = Command::new(BIN);
    cmd.arg("http")
        .arg("--config")
        .arg(config)
        .arg("--listen")
        .arg(listen)
        .args(extra_args)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    match level {
        Some(level) => cmd.env("DEVGATE_LOG", level),
        None => cmd.env_remove("DEVGATE_LOG"),
    };
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
    connected_users_logging(sim, users, extra, Some("trace")).await
}

/// [`connected_users`] with devgate logging at `level` (`None`: its default).
pub async fn connected_users_logging(
    sim: &Sim,
    users: &[(&str, &str, &str)],
    extra: &str,
    level: Option<&str>,
) -> Connected {
    let setup = oauth_setup(sim, extra);
    let keys: Vec<String> = users
        .iter()
        .map(|(u, _, _)| create_api_key(&setup, u))
        .collect();
    let gateway = oauth_http_logging(&setup, level, &[]).await;
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

/// `devgate http` on the setup's config listening on `port`, for a test that points the config at
/// another public URL on purpose (the port is reserved with [`free_port`] just before).
pub async fn oauth_http_on(setup: &OAuthSetup, port: u16, extra_args: &[&str]) -> HttpGateway {
    spawn_oauth_http(
        &setup.config,
        &format!("127.0.0.1:{port}"),
        Some("trace"),
        extra_args,
    )
    .await
}
