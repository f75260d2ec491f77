//! Hostile input, property-based: arbitrary tool arguments, path values, cursors, callback query
//! strings, config files and catalog files never panic, and no argument or cursor leads a request
//! outside the tool's path template.

use std::sync::Arc;

use devgate::catalog::schema::{self, Defaults};
use devgate::catalog::{Catalog, template};
use devgate::config::{Config, ProviderConfig, Secret, UpstreamConfig};
use devgate::oauth::connect::CallbackParams;
use devgate::provider::ProviderClient;
use devgate::shape;
use proptest::prelude::*;
use serde_json::{Map, Value, json};

fn catalog() -> &'static Catalog {
    static CATALOG: std::sync::OnceLock<Catalog> = std::sync::OnceLock::new();
    CATALOG.get_or_init(|| Catalog::builtin().expect("the shipped catalogs load"))
}

/// Any JSON value, with strings drawn from a hostile alphabet.
fn value() -> impl Strategy<Value = Value> {
    let hostile = prop_oneof![
        "[a-z0-9{}/?#%.&=+ \\\\-]{0,12}",
        Just("..".to_string()),
        Just("../..".to_string()),
        Just("%2F".to_string()),
        Just("{uuid}".to_string()),
        Just("?q=1#f".to_string()),
        Just("\u{0}\u{202e}ü".to_string()),
    ];
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|i| json!(i)),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(|f| json!(f)),
        hostile.prop_map(Value::String),
    ];
    leaf.prop_recursive(3, 16, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::btree_map("[a-z_]{1,8}", inner, 0..4)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// Literal segments of a path template, with `None` for placeholders.
fn shape_of(template_path: &str) -> Vec<Option<String>> {
    template_path
        .trim_start_matches('/')
        .split('/')
        .map(|seg| {
            if seg.contains('{') {
                None
            } else {
                Some(seg.to_string())
            }
        })
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_arguments_never_leave_the_template(tool_index in 0usize..64, raw in prop::collection::btree_map("[a-z_]{1,12}", value(), 0..6), known in prop::collection::vec(value(), 0..6)) {
        let tools: Vec<_> = catalog().providers.iter().flat_map(|p| p.tools.iter()).collect();
        let tool = tools[tool_index % tools.len()];
        // Mix arbitrary keys with the tool's own parameter names, so validation often passes.
        let mut args: Map<String, Value> = raw.into_iter().collect();
        for (name, v) in tool.spec.params.keys().zip(known) {
            args.insert(name.clone(), v);
        }
        let defaults = Defaults { workspace: Some("acme".into()) };
        let Ok(valid) = schema::validate(tool, Some(&args), &defaults) else { return Ok(()) };
        let Ok(path) = tool.path.render(&valid) else { return Ok(()) };
        let expected = shape_of(&tool.spec.path);
        let multi = tool.spec.path.contains("{+");
        let got: Vec<&str> = path.trim_start_matches('/').split('/').collect();
        prop_assert!(!path.contains(['?', '#']), "{} rendered {path}", tool.name);
        for seg in &got {
            prop_assert!(!seg.is_empty() && *seg != "." && *seg != "..", "{} rendered {path}", tool.name);
            prop_assert!(!seg.eq_ignore_ascii_case("%2e") && !seg.eq_ignore_ascii_case("%2e%2e"), "{path}");
        }
        if multi {
            // Up to the multi-segment placeholder, the path is as the template says.
            let fixed = expected.iter().position(Option::is_none).unwrap_or(expected.len());
            for (want, have) in expected[..fixed].iter().zip(&got) {
                prop_assert_eq!(want.as_deref().unwrap_or_default(), *have);
            }
        } else {
            prop_assert_eq!(got.len(), expected.len(), "{} rendered {}", tool.name, path);
            for (want, have) in expected.iter().zip(&got) {
                if let Some(w) = want { prop_assert_eq!(w.as_str(), *have); }
            }
        }
        // The query only ever carries the template's keys.
        let keys: Vec<String> = template::render_query(&tool.query, &valid).into_iter().map(|(k, _)| k).collect();
        prop_assert!(keys.iter().all(|k| tool.spec.query.contains_key(k)));
    }

    #[test]
    fn hostile_strings_in_every_path_parameter(tool_index in 0usize..64, hostile in "[a-z0-9{}/?#%.&=+ \\-]{1,16}") {
        // Start from the tool's own example (valid), then put the hostile string in each string
        // parameter the path uses: whatever renders stays in its segments.
        let tools: Vec<_> = catalog().providers.iter().flat_map(|p| p.tools.iter()).collect();
        let tool = tools[tool_index % tools.len()];
        let example = tool.spec.example.clone().unwrap_or_default();
        let defaults = Defaults::default();
        for placeholder in tool.path.placeholders() {
            let name = placeholder.name();
            let mut args = example.clone();
            args.insert(name.to_string(), Value::String(hostile.clone()));
            let Ok(valid) = schema::validate(tool, Some(&args), &defaults) else { continue };
            let Ok(path) = tool.path.render(&valid) else { continue };
            prop_assert!(!path.contains(['?', '#']), "{}: {path}", tool.name);
            let expected = shape_of(&tool.spec.path);
            let got: Vec<&str> = path.trim_start_matches('/').split('/').collect();
            if !tool.spec.path.contains("{+") {
                prop_assert_eq!(got.len(), expected.len(), "{}: {}", tool.name, path);
            }
            prop_assert!(got.iter().all(|s| !s.is_empty() && *s != "." && *s != ".."), "{path}");
        }
    }

    #[test]
    fn arbitrary_cursors_stay_inside_the_api(raw in ".{0,80}", relative in "[a-z0-9/?=&%.:@{}#-]{0,60}") {
        let provider = catalog().provider("bitbucket").unwrap().clone();
        let config = ProviderConfig { token: Some(Secret::new("t")), api_base: Some("https://api.example.com/2.0".into()), ..Default::default() };
        let client = ProviderClient::new(Arc::clone(&provider), &config, &UpstreamConfig::default()).unwrap();
        let key = shape::CursorKey::random();
        let scope = shape::CursorScope::new("bitbucket_list_pull_requests", "ann", &Map::new(), &[]);
        // A string devgate did not issue is never a cursor; one it issued opens to its URL.
        prop_assert!(key.open(&scope, &raw).is_err());
        let issued = key.issue(&scope, &relative);
        prop_assert_eq!(key.open(&scope, &issued), Ok(relative.clone()));
        for cursor in [raw.clone(), issued] {
            if let Ok(rel) = key.open(&scope, &cursor)
                && let Some(url) = client.absolute(&rel)
            {
                prop_assert_eq!(url.origin().ascii_serialization(), "https://api.example.com");
                prop_assert!(url.path().starts_with("/2.0/"), "{url}");
                prop_assert!(!url.path().split('/').any(|s| s == ".."), "{url}");
            }
        }
    }

    #[test]
    fn next_links_become_cursors_only_inside_the_api(
        scheme in "https|http|HTTPS|ftp|file",
        host in "api\\.example\\.com|API\\.Example\\.com|api\\.example\\.com\\.|example\\.com|127\\.0\\.0\\.1|\\[::1\\]|",
        port in "|:443|:80|:8443",
        path in "/2\\.0/r|/2\\.0|/2\\.0x/r|/3\\.0/r|/2\\.0/\\.\\./r|/2\\.0/%2e%2e/r",
        query in "|\\?page=2|\\?a=b&c=%2F",
    ) {
        let provider = catalog().provider("bitbucket").unwrap().clone();
        let config = ProviderConfig { token: Some(Secret::new("t")), api_base: Some("https://api.example.com/2.0".into()), ..Default::default() };
        let client = ProviderClient::new(Arc::clone(&provider), &config, &UpstreamConfig::default()).unwrap();
        let link = format!("{scheme}://{host}{port}{path}{query}");
        // The rule, stated with the url crate's serialized origin: same origin, under the base path.
        let expected = url::Url::parse(&link).ok().and_then(|url| {
            let inside = url.origin().ascii_serialization() == "https://api.example.com"
                && url.path().starts_with("/2.0/");
            inside.then(|| match url.query() {
                Some(q) => format!("{}?{q}", &url.path()[4..]),
                None => url.path()[4..].to_string(),
            })
        });
        prop_assert_eq!(client.relative(&link), expected, "{}", link);
    }

    #[test]
    fn arbitrary_callback_queries_parse_or_fail_cleanly(query in "[a-z_=&%0-9A-F+.-]{0,80}") {
        if let Ok(uri) = format!("/integration-callback?{query}").parse::<axum::http::Uri>() {
            let _ = axum::extract::Query::<CallbackParams>::try_from_uri(&uri);
        }
    }

    #[test]
    fn arbitrary_config_text_never_panics(text in "[a-z_\\[\\]=\"{}$.\\n 0-9]{0,200}") {
        if let Ok(config) = Config::from_toml(&text, "fuzz.toml", std::iter::empty()) {
            let _ = config.validate(catalog());
        }
    }

    #[test]
    fn mangled_catalogs_never_panic(cut in 0usize..40_000, len in 0usize..200, insert in "[a-z{}\\[\\]=\"+. \\n]{0,20}") {
        let original = devgate::catalog::BUILTIN[1].1;
        let start = (cut % original.len()).min(original.len());
        let start = (0..=start).rev().find(|i| original.is_char_boundary(*i)).unwrap_or(0);
        let end = (start + len).min(original.len());
        let end = (end..=original.len()).find(|i| original.is_char_boundary(*i)).unwrap_or(original.len());
        let mangled = format!("{}{insert}{}", &original[..start], &original[end..]);
        let _ = Catalog::from_sources([("tools/bitbucket.toml".to_string(), mangled)]);
    }
}
