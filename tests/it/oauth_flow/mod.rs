//! OAuth on the user's behalf, end to end over HTTP with two users holding API keys: each connects
//! through the real pages (an HTTP client following the redirects and submitting the forms), then calls
//! tools and sees only their own account; tickets, states and callbacks cannot attach a connection to
//! another user; replayed, expired and foreign states get a readable page; no secret is ever shown.
//! A flow finishes only in the browser that clicked Connect (also from `devgate connect`), the success
//! page says only what the callback did, and the page server of `devgate stdio` checks `Host` and caps
//! bodies. The pages say what happened in plain words (a used link, a page opened without one, a
//! denial, the scopes asked for); links ask only for scopes an offered tool needs; `devgate_connections`
//! checks every connection with its provider; `/` and a browser at `/mcp` get a readable page.

mod browsers;
mod pages;
mod terminal;
mod users;

use crate::common::*;
use devgate::sim::{Account, Fault, Sim, Which};
use devgate::vault::sqlite::SqliteStore;
use devgate::vault::{StateRow, Store, TicketRow, digest, now};
use serde_json::{Value, json};
use tokio::io::AsyncBufReadExt;

async fn current_user(client: &Client) -> Value {
    ok(
        "bitbucket_get_current_user",
        &call(client, "bitbucket_get_current_user", json!({})).await,
    )
}

/// Calls a tool that needs an unconnected provider and returns the connect link from the error text.
async fn connect_link(client: &Client, tool: &str) -> String {
    let result = call(client, tool, json!({})).await;
    assert!(is_error(&result), "{tool} should ask to connect first");
    let message = text(&result);
    assert!(message.contains("connect"), "{message}");
    // The id the user quotes to an operator, who finds the call in the log by it.
    assert!(message.contains(" (request id "), "{message}");
    link_in(&message)
}
