//! The call pipeline: arguments checked, cursor opened, credential fetched, identifiers resolved,
//! the request built from the tool's templates and sent, the reply shaped (with the agent's `fields`).

use std::collections::HashMap;

use rmcp::model::{CallToolResult, JsonObject};
use serde_json::{Map, Value, json};

use super::credentials::Auth;
use super::paging::Paging;
use super::tasks::{Followed, Ran};
use super::text::text_result;
use super::{Confirmer, Offered, Progress, ToolError};
use crate::catalog::schema;
use crate::catalog::{
    CONFIRM_PARAM, CURSOR_PARAM, FIELDS_PARAM, OFFSET_PARAM, ResolveWhen, ResponseKind, TAIL_PARAM,
    WAIT_PARAM, template,
};
use crate::confirm::Confirmations;
use crate::shape::{self, Field, Reads};

/// One tool call in progress: the tool, who calls, and where user tokens come from.
pub(super) struct Call<'a> {
    pub(super) offered: &'a Offered,
    /// The user confirms this call first: the tool is confirmed for everyone, or by `[[policies]]`
    /// for this caller.
    pub(super) confirm: bool,
    /// Every tool this gateway offers, so a result names only tools the agent can call.
    pub(super) all: &'a HashMap<String, Offered>,
    pub(super) user: &'a str,
    pub(super) progress: Option<&'a Progress>,
    pub(super) wait_poll: std::time::Duration,
    pub(super) confirmer: Option<&'a dyn Confirmer>,
    pub(super) confirmations: &'a Confirmations,
    /// The call runs as an MCP task: what it started is returned to follow later ([`Ran::Follow`]),
    /// and a run is followed even without `wait`.
    pub(super) as_task: bool,
}

impl Call<'_> {
    /// Runs the call. What it started (a run, a task the provider accepted with 202) is followed here
    /// to its end, unless the call runs as an MCP task: then it is returned, to be followed by the task.
    pub(super) async fn run(
        &self,
        args: Option<&JsonObject>,
        text_cap: usize,
    ) -> Result<Ran, ToolError> {
        match self.start(args, text_cap).await? {
            Ran::Follow(followed) if !self.as_task => {
                self.follow_to_end(followed, text_cap).await.map(Ran::Done)
            }
            ran => Ok(ran),
        }
    }

    async fn start(&self, args: Option<&JsonObject>, text_cap: usize) -> Result<Ran, ToolError> {
        let o = self.offered;
        let tool = &o.tool;
        let mut args =
            schema::validate(tool, args, &o.defaults).map_err(|e| o.invalid(e.field, e.message))?;
        // The catalog lets any write tool carry `confirm`; only the ones devgate confirms list it.
        if !self.confirm && args.contains_key(CONFIRM_PARAM) {
            return Err(o.invalid(
                CONFIRM_PARAM,
                "devgate does not ask the user before this tool, so there is nothing to confirm; call again without it",
            ));
        }
        // As given (before lookups turn names into ids), for the confirmation's summary.
        let given = if self.confirm {
            Some(args.clone())
        } else {
            None
        };
        // A cursor is checked before anything goes upstream: one devgate did not issue to this user, for
        // this tool and these arguments, is refused.
        let scope = tool.paginated.then(|| o.cursor_scope(self.user, &args));
        let from_cursor = match (args.get(CURSOR_PARAM).and_then(Value::as_str), &scope) {
            (Some(cursor), Some(scope)) => Some(o.open_cursor(cursor, scope)?),
            _ => None,
        };
        let mut auth = self.auth().await?;
        self.resolve(&mut args, &mut auth).await?;

        let url = match &from_cursor {
            Some(relative) => o.cursor_url(relative, &args)?,
            None => {
                let path = tool.path.render(&args).map_err(|e| o.bad_value(e))?;
                let query = template::render_query(&tool.query, &args);
                o.client.url(&path, &query)
            }
        };

        match tool.spec.response {
            ResponseKind::Text if args.contains_key(TAIL_PARAM) => {
                let lines = args.get(TAIL_PARAM).and_then(Value::as_u64).unwrap_or(1) as usize;
                let window = self.tail(&args, url, lines, text_cap, &mut auth).await?;
                Ok(Ran::Done(text_result(window, 0)))
            }
            ResponseKind::Text => {
                let offset = args.get(OFFSET_PARAM).and_then(Value::as_u64).unwrap_or(0);
                let window = self.window(&args, url, offset, text_cap, &mut auth).await?;
                Ok(Ran::Done(text_result(window, offset)))
            }
            ResponseKind::Json | ResponseKind::Empty => {
                let extra = o.extra_fields(&args)?;
                if let Some(given) = &given {
                    self.confirmed(given, &args, text_cap).await?;
                }
                let body = self.body(&args, &url, &mut auth).await?;
                let reply = self
                    .json_reply(
                        tool.spec.method.as_reqwest(),
                        url.clone(),
                        body.as_ref(),
                        &mut auth,
                        &args,
                        extra
                            .as_ref()
                            .map_or(o.reads.as_ref(), |e| e.reads.as_ref()),
                    )
                    .await?;
                if let (Some(spec), 202) = (&tool.spec.accepted, reply.status.as_u16()) {
                    let location = reply.location.map(String::from);
                    return Ok(Ran::Follow(Followed::accepted(args, location, url, spec)));
                }
                let paging = scope.as_ref().map(|scope| Paging { scope, args: &args });
                // Read with the tool's own reads, which project while reading (`reads_of`).
                let projected = extra.is_none() && o.reads.is_some();
                let shaped =
                    o.shape_reply(reply.body, &url, extra.as_ref(), paging.as_ref(), projected);
                let wait = args
                    .get(WAIT_PARAM)
                    .and_then(Value::as_u64)
                    .filter(|s| *s > 0);
                match (tool.spec.wait.is_some(), wait) {
                    (true, Some(secs)) => Ok(Ran::Follow(Followed::run(args, shaped, secs))),
                    (true, None) if self.as_task => Ok(Ran::Follow(Followed::run(
                        args,
                        shaped,
                        super::tasks::TASK_FOLLOW_SECS,
                    ))),
                    _ => Ok(Ran::Done(structured(shaped))),
                }
            }
        }
    }

    /// GETs a JSON body (a lookup, the current object, a log page, a task's status); a 401 on a user
    /// token is answered by one refresh and one retry ([`Self::with_renewal`]).
    pub(super) async fn get_json(
        &self,
        url: url::Url,
        auth: &mut Auth,
        args: &Map<String, Value>,
    ) -> Result<Value, ToolError> {
        self.json_reply(reqwest::Method::GET, url, None, auth, args, None)
            .await
            .map(|r| r.body)
    }

    /// Sends a JSON request and returns the reply with its status and `Location`; a 401 on a user token
    /// is answered by one refresh and one retry ([`Self::with_renewal`]).
    async fn json_reply(
        &self,
        method: reqwest::Method,
        url: url::Url,
        body: Option<&Value>,
        auth: &mut Auth,
        args: &Map<String, Value>,
        reads: Option<&Reads>,
    ) -> Result<crate::provider::JsonReply, ToolError> {
        let client = &self.offered.client;
        self.with_renewal(auth, args, |header| {
            let (method, url) = (method.clone(), url.clone());
            async move { client.json(method, url, body, &header, reads).await }
        })
        .await
    }

    /// Runs the tool's lookups, e.g. a pipeline identifier to its numeric id.
    async fn resolve(
        &self,
        args: &mut Map<String, Value>,
        auth: &mut Auth,
    ) -> Result<(), ToolError> {
        let o = self.offered;
        for step in &o.tool.resolve {
            let Some(value) = template::scalar(args.get(&step.param)) else {
                continue;
            };
            let needed = match step.when {
                ResolveWhen::NotNumeric => !value.bytes().all(|b| b.is_ascii_digit()),
                ResolveWhen::ContainsSlash => value.contains('/'),
            };
            if !needed {
                continue;
            }
            let path = step.path.render(args).map_err(|e| o.bad_value(e))?;
            let url = o
                .client
                .url(&path, &template::render_query(&step.query, args));
            let reply = self
                .get_json(url, auth, args)
                .await
                .map_err(|e| e.in_lookup(&step.param, &value))?;
            let found = shape::pointer(&reply, &step.take)
                .filter(|v| !v.is_null())
                .cloned();
            match found {
                Some(v) => {
                    args.insert(step.param.clone(), v);
                }
                None => {
                    return Err(o.invalid(
                        &step.param,
                        format!(
                            "`{value}` was not found by {}; check the value",
                            o.client.title()
                        ),
                    ));
                }
            }
        }
        Ok(())
    }

    /// The request body: the template filled from the arguments, laid over the current object's kept
    /// fields when the provider's update replaces the whole object.
    async fn body(
        &self,
        args: &Map<String, Value>,
        url: &url::Url,
        auth: &mut Auth,
    ) -> Result<Option<Value>, ToolError> {
        let tool = &self.offered.tool;
        let body = tool
            .spec
            .body
            .as_ref()
            .and_then(|t| template::render_body(t, args));
        let Some(keep) = &tool.keep_current else {
            return Ok(body);
        };
        let current = self.get_json(url.clone(), auth, args).await?;
        let mut merged = shape::project(&current, keep);
        if let Some(body) = body {
            merge(&mut merged, body);
        }
        Ok(Some(merged))
    }
}

/// A call's projection widened by the agent's `fields`.
pub(super) struct ExtraFields {
    /// The output names the agent asked for.
    asked: Vec<String>,
    fields: Vec<Field>,
    reads: Option<Reads>,
}

impl ExtraFields {
    /// Shapes the reply with the widened projection, naming any asked field that no item had, so an
    /// agent that guessed a path wrong is told rather than handed a silently narrower result.
    fn shape(
        &self,
        offered: &Offered,
        reply: Value,
        url: &url::Url,
        paging: Option<&Paging>,
    ) -> Value {
        // Looked up in the provider's reply: a field left out as a default value was still there.
        let items: Vec<&Value> = match offered
            .tool
            .spec
            .output
            .as_ref()
            .and_then(|o| o.list.as_deref())
        {
            Some(list) => shape::pointer(&reply, list)
                .and_then(Value::as_array)
                .map(|items| items.iter().collect())
                .unwrap_or_default(),
            None => vec![&reply],
        };
        let found = |name: &str| {
            self.fields
                .iter()
                .filter(|f| f.out == name)
                .any(|f| items.iter().any(|i| shape::reaches(i, f)))
        };
        let absent: Vec<&String> = self.asked.iter().filter(|n| !found(n)).collect();
        let absent = (!absent.is_empty()).then(|| json!(absent));
        let mut shaped = offered.shape(reply, url, &self.fields, paging, false);
        if let Some(absent) = absent
            && let Value::Object(out) = &mut shaped
        {
            out.insert("fields_absent".into(), absent);
        }
        shaped
    }
}

impl Offered {
    /// An argument of this tool the agent has to correct.
    pub(super) fn invalid(&self, field: impl Into<String>, reason: impl Into<String>) -> ToolError {
        ToolError::InvalidArgument {
            tool: self.tool.name.clone(),
            field: field.into(),
            reason: reason.into(),
        }
    }

    /// A path value that cannot go into the tool's path.
    pub(super) fn bad_value(&self, e: template::PathValueError) -> ToolError {
        self.invalid(e.param, e.reason)
    }

    /// A JSON reply as the tool returns it: `{"ok": true}` for none, else projected (with the agent's
    /// `fields`, and the next page's cursor when paging).
    pub(super) fn shape_reply(
        &self,
        reply: Value,
        url: &url::Url,
        extra: Option<&ExtraFields>,
        paging: Option<&Paging>,
        projected: bool,
    ) -> Value {
        if self.tool.spec.response == ResponseKind::Empty || reply.is_null() {
            return json!({"ok": true});
        }
        match extra {
            Some(extra) => extra.shape(self, reply, url, paging),
            None => self.shape(
                reply,
                url,
                self.tool.output.as_deref().unwrap_or_default(),
                paging,
                projected,
            ),
        }
    }

    /// The output fields of this call when the agent asked for more with `fields`.
    pub(super) fn extra_fields(
        &self,
        args: &Map<String, Value>,
    ) -> Result<Option<ExtraFields>, ToolError> {
        let Some(given) = args.get(FIELDS_PARAM).and_then(Value::as_array) else {
            return Ok(None);
        };
        let mut specs: Vec<String> = Vec::new();
        for spec in given.iter().filter_map(Value::as_str) {
            if !specs.iter().any(|s| s == spec) {
                specs.push(spec.to_string());
            }
        }
        let mut asked =
            shape::parse_fields(&specs).map_err(|e| self.invalid(FIELDS_PARAM, e.to_string()))?;
        // An unnamed path of several segments comes back under the path as asked (`links.html.href`),
        // not its last segment: paths that end alike stay apart, none replaces a default field, and
        // `fields_absent` names what the agent wrote.
        for (field, spec) in asked.iter_mut().zip(&specs) {
            let path = spec.split(['{', '|']).next().unwrap_or_default();
            if field.path.len() > 1 && !path.contains('=') {
                field.out = path.to_string();
            }
        }
        for (i, field) in asked.iter().enumerate() {
            if let Some(j) = asked[..i].iter().position(|f| f.out == field.out) {
                return Err(self.invalid(
                    FIELDS_PARAM,
                    format!(
                        "`{}` and `{}` would both come back as `{}`; name one (`other_name=path`)",
                        specs[j], specs[i], field.out
                    ),
                ));
            }
        }
        let mut fields = self.tool.output.clone().unwrap_or_default();
        for field in &asked {
            match fields.iter_mut().find(|f| f.out == field.out) {
                Some(slot) => *slot = field.clone(),
                None => fields.push(field.clone()),
            }
        }
        let list = self
            .tool
            .spec
            .output
            .as_ref()
            .and_then(|o| o.list.as_deref());
        let reads = self.reads.clone().map(|reads| {
            let mut reads = reads.without_projection();
            reads.add_fields(list.unwrap_or_default(), &asked);
            reads
        });
        Ok(Some(ExtraFields {
            asked: asked.into_iter().map(|f| f.out).collect(),
            fields,
            reads,
        }))
    }

    /// Projects a JSON reply and adds the cursor of the next page. `projected`: the reply was read
    /// with this tool's own [`Reads`] (`reads_of`), which project its object or items while reading.
    fn shape(
        &self,
        mut body: Value,
        url: &url::Url,
        fields: &[Field],
        paging: Option<&Paging>,
        projected: bool,
    ) -> Value {
        let tool = &self.tool;
        let Some(list) = tool.spec.output.as_ref().and_then(|o| o.list.as_deref()) else {
            return match projected {
                true => body,
                false => shape::project(&body, fields),
            };
        };
        let items: Vec<Value> = match shape::pointer_mut(&mut body, list) {
            Some(Value::Array(items)) if projected => std::mem::take(items),
            Some(Value::Array(items)) => items.iter().map(|i| shape::project(i, fields)).collect(),
            _ => Vec::new(),
        };
        let mut out = Map::new();
        let next = match paging {
            Some(paging) if tool.paginated => self
                .next_page(&body, url, items.len(), paging.args)
                .map(|relative| self.cursors.issue(paging.scope, &relative)),
            _ => None,
        };
        out.insert("items".into(), Value::Array(items));
        if let Some(cursor) = next {
            out.insert("next_cursor".into(), json!(cursor));
        }
        Value::Object(out)
    }
}

/// A result carrying `value` as structured content and as its JSON text, as rmcp's
/// `CallToolResult::structured` makes it, but written with `serde_json::to_string`: rmcp formats the text
/// through `Display`, whose writes go one token at a time through a formatter (4% of the CPU of a call).
pub(super) fn structured(value: Value) -> CallToolResult {
    let text = serde_json::to_string(&value).unwrap_or_default();
    let mut result = CallToolResult::structured(Value::Null);
    result.content = vec![rmcp::model::ContentBlock::text(text)];
    result.structured_content = Some(value);
    result
}

/// Deep-merges `over` onto `base`: objects merge key by key, anything else replaces.
fn merge(base: &mut Value, over: Value) {
    match (base, over) {
        (Value::Object(b), Value::Object(o)) => {
            for (k, v) in o {
                match b.get_mut(&k) {
                    Some(existing) => merge(existing, v),
                    None => {
                        b.insert(k, v);
                    }
                }
            }
        }
        (b, o) => *b = o,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merge_overlays_nested_objects() {
        let mut base = json!({"title": "Old", "destination": {"branch": {"name": "main"}}, "reviewers": [{"uuid": "{a}"}]});
        merge(&mut base, json!({"title": "New", "reviewers": []}));
        assert_eq!(
            base,
            json!({"title": "New", "destination": {"branch": {"name": "main"}}, "reviewers": []})
        );
    }
}
