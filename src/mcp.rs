//! The rmcp `ServerHandler`: `tools/list` and `tools/call` over the [`Gateway`].
//!
//! One handler value is made per stdio connection, per HTTP session, or per stateless HTTP request, so
//! it holds only `Arc`s. Each call runs in a tracing span carrying the user, the tool and the request id
//! (never arguments or results), and is dropped, upstream request included, when the client cancels.

use std::sync::Arc;
use std::time::Instant;

use rmcp::handler::server::ServerHandler;
use rmcp::model::{
    CallToolRequestParams, CallToolResponse, Implementation, ListToolsResult,
    PaginatedRequestParams, ServerCapabilities, ServerConfig, Tool,
};
use rmcp::service::RequestContext;
use rmcp::{ErrorData as McpError, RoleServer};
use tracing::Instrument;

use crate::gateway::{CallError, Gateway};

/// The MCP face of the gateway for one caller.
#[derive(Clone)]
pub struct McpServer {
    gateway: Arc<Gateway>,
    /// Who is calling (stdio: the local user; HTTP: the authenticated user).
    user: Arc<str>,
}

impl McpServer {
    pub fn new(gateway: Arc<Gateway>, user: impl Into<Arc<str>>) -> Self {
        Self {
            gateway,
            user: user.into(),
        }
    }
}

impl ServerHandler for McpServer {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(ServerCapabilities::builder().enable_tools().build())
            .with_server_info(
                Implementation::new("devgate", env!("CARGO_PKG_VERSION")).with_title("devgate"),
            )
            .with_instructions(self.gateway.instructions())
    }

    async fn list_tools(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, McpError> {
        Ok(ListToolsResult::with_all_items(
            self.gateway.tools().as_ref().clone(),
        ))
    }

    fn get_tool(&self, name: &str) -> Option<Tool> {
        self.gateway.tool(name).cloned()
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, McpError> {
        let span = tracing::info_span!("tool_call", user = %self.user, tool = %request.name, request_id = %context.id);
        let started = Instant::now();
        let gateway = self.gateway.clone();
        async move {
            let call = gateway.call(&request.name, request.arguments.as_ref());
            let outcome = tokio::select! {
                outcome = call => outcome,
                () = context.ct.cancelled() => {
                    tracing::info!(outcome = "cancelled", ms = started.elapsed().as_millis() as u64, "call");
                    return Err(McpError::internal_error("the request was cancelled", None));
                }
            };
            match outcome {
                Ok(result) => {
                    let outcome = if result.is_error == Some(true) { "error" } else { "ok" };
                    tracing::info!(outcome, ms = started.elapsed().as_millis() as u64, "call");
                    Ok(result.into())
                }
                Err(e @ CallError::UnknownTool(_)) => {
                    tracing::info!(outcome = "unknown_tool", "call");
                    Err(McpError::invalid_params(e.to_string(), None))
                }
            }
        }
        .instrument(span)
        .await
    }
}
