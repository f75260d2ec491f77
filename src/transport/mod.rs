//! How agents reach the gateway: stdin/stdout ([`stdio`]) or streamable HTTP ([`http`]).

pub mod http;
pub mod pages;
pub mod stdio;
