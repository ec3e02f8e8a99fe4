//! Accepting connections and running each request through the pipeline:
//! read the body (bounded) → `/health`, `/metrics` or authenticate → check the project → route → answer,
//! always with `X-Request-Id`, errors as IoTDA JSON.
//!
//! Limits: at most `http_connections_max` open connections per shard, and the REST share of
//! the open-files limit across shards — the reserve, plus what it borrows of the MQTT share
//! while devices use less than half of it (one more is answered 503 and closed), `http_body_bytes_max` per body (413), `http_header_read_timeout_ms` for a client
//! to send its headers (hyper closes the connection).

use std::cell::Cell;
use std::convert::Infallible;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures_lite::AsyncWriteExt;
use glommio::net::TcpListener;
use http::{HeaderValue, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use protocol::auth::RequestParts;
use shards::listen::{self, AcceptBackoff, DescriptorBudget};
use shards::tls::stream::TlsStream;
use shards::tls::{ServerTls, TlsListener};
use std::time::Instant;

use super::error::ApiError;
use super::io::{GlommioTimer, HyperIo};
use super::router;
use crate::api::query::Query;
use crate::app::{now_ms, ApiRequest, ApiResponse, App};

/// Runs until `stop` resolves: accepts and serves connections on `listener` — over TLS when
/// `tls` is given (HTTPS: the handshake runs in the connection's own task, within the header
/// read timeout, counted in the shard's TLS figures). A connection takes
/// a slot of the process-wide REST `budget` (the reserve the open-files plan keeps away from
/// MQTT) — or, when that is spent, borrows one of `mqtt_budget` while devices hold less than
/// half of it — and one of this shard's `http_connections_max`; without either it is answered
/// 503. A flood of MQTT connections thus never takes the reserve, and a burst of REST clients
/// beyond the reserve is served while the fleet leaves descriptors unused.
pub async fn serve(
    app: Rc<App>,
    listener: TcpListener,
    tls: Option<Arc<ServerTls>>,
    (budget, mqtt_budget): (Arc<DescriptorBudget>, Arc<DescriptorBudget>),
    stop: impl std::future::Future<Output = ()>,
) {
    let open_connections = Rc::new(Cell::new(0usize));
    let accept_loop = async {
        let mut backoff = AcceptBackoff::default();
        loop {
            let stream = match listener.accept().await {
                Ok(stream) => stream,
                Err(error) => {
                    listen::after_failed_accept("HTTP", app.shard.id(), &mut backoff, error).await;
                    continue;
                }
            };
            backoff.succeeded();
            let slot = budget.take().or_else(|| mqtt_budget.take_while_below(mqtt_budget.max() / 2));
            let slot = match slot {
                Some(slot) if open_connections.get() < app.config.http_connections_max => slot,
                _ => {
                    glommio::spawn_local(refuse_connection(stream, app.next_request_id())).detach();
                    continue;
                }
            };
            let _ = stream.set_nodelay(true);
            open_connections.set(open_connections.get() + 1);
            let (app, open_connections) = (app.clone(), open_connections.clone());
            let tls = tls.as_ref().map(|tls| tls.https());
            glommio::spawn_local(async move {
                match tls {
                    None => serve_connection(app, stream).await,
                    Some(config) => serve_tls_connection(app, stream, config).await,
                }
                open_connections.set(open_connections.get() - 1);
                drop(slot);
            })
            .detach();
        }
    };
    futures_lite::future::or(accept_loop, stop).await;
}

/// Answers 503 on a connection over the bound and closes it, without handing it to hyper.
async fn refuse_connection(mut stream: glommio::net::TcpStream, request_id: String) {
    let body = ApiError::Unavailable("too many HTTP connections".into()).body();
    let head = format!(
        "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\
         x-request-id: {request_id}\r\nconnection: close\r\n\r\n",
        body.len()
    );
    let _ = stream.write_all(head.as_bytes()).await;
    let _ = stream.write_all(&body).await;
    let _ = stream.close().await;
}

/// The TLS handshake, within the header read timeout, then the same as a plain connection.
async fn serve_tls_connection(
    app: Rc<App>,
    stream: glommio::net::TcpStream,
    config: Arc<rustls::ServerConfig>,
) {
    let deadline = Instant::now() + Duration::from_millis(app.config.http_header_read_timeout_ms);
    let peer = stream.peer_addr().ok();
    let meter = app.shard.tls_meter();
    match TlsStream::accept(stream, config, deadline, deadline, || {}).await {
        Ok(stream) => {
            meter.handshake_done(TlsListener::Https);
            meter.opened(TlsListener::Https);
            serve_connection(app.clone(), stream).await;
            app.shard.tls_meter().closed(TlsListener::Https);
        }
        Err((_, failure)) => {
            meter.handshake_failed(TlsListener::Https, &failure);
            tracing::debug!(?peer, reason = %failure, "HTTPS handshake failed");
        }
    }
}

async fn serve_connection<S>(app: Rc<App>, stream: S)
where
    S: futures_lite::AsyncRead + futures_lite::AsyncWrite + Unpin + 'static,
{
    let header_timeout = Duration::from_millis(app.config.http_header_read_timeout_ms);
    let service = hyper::service::service_fn(move |request| {
        let app = app.clone();
        async move { Ok::<_, Infallible>(handle(&app, request).await) }
    });
    let connection = hyper::server::conn::http1::Builder::new()
        .timer(GlommioTimer)
        .header_read_timeout(header_timeout)
        .keep_alive(true)
        .serve_connection(HyperIo(stream), service);
    if let Err(error) = connection.await {
        tracing::debug!(%error, "HTTP connection ended with an error");
    }
}

/// The whole body, bounded in size and in time: a client that stops sending mid-body does not
/// hold its connection (one of `http_connections_max`) for ever.
async fn read_body(app: &App, body: Incoming) -> Result<Bytes, ApiError> {
    let limit = app.config.http_body_bytes_max;
    let timeout = Duration::from_millis(app.config.http_body_read_timeout_ms);
    let collect = async { Some(Limited::new(body, limit).collect().await) };
    let deadline = async {
        glommio::timer::sleep(timeout).await;
        None
    };
    match futures_lite::future::or(collect, deadline).await {
        Some(Ok(collected)) => Ok(collected.to_bytes()),
        Some(Err(error)) if error.downcast_ref::<http_body_util::LengthLimitError>().is_some() => {
            Err(ApiError::PayloadTooLarge(limit))
        }
        Some(Err(error)) => Err(ApiError::BadRequest(format!("reading the body: {error}"))),
        None => Err(ApiError::BodyTimeout(timeout.as_millis() as u64)),
    }
}

/// One request, start to finish. Never fails: errors become IoTDA error responses.
pub async fn handle(app: &Rc<App>, request: Request<Incoming>) -> Response<Full<Bytes>> {
    let request_id = app.next_request_id();
    let (status, body, content_type, extra_headers) = match answer(app, request).await {
        Ok(ApiResponse { status, body, content_type, headers }) => (status, body, content_type, headers),
        Err(error) => {
            let (status, code) = error.status_and_code();
            if status.is_server_error() {
                tracing::warn!(%request_id, code, %error, "request failed");
            } else {
                tracing::debug!(%request_id, code, %error, "request refused");
            }
            (status, error.body(), "application/json", &[][..])
        }
    };
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    if status != StatusCode::NO_CONTENT {
        headers.insert(http::header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    }
    headers.insert("x-request-id", HeaderValue::from_str(&request_id).expect("hex is a valid header value"));
    for (name, value) in extra_headers {
        headers.insert(*name, HeaderValue::from_static(value));
    }
    response
}

async fn answer(app: &Rc<App>, request: Request<Incoming>) -> Result<ApiResponse, ApiError> {
    let (parts, body) = request.into_parts();
    let path = parts.uri.path();
    if path == router::HEALTH_PATH {
        return router::health(app, &parts.method);
    }
    if path == router::METRICS_PATH {
        return crate::api::metrics::render(app, &parts.method).await;
    }
    if path == router::OPENAPI_PATH {
        return router::openapi(&parts.method);
    }
    if let Some(file) = path.strip_prefix(crate::console::PREFIX).or((path == "/console").then_some("")) {
        return crate::console::serve(&parts.method, file);
    }
    let project_in_path = router::project_of_path(path)?;
    let header_pairs: Vec<(&str, &[u8])> =
        parts.headers.iter().map(|(name, value)| (name.as_str(), value.as_bytes())).collect();
    // Refuse callers without a plausible credential before buffering their body.
    app.credentials.precheck(&header_pairs)?;
    let body = read_body(app, body).await?;
    let request_parts = RequestParts {
        method: parts.method.as_str(),
        path,
        query: parts.uri.query(),
        headers: &header_pairs,
        body: &body,
    };
    let project_id = app.credentials.authenticate(&request_parts, now_ms() / 1000)?;
    if project_id != project_in_path {
        return Err(ApiError::Forbidden(format!(
            "the credential belongs to another project, not '{project_in_path}'"
        )));
    }
    let request = ApiRequest {
        project_id,
        query: Query::parse(parts.uri.query())?,
        raw_query: parts.uri.query(),
        body: &body,
    };
    router::route(app, &parts.method, path, request).await
}
