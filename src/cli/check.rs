//! `devgate check`: the catalogs, the config and the store checked in one run, every problem listed.

use std::process::ExitCode;

use devgate::app::App;
use devgate::config::Config;

use super::{Cli, ToolSelection, load_catalog};

/// `devgate check`: prints `ok` with the number of tools offered, or every problem and exit 1.
pub(super) async fn check(cli: &Cli, select: &ToolSelection) -> anyhow::Result<ExitCode> {
    // Every problem in one run: the catalogs', the config's (unset variables, unknown keys, bad
    // values, then what the settings mean together), and the store's.
    let mut problems = Vec::new();
    let catalog = load_catalog(cli.tools_dir.as_deref())
        .map_err(|e| problems.push(e.to_string()))
        .ok();
    let (config, load_problems) = Config::load_all(cli.config.as_deref());
    problems.extend(load_problems.iter().map(ToString::to_string));
    let origin = match &config {
        Some(c) => select.origin(c),
        None => "the configuration".to_string(),
    };
    if let Some(mut config) = config {
        if let Err(e) = select.apply(&mut config) {
            problems.push(e.to_string());
        }
        for warning in &config.warnings {
            eprintln!("warning: {warning}");
        }
        if let Some(catalog) = &catalog {
            for warning in config.retired_names(catalog) {
                eprintln!("warning: {warning}");
            }
            problems.extend(config.validate(catalog));
            if problems.is_empty() {
                let needs_store = config.providers.values().any(|p| p.uses_oauth());
                match App::build(config.clone(), catalog, needs_store).await {
                    Err(e) => problems.push(e),
                    Ok(app) => {
                        // What an agent's tools/list holds, built-in tools included.
                        let tools = app.gateway.tools();
                        let builtin = tools
                            .iter()
                            .any(|t| t.name == devgate::gateway::CONNECTIONS_TOOL);
                        println!(
                            "{}: ok ({} tools offered{})",
                            config.origin,
                            tools.len(),
                            if builtin {
                                format!(", {} included", devgate::gateway::CONNECTIONS_TOOL)
                            } else {
                                String::new()
                            }
                        );
                        return Ok(ExitCode::SUCCESS);
                    }
                }
            }
        }
    }
    eprintln!("{origin} has problems:");
    for p in problems {
        eprintln!("  {p}");
    }
    Ok(ExitCode::FAILURE)
}
