//! `devgate grants`: what users let MCP clients do (`[http] auth = "oauth"`), and withdrawing it: a
//! revoked grant's tokens stop working at once, and the user is asked for consent again next time.

use std::process::ExitCode;

use clap::Subcommand;
use devgate::vault::now;

use super::{Cli, human_time, store_config};

#[derive(Debug, Subcommand)]
pub enum GrantsAction {
    /// List live grants: everyone's, or one user's.
    List {
        /// Only this user's grants.
        #[arg(long)]
        user: Option<String>,
    },
    /// Revoke one grant by id, or every grant of a user (`--user`).
    Revoke {
        /// The grant id, as `grants list` shows it.
        id: Option<String>,
        /// Revoke every grant of this user.
        #[arg(long)]
        user: Option<String>,
    },
}

/// `devgate grants list|revoke`.
pub(super) async fn grants(cli: &Cli, action: &GrantsAction) -> anyhow::Result<ExitCode> {
    let config = store_config(cli)?;
    let vault = devgate::app::open_vault(&config)
        .await
        .map_err(anyhow::Error::msg)?;
    let store = &vault.store;
    match action {
        GrantsAction::List { user } => {
            let grants = store.grants(user.as_deref()).await?;
            for g in &grants {
                let groups = if g.groups.is_empty() {
                    String::new()
                } else {
                    format!("  groups {}", g.groups.join(","))
                };
                println!(
                    "{}  {}  {}  {}  since {}{groups}",
                    g.id,
                    g.user,
                    g.client_id,
                    g.scopes,
                    human_time(g.created_at)
                );
            }
            if grants.is_empty() {
                eprintln!(
                    "no grants{}",
                    user.as_ref()
                        .map(|u| format!(" for {u}"))
                        .unwrap_or_default()
                );
            }
        }
        GrantsAction::Revoke { id, user } => {
            let all = store.grants(user.as_deref()).await?;
            let chosen: Vec<_> = match (id, user) {
                (Some(id), _) => all.into_iter().filter(|g| &g.id == id).collect(),
                (None, Some(_)) => all,
                (None, None) => {
                    eprintln!("name a grant id (`devgate grants list`) or --user <user>");
                    return Ok(ExitCode::FAILURE);
                }
            };
            if chosen.is_empty() {
                eprintln!("no such live grant (`devgate grants list` shows them)");
                return Ok(ExitCode::FAILURE);
            }
            for g in &chosen {
                store.revoke_grant(&g.id, now()).await?;
                store.withdraw_consent(&g.user, &g.client_id).await?;
                println!("revoked {} ({} for {})", g.id, g.user, g.client_id);
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
