//! auth = none is refused where others could reach devgate.

use super::*;

/// Runs devgate to its exit (bounded: a devgate that starts serving instead fails the test).
async fn refused(mut cmd: Command) -> String {
    cmd.stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let child = cmd.spawn().unwrap();
    let out = tokio::time::timeout(Duration::from_secs(20), child.wait_with_output())
        .await
        .expect("devgate refused to start instead of serving")
        .unwrap();
    assert!(!out.status.success());
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn http_command(config: &Path) -> Command {
    let mut cmd = Command::new(BIN);
    cmd.arg("http")
        .arg("--config")
        .arg(config)
        .arg("--listen")
        .arg("127.0.0.1:0");
    for (k, v) in token_env() {
        cmd.env(k, v);
    }
    cmd
}

#[tokio::test(flavor = "multi_thread")]
async fn auth_none_is_refused_where_others_could_reach_devgate() {
    let sim = Sim::start().await.unwrap();

    let public = config_for(&sim, "");
    let text = std::fs::read_to_string(&public).unwrap();
    std::fs::write(
        &public,
        format!("public_url = \"https://devgate.example.com\"\n{text}"),
    )
    .unwrap();
    let message = refused(http_command(&public)).await;
    assert!(
        message.contains("public_url `https://devgate.example.com`")
            && message.contains("not loopback")
            && message.contains("http.auth = \"api_key\""),
        "{message}"
    );

    let hosts = config_for(&sim, "");
    let text = std::fs::read_to_string(&hosts).unwrap();
    std::fs::write(
        &hosts,
        text.replace(
            "auth = \"none\"",
            "auth = \"none\"\nallowed_hosts = [\"localhost:8080\", \"devgate.internal\"]",
        ),
    )
    .unwrap();
    let message = refused(http_command(&hosts)).await;
    assert!(
        message.contains("http.allowed_hosts has `devgate.internal`")
            && !message.contains("`localhost:8080`"),
        "{message}"
    );

    let mut sandbox = Command::new(BIN);
    sandbox
        .args([
            "sandbox",
            "--listen",
            "0.0.0.0:0",
            "--buddy",
            "127.0.0.1:0",
            "--bitbucket",
            "127.0.0.1:0",
            "--write-config",
        ])
        .arg(temp_path("sandbox").join("devgate.toml"));
    let message = refused(sandbox).await;
    assert!(
        message.contains("refusing --listen 0.0.0.0:0") && message.contains("--listen 127.0.0.1:0"),
        "{message}"
    );

    // Loopback names, with or without ports, still serve.
    let local = config_for(&sim, "");
    let text = std::fs::read_to_string(&local).unwrap();
    std::fs::write(
        &local,
        format!(
            "public_url = \"http://localhost:{}\"\n{}",
            free_port(),
            text.replace(
                "auth = \"none\"",
                "auth = \"none\"\nallowed_hosts = [\"localhost:8080\", \"127.0.0.2\", \"[::1]:9\"]"
            )
        ),
    )
    .unwrap();
    let gateway = gateway(&local, &[], false).await;
    let health = reqwest::get(format!("{}/healthz", base(&gateway)))
        .await
        .unwrap();
    assert_eq!(health.status(), 200);
}
