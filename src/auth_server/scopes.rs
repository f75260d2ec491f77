//! The scopes devgate grants MCP clients: `tools:read` for tools that change nothing, `tools:write` for
//! tools that change things (it includes `tools:read`). The catalog says which tools are read-only.

/// Tools that change nothing.
pub const READ: &str = "tools:read";
/// Tools that change things; includes [`READ`].
pub const WRITE: &str = "tools:write";
/// Every scope, in the order metadata lists them.
pub const ALL: [&str; 2] = [READ, WRITE];

/// What each scope lets a client do, for the consent page.
pub fn describe(scope: &str) -> &'static str {
    match scope {
        READ => "Use the tools that only read (list pipelines, read pull requests, logs…)",
        WRITE => "Use the tools that change things (run pipelines, merge, comment…)",
        _ => "",
    }
}

/// The scopes a request asks for, deduplicated in [`ALL`]'s order; absent or empty means all of them.
/// An unknown scope is an error naming it.
pub fn parse(requested: Option<&str>) -> Result<Vec<String>, String> {
    let asked: Vec<&str> = requested.unwrap_or("").split_whitespace().collect();
    if let Some(unknown) = asked.iter().find(|s| !ALL.contains(s)) {
        return Err(format!(
            "unknown scope `{unknown}` (devgate grants {})",
            ALL.join(" ")
        ));
    }
    Ok(ALL
        .iter()
        .filter(|s| asked.is_empty() || asked.contains(s))
        .map(|s| s.to_string())
        .collect())
}

/// Whether `granted` (space-separated) covers every scope in `wanted`.
pub fn covers(granted: &str, wanted: &[String]) -> bool {
    let granted: Vec<&str> = granted.split_whitespace().collect();
    wanted
        .iter()
        .all(|w| granted.contains(&w.as_str()) || (w == READ && granted.contains(&WRITE)))
}

/// The scope a tool needs.
pub fn needed_for(read_only: bool) -> &'static str {
    if read_only { READ } else { WRITE }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scopes_parse_default_to_all_and_name_unknown_ones() {
        assert_eq!(parse(None).unwrap(), ALL);
        assert_eq!(parse(Some("  ")).unwrap(), ALL);
        assert_eq!(
            parse(Some("tools:write tools:read tools:read")).unwrap(),
            ALL
        );
        assert_eq!(parse(Some("tools:read")).unwrap(), [READ]);
        assert!(
            parse(Some("tools:read admin"))
                .unwrap_err()
                .contains("`admin`")
        );
    }

    #[test]
    fn write_covers_read_but_not_the_other_way() {
        assert!(covers("tools:write", &[READ.into()]));
        assert!(!covers("tools:read", &[WRITE.into()]));
        assert!(covers(
            "tools:read tools:write",
            &[READ.into(), WRITE.into()]
        ));
    }
}
