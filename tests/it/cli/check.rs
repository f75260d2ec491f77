//! devgate check and devgate tools: every problem listed, what a config offers.

use super::*;

#[test]
fn check_lists_every_problem_and_exits_1() {
    let path = temp_path("bad.toml");
    std::fs::write(
        &path,
        r#"
[tools]
toolsets = ["pipelines", "nonsense"]
exclude = ["bitbucket_no_such_tool"]
[providers.bitbucket]
scopes = ["repository", "admin:everything"]
[providers.gitlab]
token = "x"
"#,
    )
    .unwrap();
    let out = devgate(&["check", "--config", path.to_str().unwrap()], &[]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    for expected in [
        "unknown toolset `nonsense`",
        "unknown tool `bitbucket_no_such_tool`",
        "providers.bitbucket.scopes: unknown scope `admin:everything`",
        "providers.bitbucket: no credentials",
        "providers.gitlab: unknown provider",
    ] {
        assert!(err.contains(expected), "missing `{expected}` in:\n{err}");
    }
}

#[test]
fn check_names_a_missing_environment_variable() {
    let path = temp_path("env.toml");
    std::fs::write(
        &path,
        "[providers.buddy]\ntoken = \"${DEVGATE_TEST_UNSET_TOKEN}\"\n",
    )
    .unwrap();
    let out = devgate(&["check", "--config", path.to_str().unwrap()], &[]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(
            "providers.buddy.token: environment variable DEVGATE_TEST_UNSET_TOKEN is not set"
        ),
        "{err}"
    );
}

#[tokio::test]
async fn check_passes_a_good_config() {
    let sim = Sim::start().await.unwrap();
    let config = config_for(&sim, "");
    let out = devgate(
        &["check", "--config", config.to_str().unwrap()],
        &token_env(),
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("ok (49 tools offered)"));
}

fn offered(config: &str, envs: &[(&str, &str)]) -> Vec<String> {
    let path = temp_path("tools.toml");
    std::fs::write(&path, config).unwrap();
    let out = devgate(
        &[
            "tools",
            "--format",
            "json",
            "--config",
            path.to_str().unwrap(),
        ],
        envs,
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let tools: Vec<Value> = serde_json::from_slice(&out.stdout).unwrap();
    tools
        .iter()
        .map(|t| t["name"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn scopes_toolsets_and_read_only_decide_what_is_offered() {
    let base = "[providers.bitbucket]\ntoken = \"sim-t\"\n";
    let account_only = offered(&format!("{base}scopes = [\"account\"]\n"), &[]);
    assert_eq!(
        account_only,
        ["bitbucket_get_current_user", "bitbucket_list_workspaces"]
    );

    // pullrequest:write implies pullrequest and repository:write, and those imply repository.
    let pr_write = offered(&format!("{base}scopes = [\"pullrequest:write\"]\n"), &[]);
    assert!(pr_write.contains(&"bitbucket_merge_pull_request".to_string()));
    assert!(pr_write.contains(&"bitbucket_create_branch".to_string()));
    assert!(pr_write.contains(&"bitbucket_get_file".to_string()));
    assert!(
        !pr_write.iter().any(|t| t.contains("pipeline")),
        "{pr_write:?}"
    );

    let pipelines = offered(&format!("[tools]\ntoolsets = [\"pipelines\"]\n{base}"), &[]);
    assert!(
        !pipelines.is_empty()
            && pipelines
                .iter()
                .all(|t| t.contains("pipeline") || t.contains("step")),
        "{pipelines:?}"
    );

    let read_only = offered(base, &[("DEVGATE_TOOLS__READ_ONLY", "true")]);
    assert!(read_only.contains(&"bitbucket_list_pull_requests".to_string()));
    for write in [
        "bitbucket_merge_pull_request",
        "bitbucket_run_pipeline",
        "bitbucket_create_branch",
    ] {
        assert!(
            !read_only.contains(&write.to_string()),
            "{write} offered in read-only mode"
        );
    }

    let excluded = offered(
        &format!("[tools]\nexclude = [\"bitbucket_merge_pull_request\"]\n{base}"),
        &[],
    );
    assert!(!excluded.contains(&"bitbucket_merge_pull_request".to_string()));
}
