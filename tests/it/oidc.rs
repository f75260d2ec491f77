//! Signing in through the organisation's OpenID Connect provider (`[login]`, `auth_server::oidc`),
//! against the simulated provider (`sim::oidc`) over real HTTP on loopback: begin, the provider's
//! sign-in page followed as a browser would (one cookie-keeping client), finish. Each way an ID token
//! or a sign-in can be wrong is produced for real by the provider or the browser and refused with its
//! reason: bad signature, unknown key (fetched again once; a rotated key is then picked up), wrong
//! nonce, audience, `azp` or issuer, several audiences without `azp`, expired, replayed state or code,
//! another PKCE verifier, missing user claim. No secret (client secret, code, verifier, tokens) reaches an error or a log line. And
//! `devgate sandbox` runs the provider and writes a `[login]` that signs in.

use crate::common;

use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::*;
use devgate::auth_server::oidc::{
    CALLBACK_PATH, LoginConfig, OidcError, OidcIdentity, OidcLogin, PendingLogin,
};
use devgate::config::Config;
use devgate::sim::Sim;
use devgate::sim::oidc::{Idp, Knobs, SIM_OIDC_CLIENT_ID, SIM_OIDC_CLIENT_SECRET};
use tokio::io::{AsyncBufReadExt, BufReader};

/// devgate's public URL in these tests; the provider's last redirect points under it and is not
/// followed (the test plays devgate's callback).
const PUBLIC_URL: &str = "http://127.0.0.1:9";

fn redirect_uri() -> String {
    format!("{PUBLIC_URL}{CALLBACK_PATH}")
}

/// `[login]` for the provider, as an operator writes it (the secret from the environment), plus `extra`.
fn login_config(issuer: &str, extra: &str) -> LoginConfig {
    let text = format!(
        "[login]\nissuer = \"{issuer}\"\nclient_id = \"{SIM_OIDC_CLIENT_ID}\"\nclient_secret = \"${{LOGIN_CLIENT_SECRET}}\"\n{extra}"
    );
    let env = [(
        "LOGIN_CLIENT_SECRET".to_string(),
        SIM_OIDC_CLIENT_SECRET.to_string(),
    )];
    Config::from_toml(&text, "test", env)
        .expect("[login] parses")
        .login
        .expect("[login]")
}

async fn discover(idp: &Idp, extra: &str) -> OidcLogin {
    OidcLogin::discover(&login_config(&idp.issuer, extra))
        .await
        .expect("discovery")
}

/// One sign-in as far as the provider's answer: what devgate kept, and where the provider sent the
/// browser back.
struct Attempt {
    pending: PendingLogin,
    callback: url::Url,
}

impl Attempt {
    fn param(&self, name: &str) -> String {
        self.callback
            .query_pairs()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.into_owned())
            .unwrap_or_default()
    }

    /// The PKCE verifier devgate kept (it never leaves devgate but in the token request).
    fn verifier(&self) -> String {
        serde_json::to_value(&self.pending).expect("serializes")["pkce_verifier"]
            .as_str()
            .expect("a verifier")
            .to_string()
    }
}

/// begin, then the provider's sign-in page in a browser (its cookie kept), choosing `user`.
async fn walk(login: &OidcLogin, user: &str) -> Attempt {
    let browser = CookieClient::new();
    let (url, pending) = login.begin(&redirect_uri());
    let page = browser.get(url.as_str()).await;
    assert_eq!(page.status(), 200, "the provider's sign-in page");
    let html = page.text().await.unwrap();
    assert!(html.contains("Simulated identity provider"), "{html}");
    let mut form = hidden_fields(&html);
    form.push(("user".into(), user.into()));
    form.push(("decision".into(), "allow".into()));
    let action = form_action(&html, url.as_str());
    let answered = browser.post_form(&action, &form).await;
    assert_eq!(answered.status(), 303, "the sign-in form's answer");
    let location = answered.headers()["location"].to_str().unwrap();
    let callback = url::Url::parse(location).unwrap();
    assert!(
        callback.as_str().starts_with(&redirect_uri()),
        "back to devgate's callback: {callback}"
    );
    Attempt { pending, callback }
}

async fn finish(login: &OidcLogin, attempt: &Attempt) -> Result<OidcIdentity, OidcError> {
    login
        .finish(
            &attempt.pending,
            &attempt.param("state"),
            &attempt.param("code"),
            &redirect_uri(),
        )
        .await
}

/// Every log line this test binary writes, at TRACE, from all tests (a process-wide subscriber: a
/// thread's own one misses events whose callsites another test's thread registered first).
#[derive(Clone, Default)]
struct Logs(Arc<Mutex<Vec<u8>>>);

impl Logs {
    fn capture() -> Self {
        static LOGS: std::sync::OnceLock<Logs> = std::sync::OnceLock::new();
        LOGS.get_or_init(|| {
            let logs = Logs::default();
            let subscriber = tracing_subscriber::fmt()
                .with_max_level(tracing::Level::TRACE)
                .with_ansi(false)
                .with_writer(logs.clone())
                .finish();
            tracing::subscriber::set_global_default(subscriber).expect("the only subscriber");
            logs
        })
        .clone()
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

impl std::io::Write for Logs {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Logs {
    type Writer = Logs;

    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}

/// Fails if a secret of the provider or of the attempts appears in `texts` (the harness's scan).
async fn assert_clean(idp: &Idp, attempts: &[&Attempt], texts: &[(&str, &str)]) {
    let sim = Sim::start().await.unwrap();
    let mut secrets = idp.state.issued_secrets();
    assert!(!secrets.is_empty(), "the provider issued codes");
    secrets.push(SIM_OIDC_CLIENT_SECRET.to_string());
    secrets.extend(attempts.iter().map(|a| a.verifier()));
    assert_no_secrets(&sim, &secrets, texts);
}

#[tokio::test]
async fn signing_in_yields_each_users_name_and_groups() {
    let idp = Idp::start().await.unwrap();
    let login = discover(&idp, "").await;
    for (user, subject, groups) in [
        ("ada", "00u7ada1815", vec!["devs", "admins"]),
        ("bob", "00u7bob1942", vec!["devs"]),
        ("cyd", "00u7cyd1968", vec!["contractors"]),
    ] {
        let attempt = walk(&login, user).await;
        let id = finish(&login, &attempt).await.expect("signed in");
        assert_eq!(id.user, user);
        assert_eq!(id.subject, subject);
        assert_eq!(id.groups, groups);
    }
    // Another claim for the user and one for groups, as configured.
    let login = discover(&idp, "user_claim = \"email\"\ngroups_claim = \"groups\"\n").await;
    let id = finish(&login, &walk(&login, "bob").await).await.unwrap();
    assert_eq!(id.user, "bob@example.com");
}

#[tokio::test]
async fn each_bad_id_token_is_refused_with_its_reason_and_no_secret_leaks() {
    let idp = Idp::start().await.unwrap();
    let logs = Logs::capture();
    let login = discover(&idp, "").await;
    let strict = discover(&idp, "user_claim = \"preferred_username\"\n").await;
    let cases: Vec<(&str, Knobs, &OidcLogin, &str)> = vec![
        (
            "bad signature",
            Knobs {
                bad_signature: true,
                ..Knobs::default()
            },
            &login,
            "the signature does not verify",
        ),
        (
            "bad RS256 signature",
            Knobs {
                bad_signature: true,
                rs256: true,
                ..Knobs::default()
            },
            &login,
            "the signature does not verify",
        ),
        (
            "wrong nonce",
            Knobs {
                nonce: Some("someone-elses-nonce".into()),
                ..Knobs::default()
            },
            &login,
            "its nonce is not this sign-in's",
        ),
        (
            "wrong audience",
            Knobs {
                audience: Some("another-client".into()),
                ..Knobs::default()
            },
            &login,
            "issued for another audience",
        ),
        (
            "issued to another client",
            Knobs {
                azp: Some("another-client".into()),
                ..Knobs::default()
            },
            &login,
            "issued to another client (azp is not login.client_id)",
        ),
        (
            "several audiences, no azp",
            Knobs {
                extra_audiences: vec!["another-service".into()],
                omit_claims: vec!["azp".into()],
                ..Knobs::default()
            },
            &login,
            "several audiences but no `azp` claim",
        ),
        (
            "wrong issuer",
            Knobs {
                issuer: Some("https://impostor.example.com".into()),
                ..Knobs::default()
            },
            &login,
            "issued by another issuer",
        ),
        (
            "expired",
            Knobs {
                expired: true,
                ..Knobs::default()
            },
            &login,
            "not valid: expired",
        ),
        (
            "missing user claim",
            Knobs {
                omit_claims: vec!["preferred_username".into()],
                ..Knobs::default()
            },
            &strict,
            "the ID token has no `preferred_username` claim naming the user: set login.user_claim",
        ),
    ];
    let mut errors = Vec::new();
    let mut attempts = Vec::new();
    for (what, knobs, login, reason) in cases {
        idp.state.set_knobs(knobs);
        let attempt = walk(login, "ada").await;
        let err = finish(login, &attempt).await.expect_err(what);
        let text = err.to_string();
        assert!(text.contains(reason), "{what}: {text}");
        assert!(
            !err.is_retriable(),
            "{what}: signing in again the same way cannot help"
        );
        errors.push(format!("{text} / {err:?}"));
        attempts.push(attempt);
    }
    // Several audiences are fine when azp names devgate.
    idp.state.set_knobs(Knobs {
        extra_audiences: vec!["another-service".into()],
        ..Knobs::default()
    });
    let attempt = walk(&login, "bob").await;
    assert_eq!(finish(&login, &attempt).await.unwrap().user, "bob");
    attempts.push(attempt);
    // Without a user_claim set, a token lacking preferred_username names the user by sub.
    idp.state.set_knobs(Knobs {
        omit_claims: vec!["preferred_username".into()],
        ..Knobs::default()
    });
    let attempt = walk(&login, "ada").await;
    assert_eq!(finish(&login, &attempt).await.unwrap().user, "00u7ada1815");
    attempts.push(attempt);
    let logs = logs.text();
    assert!(
        logs.contains("sign-in through the identity provider refused"),
        "refusals are logged: {logs}"
    );
    let errors = errors.join("\n");
    let attempts: Vec<&Attempt> = attempts.iter().collect();
    assert_clean(&idp, &attempts, &[("errors", &errors), ("logs", &logs)]).await;
}

#[tokio::test]
async fn an_unknown_key_is_fetched_again_once_and_a_rotated_key_is_then_picked_up() {
    let idp = Idp::start().await.unwrap();
    let login = discover(&idp, "").await;
    finish(&login, &walk(&login, "ada").await).await.unwrap();
    let fetched = idp.state.jwks_fetches();
    assert_eq!(fetched, 1, "keys fetched on first use");
    // Signed under a kid the provider does not list: one more fetch, then refused.
    idp.state.set_knobs(Knobs {
        unlisted_key: true,
        ..Knobs::default()
    });
    let err = finish(&login, &walk(&login, "ada").await)
        .await
        .expect_err("unknown kid");
    assert!(
        err.to_string()
            .contains("signed with a key the issuer does not list"),
        "{err}"
    );
    assert_eq!(idp.state.jwks_fetches(), fetched + 1, "fetched again once");
    // The provider rotates: the new key is fetched once and used from then on.
    idp.state.set_knobs(Knobs::default());
    idp.state.rotate();
    finish(&login, &walk(&login, "bob").await)
        .await
        .expect("the rotated key is picked up");
    assert_eq!(idp.state.jwks_fetches(), fetched + 2);
    finish(&login, &walk(&login, "cyd").await).await.unwrap();
    assert_eq!(
        idp.state.jwks_fetches(),
        fetched + 2,
        "then served from the cache"
    );
}

#[tokio::test]
async fn a_replayed_or_foreign_state_and_a_replayed_code_are_refused() {
    let idp = Idp::start().await.unwrap();
    let login = discover(&idp, "").await;
    let first = walk(&login, "ada").await;
    finish(&login, &first).await.expect("signed in");
    // The same callback again (a replay of the browser's request, or a second tab).
    let err = finish(&login, &first).await.expect_err("replayed");
    assert!(matches!(err, OidcError::Replayed), "{err}");
    assert!(err.to_string().contains("start signing in again"), "{err}");
    // An answer meant for another browser's sign-in: its state is not this one's.
    let mine = walk(&login, "bob").await;
    let theirs = walk(&login, "cyd").await;
    let err = login
        .finish(
            &mine.pending,
            &theirs.param("state"),
            &theirs.param("code"),
            &redirect_uri(),
        )
        .await
        .expect_err("foreign state");
    assert!(matches!(err, OidcError::StateMismatch), "{err}");
    // A code already exchanged, brought back with a fresh sign-in's state: the provider refuses it.
    let fresh = walk(&login, "ada").await;
    let err = login
        .finish(
            &fresh.pending,
            &fresh.param("state"),
            &first.param("code"),
            &redirect_uri(),
        )
        .await
        .expect_err("replayed code");
    let text = err.to_string();
    assert!(
        text.contains("refused the sign-in: invalid_grant") && text.contains("already used"),
        "{text}"
    );
    assert_clean(
        &idp,
        &[&first, &mine, &theirs, &fresh],
        &[("error", &format!("{text} {err:?}"))],
    )
    .await;
}

#[tokio::test]
async fn a_pkce_verifier_other_than_the_one_begun_with_is_refused() {
    let idp = Idp::start().await.unwrap();
    let login = discover(&idp, "").await;
    let attempt = walk(&login, "ada").await;
    // The kept verifier swapped for another sign-in's (a tampered or mixed-up pending sign-in).
    let (_, other) = login.begin(&redirect_uri());
    let mut kept = serde_json::to_value(&attempt.pending).unwrap();
    kept["pkce_verifier"] = serde_json::to_value(&other).unwrap()["pkce_verifier"].clone();
    let tampered: PendingLogin = serde_json::from_value(kept).unwrap();
    let err = login
        .finish(
            &tampered,
            &attempt.param("state"),
            &attempt.param("code"),
            &redirect_uri(),
        )
        .await
        .expect_err("PKCE mismatch");
    let text = err.to_string();
    assert!(
        text.contains("invalid_grant") && text.contains("PKCE"),
        "{text}"
    );
    assert_clean(&idp, &[&attempt], &[("error", &format!("{text} {err:?}"))]).await;
}

#[tokio::test]
async fn the_sandbox_runs_the_provider_and_its_login_section_signs_in() {
    let state_dir = temp_path("oidc-sandbox");
    let mut child = tokio::process::Command::new(BIN)
        .args([
            "sandbox",
            "--listen",
            "127.0.0.1:0",
            "--buddy",
            "127.0.0.1:0",
        ])
        .args(["--bitbucket", "127.0.0.1:0", "--state-dir"])
        .arg(&state_dir)
        .env_remove("DEVGATE_CONFIG")
        .env_remove("DEVGATE_SECRET_KEY")
        .env("DEVGATE_LOG", "trace")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut banner = String::new();
    let (mut issuer, mut config) = (None, None);
    tokio::time::timeout(Duration::from_secs(60), async {
        while let Some(line) = lines.next_line().await.unwrap() {
            banner.push_str(&line);
            banner.push('\n');
            let line = line.trim();
            if let Some(rest) = line.strip_prefix("Simulated sign-in (OpenID Connect):") {
                issuer = rest.split_whitespace().next().map(str::to_string);
            } else if let Some(c) = line.strip_prefix("Config written:") {
                config = Some(std::path::PathBuf::from(c.trim()));
            } else if line.starts_with("3.") {
                break;
            }
        }
    })
    .await
    .expect("the sandbox prints its banner");
    let issuer = issuer.unwrap_or_else(|| panic!("the banner names the provider: {banner}"));
    assert!(banner.contains("(users ada, bob, cyd)"), "{banner}");
    let text = std::fs::read_to_string(config.expect("the banner names the config")).unwrap();
    let login = Config::from_toml(&text, "sandbox", std::iter::empty())
        .expect("the written config parses")
        .login
        .expect("the written config has [login]");
    assert_eq!(login.issuer, issuer);
    assert!(login.problems().is_empty(), "{:?}", login.problems());
    let oidc = OidcLogin::discover(&login).await.expect("discovery");
    let attempt = walk(&oidc, "cyd").await;
    let id = finish(&oidc, &attempt).await.expect("signed in");
    assert_eq!(
        (id.user.as_str(), id.groups),
        ("cyd", vec!["contractors".to_string()])
    );
    // Stopped, its output holds neither the client secret nor the code or verifier.
    let pid = child.id().expect("running").to_string();
    std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap();
    let output = tokio::time::timeout(Duration::from_secs(20), child.wait_with_output())
        .await
        .expect("the sandbox stops on SIGTERM")
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    let sim = Sim::start().await.unwrap();
    let secrets = vec![
        SIM_OIDC_CLIENT_SECRET.to_string(),
        attempt.param("code"),
        attempt.verifier(),
    ];
    assert_no_secrets(&sim, &secrets, &[("stdout", &banner), ("stderr", &stderr)]);
}
