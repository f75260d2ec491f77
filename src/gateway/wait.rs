//! Following what a call started: a run followed to its end with `wait` (its steps as progress, the
//! failed step's log tail), and a task the provider accepted with 202 (e.g. a slow merge).

use serde_json::{Map, Value, json};

use super::ToolError;
use super::call::Call;
use super::credentials::Auth;
use crate::catalog::{AcceptedSpec, TAIL_PARAM, WaitSpec};
use crate::shape;

/// Lines of the failed step's log a waited-for run returns.
const WAIT_LOG_LINES: u64 = 40;

impl Call<'_> {
    /// Follows a run this call started until it ends or `secs` pass, reporting its steps as progress.
    /// Returns the run as the poll tool shows it, with the failed step's log tail when it did not
    /// succeed. Problems while following never hide that the run started: they are added as `wait_error`.
    pub(super) async fn follow(
        &self,
        spec: &WaitSpec,
        args: &Map<String, Value>,
        started: Value,
        secs: u64,
        text_cap: usize,
    ) -> Value {
        let begun = tokio::time::Instant::now();
        let deadline = begun + std::time::Duration::from_secs(secs);
        let provider = &self.offered.tool.provider;
        let mut poll_args = Map::new();
        for (param, field) in &spec.args {
            if let Some(v) = started.get(field) {
                poll_args.insert(param.clone(), v.clone());
            }
        }
        let mut last_line = String::new();
        let mut seen = started.clone();
        let give_up = |mut run: Value, error: String| {
            if let Value::Object(out) = &mut run {
                out.insert("wait_error".into(), json!(error));
            }
            run
        };
        loop {
            let run = match self.sub(&spec.poll, args, &poll_args, text_cap).await {
                Ok(run) => run,
                Err(e) => return give_up(seen, e.to_string()),
            };
            let steps = match &spec.steps_tool {
                Some(tool) => match self.sub(tool, args, &poll_args, text_cap).await {
                    Ok(list) => list.get("items").cloned().unwrap_or(json!([])),
                    Err(e) => return give_up(run, e.to_string()),
                },
                None => run.get(&spec.steps).cloned().unwrap_or(json!([])),
            };
            let state = run.get(&spec.state).and_then(Value::as_str).unwrap_or("?");
            let step_state = |step: &Value| -> String {
                spec.step_state
                    .iter()
                    .find_map(|f| step.get(f).and_then(Value::as_str))
                    .unwrap_or("?")
                    .to_string()
            };
            let line = {
                let parts: Vec<String> = steps
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|step| {
                        let name = step
                            .get(&spec.step_name)
                            .and_then(Value::as_str)
                            .unwrap_or("step");
                        format!("{name}: {}", step_state(step))
                    })
                    .collect();
                if parts.is_empty() {
                    state.to_string()
                } else {
                    format!("{state} · {}", parts.join(", "))
                }
            };
            if line != last_line {
                if let Some(progress) = self.progress {
                    let _ = progress.send(line.clone());
                }
                last_line = line;
            }
            let running = spec.running.iter().any(|r| r == state);
            let waiting = spec.waiting.iter().find(|w| {
                let field = w.field.as_deref().unwrap_or(&spec.state);
                run.get(field).and_then(Value::as_str) == Some(w.value.as_str())
            });
            let mut out = run.clone();
            let Value::Object(fields) = &mut out else {
                return give_up(seen, format!("{provider}_{} returned no object", spec.poll));
            };
            if spec.steps_tool.is_some() {
                fields.insert("steps".into(), steps.clone());
            }
            let now = tokio::time::Instant::now();
            fields.insert(
                "waited_s".into(),
                json!(now.duration_since(begun).as_secs()),
            );
            if waiting.is_some() || (running && now >= deadline) {
                let (step, note) = self.next_step(spec, args, &poll_args, waiting);
                let note = note.unwrap_or_else(|| {
                    let check = match step {
                        Some(_) => format!("with {provider}_{}", spec.poll),
                        None => format!("in {}", self.offered.client.title()),
                    };
                    format!("still {state} after {secs} s; the run goes on: check it {check}")
                });
                fields.insert("wait_note".into(), json!(note));
                if let Some(step) = step {
                    fields.insert("next_step".into(), step);
                }
                return out;
            }
            if !running {
                let outcome = spec
                    .outcome
                    .as_ref()
                    .and_then(|f| run.get(f))
                    .or_else(|| run.get(&spec.state))
                    .and_then(Value::as_str)
                    .unwrap_or_default();
                if !spec.success.iter().any(|s| s == outcome) {
                    let failed = steps
                        .as_array()
                        .into_iter()
                        .flatten()
                        .find(|step| spec.step_failed.contains(&step_state(step)));
                    if let Some(step) = failed {
                        let mut log_args = poll_args.clone();
                        for (param, field) in &spec.log_args {
                            if let Some(v) = step.get(field) {
                                log_args.insert(param.clone(), v.clone());
                            }
                        }
                        log_args.insert(TAIL_PARAM.into(), json!(WAIT_LOG_LINES));
                        let name = step.get(&spec.step_name).cloned().unwrap_or(Value::Null);
                        let log = match self.sub(&spec.log, args, &log_args, text_cap).await {
                            Ok(log) => log.get("text").cloned().unwrap_or(Value::Null),
                            Err(e) => json!(format!("(the log could not be read: {e})")),
                        };
                        fields.insert("failed_step".into(), json!({"name": name, "log_tail": log}));
                    }
                }
                return out;
            }
            seen = run;
            let pause = self.wait_poll.min(deadline.saturating_duration_since(now));
            tokio::time::sleep(pause).await;
        }
    }

    /// What to call next about a run `wait` stopped following before it ended, with its arguments:
    /// for a run that waits for someone, the tool that moves it on when this devgate offers it;
    /// otherwise the poll tool, to check the run later. Also the note that says so.
    fn next_step(
        &self,
        spec: &WaitSpec,
        run_args: &Map<String, Value>,
        poll_args: &Map<String, Value>,
        waiting: Option<&crate::catalog::WaitingSpec>,
    ) -> (Option<Value>, Option<String>) {
        let o = self.offered;
        let provider = &o.tool.provider;
        let exposed = |short: &str| format!("{provider}_{short}");
        let poll = exposed(&spec.poll);
        let mover = waiting.and_then(|w| w.next.as_deref()).map(exposed);
        let offered_mover = mover.as_ref().filter(|m| self.all.contains_key(*m));
        let name = offered_mover.cloned().unwrap_or_else(|| poll.clone());
        let step = self.next_step_to(&name, run_args.iter().chain(poll_args));
        let Some(waiting) = waiting else {
            return (step, None);
        };
        let title = o.client.title();
        let then = match step {
            Some(_) => format!("then check it with {poll} (next_step)"),
            None => format!("then check it in {title}"),
        };
        let note = match (offered_mover, &mover) {
            (Some(next), _) => format!(
                "{}: the run waits for {}. Once the user agrees, call {next} with next_step.arguments; then {poll} shows how it goes on.",
                waiting.value, waiting.waits_for
            ),
            (None, Some(next)) => format!(
                "{}: the run waits for {}. {next} is not offered here, so the user does it in {title}; {then}.",
                waiting.value, waiting.waits_for
            ),
            (None, None) => format!(
                "{}: the run waits for {}; {then}.",
                waiting.value, waiting.waits_for
            ),
        };
        (step, Some(note))
    }

    /// Follows the task a 202 answer named (the tool's `accepted`): polls its status at the `Location`,
    /// which must be one of this tool's own tasks inside the API, every `wait_poll` with a progress line
    /// per change, until it leaves the pending states (its result) or `secs` pass (a note saying it
    /// still runs and the tool that checks the target). A failed task is the provider's error.
    pub(super) async fn follow_task(
        &self,
        spec: &AcceptedSpec,
        location: Option<&url::Url>,
        args: &Map<String, Value>,
        auth: &mut Auth,
        secs: u64,
    ) -> Result<Task, ToolError> {
        let o = self.offered;
        let (name, title) = (&o.tool.name, o.client.title());
        let check = format!("{}_{}", o.tool.provider, spec.check);
        let under = o
            .tool
            .accepted_under
            .as_ref()
            .map(|t| t.render(args))
            .transpose()
            .map_err(|e| o.bad_value(e))?;
        let own = |url: &url::Url| {
            let relative = o.client.relative_of(url)?;
            let path = relative.split('?').next().unwrap_or_default();
            under
                .as_deref()
                .is_some_and(|u| path.starts_with(u))
                .then(|| o.client.absolute(&relative))
                .flatten()
        };
        let Some(url) = location.and_then(own) else {
            let place = match location {
                Some(l) => format!(
                    "a task at {}, not one of this tool's",
                    l.origin().ascii_serialization()
                ),
                None => "no task".into(),
            };
            return Err(ToolError::Upstream {
                tool: name.clone(),
                detail: format!(
                    "{title} accepted the request (202) and named {place}, so devgate cannot follow it. It may still complete: check with {check} before trying again."
                ),
                outage: false,
            });
        };
        let begun = tokio::time::Instant::now();
        let deadline = begun + std::time::Duration::from_secs(secs);
        let mut last = String::new();
        loop {
            let status = self.get_json(url.clone(), auth, args).await?;
            let state = shape::pointer(&status, &spec.state)
                .and_then(Value::as_str)
                .unwrap_or("?")
                .to_string();
            if !spec.pending.contains(&state) {
                return match shape::pointer(&status, &spec.result).filter(|v| !v.is_null()) {
                    Some(result) => Ok(Task::Done(result.clone())),
                    None => Err(ToolError::Upstream {
                        tool: name.clone(),
                        detail: format!(
                            "{title}'s task ended {state} without a result; check with {check} what happened."
                        ),
                        outage: false,
                    }),
                };
            }
            if state != last {
                if let Some(progress) = self.progress {
                    let _ = progress.send(format!("{state}: {title} is still working on it"));
                }
                last = state.clone();
            }
            let now = tokio::time::Instant::now();
            if now >= deadline {
                let step = self.next_step_to(&check, args);
                let how = match step {
                    Some(_) => format!("check the outcome with {check} (next_step)"),
                    None => format!("check the outcome in {title}"),
                };
                let mut out = Map::new();
                out.insert(spec.state.clone(), json!(state));
                out.insert(
                    "wait_note".into(),
                    json!(format!(
                        "{title} accepted the request and is still working on it ({state} after {} s); it goes on without devgate: {how} before trying again.",
                        now.duration_since(begun).as_secs()
                    )),
                );
                if let Some(step) = step {
                    out.insert("next_step".into(), step);
                }
                return Ok(Task::Running(Value::Object(out)));
            }
            let pause = self.wait_poll.min(deadline.saturating_duration_since(now));
            tokio::time::sleep(pause).await;
        }
    }
}

/// Where a task the provider accepted with 202 ended up, as far as devgate followed it.
pub(super) enum Task {
    /// Finished: the object the task produced (shaped like the tool's own reply).
    Done(Value),
    /// Still running at the bound: the result to return, saying so.
    Running(Value),
}
