//! Unit tests of `[[policies]]`: precedence, texts, and the config checks against the shipped catalogs.

use super::*;

fn entry(group: &str, edit: impl FnOnce(&mut PolicyConfig)) -> PolicyConfig {
    let mut e = PolicyConfig {
        group: group.into(),
        ..PolicyConfig::default()
    };
    edit(&mut e);
    e
}

fn names(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| s.to_string()).collect()
}

const MERGE: ToolFacts = ToolFacts {
    name: "bitbucket_merge_pull_request",
    toolset: "pull_requests",
    read_only: false,
};
const LIST_PRS: ToolFacts = ToolFacts {
    name: "bitbucket_list_pull_requests",
    toolset: "pull_requests",
    read_only: true,
};
const RUN: ToolFacts = ToolFacts {
    name: "buddy_run_pipeline",
    toolset: "pipelines",
    read_only: false,
};

/// The verdict's short form: `allow #n`, `allow`, `deny #n key`, `not allowed`; plus ` confirm #n`.
fn short(d: &Decision) -> String {
    let mut s = match &d.verdict {
        Verdict::Allowed(Some(r)) => format!("allow #{}", r.entry),
        Verdict::Allowed(None) => "allow".to_string(),
        Verdict::Denied(r) => format!("deny #{} {}", r.entry, r.kind.key()),
        Verdict::NotAllowed => "not allowed".to_string(),
    };
    if let Some(r) = &d.confirm {
        s.push_str(&format!(" confirm #{}", r.entry));
    }
    s
}

/// What is checked, the policies, the user's groups, the tool, and the expected [`short`] verdict.
type Case<'a> = (
    &'a str,
    Vec<PolicyConfig>,
    &'a [&'a str],
    ToolFacts<'a>,
    &'a str,
);

#[test]
fn precedence_table() {
    let everyone_denies_merge = entry("*", |e| e.deny_tools = names(&[MERGE.name]));
    let devs_allow_prs = entry("devs", |e| e.allow_toolsets = names(&["pull_requests"]));
    let ops_allow_all = entry("ops", |e| e.allow_toolsets = names(&["all"]));
    let contractors_read_only = entry("contractors", |e| e.read_only = true);
    let devs_confirm_run = entry("devs", |e| e.confirm_tools = names(&[RUN.name]));
    let ops_deny_pipelines = entry("ops", |e| e.deny_toolsets = names(&["pipelines"]));
    let devs_allow_run = entry("devs", |e| e.allow_tools = names(&[RUN.name]));
    let everyone_confirms_prs = entry("*", |e| e.confirm_toolsets = names(&["pull_requests"]));

    #[rustfmt::skip]
    let cases: Vec<Case> = vec![
        ("no policies: today's behaviour", vec![], &[], MERGE, "allow"),
        ("deny-only policies leave the rest allowed", vec![everyone_denies_merge.clone()], &["devs"], LIST_PRS, "allow"),
        ("a deny for everyone applies to a user in no group", vec![everyone_denies_merge.clone()], &[], MERGE, "deny #1 deny_tools"),
        ("deny beats an allow of another entry", vec![everyone_denies_merge.clone(), devs_allow_prs.clone()], &["devs"], MERGE, "deny #1 deny_tools"),
        ("deny beats an allow, whatever the order", vec![devs_allow_prs.clone(), everyone_denies_merge.clone()], &["devs"], MERGE, "deny #2 deny_tools"),
        ("an allow list shuts out other groups", vec![devs_allow_prs.clone()], &["ops"], LIST_PRS, "not allowed"),
        ("an allow list shuts out users in no group", vec![devs_allow_prs.clone()], &[], LIST_PRS, "not allowed"),
        ("an allowed toolset allows its tools", vec![devs_allow_prs.clone()], &["devs"], LIST_PRS, "allow #1"),
        ("an allowed toolset allows nothing else", vec![devs_allow_prs.clone()], &["devs"], RUN, "not allowed"),
        ("allow_toolsets all allows everything", vec![ops_allow_all.clone()], &["ops"], RUN, "allow #1"),
        ("several groups: the union of allows", vec![devs_allow_prs.clone(), devs_allow_run.clone()], &["devs"], RUN, "allow #2"),
        ("several groups: union across groups", vec![devs_allow_prs.clone(), ops_allow_all.clone()], &["devs", "ops"], RUN, "allow #2"),
        ("several groups: minus any deny", vec![ops_allow_all.clone(), ops_deny_pipelines.clone(), devs_allow_run.clone()], &["devs", "ops"], RUN, "deny #2 deny_toolsets"),
        ("read_only denies a tool that writes", vec![ops_allow_all.clone(), contractors_read_only.clone()], &["ops", "contractors"], MERGE, "deny #2 read_only"),
        ("read_only keeps read tools", vec![ops_allow_all.clone(), contractors_read_only.clone()], &["ops", "contractors"], LIST_PRS, "allow #1"),
        ("read_only alone is no allow list", vec![contractors_read_only.clone()], &["contractors"], LIST_PRS, "allow"),
        ("read_only applies only to its group", vec![contractors_read_only.clone()], &["devs"], MERGE, "allow"),
        ("confirm_tools on an allowed tool", vec![devs_allow_run.clone(), devs_confirm_run.clone()], &["devs"], RUN, "allow #1 confirm #2"),
        ("confirm needs the group", vec![devs_allow_run.clone(), devs_confirm_run.clone(), ops_allow_all.clone()], &["ops"], RUN, "allow #3"),
        ("confirm_toolsets asks only for tools that write", vec![everyone_confirms_prs.clone()], &[], LIST_PRS, "allow"),
        ("confirm_toolsets on a tool that writes", vec![everyone_confirms_prs.clone()], &[], MERGE, "allow confirm #1"),
        ("a denied tool is not confirmed but refused", vec![everyone_confirms_prs.clone(), everyone_denies_merge.clone()], &[], MERGE, "deny #2 deny_tools"),
    ];
    for (what, entries, groups, tool, expected) in cases {
        let decision = Policies::new(&entries).decide(&names(groups), tool);
        assert_eq!(short(&decision), expected, "{what}");
        assert_eq!(decision.allowed(), expected.starts_with("allow"), "{what}");
    }
}

#[test]
fn every_matching_rule_is_listed_for_the_explanation() {
    let entries = vec![
        entry("*", |e| e.deny_tools = names(&[MERGE.name])),
        entry("devs", |e| e.allow_toolsets = names(&["pull_requests"])),
        entry("ops", |e| e.allow_toolsets = names(&["all"])),
    ];
    let d = Policies::new(&entries).decide(&names(&["devs"]), MERGE);
    let shown: Vec<String> = d.matched.iter().map(ToString::to_string).collect();
    assert_eq!(
        shown,
        [
            "[[policies]] #1 (group \"*\") deny_tools \"bitbucket_merge_pull_request\"",
            "[[policies]] #2 (group \"devs\") allow_toolsets \"pull_requests\"",
        ]
    );
}

#[test]
fn texts_name_the_policy_and_the_next_step() {
    let entries = vec![
        entry("*", |e| e.deny_tools = names(&[MERGE.name])),
        entry("contractors", |e| e.read_only = true),
        entry("devs", |e| {
            e.allow_tools = names(&[RUN.name, LIST_PRS.name])
        }),
        entry("devs", |e| e.confirm_tools = names(&[RUN.name])),
    ];
    let policies = Policies::new(&entries);
    let denied = policies.decide(&names(&["devs"]), MERGE);
    assert_eq!(
        denied.audit_text(),
        "denied by [[policies]] #1 (group \"*\") deny_tools \"bitbucket_merge_pull_request\""
    );
    let text = denied.denied_text(MERGE.name, "alice");
    assert!(text.starts_with("bitbucket_merge_pull_request: denied by devgate policy [[policies]] #1 (group \"*\") deny_tools"), "{text}");
    assert!(text.contains("nothing was sent"), "{text}");
    assert!(
        text.contains("`devgate policy check alice bitbucket_merge_pull_request`"),
        "{text}"
    );

    let read_only = policies.decide(&names(&["contractors", "devs"]), RUN);
    assert!(
        read_only
            .denied_text(RUN.name, "bob")
            .contains("[[policies]] #2 (group \"contractors\") read_only lets bob use only tools that change nothing"),
        "{read_only:?}"
    );

    let nobody = policies.decide(&[], LIST_PRS);
    assert_eq!(
        nobody.audit_text(),
        "denied: no [[policies]] entry allows it to a user in no group"
    );
    assert!(
        nobody
            .denied_text(LIST_PRS.name, "carol")
            .contains("no devgate policy ([[policies]]) allows it to carol (a user in no group)")
    );

    let confirmed = policies.decide(&names(&["devs"]), RUN);
    assert_eq!(
        confirmed.audit_text(),
        "allowed by [[policies]] #3 (group \"devs\") allow_tools \"buddy_run_pipeline\"; confirmation required by [[policies]] #4 (group \"devs\") confirm_tools \"buddy_run_pipeline\""
    );

    assert_eq!(Policies::default().decide(&[], MERGE).audit_text(), "");
}

/// The `[[policies]]` of a TOML text.
fn parse(toml: &str) -> Vec<PolicyConfig> {
    #[derive(Deserialize)]
    struct Doc {
        policies: Vec<PolicyConfig>,
    }
    toml::from_str::<Doc>(toml).unwrap().policies
}

fn problems_of(toml: &str) -> Vec<String> {
    problems(&parse(toml), &Catalog::builtin().unwrap())
}

#[test]
fn config_problems_name_the_entry_and_are_all_listed() {
    let found = problems_of(
        r#"
[[policies]]
group = "devs"
allow_toolsets = ["pull_requests", "pipeline"]
deny_tools = ["bitbucket_merge_pull_reqest"]

[[policies]]
group = ""
read_only = true

[[policies]]
group = "ops"

[[policies]]
group = "*"
confirm_tools = ["bitbucket_list_pull_requests", "devgate_connections"]
"#,
    );
    assert_eq!(
        found,
        [
            "[[policies]] #1 (group \"devs\"): allow_toolsets: unknown toolset `pipeline` (known: all, account, integrations, pipelines, pull_requests, repositories, tokens, variables, workspaces)",
            "[[policies]] #1 (group \"devs\"): deny_tools: unknown tool `bitbucket_merge_pull_reqest` (`devgate tools --all` lists them)",
            "[[policies]] #2 (group \"\"): group: give a group name, or \"*\" for everyone",
            "[[policies]] #3 (group \"ops\"): says nothing: give it allow_tools, allow_toolsets, deny_tools, deny_toolsets, read_only, confirm_tools or confirm_toolsets",
            "[[policies]] #4 (group \"*\"): confirm_tools: `bitbucket_list_pull_requests` changes nothing, so there is nothing to confirm",
            "[[policies]] #4 (group \"*\"): confirm_tools: `devgate_connections` is built in and always offered; remove it",
        ]
    );
}

#[test]
fn a_sound_config_has_no_problems() {
    let found = problems_of(
        r#"
[[policies]]
group = "*"
allow_toolsets = ["all"]
deny_toolsets = ["tokens"]
confirm_toolsets = ["pipelines"]

[[policies]]
group = "devs"
allow_tools = ["buddy_run_pipeline"]
confirm_tools = ["bitbucket_create_pull_request"]
read_only = false
"#,
    );
    assert_eq!(found, Vec::<String>::new());
}

#[test]
fn unknown_keys_in_an_entry_are_refused() {
    let parsed = toml::from_str::<PolicyConfig>("group = \"devs\"\nallow = [\"pipelines\"]\n");
    let e = parsed.unwrap_err().to_string();
    assert!(e.contains("unknown field `allow`"), "{e}");
}

#[test]
fn retired_names_warn_and_are_no_problem() {
    let text = r#"
[[policies]]
group = "devs"
allow_toolsets = ["issues", "pull_requests"]
deny_tools = ["bitbucket_create_issue"]
"#;
    assert_eq!(problems_of(text), Vec::<String>::new());
    let warnings = retired_names(&parse(text), &Catalog::builtin().unwrap());
    assert_eq!(warnings.len(), 2, "{warnings:?}");
    assert!(warnings[0].starts_with("[[policies]] #1 (group \"devs\"): allow_toolsets: `issues` is retired (Bitbucket removed its issue tracker"), "{warnings:?}");
    assert!(
        warnings[1].starts_with(
            "[[policies]] #1 (group \"devs\"): deny_tools: `bitbucket_create_issue` is retired"
        ),
        "{warnings:?}"
    );
}

#[test]
fn config_reads_policies_from_the_file_or_the_environment_and_checks_them() {
    let catalog = Catalog::builtin().unwrap();
    let file = "[providers.bitbucket]\ntoken = \"t\"\n\n[[policies]]\ngroup = \"devs\"\ndeny_tools = [\"bitbucket_nope\"]\n";
    let config = crate::config::Config::from_toml(file, "t.toml", []).unwrap();
    assert_eq!(config.policies.len(), 1);
    let problems = config.validate(&catalog);
    assert!(
        problems.contains(&"[[policies]] #1 (group \"devs\"): deny_tools: unknown tool `bitbucket_nope` (`devgate tools --all` lists them)".to_string()),
        "{problems:?}"
    );
    let env = [(
        "DEVGATE_POLICIES".to_string(),
        "[{group = \"*\", read_only = true}]".to_string(),
    )];
    let config = crate::config::Config::from_toml(file, "t.toml", env).unwrap();
    assert_eq!(
        config.policies,
        [entry("*", |e| e.read_only = true)],
        "the environment replaces the file's"
    );
    assert_eq!(config.validate(&catalog), Vec::<String>::new());
}

#[test]
fn texts_name_a_few_groups_only() {
    let entries = vec![entry("devs", |e| e.allow_tools = names(&[RUN.name]))];
    let many: Vec<String> = (0..20)
        .map(|i| format!("g{i}-{}", "x".repeat(100)))
        .collect();
    let text = Policies::new(&entries).decide(&many, MERGE).audit_text();
    assert!(text.ends_with(" and 12 more"), "{text}");
    assert!(
        text.len() < 8 * 70 + 100,
        "{} characters: {text}",
        text.len()
    );
}
