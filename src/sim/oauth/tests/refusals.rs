//! Tests of refusals and knobs: denied consent, bad requests, expiry, revocation, scopes, faults.

use super::*;

#[tokio::test]
async fn deny_redirects_with_access_denied() {
    let sim = Sim::start().await.unwrap();
    for which in [Which::Buddy, Which::Bitbucket] {
        let redirect = consent(&sim, which, None, Account::first(which).login(), "deny").await;
        assert_eq!(redirect["error"], "access_denied");
        assert!(!redirect["error_description"].is_empty());
        assert_eq!(redirect["state"], "st-123");
        assert!(!redirect.contains_key("code"));
    }
}

#[tokio::test]
async fn bad_authorize_requests_get_an_error_page_not_a_redirect() {
    let sim = Sim::start().await.unwrap();
    for which in [Which::Buddy, Which::Bitbucket] {
        let good = authorize_params(which, None);
        let cases: Vec<Vec<(&str, String)>> = vec![
            good.iter()
                .map(|(k, v)| {
                    (
                        *k,
                        if *k == "client_id" {
                            "nope".into()
                        } else {
                            v.clone()
                        },
                    )
                })
                .collect(),
            good.iter()
                .filter(|(k, _)| *k != "redirect_uri")
                .cloned()
                .collect(),
            good.iter()
                .filter(|(k, _)| *k != "response_type")
                .cloned()
                .collect(),
            good.iter()
                .cloned()
                .chain([
                    ("code_challenge", pkce().challenge),
                    ("code_challenge_method", "plain".into()),
                ])
                .collect(),
        ];
        for params in cases {
            let response = client()
                .get(authorize_url(&sim, which))
                .query(&params)
                .send()
                .await
                .unwrap();
            assert_eq!(response.status(), 400, "{which:?} {params:?}");
            assert!(response.headers().get(header::LOCATION).is_none());
            assert!(
                response
                    .text()
                    .await
                    .unwrap()
                    .contains("Authorization error")
            );
        }
    }
    // Buddy's scopes must be space-separated names.
    let mut params = authorize_params(Which::Buddy, None);
    params.retain(|(k, _)| *k != "scope");
    params.push(("scope", "WORKSPACE+USER_INFO".into()));
    let response = client()
        .get(authorize_url(&sim, Which::Buddy))
        .query(&params)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
}

#[tokio::test]
async fn expiry_knob_gives_the_providers_expired_answer() {
    let sim = Sim::start().await.unwrap();
    let buddy = connect(&sim, Which::Buddy, "nina").await;
    let bitbucket = connect(&sim, Which::Bitbucket, "ann").await;
    sim.state.expire_access_tokens(Account::Nina);
    sim.state.expire_access_tokens(Account::Ann);
    let (status, body) = whoami(&sim, Which::Buddy, s(&buddy["access_token"])).await;
    assert_eq!(status, 401);
    assert_eq!(body["errors"][0]["message"], "Access token expired");
    let (status, body) = whoami(&sim, Which::Bitbucket, s(&bitbucket["access_token"])).await;
    assert_eq!(status, 401);
    assert_eq!(
        body["error"]["message"],
        "Access token expired. Use your refresh token to obtain a new access token."
    );
    // Static tokens are not OAuth tokens; refresh still works and gives a live token.
    let (status, _) = whoami(&sim, Which::Bitbucket, BITBUCKET_TOKEN).await;
    assert_eq!(status, 200);
    let (_, fresh) = refresh_with(&sim, Which::Bitbucket, s(&bitbucket["refresh_token"])).await;
    let (status, _) = whoami(&sim, Which::Bitbucket, s(&fresh["access_token"])).await;
    assert_eq!(status, 200);

    // Lifetime 0: born expired, and says so.
    sim.state.set_token_lifetime(Which::Buddy, 0);
    let (_, short) = refresh_with(&sim, Which::Buddy, s(&buddy["refresh_token"])).await;
    assert_eq!(short["expires_in"], 0);
    let (status, _) = whoami(&sim, Which::Buddy, s(&short["access_token"])).await;
    assert_eq!(status, 401);
    // Tokens that never expire: no expires_in.
    sim.state.set_expiring_tokens(Which::Buddy, false);
    let (_, forever) = refresh_with(&sim, Which::Buddy, s(&buddy["refresh_token"])).await;
    assert!(forever.get("expires_in").is_none());
    assert!(forever.get("refresh_token_expires_in").is_none());
    let (status, _) = whoami(&sim, Which::Buddy, s(&forever["access_token"])).await;
    assert_eq!(status, 200);
    // An unknown token is the other message.
    let (status, body) = whoami(&sim, Which::Bitbucket, "f00d").await;
    assert_eq!(status, 401);
    assert_eq!(
        body["error"]["message"],
        "Token is invalid, expired, or not supported for this endpoint."
    );
}

#[tokio::test]
async fn revoke_knob_makes_refresh_invalid_grant() {
    let sim = Sim::start().await.unwrap();
    let ben = connect(&sim, Which::Bitbucket, "ben").await;
    let ann = connect(&sim, Which::Bitbucket, "ann").await;
    sim.state.revoke_grants(Account::Ben);
    let (status, _) = whoami(&sim, Which::Bitbucket, s(&ben["access_token"])).await;
    assert_eq!(status, 401);
    let (status, body) = refresh_with(&sim, Which::Bitbucket, s(&ben["refresh_token"])).await;
    assert_eq!((status, s(&body["error"])), (400, "invalid_grant"));
    assert_eq!(sim.state.dead_refresh_token_uses(Which::Bitbucket), 1);
    // Ann's grant is untouched.
    let (status, _) = whoami(&sim, Which::Bitbucket, s(&ann["access_token"])).await;
    assert_eq!(status, 200);
    let (status, _) = refresh_with(&sim, Which::Bitbucket, s(&ann["refresh_token"])).await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn narrowed_bitbucket_scopes_are_granted_and_enforced() {
    let sim = Sim::start().await.unwrap();
    sim.state.set_bitbucket_scopes(&["account", "pullrequest"]);
    let page = client()
        .get(authorize_url(&sim, Which::Bitbucket))
        .query(&authorize_params(Which::Bitbucket, None))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(page.contains("<code>pullrequest</code>") && !page.contains("<code>pipeline</code>"));
    let body = connect(&sim, Which::Bitbucket, "ann").await;
    assert_eq!(body["scopes"], "account pullrequest");
    let token = s(&body["access_token"]);
    let get = |path: &str| {
        client()
            .get(format!("{}{path}", sim.bitbucket_url))
            .bearer_auth(token)
            .send()
    };
    let response = get("/repositories/acme/api/pullrequests").await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["x-oauth-scopes"], "account, pullrequest");
    // pullrequest implies repository (read).
    assert_eq!(get("/repositories/acme/api").await.unwrap().status(), 200);
    let response = get("/repositories/acme/api/pipelines").await.unwrap();
    assert_eq!(response.status(), 403);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["detail"]["required"], json!(["pipeline"]));
    let response = client()
        .post(format!(
            "{}/repositories/acme/api/pullrequests/1/approve",
            sim.bitbucket_url
        ))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 403);
}

#[tokio::test]
async fn token_endpoint_faults_apply_and_oauth_requests_are_recorded_without_secrets() {
    let sim = Sim::start().await.unwrap();
    let first = connect(&sim, Which::Bitbucket, "ann").await;
    let buddy = connect(&sim, Which::Buddy, "mike").await;
    sim.state.add_fault(Fault::status(
        Which::Bitbucket,
        BITBUCKET_TOKEN_PATH,
        503,
        1,
    ));
    let (status, _) = refresh_with(&sim, Which::Bitbucket, s(&first["refresh_token"])).await;
    assert_eq!(status, 503);
    // The faulted request never reached the handler: the refresh token did not rotate.
    let (status, second) = refresh_with(&sim, Which::Bitbucket, s(&first["refresh_token"])).await;
    assert_eq!(status, 200);
    let (_, _) = refresh_with(&sim, Which::Buddy, s(&buddy["refresh_token"])).await;
    let response = client()
        .post(format!("{}{BUDDY_REVOKE_PATH}", sim.buddy_url))
        .form(&[
            ("token", s(&buddy["access_token"])),
            ("client_id", BUDDY_CLIENT_ID),
            ("client_secret", BUDDY_CLIENT_SECRET),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);

    let requests = sim.requests();
    let token_posts: Vec<_> = requests
        .iter()
        .filter(|r| r.path == BITBUCKET_TOKEN_PATH)
        .collect();
    assert_eq!(token_posts.len(), 3);
    assert_eq!(
        token_posts[1].body.as_ref().unwrap()["grant_type"],
        "refresh_token"
    );
    assert_eq!(token_posts[1].auth, "Basic");
    assert!(requests.iter().any(|r| {
        r.path == BUDDY_AUTHORIZE_PATH
            && r.method == "GET"
            && r.query
                .as_deref()
                .unwrap()
                .contains("client_id=sim-buddy-client")
    }));
    let buddy_exchange = requests
        .iter()
        .find(|r| r.path == BUDDY_TOKEN_PATH)
        .and_then(|r| r.body.clone())
        .unwrap();
    assert_eq!(buddy_exchange["client_id"], BUDDY_CLIENT_ID);
    assert_eq!(buddy_exchange["redirect_uri"], REDIRECT);
    assert_eq!(buddy_exchange["code"], REDACTED);
    assert_eq!(buddy_exchange["code_verifier"], REDACTED);
    assert_eq!(buddy_exchange["client_secret"], REDACTED);

    let recorded = serde_json::to_string(&requests).unwrap();
    let secrets = [
        BUDDY_CLIENT_SECRET,
        BITBUCKET_CLIENT_SECRET,
        s(&first["access_token"]),
        s(&first["refresh_token"]),
        s(&second["access_token"]),
        s(&second["refresh_token"]),
        s(&buddy["access_token"]),
        s(&buddy["refresh_token"]),
    ];
    for secret in secrets {
        assert!(!recorded.contains(secret), "a secret in the recordings");
    }
    // A secret in a query string is redacted too.
    assert_eq!(
        redacted_query("a=1&refresh_token=abc&code=x%20y&state=s"),
        "a=1&refresh_token=%5Bredacted%5D&code=%5Bredacted%5D&state=s"
    );
}

#[tokio::test]
async fn oauth_knobs_over_http() {
    let sim = Sim::start().await.unwrap();
    let body = connect(&sim, Which::Bitbucket, "ben").await;
    let knob = |v: Value| {
        client()
            .post(format!("{}/_sim/oauth", sim.buddy_url))
            .json(&v)
            .send()
    };
    let r = knob(json!({"op": "expire_access_tokens", "account": "ben"}))
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    let (status, _) = whoami(&sim, Which::Bitbucket, s(&body["access_token"])).await;
    assert_eq!(status, 401);
    knob(json!({"op": "token_lifetime", "provider": "bitbucket", "seconds": 60}))
        .await
        .unwrap();
    let (_, fresh) = refresh_with(&sim, Which::Bitbucket, s(&body["refresh_token"])).await;
    assert_eq!(fresh["expires_in"], 60);
    let state: Value = client()
        .get(format!(
            "{}/_sim/oauth",
            sim.bitbucket_url.trim_end_matches("/2.0")
        ))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(state["token_requests"]["bitbucket"]["refresh_token"], 1);
    assert_eq!(
        state["token_requests"]["bitbucket"]["authorization_code"],
        1
    );
    assert_eq!(state["live_grants"]["ben"], 1);
}
