//! devgate without a child process: the MCP handler `devgate stdio` serves, built from a config the
//! way that command builds it, spoken to by rmcp's client over an in-memory pipe (a tokio duplex).
//! No port, no process start, no log capture: for tests of what the handler answers.

use devgate::app::App;
use devgate::catalog::Catalog;
use devgate::config::Config;
use devgate::mcp::{Caller, McpServer};
use rmcp::ServiceExt;

use super::{Client, oauth_env, token_env};

/// An MCP client for `user`, connected in memory to devgate built from `config` (TOML text whose
/// `${TEST_…}` references resolve as in [`token_env`] and [`oauth_env`]).
pub async fn in_process(config: &str, user: &str) -> Client {
    let env = token_env()
        .into_iter()
        .chain(oauth_env())
        .map(|(k, v)| (k.to_string(), v.to_string()));
    let config = Config::from_toml(config, "in-process test", env).expect("a valid config");
    let catalog = Catalog::builtin().expect("the shipped catalogs load");
    let problems = config.validate(&catalog);
    assert!(problems.is_empty(), "config problems: {problems:?}");
    let app = App::build(config, &catalog, false)
        .await
        .expect("devgate builds");
    let server = McpServer::new(
        app.gateway.clone(),
        Caller::Fixed(std::sync::Arc::new(devgate::identity::Identity::named(
            user,
        ))),
        app.pending.clone(),
    );
    let (server_end, client_end) = tokio::io::duplex(64 * 1024);
    tokio::spawn(async move {
        let running = server.serve(server_end).await.expect("the server starts");
        let _ = running.waiting().await;
    });
    ().serve(client_end).await.expect("MCP handshake in memory")
}

/// [`in_process`] with [`super::config_for`]'s config at `sim`, for the user `local` (as `devgate stdio`).
pub async fn in_process_for(sim: &devgate::sim::Sim, extra: &str) -> Client {
    let config = super::config_text(&sim.buddy_url, &sim.bitbucket_url, extra);
    in_process(&config, "local").await
}
