//! `devgate policy check`: explains a `[[policies]]` decision: the user's groups (given, or from their
//! API keys), every rule that matches the tool, and the result.

use std::process::ExitCode;

use anyhow::bail;
use devgate::catalog::Catalog;
use devgate::config::Config;
use devgate::policy::{Decision, Policies, ToolFacts, Verdict};

use super::keys::checked_groups;
use super::{Cli, PolicyAction, load_for_reading};

/// `devgate policy check <user> <tool> [--group …]`: exit 0 when the user may call the tool, 1 when not.
pub(super) async fn policy(cli: &Cli, action: &PolicyAction) -> anyhow::Result<ExitCode> {
    let PolicyAction::Check { user, tool, groups } = action;
    let (config, catalog) = load_for_reading(cli)?;
    if tool == devgate::gateway::CONNECTIONS_TOOL {
        println!("{tool} is built in and offered to every user; policies do not apply to it");
        return Ok(ExitCode::SUCCESS);
    }
    let Some(found) = find_tool(&catalog, tool) else {
        bail!("unknown tool `{tool}` (`devgate tools --all` lists them)");
    };
    let facts = ToolFacts::from(found.as_ref());
    println!("user: {user}");
    println!(
        "tool: {tool} (toolset {}; {})",
        facts.toolset,
        if facts.read_only {
            "changes nothing"
        } else {
            "changes things"
        }
    );
    if !devgate::gateway::is_offered(&config, &catalog, found) {
        println!(
            "result: not offered by {} at all (its [tools] selection or the provider's scopes), whatever the policies say",
            config.origin
        );
        return Ok(ExitCode::FAILURE);
    }
    let policies = Policies::new(&config.policies);
    let mut allowed = true;
    for (groups, source) in group_sets(&config, user, groups).await? {
        let decision = policies.decide(&groups, facts);
        println!("groups: {}{source}", list_or_none(&groups));
        explain(&decision, &config);
        allowed &= decision.allowed();
    }
    Ok(if allowed {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

fn find_tool<'a>(
    catalog: &'a Catalog,
    name: &str,
) -> Option<&'a std::sync::Arc<devgate::catalog::Tool>> {
    catalog
        .providers
        .iter()
        .flat_map(|p| p.tools.iter())
        .find(|t| t.name == name)
}

/// The group sets to decide for, each with where it came from: the `--group` values, else each
/// distinct set among the user's API keys (usually one), else none.
async fn group_sets(
    config: &Config,
    user: &str,
    given: &[String],
) -> anyhow::Result<Vec<(Vec<String>, String)>> {
    if !given.is_empty() {
        return Ok(vec![(
            checked_groups(given)?,
            " (given with --group)".into(),
        )]);
    }
    let vault = devgate::app::open_vault(config)
        .await
        .map_err(anyhow::Error::msg)?;
    let keys = vault.store.api_keys(user).await?;
    if keys.is_empty() {
        return Ok(vec![(
            Vec::new(),
            format!(
                " ({user} has no API key; for a user who signs in, pass their groups with --group)"
            ),
        )]);
    }
    let mut sets: Vec<(Vec<String>, Vec<String>)> = Vec::new();
    for key in keys {
        let mut groups = key.groups.clone();
        groups.sort();
        match sets.iter_mut().find(|(g, _)| *g == groups) {
            Some((_, ids)) => ids.push(key.id),
            None => sets.push((groups, vec![key.id])),
        }
    }
    Ok(sets
        .into_iter()
        .map(|(groups, ids)| {
            let plural = if ids.len() == 1 { "" } else { "s" };
            (
                groups,
                format!(" (from API key{plural} {})", ids.join(", ")),
            )
        })
        .collect())
}

fn list_or_none(groups: &[String]) -> String {
    if groups.is_empty() {
        "none".into()
    } else {
        groups.join(", ")
    }
}

/// Prints the matching rules and the result.
fn explain(decision: &Decision, config: &Config) {
    if !decision.active {
        println!(
            "result: allowed: {} has no [[policies]], so every user gets what it offers",
            config.origin
        );
        return;
    }
    if decision.matched.is_empty() {
        println!("rules: none matches");
    } else {
        println!("rules:");
        for rule in &decision.matched {
            println!("  {rule}");
        }
    }
    let why = match &decision.verdict {
        Verdict::Denied(_)
            if decision
                .matched
                .iter()
                .any(|r| r.kind.key().starts_with("allow")) =>
        {
            " (a denial beats any allow)"
        }
        Verdict::NotAllowed => " (an entry has an allow list, so tools are offered only by allow)",
        _ => "",
    };
    println!("result: {}{why}", decision.audit_text());
}
