//! Load-time checks of the tables that name other tools: `confirm` (the read tool and the names its
//! summary uses) and `wait` (the poll, steps and log tools, and the waiting states).

use std::sync::Arc;

use super::*;

/// Problems with a tool's `confirm` table: its read tool, and every name its template and `quote` use.
pub(super) fn check_confirm(
    tool: &Tool,
    confirm: &ConfirmSpec,
    tools: &[Arc<Tool>],
) -> Vec<String> {
    let mut problems = Vec::new();
    let read = match &confirm.read {
        Some(name) => match tools.iter().find(|t| &t.spec.name == name) {
            None => {
                problems.push(format!("read names unknown tool `{name}`"));
                None
            }
            Some(t) if !t.spec.annotations.read_only || t.output.is_none() => {
                problems.push(format!(
                    "read tool `{name}` must be read-only with an output"
                ));
                None
            }
            Some(t) => Some(t),
        },
        None => None,
    };
    let field = |name: &str| {
        read.and_then(|t| t.output.as_ref())
            .is_some_and(|fields| fields.iter().any(|f| f.out == name))
    };
    for placeholder in crate::confirm::summary::referenced(&confirm.summary) {
        if !tool.spec.params.contains_key(placeholder) && !field(placeholder) {
            problems.push(format!(
                "summary: `{{{placeholder}}}` is neither a parameter nor a field of the read tool's output"
            ));
        }
    }
    for entry in &confirm.quote {
        let (_, name) = crate::confirm::summary::quote_parts(entry);
        if !field(name) {
            problems.push(format!(
                "quote: `{name}` is not a field of the read tool's output"
            ));
        }
    }
    for name in confirm.refuse.keys() {
        if !field(name) {
            problems.push(format!(
                "refuse: `{name}` is not a field of the read tool's output"
            ));
        }
    }
    if tool.spec.annotations.read_only {
        problems.push("a read-only tool needs no confirmation".into());
    }
    problems
}

/// Checks a run tool's `wait` against the tools it names: they exist, read, take the arguments given
/// to them, and have the output fields the spec reads.
pub(super) fn check_wait(run: &Tool, wait: &WaitSpec, tools: &[Arc<Tool>]) -> Vec<String> {
    let mut problems = Vec::new();
    let outputs = |t: &Tool| -> BTreeSet<String> {
        t.output.iter().flatten().map(|f| f.out.clone()).collect()
    };
    let find = |role: &str, name: &str, problems: &mut Vec<String>| -> Option<Arc<Tool>> {
        let found = tools.iter().find(|t| t.spec.name == name).cloned();
        match &found {
            None => problems.push(format!("{role} names unknown tool `{name}`")),
            Some(t) if !t.spec.annotations.read_only => {
                problems.push(format!("{role} tool `{name}` must be read-only"))
            }
            Some(_) => {}
        }
        found
    };
    if run.spec.annotations.read_only || run.output.is_none() {
        problems.push("only a tool that starts something and returns JSON can wait".into());
    }
    let run_out = outputs(run);
    for field in wait.args.values() {
        if !run_out.contains(field) {
            problems.push(format!(
                "args: `{field}` is not an output field of this tool"
            ));
        }
    }
    if let Some(poll) = find("poll", &wait.poll, &mut problems) {
        let out = outputs(&poll);
        for field in std::iter::once(&wait.state).chain(wait.outcome.iter()) {
            if !out.contains(field) {
                problems.push(format!(
                    "`{field}` is not an output field of `{}`",
                    wait.poll
                ));
            }
        }
        if wait.steps_tool.is_none() && !out.contains(&wait.steps) {
            problems.push(format!(
                "`{}` is not an output field of `{}`",
                wait.steps, wait.poll
            ));
        }
        for param in wait.args.keys() {
            if !poll.spec.params.contains_key(param) {
                problems.push(format!(
                    "args: `{}` takes no parameter `{param}`",
                    wait.poll
                ));
            }
        }
    }
    if let Some(steps) = &wait.steps_tool
        && let Some(tool) = find("steps_tool", steps, &mut problems)
        && (tool
            .spec
            .output
            .as_ref()
            .and_then(|o| o.list.as_ref())
            .is_none()
            || wait.steps != "items")
    {
        problems.push(format!(
            "steps_tool `{steps}` must be a list, read as `steps = \"items\"`"
        ));
    }
    if let Some(log) = find("log", &wait.log, &mut problems) {
        if !log.spec.text_tail {
            problems.push(format!("log tool `{}` must take `tail`", wait.log));
        }
        for param in wait.log_args.keys() {
            if !log.spec.params.contains_key(param) {
                problems.push(format!(
                    "log_args: `{}` takes no parameter `{param}`",
                    wait.log
                ));
            }
        }
    }
    for waiting in &wait.waiting {
        problems.extend(check_waiting(run, wait, waiting, tools));
    }
    if wait.running.is_empty() || wait.success.is_empty() || wait.step_state.is_empty() {
        problems.push("`running`, `success` and `step_state` must not be empty".into());
    }
    problems
}

/// Checks one waiting state of a run tool's `wait`: `poll` shows its field, and the tool that moves the
/// run on writes and gets every required argument from the run tool's arguments or the wait's `args`.
fn check_waiting(
    run: &Tool,
    wait: &WaitSpec,
    waiting: &WaitingSpec,
    tools: &[Arc<Tool>],
) -> Vec<String> {
    let mut problems = Vec::new();
    let field = waiting.field.as_ref().unwrap_or(&wait.state);
    let poll = tools.iter().find(|t| t.spec.name == wait.poll);
    if let Some(poll) = poll
        && !poll.output.iter().flatten().any(|f| &f.out == field)
    {
        problems.push(format!(
            "waiting: `{field}` is not an output field of `{}`",
            wait.poll
        ));
    }
    let Some(next) = &waiting.next else {
        return problems;
    };
    match tools.iter().find(|t| &t.spec.name == next) {
        None => problems.push(format!("waiting: next names unknown tool `{next}`")),
        Some(t) if t.spec.annotations.read_only => problems.push(format!(
            "waiting: next tool `{next}` changes nothing, so it cannot move the run on"
        )),
        Some(t) => {
            for (name, param) in &t.spec.params {
                let given = run.spec.params.contains_key(name) || wait.args.contains_key(name);
                if param.required && !given {
                    problems.push(format!(
                        "waiting: `{next}` needs `{name}`, which is neither a parameter of this tool nor in `args`"
                    ));
                }
            }
        }
    }
    problems
}
