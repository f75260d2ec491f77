//! Tests of the simulated authorization servers: code flows, PKCE, client auth, refresh, revoke.

use super::*;
use crate::sim::{BITBUCKET_TOKEN, BUDDY_TOKEN, Fault, Sim};

fn client() -> reqwest::Client {
    crate::app::http_client()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client")
}

const REDIRECT: &str = "http://127.0.0.1:9/integration-callback";

fn origin(sim: &Sim, which: Which) -> String {
    match which {
        Which::Buddy => sim.buddy_url.clone(),
        Which::Bitbucket => sim.bitbucket_url.trim_end_matches("/2.0").to_string(),
    }
}

fn api(sim: &Sim, which: Which) -> String {
    match which {
        Which::Buddy => sim.buddy_url.clone(),
        Which::Bitbucket => sim.bitbucket_url.clone(),
    }
}

fn authorize_url(sim: &Sim, which: Which) -> String {
    let path = match which {
        Which::Buddy => BUDDY_AUTHORIZE_PATH,
        Which::Bitbucket => BITBUCKET_AUTHORIZE_PATH,
    };
    format!("{}{path}", origin(sim, which))
}

fn token_url(sim: &Sim, which: Which) -> String {
    let path = match which {
        Which::Buddy => BUDDY_TOKEN_PATH,
        Which::Bitbucket => BITBUCKET_TOKEN_PATH,
    };
    format!("{}{path}", origin(sim, which))
}

/// A PKCE pair (S256); the simulated OpenID provider's tests use it too.
pub(crate) struct Pkce {
    pub(crate) verifier: String,
    pub(crate) challenge: String,
}

pub(crate) fn pkce() -> Pkce {
    let verifier = URL_SAFE_NO_PAD.encode(rand::random::<[u8; 32]>());
    let challenge = URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()));
    Pkce {
        verifier,
        challenge,
    }
}

fn authorize_params(which: Which, pkce: Option<&Pkce>) -> Vec<(&'static str, String)> {
    let mut p = vec![
        ("client_id", client_id(which).to_string()),
        ("response_type", "code".to_string()),
        ("redirect_uri", REDIRECT.to_string()),
        ("state", "st-123".to_string()),
    ];
    if which == Which::Buddy {
        p.push(("type", "web_server".into()));
        p.push(("scope", "WORKSPACE USER_INFO".into()));
    }
    if let Some(pkce) = pkce {
        p.push(("code_challenge", pkce.challenge.clone()));
        p.push(("code_challenge_method", "S256".into()));
    }
    p
}

/// GETs the consent page, then POSTs its form with the account and decision; returns the redirect's
/// query pairs.
async fn consent(
    sim: &Sim,
    which: Which,
    pkce: Option<&Pkce>,
    account: &str,
    decision: &str,
) -> HashMap<String, String> {
    let params = authorize_params(which, pkce);
    let page = client()
        .get(authorize_url(sim, which))
        .query(&params)
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 200);
    let html = page.text().await.unwrap();
    let brand = match which {
        Which::Buddy => "Buddy.Works",
        Which::Bitbucket => "Bitbucket",
    };
    assert!(html.contains(&format!("<header>{brand}</header>")));
    assert!(html.contains("<b>devgate</b> ") && html.contains(brand));
    assert!(html.contains("<select id=\"account\" name=\"account\">"));
    assert!(html.contains("name=\"decision\" value=\"allow\""));
    assert!(html.contains("name=\"decision\" value=\"deny\""));
    for (k, v) in &params {
        assert!(
            html.contains(&format!("name=\"{k}\" value=\"{}\"", escape(v))),
            "{k} carried"
        );
    }
    let mut form = params.clone();
    form.push(("account", account.into()));
    form.push(("decision", decision.into()));
    let response = client()
        .post(authorize_url(sim, which))
        .form(&form)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 303);
    let location = response.headers()[header::LOCATION].to_str().unwrap();
    assert!(location.starts_with(REDIRECT), "{location}");
    url::Url::parse(location)
        .unwrap()
        .query_pairs()
        .into_owned()
        .collect()
}

/// Sends a token request with the provider's client authentication.
async fn token_request(sim: &Sim, which: Which, fields: &[(&str, &str)]) -> (u16, Value) {
    let mut form: Vec<(&str, &str)> = fields.to_vec();
    let mut request = client().post(token_url(sim, which));
    match which {
        Which::Buddy => {
            form.push(("client_id", BUDDY_CLIENT_ID));
            form.push(("client_secret", BUDDY_CLIENT_SECRET));
        }
        Which::Bitbucket => {
            request = request.basic_auth(BITBUCKET_CLIENT_ID, Some(BITBUCKET_CLIENT_SECRET));
        }
    }
    let response = request.form(&form).send().await.unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

async fn exchange(sim: &Sim, which: Which, code: &str, verifier: Option<&str>) -> (u16, Value) {
    let mut fields = vec![
        ("grant_type", "authorization_code"),
        ("code", code),
        ("redirect_uri", REDIRECT),
    ];
    if let Some(v) = verifier {
        fields.push(("code_verifier", v));
    }
    token_request(sim, which, &fields).await
}

async fn refresh_with(sim: &Sim, which: Which, token: &str) -> (u16, Value) {
    token_request(
        sim,
        which,
        &[("grant_type", "refresh_token"), ("refresh_token", token)],
    )
    .await
}

/// Runs the whole code flow with PKCE for an account; returns the token response.
async fn connect(sim: &Sim, which: Which, account: &str) -> Value {
    let pkce = pkce();
    let redirect = consent(sim, which, Some(&pkce), account, "allow").await;
    assert_eq!(redirect["state"], "st-123");
    let (status, body) = exchange(sim, which, &redirect["code"], Some(&pkce.verifier)).await;
    assert_eq!(status, 200, "{body}");
    body
}

async fn whoami(sim: &Sim, which: Which, token: &str) -> (u16, Value) {
    let response = client()
        .get(format!("{}/user", api(sim, which)))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap())
}

fn s(v: &Value) -> &str {
    v.as_str().expect("a string")
}

#[tokio::test]
async fn buddy_code_flow_issues_tokens_for_the_chosen_account() {
    let sim = Sim::start().await.unwrap();
    let body = connect(&sim, Which::Buddy, "nina").await;
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["expires_in"], 3600);
    assert_eq!(body["refresh_token_expires_in"], BUDDY_REFRESH_LIFETIME);
    assert!(body.get("scope").is_none() && body.get("scopes").is_none());
    let access = s(&body["access_token"]);
    assert_eq!(access.len(), 64);
    assert!(access.bytes().all(|b| b.is_ascii_hexdigit()));
    assert_ne!(access, s(&body["refresh_token"]));

    let (status, user) = whoami(&sim, Which::Buddy, access).await;
    assert_eq!(status, 200);
    assert_eq!(user["id"], 2);
    assert_eq!(user["name"], "Nina Alvarez");
    // Nina is only in acme.
    let ws: Value = client()
        .get(format!("{}/workspaces", sim.buddy_url))
        .bearer_auth(access)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let domains: Vec<&str> = ws["workspaces"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| s(&w["domain"]))
        .collect();
    assert_eq!(domains, ["acme"]);

    // Mike through OAuth, and the static token is Mike too.
    let mike = connect(&sim, Which::Buddy, "mike").await;
    assert_ne!(mike["access_token"], body["access_token"]);
    let (_, user) = whoami(&sim, Which::Buddy, s(&mike["access_token"])).await;
    assert_eq!(user["id"], 1);
    let (_, user) = whoami(&sim, Which::Buddy, BUDDY_TOKEN).await;
    assert_eq!(user["name"], "Mike Benson");
    assert_eq!(sim.state.live_grants(Account::Nina), 1);
    assert_eq!(
        sim.state.token_requests(Which::Buddy, "authorization_code"),
        2
    );
    let last = sim.requests().pop().unwrap();
    assert_eq!(last.account.as_deref(), Some("mike"));
}

#[tokio::test]
async fn bitbucket_code_flow_issues_tokens_for_the_chosen_account() {
    let sim = Sim::start().await.unwrap();
    let body = connect(&sim, Which::Bitbucket, "ben").await;
    assert_eq!(body["token_type"], "bearer");
    assert_eq!(body["state"], "authorization_code");
    assert_eq!(body["expires_in"], 7200);
    assert_eq!(body["scopes"], DEFAULT_BITBUCKET_SCOPES.join(" "));
    let access = s(&body["access_token"]);
    let (status, user) = whoami(&sim, Which::Bitbucket, access).await;
    assert_eq!(status, 200);
    assert_eq!(user["display_name"], "Ben Ortiz");
    assert_eq!(user["nickname"], "bortiz");
    let (_, ann) = whoami(&sim, Which::Bitbucket, BITBUCKET_TOKEN).await;
    assert_eq!(ann["display_name"], "Ann Dev");
    assert_ne!(user["uuid"], ann["uuid"]);
    assert_ne!(user["account_id"], ann["account_id"]);

    let workspaces = |token: String| {
        let url = format!("{}/user/workspaces", sim.bitbucket_url);
        async move {
            let v: Value = client()
                .get(url)
                .bearer_auth(token)
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            v["values"]
                .as_array()
                .unwrap()
                .iter()
                .map(|w| {
                    (
                        s(&w["workspace"]["slug"]).to_string(),
                        w["administrator"].as_bool().unwrap(),
                    )
                })
                .collect::<Vec<_>>()
        }
    };
    assert_eq!(
        workspaces(access.to_string()).await,
        [("acme".to_string(), false), ("bortiz".to_string(), true)]
    );
    assert_eq!(
        workspaces(BITBUCKET_TOKEN.to_string()).await,
        [("acme".to_string(), false), ("acme-labs".to_string(), true)]
    );
    let ann_oauth = connect(&sim, Which::Bitbucket, "ann").await;
    let (_, user) = whoami(&sim, Which::Bitbucket, s(&ann_oauth["access_token"])).await;
    assert_eq!(user["display_name"], "Ann Dev");
}

#[tokio::test]
async fn pkce_mismatch_missing_verifier_and_code_reuse_are_invalid_grant() {
    let sim = Sim::start().await.unwrap();
    for which in [Which::Buddy, Which::Bitbucket] {
        let account = Account::first(which).login();
        let pkce = pkce();
        let redirect = consent(&sim, which, Some(&pkce), account, "allow").await;
        let (status, body) =
            exchange(&sim, which, &redirect["code"], Some("not-the-verifier")).await;
        assert_eq!(
            (status, s(&body["error"])),
            (400, "invalid_grant"),
            "{which:?}"
        );
        // The code was spent by the failed attempt.
        let (status, body) = exchange(&sim, which, &redirect["code"], Some(&pkce.verifier)).await;
        assert_eq!((status, s(&body["error"])), (400, "invalid_grant"));

        let redirect = consent(&sim, which, Some(&pkce), account, "allow").await;
        let (status, body) = exchange(&sim, which, &redirect["code"], None).await;
        assert_eq!((status, s(&body["error"])), (400, "invalid_grant"));

        // Without PKCE; then reuse.
        let redirect = consent(&sim, which, None, account, "allow").await;
        let (status, _) = exchange(&sim, which, &redirect["code"], None).await;
        assert_eq!(status, 200);
        let (status, body) = exchange(&sim, which, &redirect["code"], None).await;
        assert_eq!((status, s(&body["error"])), (400, "invalid_grant"));

        // Redirect URI must match.
        let redirect = consent(&sim, which, None, account, "allow").await;
        let (status, body) = token_request(
            &sim,
            which,
            &[
                ("grant_type", "authorization_code"),
                ("code", &redirect["code"]),
                ("redirect_uri", "http://127.0.0.1:9/elsewhere"),
            ],
        )
        .await;
        assert_eq!((status, s(&body["error"])), (400, "invalid_grant"));
        // No error message names the code.
        assert!(!body.to_string().contains(&redirect["code"]));
    }
}

#[tokio::test]
async fn client_authentication_follows_each_providers_style() {
    let sim = Sim::start().await.unwrap();
    // Bitbucket: credentials in the form instead of Basic → 401.
    let redirect = consent(&sim, Which::Bitbucket, None, "ann", "allow").await;
    let response = client()
        .post(token_url(&sim, Which::Bitbucket))
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", &redirect["code"]),
            ("redirect_uri", REDIRECT),
            ("client_id", BITBUCKET_CLIENT_ID),
            ("client_secret", BITBUCKET_CLIENT_SECRET),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"], "invalid_client");
    // Wrong Basic secret → 401, and the message does not echo it.
    let response = client()
        .post(token_url(&sim, Which::Bitbucket))
        .basic_auth(BITBUCKET_CLIENT_ID, Some("guessed-secret"))
        .form(&[("grant_type", "refresh_token"), ("refresh_token", "x")])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);
    assert!(!response.text().await.unwrap().contains("guessed-secret"));

    // Buddy: no secret → 401; Basic instead of the form → 401.
    let redirect = consent(&sim, Which::Buddy, None, "mike", "allow").await;
    let response = client()
        .post(token_url(&sim, Which::Buddy))
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", &redirect["code"]),
            ("redirect_uri", REDIRECT),
            ("client_id", BUDDY_CLIENT_ID),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"], "invalid_client");
    let response = client()
        .post(token_url(&sim, Which::Buddy))
        .basic_auth(BUDDY_CLIENT_ID, Some(BUDDY_CLIENT_SECRET))
        .form(&[("grant_type", "refresh_token"), ("refresh_token", "x")])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);

    // Unknown grant types; Bitbucket's answer to a JSON body.
    let (status, body) = token_request(&sim, Which::Buddy, &[("grant_type", "password")]).await;
    assert_eq!((status, s(&body["error"])), (400, "unsupported_grant_type"));
    let response = client()
        .post(token_url(&sim, Which::Bitbucket))
        .basic_auth(BITBUCKET_CLIENT_ID, Some(BITBUCKET_CLIENT_SECRET))
        .json(&json!({"grant_type": "refresh_token"}))
        .send()
        .await
        .unwrap();
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error_description"], "Unsupported grant type: None");
}

#[tokio::test]
async fn bitbucket_refresh_tokens_rotate() {
    let sim = Sim::start().await.unwrap();
    let first = connect(&sim, Which::Bitbucket, "ben").await;
    let old = s(&first["refresh_token"]);
    let (status, second) = refresh_with(&sim, Which::Bitbucket, old).await;
    assert_eq!(status, 200, "{second}");
    assert_eq!(second["state"], "refresh_token");
    assert_eq!(second["scopes"], first["scopes"]);
    let new = s(&second["refresh_token"]);
    assert_ne!(new, old);
    assert_ne!(second["access_token"], first["access_token"]);
    let (_, user) = whoami(&sim, Which::Bitbucket, s(&second["access_token"])).await;
    assert_eq!(user["display_name"], "Ben Ortiz");

    let (status, body) = refresh_with(&sim, Which::Bitbucket, old).await;
    assert_eq!((status, s(&body["error"])), (400, "invalid_grant"));
    assert_eq!(sim.state.dead_refresh_token_uses(Which::Bitbucket), 1);
    let (status, third) = refresh_with(&sim, Which::Bitbucket, new).await;
    assert_eq!(status, 200);
    assert_eq!(
        sim.state.token_requests(Which::Bitbucket, "refresh_token"),
        3
    );

    // With the refresh token left out, the old one stays good.
    sim.state.set_omit_refresh_token(Which::Bitbucket, true);
    let current = s(&third["refresh_token"]);
    let (status, body) = refresh_with(&sim, Which::Bitbucket, current).await;
    assert_eq!(status, 200);
    assert!(body.get("refresh_token").is_none());
    let (status, _) = refresh_with(&sim, Which::Bitbucket, current).await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn buddy_refresh_keeps_the_refresh_token_and_revoke_kills_the_grant() {
    let sim = Sim::start().await.unwrap();
    let first = connect(&sim, Which::Buddy, "mike").await;
    let refresh = s(&first["refresh_token"]);
    let (status, second) = refresh_with(&sim, Which::Buddy, refresh).await;
    assert_eq!(status, 200);
    assert_eq!(second["refresh_token"], refresh);
    assert_ne!(second["access_token"], first["access_token"]);
    // The earlier access token still works until it expires.
    let (status, _) = whoami(&sim, Which::Buddy, s(&first["access_token"])).await;
    assert_eq!(status, 200);

    sim.state.set_omit_refresh_token(Which::Buddy, true);
    let (status, third) = refresh_with(&sim, Which::Buddy, refresh).await;
    assert_eq!(status, 200);
    assert!(third.get("refresh_token").is_none());
    sim.state.set_omit_refresh_token(Which::Buddy, false);

    let response = client()
        .post(format!("{}{BUDDY_REVOKE_PATH}", sim.buddy_url))
        .form(&[
            ("token", s(&third["access_token"])),
            ("token_type_hint", "access_token"),
            ("client_id", BUDDY_CLIENT_ID),
            ("client_secret", BUDDY_CLIENT_SECRET),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let (status, body) = whoami(&sim, Which::Buddy, s(&third["access_token"])).await;
    assert_eq!(status, 401);
    assert_eq!(body["errors"][0]["message"], "Invalid access token");
    let (status, body) = refresh_with(&sim, Which::Buddy, refresh).await;
    assert_eq!((status, s(&body["error"])), (400, "invalid_grant"));
    assert_eq!(sim.state.dead_refresh_token_uses(Which::Buddy), 1);
    assert_eq!(sim.state.live_grants(Account::Mike), 0);
    // The static token is untouched.
    let (status, _) = whoami(&sim, Which::Buddy, BUDDY_TOKEN).await;
    assert_eq!(status, 200);
}

mod refusals;
