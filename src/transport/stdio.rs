//! MCP over stdin/stdout. stdout carries only JSON-RPC; logs go to stderr.

use std::sync::Arc;

use rmcp::ServiceExt;

use crate::gateway::Gateway;
use crate::mcp::{Caller, McpServer, PendingElicitations};

/// Serves one MCP connection on stdin/stdout until the client closes it.
pub async fn serve(
    gateway: Arc<Gateway>,
    user: String,
    pending: Arc<PendingElicitations>,
) -> std::io::Result<()> {
    let running = McpServer::new(gateway, Caller::Fixed(user.into()), pending)
        .serve(rmcp::transport::stdio())
        .await
        .map_err(std::io::Error::other)?;
    running.waiting().await.map_err(std::io::Error::other)?;
    Ok(())
}
