//! The browser side of connecting: `/connect/{provider}`, `/integration-callback`, `/connected`.
//!
//! Pages are small server-rendered HTML with no external assets and a strict Content-Security-Policy
//! (no scripts; the one inline style is allowed by its hash). The connect button POSTs with a
//! double-submit CSRF token (a `SameSite=Strict` cookie that must match the form). After a successful
//! callback the browser is sent to `/connected`, so the code and state do not stay in the address bar.
//! Nothing secret is ever written on a page.

use std::sync::{Arc, LazyLock};

use axum::Router;
use axum::extract::{Form, Path, Query, State};
use axum::http::StatusCode;
use axum::http::header::{self, HeaderMap, HeaderValue};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use serde::Deserialize;
use sha2::{Digest, Sha256};

use crate::oauth::connect::{CallbackParams, Connector, PageError};

const STYLE: &str = "body{font:16px/1.5 system-ui,sans-serif;max-width:34rem;margin:4rem auto;padding:0 1rem;color:#1b1f24}\
h1{font-size:1.4rem}.box{border:1px solid #d0d7de;border-radius:8px;padding:1rem 1.25rem}\
button{font:inherit;padding:.5rem 1.25rem;border:0;border-radius:6px;background:#1f6feb;color:#fff;cursor:pointer}\
.muted{color:#57606a;font-size:.9rem}code{background:#f6f8fa;padding:0 .25rem;border-radius:4px}";

static STYLE_HASH: LazyLock<String> =
    LazyLock::new(|| STANDARD.encode(Sha256::digest(STYLE.as_bytes())));

const CSRF_COOKIE: &str = "devgate_csrf";

/// State shared by the page handlers.
#[derive(Clone)]
pub struct Pages {
    pub connector: Arc<Connector>,
    /// Whether the public URL is https (cookies then carry `Secure`).
    pub secure: bool,
}

pub fn router(pages: Pages) -> Router {
    Router::new()
        .route(
            "/connect/{provider}",
            get(connect_page).post(connect_submit),
        )
        .route("/integration-callback", get(callback))
        .route("/connected", get(connected))
        .with_state(pages)
}

pub(crate) fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// A full page with the security headers every page carries. `form_action` lists where a form on the
/// page may go (including where the POST redirects to).
pub(crate) fn page(status: StatusCode, title: &str, body: &str, form_action: &str) -> Response {
    let html = format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">\
<title>{title} · devgate</title><style>{STYLE}</style></head><body><main>{body}</main>\
<p class=\"muted\">devgate — the MCP gateway your agent uses.</p></body></html>",
        title = escape(title)
    );
    let csp = format!(
        "default-src 'none'; style-src 'sha256-{}'; form-action {form_action}; frame-ancestors 'none'; base-uri 'none'",
        *STYLE_HASH
    );
    let mut response = (status, html).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    if let Ok(v) = HeaderValue::from_str(&csp) {
        headers.insert(header::CONTENT_SECURITY_POLICY, v);
    }
    security_headers(headers);
    response
}

pub(crate) fn security_headers(headers: &mut HeaderMap) {
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
}

pub(crate) fn error_page(e: PageError) -> Response {
    let body = format!(
        "<h1>{}</h1><div class=\"box\"><p>{}</p></div>",
        escape(&e.title),
        escape(&e.message)
    );
    page(e.status, &e.title, &body, "'none'")
}

#[derive(Deserialize)]
struct TicketQuery {
    ticket: Option<String>,
}

async fn connect_page(
    State(pages): State<Pages>,
    Path(provider): Path<String>,
    Query(q): Query<TicketQuery>,
) -> Response {
    let ticket = q.ticket.unwrap_or_default();
    let row = match pages.connector.ticket(&provider, &ticket).await {
        Ok(row) => row,
        Err(e) => return error_page(e),
    };
    let title = pages.connector.title(&provider);
    let csrf = URL_SAFE_NO_PAD.encode(rand::random::<[u8; 24]>());
    let scopes = if row.scopes.is_empty() {
        String::new()
    } else {
        format!(
            "<p>It asks for: {}.</p>",
            row.scopes
                .split_whitespace()
                .map(|s| format!("<code>{}</code>", escape(s)))
                .collect::<Vec<_>>()
                .join(", ")
        )
    };
    let body = format!(
        "<h1>Connect {title} to devgate</h1><div class=\"box\">\
<p>You are connecting your <strong>{title}</strong> account to the devgate user <strong>{user}</strong>. \
devgate will then call {title} on that user's behalf when their agent asks.</p>{scopes}\
<p class=\"muted\">Only continue if you asked your agent for this. If you are not <strong>{user}</strong>, close this page.</p>\
<form method=\"post\" action=\"/connect/{provider_path}\">\
<input type=\"hidden\" name=\"ticket\" value=\"{ticket}\"><input type=\"hidden\" name=\"csrf\" value=\"{csrf}\">\
<button type=\"submit\">Continue to {title}</button></form></div>",
        title = escape(&title),
        user = escape(&row.user),
        provider_path = escape(&provider),
        ticket = escape(&ticket),
    );
    // The POST answers with a redirect to the provider, which `form-action` must allow.
    let mut response = page(
        StatusCode::OK,
        &format!("Connect {title}"),
        &body,
        "'self' https: http:",
    );
    let cookie = format!(
        "{CSRF_COOKIE}={csrf}; Path=/connect; HttpOnly; SameSite=Strict; Max-Age=600{}",
        if pages.secure { "; Secure" } else { "" }
    );
    if let Ok(v) = HeaderValue::from_str(&cookie) {
        response.headers_mut().append(header::SET_COOKIE, v);
    }
    response
}

#[derive(Deserialize)]
struct ConnectForm {
    ticket: String,
    csrf: String,
}

pub(crate) fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

async fn connect_submit(
    State(pages): State<Pages>,
    Path(provider): Path<String>,
    headers: HeaderMap,
    Form(form): Form<ConnectForm>,
) -> Response {
    let same = cookie(&headers, CSRF_COOKIE).is_some_and(|c| !c.is_empty() && c == form.csrf);
    if !same {
        return error_page(PageError {
            status: StatusCode::FORBIDDEN,
            title: "Open the link again".into(),
            message: "This form was not sent from the page devgate showed (the security check failed). Open the link your agent gave you again.".into(),
        });
    }
    match pages.connector.begin(&provider, &form.ticket).await {
        Ok(url) => {
            let mut response = Redirect::to(url.as_str()).into_response();
            security_headers(response.headers_mut());
            response
        }
        Err(e) => error_page(e),
    }
}

async fn callback(State(pages): State<Pages>, Query(params): Query<CallbackParams>) -> Response {
    match pages.connector.complete(&params).await {
        Ok(done) => {
            let query = url::form_urlencoded::Serializer::new(String::new())
                .append_pair("provider", &done.provider_title)
                .append_pair("account", &done.account)
                .append_pair("user", &done.user)
                .finish();
            let mut response = Redirect::to(&format!("/connected?{query}")).into_response();
            security_headers(response.headers_mut());
            response
        }
        Err(e) => error_page(e),
    }
}

#[derive(Deserialize)]
struct ConnectedQuery {
    provider: Option<String>,
    account: Option<String>,
    user: Option<String>,
}

async fn connected(Query(q): Query<ConnectedQuery>) -> Response {
    let provider = escape(q.provider.as_deref().unwrap_or("the provider"));
    let account = escape(q.account.as_deref().unwrap_or("your account"));
    let user = escape(q.user.as_deref().unwrap_or("your devgate user"));
    let body = format!(
        "<h1>{provider} is connected</h1><div class=\"box\"><p>devgate user <strong>{user}</strong> is now connected to the {provider} account \
<strong>{account}</strong>.</p><p>You can close this page and return to your agent.</p></div>"
    );
    page(
        StatusCode::OK,
        &format!("{provider} connected"),
        &body,
        "'none'",
    )
}
