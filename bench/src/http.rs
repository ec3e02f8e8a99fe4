//! A minimal HTTP/1.1 keep-alive client: one request in flight per connection, answers framed
//! by `Content-Length` (what the engine's front desk always sends). Small on purpose: the bench
//! should spend its CPU on the load, not on a general client. Over TCP or, with `--tls`, over
//! TLS (HTTPS); a reconnect after the server closed the connection is a new full handshake.

use tokio::io::AsyncReadExt;

use crate::transport::{Connection, Endpoint};

/// The largest response head (status line + headers) accepted.
const HEAD_BYTES_MAX: usize = 16 * 1024;
/// The largest response body accepted.
const BODY_BYTES_MAX: usize = 4 * 1024 * 1024;
const READ_CHUNK_BYTES: usize = 8 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    #[error("I/O: {0}")]
    Io(#[from] std::io::Error),
    #[error("malformed response: {0}")]
    Malformed(&'static str),
    #[error("unsupported response: {0}")]
    Unsupported(&'static str),
    #[error("the server closed the connection before the response was complete")]
    Closed,
}

/// What the status line and headers say.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ResponseHead {
    pub status: u16,
    pub content_length: usize,
    /// Bytes of status line and headers, including the blank line.
    pub head_bytes: usize,
    /// `Connection: close`: the server will not take another request on this connection.
    pub closes: bool,
}

/// Parses a response head from the start of `buffer`; `Ok(None)` while it is incomplete.
pub fn parse_response_head(buffer: &[u8]) -> Result<Option<ResponseHead>, HttpError> {
    let Some(end) = buffer.windows(4).position(|window| window == b"\r\n\r\n") else {
        return if buffer.len() > HEAD_BYTES_MAX {
            Err(HttpError::Malformed("response head too large"))
        } else {
            Ok(None)
        };
    };
    let head = std::str::from_utf8(&buffer[..end]).map_err(|_| HttpError::Malformed("head is not UTF-8"))?;
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let mut parts = status_line.splitn(3, ' ');
    let version = parts.next().unwrap_or_default();
    if !version.starts_with("HTTP/1.") {
        return Err(HttpError::Malformed("not an HTTP/1.x status line"));
    }
    let status = parts
        .next()
        .and_then(|code| code.parse::<u16>().ok())
        .filter(|code| (100..1000).contains(code))
        .ok_or(HttpError::Malformed("bad status code"))?;
    let mut content_length = None;
    let mut closes = version == "HTTP/1.0";
    for line in lines {
        let (name, value) = line.split_once(':').ok_or(HttpError::Malformed("header without a colon"))?;
        let value = value.trim();
        if name.eq_ignore_ascii_case("content-length") {
            let length = value.parse::<usize>().map_err(|_| HttpError::Malformed("bad Content-Length"))?;
            if content_length.replace(length).is_some_and(|earlier| earlier != length) {
                return Err(HttpError::Malformed("conflicting Content-Length headers"));
            }
        } else if name.eq_ignore_ascii_case("transfer-encoding") && !value.eq_ignore_ascii_case("identity") {
            return Err(HttpError::Unsupported("Transfer-Encoding"));
        } else if name.eq_ignore_ascii_case("connection") {
            closes = value.eq_ignore_ascii_case("close");
        }
    }
    let content_length = match (content_length, status) {
        (Some(length), _) => length,
        (None, 204 | 304) | (None, 100..=199) => 0,
        (None, _) => return Err(HttpError::Unsupported("a body without Content-Length")),
    };
    if content_length > BODY_BYTES_MAX {
        return Err(HttpError::Malformed("body too large"));
    }
    Ok(Some(ResponseHead { status, content_length, head_bytes: end + 4, closes }))
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpResponse {
    pub status: u16,
    pub body: Vec<u8>,
}

impl HttpResponse {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// One keep-alive connection; reconnects transparently after the server closed it.
#[derive(Debug)]
pub struct HttpConnection {
    endpoint: Endpoint,
    stream: Option<Connection>,
    /// Bytes read but not yet consumed by a response.
    pending: Vec<u8>,
    request: Vec<u8>,
}

impl HttpConnection {
    /// Plain HTTP, or HTTPS when `endpoint` is TLS.
    pub async fn connect(endpoint: &Endpoint) -> Result<HttpConnection, HttpError> {
        let mut connection = HttpConnection {
            endpoint: endpoint.clone(),
            stream: None,
            pending: Vec::new(),
            request: Vec::with_capacity(512),
        };
        connection.ensure_connected().await?;
        Ok(connection)
    }

    async fn ensure_connected(&mut self) -> Result<&mut Connection, HttpError> {
        if self.stream.is_none() {
            let stream = self.endpoint.connect().await?;
            self.pending.clear();
            self.stream = Some(stream);
        }
        Ok(self.stream.as_mut().expect("connected just above"))
    }

    /// Sends one request and reads its whole response. On any error the connection is dropped
    /// so the next request starts on a fresh one.
    pub async fn request(
        &mut self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> Result<HttpResponse, HttpError> {
        let result = self.exchange(method, path, headers, body).await;
        if result.is_err() {
            self.stream = None;
        }
        result
    }

    async fn exchange(
        &mut self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> Result<HttpResponse, HttpError> {
        use std::io::Write as _;
        self.request.clear();
        write!(self.request, "{method} {path} HTTP/1.1\r\nHost: {}\r\n", self.endpoint.address)?;
        for (name, value) in headers {
            write!(self.request, "{name}: {value}\r\n")?;
        }
        write!(self.request, "Content-Length: {}\r\n\r\n", body.len())?;
        self.request.extend_from_slice(body);
        let request = std::mem::take(&mut self.request);
        let written = self.ensure_connected().await?.send(&request).await;
        self.request = request;
        written?;

        let head = loop {
            if let Some(head) = parse_response_head(&self.pending)? {
                break head;
            }
            self.read_more().await?;
        };
        let total = head.head_bytes + head.content_length;
        while self.pending.len() < total {
            self.read_more().await?;
        }
        let body = self.pending[head.head_bytes..total].to_vec();
        self.pending.drain(..total);
        if head.closes {
            self.stream = None;
        }
        Ok(HttpResponse { status: head.status, body })
    }

    async fn read_more(&mut self) -> Result<(), HttpError> {
        let stream = self.stream.as_mut().ok_or(HttpError::Closed)?;
        let filled = self.pending.len();
        self.pending.resize(filled + READ_CHUNK_BYTES, 0);
        let read = stream.read(&mut self.pending[filled..]).await;
        let read = match read {
            Ok(read) => read,
            Err(error) => {
                self.pending.truncate(filled);
                return Err(error.into());
            }
        };
        self.pending.truncate(filled + read);
        if read == 0 {
            return Err(HttpError::Closed);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_incomplete_head_asks_for_more() {
        assert_eq!(parse_response_head(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n").unwrap(), None);
    }

    #[test]
    fn a_complete_head_gives_status_length_and_size() {
        let bytes = b"HTTP/1.1 201 Created\r\ncontent-type: application/json\r\nCONTENT-LENGTH: 13\r\n\r\n{\"ok\":true}..";
        let head = parse_response_head(bytes).unwrap().unwrap();
        assert_eq!(head, ResponseHead { status: 201, content_length: 13, head_bytes: 76, closes: false });
        assert_eq!(&bytes[head.head_bytes..], b"{\"ok\":true}..");
    }

    #[test]
    fn connection_close_and_http_1_0_mean_no_reuse() {
        let close =
            parse_response_head(b"HTTP/1.1 503 Busy\r\nConnection: close\r\nContent-Length: 0\r\n\r\n");
        assert!(close.unwrap().unwrap().closes);
        let old = parse_response_head(b"HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n");
        assert!(old.unwrap().unwrap().closes);
    }

    #[test]
    fn no_content_needs_no_length() {
        let head = parse_response_head(b"HTTP/1.1 204 No Content\r\n\r\n").unwrap().unwrap();
        assert_eq!(head.content_length, 0);
    }

    #[test]
    fn framings_the_client_cannot_follow_are_refused() {
        let chunked = parse_response_head(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n");
        assert!(matches!(chunked, Err(HttpError::Unsupported(_))));
        let no_length = parse_response_head(b"HTTP/1.1 200 OK\r\n\r\n");
        assert!(matches!(no_length, Err(HttpError::Unsupported(_))));
    }

    #[test]
    fn malformed_heads_are_errors() {
        for bytes in [
            &b"SMTP 200 OK\r\n\r\n"[..],
            b"HTTP/1.1 abc OK\r\nContent-Length: 0\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nno colon here\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
        ] {
            assert!(matches!(parse_response_head(bytes), Err(HttpError::Malformed(_))), "{bytes:?}");
        }
    }

    #[test]
    fn an_endless_head_is_refused() {
        let endless = vec![b'a'; HEAD_BYTES_MAX + 1];
        assert!(matches!(parse_response_head(&endless), Err(HttpError::Malformed(_))));
    }
}
