//! The catalogs held to the providers' published documents (layout and rules: tests/contract/README.md).
//!
//! Per provider directory under `tests/contract/`: every catalog tool has an entry in `index.toml`; every
//! path the catalog reads from a response exists in the entry's schema or is cited; and every JSON answer
//! the simulator gives to the tools' examples, called through devgate over stdio, validates against the
//! schema of the request it answers. The validator is written here, for the keyword subset the README
//! lists, rather than taken from the `jsonschema` crate: the test also has to walk the catalog's paths
//! through the schemas (with OpenAPI's `discriminator` subtypes), which no validator crate offers, and
//! the subset is small. `jsonschema` 0.61 would add about 24 crates (regex engines, `num`, URI
//! handling), among them a second `bit-set`/`bit-vec` beside proptest's, for keywords these schemas
//! do not use.

mod answers;
mod paths;
mod schemas;
mod self_check;

use paths::check_paths;
use schemas::{At, Schemas};

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::common::*;
use devgate::catalog::{Catalog, Method, Pagination, Provider, ResponseKind, Tool};
use devgate::shape::Field;
use devgate::sim::{Answered, Sim, Which};
use rmcp::model::CallToolRequestParams;
use serde::Deserialize;
use serde_json::Value;

const CONTRACTS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/contract");

// ---------------------------------------------------------------------------------------------------
// index.toml
// ---------------------------------------------------------------------------------------------------

/// One provider's `index.toml`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct Index {
    source: Source,
    /// Set (to the evidence) when real responses carry properties the document's closed objects
    /// (`additionalProperties: false`) leave out: such properties are then not errors.
    #[serde(default)]
    additional_properties_ignored: Option<String>,
    /// Lookups the catalog's top-level `[[resolve]]` makes, by the parameter they rewrite.
    #[serde(default)]
    resolve: BTreeMap<String, Described>,
    tools: BTreeMap<String, Entry>,
}

/// Where the schemas come from: free text for people, two parts required.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)] // read by people
struct Source {
    title: String,
    version: String,
    #[serde(default)]
    url: Option<String>,
    #[serde(default)]
    copy: Option<String>,
    #[serde(default)]
    note: Option<String>,
}

/// A body described by a schema: a lookup's, or the read behind `keep_current`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct Described {
    #[serde(default)]
    #[allow(dead_code)] // read by people
    operation: Option<String>,
    schema: String,
    /// When this schema comes from elsewhere than `[source]`.
    #[serde(default)]
    #[allow(dead_code)] // read by people
    source: Option<String>,
    #[serde(default)]
    cited: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
enum BodyKind {
    Json,
    Text,
    Empty,
}

/// One catalog tool's entry.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct Entry {
    #[serde(default)]
    #[allow(dead_code)] // read by people
    operation: Option<String>,
    #[serde(default)]
    schema: Option<String>,
    #[serde(default = "json_body")]
    body: BodyKind,
    #[serde(default)]
    #[allow(dead_code)] // read by people
    source: Option<String>,
    #[serde(default)]
    cited: BTreeMap<String, String>,
    #[serde(default)]
    resolve: BTreeMap<String, Described>,
    #[serde(default)]
    current: Option<Described>,
}

fn json_body() -> BodyKind {
    BodyKind::Json
}

/// A provider's contract: its index and every schema file of its directory.
struct Contract {
    provider: Arc<Provider>,
    index: Index,
    schemas: Schemas,
}

/// Every provider directory present, each checked to name a catalog provider.
fn contracts(catalog: &Catalog) -> Vec<Contract> {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(CONTRACTS)
        .expect("tests/contract exists")
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_dir())
        .collect();
    dirs.sort();
    assert!(!dirs.is_empty(), "no provider directory under {CONTRACTS}");
    dirs.iter()
        .map(|dir| {
            let id = dir.file_name().unwrap().to_string_lossy().to_string();
            let provider = catalog
                .provider(&id)
                .unwrap_or_else(|| panic!("tests/contract/{id}: no catalog provider `{id}`"))
                .clone();
            let text = std::fs::read_to_string(dir.join("index.toml"))
                .unwrap_or_else(|e| panic!("tests/contract/{id}/index.toml: {e}"));
            let index: Index = toml::from_str(&text)
                .unwrap_or_else(|e| panic!("tests/contract/{id}/index.toml: {e}"));
            assert!(
                !index.source.title.trim().is_empty() && !index.source.version.trim().is_empty(),
                "tests/contract/{id}/index.toml: [source] needs a title and a version"
            );
            let mut schemas = Schemas::load(dir);
            schemas.closed_objects = index.additional_properties_ignored.is_none();
            Contract {
                provider,
                index,
                schemas,
            }
        })
        .collect()
}

// ---------------------------------------------------------------------------------------------------
// Schemas: loading, references, subtypes
// ---------------------------------------------------------------------------------------------------

/// Keywords the validator implements; every other keyword but the annotations is an error.
const KEYWORDS: &[&str] = &[
    "$ref",
    "$defs",
    "type",
    "properties",
    "required",
    "additionalProperties",
    "items",
    "enum",
    "const",
    "allOf",
    "anyOf",
    "oneOf",
    "discriminator",
];
const ANNOTATIONS: &[&str] = &[
    "title",
    "description",
    "format",
    "pattern",
    "minimum",
    "maximum",
    "minLength",
    "maxLength",
    "minItems",
    "maxItems",
    "uniqueItems",
    "default",
    "examples",
    "deprecated",
    "readOnly",
    "writeOnly",
    "$schema",
    "$id",
    "$comment",
];
