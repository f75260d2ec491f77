//! Checking a loaded config against the catalog: every problem listed at once, retired names as warnings.

use super::{Config, HttpAuth, NO_FILE, ProviderConfig};
use crate::catalog::Catalog;

impl Config {
    /// The problems of the tool selection alone (unknown toolsets, unknown excluded tools): what
    /// `devgate tools` checks, which also runs without providers or credentials.
    pub fn tool_problems(&self, catalog: &Catalog) -> Vec<String> {
        let mut problems = Vec::new();
        let toolsets: std::collections::BTreeSet<&str> = catalog
            .providers
            .iter()
            .flat_map(|p| p.tools.iter().map(|t| t.spec.toolset.as_str()))
            .collect();
        for set in &self.tools.toolsets {
            if set != "all"
                && !toolsets.contains(set.as_str())
                && catalog.retired_toolset(set).is_none()
            {
                let known: Vec<&str> = toolsets.iter().copied().collect();
                problems.push(format!(
                    "tools.toolsets: unknown toolset `{set}` (known: all, {})",
                    known.join(", ")
                ));
            }
        }
        for name in &self.tools.exclude {
            let known = catalog
                .providers
                .iter()
                .any(|p| p.tools.iter().any(|t| &t.name == name));
            if !known && catalog.retired_tool(name).is_none() {
                problems.push(format!("tools.exclude: unknown tool `{name}`"));
            }
        }
        for name in &self.tools.confirm {
            let known = catalog
                .providers
                .iter()
                .flat_map(|p| p.tools.iter())
                .find(|t| &t.name == name);
            match known {
                None if catalog.retired_tool(name).is_some() => {}
                None => problems.push(format!("tools.confirm: unknown tool `{name}`")),
                Some(t) if t.spec.annotations.read_only => problems.push(format!(
                    "tools.confirm: `{name}` changes nothing, so there is nothing to confirm"
                )),
                Some(_) => {}
            }
        }
        problems.extend(crate::policy::problems(&self.policies, catalog));
        problems
    }

    /// Names the config still uses that a provider retired (see [`crate::catalog::RetiredSpec`]): each is
    /// ignored, and worth a warning rather than a refusal to start, because the config was right when it
    /// was written and every other tool still works; a name no catalog ever had stays an error.
    pub fn retired_names(&self, catalog: &Catalog) -> Vec<String> {
        let mut warnings = Vec::new();
        for (id, p) in &self.providers {
            let Some(provider) = catalog.provider(id) else {
                continue;
            };
            for scope in p.scopes.iter().flatten() {
                if let Some(why) = provider.retired_scope(scope) {
                    warnings.push(format!(
                        "providers.{id}.scopes: `{scope}` is retired ({why}); it is ignored: remove it"
                    ));
                }
            }
        }
        for set in &self.tools.toolsets {
            if let Some(why) = catalog.retired_toolset(set) {
                warnings.push(format!(
                    "tools.toolsets: `{set}` is retired ({why}); it selects no tool: remove it"
                ));
            }
        }
        for (key, names) in [
            ("exclude", &self.tools.exclude),
            ("confirm", &self.tools.confirm),
        ] {
            for name in names {
                if let Some(why) = catalog.retired_tool(name) {
                    warnings.push(format!(
                        "tools.{key}: `{name}` is retired ({why}); it is ignored: remove it"
                    ));
                }
            }
        }
        warnings.extend(crate::policy::retired_names(&self.policies, catalog));
        warnings
    }

    /// Checks the config against the catalog; returns every problem found.
    pub fn validate(&self, catalog: &Catalog) -> Vec<String> {
        let mut problems = Vec::new();
        if let Some(url) = &self.public_url
            && let Err(e) = url::Url::parse(url)
        {
            problems.push(format!("public_url `{url}`: {e}"));
        }
        if self.http.listen.parse::<std::net::SocketAddr>().is_err() {
            problems.push(format!(
                "http.listen `{}` is not an address such as 127.0.0.1:8080",
                self.http.listen
            ));
        }
        if !(10..=60_000).contains(&self.tools.wait_poll_ms) {
            problems.push("tools.wait_poll_ms must be between 10 and 60000".into());
        }
        if !(60..=7 * 24 * 3600).contains(&self.tools.task_ttl_secs) {
            problems.push("tools.task_ttl_secs must be between 60 and 604800 (a week)".into());
        }
        if !(1..=600).contains(&self.tools.task_lease_secs) {
            problems.push("tools.task_lease_secs must be between 1 and 600".into());
        }
        if self.tools.text_cap_bytes < 1024 {
            problems.push("tools.text_cap_bytes must be at least 1024".into());
        }
        let limits = &self.limits;
        for (name, value) in [
            ("header_timeout_ms", limits.header_timeout_ms),
            ("body_timeout_ms", limits.body_timeout_ms),
        ] {
            if !(100..=600_000).contains(&value) {
                problems.push(format!("limits.{name} must be between 100 and 600000"));
            }
        }
        for (name, value) in [
            ("max_connections", limits.max_connections),
            ("max_sessions", limits.max_sessions),
            ("sessions_per_user", limits.sessions_per_user),
        ] {
            if value == 0 {
                problems.push(format!("limits.{name} must be at least 1"));
            }
        }
        if limits.session_idle_secs == 0 {
            problems.push("limits.session_idle_secs must be at least 1".into());
        }
        problems.extend(self.tool_problems(catalog));
        if self.providers.is_empty() && self.origin == NO_FILE {
            problems.push(
                "no configuration: there is no devgate.toml here and neither --config nor \
                 DEVGATE_CONFIG names one (README \"Setup with real Buddy and Bitbucket accounts\" \
                 shows one; `devgate sandbox` needs none)"
                    .into(),
            );
        } else if self.providers.is_empty() {
            problems.push(format!(
                "no provider is configured: add [providers.buddy] or [providers.bitbucket] to {}",
                self.origin
            ));
        }
        for (id, p) in &self.providers {
            let Some(provider) = catalog.provider(id) else {
                let known: Vec<&str> = catalog
                    .providers
                    .iter()
                    .map(|p| p.spec.id.as_str())
                    .collect();
                problems.push(format!(
                    "providers.{id}: unknown provider (known: {})",
                    known.join(", ")
                ));
                continue;
            };
            if let Some(base) = &p.api_base {
                match url::Url::parse(base) {
                    Ok(u) if matches!(u.scheme(), "http" | "https") => {}
                    _ => problems.push(format!(
                        "providers.{id}.api_base `{base}` is not an http(s) URL"
                    )),
                }
            }
            for scope in p.scopes.iter().flatten() {
                if !provider.knows_scope(scope) && provider.retired_scope(scope).is_none() {
                    problems.push(format!("providers.{id}.scopes: unknown scope `{scope}`"));
                }
            }
            match (&p.token, &p.email, &p.api_token, &p.client_id, &p.client_secret) {
                (Some(_), None, None, None, _) | (None, Some(_), Some(_), None, _) => {}
                // Without public_url, `devgate http` uses its listen address; stdio needs it set.
                (None, None, None, Some(_), Some(_)) => {}
                (None, None, None, Some(_), None) => problems.push(format!(
                    "providers.{id}: client_id needs client_secret = \"${{{}_CLIENT_SECRET}}\"",
                    id.to_ascii_uppercase()
                )),
                (None, None, None, None, _) => problems.push(format!(
                    "providers.{id}: no credentials: set client_id + client_secret (users connect their own accounts), or token = \"${{{}_TOKEN}}\"{}",
                    id.to_ascii_uppercase(),
                    if provider.spec.email_api_token { " (or email + api_token)" } else { "" }
                )),
                (None, Some(_), None, ..) | (None, None, Some(_), ..) => {
                    problems.push(format!("providers.{id}: email and api_token go together"))
                }
                _ => problems.push(format!(
                    "providers.{id}: set one kind of credentials: client_id + client_secret, token, or email + api_token"
                )),
            }
            for (name, value) in [
                ("authorize_url", &p.authorize_url),
                ("token_url", &p.token_url),
                ("revoke_url", &p.revoke_url),
            ] {
                if let Some(v) = value
                    && !matches!(url::Url::parse(v), Ok(u) if matches!(u.scheme(), "http" | "https"))
                {
                    problems.push(format!("providers.{id}.{name} `{v}` is not an http(s) URL"));
                }
            }
        }
        let store = &self.store.url;
        if !(store.starts_with("sqlite:")
            || store.starts_with("postgres://")
            || store.starts_with("postgresql://"))
        {
            problems.push("store.url must start with sqlite:// or postgres://".to_string());
        }
        match (self.http.auth, &self.http.jwt) {
            (HttpAuth::Jwt, None) => problems
                .push("http.auth = \"jwt\" needs [http.jwt] issuer, audience and jwks_url".into()),
            (HttpAuth::Jwt, Some(j)) if url::Url::parse(&j.jwks_url).is_err() => {
                problems.push(format!("http.jwt.jwks_url `{}` is not a URL", j.jwks_url))
            }
            _ => {}
        }
        if let Some(login) = &self.login {
            problems.extend(login.problems());
        }
        if let Some(j) = &self.http.jwt {
            const ASYMMETRIC: [&str; 9] = [
                "RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "EdDSA",
            ];
            for alg in j
                .algorithms
                .iter()
                .filter(|a| !ASYMMETRIC.contains(&a.as_str()))
            {
                problems.push(format!(
                    "http.jwt.algorithms: `{alg}` is not one of {}",
                    ASYMMETRIC.join(", ")
                ));
            }
        }
        if self.http.auth == HttpAuth::OAuth {
            problems.extend(self.auth_server.problems());
            if !self.providers.values().any(ProviderConfig::uses_oauth) {
                problems.push(
                    "http.auth = \"oauth\": users sign in with a provider account, so configure a provider with client_id and client_secret".into(),
                );
            }
        }
        problems
    }
}
