//! `devgate keys`: create, list and revoke API keys for HTTP callers, each with its user's groups.

use std::process::ExitCode;

use anyhow::bail;
use devgate::identity::MAX_GROUP_CHARS;

use super::{Cli, KeysAction, human_time, store_config};

/// `devgate keys create|list|revoke`.
pub(super) async fn keys(cli: &Cli, action: &KeysAction) -> anyhow::Result<ExitCode> {
    let config = store_config(cli)?;
    let vault = devgate::app::open_vault(&config)
        .await
        .map_err(anyhow::Error::msg)?;
    match action {
        KeysAction::Create { user, groups } => {
            let groups = checked_groups(groups)?;
            let (key, row) = devgate::identity::new_api_key(user, &groups);
            vault.store.put_api_key(&row).await?;
            eprintln!(
                "API key {} for {user}{} (shown once; send it as Authorization: Bearer <key>):",
                row.id,
                in_groups(&groups)
            );
            for group in unused(&config, &groups) {
                eprintln!(
                    "note: no [[policies]] entry names group `{group}` in {}",
                    config.origin
                );
            }
            println!("{key}");
        }
        KeysAction::List { user } => {
            let keys = match user {
                Some(u) => vault.store.api_keys(u).await?,
                None => vault.store.all_api_keys().await?,
            };
            for k in &keys {
                println!(
                    "{}  {}{}  created {}",
                    k.id,
                    k.user,
                    in_groups(&k.groups),
                    human_time(k.created_at)
                );
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

/// `--group` values, checked: not empty, not `*` (which means everyone in `[[policies]]`), not too
/// long; duplicates dropped.
pub(super) fn checked_groups(groups: &[String]) -> anyhow::Result<Vec<String>> {
    let mut checked: Vec<String> = Vec::new();
    for group in groups.iter().map(|g| g.trim()) {
        if group.is_empty() || group == devgate::policy::EVERYONE {
            bail!(
                "--group `{group}`: give a group name (`*` in [[policies]] already means everyone)"
            );
        }
        if group.chars().count() > MAX_GROUP_CHARS {
            bail!("--group: a group name has at most {MAX_GROUP_CHARS} characters");
        }
        if !checked.iter().any(|g| g == group) {
            checked.push(group.to_string());
        }
    }
    Ok(checked)
}

/// ` in groups a, b`, or nothing for none.
pub(super) fn in_groups(groups: &[String]) -> String {
    if groups.is_empty() {
        String::new()
    } else {
        format!(" in groups {}", groups.join(", "))
    }
}

/// The groups no `[[policies]]` entry names (probably a typo), when there are policies at all.
fn unused<'a>(config: &devgate::config::Config, groups: &'a [String]) -> Vec<&'a String> {
    if config.policies.is_empty() {
        return Vec::new();
    }
    groups
        .iter()
        .filter(|g| !config.policies.iter().any(|p| &p.group == *g))
        .collect()
}
