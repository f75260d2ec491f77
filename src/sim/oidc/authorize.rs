//! The simulated provider's sign-in page (`GET /authorize`) and its answer (`POST /authorize`).
//!
//! The page sets a CSRF cookie and carries its value in a hidden field; the answer needs both to match,
//! as a real provider's session would, so only the browser that opened the page can answer it.

use std::fmt::Write as _;
use std::sync::Arc;
use std::time::Instant;

use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use super::state::{Code, known_client, random_secret};
use super::{IdpState, IdpUser, USERS};
use crate::sim::{hidden_inputs, lock, param, redirect_host};
use crate::transport::pages::{cookie, escape};

/// The cookie holding the page's CSRF value.
const CSRF_COOKIE: &str = "sim_idp_csrf";

/// The parameters the form carries through.
const CARRIED: &[&str] = &[
    "response_type",
    "client_id",
    "redirect_uri",
    "scope",
    "state",
    "nonce",
    "code_challenge",
    "code_challenge_method",
];

/// An authorize request that passed the checks.
struct AuthRequest {
    client_id: String,
    redirect_uri: url::Url,
    state: Option<String>,
    nonce: Option<String>,
    challenge: String,
}

/// Checks an authorize request; a problem is a 400 page (no redirect to an unverified place).
fn validate(params: &crate::sim::Query) -> Result<AuthRequest, Response> {
    let client_id = param(params, "client_id").unwrap_or_default();
    if !known_client(client_id) {
        return Err(error_page(
            "Unknown client_id: no application is registered under it.",
        ));
    }
    let redirect_uri = match param(params, "redirect_uri").map(url::Url::parse) {
        Some(Ok(u)) if matches!(u.scheme(), "http" | "https") && u.fragment().is_none() => u,
        _ => {
            return Err(error_page(
                "redirect_uri must be an absolute http(s) URL without a fragment.",
            ));
        }
    };
    if param(params, "response_type") != Some("code") {
        return Err(error_page(
            "Unsupported response_type: only \"code\" is supported.",
        ));
    }
    let scope = param(params, "scope").unwrap_or_default();
    if !scope.split_whitespace().any(|s| s == "openid") {
        return Err(error_page("The scope must include \"openid\"."));
    }
    let challenge = param(params, "code_challenge").unwrap_or_default();
    if param(params, "code_challenge_method") != Some("S256")
        || challenge.len() != 43
        || URL_SAFE_NO_PAD.decode(challenge).is_err()
    {
        return Err(error_page(
            "PKCE is required: send code_challenge (the base64url SHA-256 of the verifier) with code_challenge_method=S256.",
        ));
    }
    Ok(AuthRequest {
        client_id: client_id.to_string(),
        redirect_uri,
        state: param(params, "state").map(str::to_string),
        nonce: param(params, "nonce").map(str::to_string),
        challenge: challenge.to_string(),
    })
}

/// `GET /authorize`: the sign-in page.
pub(super) async fn page(Query(params): Query<crate::sim::Query>) -> Response {
    let request = match validate(&params) {
        Ok(r) => r,
        Err(page) => return page,
    };
    let csrf = random_secret();
    let mut body = format!(
        "<h1>Sign in to Acme</h1>\n<p class=\"muted\">The application <code>{}</code> asks who you are. It will get your name, e-mail address and groups.</p>\n<form method=\"post\" action=\"/authorize\">\n<input type=\"hidden\" name=\"csrf\" value=\"{csrf}\">\n",
        escape(&request.client_id)
    );
    body.push_str(&hidden_inputs(&params, CARRIED));
    let _ = writeln!(
        body,
        "<p><label for=\"user\">User</label>\n<select id=\"user\" name=\"user\">"
    );
    for (i, user) in USERS.iter().enumerate() {
        let _ = writeln!(
            body,
            "<option value=\"{}\"{}>{} ({}; groups: {})</option>",
            user.login,
            if i == 0 { " selected" } else { "" },
            escape(user.name),
            user.login,
            user.groups.join(", ")
        );
    }
    let _ = write!(
        body,
        "</select></p>\n<p class=\"buttons\"><button type=\"submit\" id=\"sign-in\" name=\"decision\" value=\"allow\">Sign in</button>\n\
         <button type=\"submit\" id=\"cancel\" name=\"decision\" value=\"deny\" class=\"secondary\">Cancel</button></p>\n</form>\n\
         <p class=\"muted\">You go back to <b id=\"redirect-host\">{}</b>.</p>\n",
        escape(&redirect_host(request.redirect_uri.as_str()))
    );
    let cookie = format!("{CSRF_COOKIE}={csrf}; Path=/; HttpOnly; SameSite=Lax");
    let mut response = idp_page(StatusCode::OK, "Sign in", &body);
    if let Ok(v) = cookie.parse() {
        response.headers_mut().insert(header::SET_COOKIE, v);
    }
    response
}

/// `POST /authorize`: the user's answer; `303` back to the redirect URI with a code or an error.
pub(super) async fn decision(
    State(state): State<Arc<IdpState>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let params: crate::sim::Query = url::form_urlencoded::parse(&body).into_owned().collect();
    let request = match validate(&params) {
        Ok(r) => r,
        Err(page) => return page,
    };
    let sent = param(&params, "csrf").unwrap_or_default();
    if sent.is_empty() || cookie(&headers, CSRF_COOKIE) != Some(sent) {
        return error_page(
            "This sign-in form was not opened in this browser (or its session ended): open the sign-in link again.",
        );
    }
    let user: IdpUser = match param(&params, "user") {
        None | Some("") => USERS[0],
        Some(login) => match USERS.iter().find(|u| u.login == login) {
            Some(u) => *u,
            None => return error_page("Unknown user."),
        },
    };
    let mut pairs: Vec<(&str, String)> = match param(&params, "decision") {
        Some("allow") => {
            let code = random_secret();
            state.remember(&code);
            lock(&state.codes).insert(
                code.clone(),
                Code {
                    client_id: request.client_id,
                    redirect_uri: request.redirect_uri.to_string(),
                    challenge: request.challenge,
                    nonce: request.nonce,
                    user,
                    issued: Instant::now(),
                },
            );
            vec![("code", code)]
        }
        Some("deny") => vec![
            ("error", "access_denied".into()),
            (
                "error_description",
                "The user cancelled the sign-in.".into(),
            ),
        ],
        _ => return error_page("The form has no decision (allow or deny)."),
    };
    if let Some(s) = request.state {
        pairs.push(("state", s));
    }
    let mut target = request.redirect_uri;
    target.query_pairs_mut().extend_pairs(pairs);
    // The CSRF value is spent.
    let mut response = Redirect::to(target.as_str()).into_response();
    if let Ok(v) = format!("{CSRF_COOKIE}=; Path=/; Max-Age=0").parse() {
        response.headers_mut().insert(header::SET_COOKIE, v);
    }
    response
}

fn error_page(message: &str) -> Response {
    let body = format!(
        "<h1>Sign-in error</h1>\n<p id=\"error\">{}</p>\n",
        escape(message)
    );
    idp_page(StatusCode::BAD_REQUEST, "Sign-in error", &body)
}

/// A page in the simulated provider's own look, with a note that it is simulated.
fn idp_page(status: StatusCode, title: &str, body: &str) -> Response {
    let html = format!(
        "<!doctype html>\n<html lang=\"en\">\n<head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">\
         <title>{title} | Acme identity provider (simulated)</title>\n<style>\
         body{{margin:0;font-family:-apple-system,\"Segoe UI\",Roboto,Helvetica,Arial,sans-serif;color:#1f2937;background:#eef2f7}}\
         header{{background:#4b2aad;color:#fff;padding:14px 24px;font-size:20px;font-weight:700}}\
         .sim{{background:#fff4d6;color:#5e4b00;text-align:center;font-size:13px;padding:6px}}\
         main{{max-width:440px;margin:40px auto;background:#fff;border-radius:8px;box-shadow:0 1px 4px rgba(0,0,0,.2);padding:28px 32px}}\
         h1{{font-size:20px;font-weight:500;margin:0 0 12px}}.muted{{color:#6b7280;font-size:14px}}\
         select{{width:100%;padding:6px;margin-top:4px}}.buttons{{display:flex;gap:8px;justify-content:flex-end}}\
         button{{background:#4b2aad;color:#fff;border:0;border-radius:4px;padding:8px 16px;font-size:14px;cursor:pointer}}\
         button.secondary{{background:transparent;color:#1f2937}}\
         </style></head>\n<body>\n<header>Acme Sign-In</header>\n\
         <p class=\"sim\">Simulated identity provider of devgate's sandbox and tests: no real account is involved.</p>\n\
         <main>\n{body}</main>\n</body>\n</html>\n"
    );
    (status, [(header::CACHE_CONTROL, "no-store")], Html(html)).into_response()
}
