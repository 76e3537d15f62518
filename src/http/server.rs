//! The endpoint's connections: accepted here and served by hyper, each with the limits
//! of SPEC section 10, so that clients that send slowly or not at all cannot pile up.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// How long a request's headers may take to arrive. hyper starts this timer again when
/// a keep-alive connection goes idle after a response, so an idle connection is closed
/// after it too: well within SPEC's 60 s for idle connections.
pub const HEADER_TIMEOUT: Duration = Duration::from_secs(10);
/// Connections served at once; the next one waits in the listen queue.
pub const MAX_CONNECTIONS: usize = 512;
/// A connection's read buffer, and so the most a request's headers may take: a slow
/// client holds this much memory at most (hyper's least is 8 KiB).
pub const READ_BUFFER: usize = 16 * 1024;

/// The connection settings every client gets.
pub fn connection_builder() -> hyper::server::conn::http1::Builder {
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_TIMEOUT)
        .max_buf_size(READ_BUFFER)
        .keep_alive(true);
    builder
}

/// Serves `app` until `shutdown` is cancelled, then lets the requests in progress finish
/// (idle connections close at once) and returns when every connection has ended.
pub async fn serve(listener: TcpListener, app: Router, shutdown: CancellationToken) {
    let builder = connection_builder();
    let permits = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    let connections = TaskTracker::new();
    loop {
        // A permit first: while 512 connections are open, new ones wait unaccepted.
        let permit = tokio::select! {
            permit = permits.clone().acquire_owned() => permit,
            () = shutdown.cancelled() => break,
        };
        let Ok(permit) = permit else { break };
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            () = shutdown.cancelled() => break,
        };
        let (stream, peer) = match accepted {
            Ok(accepted) => accepted,
            Err(e) => {
                // Out of file descriptors, most likely: wait for some to be freed.
                tracing::warn!(error = %e, "cannot accept an HTTP connection");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let connection =
            builder.serve_connection(TokioIo::new(stream), TowerToHyperService::new(app.clone()));
        let shutdown = shutdown.clone();
        connections.spawn(async move {
            let _permit = permit;
            let mut connection = std::pin::pin!(connection);
            let result = tokio::select! {
                result = connection.as_mut() => result,
                () = shutdown.cancelled() => {
                    connection.as_mut().graceful_shutdown();
                    connection.await
                }
            };
            // Timeouts and resets are the client's business, not the operator's.
            if let Err(e) = result {
                tracing::debug!(%peer, error = %e, "HTTP connection ended");
            }
        });
    }
    connections.close();
    connections.wait().await;
}
