//! The confirm page: where the user approves a destructive call when their client cannot ask them
//! (see [`crate::confirm`]).
//!
//! `GET /confirm?ticket=…` names the devgate user and states the summary; its button POSTs with a
//! double-submit CSRF token (a `SameSite=Strict` cookie that must match the form) and approves the
//! ticket once. The agent then calls again with the same arguments, and that one call runs. Pages
//! carry the same strict Content-Security-Policy and headers as the connect pages ([`super::pages`]).

use std::sync::Arc;

use axum::Router;
use axum::extract::{Form, Query, State};
use axum::http::StatusCode;
use axum::http::header::{self, HeaderMap, HeaderValue};
use axum::response::Response;
use axum::routing::get;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::Deserialize;

use crate::confirm::Confirmations;
use crate::oauth::connect::PageError;
use crate::transport::pages::{cookie, error_page, escape, page};

const CSRF_COOKIE: &str = "devgate_confirm_csrf";

/// State shared by the confirm page handlers.
#[derive(Clone)]
pub struct ConfirmPages {
    pub confirmations: Arc<Confirmations>,
    /// Whether the public URL is https (the cookie then carries `Secure`).
    pub secure: bool,
}

pub fn router(pages: ConfirmPages) -> Router {
    Router::new()
        .route("/confirm", get(confirm_page).post(confirm_submit))
        .with_state(pages)
}

#[derive(Deserialize)]
struct TicketQuery {
    ticket: Option<String>,
}

async fn confirm_page(State(pages): State<ConfirmPages>, Query(q): Query<TicketQuery>) -> Response {
    let ticket = q.ticket.unwrap_or_default();
    let pending = match pages.confirmations.page(&ticket).await {
        Ok(p) => p,
        Err(e) => return error_page(e),
    };
    let csrf = URL_SAFE_NO_PAD.encode(rand::random::<[u8; 24]>());
    let minutes = ((pending.expires_at - crate::vault::now()).max(60) + 59) / 60;
    let body = format!(
        "<h1>Confirm a change</h1><div class=\"box\">\
<p>The agent of the devgate user <strong>{user}</strong> asks to run <code>{tool}</code>:</p>\
<p><strong>{summary}</strong></p>\
<p class=\"muted\">Approve only if you asked your agent for exactly this. If you are not <strong>{user}</strong>, \
or this is not what you want, close this page: nothing will happen. This link works once, for about {minutes} more minute(s).</p>\
<form method=\"post\" action=\"/confirm\">\
<input type=\"hidden\" name=\"ticket\" value=\"{ticket}\"><input type=\"hidden\" name=\"csrf\" value=\"{csrf}\">\
<button type=\"submit\">Approve</button></form></div>",
        user = escape(&pending.user),
        tool = escape(&pending.tool),
        summary = escape(&pending.summary),
        ticket = escape(&ticket),
    );
    let mut response = page(StatusCode::OK, "Confirm a change", &body, "'self'");
    set_cookie(
        &mut response,
        &format!(
            "{CSRF_COOKIE}={csrf}; Path=/confirm; HttpOnly; SameSite=Strict; Max-Age=600{}",
            secure(&pages)
        ),
    );
    response
}

#[derive(Deserialize)]
struct ConfirmForm {
    ticket: String,
    csrf: String,
}

async fn confirm_submit(
    State(pages): State<ConfirmPages>,
    headers: HeaderMap,
    Form(form): Form<ConfirmForm>,
) -> Response {
    let same = cookie(&headers, CSRF_COOKIE).is_some_and(|c| !c.is_empty() && c == form.csrf);
    if !same {
        return error_page(PageError::new(
            StatusCode::FORBIDDEN,
            "Open the link again",
            "This form was not sent from the page devgate showed (the security check failed), so nothing was approved. Open the link your agent gave you again.",
        ));
    }
    let approved = match pages.confirmations.approve(&form.ticket).await {
        Ok(a) => a,
        Err(e) => return error_page(e),
    };
    tracing::info!(user = %approved.user, tool = %approved.tool, "a call was approved on the confirm page");
    let body = format!(
        "<h1>Approved</h1><div class=\"box\"><p>You approved, for the devgate user <strong>{user}</strong>:</p>\
<p><strong>{summary}</strong></p>\
<p>Go back to your agent and tell it to go ahead: its next call with the same arguments runs, once.</p></div>",
        user = escape(&approved.user),
        summary = escape(&approved.summary),
    );
    let mut response = page(StatusCode::OK, "Approved", &body, "'none'");
    set_cookie(
        &mut response,
        &format!(
            "{CSRF_COOKIE}=; Path=/confirm; HttpOnly; SameSite=Strict; Max-Age=0{}",
            secure(&pages)
        ),
    );
    response
}

fn secure(pages: &ConfirmPages) -> &'static str {
    if pages.secure { "; Secure" } else { "" }
}

fn set_cookie(response: &mut Response, cookie: &str) {
    if let Ok(v) = HeaderValue::from_str(cookie) {
        response.headers_mut().append(header::SET_COOKIE, v);
    }
}
