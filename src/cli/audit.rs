//! `devgate audit`: the audit log, newest first, as lines or JSON.

use std::process::ExitCode;

use anyhow::bail;

use super::{AuditFormat, Cli, human_time, store_config};

/// `devgate audit`: the selected calls, newest first.
pub(super) async fn audit(
    cli: &Cli,
    user: &Option<String>,
    since: &Option<String>,
    limit: &i64,
    format: &AuditFormat,
) -> anyhow::Result<ExitCode> {
    let config = store_config(cli)?;
    let vault = devgate::app::open_vault(&config)
        .await
        .map_err(anyhow::Error::msg)?;
    let now = devgate::vault::now();
    let since = match since {
        Some(s) => parse_since(s, now)?,
        None => 0,
    };
    let records = vault
        .store
        .audit(user.as_deref(), since, (*limit).max(1))
        .await?;
    match format {
        AuditFormat::Json => {
            let mut rows = serde_json::to_value(&records)?;
            for (row, r) in rows.as_array_mut().into_iter().flatten().zip(&records) {
                row["at"] = rfc3339(r.at).into();
            }
            println!("{}", serde_json::to_string_pretty(&rows)?)
        }
        AuditFormat::Text => {
            for r in &records {
                let at = human_time(r.at);
                let policy = if r.policy.is_empty() {
                    String::new()
                } else {
                    format!("  policy: {}", r.policy)
                };
                println!(
                    "{at}  {}  {}  {}  {} ms  [{}]  request {}{policy}",
                    r.user, r.tool, r.outcome, r.duration_ms, r.target, r.request_id
                );
            }
            if records.is_empty() {
                eprintln!("no calls recorded for this selection");
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `--since`: an RFC 3339 time or an age before now, as a Unix time.
fn parse_since(text: &str, now: i64) -> anyhow::Result<i64> {
    if let Ok(t) = chrono::DateTime::parse_from_rfc3339(text) {
        return Ok(t.timestamp());
    }
    let (number, unit) = text.split_at(text.trim_end_matches(char::is_alphabetic).len());
    let n: i64 = number
        .parse()
        .map_err(|_| anyhow::anyhow!("--since `{text}`: give a time such as 2026-11-23T10:00:00Z or an age such as 30m, 2h, 7d"))?;
    let seconds = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => bail!("--since `{text}`: the age's unit must be s, m, h or d"),
    };
    Ok(now - n * seconds)
}

/// A Unix time in RFC 3339, for JSON output.
fn rfc3339(at: i64) -> String {
    chrono::DateTime::from_timestamp(at, 0)
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
        .unwrap_or_else(|| at.to_string())
}

#[cfg(test)]
mod tests {
    use super::parse_since;

    #[test]
    fn since_takes_a_time_or_an_age() {
        assert_eq!(
            parse_since("2026-11-23T10:00:00Z", 0).unwrap(),
            1_795_428_000
        );
        assert_eq!(parse_since("2h", 10_000).unwrap(), 10_000 - 7200);
        assert_eq!(
            parse_since("7d", 1_000_000).unwrap(),
            1_000_000 - 7 * 86_400
        );
        assert!(parse_since("yesterday", 0).is_err());
        assert!(parse_since("5w", 0).is_err());
    }
}
