//! The harness's streamable-HTTP run from another runtime: `http_driver.py` (Python's `http.client`,
//! kept-alive connections as the MCP SDKs keep them) against devgate stateful and stateless, printed
//! beside the same run's stdio calls/s from rmcp's client and from the same Python driver over stdio (a
//! `devgate stdio` child whose pipes its threads share, as an SDK's stdio session does), and devgate's
//! CPU per call. The Python stdio run is the like-for-like baseline: the client's own cost, which on two
//! cores caps both, is the same on both sides, so the ratio is the transport's. Times are printed, never
//! asserted; a call answered with anything but a result fails the harness.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use serde_json::{Value, json};

use crate::{cpu_per_call, cpu_time, micros};

/// The driver script, beside this file.
const SCRIPT: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/benches/harness/http_driver.py"
);

/// Requests in flight per row (each on its own kept-alive connection).
pub const IN_FLIGHT: [usize; 2] = [1, 8];

/// A devgate serving HTTP, as the driver sees it.
pub struct Target<'a> {
    /// `stateful` or `stateless`.
    pub mode: &'static str,
    pub url: &'a str,
    pub pid: u32,
}

/// The Python to run the driver with: `DEVGATE_PYTHON_SDK` (the Python SDK's virtualenv, as the tests
/// use; CI sets it), else `python3` from `PATH`. The driver needs only the standard library.
fn python() -> Option<String> {
    let candidate = std::env::var("DEVGATE_PYTHON_SDK")
        .ok()
        .filter(|p| !p.is_empty())
        .unwrap_or_else(|| "python3".to_string());
    let runs = Command::new(&candidate)
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    runs.then_some(candidate)
}

/// One driver run: `calls` calls of `tool` with `in_flight` in flight; the driver's JSON report.
fn drive(
    python: &str,
    url: &str,
    calls: usize,
    in_flight: usize,
    tool: &str,
    args: &Value,
) -> Value {
    assert!(Path::new(SCRIPT).exists(), "{SCRIPT} is missing");
    let out = Command::new(python)
        // For a `devgate stdio` child: as quiet as the harness's other devgate processes.
        .env("DEVGATE_LOG", "warn")
        .arg(SCRIPT)
        .arg(url)
        .arg(calls.to_string())
        .arg(in_flight.to_string())
        .arg(tool)
        .arg(args.to_string())
        .output()
        .expect("the Python driver starts");
    assert!(
        out.status.success(),
        "the Python HTTP driver failed against {url} ({in_flight} in flight): {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "the Python driver printed no report ({e}): {}",
            String::from_utf8_lossy(&out.stdout)
        )
    })
}

fn us(report: &Value, key: &str) -> Duration {
    Duration::from_secs_f64(report[key].as_f64().unwrap_or(0.0) / 1e6)
}

/// Runs the driver over stdio (`stdio_command`, a `devgate stdio` command line) and against each target
/// at each of [`IN_FLIGHT`], and prints one table. `stdio` holds the same run's stdio calls/s per
/// in-flight count from rmcp's client, for the second ratio.
pub fn section(
    targets: &[Target<'_>],
    stdio: &[(usize, f64)],
    stdio_command: &[String],
    calls: usize,
) {
    let Some(python) = python() else {
        println!(
            "\n## HTTP from Python: skipped (no Python: set DEVGATE_PYTHON_SDK or put python3 on PATH)"
        );
        return;
    };
    let tool = "bitbucket_list_pull_requests";
    let arguments = json!({"repo_slug": "api", "limit": 10});
    println!(
        "\n## HTTP from Python ({tool}, {calls} calls per row; http.client, one kept-alive connection per call in flight)"
    );
    println!(
        "| mode | in flight | p50 | p99 | calls/s | HTTP / stdio from Python | HTTP / stdio from rmcp ({}) | devgate CPU per call | driver CPU per call | answered as |\n|---|---|---|---|---|---|---|---|---|---|",
        stdio
            .iter()
            .map(|(n, r)| format!("{n}: {r:.0}/s"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    let over_stdio = format!("stdio:{}", serde_json::to_string(stdio_command).unwrap());
    let mut python_stdio = Vec::new();
    for in_flight in IN_FLIGHT {
        let report = drive(&python, &over_stdio, calls, in_flight, tool, &arguments);
        let rate = report["calls_per_s"].as_f64().unwrap_or(0.0);
        println!(
            "| stdio | {in_flight} | {} | {} | {rate:.0} | 100% | {:.0}% | {} | {} | stdio |",
            micros(us(&report, "p50_us")),
            micros(us(&report, "p99_us")),
            100.0 * rate / rate_at(stdio, in_flight).max(1e-9),
            micros(us(&report, "server_cpu_per_request_us")),
            micros(us(&report, "driver_cpu_per_call_us")),
        );
        python_stdio.push((in_flight, rate));
    }
    for target in targets {
        let pid = target.pid.to_string();
        for in_flight in IN_FLIGHT {
            let before = cpu_time(&pid);
            let report = drive(&python, target.url, calls, in_flight, tool, &arguments);
            // Over every request of the run, the driver's initialize and warm-up calls included.
            let requests = report["requests"].as_u64().unwrap_or(calls as u64) as usize;
            let cpu = cpu_per_call(&pid, before, requests);
            let rate = report["calls_per_s"].as_f64().unwrap_or(0.0);
            assert_eq!(
                report["session"].as_bool(),
                Some(target.mode == "stateful"),
                "{}: a session id only when stateful",
                target.mode
            );
            let types: Vec<&str> = report["content_types"]
                .as_array()
                .map(|a| a.iter().filter_map(Value::as_str).collect())
                .unwrap_or_default();
            println!(
                "| {} | {in_flight} | {} | {} | {rate:.0} | {:.0}% | {:.0}% | {} | {} | {} |",
                target.mode,
                micros(us(&report, "p50_us")),
                micros(us(&report, "p99_us")),
                100.0 * rate / rate_at(&python_stdio, in_flight).max(1e-9),
                100.0 * rate / rate_at(stdio, in_flight).max(1e-9),
                micros(cpu),
                micros(us(&report, "driver_cpu_per_call_us")),
                types.join(", ")
            );
        }
    }
}

/// The calls/s at `in_flight` in a run's rows (0 when it has none).
fn rate_at(rates: &[(usize, f64)], in_flight: usize) -> f64 {
    rates
        .iter()
        .find(|(n, _)| *n == in_flight)
        .map_or(0.0, |(_, r)| *r)
}
