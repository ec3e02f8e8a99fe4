//! One target's sender task: takes the head push, POSTs it over a kept-alive hyper client
//! connection, and on failure waits a doubling back-off before retrying the same push.
//!
//! The task holds only a `Weak<Pusher>`: dropping the last `Rc<Pusher>` stops it at its next
//! step, like [`Pusher::close`]. Every attempt (resolve, connect, request, reading the answer)
//! races one `request_timeout` timer; whatever fails, the connection is dropped whole — its
//! driver task is cancelled and the socket closed — so nothing of a half-finished exchange
//! leaks into the next attempt.

use std::io;
use std::net::{IpAddr, SocketAddr, ToSocketAddrs};
use std::rc::{Rc, Weak};
use std::time::Duration;

use bytes::Bytes;
use futures_lite::future;
use http::header::{HeaderValue, CONTENT_LENGTH, CONTENT_TYPE, HOST};
use http_body_util::{BodyExt, Full, Limited};
use hyper::client::conn::http1::SendRequest;

use super::outbox::QueuedPush;
use super::url::parse_url;
use super::{PushTarget, Pusher, PUSH_TOKEN_HEADER};
use crate::hyper_io::HyperIo;

/// How long a sender with an empty queue waits before it exits (and with it, its kept-alive
/// connection). `enqueue` starts a new one on the next push.
pub(crate) const SENDER_IDLE_EXIT: Duration = Duration::from_secs(30);

/// The most of a receiver's answer body that is read (and thrown away) to keep the
/// connection reusable; a longer answer costs the connection, not the push.
const RESPONSE_BODY_BYTES_MAX: usize = 64 * 1024;

/// Addresses tried per connect when a host name resolves to several.
const RESOLVED_ADDRESSES_MAX: usize = 4;

/// Why one delivery attempt failed.
#[derive(Debug, thiserror::Error)]
enum AttemptError {
    #[error("cannot resolve the receiver's host: {0}")]
    Resolve(io::Error),
    #[error("cannot connect: {0}")]
    Connect(io::Error),
    #[error("HTTP: {0}")]
    Http(#[from] hyper::Error),
    #[error("the receiver answered {0}")]
    Status(http::StatusCode),
    #[error("no answer within the request timeout")]
    Timeout,
}

/// Waits `min`, then twice as long after each further failure, up to `max`.
#[derive(Debug, Clone)]
pub(crate) struct Backoff {
    min: Duration,
    max: Duration,
    next: Duration,
}

impl Backoff {
    pub(crate) fn new(min: Duration, max: Duration) -> Self {
        let min = min.min(max);
        Backoff { min, max, next: min }
    }

    pub(crate) fn next_delay(&mut self) -> Duration {
        let delay = self.next;
        self.next = self.next.checked_mul(2).unwrap_or(self.max).min(self.max);
        delay
    }

    pub(crate) fn reset(&mut self) {
        self.next = self.min;
    }
}

/// What every request to this target shares, built once per sender task.
struct RequestTemplate {
    host: String,
    port: u16,
    uri: http::Uri,
    authority: HeaderValue,
    token: Option<HeaderValue>,
}

impl RequestTemplate {
    fn new(target: &PushTarget) -> Result<Self, String> {
        let parsed = parse_url(&target.url)?;
        let uri = parsed.path_and_query.parse().map_err(|_| "invalid path".to_owned())?;
        let authority = HeaderValue::from_str(&parsed.authority).map_err(|_| "invalid host".to_owned())?;
        let token = match &target.token {
            Some(token) => Some(
                HeaderValue::from_str(token)
                    .map_err(|_| "the token is not a valid header value".to_owned())?,
            ),
            None => None,
        };
        Ok(RequestTemplate { host: parsed.host, port: parsed.port, uri, authority, token })
    }

    fn request(&self, body: Bytes) -> http::Request<Full<Bytes>> {
        let content_length = HeaderValue::from(body.len());
        let mut request = http::Request::new(Full::new(body));
        *request.method_mut() = http::Method::POST;
        *request.uri_mut() = self.uri.clone();
        let headers = request.headers_mut();
        headers.insert(HOST, self.authority.clone());
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        headers.insert(CONTENT_LENGTH, content_length);
        if let Some(token) = &self.token {
            headers.insert(PUSH_TOKEN_HEADER, token.clone());
        }
        request
    }

    /// The receiver as logs name it: host and port, never the path (it may carry a secret).
    fn authority_text(&self) -> &str {
        self.authority.to_str().unwrap_or("?")
    }
}

/// A kept-alive client connection. Dropping it cancels the driver task, which closes the socket.
struct Connection {
    send_request: SendRequest<Full<Bytes>>,
    _driver: glommio::Task<()>,
}

impl Connection {
    async fn open(template: &RequestTemplate) -> Result<Connection, AttemptError> {
        let addresses = resolve(&template.host, template.port).await.map_err(AttemptError::Resolve)?;
        let mut last_error = io::Error::new(io::ErrorKind::NotFound, "the host resolved to no address");
        for address in addresses {
            match glommio::net::TcpStream::connect(address).await {
                Ok(stream) => {
                    stream.set_nodelay(true).map_err(|error| AttemptError::Connect(error.into()))?;
                    let (send_request, connection) =
                        hyper::client::conn::http1::handshake(HyperIo(stream)).await?;
                    let driver = glommio::spawn_local(async move {
                        if let Err(error) = connection.await {
                            tracing::debug!(%error, "push connection ended with an error");
                        }
                    });
                    return Ok(Connection { send_request, _driver: driver });
                }
                Err(error) => last_error = error.into(),
            }
        }
        Err(AttemptError::Connect(last_error))
    }
}

/// IP literals resolve at once; host names on glommio's blocking thread pool, so a slow DNS
/// server never stalls the shard. (A lookup cut short by the request timeout finishes on that
/// thread and its small result is leaked by glommio's `spawn_blocking`.)
async fn resolve(host: &str, port: u16) -> io::Result<Vec<SocketAddr>> {
    if let Ok(ip) = host.parse::<IpAddr>() {
        return Ok(vec![SocketAddr::new(ip, port)]);
    }
    let host = host.to_owned();
    glommio::executor()
        .spawn_blocking(move || {
            (host.as_str(), port)
                .to_socket_addrs()
                .map(|addresses| addresses.take(RESOLVED_ADDRESSES_MAX).collect())
        })
        .await
}

/// The sender task of `target`; `enqueue` spawns it with the target's slot already registered.
pub(super) async fn run(pusher: Weak<Pusher>, target: Rc<PushTarget>) {
    let template = match RequestTemplate::new(&target) {
        Ok(template) => template,
        Err(reason) => {
            if let Some(pusher) = pusher.upgrade() {
                let dropped = pusher.discard_target(&target);
                tracing::warn!(%reason, dropped, "dropping the pushes of a target that cannot be reached");
            }
            return;
        }
    };
    let Some(config) = pusher.upgrade().map(|pusher| pusher.config().clone()) else { return };
    let mut backoff = Backoff::new(config.backoff_min, config.backoff_max);
    let mut connection: Option<Connection> = None;
    let mut failures_in_a_row: u64 = 0;
    while let Some(push) = next_push(&pusher, &target).await {
        let attempt = deliver(&mut connection, &template, push.body.clone());
        let timeout = async {
            glommio::timer::sleep(config.request_timeout).await;
            Err(AttemptError::Timeout)
        };
        let outcome = future::or(attempt, timeout).await;
        let Some(live_pusher) = pusher.upgrade().filter(|pusher| !pusher.is_closed()) else { return };
        match outcome {
            Ok(()) => {
                live_pusher.complete(&target, push.sequence);
                if failures_in_a_row > 0 {
                    tracing::info!(receiver = %template.authority_text(), failures_in_a_row, "push receiver is back");
                }
                failures_in_a_row = 0;
                backoff.reset();
            }
            Err(error) => {
                connection = None;
                live_pusher.count_failed_attempt();
                drop(live_pusher);
                if failures_in_a_row == 0 {
                    tracing::warn!(receiver = %template.authority_text(), %error, "push failed; retrying with back-off");
                } else {
                    tracing::debug!(receiver = %template.authority_text(), %error, failures_in_a_row, "push failed again");
                }
                failures_in_a_row += 1;
                glommio::timer::sleep(backoff.next_delay()).await;
            }
        }
    }
}

/// The target's head push, waiting for one when the queue is empty. `None`: stop (closed, the
/// pusher is gone, or idle for [`SENDER_IDLE_EXIT`] — the slot is then given up).
async fn next_push(pusher: &Weak<Pusher>, target: &PushTarget) -> Option<QueuedPush> {
    loop {
        let wait_for_push = future::poll_fn(|cx| match pusher.upgrade() {
            Some(pusher) => pusher.poll_next_push(target, cx).map(Some),
            None => std::task::Poll::Ready(Some(None)),
        });
        let idle = async {
            glommio::timer::sleep(SENDER_IDLE_EXIT).await;
            None
        };
        match future::or(wait_for_push, idle).await {
            Some(next) => return next,
            None => {
                let pusher = pusher.upgrade()?;
                if pusher.retire_if_idle(target) {
                    return None;
                }
            }
        }
    }
}

/// One attempt. A kept-alive connection that turns out closed or broken (the receiver may drop
/// idle connections at any time, and a request written into a socket closing under it fails
/// with a reset or an incomplete answer) is replaced once at no cost: such a failure says
/// nothing about the receiver. Delivery is at least once — a push whose answer was lost is
/// sent again.
async fn deliver(
    connection: &mut Option<Connection>,
    template: &RequestTemplate,
    body: Bytes,
) -> Result<(), AttemptError> {
    if connection.as_ref().is_some_and(|open| open.send_request.is_closed()) {
        *connection = None;
    }
    let reused = connection.is_some();
    match exchange(connection, template, body.clone()).await {
        Err(AttemptError::Http(_)) if reused => {
            *connection = None;
            exchange(connection, template, body).await
        }
        outcome => outcome,
    }
}

async fn exchange(
    connection: &mut Option<Connection>,
    template: &RequestTemplate,
    body: Bytes,
) -> Result<(), AttemptError> {
    let open = match connection {
        Some(open) => open,
        None => connection.insert(Connection::open(template).await?),
    };
    open.send_request.ready().await?;
    let response = open.send_request.send_request(template.request(body)).await?;
    let status = response.status();
    // Read the answer to its end so the connection can carry the next push.
    if Limited::new(response.into_body(), RESPONSE_BODY_BYTES_MAX).collect().await.is_err() {
        *connection = None;
    }
    if status.is_success() {
        Ok(())
    } else {
        Err(AttemptError::Status(status))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_its_max_and_resets() {
        let mut backoff = Backoff::new(Duration::from_millis(100), Duration::from_millis(500));
        let delays: Vec<u128> = (0..5).map(|_| backoff.next_delay().as_millis()).collect();
        assert_eq!(delays, [100, 200, 400, 500, 500]);
        backoff.reset();
        assert_eq!(backoff.next_delay(), Duration::from_millis(100));
    }

    #[test]
    fn backoff_with_min_above_max_waits_max() {
        let mut backoff = Backoff::new(Duration::from_secs(10), Duration::from_secs(1));
        assert_eq!(backoff.next_delay(), Duration::from_secs(1));
        assert_eq!(backoff.next_delay(), Duration::from_secs(1));
    }

    #[test]
    fn backoff_never_overflows() {
        let mut backoff = Backoff::new(Duration::MAX / 2 + Duration::from_secs(1), Duration::MAX);
        backoff.next_delay();
        assert_eq!(backoff.next_delay(), Duration::MAX);
    }

    #[test]
    fn requests_carry_host_type_length_and_token() {
        let target = PushTarget { url: "http://127.0.0.1:9000/cb?x=1".into(), token: Some("abc123".into()) };
        let request = RequestTemplate::new(&target).unwrap().request(Bytes::from_static(b"{}"));
        assert_eq!(request.method(), http::Method::POST);
        assert_eq!(request.uri(), "/cb?x=1");
        let headers = request.headers();
        assert_eq!(headers[HOST], "127.0.0.1:9000");
        assert_eq!(headers[CONTENT_TYPE], "application/json");
        assert_eq!(headers[CONTENT_LENGTH], "2");
        assert_eq!(headers[PUSH_TOKEN_HEADER], "abc123");
        let untokened = PushTarget { token: None, ..target };
        let request = RequestTemplate::new(&untokened).unwrap().request(Bytes::new());
        assert!(!request.headers().contains_key(PUSH_TOKEN_HEADER));
    }

    #[test]
    fn a_token_that_is_no_header_value_makes_the_target_unusable() {
        let target = PushTarget { url: "http://app/".into(), token: Some("a\r\nb".into()) };
        assert!(RequestTemplate::new(&target).is_err());
    }
}
