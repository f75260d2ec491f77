//! Where confirmations are remembered: confirm-page tickets and their approvals, and the
//! `requestState` nonces already accepted.
//!
//! With a store they live in its `confirmations` and `used_request_states` tables, so a link opened on
//! one instance approves a retry that lands on another; the summary is sealed there, since it shows
//! arguments. Without a store (stdio with static tokens) they live in this process, bounded.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use crate::vault::{ConfirmationRow, StoreError, Timestamp, Vault};

/// Most tickets, and most used nonces, kept in memory at once: a stdio session asks a handful of
/// questions an hour, so hitting this means something is looping.
const MEMORY_CAP: usize = 10_000;

/// What the sealed summaries are bound to, besides the user.
const SEAL_SCOPE: &str = "devgate-confirm";

/// A confirm-page ticket with its summary in the clear.
#[derive(Clone)]
pub struct Pending {
    pub ticket_hash: String,
    pub binding: String,
    pub user: String,
    pub tool: String,
    pub summary: String,
    pub approved: bool,
    pub expires_at: Timestamp,
}

pub enum Ledger {
    Store(Arc<Vault>),
    Memory(Mutex<Memory>),
}

#[derive(Default)]
pub struct Memory {
    tickets: HashMap<String, Pending>,
    used: HashMap<String, Timestamp>,
}

impl Memory {
    fn purge(&mut self, now: Timestamp) {
        self.tickets.retain(|_, t| t.expires_at > now);
        self.used.retain(|_, until| *until > now);
    }
}

fn full() -> StoreError {
    StoreError::Backend(format!(
        "more than {MEMORY_CAP} confirmations are waiting in this process; try again in a few minutes"
    ))
}

impl Ledger {
    pub fn new(vault: Option<Arc<Vault>>) -> Self {
        match vault {
            Some(v) => Ledger::Store(v),
            None => Ledger::Memory(Mutex::default()),
        }
    }

    pub fn shared(&self) -> bool {
        matches!(self, Ledger::Store(_))
    }

    fn memory(m: &Mutex<Memory>) -> std::sync::MutexGuard<'_, Memory> {
        m.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub async fn put(&self, pending: Pending) -> Result<(), StoreError> {
        match self {
            Ledger::Store(vault) => {
                let t = crate::vault::now();
                // Links are rare; clearing out old ones here keeps the table small without a timer.
                vault.store.purge_expired(t).await?;
                let row = ConfirmationRow {
                    summary: vault.seal(&pending.user, SEAL_SCOPE, &pending.summary),
                    ticket_hash: pending.ticket_hash,
                    binding: pending.binding,
                    user: pending.user,
                    tool: pending.tool,
                    approved: pending.approved,
                    expires_at: pending.expires_at,
                };
                vault.store.put_confirmation(&row).await
            }
            Ledger::Memory(m) => {
                let mut m = Self::memory(m);
                m.purge(crate::vault::now());
                if m.tickets.len() >= MEMORY_CAP {
                    return Err(full());
                }
                m.tickets.insert(pending.ticket_hash.clone(), pending);
                Ok(())
            }
        }
    }

    fn opened(vault: &Vault, row: ConfirmationRow) -> Result<Pending, StoreError> {
        Ok(Pending {
            summary: vault.open(&row.user, SEAL_SCOPE, &row.summary)?,
            ticket_hash: row.ticket_hash,
            binding: row.binding,
            user: row.user,
            tool: row.tool,
            approved: row.approved,
            expires_at: row.expires_at,
        })
    }

    /// The ticket's confirmation while it is unexpired and not yet approved.
    pub async fn pending(
        &self,
        ticket_hash: &str,
        now: Timestamp,
    ) -> Result<Option<Pending>, StoreError> {
        match self {
            Ledger::Store(vault) => vault
                .store
                .confirmation(ticket_hash, now)
                .await?
                .map(|row| Self::opened(vault, row))
                .transpose(),
            Ledger::Memory(m) => Ok(Self::memory(m)
                .tickets
                .get(ticket_hash)
                .filter(|t| !t.approved && t.expires_at > now)
                .cloned()),
        }
    }

    /// Approves the ticket's confirmation; only the first caller gets it back.
    pub async fn approve(
        &self,
        ticket_hash: &str,
        now: Timestamp,
    ) -> Result<Option<Pending>, StoreError> {
        match self {
            Ledger::Store(vault) => vault
                .store
                .approve_confirmation(ticket_hash, now)
                .await?
                .map(|row| Self::opened(vault, row))
                .transpose(),
            Ledger::Memory(m) => {
                let mut m = Self::memory(m);
                let Some(t) = m
                    .tickets
                    .get_mut(ticket_hash)
                    .filter(|t| !t.approved && t.expires_at > now)
                else {
                    return Ok(None);
                };
                t.approved = true;
                Ok(Some(t.clone()))
            }
        }
    }

    /// Removes the approved confirmations of `binding`; whether there was one.
    pub async fn take_approval(&self, binding: &str, now: Timestamp) -> Result<bool, StoreError> {
        match self {
            Ledger::Store(vault) => vault.store.take_approval(binding, now).await,
            Ledger::Memory(m) => {
                let mut m = Self::memory(m);
                let before = m.tickets.len();
                m.tickets
                    .retain(|_, t| !(t.approved && t.binding == binding && t.expires_at > now));
                Ok(m.tickets.len() < before)
            }
        }
    }

    /// Records a nonce as used until `expires_at`; false when it was used before.
    pub async fn use_once(
        &self,
        nonce_hash: &str,
        expires_at: Timestamp,
        now: Timestamp,
    ) -> Result<bool, StoreError> {
        match self {
            Ledger::Store(vault) => {
                // As in `put`: accepted answers are rare, and this keeps the used nonces few.
                vault.store.purge_expired(now).await?;
                vault.store.use_request_state(nonce_hash, expires_at).await
            }
            Ledger::Memory(m) => {
                let mut m = Self::memory(m);
                m.purge(now);
                if m.used.contains_key(nonce_hash) {
                    return Ok(false);
                }
                if m.used.len() >= MEMORY_CAP {
                    return Err(full());
                }
                m.used.insert(nonce_hash.to_string(), expires_at);
                Ok(true)
            }
        }
    }
}
