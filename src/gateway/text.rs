//! Text replies (files, diffs, logs): a window from `offset` with the offset to read on, or the
//! last lines with `tail`.

use std::fmt::Write as _;

use rmcp::model::{CallToolResult, ContentBlock};
use serde_json::{Map, Value, json};

use super::ToolError;
use super::call::Call;
use super::credentials::Auth;
use crate::catalog::template;
use crate::shape;

impl Call<'_> {
    /// The window of a text reply from byte `offset`, at most `cap` bytes (a 401 renewed once, as
    /// everywhere: [`Self::with_renewal`]).
    pub(super) async fn window(
        &self,
        args: &Map<String, Value>,
        url: url::Url,
        offset: u64,
        cap: usize,
        auth: &mut Auth,
    ) -> Result<crate::provider::TextWindow, ToolError> {
        let o = self.offered;
        let spec = &o.tool.spec;
        self.with_renewal(auth, args, |header| {
            let url = url.clone();
            async move {
                let lines = spec.text_lines.as_deref();
                o.client
                    .text(url, offset, cap, lines, &header, spec.redirects)
                    .await
            }
        })
        .await
    }

    /// The last `lines` lines of a text result. A byte stream is read through with a bounded buffer; JSON
    /// lines (Buddy's logs) are fetched again from the right line when the first page did not reach the end.
    pub(super) async fn tail(
        &self,
        args: &Map<String, Value>,
        url: url::Url,
        lines: usize,
        cap: usize,
        auth: &mut Auth,
    ) -> Result<crate::provider::TextWindow, ToolError> {
        let o = self.offered;
        let spec = &o.tool.spec;
        let Some(lines_path) = spec.text_lines.as_deref() else {
            return self
                .with_renewal(auth, args, |header| {
                    let url = url.clone();
                    async move {
                        o.client
                            .text_tail(url, lines, cap, &header, spec.redirects)
                            .await
                    }
                })
                .await;
        };
        let read = |body: &Value| -> Vec<String> {
            shape::pointer(body, lines_path)
                .and_then(Value::as_array)
                .map(|l| {
                    l.iter()
                        .filter_map(Value::as_str)
                        .map(str::to_string)
                        .collect()
                })
                .unwrap_or_default()
        };
        let first = self.get_json(url, auth, args).await?;
        let mut text = read(&first);
        let total = spec
            .text_total
            .as_deref()
            .and_then(|p| shape::pointer(&first, p))
            .and_then(Value::as_u64);
        if let (Some(total), Some(start)) = (total, spec.text_start.as_deref())
            && (text.len() as u64) < total
        {
            let mut from_end = args.clone();
            from_end.insert(start.to_string(), json!(total.saturating_sub(lines as u64)));
            let path = o.tool.path.render(&from_end).map_err(|e| o.bad_value(e))?;
            let url = o
                .client
                .url(&path, &template::render_query(&o.tool.query, &from_end));
            text = read(&self.get_json(url, auth, args).await?);
        }
        let joined = text.join("\n");
        Ok(crate::provider::tail_window(
            joined.as_bytes(),
            lines,
            cap,
            joined.len() as u64,
        ))
    }
}

/// A text window as a tool result: the raw text for the model, and the same in `structuredContent`.
pub(super) fn text_result(window: crate::provider::TextWindow, offset: u64) -> CallToolResult {
    let mut structured = Map::new();
    let mut text = window.text.clone();
    if let Some(next) = window.next_offset {
        crate::call_log::text_cut(offset, next, window.total);
        let total = window.total.map(|t| format!(" of {t}")).unwrap_or_default();
        let _ = write!(
            text,
            "\n[cut: bytes {offset}–{next}{total}; call again with offset={next} to read on]"
        );
    }
    structured.insert("text".into(), Value::String(window.text));
    if let Some(next) = window.next_offset {
        structured.insert("next_offset".into(), json!(next));
    }
    if let Some(total) = window.total {
        structured.insert("total_bytes".into(), json!(total));
    }
    let mut result = CallToolResult::success(vec![ContentBlock::text(text)]);
    result.structured_content = Some(Value::Object(structured));
    result
}
