//! Test harness: the sim on loopback, a config pointing at it, and devgate spawned as a real process
//! spoken to by rmcp's client over stdio or HTTP.
#![allow(dead_code)]

pub mod form_user;
pub mod skip;
pub mod webdriver;

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use devgate::sim::{BITBUCKET_TOKEN, BUDDY_TOKEN, Sim};
use rmcp::model::{CallToolRequestParams, CallToolResult, JsonObject};
use rmcp::service::RunningService;
use rmcp::transport::{StreamableHttpClientTransport, TokioChildProcess};
use rmcp::{RoleClient, ServiceExt};
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Command;

pub type Client = RunningService<RoleClient, ()>;

pub const BIN: &str = env!("CARGO_BIN_EXE_devgate");

/// reqwest panics when it builds a client before the process has a rustls provider (see
/// `devgate::app::install_tls_provider`), and tests build clients of their own (reqwest, rmcp's HTTP
/// client) at any point. So every test binary that includes this module installs it before `main`,
/// from the platform's list of initialisers, as src/main.rs sets mimalloc's options. (Tests run on
/// Linux; on Windows, where they are only compiled, no initialiser is registered.)
extern "C" fn install_tls_provider() {
    devgate::app::install_tls_provider();
}

#[cfg(any(target_os = "linux", target_os = "android"))]
#[used]
#[unsafe(link_section = ".init_array")]
static INSTALL_TLS_PROVIDER: extern "C" fn() = install_tls_provider;

#[cfg(target_vendor = "apple")]
#[used]
#[unsafe(link_section = "__DATA,__mod_init_func")]
static INSTALL_TLS_PROVIDER: extern "C" fn() = install_tls_provider;

/// Environment variables the test configs reference for the providers' tokens.
pub fn token_env() -> Vec<(&'static str, &'static str)> {
    vec![
        ("TEST_BUDDY_TOKEN", BUDDY_TOKEN),
        ("TEST_BITBUCKET_TOKEN", BITBUCKET_TOKEN),
    ]
}

/// A fresh, unique path under the system temp dir.
pub fn temp_path(name: &str) -> PathBuf {
    static N: AtomicU32 = AtomicU32::new(0);
    let dir = std::env::temp_dir().join("devgate-tests");
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir.join(format!(
        "{}-{}-{name}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ))
}

/// A config for both providers at the sim, with `extra` TOML appended (e.g. `[upstream]` settings).
pub fn config_for(sim: &Sim, extra: &str) -> PathBuf {
    let text = format!(
        r#"
[http]
auth = "none"

[upstream]
backoff_ms = 5
{extra}

[providers.buddy]
api_base = "{buddy}"
token = "${{TEST_BUDDY_TOKEN}}"
workspace = "acme"

[providers.bitbucket]
api_base = "{bitbucket}"
token = "${{TEST_BITBUCKET_TOKEN}}"
workspace = "acme"
"#,
        buddy = sim.buddy_url,
        bitbucket = sim.bitbucket_url,
    );
    // Each config in its own directory, so each gets its own store next to it.
    let dir = temp_path("gateway");
    std::fs::create_dir_all(&dir).expect("config dir");
    let path = dir.join("devgate.toml");
    std::fs::write(&path, text).expect("write config");
    path
}

/// Everything a spawned devgate wrote to stderr.
#[derive(Clone, Default)]
pub struct Stderr(Arc<Mutex<String>>);

impl Stderr {
    pub fn text(&self) -> String {
        self.0.lock().unwrap().clone()
    }

    /// Waits (at most 30 s) until a line containing `marker` has been logged.
    pub async fn wait_for(&self, marker: &str) {
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        while !self.text().contains(marker) {
            assert!(
                std::time::Instant::now() < deadline,
                "devgate never logged {marker:?}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    fn collect(&self, stream: impl tokio::io::AsyncRead + Unpin + Send + 'static) {
        let sink = self.0.clone();
        tokio::spawn(async move {
            let mut lines = BufReader::new(stream).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                let mut s = sink.lock().unwrap();
                s.push_str(&line);
                s.push('\n');
            }
        });
    }
}

/// devgate over stdio, as an agent would start it.
pub async fn stdio(config: &Path) -> (Client, Stderr) {
    let mut cmd = Command::new(BIN);
    cmd.arg("stdio")
        .arg("--config")
        .arg(config)
        .env("DEVGATE_LOG", "debug");
    for (k, v) in token_env() {
        cmd.env(k, v);
    }
    let (transport, stderr) = TokioChildProcess::builder(cmd)
        .stderr(Stdio::piped())
        .spawn()
        .expect("devgate starts");
    let captured = Stderr::default();
    if let Some(stream) = stderr {
        captured.collect(stream);
    }
    match ().serve(transport).await {
        Ok(client) => (client, captured),
        Err(e) => {
            // The process is gone: give its stderr a moment to drain, then show it.
            tokio::time::sleep(Duration::from_millis(300)).await;
            panic!(
                "MCP handshake over stdio: {e}\ndevgate's stderr:\n{}",
                captured.text()
            )
        }
    }
}

/// devgate over HTTP on an ephemeral loopback port.
pub struct HttpGateway {
    pub url: String,
    pub stderr: Stderr,
    child: tokio::process::Child,
}

impl HttpGateway {
    /// The process id, for memory readings.
    pub fn pid(&self) -> Option<u32> {
        self.child.id()
    }

    /// Waits for the process to exit.
    pub async fn wait(&mut self) -> std::io::Result<std::process::ExitStatus> {
        self.child.wait().await
    }

    /// SIGKILL: no chance to clean up, as in a crash.
    pub async fn crash(&mut self) {
        self.child.kill().await.expect("devgate killed");
    }
}

impl Drop for HttpGateway {
    fn drop(&mut self) {
        let _ = self.child.start_kill();
    }
}

pub async fn http(config: &Path, stateless: bool) -> HttpGateway {
    let mut cmd = Command::new(BIN);
    cmd.arg("http")
        .arg("--config")
        .arg(config)
        .arg("--listen")
        .arg("127.0.0.1:0")
        .env("DEVGATE_LOG", "debug")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    if stateless {
        cmd.arg("--stateless");
    }
    for (k, v) in token_env() {
        cmd.env(k, v);
    }
    spawn_http(cmd).await
}

/// An MCP client over streamable HTTP.
pub async fn http_client(url: &str) -> Client {
    ().serve(StreamableHttpClientTransport::from_uri(url.to_string()))
        .await
        .expect("MCP handshake over HTTP")
}

pub fn args(v: Value) -> JsonObject {
    v.as_object().cloned().expect("arguments are an object")
}

pub async fn call(client: &Client, tool: &str, arguments: Value) -> CallToolResult {
    client
        .call_tool(CallToolRequestParams::new(tool.to_string()).with_arguments(args(arguments)))
        .await
        .unwrap_or_else(|e| panic!("{tool}: protocol error {e}"))
}

/// The first text block of a result.
pub fn text(result: &CallToolResult) -> String {
    result
        .content
        .iter()
        .find_map(|c| c.as_text().map(|t| t.text.clone()))
        .unwrap_or_default()
}

pub fn is_error(result: &CallToolResult) -> bool {
    result.is_error == Some(true)
}

/// Asserts success and returns the structured content.
pub fn ok(tool: &str, result: &CallToolResult) -> Value {
    assert!(!is_error(result), "{tool} failed: {}", text(result));
    result
        .structured_content
        .clone()
        .unwrap_or_else(|| panic!("{tool}: no structuredContent"))
}

// ---------------------------------------------------------------------------------------------------
// OAuth: devgate with users connecting their own accounts at the sim.
// ---------------------------------------------------------------------------------------------------

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

pub async fn spawn_http(mut cmd: Command) -> HttpGateway {
    let mut child = cmd.spawn().expect("devgate http starts");
    let mut lines = BufReader::new(child.stderr.take().expect("piped")).lines();
    let stderr = Stderr::default();
    let url = tokio::time::timeout(Duration::from_secs(20), async {
        while let Some(line) = lines.next_line().await.expect("stderr readable") {
            stderr.0.lock().unwrap().push_str(&format!("{line}\n"));
            if let Some(url) = line.strip_prefix("devgate listening on ") {
                return url.trim().to_string();
            }
        }
        panic!("devgate http exited: {}", stderr.text());
    })
    .await
    .expect("devgate http announces its address");
    stderr.collect(lines.into_inner().into_inner());
    HttpGateway { url, stderr, child }
}

/// An MCP client over HTTP that authenticates with an API key.
pub async fn http_client_with_key(url: &str, key: &str) -> Client {
    let config =
        rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig::with_uri(
            url.to_string(),
        )
        .auth_header(key.to_string());
    ().serve(StreamableHttpClientTransport::from_config(config))
        .await
        .expect("MCP handshake over HTTP with an API key")
}

/// The first `http(s)://…` link in a text.
pub fn link_in(text: &str) -> String {
    let start = text
        .find("http")
        .unwrap_or_else(|| panic!("no link in: {text}"));
    text[start..]
        .split(|c: char| c.is_whitespace())
        .next()
        .unwrap()
        .trim_end_matches(['.', ')', ','])
        .to_string()
}

/// The value of an `<input name="…" value="…">` in an HTML page.
pub fn form_value(html: &str, name: &str) -> Option<String> {
    let marker = format!("name=\"{name}\"");
    let at = html.find(&marker)?;
    let tag_start = html[..at].rfind('<')?;
    let tag_end = at + html[at..].find('>')?;
    let tag = &html[tag_start..tag_end];
    let v = tag.find("value=\"")? + "value=\"".len();
    let end = tag[v..].find('"')?;
    Some(
        tag[v..v + end]
            .replace("&amp;", "&")
            .replace("&quot;", "\""),
    )
}

/// Every page a browser walk saw, for the secret scan.
#[derive(Default)]
pub struct Walk {
    pub pages: Vec<String>,
    pub final_url: String,
    /// The status of the page the walk ended on.
    pub final_status: u16,
}

/// Every `<input type="hidden" name="…" value="…">` of a page, unescaped.
pub fn hidden_fields(html: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut rest = html;
    while let Some(start) = rest.find("<input") {
        let end = start + rest[start..].find('>').unwrap_or(rest.len() - start);
        let tag = &rest[start..end];
        if tag.contains("type=\"hidden\"") {
            let attr = |name: &str| {
                let key = format!("{name}=\"");
                let at = tag.find(&key)? + key.len();
                let len = tag[at..].find('"')?;
                Some(
                    tag[at..at + len]
                        .replace("&quot;", "\"")
                        .replace("&#39;", "'")
                        .replace("&lt;", "<")
                        .replace("&gt;", ">")
                        .replace("&amp;", "&"),
                )
            };
            if let (Some(n), Some(v)) = (attr("name"), attr("value")) {
                out.push((n, v));
            }
        }
        rest = &rest[end..];
    }
    out
}

/// The `action` of the first form on a page, resolved against the page's URL.
pub fn form_action(html: &str, page_url: &str) -> String {
    let at = html.find("<form").expect("a form");
    let tag = &html[at..at + html[at..].find('>').unwrap()];
    let key = "action=\"";
    let start = tag.find(key).expect("form action") + key.len();
    let action = &tag[start..start + tag[start..].find('"').unwrap()];
    url::Url::parse(page_url)
        .unwrap()
        .join(&action.replace("&amp;", "&"))
        .unwrap()
        .to_string()
}

/// Where a redirect leads, resolved against the URL that answered it.
pub fn location(response: &reqwest::Response, base: &str) -> String {
    let l = response
        .headers()
        .get("location")
        .unwrap_or_else(|| panic!("no Location on {} from {base}", response.status()))
        .to_str()
        .unwrap();
    url::Url::parse(base).unwrap().join(l).unwrap().to_string()
}

/// One cookie as a browser keeps it.
#[derive(Debug, Clone)]
pub struct Cookie {
    pub host: String,
    pub name: String,
    pub value: String,
    pub path: String,
}

/// An HTTP client that keeps cookies the way a browser does for these pages: by host (not port), sent
/// where the request path is under the cookie's `Path`, forgotten on `Max-Age=0`. It never follows
/// redirects itself, so a test sees every step.
#[derive(Clone)]
pub struct CookieClient {
    http: reqwest::Client,
    jar: Arc<Mutex<Vec<Cookie>>>,
}

impl Default for CookieClient {
    fn default() -> Self {
        Self::new()
    }
}

impl CookieClient {
    pub fn new() -> Self {
        Self {
            http: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap(),
            jar: Arc::default(),
        }
    }

    /// Every cookie held now.
    pub fn cookies(&self) -> Vec<Cookie> {
        self.jar.lock().unwrap().clone()
    }

    /// Puts a cookie in the jar, as a forger would.
    pub fn set_cookie(&self, host: &str, name: &str, value: &str, path: &str) {
        self.jar.lock().unwrap().push(Cookie {
            host: host.into(),
            name: name.into(),
            value: value.into(),
            path: path.into(),
        });
    }

    fn header_for(&self, url: &url::Url) -> Option<String> {
        let host = url.host_str()?;
        let path = url.path();
        let pairs: Vec<String> = self
            .jar
            .lock()
            .unwrap()
            .iter()
            .filter(|c| {
                c.host == host
                    && (path == c.path
                        || path.starts_with(&format!("{}/", c.path.trim_end_matches('/'))))
            })
            .map(|c| format!("{}={}", c.name, c.value))
            .collect();
        (!pairs.is_empty()).then(|| pairs.join("; "))
    }

    fn keep(&self, url: &url::Url, response: &reqwest::Response) {
        let host = url.host_str().unwrap_or_default().to_string();
        let mut jar = self.jar.lock().unwrap();
        for header in response.headers().get_all("set-cookie") {
            let text = header.to_str().unwrap();
            let mut parts = text.split(';').map(str::trim);
            let (name, value) = parts.next().unwrap().split_once('=').unwrap();
            let mut path = "/".to_string();
            let mut gone = false;
            for attr in parts {
                let (k, v) = attr.split_once('=').unwrap_or((attr, ""));
                if k.eq_ignore_ascii_case("path") {
                    path = v.to_string();
                } else if k.eq_ignore_ascii_case("max-age") && v.parse::<i64>().unwrap() <= 0 {
                    gone = true;
                }
            }
            jar.retain(|c| !(c.host == host && c.name == name && c.path == path));
            if !gone {
                jar.push(Cookie {
                    host: host.clone(),
                    name: name.to_string(),
                    value: value.to_string(),
                    path,
                });
            }
        }
    }

    async fn send(&self, request: reqwest::RequestBuilder, url: &str) -> reqwest::Response {
        let parsed = url::Url::parse(url).unwrap();
        let request = match self.header_for(&parsed) {
            Some(cookies) => request.header("cookie", cookies),
            None => request,
        };
        let response = request.send().await.unwrap();
        self.keep(&parsed, &response);
        response
    }

    pub async fn get(&self, url: &str) -> reqwest::Response {
        self.send(self.http.get(url), url).await
    }

    pub async fn post_form(&self, url: &str, form: &[(String, String)]) -> reqwest::Response {
        self.send(self.http.post(url).form(form), url).await
    }
}

/// The first half of connecting in `browser`: the connect page and its button, up to the redirect to
/// the provider. Returns the provider's authorize URL; the connect page goes into `walk`.
pub async fn start_connect(browser: &CookieClient, link: &str, walk: &mut Walk) -> String {
    // 1. The connect page, which sets the CSRF cookie.
    let page = browser.get(link).await;
    assert_eq!(page.status(), 200, "connect page for {link}");
    let html = page.text().await.unwrap();
    walk.pages.push(html.clone());
    let action = form_action(&html, link);
    // 2. Its button: a POST that redirects to the provider.
    let posted = browser.post_form(&action, &hidden_fields(&html)).await;
    assert_eq!(
        posted.status().as_u16(),
        303,
        "connect POST: {}",
        posted.text().await.unwrap_or_default()
    );
    location(&posted, &action)
}

/// The second half, in `browser` (which may not be the one that started): the provider's consent
/// page (choosing `account`, answering `decision`), the callback and the page it ends on.
pub async fn finish_connect(
    browser: &CookieClient,
    authorize: &str,
    account: &str,
    decision: &str,
    walk: &mut Walk,
) {
    // 3. The provider's consent page and its answer.
    let consent = browser.get(authorize).await;
    assert_eq!(consent.status(), 200, "consent page at {authorize}");
    let html = consent.text().await.unwrap();
    walk.pages.push(html.clone());
    let mut form = hidden_fields(&html);
    form.push(("account".into(), account.into()));
    form.push(("decision".into(), decision.into()));
    let consent_action = form_action(&html, authorize);
    let answered = browser.post_form(&consent_action, &form).await;
    assert!(
        answered.status().is_redirection(),
        "consent answer: {}",
        answered.status()
    );
    let callback = location(&answered, &consent_action);
    // 4. devgate's callback, and where it sends the browser.
    let mut url = callback;
    for _ in 0..3 {
        let response = browser.get(&url).await;
        if response.status().is_redirection() {
            url = location(&response, &url);
            continue;
        }
        walk.final_status = response.status().as_u16();
        walk.pages.push(response.text().await.unwrap());
        break;
    }
    walk.final_url = url;
}

/// Walks a connect link as a browser would, with one cookie-keeping HTTP client: the connect page, its
/// POST, the provider's consent page (choosing `account`, answering `decision`), the callback, and the
/// page it ends on. Returns every page body seen and where it ended.
pub async fn walk_connect(link: &str, account: &str, decision: &str) -> Walk {
    let browser = CookieClient::new();
    let mut walk = Walk::default();
    let authorize = start_connect(&browser, link, &mut walk).await;
    finish_connect(&browser, &authorize, account, decision, &mut walk).await;
    walk
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

/// Peak resident memory (VmHWM) of a process, in KiB.
pub fn peak_rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

/// An MCP client that keeps every progress notification it is sent, as (progress, message).
#[derive(Clone, Default)]
pub struct Watcher {
    pub progress: Arc<Mutex<Vec<(f64, String)>>>,
}

impl Watcher {
    /// The messages received so far.
    pub fn messages(&self) -> Vec<String> {
        self.progress
            .lock()
            .unwrap()
            .iter()
            .map(|(_, m)| m.clone())
            .collect()
    }
}

impl rmcp::ClientHandler for Watcher {
    async fn on_progress(
        &self,
        params: rmcp::model::ProgressNotificationParam,
        _context: rmcp::service::NotificationContext<RoleClient>,
    ) {
        self.progress
            .lock()
            .unwrap()
            .push((params.progress, params.message.unwrap_or_default()));
    }
}
