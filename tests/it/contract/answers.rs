//! The sim's example answers validated against the published schemas.

use super::*;

/// Whether a request path (as sent, percent-encoded, without the API base's path) fits a catalog path
/// template: `{name}` is one segment, `{+name}` one or more.
fn fits(template: &str, path: &str) -> bool {
    let t: Vec<&str> = template.trim_start_matches('/').split('/').collect();
    let p: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    for (i, seg) in t.iter().enumerate() {
        if seg.starts_with("{+") {
            return p.len() > i;
        }
        let Some(actual) = p.get(i) else { return false };
        let placeholder = seg.starts_with('{') && seg.ends_with('}');
        if (placeholder && actual.is_empty()) || (!placeholder && seg != actual) {
            return false;
        }
    }
    t.len() == p.len()
}

/// Which description an answer to a request made for `tool` is held to.
fn described_for<'a>(
    contract: &'a Contract,
    tool: &Tool,
    method: &str,
    path: &str,
) -> Option<(String, Option<&'a String>)> {
    let index = &contract.index;
    let get = method == "GET";
    let own = index.tools.get(&tool.spec.name)?;
    if method == tool.spec.method.as_reqwest().as_str() && fits(&tool.spec.path, path) {
        return Some((tool.name.clone(), own.schema.as_ref()));
    }
    for r in tool.spec.resolve.iter().filter(|_| get) {
        if fits(&r.path, path) {
            let d = own
                .resolve
                .get(&r.param)
                .or_else(|| index.resolve.get(&r.param))?;
            return Some((
                format!("{}'s lookup of `{}`", tool.name, r.param),
                Some(&d.schema),
            ));
        }
    }
    if get && tool.keep_current.is_some() && fits(&tool.spec.path, path) {
        let d = own.current.as_ref()?;
        return Some((format!("{}'s current values", tool.name), Some(&d.schema)));
    }
    contract.provider.tools.iter().find_map(|other| {
        let fits_other = method == other.spec.method.as_reqwest().as_str()
            && fits(&other.spec.path, path)
            && other.spec.method == Method::Get;
        let entry = index.tools.get(&other.spec.name)?;
        fits_other.then(|| (other.name.clone(), entry.schema.as_ref()))
    })
}

/// Every problem with the simulator's answers to one tool call.
fn check_answers(
    contract: &Contract,
    tool: &Tool,
    base_path: &str,
    answers: &[Answered],
) -> Vec<String> {
    let mut problems = Vec::new();
    let mut own_answered = false;
    let mut previous: Option<(String, Option<&String>, bool)> = None;
    for a in answers {
        let path = a.path.strip_prefix(base_path).unwrap_or(&a.path);
        let described = match &previous {
            // A redirect's target answers the request that was redirected.
            Some((what, schema, true)) => Some((what.clone(), *schema)),
            _ => described_for(contract, tool, &a.method, path),
        };
        let redirect = (300..400).contains(&a.status);
        let Some((what, schema)) = described else {
            if (200..300).contains(&a.status) && a.body.is_some() {
                problems.push(format!(
                    "{}: the sim answered {} {path} ({}), which no index entry describes",
                    tool.name, a.method, a.status
                ));
            }
            previous = None;
            continue;
        };
        if what == tool.name && (200..300).contains(&a.status) {
            own_answered = true;
        }
        if (200..300).contains(&a.status) {
            match (schema, &a.body) {
                (Some(schema), Some(body)) => {
                    match contract.schemas.resolve("", schema) {
                        Ok(at) => {
                            let mut errors = Vec::new();
                            contract.schemas.validate(at, body, "$", &mut errors);
                            // A partial response leaves out what it was not asked for: what it
                            // holds must validate, what it leaves out may be required.
                            if a.partial {
                                errors.retain(|e| !e.ends_with("` is required"));
                            }
                            problems.extend(errors.into_iter().map(|e| {
                                format!("{}: {} {path} ({what}): {e}", tool.name, a.method)
                            }));
                        }
                        Err(e) => problems.push(format!("{}: {what}: {e}", tool.name)),
                    }
                }
                (Some(_), None) if a.status != 204 && a.status != 202 => problems.push(format!(
                    "{}: {} {path} ({what}) answered {} without a JSON body",
                    tool.name, a.method, a.status
                )),
                (None, Some(_)) => problems.push(format!(
                    "{}: {} {path} ({what}) answered JSON, but its entry names no schema",
                    tool.name, a.method
                )),
                _ => {}
            }
        }
        previous = Some((what, schema, redirect));
    }
    if !own_answered {
        problems.push(format!(
            "{}: the sim never answered its own request with a success: {:?}",
            tool.name,
            answers
                .iter()
                .map(|a| format!("{} {} {}", a.method, a.path, a.status))
                .collect::<Vec<_>>()
        ));
    }
    problems
}

#[tokio::test(flavor = "multi_thread")]
async fn every_example_answer_validates_against_the_published_schemas() {
    let catalog = Catalog::builtin().unwrap();
    let contracts = contracts(&catalog);
    let sim = Sim::start().await.unwrap();
    sim.state.keep_answers(true);
    // Confirming is not what this test is about (tests/it/confirm/).
    let client = in_process_for(&sim, "\n[tools]\nconfirm_destructive = false").await;
    let mut problems = Vec::new();
    let mut validated = 0;
    for contract in &contracts {
        let (which, base) = match contract.provider.spec.id.as_str() {
            "buddy" => (Which::Buddy, &sim.buddy_url),
            "bitbucket" => (Which::Bitbucket, &sim.bitbucket_url),
            other => panic!("no simulator for `{other}`"),
        };
        let base_path = url::Url::parse(base)
            .unwrap()
            .path()
            .trim_end_matches('/')
            .to_string();
        for tool in &contract.provider.tools {
            sim.state.take_answers();
            let example = tool.spec.example.clone().unwrap_or_default();
            let result = client
                .call_tool(CallToolRequestParams::new(tool.name.clone()).with_arguments(example))
                .await
                .unwrap_or_else(|e| panic!("{}: {e}", tool.name));
            if is_error(&result) {
                problems.push(format!(
                    "{}: the example failed: {}",
                    tool.name,
                    text(&result)
                ));
                continue;
            }
            let answers: Vec<Answered> = sim
                .state
                .take_answers()
                .into_iter()
                .filter(|a| a.provider == which)
                .collect();
            validated += answers.iter().filter(|a| a.body.is_some()).count();
            problems.extend(check_answers(contract, tool, &base_path, &answers));
        }
    }
    client.cancel().await.unwrap();
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    assert!(validated > 0, "no JSON answer was validated");
}

// ---------------------------------------------------------------------------------------------------
// The checks themselves fail when they should
// ---------------------------------------------------------------------------------------------------
