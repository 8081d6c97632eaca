//! The REST API's connections and the limits that keep one client from stopping the server.
//!
//! [`serve`] accepts connections up to [`HttpLimits::max_connections`] (more wait in the
//! listen backlog), tells HTTP/1.1 from HTTP/2 with prior knowledge (the h2 preface; ksqlDB
//! serves both on one port, `/inserts-stream` needs HTTP/2) and serves each with hyper:
//! - a client must send its first bytes, and then each request's headers, within
//!   [`HttpLimits::header_timeout`]; on HTTP/1.1 an idle keep-alive connection gets the same
//!   time to send its next request (slowloris connections are closed);
//! - headers are bounded by [`HttpLimits::max_header_bytes`] (hyper answers 431), bodies by
//!   [`HttpLimits::max_request_bytes`] (413);
//! - every 4xx/5xx the routing or body extraction produces (405, 413, a body cut short)
//!   gets ksqlDB's error body ([`ksql_error_bodies`]), as the handlers' own errors do.
//!
//! On shutdown it stops accepting, lets the push queries' responses end and waits a little
//! for requests in flight.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;

use super::error::RestError;

/// Bounds on what one client may ask of the server, with their defaults.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HttpLimits {
    /// Connections served at once (`--max-connections`, 10,000: under the usual 20,000
    /// open files, leaving room for the Kafka clients).
    pub max_connections: usize,
    /// Time to send the first bytes, each request's headers, and on HTTP/1.1 the next
    /// request of an idle connection (`--header-timeout-ms`, 30 s).
    pub header_timeout: Duration,
    /// A request's headers, in bytes (64 KiB).
    pub max_header_bytes: usize,
    /// A request's body, in bytes (`--max-request-bytes`, 8 MiB).
    pub max_request_bytes: usize,
    /// Statements in one `/ksql` request (`--max-statements`, 10,000).
    pub max_statements: usize,
    /// How long one `/ksql` request may run statements: those not started by then are not
    /// run (`--request-timeout-ms`, 60 s).
    pub request_budget: Duration,
    /// Bytes of rows a push query's client may fall behind by before it is told and
    /// disconnected (`--push-buffer-bytes`, 4 MiB).
    pub push_buffer_bytes: usize,
    /// Push queries with a consumer of their own (with state, or from the beginning) at once
    /// (`--max-push-queries`, ksqlDB's `ksql.max.push.queries`, 100); those sharing a source's
    /// reader are not counted.
    pub max_push_queries: usize,
}

impl Default for HttpLimits {
    fn default() -> Self {
        Self {
            max_connections: 10_000,
            header_timeout: Duration::from_secs(30),
            max_header_bytes: 64 << 10,
            max_request_bytes: 8 << 20,
            max_statements: 10_000,
            request_budget: Duration::from_secs(60),
            push_buffer_bytes: crate::engine::select::PUSH_BUFFER_BYTES,
            max_push_queries: crate::engine::select::MAX_PUSH_QUERIES,
        }
    }
}

/// How long a shutdown waits for requests in flight.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);
/// The HTTP/2 connection preface: a client speaking HTTP/2 with prior knowledge starts so.
const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// Serves `app` on `listener` within `limits` until `shutdown` completes; then runs
/// `on_shutdown` (which ends the push queries' responses) and waits up to
/// [`SHUTDOWN_GRACE`] for the connections to finish.
pub async fn serve(
    app: Router,
    listener: TcpListener,
    limits: HttpLimits,
    shutdown: impl Future<Output = ()> + Send + 'static,
    on_shutdown: impl FnOnce(),
) -> io::Result<()> {
    let app = app
        .layer(axum::extract::DefaultBodyLimit::max(
            limits.max_request_bytes,
        ))
        .layer(axum::middleware::map_response(ksql_error_bodies));
    let permits = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    tokio::pin!(shutdown);
    loop {
        let permit = tokio::select! {
            permit = Arc::clone(&permits).acquire_owned() => permit,
            () = &mut shutdown => break,
        };
        let Ok(permit) = permit else { break };
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            () = &mut shutdown => break,
        };
        let stream = match accepted {
            Ok((stream, _)) => stream,
            Err(e) => {
                // Out of file descriptors, say: the connections served so far go on.
                tracing::warn!("accepting a connection: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let service = TowerToHyperService::new(app.clone());
        let watcher = graceful.watcher();
        tokio::spawn(async move {
            let _permit = permit;
            if let Err(e) = serve_connection(stream, service, limits, watcher).await {
                tracing::debug!("connection: {e}");
            }
        });
    }
    drop(listener);
    on_shutdown();
    if tokio::time::timeout(SHUTDOWN_GRACE, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::info!("connections still open after {SHUTDOWN_GRACE:?}: closing them");
    }
    Ok(())
}

/// Serves one connection, HTTP/2 if it starts with the preface, else HTTP/1.1.
async fn serve_connection(
    stream: TcpStream,
    service: TowerToHyperService<Router>,
    limits: HttpLimits,
    watcher: hyper_util::server::graceful::Watcher,
) -> Result<(), String> {
    let (io, http2) = tokio::time::timeout(limits.header_timeout, detect(stream))
        .await
        .map_err(|_| "no request within the header timeout".to_string())?
        .map_err(|e| e.to_string())?;
    let io = TokioIo::new(io);
    if http2 {
        let mut builder = hyper::server::conn::http2::Builder::new(TokioExecutor::new());
        builder
            .timer(TokioTimer::new())
            .max_header_list_size(limits.max_header_bytes as u32)
            .keep_alive_interval(Some(limits.header_timeout))
            .keep_alive_timeout(limits.header_timeout);
        watcher
            .watch(builder.serve_connection(io, service))
            .await
            .map_err(|e| e.to_string())
    } else {
        let mut builder = hyper::server::conn::http1::Builder::new();
        builder
            .timer(TokioTimer::new())
            .header_read_timeout(limits.header_timeout)
            .max_buf_size(limits.max_header_bytes.max(8192));
        watcher
            .watch(builder.serve_connection(io, service))
            .await
            .map_err(|e| e.to_string())
    }
}

/// Reads the first bytes of a connection: whether it starts with the HTTP/2 preface, and
/// the connection with those bytes put back.
async fn detect(mut stream: TcpStream) -> io::Result<(Prefixed, bool)> {
    let mut read = Vec::with_capacity(H2_PREFACE.len());
    loop {
        let mut chunk = [0u8; 24];
        let n = stream
            .read(&mut chunk[..H2_PREFACE.len() - read.len()])
            .await?;
        if n == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        read.extend_from_slice(&chunk[..n]);
        if !H2_PREFACE.starts_with(&read) {
            return Ok((
                Prefixed {
                    read,
                    at: 0,
                    stream,
                },
                false,
            ));
        }
        if read.len() == H2_PREFACE.len() {
            return Ok((
                Prefixed {
                    read,
                    at: 0,
                    stream,
                },
                true,
            ));
        }
    }
}

/// A connection whose first bytes were read already: reading returns them first.
struct Prefixed {
    read: Vec<u8>,
    at: usize,
    stream: TcpStream,
}

impl AsyncRead for Prefixed {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        if this.at < this.read.len() {
            let n = (this.read.len() - this.at).min(buf.remaining());
            buf.put_slice(&this.read[this.at..this.at + n]);
            this.at += n;
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut this.stream).poll_read(cx, buf)
    }
}

impl AsyncWrite for Prefixed {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }
}

/// Gives an error response that is not ksqlDB's JSON (axum's plain-text rejections: 405,
/// 413, a body that could not be read) ksqlDB's error body, with the same status and the
/// text as its message.
pub async fn ksql_error_bodies(response: Response) -> Response {
    let status = response.status();
    if !(status.is_client_error() || status.is_server_error()) {
        return response;
    }
    let json = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("json"));
    if json {
        return response;
    }
    let allow = response.headers().get(header::ALLOW).cloned();
    let text = axum::body::to_bytes(response.into_body(), 64 << 10)
        .await
        .map(|b| String::from_utf8_lossy(&b).trim().to_string())
        .unwrap_or_default();
    let message = if text.is_empty() {
        status.canonical_reason().unwrap_or("Error").to_string()
    } else {
        text
    };
    let error = RestError::generic(i64::from(status.as_u16()) * 100, message);
    let mut response = error.into_response();
    // The error's status is its code / 100, which is `status` again.
    *response.status_mut() = status;
    if let Some(allow) = allow {
        response.headers_mut().insert(header::ALLOW, allow);
    }
    response
}
