//! How agents reach the gateway: stdin/stdout ([`stdio`]) or streamable HTTP ([`http`], with
//! [`sessions`] bound to their users).

pub mod confirm_pages;
pub mod http;
pub mod pages;
pub mod sessions;
pub mod stdio;
pub mod stdio_pages;
