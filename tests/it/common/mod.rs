//! Test harness: the sim on loopback, a config pointing at it, and devgate spawned as a real process
//! spoken to by rmcp's client over stdio or HTTP.
#![allow(dead_code)]

pub mod auth_server;
pub mod form_user;
mod in_process;
mod oauth;
mod pages;
pub mod skip;
mod support;
pub mod webdriver;

pub use in_process::*;
pub use oauth::*;
pub use pages::*;
pub use support::*;

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
    // The pid repeats across runs (and pids are recycled), so a leftover of an earlier run with the
    // same name is removed: a test never starts on another run's store.
    let path = dir.join(format!(
        "{}-{}-{name}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    let _ = std::fs::remove_dir_all(&path);
    let _ = std::fs::remove_file(&path);
    path
}

/// A config for both providers at the sim, with `extra` TOML appended (e.g. `[upstream]` settings).
pub fn config_for(sim: &Sim, extra: &str) -> PathBuf {
    let text = config_text(&sim.buddy_url, &sim.bitbucket_url, extra);
    // Each config in its own directory, so each gets its own store next to it.
    let dir = temp_path("gateway");
    std::fs::create_dir_all(&dir).expect("config dir");
    let path = dir.join("devgate.toml");
    std::fs::write(&path, text).expect("write config");
    path
}

/// The text of [`config_for`]: both providers with static tokens (`${TEST_…_TOKEN}`) at these bases.
pub fn config_text(buddy: &str, bitbucket: &str, extra: &str) -> String {
    format!(
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
"#
    )
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
    http_with(config, if stateless { &["--stateless"] } else { &[] }).await
}

/// [`http`] with further arguments to `devgate http`.
pub async fn http_with(config: &Path, extra_args: &[&str]) -> HttpGateway {
    let mut cmd = Command::new(BIN);
    cmd.arg("http")
        .arg("--config")
        .arg(config)
        .arg("--listen")
        .arg("127.0.0.1:0")
        .args(extra_args)
        .env("DEVGATE_LOG", "debug")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
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

/// Calls `tool` on any client (plain, or one that keeps progress); a protocol error fails the test.
pub async fn call<H: rmcp::ClientHandler>(
    client: &RunningService<RoleClient, H>,
    tool: &str,
    arguments: Value,
) -> CallToolResult {
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

/// A client over stdio that keeps the progress it is sent.
pub type Watched = RunningService<RoleClient, Watcher>;

/// devgate over stdio (with `extra_args`, e.g. `--tools-dir`), spoken to by a [`Watcher`].
pub async fn stdio_watched(config: &Path, extra_args: &[&str]) -> (Watched, Watcher) {
    let mut cmd = Command::new(BIN);
    cmd.arg("stdio")
        .arg("--config")
        .arg(config)
        .args(extra_args);
    for (k, v) in token_env() {
        cmd.env(k, v);
    }
    let watcher = Watcher::default();
    let client = watcher
        .clone()
        .serve(TokioChildProcess::new(cmd).expect("devgate starts"))
        .await
        .expect("MCP handshake over stdio");
    (client, watcher)
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
