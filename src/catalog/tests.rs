//! Loading and checking catalogs: the shipped ones, and small ones that show each load error.

use super::*;

const HEAD: &str = r#"
version = "1"
[provider]
id = "demo"
title = "Demo"
api_base = "https://api.example.com"
authorize_url = "/oauth/authorize"
token_url = "/oauth/token"
client_auth = "form"
pagination = { style = "next_url", next = "next" }
error_message = ["error.message"]
whoami = { path = "/user", account = "name", id = "id" }
[[scopes]]
name = "read"
description = "Read"
[[scopes]]
name = "write"
description = "Write"
implies = ["read"]
"#;

fn load(tools: &str) -> Result<Catalog, Vec<CatalogError>> {
    Catalog::from_sources([("tools/demo.toml".to_string(), format!("{HEAD}{tools}"))])
}

fn messages(tools: &str) -> Vec<String> {
    load(tools)
        .unwrap_err()
        .iter()
        .map(|e| e.to_string())
        .collect()
}

const GOOD: &str = r#"
[[tools]]
name = "get_thing"
title = "Get a thing"
description = "Returns one thing."
toolset = "things"
scopes = ["read"]
annotations = { read_only = true }
method = "GET"
path = "/things/{id}"
params.id = { type = "string", required = true, description = "Thing id" }
output.fields = ["id", "name"]
example = { id = "t1" }
"#;

#[test]
fn a_good_catalog_loads_and_expands_scopes() {
    let catalog = load(GOOD).unwrap();
    let provider = catalog.provider("demo").unwrap();
    assert_eq!(provider.tools[0].name, "demo_get_thing");
    let expanded = provider.expand_scopes(["write"]);
    assert!(expanded.contains("read") && expanded.contains("write"));
}

#[test]
fn a_cursor_prefix_names_a_subtree_without_other_tools() {
    let list = |prefix: &str| {
        format!(
            r#"{GOOD}
[[tools]]
name = "list_parts"
title = "List parts"
description = "Lists a thing's parts."
toolset = "things"
scopes = ["read"]
annotations = {{ read_only = true }}
method = "GET"
path = "/things/{{id}}/parts"
cursor_prefix = "{prefix}"
params.id = {{ type = "string", required = true, description = "Thing id" }}
output = {{ list = "values", fields = ["id"] }}
example = {{ id = "t1" }}
"#
        )
    };
    assert!(load(&list("/things/{id}/parts/")).is_ok());
    assert!(load(&list("/parts/{id}/")).is_ok());
    let m = messages(&list("/things/"));
    assert!(
        m.iter().any(|m| m.contains("also covers tool `get_thing`")),
        "{m:?}"
    );
    let m = messages(&list("/{id}/"));
    assert!(
        m.iter().any(|m| m.contains("also covers tool `get_thing`")),
        "{m:?}"
    );
    let m = messages(&list("/things/{id}/parts"));
    assert!(m.iter().any(|m| m.contains("must end with `/`")), "{m:?}");
}

#[test]
fn unknown_keys_scopes_placeholders_and_duplicates_are_named() {
    let typo = GOOD.replace("toolset =", "tooset = \"x\"\ntoolset =");
    let m = messages(&typo);
    assert!(
        m[0].starts_with("tools/demo.toml") && m[0].contains("tooset"),
        "{m:?}"
    );

    let m = messages(&GOOD.replace("[\"read\"]", "[\"admin\"]"));
    assert_eq!(
        m,
        ["tools/demo.toml: tool `get_thing`: unknown scope `admin`"]
    );

    let m = messages(&GOOD.replace("/things/{id}", "/things/{id}/{other}"));
    assert!(
        m.iter()
            .any(|e| e.contains("`get_thing`") && e.contains("`{other}` has no parameter")),
        "{m:?}"
    );

    let m = messages(&format!("{GOOD}{GOOD}"));
    assert!(
        m.iter().any(|e| e.contains("`get_thing`: declared twice")),
        "{m:?}"
    );

    for fields in [r#"["id", "id=label"]"#, r#"["id", "owner{id,id=uuid}"]"#] {
        let m = messages(&GOOD.replace(r#"["id", "name"]"#, fields));
        assert!(
            m.iter()
                .any(|e| e.contains("`get_thing`: output:") && e.contains("names two fields")),
            "{fields}: {m:?}"
        );
    }

    let m = messages(&GOOD.replace("/things/{id}", "/things"));
    assert!(
        m.iter()
            .any(|e| e.contains("`id` is declared but never sent")),
        "{m:?}"
    );
}

#[test]
fn a_retired_name_is_known_as_retired_and_gone_from_the_catalog() {
    let retired = r#"
[[retired]]
why = "Demo removed its archive"
scopes = ["archive"]
toolsets = ["archives"]
tools = ["list_archive"]
"#;
    let catalog = load(&format!("{GOOD}{retired}")).unwrap();
    let provider = catalog.provider("demo").unwrap();
    let why = Some("Demo removed its archive");
    assert_eq!(provider.retired_scope("archive"), why);
    assert_eq!(catalog.retired_tool("demo_list_archive"), why);
    assert_eq!(catalog.retired_toolset("archives"), why);
    assert_eq!(provider.retired_scope("read"), None);
    assert_eq!(
        catalog.retired_tool("list_archive"),
        None,
        "needs the prefix"
    );

    let still_there = retired
        .replace("[\"archive\"]", "[\"read\"]")
        .replace("[\"archives\"]", "[\"things\"]")
        .replace("[\"list_archive\"]", "[\"get_thing\"]");
    assert_eq!(
        messages(&format!("{GOOD}{still_there}")),
        [
            "tools/demo.toml: retired scope `read` is still in the catalog",
            "tools/demo.toml: retired tool `get_thing` is still in the catalog",
            "tools/demo.toml: retired toolset `things` is still in the catalog",
        ]
    );
}

#[test]
fn a_confirm_table_names_only_parameters_and_read_fields() {
    let delete = r#"
[[tools]]
name = "delete_thing"
title = "Delete a thing"
description = "Deletes one thing."
toolset = "things"
scopes = ["write"]
annotations = { read_only = false, destructive = true }
method = "DELETE"
path = "/things/{id}"
response = "empty"
params.id = { type = "string", required = true }
example = { id = "t1" }
confirm.read = "get_thing"
confirm.summary = "Delete thing {id} ({current.name})"
confirm.quote = ["name"]
confirm.refuse = { name = ["GONE"] }
"#;
    load(&format!("{GOOD}{delete}")).unwrap();
    let m = messages(&format!(
        "{GOOD}{}",
        delete
            .replace("({current.name})", "({current.colour}, {size|?})")
            .replace("[\"name\"]", "[\"label=notes\"]")
            .replace("{ name = [", "{ state = [")
    ));
    assert_eq!(
        m,
        [
            "tools/demo.toml: tool `delete_thing`: confirm: summary: `{colour}` is neither a parameter nor a field of the read tool's output",
            "tools/demo.toml: tool `delete_thing`: confirm: summary: `{size}` is neither a parameter nor a field of the read tool's output",
            "tools/demo.toml: tool `delete_thing`: confirm: quote: `notes` is not a field of the read tool's output",
            "tools/demo.toml: tool `delete_thing`: confirm: refuse: `state` is not a field of the read tool's output",
        ]
    );
}

#[test]
fn a_waiting_state_names_a_field_of_the_poll_and_a_tool_that_can_move_the_run() {
    let run = r#"
[[tools]]
name = "thing_log"
title = "Thing log"
description = "Returns a thing's log."
toolset = "things"
scopes = ["read"]
annotations = { read_only = true }
method = "GET"
path = "/things/{id}/log"
params.id = { type = "string", required = true }
response = "text"
text_tail = true
example = { id = "t1" }

[[tools]]
name = "poke_thing"
title = "Poke a thing"
description = "Moves a waiting thing on."
toolset = "things"
scopes = ["write"]
annotations = { read_only = false }
method = "POST"
path = "/things/{id}/poke"
params.id = { type = "string", required = true }
params.why = { type = "string", required = true }
body = { why = "{why}" }
response = "empty"
example = { id = "t1", why = "test" }

[[tools]]
name = "start_thing"
title = "Start a thing"
description = "Starts a thing."
toolset = "things"
scopes = ["write"]
annotations = { read_only = false }
method = "POST"
path = "/things"
body = { why = "{why}" }
params.why = { type = "string", required = true }
output.fields = ["id"]
example = { why = "test" }

[tools.wait]
poll = "get_thing"
args = { id = "id" }
state = "name"
running = ["RUNNING"]
success = ["DONE"]
steps = "name"
step_name = "name"
step_state = ["name"]
step_failed = ["FAILED"]
log = "thing_log"
log_args = {}

[[tools.wait.waiting]]
value = "WAITING"
waits_for = "a poke"
next = "poke_thing"
"#;
    load(&format!("{GOOD}{run}")).unwrap();
    let broken = run
        .replace(
            "value = \"WAITING\"",
            "field = \"colour\"\nvalue = \"WAITING\"",
        )
        .replace(
            "body = { why = \"{why}\" }\nparams.why = { type = \"string\", required = true }\n",
            "",
        )
        .replace("example = { why = \"test\" }", "example = {}");
    assert_eq!(
        messages(&format!("{GOOD}{broken}")),
        [
            "tools/demo.toml: tool `start_thing`: wait: waiting: `colour` is not an output field of `get_thing`",
            "tools/demo.toml: tool `start_thing`: wait: waiting: `poke_thing` needs `why`, which is neither a parameter of this tool nor in `args`",
        ]
    );
    let reads = run.replace("next = \"poke_thing\"", "next = \"get_thing\"");
    assert_eq!(
        messages(&format!("{GOOD}{reads}")),
        [
            "tools/demo.toml: tool `start_thing`: wait: waiting: next tool `get_thing` changes nothing, so it cannot move the run on"
        ]
    );
}

#[test]
fn the_shipped_catalogs_load() {
    let catalog = Catalog::builtin().unwrap_or_else(|e| {
        panic!(
            "{}",
            e.iter()
                .map(|e| e.to_string())
                .collect::<Vec<_>>()
                .join("\n")
        )
    });
    assert_eq!(catalog.providers.len(), 2);
}

#[test]
fn a_task_needs_something_to_follow() {
    let tool = |extra: &str| {
        format!(
            r#"{GOOD}
[[tools]]
name = "start_thing"
title = "Start a thing"
description = "Starts a thing."
toolset = "things"
scopes = ["write"]
annotations = {{ read_only = false }}
method = "POST"
path = "/things/{{id}}/start"
params.id = {{ type = "string", required = true }}
output.fields = ["id"]
example = {{ id = "t1" }}
{extra}
"#
        )
    };
    assert_eq!(
        messages(&tool("task = true")),
        [
            "tools/demo.toml: tool `start_thing`: task: the tool starts nothing devgate follows; add [tools.wait] or [tools.accepted], or remove `task`"
        ]
    );
    let accepted = "task = true\n[tools.accepted]\nunder = \"/things/{id}/tasks/\"\nstate = \"status\"\npending = [\"PENDING\"]\nresult = \"thing\"\ncheck = \"get_thing\"";
    let catalog = load(&tool(accepted)).unwrap();
    let provider = catalog.provider("demo").unwrap();
    assert!(provider.tools.iter().any(|t| t.spec.task));
    assert!(
        messages(&tool("task = \"yes\""))[0].contains("task"),
        "a task key is a boolean"
    );
}
