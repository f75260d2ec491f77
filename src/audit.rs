//! The audit log: one record per tool call (user, tool, provider, the resource by its identifiers,
//! outcome, duration, request id), written to the store off the call's path. A call only queues its
//! record; a background task writes them in batches, each gathered over a few milliseconds. If the
//! store falls behind and the queue is full, records are dropped and counted, never waited for.
//!
//! Strings a caller chooses are bounded before they are recorded or logged ([`clip`]): a tool name
//! devgate does not offer becomes [`UNKNOWN_TOOL`], everywhere (metrics, logs, records).

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::vault::{AuditRecord, Store};

/// The name under which calls to tools devgate does not offer are counted, logged and recorded.
pub const UNKNOWN_TOOL: &str = "unknown";

/// The longest user name devgate accepts from a caller (a JWT `sub`); identity refuses longer ones.
pub const MAX_USER_CHARS: usize = 256;

/// `text` cut to at most `max` characters, marked with `…` where it was cut.
pub fn clip(text: &str, max: usize) -> std::borrow::Cow<'_, str> {
    match text.char_indices().nth(max) {
        None => std::borrow::Cow::Borrowed(text),
        Some((end, _)) => std::borrow::Cow::Owned(format!("{}…", &text[..end])),
    }
}

/// Records waiting to be written, at most.
const QUEUE: usize = 8192;
/// Records per insert statement, at most.
pub(crate) const BATCH: usize = 256;
/// How long a record waits for others to share its insert statement. Writing each record alone was about a
/// sixth of an HTTP server's CPU per call (benches/harness.rs); [`QUEUE`] holds far more than arrive
/// meanwhile.
const LINGER: std::time::Duration = std::time::Duration::from_millis(20);

pub struct AuditLog {
    sender: Mutex<Option<mpsc::Sender<AuditRecord>>>,
    writer: Mutex<Option<JoinHandle<()>>>,
    dropped: AtomicU64,
}

impl AuditLog {
    /// Starts the writer on the current runtime.
    pub fn start(store: std::sync::Arc<dyn Store>) -> Self {
        let (sender, mut receiver) = mpsc::channel::<AuditRecord>(QUEUE);
        let writer = tokio::spawn(async move {
            let mut batch = Vec::with_capacity(BATCH);
            while let Some(first) = receiver.recv().await {
                batch.push(first);
                // Let the records of the calls in flight join this one: one insert statement (and
                // one wake of the store's thread) per batch, not per call. Sleeping leaves no waker
                // for the senders to wake.
                tokio::time::sleep(LINGER).await;
                while batch.len() < BATCH {
                    match receiver.try_recv() {
                        Ok(record) => batch.push(record),
                        Err(_) => break,
                    }
                }
                if let Err(e) = store.record_calls(&batch).await {
                    tracing::warn!(error = %e, lost = batch.len(), "could not write the audit log");
                }
                batch.clear();
            }
        });
        Self {
            sender: Mutex::new(Some(sender)),
            writer: Mutex::new(Some(writer)),
            dropped: AtomicU64::new(0),
        }
    }

    /// Queues a record; never waits.
    pub fn record(&self, record: AuditRecord) {
        let sender = self.sender.lock().unwrap_or_else(|e| e.into_inner());
        let Some(sender) = sender.as_ref() else {
            return;
        };
        if sender.try_send(record).is_err() {
            let dropped = self.dropped.fetch_add(1, Ordering::Relaxed) + 1;
            if dropped.is_power_of_two() {
                tracing::warn!(dropped, "the audit log queue is full: records dropped");
            }
        }
    }

    /// Stops taking records and waits (bounded) until the queued ones are written.
    pub async fn close(&self) {
        drop(self.sender.lock().unwrap_or_else(|e| e.into_inner()).take());
        let writer = self.writer.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(writer) = writer {
            let _ = tokio::time::timeout(std::time::Duration::from_secs(5), writer).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::clip;

    #[test]
    fn clip_cuts_at_a_character_boundary() {
        assert_eq!(clip("short", 8), "short");
        assert_eq!(clip("exactly8", 8), "exactly8");
        assert_eq!(clip("ünïcödé-and-more", 7), "ünïcödé…");
    }
}
