//! Unit tests of config loading and checking: env references and overrides, problems listed at once, literal-secret warnings, credential hints from the catalog.

use super::*;
use crate::catalog::Catalog;

fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

#[test]
fn env_references_and_overrides_apply() {
    let text = r#"
        [providers.buddy]
        token = "${BUDDY_TOKEN}"
        workspace = "acme"
    "#;
    let c = Config::from_toml(
        text,
        "t.toml",
        env(&[
            ("BUDDY_TOKEN", "tok-123"),
            ("DEVGATE_TOOLS__READ_ONLY", "true"),
            ("DEVGATE_TOOLS__TOOLSETS", r#"["pipelines"]"#),
            ("DEVGATE_PROVIDERS__BUDDY__API_BASE", "http://127.0.0.1:9/x"),
            ("DEVGATE_CONFIG", "ignored.toml"),
            ("DEVGATE_REQUIRE_BROWSER", "1"),
        ]),
    )
    .unwrap();
    let buddy = &c.providers["buddy"];
    assert_eq!(buddy.token.as_ref().unwrap().expose(), "tok-123");
    assert_eq!(buddy.api_base.as_deref(), Some("http://127.0.0.1:9/x"));
    assert!(c.tools.read_only);
    assert_eq!(c.tools.toolsets, ["pipelines"]);
    assert!(c.warnings.is_empty());
    assert_eq!(format!("{buddy:?}").matches("tok-123").count(), 0);
}

#[test]
fn missing_env_and_unknown_keys_name_the_setting() {
    let err = Config::from_toml("[providers.buddy]\ntoken = \"${NOPE}\"", "t.toml", env(&[]))
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "providers.buddy.token: environment variable NOPE is not set"
    );
    let err = Config::from_toml("[tools]\nread_onyl = true", "t.toml", env(&[])).unwrap_err();
    assert!(err.to_string().contains("read_onyl"), "{err}");
}

#[test]
fn every_problem_is_listed_and_the_rest_still_loads() {
    let text = r#"
        [tools]
        read_onyl = true
        text_cap_bytes = "big"
        toolsets = ["pipelines"]
        [providers.buddy]
        client_id = "${NO_ID}"
        client_secret = "${NO_SECRET}"
        colour = "blue"
    "#;
    let (config, problems) = Config::from_toml_all(text, "t.toml", env(&[]));
    let shown: Vec<String> = problems.iter().map(ToString::to_string).collect();
    for expected in [
        "providers.buddy.client_id: environment variable NO_ID is not set",
        "providers.buddy.client_secret: environment variable NO_SECRET is not set",
        "unknown field `read_onyl`",
        "unknown field `colour`",
        "in `tools.text_cap_bytes`",
    ] {
        assert!(
            shown.iter().any(|p| p.contains(expected)),
            "{expected} in {shown:?}"
        );
    }
    assert_eq!(shown.len(), 5, "{shown:?}");
    assert!(problems[1].is_missing_secret() && !problems[0].is_missing_secret());
    let config = config.expect("the rest loads");
    assert_eq!(config.tools.toolsets, ["pipelines"]);
    assert!(config.providers["buddy"].uses_oauth());
}

#[test]
fn literal_secrets_are_warned_about() {
    let c = Config::from_toml("[providers.buddy]\ntoken = \"abc\"", "t.toml", env(&[])).unwrap();
    assert_eq!(c.warnings.len(), 1);
    assert!(c.warnings[0].contains("providers.buddy.token") && !c.warnings[0].contains("abc"));
}

#[test]
fn the_no_credentials_problem_offers_email_and_api_token_where_the_catalog_says_so() {
    let catalog = Catalog::builtin().expect("the shipped catalogs load");
    let c = Config::from_toml(
        "[providers.buddy]\n[providers.bitbucket]\n",
        "devgate.toml",
        env(&[]),
    )
    .unwrap();
    let problems = c.validate(&catalog);
    let about = |id: &str| {
        problems
            .iter()
            .find(|p| p.starts_with(&format!("providers.{id}: no credentials")))
            .unwrap_or_else(|| panic!("no credentials problem for {id}: {problems:?}"))
            .clone()
    };
    assert!(about("bitbucket").contains("(or email + api_token)"));
    assert!(!about("buddy").contains("api_token"));
}
