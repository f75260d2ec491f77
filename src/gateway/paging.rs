//! Paging: sealed cursors bound to the user, tool and arguments, and the next page from the
//! provider's `next` link, its counters (numbered pages) or a page parameter.

use serde_json::{Map, Value};

use super::{Offered, ToolError};
use crate::catalog::{CURSOR_PARAM, FIELDS_PARAM, PAGE_SIZE_PARAM, Pagination, template};
use crate::shape::{self, CursorScope};

/// The URL of the page after this one by number, when the body's counters say there is one
/// (`page * pagelen < size`): for lists that leave out `next` (see [`crate::catalog::Numbered`]).
fn numbered_next(body: &Value, url: &url::Url, n: &crate::catalog::Numbered) -> Option<String> {
    let count = |path: &str| shape::pointer(body, path).and_then(Value::as_u64);
    let (page, pagelen, size) = (count(&n.page)?, count(&n.pagelen)?, count(&n.size)?);
    if pagelen == 0 || page.saturating_mul(pagelen) >= size {
        return None;
    }
    let pairs: Vec<(String, String)> = url
        .query_pairs()
        .into_owned()
        .filter(|(k, _)| k != &n.page)
        .collect();
    let mut next = url.clone();
    next.query_pairs_mut()
        .clear()
        .extend_pairs(pairs)
        .append_pair(&n.page, &(page + 1).to_string());
    Some(next.to_string())
}

/// What a list call needs to issue the cursor of its next page.
pub(super) struct Paging<'a> {
    pub(super) scope: &'a CursorScope,
    /// The arguments after lookups, which render the tool's path (and cursor prefix).
    pub(super) args: &'a Map<String, Value>,
}

/// Arguments that size or shape a page but do not choose what is listed: a cursor is not bound to them.
/// (The page size: the cursor's URL keeps the size it was issued with.)
const UNBOUND_BY_CURSOR: [&str; 3] = [CURSOR_PARAM, FIELDS_PARAM, PAGE_SIZE_PARAM];

impl Offered {
    /// What this tool's cursors are bound to for `user` calling with `args` (as validated).
    pub(super) fn cursor_scope(&self, user: &str, args: &Map<String, Value>) -> CursorScope {
        CursorScope::new(&self.tool.name, user, args, &UNBOUND_BY_CURSOR)
    }

    fn refuse_cursor(&self, why: &str) -> ToolError {
        self.invalid(
            CURSOR_PARAM,
            format!(
                "{why}; pass next_cursor exactly as returned, with the same arguments as the call that returned it, or omit it for the first page"
            ),
        )
    }

    /// The relative URL in a cursor, if devgate issued it within `scope`.
    pub(super) fn open_cursor(
        &self,
        cursor: &str,
        scope: &CursorScope,
    ) -> Result<String, ToolError> {
        self.cursors
            .open(scope, cursor)
            .map_err(|e| self.refuse_cursor(&e.to_string()))
    }

    /// Checks that a cursor's URL leads where this tool's own requests go (the provider chose it).
    pub(super) fn cursor_url(
        &self,
        relative: &str,
        args: &Map<String, Value>,
    ) -> Result<url::Url, ToolError> {
        let url = self
            .client
            .absolute(relative)
            .ok_or_else(|| self.refuse_cursor("leads outside the provider's API"))?;
        match self.within_resource(&url, args) {
            Ok(true) => Ok(url),
            Ok(false) => Err(self.refuse_cursor("belongs to other arguments than these")),
            Err(e) => Err(self.bad_value(e)),
        }
    }

    /// Whether `url` is this tool's own resource for `args`: its path exactly, or under its
    /// `cursor_prefix` where the provider pages elsewhere (e.g. after a redirect).
    fn within_resource(
        &self,
        url: &url::Url,
        args: &Map<String, Value>,
    ) -> Result<bool, template::PathValueError> {
        let tool = &self.tool;
        let relative_path = self
            .client
            .relative_of(url)
            .map(|r| r.split('?').next().unwrap_or_default().to_string())
            .unwrap_or_default();
        match &tool.cursor_prefix {
            Some(prefix) => prefix.render(args).map(|p| relative_path.starts_with(&p)),
            None => tool.path.render(args).map(|p| relative_path == p),
        }
    }

    /// The relative URL of the next page, if there is one.
    pub(super) fn next_page(
        &self,
        body: &Value,
        url: &url::Url,
        count: usize,
        args: &Map<String, Value>,
    ) -> Option<String> {
        match &self.provider.spec.pagination {
            Pagination::NextUrl { next, numbered } => {
                let link = match shape::pointer(body, next).and_then(Value::as_str) {
                    Some(link) => link.to_string(),
                    None => numbered_next(body, url, numbered.as_ref()?)?,
                };
                let link = match &self.provider.spec.partial_response {
                    Some(param) => crate::provider::without_query(&link, param),
                    None => link,
                };
                // Parsed once: the cursor's relative URL and the resource check both read it.
                let parsed = url::Url::parse(&link).ok();
                let relative = parsed.as_ref().and_then(|u| self.client.relative_of(u));
                // A cursor that the next call would refuse is not handed out.
                let own = relative.is_some()
                    && parsed
                        .as_ref()
                        .is_some_and(|u| self.within_resource(u, args).unwrap_or(false));
                if !own {
                    tracing::warn!(tool = %self.tool.name, "the provider's next-page link leaves this tool's resource; paging stops here");
                    crate::call_log::paging_stopped();
                    return None;
                }
                relative
            }
            Pagination::Page {
                page_param,
                size_param,
                total_pages,
            } => {
                let pairs: Vec<(String, String)> = url.query_pairs().into_owned().collect();
                let get = |k: &str| {
                    pairs
                        .iter()
                        .find(|(key, _)| key == k)
                        .and_then(|(_, v)| v.parse::<u64>().ok())
                };
                let page = get(page_param).unwrap_or(1);
                let more = match total_pages
                    .as_deref()
                    .and_then(|p| shape::pointer(body, p))
                    .and_then(Value::as_u64)
                {
                    Some(total) => page < total,
                    None => get(size_param).is_some_and(|size| count as u64 >= size),
                };
                if !more {
                    return None;
                }
                let mut next = url.clone();
                next.query_pairs_mut()
                    .clear()
                    .extend_pairs(pairs.iter().filter(|(k, _)| k != page_param))
                    .append_pair(page_param, &(page + 1).to_string());
                self.client.relative_of(&next)
            }
        }
    }
}
