//! Loading the config: the file, `DEVGATE_<SECTION>__<KEY>` overrides, `${NAME}` interpolation and literal-secret warnings.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::{Config, ConfigError, NO_FILE, SECRET_KEYS};

/// Environment variables with the `DEVGATE_` prefix that are not setting overrides.
const RESERVED_ENV: &[&str] = &[
    "DEVGATE_CONFIG",
    "DEVGATE_SECRET_KEY",
    "DEVGATE_LOG",
    "DEVGATE_LOG_FORMAT",
];

/// Top-level settings that `DEVGATE_<SETTING>[__<KEY>…]` variables override.
const SETTINGS: &[&str] = &[
    "public_url",
    "http",
    "tools",
    "upstream",
    "providers",
    "store",
    "oauth",
    "limits",
    "login",
    "policies",
    "auth_server",
];

impl Config {
    /// Finds and loads the config: `explicit`, else `DEVGATE_CONFIG`, else `./devgate.toml` if present.
    /// Stops at the first problem; [`Config::load_all`] lists them all.
    pub fn load(explicit: Option<&Path>) -> Result<Self, ConfigError> {
        first_problem(Self::load_all(explicit))
    }

    /// Loads like [`Config::load`] but reads past problems: every missing `${NAME}`, bad override,
    /// unknown key and bad value is returned, and the config is built from the rest (a missing
    /// variable reads as empty, a bad key as absent). `None` when nothing could be built (the file is
    /// unreadable or not TOML). For `devgate check`, which reports everything at once, and for
    /// commands that only read the store and so need no secrets.
    pub fn load_all(explicit: Option<&Path>) -> (Option<Self>, Vec<ConfigError>) {
        let env_path = std::env::var_os("DEVGATE_CONFIG").map(PathBuf::from);
        let path = explicit.map(Path::to_path_buf).or(env_path);
        let (text, origin) = match path {
            Some(p) => match std::fs::read_to_string(&p) {
                Ok(text) => (text, p.display().to_string()),
                Err(cause) => return (None, vec![ConfigError::Read { path: p, cause }]),
            },
            None => match std::fs::read_to_string("devgate.toml") {
                Ok(t) => (t, "devgate.toml".to_string()),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    (String::new(), NO_FILE.to_string())
                }
                Err(cause) => {
                    let path = "devgate.toml".into();
                    return (None, vec![ConfigError::Read { path, cause }]);
                }
            },
        };
        let (mut config, problems) = Self::from_toml_all(&text, &origin, std::env::vars());
        if let Some(config) = config.as_mut()
            && origin != NO_FILE
        {
            config.base_dir = Path::new(&origin).parent().map(Path::to_path_buf);
        }
        (config, problems)
    }

    /// The store URL with a relative SQLite path resolved against the config file's directory.
    pub fn store_url(&self) -> String {
        let url = &self.store.url;
        let Some(path) = url.strip_prefix("sqlite://") else {
            return url.clone();
        };
        let path = Path::new(path);
        match &self.base_dir {
            Some(dir) if path.is_relative() && !dir.as_os_str().is_empty() => {
                format!("sqlite://{}", dir.join(path).display())
            }
            _ => url.clone(),
        }
    }

    /// The OAuth callback URL registered with providers.
    pub fn callback_url(&self) -> Option<String> {
        self.public_url
            .as_deref()
            .map(|u| format!("{}/integration-callback", u.trim_end_matches('/')))
    }

    /// Parses config text, applying `DEVGATE_…` overrides and `${NAME}` references from `env`.
    pub fn from_toml(
        text: &str,
        origin: &str,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Self, ConfigError> {
        first_problem(Self::from_toml_all(text, origin, env))
    }

    /// [`Config::from_toml`] reading past problems, as [`Config::load_all`] does.
    pub fn from_toml_all(
        text: &str,
        origin: &str,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> (Option<Self>, Vec<ConfigError>) {
        let env: BTreeMap<String, String> = env.into_iter().collect();
        let parse_error = |message: String| ConfigError::Parse {
            origin: origin.to_string(),
            message: message.trim().replace('\n', " "),
        };
        let mut root: toml::Table = match toml::from_str(text) {
            Ok(root) => root,
            Err(e) => return (None, vec![parse_error(e.to_string())]),
        };
        let mut problems = Vec::new();
        let mut warnings = Vec::new();
        literal_secrets(&root, "", &mut warnings);
        for (name, raw) in &env {
            let Some(rest) = name.strip_prefix("DEVGATE_") else {
                continue;
            };
            if RESERVED_ENV.contains(&name.as_str()) || rest.is_empty() {
                continue;
            }
            let keys: Vec<String> = rest.split("__").map(str::to_ascii_lowercase).collect();
            // Only the config's own settings: other DEVGATE_* variables (test and CI switches) are not
            // overrides and must not break loading.
            if !SETTINGS.contains(&keys[0].as_str()) {
                continue;
            }
            if let Err(message) = set_path(&mut root, &keys, env_value(raw)) {
                problems.push(ConfigError::Parse {
                    origin: name.clone(),
                    message,
                });
            }
        }
        interpolate_table(&mut root, "", &env, &mut problems);
        // serde stops at the first unknown key or bad value: note it, drop that key, and try again
        // until the rest deserializes. Each round removes one key, so this ends.
        loop {
            match toml::Table::try_into::<Config>(root.clone()) {
                Ok(mut config) => {
                    config.warnings = warnings;
                    config.origin = origin.to_string();
                    return (Some(config), problems);
                }
                Err(e) => {
                    let shown = e.to_string();
                    problems.push(parse_error(shown.clone()));
                    let removed = error_key(e.message(), &shown)
                        .is_some_and(|path| remove_path(&mut root, &path));
                    if !removed {
                        return (None, problems);
                    }
                }
            }
        }
    }
}

/// An environment override's value: a TOML literal when it parses as one, else a plain string.
fn env_value(raw: &str) -> toml::Value {
    toml::from_str::<toml::Table>(&format!("v = {raw}"))
        .ok()
        .and_then(|mut t| t.remove("v"))
        .unwrap_or_else(|| toml::Value::String(raw.to_string()))
}

fn set_path(table: &mut toml::Table, keys: &[String], value: toml::Value) -> Result<(), String> {
    let (last, parents) = keys.split_last().ok_or("empty setting name")?;
    let mut current = table;
    for key in parents {
        let entry = current
            .entry(key.clone())
            .or_insert_with(|| toml::Value::Table(toml::Table::new()));
        current = entry
            .as_table_mut()
            .ok_or_else(|| format!("`{key}` is not a section"))?;
    }
    current.insert(last.clone(), value);
    Ok(())
}

fn literal_secrets(table: &toml::Table, prefix: &str, warnings: &mut Vec<String>) {
    for (key, value) in table {
        let path = if prefix.is_empty() {
            key.clone()
        } else {
            format!("{prefix}.{key}")
        };
        match value {
            toml::Value::Table(t) => literal_secrets(t, &path, warnings),
            // `sim-…` tokens belong to the simulated providers of `devgate sandbox` and are public.
            toml::Value::String(s)
                if SECRET_KEYS.contains(&key.as_str()) && !s.contains("${") && !s.starts_with("sim-") =>
            {
                warnings.push(
                format!("{path} is written literally in the config file; use ${{ENV_NAME}} and keep the secret in the environment"
                ))
            }
            _ => {}
        }
    }
}

fn interpolate_table(
    table: &mut toml::Table,
    prefix: &str,
    env: &BTreeMap<String, String>,
    problems: &mut Vec<ConfigError>,
) {
    for (key, value) in table.iter_mut() {
        let path = if prefix.is_empty() {
            key.clone()
        } else {
            format!("{prefix}.{key}")
        };
        interpolate_value(value, &path, env, problems);
    }
}

fn interpolate_value(
    value: &mut toml::Value,
    path: &str,
    env: &BTreeMap<String, String>,
    problems: &mut Vec<ConfigError>,
) {
    match value {
        toml::Value::String(s) => *s = interpolate(s, path, env, problems),
        toml::Value::Array(items) => {
            for (i, item) in items.iter_mut().enumerate() {
                interpolate_value(item, &format!("{path}[{i}]"), env, problems);
            }
        }
        toml::Value::Table(t) => interpolate_table(t, path, env, problems),
        _ => {}
    }
}

/// Replaces every `${NAME}` with the environment variable's value; an unset one reads as empty and
/// is added to `problems`.
fn interpolate(
    text: &str,
    setting: &str,
    env: &BTreeMap<String, String>,
    problems: &mut Vec<ConfigError>,
) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let Some(end) = rest[start..].find('}') else {
            problems.push(ConfigError::Invalid(format!(
                "{setting}: unclosed `${{` in value"
            )));
            return text.to_string();
        };
        let name = &rest[start + 2..start + end];
        match env.get(name) {
            Some(value) => out.push_str(value),
            None => problems.push(ConfigError::MissingEnv {
                setting: setting.to_string(),
                name: name.to_string(),
            }),
        }
        rest = &rest[start + end + 1..];
    }
    out.push_str(rest);
    out
}

/// The first problem of a lenient load, or its config.
fn first_problem(
    (config, problems): (Option<Config>, Vec<ConfigError>),
) -> Result<Config, ConfigError> {
    match (config, problems.into_iter().next()) {
        (_, Some(problem)) => Err(problem),
        (Some(config), None) => Ok(config),
        (None, None) => Err(ConfigError::Invalid(
            "the configuration cannot be read".into(),
        )),
    }
}

/// The key a deserialization error is about: the path toml prints as "in `a.b`", plus the key an
/// "unknown field" message names.
fn error_key(message: &str, shown: &str) -> Option<Vec<String>> {
    let mut path: Vec<String> = shown
        .lines()
        .rev()
        .find_map(|l| l.strip_prefix("in `")?.strip_suffix('`'))
        .map(|p| p.split('.').map(str::to_string).collect())
        .unwrap_or_default();
    if let Some(rest) = message.strip_prefix("unknown field `") {
        path.push(rest.split('`').next()?.to_string());
    }
    (!path.is_empty()).then_some(path)
}

/// Removes a key by its path; false when there is none.
fn remove_path(table: &mut toml::Table, path: &[String]) -> bool {
    match path {
        [] => false,
        [last] => table.remove(last).is_some(),
        [first, rest @ ..] => table
            .get_mut(first)
            .and_then(toml::Value::as_table_mut)
            .is_some_and(|t| remove_path(t, rest)),
    }
}
