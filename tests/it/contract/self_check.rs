//! The checks themselves fail where they should: a missing entry, an uncited path, a value the document forbids.

use super::*;

fn bitbucket_contract(catalog: &Catalog) -> Contract {
    contracts(catalog)
        .into_iter()
        .find(|c| c.provider.spec.id == "bitbucket")
        .expect("the Bitbucket contract")
}

#[test]
fn a_tool_without_an_entry_and_an_uncited_path_fail() {
    let catalog = Catalog::builtin().unwrap();
    let mut contract = bitbucket_contract(&catalog);
    contract.index.tools.remove("get_commit");
    contract
        .index
        .tools
        .get_mut("list_repositories")
        .unwrap()
        .cited
        .clear();
    let problems = check_paths(&contract).join("\n");
    assert!(
        problems.contains("bitbucket/get_commit: no entry"),
        "{problems}"
    );
    assert!(
        problems.contains("bitbucket/list_repositories: `values[].slug`"),
        "{problems}"
    );
}

#[test]
fn the_validator_refuses_what_the_document_does_not_allow() {
    let catalog = Catalog::builtin().unwrap();
    let contract = bitbucket_contract(&catalog);
    let schemas = &contract.schemas;
    let pipeline = schemas.resolve("", "schemas.json#/$defs/pipeline").unwrap();
    let check = |value: Value| {
        let mut errors = Vec::new();
        schemas.validate(pipeline, &value, "$", &mut errors);
        errors
    };
    let good = serde_json::json!({"type": "pipeline", "uuid": "{1}", "build_number": 7, "completed_on": null,
        "state": {"type": "pipeline_state_completed", "name": "COMPLETED",
                  "result": {"type": "pipeline_state_completed_failed", "name": "FAILED"}}});
    assert_eq!(check(good.clone()), Vec::<String>::new());
    let mut wrong_kind = good.clone();
    wrong_kind["state"]["result"]["type"] = "pipeline_step_state_completed_failed".into();
    wrong_kind["state"]["result"]["name"] = "NOT_RUN".into();
    let errors = check(wrong_kind).join("\n");
    assert!(
        errors.contains("not a kind of `pipeline_state_completed_result`"),
        "{errors}"
    );
    let mut wrong_value = good;
    wrong_value["state"]["result"]["name"] = "RED".into();
    wrong_value["build_number"] = "7".into();
    let errors = check(wrong_value).join("\n");
    assert!(
        errors.contains("`$.state.result.name`: \"RED\" is not one of"),
        "{errors}"
    );
    assert!(
        errors.contains("`$.build_number`: expected integer"),
        "{errors}"
    );
    // Closed objects, where a provider's index does not say its document's are unreliable.
    let mut strict = Schemas::load(&Path::new(CONTRACTS).join("bitbucket"));
    strict.closed_objects = true;
    let page = strict
        .resolve("", "schemas.json#/$defs/paginated_repositories")
        .unwrap();
    let mut errors = Vec::new();
    strict.validate(
        page,
        &serde_json::json!({"values": [], "total": 3}),
        "$",
        &mut errors,
    );
    assert_eq!(errors, ["`$.total`: not a property the schema allows"]);
}
