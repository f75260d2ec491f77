//! Upstream connection pools per connection thread.
//!
//! `devgate http` serves each connection on one of several threads, each with its own single-threaded
//! runtime (`transport::http`), so that a request's work stays on the thread that read it. A pooled
//! upstream connection belongs to the runtime that opened it: its I/O task runs there. With one pool
//! shared by every thread, about half the calls would hand their upstream request to the other thread
//! and wait for it to hand the answer back. So a thread that declares itself with
//! [`keep_own_connections`] gets its own client, built the same way, the first time it calls a
//! provider; every other thread (stdio, the sandbox's multi-threaded runtime, the CLI) shares one.

use std::cell::RefCell;
use std::sync::atomic::{AtomicU64, Ordering};

/// Builds a provider's client; called once for the shared client and once per connection thread.
type Build = Box<dyn Fn() -> reqwest::Result<reqwest::Client> + Send + Sync>;

/// A provider's upstream client: the shared one, or the calling connection thread's own.
pub(crate) struct UpstreamClient {
    /// Tells this client's entry apart in a thread's list (clients of other gateways live beside it).
    key: u64,
    shared: reqwest::Client,
    build: Build,
}

thread_local! {
    /// `Some` on a thread that keeps its own connections: the clients it built so far, by key.
    static OWN: RefCell<Option<Vec<(u64, reqwest::Client)>>> = const { RefCell::new(None) };
}

/// Makes the calling thread keep its own upstream connections from now on (a connection thread).
pub fn keep_own_connections() {
    OWN.with(|own| *own.borrow_mut() = Some(Vec::new()));
}

impl UpstreamClient {
    /// Builds the shared client now, so a bad setting is the caller's error.
    pub(crate) fn new(build: Build) -> reqwest::Result<Self> {
        static NEXT_KEY: AtomicU64 = AtomicU64::new(0);
        Ok(Self {
            key: NEXT_KEY.fetch_add(1, Ordering::Relaxed),
            shared: build()?,
            build,
        })
    }

    /// The client for the calling thread (a cheap handle on its pool).
    pub(crate) fn get(&self) -> reqwest::Client {
        OWN.with(|own| {
            let mut own = own.borrow_mut();
            let Some(clients) = own.as_mut() else {
                return self.shared.clone();
            };
            if let Some((_, client)) = clients.iter().find(|(key, _)| *key == self.key) {
                return client.clone();
            }
            // The same settings built once already; should it fail now, share rather than fail a call.
            match (self.build)() {
                Ok(client) => {
                    clients.push((self.key, client.clone()));
                    client
                }
                Err(_) => self.shared.clone(),
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::AtomicUsize;

    fn counting() -> (UpstreamClient, Arc<AtomicUsize>) {
        let built = Arc::new(AtomicUsize::new(0));
        let count = built.clone();
        let client = UpstreamClient::new(Box::new(move || {
            count.fetch_add(1, Ordering::Relaxed);
            reqwest::Client::builder().build()
        }))
        .unwrap();
        (client, built)
    }

    #[test]
    fn threads_share_one_client_unless_they_keep_their_own() {
        let (client, built) = counting();
        let client = Arc::new(client);
        assert_eq!(built.load(Ordering::Relaxed), 1, "the shared client");
        // A plain thread uses the shared client, however often it asks.
        let plain = client.clone();
        std::thread::spawn(move || {
            plain.get();
            plain.get();
        })
        .join()
        .unwrap();
        assert_eq!(built.load(Ordering::Relaxed), 1);
        // Two connection threads build one each, once.
        for _ in 0..2 {
            let own = client.clone();
            std::thread::spawn(move || {
                keep_own_connections();
                own.get();
                own.get();
            })
            .join()
            .unwrap();
        }
        assert_eq!(built.load(Ordering::Relaxed), 3);
        // Two providers on one connection thread: one client each.
        let (other, other_built) = counting();
        let other = Arc::new(other);
        let first = client.clone();
        std::thread::spawn(move || {
            keep_own_connections();
            first.get();
            other.get();
            other.get();
        })
        .join()
        .unwrap();
        assert_eq!(built.load(Ordering::Relaxed), 4);
        assert_eq!(other_built.load(Ordering::Relaxed), 2);
    }
}
