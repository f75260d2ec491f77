//! MCP over stdin/stdout. stdout carries only JSON-RPC; logs go to stderr.
//!
//! On Unix, agents start devgate with pipes (or, from Node, socket pairs) on stdin and stdout. Those are
//! read and written by the runtime's reactor without blocking; tokio's own stdin/stdout would hand every
//! read and write to a blocking thread, which costs a thread hop each way on every message. A terminal
//! or a file, and every stdin/stdout on Windows (whose console and anonymous pipes the reactor cannot
//! wait on), use tokio's stdio.

use std::sync::Arc;

use rmcp::ServiceExt;
use rmcp::transport::IntoTransport;

use crate::gateway::Gateway;
use crate::identity::Identity;
use crate::mcp::{Caller, McpServer, PendingElicitations};

/// Serves one MCP connection on stdin/stdout until the client closes it.
pub async fn serve(
    gateway: Arc<Gateway>,
    user: Identity,
    pending: Arc<PendingElicitations>,
) -> std::io::Result<()> {
    let served = serve_on_stdio(gateway.clone(), user, pending).await;
    gateway.close_audit().await;
    served
}

async fn serve_on_stdio(
    gateway: Arc<Gateway>,
    user: Identity,
    pending: Arc<PendingElicitations>,
) -> std::io::Result<()> {
    let server = McpServer::new(gateway, Caller::Fixed(Arc::new(user)), pending);
    #[cfg(unix)]
    if let Some(pipes) = unix::reactor_stdio()? {
        return run(server, pipes).await;
    }
    run(server, rmcp::transport::stdio()).await
}

async fn run<T, E, A>(server: McpServer, transport: T) -> std::io::Result<()>
where
    T: IntoTransport<rmcp::RoleServer, E, A>,
    E: std::error::Error + Send + Sync + 'static,
{
    let running = server
        .serve(transport)
        .await
        .map_err(std::io::Error::other)?;
    running.waiting().await.map_err(std::io::Error::other)?;
    Ok(())
}

/// stdin and stdout driven by the reactor, where they are pipes or sockets.
#[cfg(unix)]
mod unix {
    use std::fs::File;
    use std::os::fd::{AsFd, OwnedFd};
    use std::os::unix::fs::FileTypeExt;

    use tokio::io::{AsyncRead, AsyncWrite};

    type Reader = Box<dyn AsyncRead + Send + Unpin>;
    type Writer = Box<dyn AsyncWrite + Send + Unpin>;

    /// stdin and stdout as reactor-driven streams, or `None` when either is not a pipe or socket.
    pub(super) fn reactor_stdio() -> std::io::Result<Option<(Reader, Writer)>> {
        let stdin = std::io::stdin().as_fd().try_clone_to_owned()?;
        let stdout = std::io::stdout().as_fd().try_clone_to_owned()?;
        // Both or neither: making one of them non-blocking and then handing it to tokio's blocking stdio
        // would make its reads fail with `WouldBlock`.
        if pollable(&stdin)
            && pollable(&stdout)
            && let (Some(r), Some(w)) = (reader(stdin), writer(stdout))
        {
            return Ok(Some((r, w)));
        }
        Ok(None)
    }

    /// Whether the descriptor is a pipe or a socket, which the reactor can wait on.
    fn pollable(fd: &OwnedFd) -> bool {
        let Ok(copy) = fd.try_clone() else {
            return false;
        };
        File::from(copy)
            .metadata()
            .map(|m| m.file_type().is_fifo() || m.file_type().is_socket())
            .unwrap_or(false)
    }

    fn is_fifo(fd: &OwnedFd) -> bool {
        fd.try_clone()
            .ok()
            .and_then(|copy| File::from(copy).metadata().ok())
            .is_some_and(|m| m.file_type().is_fifo())
    }

    /// stdin as a reactor-driven reader.
    fn reader(fd: OwnedFd) -> Option<Reader> {
        if is_fifo(&fd) {
            let pipe = tokio::net::unix::pipe::Receiver::from_owned_fd(fd).ok()?;
            return Some(Box::new(pipe));
        }
        socket(fd).map(|s| Box::new(s) as Reader)
    }

    /// stdout as a reactor-driven writer.
    fn writer(fd: OwnedFd) -> Option<Writer> {
        if is_fifo(&fd) {
            let pipe = tokio::net::unix::pipe::Sender::from_owned_fd(fd).ok()?;
            return Some(Box::new(pipe));
        }
        socket(fd).map(|s| Box::new(s) as Writer)
    }

    fn socket(fd: OwnedFd) -> Option<tokio::net::UnixStream> {
        let std = std::os::unix::net::UnixStream::from(fd);
        std.set_nonblocking(true).ok()?;
        tokio::net::UnixStream::from_std(std).ok()
    }
}
