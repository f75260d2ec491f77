//! The integration tests, one binary: each module holds one area, and all of them start the simulated
//! providers on loopback and speak to a real `devgate` (a child process, or in-process) through rmcp's
//! MCP client. One binary links devgate, sqlx and rmcp once instead of once per area.

mod common;

mod audit;
mod auth_server;
mod auth_server_browser;
mod auth_server_sdk;
mod bad_input;
mod bitbucket_engine;
mod bitbucket_fidelity;
mod browser;
mod buddy_scopes;
mod cache_hints;
mod cli;
mod client_config;
mod clients;
mod confirm;
mod confirm_text;
mod contract;
mod crash;
mod credentials;
mod cursors;
mod edge;
mod elicitation;
mod every_tool;
mod faults;
mod hostile;
mod http;
mod http_json;
mod idp_sign_in;
mod instances;
mod jwt;
mod logging;
mod oauth_flow;
mod oidc;
mod operations;
mod outcomes;
mod policy;
mod provider_errors;
mod readme;
mod refresh;
mod results;
mod sandbox_oauth;
mod shaping;
mod sim_realism;
mod stdio_transport;
mod tasks;
mod third_catalog;
mod toolsets;
mod toolsnaps;
mod vault;
mod wait;
mod writes;
