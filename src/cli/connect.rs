//! `devgate connect`, `devgate disconnect` and `devgate status`: a user's connections from a terminal.

use std::process::ExitCode;
use std::sync::Arc;

use anyhow::bail;
use devgate::app::App;
use devgate::catalog::Catalog;
use devgate::identity::default_user;
use devgate::oauth::connect::Connector;
use devgate::transport::stdio_pages::serve_pages_for_stdio;

use super::{Cli, ToolSelection, human_time, load_checked, load_for_reading, shutdown_signal};

/// `devgate connect`: prints the link and waits until the callback stores a new connection.
pub(super) async fn connect(
    cli: &Cli,
    provider: &str,
    user: &Option<String>,
) -> anyhow::Result<ExitCode> {
    let (app, connector, user) = app_for(cli, provider, user).await?;
    let link = connector.link(&user, provider).await?;
    let server = serve_pages_for_stdio(&app).await;
    println!(
        "Open this link in a browser to connect {} for devgate user {user} (valid 10 minutes):\n\n  {}\n",
        connector.title(provider),
        link.url
    );
    if server.is_none() {
        println!(
            "(devgate is not serving {} itself: keep the devgate that does running.)",
            app.config.public_url.as_deref().unwrap_or("public_url")
        );
    }
    let before = connector
        .vault()
        .store
        .connection(&user, provider)
        .await?
        .map(|c| c.version);
    loop {
        tokio::select! {
            () = tokio::time::sleep(std::time::Duration::from_millis(500)) => {}
            () = shutdown_signal() => return Ok(ExitCode::FAILURE),
        }
        let now = connector.vault().store.connection(&user, provider).await?;
        if let Some(c) = now.filter(|c| Some(c.version) != before) {
            println!(
                "Connected {} account {} for {user}.",
                connector.title(provider),
                c.account
            );
            return Ok(ExitCode::SUCCESS);
        }
    }
}

/// `devgate disconnect`: forgets the connection (revoked upstream where the provider allows).
pub(super) async fn disconnect(
    cli: &Cli,
    provider: &str,
    user: &Option<String>,
) -> anyhow::Result<ExitCode> {
    let (_app, connector, user) = app_for(cli, provider, user).await?;
    println!("{}", connector.disconnect(&user, provider).await?);
    Ok(ExitCode::SUCCESS)
}

/// What `connect` and `disconnect` work with: the app (store and OAuth clients), the connector for
/// `provider`, and the user they act for.
async fn app_for(
    cli: &Cli,
    provider: &str,
    user: &Option<String>,
) -> anyhow::Result<(App, Arc<Connector>, String)> {
    let (config, catalog) = load_checked(cli, &ToolSelection::default())?;
    let app = App::build(config, &catalog, true)
        .await
        .map_err(anyhow::Error::msg)?;
    let connector = connector_for(&app, &catalog, provider)?.clone();
    let user = user.clone().unwrap_or_else(|| default_user(&app.config));
    Ok((app, connector, user))
}

/// `devgate status`: one line per provider; reads the store only.
pub(super) async fn status(cli: &Cli, user: &Option<String>) -> anyhow::Result<ExitCode> {
    let (mut config, catalog) = load_for_reading(cli)?;
    // Only reads: no link is made, so any base serves where public_url is unset.
    config
        .public_url
        .get_or_insert_with(|| "http://127.0.0.1:8080".into());
    let app = App::build(config, &catalog, false)
        .await
        .map_err(anyhow::Error::msg)?;
    let user = user.clone().unwrap_or_else(|| default_user(&app.config));
    println!("devgate user: {user}");
    let statuses = match &app.connector {
        Some(c) => c.statuses(&user, false).await?,
        None => Vec::new(),
    };
    for (id, p) in &app.config.providers {
        if !p.uses_oauth() {
            println!("{id}: configured with a static credential (every user shares it)");
            continue;
        }
        let Some(s) = statuses.iter().find(|s| &s.provider == id) else {
            continue;
        };
        let mut line = format!("{id}: {}", s.state.replace('_', " "));
        if let Some(account) = &s.account {
            line.push_str(&format!(" as {account}"));
        }
        if !s.scopes.is_empty() {
            line.push_str(&format!("; scopes: {}", s.scopes.join(" ")));
        }
        match s.expires_at {
            Some(at) => {
                let now = devgate::vault::now();
                let verb = if at >= now { "expires" } else { "expired" };
                line.push_str(&format!(
                    "; token {verb} {} ({})",
                    relative_time(at, now),
                    human_time(at)
                ))
            }
            None if s.account.is_some() => line.push_str("; token does not expire"),
            None => {}
        }
        if let Some(d) = &s.detail {
            line.push_str(&format!(" ({d})"));
        }
        if s.state != "connected" {
            line.push_str(&format!(" — run `devgate connect {id}`"));
        }
        println!("{line}");
    }
    Ok(ExitCode::SUCCESS)
}

fn connector_for<'a>(
    app: &'a App,
    catalog: &Catalog,
    provider: &str,
) -> anyhow::Result<&'a Arc<Connector>> {
    if catalog.provider(provider).is_none() {
        let mut known: Vec<&str> = catalog
            .providers
            .iter()
            .map(|p| p.spec.id.as_str())
            .collect();
        known.sort_unstable();
        bail!(
            "unknown provider `{provider}` (known: {})",
            known.join(", ")
        );
    }
    match &app.connector {
        Some(c) if c.handles(provider) => Ok(c),
        _ => bail!(
            "providers.{provider} is not configured with an OAuth client (client_id + client_secret)"
        ),
    }
}

/// How far a time is from now, roughly: `in 59 min`, `2 h ago`.
fn relative_time(at: i64, now: i64) -> String {
    let secs = (at - now).abs();
    let amount = match secs {
        0..120 => format!("{secs} s"),
        120..7200 => format!("{} min", secs / 60),
        7200..172_800 => format!("{} h", secs / 3600),
        _ => format!("{} days", secs / 86_400),
    };
    if at >= now {
        format!("in {amount}")
    } else {
        format!("{amount} ago")
    }
}

#[cfg(test)]
mod tests {
    use super::relative_time;

    #[test]
    fn relative_times_read_naturally() {
        assert_eq!(relative_time(1_000 + 3599, 1_000), "in 59 min");
        assert_eq!(relative_time(1_000 - 30, 1_000), "30 s ago");
        assert_eq!(relative_time(1_000 + 3 * 86_400, 1_000), "in 3 days");
    }
}
