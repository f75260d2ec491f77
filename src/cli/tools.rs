//! `devgate tools`: the tools a config offers, or with `--stats` what they cost an agent
//! ([`devgate::mcp::stats`]).

use std::process::ExitCode;

use anyhow::bail;
use devgate::config::Config;
use devgate::gateway::is_offered;
use devgate::mcp::stats::ToolStats;

use super::{Cli, ToolSelection, ToolsFormat, load_catalog};

/// `devgate tools`: the offered tools as Markdown or JSON; with `--stats`, their size.
pub(super) async fn tools(
    cli: &Cli,
    format: &ToolsFormat,
    all: &bool,
    stats: &bool,
    select: &ToolSelection,
) -> anyhow::Result<ExitCode> {
    let catalog = load_catalog(cli.tools_dir.as_deref())?;
    let mut config = if *all {
        Config::default()
    } else {
        Config::load(cli.config.as_deref())?
    };
    select.apply(&mut config)?;
    let problems = config.tool_problems(&catalog);
    if !problems.is_empty() {
        bail!(
            "{} has problems:\n  {}",
            select.origin(&config),
            problems.join("\n  ")
        );
    }
    // Without providers (or with --all), the whole catalog: every provider as if configured, without
    // credentials (listing calls nothing).
    let whole = *all || config.providers.is_empty();
    if whole {
        for p in &catalog.providers {
            config.providers.insert(
                p.spec.id.clone(),
                devgate::config::ProviderConfig::default(),
            );
        }
    }
    if *stats {
        let stats = ToolStats::measure(&config, &catalog).await?;
        match format {
            ToolsFormat::Md => print!("{}", stats.markdown(&config, whole)),
            ToolsFormat::Json => println!("{}", serde_json::to_string_pretty(&stats)?),
        }
        return Ok(ExitCode::SUCCESS);
    }
    let tools: Vec<_> = catalog
        .providers
        .iter()
        .flat_map(|p| p.tools.iter())
        .filter(|t| is_offered(&config, &catalog, t))
        .collect();
    match format {
        ToolsFormat::Md => print!("{}", devgate::catalog::docs::markdown(&catalog, &tools)),
        ToolsFormat::Json => println!("{}", devgate::catalog::docs::json(&tools)),
    }
    Ok(ExitCode::SUCCESS)
}
