//! `devgate keys`: create, list and revoke API keys for HTTP callers.

use std::process::ExitCode;

use super::{Cli, KeysAction, human_time, store_config};

/// `devgate keys create|list|revoke`.
pub(super) async fn keys(cli: &Cli, action: &KeysAction) -> anyhow::Result<ExitCode> {
    let config = store_config(cli)?;
    let vault = devgate::app::open_vault(&config)
        .await
        .map_err(anyhow::Error::msg)?;
    match action {
        KeysAction::Create { user } => {
            let (key, row) = devgate::identity::new_api_key(user);
            vault.store.put_api_key(&row).await?;
            eprintln!(
                "API key {} for {user} (shown once; send it as Authorization: Bearer <key>):",
                row.id
            );
            println!("{key}");
        }
        KeysAction::List { user } => {
            let keys = match user {
                Some(u) => vault.store.api_keys(u).await?,
                None => vault.store.all_api_keys().await?,
            };
            for k in &keys {
                println!("{}  {}  created {}", k.id, k.user, human_time(k.created_at));
            }
            if keys.is_empty() {
                eprintln!(
                    "no API keys{}",
                    user.as_ref()
                        .map(|u| format!(" for {u}"))
                        .unwrap_or_default()
                );
            }
        }
        KeysAction::Revoke { user, id } => {
            if vault.store.revoke_api_key(user, id).await? {
                println!("revoked {id}");
            } else {
                eprintln!("{user} has no key {id}");
                return Ok(ExitCode::FAILURE);
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
