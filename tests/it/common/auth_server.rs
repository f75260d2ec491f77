//! What the authorization-server tests share (`tests/auth_server*.rs`): a devgate set up for OAuth at
//! the sim with `http.auth = "oauth"`, and `devgate` commands run against its store.

#![allow(dead_code)]

use crate::common::*;
use devgate::sim::Sim;

/// An OAuth setup with `http.auth = "oauth"` and `extra` at the top level (e.g. `[auth_server]`).
pub fn as_setup(sim: &Sim, extra: &str) -> OAuthSetup {
    let setup = oauth_setup(sim, extra);
    let text = std::fs::read_to_string(&setup.config).unwrap();
    std::fs::write(
        &setup.config,
        text.replace("auth = \"api_key\"", "auth = \"oauth\""),
    )
    .unwrap();
    setup
}

/// Runs `devgate <args> --config …` against the setup's store; returns stdout (it must succeed).
pub fn devgate(setup: &OAuthSetup, args: &[&str]) -> String {
    let mut cmd = std::process::Command::new(BIN);
    cmd.args(args).arg("--config").arg(&setup.config);
    for (k, v) in oauth_env() {
        cmd.env(k, v);
    }
    let out = cmd.output().expect("devgate runs");
    assert!(
        out.status.success(),
        "devgate {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// A running devgate in OAuth mode at a fresh sim, and an HTTP client that does not follow redirects.
pub struct Running {
    pub sim: Sim,
    pub setup: OAuthSetup,
    pub gateway: HttpGateway,
    pub http: reqwest::Client,
    /// devgate's public URL (the issuer).
    pub base: String,
}

/// Starts the sim and devgate with `http.auth = "oauth"` and `extra` at the top level of its config.
pub async fn start(extra: &str) -> Running {
    let sim = Sim::start().await.unwrap();
    let setup = as_setup(&sim, extra);
    let gateway = oauth_http(&setup, &[]).await;
    let base = setup.public_url().to_string();
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    Running {
        sim,
        setup,
        gateway,
        http,
        base,
    }
}
