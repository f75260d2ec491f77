//! The token endpoint (code exchange, refresh) with each provider's client authentication, and revoke.

use super::*;

pub(super) fn oauth_error(status: StatusCode, error: &str, description: &str) -> Response {
    (
        status,
        [
            (header::CACHE_CONTROL, "no-store"),
            (header::PRAGMA, "no-cache"),
        ],
        Json(json!({"error": error, "error_description": description})),
    )
        .into_response()
}

pub(super) fn invalid_grant(description: &str) -> Response {
    oauth_error(StatusCode::BAD_REQUEST, "invalid_grant", description)
}

pub(super) fn invalid_client(which: Which) -> Response {
    let mut response = oauth_error(
        StatusCode::UNAUTHORIZED,
        "invalid_client",
        match which {
            Which::Buddy => {
                "Client authentication failed: send client_id and client_secret in the form body."
            }
            Which::Bitbucket => {
                "Client authentication failed: send the consumer key and secret as HTTP Basic auth."
            }
        },
    );
    if which == Which::Bitbucket {
        response.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Basic realm=\"Bitbucket OAuth\""),
        );
    }
    response
}

/// The form of a token or revoke request; anything but a form body reads as empty.
pub(crate) fn form(headers: &HeaderMap, body: &[u8]) -> crate::sim::Query {
    let is_form = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/x-www-form-urlencoded"));
    if is_form {
        url::form_urlencoded::parse(body).into_owned().collect()
    } else {
        Vec::new()
    }
}

/// Checks the client's credentials in the provider's style: Buddy in the form body, Bitbucket as HTTP
/// Basic (percent-decoded, as RFC 6749 §2.3.1 encodes them). Returns the client id.
pub(super) fn authenticate(
    which: Which,
    headers: &HeaderMap,
    form: &crate::sim::Query,
) -> Result<String, Response> {
    let (id, secret) = match which {
        Which::Buddy => (
            param(form, "client_id").map(str::to_string),
            param(form, "client_secret").map(str::to_string),
        ),
        Which::Bitbucket => {
            let basic = headers
                .get(header::AUTHORIZATION)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.strip_prefix("Basic "))
                .and_then(|b| STANDARD.decode(b.trim()).ok())
                .and_then(|b| String::from_utf8(b).ok());
            match basic.as_deref().and_then(|b| b.split_once(':')) {
                Some((id, secret)) => (Some(decode(id)), Some(decode(secret))),
                None => (None, None),
            }
        }
    };
    match (id, secret) {
        (Some(id), Some(secret)) if id == client_id(which) && secret == client_secret(which) => {
            Ok(id)
        }
        _ => Err(invalid_client(which)),
    }
}

pub(crate) fn decode(s: &str) -> String {
    url::form_urlencoded::parse(format!("x={s}").as_bytes())
        .next()
        .map(|(_, v)| v.into_owned())
        .unwrap_or_default()
}

pub(super) async fn token_endpoint(
    which: Which,
    State(state): State<Arc<SimState>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let form = form(&headers, &body);
    let grant_type = param(&form, "grant_type").unwrap_or_default().to_string();
    let mut oauth = lock(&state.oauth);
    *oauth.token_requests[slot(which)]
        .entry(grant_type.clone())
        .or_default() += 1;
    let client = match authenticate(which, &headers, &form) {
        Ok(c) => c,
        Err(r) => return r,
    };
    let reply = match grant_type.as_str() {
        "authorization_code" => exchange_code(which, &mut oauth, &client, &form),
        "refresh_token" => refresh(which, &mut oauth, &client, &form),
        "" if which == Which::Bitbucket => Err(invalid_grant("Unsupported grant type: None")),
        "" => Err(oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "The request has no grant_type (send a form body).",
        )),
        other => Err(oauth_error(
            StatusCode::BAD_REQUEST,
            "unsupported_grant_type",
            &format!("Unsupported grant type: {other}"),
        )),
    };
    match reply {
        Ok(body) => (
            [
                (header::CACHE_CONTROL, "no-store"),
                (header::PRAGMA, "no-cache"),
            ],
            Json(body),
        )
            .into_response(),
        Err(r) => r,
    }
}

pub(super) fn exchange_code(
    which: Which,
    oauth: &mut OAuthState,
    client: &str,
    form: &crate::sim::Query,
) -> Result<Value, Response> {
    let presented = param(form, "code").unwrap_or_default();
    // Single use: a code is gone once presented, whatever happens next.
    let code = oauth
        .codes
        .remove(presented)
        .filter(|c| c.provider == which)
        .ok_or_else(|| {
            invalid_grant(&oauth.described(
                which,
                "The authorization code is invalid or was already used.",
                presented,
            ))
        })?;
    if code.client_id != client {
        return Err(invalid_grant(
            "The authorization code was issued to another client.",
        ));
    }
    if code.issued.elapsed() > CODE_TTL {
        return Err(invalid_grant("The authorization code has expired."));
    }
    if param(form, "redirect_uri") != Some(code.redirect_uri.as_str()) {
        return Err(invalid_grant(
            "redirect_uri does not match the one of the authorization request.",
        ));
    }
    if let Some(challenge) = &code.challenge {
        let verifier = param(form, "code_verifier")
            .ok_or_else(|| invalid_grant("The request has no code_verifier (PKCE)."))?;
        oauth.secrets.push(verifier.to_string());
        if URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes())) != *challenge {
            return Err(invalid_grant(
                "code_verifier does not match the code_challenge (PKCE).",
            ));
        }
    }
    oauth.grants.push(Grant {
        provider: which,
        account: code.account,
        client_id: code.client_id,
        scopes: code.scopes,
        revoked: false,
    });
    let grant = oauth.grants.len() - 1;
    let access = oauth.new_token(grant, Kind::Access);
    let refresh = oauth.new_token(grant, Kind::Refresh);
    Ok(token_json(
        which,
        oauth,
        grant,
        "authorization_code",
        access,
        Some(refresh),
    ))
}

pub(super) fn refresh(
    which: Which,
    oauth: &mut OAuthState,
    client: &str,
    form: &crate::sim::Query,
) -> Result<Value, Response> {
    let presented = param(form, "refresh_token").unwrap_or_default();
    let dead = |oauth: &mut OAuthState| {
        oauth.dead_refresh[slot(which)] += 1;
        invalid_grant(&oauth.described(
            which,
            "The refresh token is invalid, revoked or was already used.",
            presented,
        ))
    };
    let Some(token) = oauth
        .tokens
        .get(presented)
        .filter(|t| t.kind == Kind::Refresh)
    else {
        return Err(invalid_grant(&oauth.described(
            which,
            "The refresh token is invalid.",
            presented,
        )));
    };
    let grant = token.grant;
    let token_dead = token.dead;
    let g = &oauth.grants[grant];
    if g.provider != which {
        return Err(invalid_grant("The refresh token is invalid."));
    }
    if g.client_id != client {
        return Err(invalid_grant(
            "The refresh token was issued to another client.",
        ));
    }
    if token_dead || g.revoked {
        return Err(dead(oauth));
    }
    let access = oauth.new_token(grant, Kind::Access);
    let refresh = if oauth.omit_refresh[slot(which)] {
        None
    } else {
        match which {
            Which::Buddy => Some(presented.to_string()),
            Which::Bitbucket => {
                if let Some(old) = oauth.tokens.get_mut(presented) {
                    old.dead = true;
                }
                Some(oauth.new_token(grant, Kind::Refresh))
            }
        }
    };
    Ok(token_json(
        which,
        oauth,
        grant,
        "refresh_token",
        access,
        refresh,
    ))
}

pub(super) fn token_json(
    which: Which,
    oauth: &OAuthState,
    grant: usize,
    grant_type: &str,
    access: String,
    refresh: Option<String>,
) -> Value {
    let i = slot(which);
    let expires_in = oauth.expiring[i].then_some(oauth.lifetime[i]);
    let mut body = match which {
        Which::Buddy => json!({"access_token": access, "token_type": "Bearer"}),
        Which::Bitbucket => json!({
            "access_token": access,
            "scopes": oauth.grants[grant].scopes.join(" "),
            "token_type": "bearer",
            "state": grant_type,
        }),
    };
    if let Some(e) = expires_in {
        body["expires_in"] = json!(e);
    }
    if let Some(r) = refresh {
        body["refresh_token"] = json!(r);
        if which == Which::Buddy && expires_in.is_some() {
            body["refresh_token_expires_in"] = json!(BUDDY_REFRESH_LIFETIME);
        }
    }
    body
}

/// Buddy's `POST /oauth2/revoke`: with the client's credentials, kills the grant of the token (access
/// or refresh). Unknown tokens are a 200 too (RFC 7009).
pub(super) async fn revoke(
    which: Which,
    State(state): State<Arc<SimState>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let form = form(&headers, &body);
    let client = match authenticate(which, &headers, &form) {
        Ok(c) => c,
        Err(r) => return r,
    };
    let token = param(&form, "token")
        .or_else(|| param(&form, "access_token"))
        .unwrap_or_default();
    if token.is_empty() {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "The request has no token.",
        );
    }
    let mut oauth = lock(&state.oauth);
    let known = oauth
        .tokens
        .get(token)
        .map(|t| (t.grant, t.kind))
        .filter(|(g, _)| {
            oauth.grants[*g].provider == which && oauth.grants[*g].client_id == client
        });
    let revocation = Revocation {
        kind: match known.map(|(_, k)| k) {
            Some(Kind::Access) => "access_token",
            Some(Kind::Refresh) => "refresh_token",
            None => "unknown",
        }
        .into(),
        hint: param(&form, "token_type_hint").map(str::to_string),
        account: known.map(|(g, _)| oauth.grants[g].account),
    };
    oauth.revocations[slot(which)].push(revocation);
    if let Some((grant, _)) = known {
        oauth.revoke_grant(grant);
    }
    (StatusCode::OK, "Token successfully revoked").into_response()
}
