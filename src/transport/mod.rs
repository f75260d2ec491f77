//! How agents reach the gateway: stdin/stdout ([`stdio`]) or streamable HTTP ([`http`]).

pub mod confirm_pages;
pub mod http;
pub mod pages;
pub mod stdio;
