//! `devgate clients`: the MCP clients the authorization server knows (`[http] auth = "oauth"`), and
//! revoking one (its grants and remembered consents go with it).

use std::process::ExitCode;

use clap::Subcommand;
use devgate::vault::auth::ClientKind;

use super::{Cli, human_time, store_config};

#[derive(Debug, Subcommand)]
pub enum ClientsAction {
    /// List clients: configured, registered dynamically, or known by their metadata document.
    List,
    /// Revoke a client by its id: it can no longer sign in, and its tokens stop working.
    Revoke {
        /// The client id, as `clients list` shows it.
        client_id: String,
    },
}

/// `devgate clients list|revoke`.
pub(super) async fn clients(cli: &Cli, action: &ClientsAction) -> anyhow::Result<ExitCode> {
    let config = store_config(cli)?;
    let vault = devgate::app::open_vault(&config)
        .await
        .map_err(anyhow::Error::msg)?;
    match action {
        ClientsAction::List => {
            for c in &config.auth_server.clients {
                println!(
                    "{}  config  \"{}\"  {}",
                    c.client_id,
                    c.name,
                    c.redirect_uris.join(" ")
                );
            }
            let stored = vault.store.clients().await?;
            for c in &stored {
                let kind = match c.kind {
                    ClientKind::Dynamic => "registered",
                    ClientKind::Metadata => "metadata-document",
                };
                let state = match c.revoked_at {
                    Some(at) => format!("revoked {}", human_time(at)),
                    None => format!("since {}", human_time(c.created_at)),
                };
                println!(
                    "{}  {kind}  \"{}\"  {}  {state}",
                    c.client_id,
                    c.name,
                    c.redirect_uris.join(" ")
                );
            }
            if stored.is_empty() && config.auth_server.clients.is_empty() {
                eprintln!("no clients");
            }
        }
        ClientsAction::Revoke { client_id } => {
            if config
                .auth_server
                .clients
                .iter()
                .any(|c| &c.client_id == client_id)
            {
                eprintln!(
                    "{client_id} is configured in [[auth_server.clients]] of {}: remove it there and restart devgate",
                    config.origin
                );
                return Ok(ExitCode::FAILURE);
            }
            if vault
                .store
                .revoke_client(client_id, devgate::vault::now())
                .await?
            {
                println!("revoked {client_id}: its grants and consents are gone");
            } else {
                eprintln!(
                    "no live client {client_id} (`devgate clients list` shows the known ones)"
                );
                return Ok(ExitCode::FAILURE);
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
