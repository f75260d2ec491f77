//! How agents reach the gateway: stdin/stdout ([`stdio`]) or streamable HTTP ([`http`], with
//! [`sessions`] bound to their users, and [`json_reply`] answering a
//! plain call with plain JSON).

pub mod confirm_pages;
pub mod http;
pub mod json_reply;
pub mod pages;
pub mod sessions;
pub mod stdio;
pub mod stdio_pages;
