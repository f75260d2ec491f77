//! Confirmation of destructive calls (design §5): a call runs only on an answer the user gave to a
//! question devgate issued. The agent's own word (`confirm: true`, an `inputResponses` it made up) is
//! never consent.
//!
//! What a question is about is a [`Binding`]: the user, the tool, the canonical arguments and the
//! summary the user reads. How it reaches the user depends on the client (see `crate::mcp`):
//! - **form elicitation during the call** (up to 2025-11-25): the answer arrives on devgate's own
//!   request, so it cannot be forged;
//! - **`input_required`** (2026-07-28): the question carries a `requestState` that rmcp's
//!   [`RequestStateCodec`] MACs (HMAC-SHA256) over the binding, with an expiry and a random nonce
//!   inside. The retried call's answer counts only with a state that opens for the same binding (so the
//!   target must still read the same), before its expiry, and once: the nonce is recorded as used;
//! - **a confirm page** for clients without form elicitation: a link with a random, single-use ticket
//!   bound to the binding; approving it on the page lets one retry with the same arguments run.
//!
//! The MAC key is derived from the sealing key (so every instance sharing a store agrees), or is
//! random per process when devgate runs without a store. Tickets, approvals and used nonces live in
//! the store, or in a bounded in-memory ledger without one ([`ledger`]).

pub mod ledger;
pub mod summary;

use std::sync::{Arc, RwLock};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rmcp::model::{RequestStateCodec, SealOptions};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

use crate::oauth::connect::PageError;
use crate::vault::{StoreError, Timestamp, Vault, now};
use ledger::{Ledger, Pending};

/// How long a question (a `requestState` or a confirm link) can be answered, in seconds.
pub const TTL_SECS: i64 = 600;

/// The HKDF `info` of the request-state MAC key, derived from the sealing key.
pub const REQUEST_STATE_KEY: &[u8] = b"devgate/confirm/request-state/v1";

/// What one confirmation is about. Two calls share a binding only if the same user calls the same
/// tool with the same arguments and the target reads the same (the summary is part of it).
#[derive(Clone)]
pub struct Binding {
    pub user: String,
    pub tool: String,
    pub summary: String,
    /// Length-prefixed user, tool, canonical arguments and summary: the MAC's associated data.
    bytes: Vec<u8>,
    /// Hex SHA-256 of `bytes`: how the store finds an approval.
    digest: String,
}

impl std::fmt::Debug for Binding {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Binding")
            .field("user", &self.user)
            .field("tool", &self.tool)
            .finish_non_exhaustive()
    }
}

impl Binding {
    /// `args` are the validated arguments as given (before lookups); `confirm` is left out, since it
    /// means nothing.
    pub fn new(user: &str, tool: &str, args: &Map<String, Value>, summary: &str) -> Self {
        let mut arguments = String::new();
        let args: Map<String, Value> = args
            .iter()
            .filter(|(k, _)| k.as_str() != crate::catalog::CONFIRM_PARAM)
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        canonical(&Value::Object(args), &mut arguments);
        let mut bytes = Vec::with_capacity(64 + arguments.len() + summary.len());
        for part in [
            "devgate confirm v1",
            user,
            tool,
            arguments.as_str(),
            summary,
        ] {
            bytes.extend_from_slice(&(part.len() as u64).to_be_bytes());
            bytes.extend_from_slice(part.as_bytes());
        }
        let digest = Sha256::digest(&bytes)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        Self {
            user: user.to_string(),
            tool: tool.to_string(),
            summary: summary.to_string(),
            bytes,
            digest,
        }
    }
}

/// JSON with object keys sorted at every level, so equal arguments give equal bytes whatever order the
/// client sent them in.
fn canonical(value: &Value, out: &mut String) {
    match value {
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            out.push('{');
            for (i, key) in keys.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&Value::String(key.clone()).to_string());
                out.push(':');
                canonical(&map[key], out);
            }
            out.push('}');
        }
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                canonical(item, out);
            }
            out.push(']');
        }
        other => out.push_str(&other.to_string()),
    }
}

/// Why an answer did not count; the call asks again. For the log, never for the agent.
#[derive(Debug, thiserror::Error)]
pub enum Refusal {
    #[error("the requestState does not verify for this user, tool, arguments and summary")]
    Forged,
    #[error("the requestState has expired")]
    Expired,
    #[error("the requestState was used before")]
    Used,
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// What a `requestState` carries (readable by the client, but MAC'd): a nonce for single use, and when
/// it stops counting.
#[derive(Serialize, Deserialize)]
struct StatePayload {
    #[serde(rename = "n")]
    nonce: String,
    #[serde(rename = "e")]
    expires_at: Timestamp,
}

/// Seals and opens `requestState` values for bindings.
pub struct StateCodec {
    codec: RequestStateCodec,
}

impl StateCodec {
    pub fn new(key: [u8; 32]) -> Self {
        Self {
            // 32 bytes is the codec's minimum key length, so there is nothing left to check.
            codec: RequestStateCodec::new_unchecked(key.to_vec()),
        }
    }

    /// A new `requestState` for `binding`, counting until `expires_at` (unix seconds).
    pub fn seal(&self, binding: &Binding, expires_at: Timestamp) -> String {
        let payload = StatePayload {
            nonce: URL_SAFE_NO_PAD.encode(rand::random::<[u8; 18]>()),
            expires_at,
        };
        let options = SealOptions::new().associated_data(&binding.bytes);
        self.codec
            .seal_json_with(&payload, &options)
            // Serializing a string and an integer cannot fail.
            .unwrap_or_default()
    }

    /// The nonce and expiry of a state sealed for `binding`, if it opens and has not expired at `now`.
    fn open(
        &self,
        binding: &Binding,
        state: &str,
        now: Timestamp,
    ) -> Result<StatePayload, Refusal> {
        let payload: StatePayload = self
            .codec
            .open_json_with(state, &binding.bytes)
            .map_err(|_| Refusal::Forged)?;
        if payload.expires_at <= now {
            return Err(Refusal::Expired);
        }
        Ok(payload)
    }
}

/// A confirm page's ticket as the page shows it.
#[derive(Debug, Clone)]
pub struct PageConfirmation {
    pub user: String,
    pub tool: String,
    pub summary: String,
    pub expires_at: Timestamp,
}

/// Issues and checks confirmations for one devgate process.
pub struct Confirmations {
    codec: StateCodec,
    ledger: Ledger,
    /// The public URL where this process's confirm links point, once a confirm page is served there.
    pages: RwLock<Option<String>>,
}

impl std::fmt::Debug for Confirmations {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Confirmations")
            .field("shared", &self.ledger.shared())
            .finish_non_exhaustive()
    }
}

impl Confirmations {
    /// With a vault: the key is derived from its sealing key and confirmations are kept in its store,
    /// so any instance sharing the store can check them. Without: a random key and memory.
    pub fn new(vault: Option<Arc<Vault>>) -> Self {
        let key = match &vault {
            Some(v) => v.derive_key(REQUEST_STATE_KEY),
            None => rand::random(),
        };
        Self {
            codec: StateCodec::new(key),
            ledger: Ledger::new(vault),
            pages: RwLock::new(None),
        }
    }

    /// Confirm links now point at `public_url`, where the confirm page is served (by this process, or by
    /// another one sharing the store).
    pub fn serve_pages_at(&self, public_url: &str) {
        let mut pages = self.pages.write().unwrap_or_else(|e| e.into_inner());
        *pages = Some(public_url.trim_end_matches('/').to_string());
    }

    /// Whether confirmations are kept in a store other processes may share.
    pub fn shared(&self) -> bool {
        self.ledger.shared()
    }

    /// A `requestState` for an `input_required` question about `binding`.
    pub fn request_state(&self, binding: &Binding) -> String {
        self.codec.seal(binding, now() + TTL_SECS)
    }

    /// Whether an answer that came back with `state` counts for `binding`. An acceptance also uses the
    /// state up, so the same answer cannot run the call twice.
    pub async fn check_answer(
        &self,
        binding: &Binding,
        state: &str,
        accepted: bool,
    ) -> Result<(), Refusal> {
        let t = now();
        let payload = self.codec.open(binding, state, t)?;
        if !accepted {
            return Ok(());
        }
        let nonce_hash = crate::vault::digest(&payload.nonce);
        if self
            .ledger
            .use_once(&nonce_hash, payload.expires_at, t)
            .await?
        {
            Ok(())
        } else {
            Err(Refusal::Used)
        }
    }

    /// Uses up an approval the user gave on the confirm page for exactly this binding, if there is one.
    pub async fn take_approval(&self, binding: &Binding) -> Result<bool, StoreError> {
        self.ledger.take_approval(&binding.digest, now()).await
    }

    /// A confirm link for `binding`, or `None` when no confirm page is served for this process.
    pub async fn link(&self, binding: &Binding) -> Result<Option<String>, StoreError> {
        let Some(base) = self.pages.read().unwrap_or_else(|e| e.into_inner()).clone() else {
            return Ok(None);
        };
        let ticket = URL_SAFE_NO_PAD.encode(rand::random::<[u8; 32]>());
        self.ledger
            .put(Pending {
                ticket_hash: crate::vault::digest(&ticket),
                binding: binding.digest.clone(),
                user: binding.user.clone(),
                tool: binding.tool.clone(),
                summary: binding.summary.clone(),
                approved: false,
                expires_at: now() + TTL_SECS,
            })
            .await?;
        Ok(Some(format!("{base}/confirm?ticket={ticket}")))
    }

    /// The confirmation behind a page's ticket, while it waits for approval.
    pub async fn page(&self, ticket: &str) -> Result<PageConfirmation, PageError> {
        self.ledger
            .pending(&crate::vault::digest(ticket), now())
            .await
            .map_err(store_page_error)?
            .map(page_confirmation)
            .ok_or_else(expired_page)
    }

    /// The user's approval on the page: once per ticket.
    pub async fn approve(&self, ticket: &str) -> Result<PageConfirmation, PageError> {
        self.ledger
            .approve(&crate::vault::digest(ticket), now())
            .await
            .map_err(store_page_error)?
            .map(page_confirmation)
            .ok_or_else(expired_page)
    }
}

fn page_confirmation(row: Pending) -> PageConfirmation {
    PageConfirmation {
        user: row.user,
        tool: row.tool,
        summary: row.summary,
        expires_at: row.expires_at,
    }
}

fn expired_page() -> PageError {
    PageError::new(
        axum::http::StatusCode::GONE,
        "This confirmation link has expired or was used",
        "Confirmation links work once and for 10 minutes. Nothing was approved. If you still want this, ask your agent again: it will give you a new link.",
    )
}

fn store_page_error(e: StoreError) -> PageError {
    tracing::error!(error = %e, "the store failed on a confirm page");
    PageError::new(
        axum::http::StatusCode::SERVICE_UNAVAILABLE,
        "Try again in a moment",
        "devgate could not reach its database. Nothing was approved; reload this page in a moment.",
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn binding(user: &str, args: Value, summary: &str) -> Binding {
        Binding::new(user, "t", args.as_object().unwrap(), summary)
    }

    #[test]
    fn bindings_ignore_key_order_and_confirm_but_nothing_else() {
        let a = binding("u", json!({"a": 1, "b": {"x": 1, "y": [2]}}), "s");
        let b = binding(
            "u",
            json!({"b": {"y": [2], "x": 1}, "a": 1, "confirm": true}),
            "s",
        );
        assert_eq!(a.digest, b.digest);
        for other in [
            binding("v", json!({"a": 1, "b": {"x": 1, "y": [2]}}), "s"),
            binding("u", json!({"a": 2, "b": {"x": 1, "y": [2]}}), "s"),
            binding("u", json!({"a": 1, "b": {"x": 1, "y": [2]}}), "s2"),
        ] {
            assert_ne!(a.digest, other.digest);
        }
    }

    #[test]
    fn a_state_opens_only_for_its_binding_and_before_its_expiry() {
        let codec = StateCodec::new([7; 32]);
        let b = binding("u", json!({"a": 1}), "s");
        let state = codec.seal(&b, 1_000);
        assert!(codec.open(&b, &state, 999).is_ok());
        assert!(matches!(
            codec.open(&b, &state, 1_000),
            Err(Refusal::Expired)
        ));
        let other = binding("u", json!({"a": 2}), "s");
        assert!(matches!(
            codec.open(&other, &state, 999),
            Err(Refusal::Forged)
        ));
        assert!(matches!(
            StateCodec::new([8; 32]).open(&b, &state, 999),
            Err(Refusal::Forged)
        ));
    }
}
