//! Unit tests of the OpenID Connect sign-in: `[login]` checks, claims to identity, and flows against
//! the simulated provider over loopback (RS256 and ES256, both client authentications, issuer checks).

use serde_json::{Map, Value, json};

use super::*;
use crate::config::{Config, Secret};
use crate::sim::oidc::tests::sign_in;
use crate::sim::oidc::{Idp, Knobs, SIM_OIDC_CLIENT_ID, SIM_OIDC_CLIENT_SECRET};

const REDIRECT: &str = "http://127.0.0.1:9/login/oidc/callback";

fn login_for(idp: &Idp) -> LoginConfig {
    LoginConfig {
        issuer: idp.issuer.clone(),
        client_id: SIM_OIDC_CLIENT_ID.into(),
        client_secret: Some(Secret::new(SIM_OIDC_CLIENT_SECRET)),
        user_claim: None,
        groups_claim: DEFAULT_GROUPS_CLAIM.into(),
        scopes: DEFAULT_SCOPES.iter().map(|s| s.to_string()).collect(),
    }
}

fn param(url: &url::Url, name: &str) -> String {
    url.query_pairs()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
        .unwrap_or_default()
}

/// begin → the provider's page (choosing `user`) → finish.
async fn sign_in_as(login: &OidcLogin, user: &str) -> Result<OidcIdentity, OidcError> {
    let (url, pending) = login.begin(REDIRECT);
    let back = sign_in(&url, user).await;
    login
        .finish(
            &pending,
            &param(&back, "state"),
            &param(&back, "code"),
            REDIRECT,
        )
        .await
}

#[test]
fn login_config_lists_every_problem_at_once() {
    let text = r#"
[providers.buddy]
token = "x"

[login]
issuer = "http://idp.example.com"
client_id = ""
scopes = ["profile", "two words"]
user_claim = ""
"#;
    let config = Config::from_toml(text, "test", std::iter::empty()).expect("parses");
    let problems = config.login.as_ref().expect("[login]").problems();
    // `devgate check` (Config::validate) lists them with the rest.
    let catalog = crate::catalog::Catalog::builtin().expect("catalog");
    let validated = config.validate(&catalog);
    assert!(
        problems.iter().all(|p| validated.contains(p)),
        "{validated:?}"
    );
    let all = problems.join("\n");
    for part in [
        "login.issuer `http://idp.example.com` must be an https URL",
        "login.client_id is empty",
        "login.client_secret is missing: write client_secret = \"${LOGIN_CLIENT_SECRET}\"",
        "login.user_claim is empty",
        "login.scopes must include \"openid\"",
        "login.scopes: `two words` is not one scope",
    ] {
        assert!(all.contains(part), "{part} in:\n{all}");
    }
    assert_eq!(problems.len(), 6, "{all}");
}

#[test]
fn login_config_defaults_and_env_secret() {
    let text = r#"
[login]
issuer = "https://idp.example.com/realms/acme"
client_id = "devgate"
client_secret = "${LOGIN_CLIENT_SECRET}"
"#;
    let env = [
        (
            "LOGIN_CLIENT_SECRET".to_string(),
            "s3cr3t-value".to_string(),
        ),
        // Overridable from the environment like every section.
        (
            "DEVGATE_LOGIN__GROUPS_CLAIM".to_string(),
            "roles".to_string(),
        ),
    ];
    let config = Config::from_toml(text, "test", env).expect("parses");
    let login = config.login.expect("[login]");
    assert!(login.problems().is_empty(), "{:?}", login.problems());
    assert_eq!(login.scopes, ["openid", "profile", "email"]);
    assert_eq!(login.groups_claim, "roles");
    assert_eq!(login.user_claim, None);
    assert_eq!(
        login.client_secret.as_ref().map(Secret::expose),
        Some("s3cr3t-value")
    );
    assert!(!format!("{login:?}").contains("s3cr3t-value"));
}

#[test]
fn an_unknown_login_key_is_refused() {
    let text = "[login]\nissuer = \"https://idp.example.com\"\nclient_id = \"d\"\ngroup_claim = \"roles\"\n";
    let err = Config::from_toml(text, "test", std::iter::empty()).expect_err("unknown key");
    assert!(err.to_string().contains("group_claim"), "{err}");
}

fn claims(v: Value) -> Map<String, Value> {
    v.as_object().cloned().expect("object")
}

#[test]
fn the_user_is_the_configured_claim_falling_back_to_sub_only_by_default() {
    let mut config = LoginConfig {
        issuer: "https://idp.example.com".into(),
        client_id: "d".into(),
        client_secret: None,
        user_claim: None,
        groups_claim: "roles".into(),
        scopes: vec!["openid".into()],
    };
    let no_username = claims(json!({"sub": "u1", "roles": "devs admins"}));
    let id = id_token::identity(&config, &no_username).expect("identity");
    assert_eq!(id.user, "u1");
    assert_eq!(id.groups, ["devs", "admins"]);
    let with = claims(json!({"sub": "u1", "preferred_username": "ada", "roles": ["x", 3]}));
    let id = id_token::identity(&config, &with).expect("identity");
    assert_eq!(
        (id.user.as_str(), id.groups),
        ("ada", vec!["x".to_string()])
    );
    config.user_claim = Some("email".into());
    let err = id_token::identity(&config, &with).expect_err("no email claim");
    let text = err.to_string();
    assert!(
        text.contains("`email` claim") && text.contains("login.user_claim"),
        "{text}"
    );
}

#[test]
fn only_asymmetric_algorithms_are_accepted() {
    use jsonwebtoken::Algorithm::*;
    assert_eq!(
        id_token::algorithms(Some(vec!["HS256".into(), "RS256".into(), "none".into()])),
        vec![RS256]
    );
    assert!(!id_token::algorithms(None).contains(&HS256));
}

#[tokio::test]
async fn a_pending_login_never_prints_its_secrets() {
    let idp = Idp::start().await.expect("idp");
    let login = OidcLogin::discover(&login_for(&idp))
        .await
        .expect("discover");
    let (url, pending) = login.begin(REDIRECT);
    let shown = format!("{pending:?} {login:?}");
    for secret in [&pending.state, &pending.nonce, &pending.pkce_verifier] {
        assert!(!shown.contains(secret.as_str()));
    }
    assert!(!shown.contains(SIM_OIDC_CLIENT_SECRET));
    // The authorize URL carries state, nonce and the S256 challenge, never the verifier.
    assert_eq!(param(&url, "state"), pending.state);
    assert_eq!(param(&url, "nonce"), pending.nonce);
    assert_eq!(param(&url, "code_challenge_method"), "S256");
    assert_eq!(param(&url, "scope"), "openid profile email");
    assert!(!url.as_str().contains(&pending.pkce_verifier));
}

#[tokio::test]
async fn rs256_and_es256_tokens_both_verify_with_either_client_authentication() {
    let idp = Idp::start().await.expect("idp");
    for (rs256, method) in [(false, "client_secret_basic"), (true, "client_secret_post")] {
        idp.state.set_knobs(Knobs {
            rs256,
            token_auth: Some(method.into()),
            ..Knobs::default()
        });
        // Discovery decides how the client authenticates.
        let login = OidcLogin::discover(&login_for(&idp))
            .await
            .expect("discover");
        let id = sign_in_as(&login, "ada").await.expect("signed in");
        assert_eq!(id.user, "ada", "{method}");
        assert_eq!(id.groups, ["devs", "admins"]);
    }
}

#[tokio::test]
async fn an_issuer_not_written_exactly_as_discovery_states_it_is_refused() {
    let idp = Idp::start().await.expect("idp");
    let mut config = login_for(&idp);
    config.issuer.push('/');
    let err = OidcLogin::discover(&config).await.expect_err("mismatch");
    assert!(matches!(err, OidcError::IssuerMismatch { .. }), "{err}");
    assert!(
        err.to_string().contains("write login.issuer exactly"),
        "{err}"
    );
    // Nobody there at all: a retriable discovery failure naming the URL.
    config.issuer = "http://127.0.0.1:9".into();
    let err = OidcLogin::discover(&config).await.expect_err("unreachable");
    assert!(err.is_retriable(), "{err}");
    assert!(
        err.to_string()
            .contains("http://127.0.0.1:9/.well-known/openid-configuration")
    );
}
