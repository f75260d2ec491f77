//! Names a caller makes up stay out of metrics, the audit, the logs and memory.

use super::*;

/// 150 calls to tools with 900 KB names: `/metrics`, the audit, the store, the log and the process's
/// memory do not grow with them; they are all `unknown`, and cost no rate budget.
#[tokio::test(flavor = "multi_thread")]
async fn made_up_tool_names_stay_out_of_metrics_audit_logs_and_memory() {
    const CALLS: usize = 150;
    let sim = Sim::start().await.unwrap();
    // A small budget, so that calls charged to it would soon be rate-limited (and were once counted
    // under their names).
    let config = config_for(&sim, "\n[limits]\ncalls_per_minute = 60\nburst = 5");
    let gateway = gateway(&config, &[], true).await;
    let http = reqwest::Client::new();
    let call = |name: String, id: usize| {
        let body = json!({"jsonrpc": "2.0", "id": id, "method": "tools/call", "params": {"name": name, "arguments": {}}});
        http.post(&gateway.url)
            .header("accept", "application/json, text/event-stream")
            .header("mcp-protocol-version", "2025-11-25")
            .json(&body)
            .send()
    };
    // Warm up, then note the peak memory so far.
    for i in 0..3 {
        call(format!("warm_up_{i}"), i).await.unwrap();
    }
    let pid = gateway.pid().unwrap();
    let rss_before = peak_rss_kib(pid).unwrap();

    let padding = "x".repeat(900_000);
    let (mut unknown_answers, mut longest_error) = (0, 0);
    for i in 0..CALLS {
        let answer: Value = call(format!("{i:03}{padding}"), 10 + i)
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if answer["error"]["code"] == -32602 {
            unknown_answers += 1;
            longest_error = longest_error.max(answer["error"]["message"].as_str().unwrap().len());
        }
    }
    let rss_after = peak_rss_kib(pid).unwrap();

    // A real tool still runs: the made-up calls took nothing from the rate budget.
    let real: Value = http
        .post(&gateway.url)
        .header("accept", "application/json, text/event-stream")
        .header("mcp-protocol-version", "2025-11-25")
        .json(&json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": "bitbucket_get_current_user", "arguments": {}}}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();

    let long_run = "x".repeat(100);
    let metrics = reqwest::get(format!("{}/metrics", base(&gateway)))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let log = gateway.stderr.text();
    let grown = rss_after.saturating_sub(rss_before);
    println!(
        "after {CALLS} calls with 900 KB names: {unknown_answers} answered `unknown tool`, peak RSS {rss_before} -> {rss_after} KiB, /metrics {} bytes, log {} bytes, longest error {longest_error} bytes",
        metrics.len(),
        log.len()
    );
    assert_eq!(
        unknown_answers, CALLS,
        "every call is answered as an unknown tool (none rate-limited)"
    );
    assert!(
        longest_error < 300,
        "an error repeats {longest_error} bytes of a name"
    );
    assert_eq!(real["result"]["isError"], false, "{real}");
    assert!(
        metrics.len() < 64 * 1024,
        "/metrics is {} bytes",
        metrics.len()
    );
    assert!(!metrics.contains(&long_run), "a made-up name is a label");
    assert!(
        metrics.contains(&format!(
            "devgate_tool_calls_total{{tool=\"unknown\",outcome=\"unknown_tool\"}} {}",
            CALLS + 3
        )),
        "{metrics}"
    );

    // The audit records them as `unknown` (written off the call's path: wait, bounded).
    let deadline = Instant::now() + Duration::from_secs(20);
    let records: Vec<Value> = loop {
        let out = devgate_with(
            &["audit", "--format", "json", "--limit", "1000"],
            &config,
            &token_env(),
        );
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            out.stdout.len() < 512 * 1024,
            "the audit output is {} bytes",
            out.stdout.len()
        );
        let records: Vec<Value> = serde_json::from_slice(&out.stdout).unwrap();
        if records.len() > CALLS + 3 || Instant::now() > deadline {
            break records;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(records.len(), CALLS + 4, "every call is recorded");
    let unknown = records
        .iter()
        .filter(|r| r["tool"] == "unknown" && r["outcome"] == "unknown_tool")
        .count();
    assert_eq!(unknown, CALLS + 3, "{:?}", &records[..2]);

    let store: u64 = std::fs::read_dir(config.parent().unwrap())
        .unwrap()
        .filter_map(|e| e.ok()?.metadata().ok())
        .map(|m| m.len())
        .sum();
    assert!(
        store < 8 * 1024 * 1024,
        "the store directory holds {store} bytes"
    );

    assert!(log.len() < 256 * 1024, "the log is {} bytes", log.len());
    assert!(!log.contains(&long_run), "a made-up name reached the log");
    assert!(log.contains("tool=unknown"), "{log}");
    assert!(grown < 40 * 1024, "peak RSS grew by {grown} KiB");
}

// ---------------------------------------------------------------------------------------------------
// Sessions
// ---------------------------------------------------------------------------------------------------
