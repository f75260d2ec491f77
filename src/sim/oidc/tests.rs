//! Tests of the simulated OpenID Connect provider over real HTTP on loopback: discovery, the sign-in
//! page (its CSRF cookie), the token endpoint's checks (PKCE, single-use codes, client authentication),
//! ID tokens and their knobs, userinfo, and the control routes.

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use serde_json::{Value, json};

use super::*;
use crate::sim::oauth::tests::{Pkce, pkce};

const REDIRECT: &str = "http://127.0.0.1:9/login/oidc/callback";

fn client() -> reqwest::Client {
    crate::app::http_client()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client")
}

/// The hidden fields of a page's form.
fn hidden_fields(html: &str) -> Vec<(String, String)> {
    html.split("<input type=\"hidden\" ")
        .skip(1)
        .filter_map(|tag| {
            let name = tag.split("name=\"").nth(1)?.split('"').next()?;
            let value = tag.split("value=\"").nth(1)?.split('"').next()?;
            Some((name.to_string(), value.replace("&amp;", "&")))
        })
        .collect()
}

/// Walks the sign-in page as a browser would (keeping its cookie), choosing `user`; returns where the
/// provider sends the browser back. Shared with the relying party's tests.
pub(crate) async fn sign_in(authorize: &url::Url, user: &str) -> url::Url {
    let http = client();
    let page = http.get(authorize.clone()).send().await.expect("page");
    assert_eq!(page.status(), 200, "sign-in page");
    let cookie = page
        .headers()
        .get("set-cookie")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .expect("a CSRF cookie")
        .to_string();
    let html = page.text().await.expect("html");
    let mut form = hidden_fields(&html);
    form.push(("user".into(), user.into()));
    form.push(("decision".into(), "allow".into()));
    let answer = http
        .post(authorize.join("/authorize").expect("url"))
        .header("cookie", cookie)
        .form(&form)
        .send()
        .await
        .expect("answer");
    assert_eq!(
        answer.status(),
        303,
        "{}",
        answer.text().await.unwrap_or_default()
    );
    let location = answer.headers()["location"].to_str().expect("location");
    url::Url::parse(location).expect("absolute")
}

fn authorize_url(idp: &Idp, pkce: &Pkce) -> url::Url {
    let mut url = url::Url::parse(&format!("{}/authorize", idp.issuer)).expect("url");
    url.query_pairs_mut()
        .append_pair("response_type", "code")
        .append_pair("client_id", SIM_OIDC_CLIENT_ID)
        .append_pair("redirect_uri", REDIRECT)
        .append_pair("scope", "openid profile")
        .append_pair("state", "st-1")
        .append_pair("nonce", "n-1")
        .append_pair("code_challenge", &pkce.challenge)
        .append_pair("code_challenge_method", "S256");
    url
}

fn code_of(callback: &url::Url) -> String {
    callback
        .query_pairs()
        .find(|(k, _)| k == "code")
        .map(|(_, v)| v.into_owned())
        .expect("a code")
}

/// Exchanges a code with client_secret_post.
async fn exchange(idp: &Idp, code: &str, verifier: &str) -> reqwest::Response {
    client()
        .post(format!("{}/token", idp.issuer))
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", REDIRECT),
            ("code_verifier", verifier),
            ("client_id", SIM_OIDC_CLIENT_ID),
            ("client_secret", SIM_OIDC_CLIENT_SECRET),
        ])
        .send()
        .await
        .expect("token")
}

/// The provider's discovery document.
async fn discovery(idp: &Idp) -> Value {
    client()
        .get(format!("{}/.well-known/openid-configuration", idp.issuer))
        .send()
        .await
        .expect("discovery")
        .json()
        .await
        .expect("json")
}

/// The claims of a JWT, unverified (the relying party's tests verify).
fn claims(jwt: &str) -> Value {
    let payload = jwt.split('.').nth(1).expect("payload");
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).expect("b64")).expect("json")
}

#[tokio::test]
async fn discovery_names_the_endpoints_and_the_jwks_lists_the_signing_key() {
    let idp = Idp::start().await.expect("idp");
    let doc = discovery(&idp).await;
    assert_eq!(doc["issuer"], json!(idp.issuer));
    assert_eq!(
        doc["token_endpoint"],
        json!(format!("{}/token", idp.issuer))
    );
    assert_eq!(doc["code_challenge_methods_supported"], json!(["S256"]));
    let jwks: Value = client()
        .get(doc["jwks_uri"].as_str().expect("jwks_uri"))
        .send()
        .await
        .expect("jwks")
        .json()
        .await
        .expect("json");
    let kids: Vec<&str> = jwks["keys"]
        .as_array()
        .expect("keys")
        .iter()
        .filter_map(|k| k["kid"].as_str())
        .collect();
    assert!(kids.contains(&idp.state.current_kid().as_str()), "{kids:?}");
    assert_eq!(idp.state.jwks_fetches(), 1);
}

#[tokio::test]
async fn a_chosen_user_gets_an_id_token_naming_them_and_their_groups() {
    let idp = Idp::start().await.expect("idp");
    let p = pkce();
    let callback = sign_in(&authorize_url(&idp, &p), "bob").await;
    assert!(callback.as_str().starts_with(REDIRECT), "{callback}");
    assert!(
        callback
            .query_pairs()
            .any(|(k, v)| k == "state" && v == "st-1")
    );
    let reply: Value = exchange(&idp, &code_of(&callback), &p.verifier)
        .await
        .json()
        .await
        .expect("json");
    let c = claims(reply["id_token"].as_str().expect("id_token"));
    assert_eq!(c["preferred_username"], "bob");
    assert_eq!(c["sub"], "00u7bob1942");
    assert_eq!(c["groups"], json!(["devs"]));
    assert_eq!(c["nonce"], "n-1");
    assert_eq!(c["aud"], SIM_OIDC_CLIENT_ID);
    // userinfo answers for the access token.
    let info: Value = client()
        .get(format!("{}/userinfo", idp.issuer))
        .bearer_auth(reply["access_token"].as_str().expect("access_token"))
        .send()
        .await
        .expect("userinfo")
        .json()
        .await
        .expect("json");
    assert_eq!(info["preferred_username"], "bob");
}

#[tokio::test]
async fn the_form_needs_the_cookie_of_the_browser_that_opened_it() {
    let idp = Idp::start().await.expect("idp");
    let authorize = authorize_url(&idp, &pkce());
    let html = client()
        .get(authorize.clone())
        .send()
        .await
        .expect("page")
        .text()
        .await
        .expect("html");
    let mut form = hidden_fields(&html);
    form.push(("decision".into(), "allow".into()));
    // Posted without the page's cookie, as another browser (or a forged form) would.
    let answer = client()
        .post(authorize.join("/authorize").expect("url"))
        .form(&form)
        .send()
        .await
        .expect("answer");
    assert_eq!(answer.status(), 400);
    assert!(
        answer
            .text()
            .await
            .expect("text")
            .contains("not opened in this browser")
    );
}

#[tokio::test]
async fn codes_are_single_use_and_bound_to_the_pkce_verifier() {
    let idp = Idp::start().await.expect("idp");
    let p = pkce();
    let code = code_of(&sign_in(&authorize_url(&idp, &p), "ada").await);
    let wrong = exchange(&idp, &code, &pkce().verifier).await;
    assert_eq!(wrong.status(), 400);
    let body: Value = wrong.json().await.expect("json");
    assert_eq!(body["error"], "invalid_grant");
    assert!(
        body["error_description"]
            .as_str()
            .expect("text")
            .contains("PKCE")
    );
    // The failed attempt spent the code.
    let again = exchange(&idp, &code, &p.verifier).await;
    assert_eq!(again.status(), 400);
    // A fresh code works once, then not again.
    let p = pkce();
    let code = code_of(&sign_in(&authorize_url(&idp, &p), "ada").await);
    assert_eq!(exchange(&idp, &code, &p.verifier).await.status(), 200);
    assert_eq!(exchange(&idp, &code, &p.verifier).await.status(), 400);
}

#[tokio::test]
async fn client_authentication_is_checked_and_can_be_limited_to_one_method() {
    let idp = Idp::start().await.expect("idp");
    let token = format!("{}/token", idp.issuer);
    let basic = STANDARD.encode(format!("{SIM_OIDC_CLIENT_ID}:wrong"));
    let refused = client()
        .post(&token)
        .header("authorization", format!("Basic {basic}"))
        .form(&[("grant_type", "authorization_code"), ("code", "x")])
        .send()
        .await
        .expect("token");
    assert_eq!(refused.status(), 401);
    let text = refused.text().await.expect("text");
    assert!(
        text.contains("invalid_client") && !text.contains("wrong"),
        "{text}"
    );
    // Only Basic allowed: a correct secret in the body is refused, and discovery says so.
    idp.state.set_knobs(Knobs {
        token_auth: Some("client_secret_basic".into()),
        ..Knobs::default()
    });
    let p = pkce();
    let code = code_of(&sign_in(&authorize_url(&idp, &p), "ada").await);
    assert_eq!(exchange(&idp, &code, &p.verifier).await.status(), 401);
    let doc = discovery(&idp).await;
    assert_eq!(
        doc["token_endpoint_auth_methods_supported"],
        json!(["client_secret_basic"])
    );
}

#[tokio::test]
async fn the_control_routes_turn_knobs_and_rotate_the_key() {
    let idp = Idp::start().await.expect("idp");
    let control = format!("{}/_sim/oidc", idp.issuer);
    let before = idp.state.current_kid();
    let rotated: Value = client()
        .post(format!("{control}/rotate"))
        .send()
        .await
        .expect("rotate")
        .json()
        .await
        .expect("json");
    assert_ne!(rotated["kid"], json!(before));
    assert_eq!(rotated["kid"], json!(idp.state.current_kid()));
    let set = client()
        .post(&control)
        .json(&json!({"audience": "someone-else", "expired": true}))
        .send()
        .await
        .expect("knobs");
    assert_eq!(set.status(), 200);
    let p = pkce();
    let code = code_of(&sign_in(&authorize_url(&idp, &p), "cyd").await);
    let reply: Value = exchange(&idp, &code, &p.verifier)
        .await
        .json()
        .await
        .expect("json");
    let c = claims(reply["id_token"].as_str().expect("id_token"));
    assert_eq!(c["aud"], "someone-else");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs();
    assert!(c["exp"].as_u64().expect("exp") < now, "expired");
    let reset = client().delete(&control).send().await.expect("reset");
    assert_eq!(reset.status(), 200);
    assert_eq!(idp.state.knobs(), Knobs::default());
    // An unknown knob is refused rather than ignored.
    let typo = client()
        .post(&control)
        .json(&json!({"audiense": "x"}))
        .send()
        .await
        .expect("knobs");
    assert!(typo.status().is_client_error());
}
