//! The browser side of connecting: `/connect/{provider}`, `/integration-callback`, `/connected`; and
//! the pages `devgate http` shows a browser that opens `/` or `/mcp` ([`home`], [`mcp_hint`]).
//!
//! Pages are small server-rendered HTML with no external assets and a strict Content-Security-Policy
//! (no scripts; the one inline style is allowed by its hash). The connect button POSTs with a
//! double-submit CSRF token (a `SameSite=Strict` cookie that must match the form). Its answer gives the
//! browser the flow cookie ([`FlowCookie`]: `HttpOnly`, `SameSite=Lax` because the provider's redirect
//! back is a cross-site top-level GET, `Path=/integration-callback`, 10 minutes), without which the
//! callback connects nothing; the callback clears it, whatever the outcome.
//!
//! After a callback that got past the state and browser checks — connected, declined on the
//! provider's page, or failed there — the browser is sent to `/connected`, so no code, state or `error`
//! stays in the address bar. What that page says comes from a short-lived cookie the callback sets,
//! sealed with the vault's key; its query string is ignored, so no link can make it claim a connection.
//! Nothing secret is ever written on a page.

use std::sync::{Arc, LazyLock};

use axum::Router;
use axum::extract::rejection::FormRejection;
use axum::extract::{Form, Path, Query, State};
use axum::http::StatusCode;
use axum::http::header::{self, HeaderMap, HeaderValue};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use serde::Deserialize;
use sha2::{Digest, Sha256};

use crate::oauth::connect::{CallbackParams, Connector, FlowCookie, PageError, TTL_SECS};

const STYLE: &str = "body{font:16px/1.5 system-ui,sans-serif;max-width:34rem;margin:4rem auto;padding:0 1rem;color:#1b1f24}\
h1{font-size:1.4rem}.box{border:1px solid #d0d7de;border-radius:8px;padding:1rem 1.25rem}\
button{font:inherit;padding:.5rem 1.25rem;border:0;border-radius:6px;background:#1f6feb;color:#fff;cursor:pointer}\
.muted{color:#57606a;font-size:.9rem}code{background:#f6f8fa;padding:0 .25rem;border-radius:4px}";

static STYLE_HASH: LazyLock<String> =
    LazyLock::new(|| STANDARD.encode(Sha256::digest(STYLE.as_bytes())));

const CSRF_COOKIE: &str = "devgate_csrf";
/// The success page's cookie, one per provider (two tabs connecting two providers each see theirs).
const DONE_COOKIE_PREFIX: &str = "devgate_done_";
/// How long `/connected` can be reloaded after a callback.
const DONE_SECS: i64 = 300;
/// Marks a sealed value as the success page's, so no other sealed value is taken for one.
const DONE_PURPOSE: &str = "connected-page";

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
    let described = pages.connector.describe_scopes(&provider, &row.scopes);
    let scopes = if described.is_empty() {
        String::new()
    } else {
        let items: String = described
            .iter()
            .map(|(name, description)| {
                if description.is_empty() {
                    format!("<li><code>{}</code></li>", escape(name))
                } else {
                    format!(
                        "<li>{} <span class=\"muted\">(<code>{}</code>)</span></li>",
                        escape(description),
                        escape(name)
                    )
                }
            })
            .collect();
        let intro = if pages.connector.sends_scopes(&provider) {
            format!("{} will ask you to allow devgate to:", escape(&title))
        } else {
            format!(
                "devgate's tools need these {0} permissions ({0} grants those set on devgate's OAuth consumer):",
                escape(&title)
            )
        };
        format!("<p>{intro}</p><ul>{items}</ul>")
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
    form: Result<Form<ConnectForm>, FormRejection>,
) -> Response {
    let form = match form {
        Ok(Form(form)) => form,
        Err(rejection) => {
            let status = rejection.status();
            return error_page(PageError::new(
                status,
                "Open the link again",
                if status == StatusCode::PAYLOAD_TOO_LARGE {
                    "The form sent was larger than devgate accepts. Open the link your agent gave you again."
                } else {
                    "The form sent was not the one devgate showed. Open the link your agent gave you again."
                },
            ));
        }
    };
    let same = cookie(&headers, CSRF_COOKIE).is_some_and(|c| !c.is_empty() && c == form.csrf);
    if !same {
        return error_page(PageError::new(
            StatusCode::FORBIDDEN,
            "Open the link again",
            "This form was not sent from the page devgate showed (the security check failed). Open the link your agent gave you again.",
        ));
    }
    match pages.connector.begin(&provider, &form.ticket).await {
        Ok(begun) => {
            let mut response = Redirect::to(begun.authorize_url.as_str()).into_response();
            set_cookie(
                &mut response,
                &pages,
                &begun.cookie.name,
                &begun.cookie.value,
                "/integration-callback",
                "Lax",
                TTL_SECS,
            );
            security_headers(response.headers_mut());
            response
        }
        Err(e) => error_page(e),
    }
}

/// Appends a `Set-Cookie` (always `HttpOnly`; `Secure` when the public URL is https). `max_age` 0
/// clears the cookie.
fn set_cookie(
    response: &mut Response,
    pages: &Pages,
    name: &str,
    value: &str,
    path: &str,
    same_site: &str,
    max_age: i64,
) {
    let cookie = format!(
        "{name}={value}; Path={path}; HttpOnly; SameSite={same_site}; Max-Age={max_age}{}",
        if pages.secure { "; Secure" } else { "" }
    );
    if let Ok(v) = HeaderValue::from_str(&cookie) {
        response.headers_mut().append(header::SET_COOKIE, v);
    }
}

async fn callback(
    State(pages): State<Pages>,
    headers: HeaderMap,
    Query(params): Query<CallbackParams>,
) -> Response {
    let flow_cookie = params
        .state
        .as_deref()
        .filter(|s| !s.is_empty())
        .map(FlowCookie::name_for);
    let presented = flow_cookie.as_deref().and_then(|n| cookie(&headers, n));
    let (user, provider, outcome) = match pages.connector.complete(&params, presented).await {
        // A sign-in at the authorization server's `/login` goes on to its consent page.
        Ok(done) if done.signed_in => {
            let response =
                crate::auth_server::login::signed_in(&pages.connector, &done, pages.secure);
            return clear_flow(response, &pages, flow_cookie.as_deref());
        }
        Ok(done) => (
            done.user,
            done.provider,
            Outcome::Connected {
                account: done.account,
            },
        ),
        Err(PageError {
            ended: Some((user, provider)),
            title,
            message,
            ..
        }) => (user, provider, Outcome::Failed { title, message }),
        Err(e) => return clear_flow(error_page(e), &pages, flow_cookie.as_deref()),
    };
    let mut response = Redirect::to("/connected").into_response();
    let sealed = seal_done(&pages, &user, &provider, &outcome);
    set_cookie(
        &mut response,
        &pages,
        &format!("{DONE_COOKIE_PREFIX}{provider}"),
        &sealed,
        "/connected",
        "Lax",
        DONE_SECS,
    );
    security_headers(response.headers_mut());
    clear_flow(response, &pages, flow_cookie.as_deref())
}

/// The flow is over either way (its state is used up): the browser forgets its cookie.
fn clear_flow(mut response: Response, pages: &Pages, flow_cookie: Option<&str>) -> Response {
    if let Some(name) = flow_cookie {
        set_cookie(
            &mut response,
            pages,
            name,
            "",
            "/integration-callback",
            "Lax",
            0,
        );
    }
    response
}

/// What a callback came to, as the result page tells it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum Outcome {
    Connected {
        account: String,
    },
    /// Declined on the provider's page, or failed after it; nothing was connected.
    Failed {
        title: String,
        message: String,
    },
}

/// The result page's cookie value: who connected which account (or why nothing was connected), sealed
/// for (user, provider) with an expiry, as `base64(user).provider.sealed`.
fn seal_done(pages: &Pages, user: &str, provider: &str, outcome: &Outcome) -> String {
    let mut payload = serde_json::json!({
        "purpose": DONE_PURPOSE,
        "until": crate::vault::now() + DONE_SECS,
    });
    match outcome {
        Outcome::Connected { account } => payload["account"] = account.as_str().into(),
        Outcome::Failed { title, message } => {
            payload["failed"] = serde_json::json!({ "title": title, "message": message });
        }
    }
    let sealed = pages
        .connector
        .vault()
        .seal(user, provider, &payload.to_string());
    format!("{}.{provider}.{sealed}", URL_SAFE_NO_PAD.encode(user))
}

/// A result cookie's (user, provider, outcome), if it opens, is the result page's and has not expired.
fn open_done(pages: &Pages, value: &str) -> Option<(String, String, Outcome)> {
    let mut parts = value.splitn(3, '.');
    let user = String::from_utf8(URL_SAFE_NO_PAD.decode(parts.next()?).ok()?).ok()?;
    let provider = parts.next()?.to_string();
    let opened = pages
        .connector
        .vault()
        .open(&user, &provider, parts.next()?)
        .ok()?;
    let payload: serde_json::Value = serde_json::from_str(&opened).ok()?;
    let fresh = payload["until"]
        .as_i64()
        .is_some_and(|t| t > crate::vault::now());
    if payload["purpose"] != DONE_PURPOSE || !fresh {
        return None;
    }
    let outcome = match payload["failed"].as_object() {
        Some(failed) => Outcome::Failed {
            title: failed.get("title")?.as_str()?.to_string(),
            message: failed.get("message")?.as_str()?.to_string(),
        },
        None => Outcome::Connected {
            account: payload["account"].as_str()?.to_string(),
        },
    };
    Some((user, provider, outcome))
}

/// The result page, from the sealed cookies the callback set in this browser; the query string is
/// never read.
async fn connected(State(pages): State<Pages>, headers: HeaderMap) -> Response {
    let mut done: Vec<(String, String, Outcome)> = headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .filter(|(k, _)| k.starts_with(DONE_COOKIE_PREFIX))
        .filter_map(|(k, v)| {
            open_done(&pages, v)
                .filter(|(_, provider, _)| k[DONE_COOKIE_PREFIX.len()..] == *provider)
        })
        .collect();
    done.sort();
    done.dedup();
    if done.is_empty() {
        let body = "<h1>Nothing to show here</h1><div class=\"box\"><p>This page confirms a connection right after you \
complete one in this browser, and there is none to confirm.</p><p>To see your connections, ask your agent (the \
<code>devgate_connections</code> tool) or run <code>devgate status</code>.</p></div>";
        return page(StatusCode::OK, "No connection to confirm", body, "'none'");
    }
    let mut lines = String::new();
    let mut connected = Vec::new();
    let mut failed = Vec::new();
    for (user, provider, outcome) in &done {
        let title = pages.connector.title(provider);
        match outcome {
            Outcome::Connected { account } => {
                lines.push_str(&format!(
                    "<p>devgate user <strong>{}</strong> is now connected to the {} account <strong>{}</strong>.</p>",
                    escape(user),
                    escape(&title),
                    escape(account)
                ));
                connected.push(title);
            }
            Outcome::Failed {
                title: what,
                message,
            } => {
                // Alone, the failure's title is the page's heading; among others, it leads its line.
                if done.len() == 1 {
                    lines.push_str(&format!("<p>{}</p>", escape(message)));
                } else {
                    lines.push_str(&format!(
                        "<p><strong>{}</strong>: {}</p>",
                        escape(what),
                        escape(message)
                    ));
                }
                failed.push((title, what.clone()));
            }
        }
    }
    let verb = |n: usize| if n == 1 { "is" } else { "are" };
    let failed_titles = failed
        .iter()
        .map(|(title, _)| title.as_str())
        .collect::<Vec<_>>()
        .join(" and ");
    let heading = match (connected.len(), failed.as_slice()) {
        (0, [(_, what)]) => what.clone(),
        (0, _) => format!("{failed_titles} {} not connected", verb(failed.len())),
        (n, []) => format!("{} {} connected", connected.join(" and "), verb(n)),
        (n, _) => format!(
            "{} {} connected; {failed_titles} {} not",
            connected.join(" and "),
            verb(n),
            verb(failed.len())
        ),
    };
    let body = format!(
        "<h1>{}</h1><div class=\"box\">{lines}<p>You can close this page and return to your agent.</p></div>",
        escape(&heading)
    );
    page(StatusCode::OK, &heading, &body, "'none'")
}

/// What `/` and a browser at `/mcp` are told: where agents connect and how they sign in. Nothing about
/// any user: pages carry no credential, so a user's connections are left to `devgate_connections`.
#[derive(Debug, Clone)]
pub struct Home {
    /// The MCP endpoint as clients reach it (`{public_url}/mcp`).
    pub mcp_url: String,
    pub auth: crate::config::HttpAuth,
    /// The configured providers' titles.
    pub providers: Vec<String>,
}

impl Home {
    /// One sentence on how an MCP client signs in, and a Claude Code line to add devgate with it.
    fn sign_in(&self) -> (String, String) {
        use crate::config::HttpAuth;
        let url = escape(&self.mcp_url);
        match self.auth {
            HttpAuth::ApiKey => (
                "Clients sign in with a devgate API key, sent as <code>Authorization: Bearer &lt;key&gt;</code>; \
an administrator creates one per user with <code>devgate keys create &lt;user&gt;</code>."
                    .into(),
                format!("claude mcp add --transport http devgate {url} --header \"Authorization: Bearer &lt;key&gt;\""),
            ),
            HttpAuth::OAuth => (
                "Clients that speak MCP OAuth sign in by themselves: add the URL, and your browser opens devgate's sign-in page."
                    .into(),
                format!("claude mcp add --transport http devgate {url}"),
            ),
            HttpAuth::Jwt => (
                "Clients sign in with a token from your organisation's identity provider, sent as \
<code>Authorization: Bearer &lt;token&gt;</code>."
                    .into(),
                format!("claude mcp add --transport http devgate {url} --header \"Authorization: Bearer &lt;token&gt;\""),
            ),
            HttpAuth::None => (
                "Clients need no sign-in: this devgate answers only on this machine, and every caller is its local user."
                    .into(),
                format!("claude mcp add --transport http devgate {url}"),
            ),
        }
    }

    fn providers(&self) -> String {
        if self.providers.is_empty() {
            "CI and repository".into()
        } else {
            escape(&self.providers.join(" and "))
        }
    }
}

/// `GET /`: what this is, the MCP URL, how to sign in and where to look next.
pub fn home(info: &Home) -> Response {
    let (sign_in, add) = info.sign_in();
    let body = format!(
        "<h1>devgate</h1><div class=\"box\">\
<p>This is devgate, an MCP gateway: it gives AI agents {providers} tools and calls those providers with \
each user's own connected account.</p>\
<p>MCP endpoint (streamable HTTP): <code>{url}</code></p><p>{sign_in}</p>\
<p>For example, in Claude Code:<br><code>{add}</code></p>\
<p>Connecting accounts: when a tool needs one, the agent shows the user a link. To see your connections, \
ask your agent to call <code>devgate_connections</code>, or run <code>devgate status</code> where devgate runs.</p>\
</div><p class=\"muted\"><a href=\"/docs\">Documentation</a> · <a href=\"/healthz\">Health</a> · \
<a href=\"/readyz\">Readiness</a></p>",
        providers = info.providers(),
        url = escape(&info.mcp_url),
    );
    page(StatusCode::OK, "devgate", &body, "'none'")
}

/// What a browser that opens `/mcp` gets, instead of a bare `406 Not Acceptable`.
pub fn mcp_hint(info: &Home) -> Response {
    let (sign_in, add) = info.sign_in();
    let body = format!(
        "<h1>This address is for MCP clients</h1><div class=\"box\">\
<p><code>{url}</code> is devgate's MCP endpoint. It speaks the Model Context Protocol (streamable HTTP) to AI \
agents, not to browsers: add it to your agent's MCP settings.</p><p>{sign_in}</p>\
<p>For example, in Claude Code:<br><code>{add}</code></p></div>\
<p class=\"muted\"><a href=\"/\">About this devgate</a> · <a href=\"/docs\">Documentation</a></p>",
        url = escape(&info.mcp_url),
    );
    page(StatusCode::OK, "devgate MCP endpoint", &body, "'none'")
}

/// Answers a browser's plain page load of `/mcp` (a `GET` accepting HTML but not an event stream) with
/// [`mcp_hint`], before authentication, which a browser cannot pass; MCP clients go on to rmcp.
pub async fn browser_hint(
    State(info): State<Arc<Home>>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let accept = request
        .headers()
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let browser = request.method() == axum::http::Method::GET
        && accept.contains("text/html")
        && !accept.contains("text/event-stream");
    if browser {
        return mcp_hint(&info);
    }
    next.run(request).await
}

/// `GET /docs`: the README devgate was built with, as plain text.
pub fn docs() -> Response {
    let mut response = (StatusCode::OK, include_str!("../../README.md")).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    security_headers(headers);
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static("default-src 'none'; frame-ancestors 'none'"),
    );
    response
}

/// Refuses requests whose `Host` is not one this devgate answers to (DNS rebinding), with the same list
/// and matching as `/mcp` under `devgate http` ([`crate::transport::http::allowed_hosts`]): an entry
/// without a port allows any port.
pub async fn check_host(
    State(allowed): State<Arc<Vec<String>>>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let host = request
        .headers()
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .and_then(|h| h.parse::<axum::http::uri::Authority>().ok())
        .or_else(|| request.uri().authority().cloned());
    let ok = host.is_some_and(|host| {
        let name = normalize_host(host.host());
        allowed.iter().any(|entry| {
            let (entry_host, entry_port) = match entry.parse::<axum::http::uri::Authority>() {
                Ok(a) => (normalize_host(a.host()), a.port_u16()),
                Err(_) => (normalize_host(entry), None),
            };
            entry_host == name && entry_port.is_none_or(|p| host.port_u16() == Some(p))
        })
    });
    if ok {
        return next.run(request).await;
    }
    tracing::warn!("refused a page request for a host devgate does not serve (DNS rebinding?)");
    error_page(PageError::new(
        StatusCode::FORBIDDEN,
        "Wrong address",
        "devgate does not answer to this host name. Open the link exactly as your agent gave it to you.",
    ))
}

fn normalize_host(host: &str) -> String {
    host.trim_matches(['[', ']']).to_ascii_lowercase()
}
