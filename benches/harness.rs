//! devgate's performance harness: one run measures devgate and a baseline that calls the same simulated
//! endpoint directly with the same HTTP client (reqwest), all on loopback, and prints one table.
//!
//! ```sh
//! cargo bench --bench harness              # the full run (a few minutes)
//! cargo bench --bench harness -- --quick   # the CI guard: short, fails on a gross size regression
//! ```
//!
//! Times are printed, never asserted: they depend on the machine and on what else runs. Sizes are
//! deterministic and asserted in both modes against the budgets below, and the load run (`load.rs`)
//! asserts that every call is answered, to its caller, with no write lost or doubled.

/// The integration tests' harness (sim, OAuth setups, connect walks), for the load run; this bench
/// uses a part of it.
#[allow(unused_imports)]
#[path = "../tests/it/common/mod.rs"]
mod common;
#[path = "harness/http_driver.rs"]
mod http_driver;
#[path = "harness/load.rs"]
mod load;

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use devgate::sim::{BITBUCKET_TOKEN, BUDDY_TOKEN, Sim};
use futures::StreamExt;
use rmcp::model::{CallToolRequestParams, CallToolResult};
use rmcp::service::RunningService;
use rmcp::transport::{StreamableHttpClientTransport, TokioChildProcess};
use rmcp::{RoleClient, ServiceExt};
use serde_json::{Value, json};

const BIN: &str = env!("CARGO_BIN_EXE_devgate");

/// Size budgets (bytes of text an agent reads).
const TOOLS_LIST_PER_TOOL: usize = 400;
const TEN_PRS: usize = 2_100;
/// A list page's pull request, with timestamps in UTC seconds and default values left out (184 bytes
/// when set; issue 17's goal was 230).
const PER_PR_IN_LIST: usize = 200;
const ONE_PR: usize = 1_100;

type Client = RunningService<RoleClient, ()>;

struct Mode {
    quick: bool,
}

impl Mode {
    fn n(&self, full: usize, quick: usize) -> usize {
        if self.quick { quick } else { full }
    }
}

fn config(sim: &Sim, dir: &Path) -> PathBuf {
    std::fs::create_dir_all(dir).unwrap();
    let path = dir.join("devgate.toml");
    std::fs::write(
        &path,
        format!(
            r#"
[http]
auth = "none"

[limits]
calls_per_minute = 0
# The memory step opens 1,000 idle sessions as one user.
sessions_per_user = 2000
max_sessions = 2000

[providers.buddy]
api_base = "{}"
token = "{BUDDY_TOKEN}"
workspace = "acme"

[providers.bitbucket]
api_base = "{}"
token = "{BITBUCKET_TOKEN}"
workspace = "acme"
"#,
            sim.buddy_url, sim.bitbucket_url
        ),
    )
    .unwrap();
    path
}

fn quiet_stdio(config: &Path) -> tokio::process::Command {
    let mut cmd = tokio::process::Command::new(BIN);
    cmd.arg("stdio")
        .arg("--config")
        .arg(config)
        .env("DEVGATE_LOG", "warn");
    cmd
}

async fn stdio_client(config: &Path) -> (Client, u32) {
    let transport = TokioChildProcess::new(quiet_stdio(config)).unwrap();
    let pid = transport.id().unwrap_or_default();
    (().serve(transport).await.unwrap(), pid)
}

fn args(v: Value) -> rmcp::model::JsonObject {
    v.as_object().cloned().unwrap()
}

async fn call(client: &Client, tool: &str, arguments: &Value) -> CallToolResult {
    client
        .call_tool(
            CallToolRequestParams::new(tool.to_string()).with_arguments(args(arguments.clone())),
        )
        .await
        .unwrap()
}

fn text(result: &CallToolResult) -> String {
    result
        .content
        .iter()
        .find_map(|c| c.as_text().map(|t| t.text.clone()))
        .unwrap_or_default()
}

fn rss_kib(pid: u32, field: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(field))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

/// CPU time a process has used so far, its threads' user and system time together (`/proc/<pid>/stat`
/// fields 14 and 15, in clock ticks: `USER_HZ`, 100 on Linux whatever the kernel's HZ).
fn cpu_time(pid: &str) -> Duration {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // The command name (field 2) may hold spaces; the fields after it are counted by position (the
    // state is a letter, `tpgid` is -1 without a terminal: skipping what does not parse as a number
    // would shift utime and stime).
    let after_name = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    let ticks: u64 = after_name
        .split_whitespace()
        .skip(11)
        .take(2)
        .filter_map(|f| f.parse::<u64>().ok())
        .sum();
    Duration::from_millis(ticks * 10)
}

/// CPU per call of a process over a phase: its CPU time then, less before, divided by the calls.
fn cpu_per_call(pid: &str, before: Duration, calls: usize) -> Duration {
    cpu_time(pid).saturating_sub(before) / calls.max(1) as u32
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn micros(d: Duration) -> String {
    format!("{:.0} µs", d.as_secs_f64() * 1e6)
}

/// Process start → `initialize` answered → `tools/list` answered, over stdio with raw JSON lines.
fn startup(config: &Path) -> (Duration, Duration) {
    let started = Instant::now();
    let mut child: Child = Command::new(BIN)
        .arg("stdio")
        .arg("--config")
        .arg(config)
        .env("DEVGATE_LOG", "warn")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    writeln!(stdin, r#"{{"jsonrpc":"2.0","id":1,"method":"initialize","params":{{"protocolVersion":"2025-11-25","capabilities":{{}},"clientInfo":{{"name":"bench","version":"1"}}}}}}"#).unwrap();
    stdout.read_line(&mut line).unwrap();
    let initialized = started.elapsed();
    writeln!(
        stdin,
        r#"{{"jsonrpc":"2.0","method":"notifications/initialized"}}"#
    )
    .unwrap();
    writeln!(stdin, r#"{{"jsonrpc":"2.0","id":2,"method":"tools/list"}}"#).unwrap();
    line.clear();
    stdout.read_line(&mut line).unwrap();
    let listed = started.elapsed();
    assert!(
        line.contains("bitbucket_list_pull_requests"),
        "tools/list answered"
    );
    drop(stdin);
    let _ = child.kill();
    let _ = child.wait();
    (initialized, listed)
}

fn stats(mut v: Vec<Duration>) -> (Duration, Duration, Duration) {
    v.sort();
    (v[0], percentile(&v, 0.5), v[v.len() - 1])
}

/// The direct baseline: the same request to the sim, with reqwest, the body parsed as JSON.
async fn direct(http: &reqwest::Client, url: &str, token: &str) -> Value {
    http.get(url)
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

async fn latencies(
    client: &Client,
    http: &reqwest::Client,
    tool: &str,
    arguments: &Value,
    url: &str,
    token: &str,
    n: usize,
) -> [(Duration, Duration); 2] {
    for _ in 0..50 {
        call(client, tool, arguments).await;
        direct(http, url, token).await;
    }
    let mut via = Vec::with_capacity(n);
    let mut straight = Vec::with_capacity(n);
    for _ in 0..n {
        let t = Instant::now();
        let r = call(client, tool, arguments).await;
        via.push(t.elapsed());
        assert_ne!(r.is_error, Some(true), "{tool}: {}", text(&r));
        let t = Instant::now();
        direct(http, url, token).await;
        straight.push(t.elapsed());
    }
    via.sort();
    straight.sort();
    [
        (percentile(&via, 0.5), percentile(&via, 0.99)),
        (percentile(&straight, 0.5), percentile(&straight, 0.99)),
    ]
}

async fn throughput_mcp(client: &Arc<Client>, in_flight: usize, n: usize) -> f64 {
    let arguments = json!({"repo_slug": "api", "limit": 10});
    let t = Instant::now();
    futures::stream::iter(0..n)
        .map(|_| {
            let client = client.clone();
            let arguments = arguments.clone();
            async move { call(&client, "bitbucket_list_pull_requests", &arguments).await }
        })
        .buffer_unordered(in_flight)
        .for_each(|_| async {})
        .await;
    n as f64 / t.elapsed().as_secs_f64()
}

async fn throughput_direct(http: &reqwest::Client, url: &str, in_flight: usize, n: usize) -> f64 {
    let t = Instant::now();
    futures::stream::iter(0..n)
        .map(|_| direct(http, url, BITBUCKET_TOKEN))
        .buffer_unordered(in_flight)
        .for_each(|_| async {})
        .await;
    n as f64 / t.elapsed().as_secs_f64()
}

struct HttpGateway {
    child: tokio::process::Child,
    url: String,
}

async fn http_gateway(config: &Path, stateless: bool) -> HttpGateway {
    use tokio::io::AsyncBufReadExt;
    let mut cmd = tokio::process::Command::new(BIN);
    cmd.args(["http", "--listen", "127.0.0.1:0", "--config"])
        .arg(config)
        .env("DEVGATE_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    if stateless {
        cmd.arg("--stateless");
    }
    let mut child = cmd.spawn().unwrap();
    let mut lines = tokio::io::BufReader::new(child.stderr.take().unwrap()).lines();
    let url = loop {
        let line = lines
            .next_line()
            .await
            .unwrap()
            .expect("devgate http announces its address");
        if let Some(u) = line.strip_prefix("devgate listening on ") {
            break u.trim().to_string();
        }
    };
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    HttpGateway { child, url }
}

/// Opens `n` idle MCP sessions (legacy `initialize`), returning their ids.
async fn open_sessions(url: &str, n: usize) -> Vec<String> {
    let http = reqwest::Client::new();
    let init = json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "bench", "version": "1"}}});
    futures::stream::iter(0..n)
        .map(|_| {
            let http = http.clone();
            let init = init.clone();
            async move {
                let response = http
                    .post(url)
                    .header("Accept", "application/json, text/event-stream")
                    .json(&init)
                    .send()
                    .await
                    .unwrap();
                let id = response
                    .headers()
                    .get("mcp-session-id")
                    .map(|v| v.to_str().unwrap().to_string());
                let _ = response.bytes().await;
                id.unwrap_or_default()
            }
        })
        .buffer_unordered(32)
        .collect()
        .await
}

#[tokio::main]
async fn main() {
    let mode = Mode {
        quick: std::env::args().any(|a| a == "--quick")
            || std::env::var_os("DEVGATE_BENCH_QUICK").is_some(),
    };
    // The baseline's reqwest client and rmcp's HTTP client need the process's TLS provider.
    devgate::app::install_tls_provider();
    let sim = Sim::start().await.unwrap();
    let dir = std::env::temp_dir().join(format!("devgate-bench-{}", std::process::id()));
    let config = config(&sim, &dir);
    let http = reqwest::Client::new();
    let prs_url = format!(
        "{}/repositories/acme/api/pullrequests?pagelen=10",
        sim.bitbucket_url
    );
    let runs_url = format!(
        "{}/workspaces/acme/projects/web/pipelines/1/executions?per_page=10",
        sim.buddy_url
    );
    let mut failures = Vec::new();
    println!(
        "devgate benchmark ({} mode), {} build",
        if mode.quick { "quick" } else { "full" },
        if cfg!(debug_assertions) {
            "debug"
        } else {
            "release"
        }
    );

    // 1. Start-up.
    let runs: Vec<(Duration, Duration)> = (0..mode.n(10, 3)).map(|_| startup(&config)).collect();
    let (init_min, init_med, init_max) = stats(runs.iter().map(|r| r.0).collect());
    let (list_min, list_med, list_max) = stats(runs.iter().map(|r| r.1).collect());
    println!("\n## Start-up (stdio, {} runs)", runs.len());
    println!("| step | min | median | max |\n|---|---|---|---|");
    println!(
        "| start → initialize answered | {} | {} | {} |",
        micros(init_min),
        micros(init_med),
        micros(init_max)
    );
    println!(
        "| start → tools/list answered | {} | {} | {} |",
        micros(list_min),
        micros(list_med),
        micros(list_max)
    );

    // 2. Per-call latency, devgate vs direct.
    let (client, stdio_pid) = stdio_client(&config).await;
    let idle_rss = rss_kib(stdio_pid, "VmRSS:");
    let n = mode.n(3000, 300);
    println!("\n## Latency per call ({n} sequential calls, stdio; direct = reqwest to the sim)");
    println!(
        "| tool | devgate p50 | devgate p99 | direct p50 | direct p99 | added p50 | added p99 |\n|---|---|---|---|---|---|---|"
    );
    for (tool, arguments, url, token) in [
        (
            "bitbucket_list_pull_requests",
            json!({"repo_slug": "api", "limit": 10}),
            prs_url.as_str(),
            BITBUCKET_TOKEN,
        ),
        (
            "buddy_list_executions",
            json!({"project": "web", "pipeline": "1", "limit": 10}),
            runs_url.as_str(),
            BUDDY_TOKEN,
        ),
    ] {
        let [(v50, v99), (d50, d99)] =
            latencies(&client, &http, tool, &arguments, url, token, n).await;
        println!(
            "| {tool} | {} | {} | {} | {} | {} | {} |",
            micros(v50),
            micros(v99),
            micros(d50),
            micros(d99),
            micros(v50.saturating_sub(d50)),
            micros(v99.saturating_sub(d99))
        );
    }

    // 3. Throughput.
    let client = Arc::new(client);
    let n = mode.n(10_000, 1_000);
    let stateful = http_gateway(&config, false).await;
    let stateless = http_gateway(&config, true).await;
    let stateful_client = Arc::new(
        ().serve(StreamableHttpClientTransport::from_uri(
            stateful.url.clone(),
        ))
        .await
        .unwrap(),
    );
    let stateless_client = Arc::new(
        ().serve(StreamableHttpClientTransport::from_uri(
            stateless.url.clone(),
        ))
        .await
        .unwrap(),
    );
    println!("\n## Throughput (bitbucket_list_pull_requests, {n} calls per cell, calls/s)");
    println!(
        "| in flight | direct | stdio | stdio / direct | HTTP stateful | HTTP stateless |\n|---|---|---|---|---|---|"
    );
    // CPU per call: devgate's own (the child's utime + stime over the phase), and for the direct
    // baseline this process's (the reqwest client and the in-process sim answering it).
    let pids = [
        "self".to_string(),
        stdio_pid.to_string(),
        stateful.child.id().unwrap_or_default().to_string(),
        stateless.child.id().unwrap_or_default().to_string(),
    ];
    let mut cpu_rows = Vec::new();
    let mut stdio_rates = Vec::new();
    for in_flight in [1, 8, 64] {
        let mut cpu = [Duration::ZERO; 4];
        let before = cpu_time(&pids[0]);
        let d = throughput_direct(&http, &prs_url, in_flight, n).await;
        cpu[0] = cpu_per_call(&pids[0], before, n);
        let mut rates = [0.0; 3];
        for (i, via) in [&client, &stateful_client, &stateless_client]
            .into_iter()
            .enumerate()
        {
            let before = cpu_time(&pids[i + 1]);
            rates[i] = throughput_mcp(via, in_flight, n).await;
            cpu[i + 1] = cpu_per_call(&pids[i + 1], before, n);
        }
        let [s, h, hs] = rates;
        println!(
            "| {in_flight} | {d:.0} | {s:.0} | {:.0}% | {h:.0} | {hs:.0} |",
            100.0 * s / d
        );
        cpu_rows.push((in_flight, cpu));
        stdio_rates.push((in_flight, s));
    }
    println!(
        "\n## CPU per call (bitbucket_list_pull_requests; process utime + stime over the phase / calls)"
    );
    println!(
        "| in flight | direct (sim + reqwest, this process) | devgate stdio | stdio / direct | devgate HTTP stateful | devgate HTTP stateless |\n|---|---|---|---|---|---|"
    );
    for (in_flight, [d, s, h, hs]) in cpu_rows {
        println!(
            "| {in_flight} | {} | {} | {:.2}× | {} | {} |",
            micros(d),
            micros(s),
            s.as_secs_f64() / d.as_secs_f64().max(1e-9),
            micros(h),
            micros(hs)
        );
    }

    // 3b. HTTP from another runtime (Python, kept-alive connections).
    http_driver::section(
        &[
            http_driver::Target {
                mode: "stateful",
                url: &stateful.url,
                pid: stateful.child.id().unwrap_or_default(),
            },
            http_driver::Target {
                mode: "stateless",
                url: &stateless.url,
                pid: stateless.child.id().unwrap_or_default(),
            },
        ],
        &stdio_rates,
        &[
            BIN.to_string(),
            "stdio".to_string(),
            "--config".to_string(),
            config.display().to_string(),
        ],
        mode.n(3000, 300),
    );

    // 4. Memory.
    let target = 10_000usize;
    let mut done = 0;
    // The throughput runs above already made calls on this process; top it up to 10,000.
    let made = 50 * 2 + 2 * mode.n(3000, 300) + 3 * n;
    if made < target {
        throughput_mcp(&client, 8, target - made).await;
        done = target - made;
    }
    let after_calls = rss_kib(stdio_pid, "VmHWM:");
    let sessions = mode.n(1000, 100);
    let http_pid = stateful.child.id().unwrap_or_default();
    let before_sessions = rss_kib(http_pid, "VmRSS:");
    let ids = open_sessions(&stateful.url, sessions).await;
    assert_eq!(
        ids.iter().filter(|i| !i.is_empty()).count(),
        sessions,
        "every session opened"
    );
    let after_sessions = rss_kib(http_pid, "VmRSS:");
    let per_session = (after_sessions.saturating_sub(before_sessions)) as f64 / sessions as f64;
    println!("\n## Memory");
    println!("| measure | value |\n|---|---|");
    println!(
        "| stdio, idle after initialize (RSS) | {:.1} MiB |",
        idle_rss as f64 / 1024.0
    );
    println!(
        "| stdio, peak after ≥ {target} calls (VmHWM; {done} topped up) | {:.1} MiB |",
        after_calls as f64 / 1024.0
    );
    println!(
        "| HTTP, {sessions} idle sessions | {:.1} KiB per session ({:.1} → {:.1} MiB) |",
        per_session,
        before_sessions as f64 / 1024.0,
        after_sessions as f64 / 1024.0
    );

    // 5. Sizes (≈ tokens = bytes / 4).
    let tools = client.list_all_tools().await.unwrap();
    let list_bytes = serde_json::to_vec(&tools).unwrap().len();
    let per_tool = list_bytes / tools.len();
    let ten_page = text(
        &call(
            &client,
            "bitbucket_list_pull_requests",
            &json!({"repo_slug": "api", "limit": 10}),
        )
        .await,
    );
    let ten = ten_page.len();
    // Bytes per pull request in the page: the items array's bytes over its items (the page's
    // cursor left out, as it does not grow with the items).
    let items = serde_json::from_str::<Value>(&ten_page).unwrap()["items"].clone();
    let per_pr = serde_json::to_vec(&items).unwrap().len() / items.as_array().unwrap().len().max(1);
    let one = text(
        &call(
            &client,
            "bitbucket_get_pull_request",
            &json!({"repo_slug": "api", "pull_request_id": 26}),
        )
        .await,
    )
    .len();
    let run = text(
        &call(
            &client,
            "buddy_get_execution",
            &json!({"project": "web", "pipeline": "1", "execution_id": 5126}),
        )
        .await,
    )
    .len();
    let log = text(&call(&client, "buddy_get_action_log", &json!({"project": "web", "pipeline": "1", "execution_id": 5117, "action_id": 103, "tail": 200})).await).len();
    println!("\n## Sizes (bytes; ≈ tokens = bytes / 4)");
    println!("| what | bytes | ≈ tokens | budget |\n|---|---|---|---|");
    println!(
        "| tools/list, {} tools | {list_bytes} | {} | |",
        tools.len(),
        list_bytes / 4
    );
    println!(
        "| tools/list per tool | {per_tool} | {} | {TOOLS_LIST_PER_TOOL} |",
        per_tool / 4
    );
    println!(
        "| a page of 10 pull requests | {ten} | {} | {TEN_PRS} |",
        ten / 4
    );
    println!(
        "| a pull request in a list page | {per_pr} | {} | {PER_PR_IN_LIST} |",
        per_pr / 4
    );
    println!("| one pull request | {one} | {} | {ONE_PR} |", one / 4);
    println!("| one run with its actions | {run} | {} | |", run / 4);
    println!("| a 200-line log tail | {log} | {} | |", log / 4);
    for (what, value, budget) in [
        ("tools/list per tool", per_tool, TOOLS_LIST_PER_TOOL),
        ("10 pull requests", ten, TEN_PRS),
        ("a pull request in a list page", per_pr, PER_PR_IN_LIST),
        ("one pull request", one, ONE_PR),
    ] {
        if value > budget {
            failures.push(format!("{what}: {value} bytes over the budget of {budget}"));
        }
    }

    drop(stateful);
    drop(stateless);
    load::calls_under_faults(mode.n(20_000, 2_000)).await;
    let _ = std::fs::remove_dir_all(&dir);
    if !failures.is_empty() {
        eprintln!("\nSIZE BUDGETS EXCEEDED:\n  {}", failures.join("\n  "));
        std::process::exit(1);
    }
}
