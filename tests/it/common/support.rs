//! Small helpers every area uses: running `devgate` to completion, waiting on a condition with a
//! deadline, and counting the requests the sim received.

use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use devgate::sim::Sim;

use super::BIN;

/// `devgate <args>` run to completion with `envs` set. `DEVGATE_CONFIG` is cleared, so the config is
/// only ever the one the arguments name.
pub fn devgate(args: &[&str], envs: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(BIN);
    cmd.args(args).env_remove("DEVGATE_CONFIG");
    for (k, v) in envs {
        cmd.env(k, v);
    }
    cmd.output().expect("devgate runs")
}

/// [`devgate`] with `--config <config>` after `args`.
pub fn devgate_with(args: &[&str], config: &Path, envs: &[(&str, &str)]) -> Output {
    let config = config.to_str().expect("a UTF-8 config path");
    let mut all = args.to_vec();
    all.extend(["--config", config]);
    devgate(&all, envs)
}

/// The standard output of `devgate <args>` without any config, which must succeed.
pub fn devgate_stdout(args: &[&str]) -> String {
    let output = devgate(args, &[]);
    assert!(
        output.status.success(),
        "devgate {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).expect("UTF-8 output")
}

/// Waits (at most 10 s) until `check` holds; fails naming `what` otherwise.
pub async fn eventually(what: &str, check: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !check() {
        assert!(Instant::now() < deadline, "timed out waiting for: {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// How many `method` requests whose path contains `path_contains` the sim has received.
pub fn count(sim: &Sim, method: &str, path_contains: &str) -> usize {
    sim.requests()
        .iter()
        .filter(|r| r.method == method && r.path.contains(path_contains))
        .count()
}

/// The Python with the official MCP SDK that `.ci/run` makes (`DEVGATE_PYTHON_SDK`), or `None` with the
/// test counted as skipped.
pub fn python() -> Option<String> {
    match std::env::var("DEVGATE_PYTHON_SDK") {
        Ok(p) if !p.is_empty() => Some(p),
        _ => {
            super::skip::skip(
                super::skip::PYTHON_SDK,
                "DEVGATE_PYTHON_SDK does not name a Python with the `mcp` package (.ci/run makes one)",
            );
            None
        }
    }
}
