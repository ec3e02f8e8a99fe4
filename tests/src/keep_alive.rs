//! A keep-alive HTTP/1.1 client: one persistent connection, one request after another, signed
//! like [`Client`]'s. Unlike [`Client`] it never panics on a broken connection: a call returns
//! `Err` (and the next call connects again), so load that must outlive a crashing engine — and
//! hold connections open at the crash — can record what was and was not acknowledged.
//!
//! Only `Content-Length` bodies are read (what the engine sends); a chunked answer is an error.

use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use crate::client::{parse_response, Client, HttpResponse};

/// How long a call waits for its answer (a CreateMessage waits up to 2 s for a PUBACK).
const ANSWER_TIMEOUT: Duration = Duration::from_secs(30);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// The largest response head read.
const HEAD_BYTES_MAX: usize = 64 * 1024;

#[derive(Debug)]
pub struct KeepAliveClient {
    client: Client,
    stream: Option<TcpStream>,
}

impl KeepAliveClient {
    pub fn new(client: Client) -> KeepAliveClient {
        KeepAliveClient { client, stream: None }
    }

    /// Whether a connection is open (it is opened by the first call).
    pub fn is_connected(&self) -> bool {
        self.stream.is_some()
    }

    pub fn get(&mut self, path: &str) -> io::Result<HttpResponse> {
        self.call("GET", path, b"")
    }

    pub fn post(&mut self, path: &str, body: &serde_json::Value) -> io::Result<HttpResponse> {
        self.call("POST", path, body.to_string().as_bytes())
    }

    /// `path` is relative to `/v5/iot/{project_id}/`. On any I/O or framing error the
    /// connection is dropped and the error returned: the call may or may not have been done.
    pub fn call(&mut self, method: &str, path: &str, body: &[u8]) -> io::Result<HttpResponse> {
        let result = self.call_on_connection(method, path, body);
        match &result {
            Ok(response)
                if !response.header("connection").is_some_and(|v| v.eq_ignore_ascii_case("close")) => {}
            _ => self.stream = None,
        }
        result
    }

    fn call_on_connection(&mut self, method: &str, path: &str, body: &[u8]) -> io::Result<HttpResponse> {
        if self.stream.is_none() {
            let stream = TcpStream::connect_timeout(&self.client.address, CONNECT_TIMEOUT)?;
            stream.set_nodelay(true)?;
            stream.set_read_timeout(Some(ANSWER_TIMEOUT))?;
            self.stream = Some(stream);
        }
        let target = format!("/v5/iot/{}/{}", self.client.project_id, path.trim_start_matches('/'));
        let mut request = format!("{method} {target} HTTP/1.1\r\n");
        for (name, value) in self.client.signed_headers(method, &target, body, &[]) {
            request.push_str(&format!("{name}: {value}\r\n"));
        }
        request.push_str(&format!("Content-Length: {}\r\n\r\n", body.len()));
        let stream = self.stream.as_mut().expect("connected above");
        stream.write_all(request.as_bytes())?;
        stream.write_all(body)?;
        read_response(stream)
    }
}

/// Reads exactly one response (head, then `Content-Length` bytes) from a kept-alive stream.
fn read_response(stream: &mut TcpStream) -> io::Result<HttpResponse> {
    let mut raw = Vec::with_capacity(1024);
    let mut chunk = [0u8; 8192];
    let head_end = loop {
        if let Some(split) = raw.windows(4).position(|w| w == b"\r\n\r\n") {
            break split + 4;
        }
        if raw.len() > HEAD_BYTES_MAX {
            return Err(io::Error::new(io::ErrorKind::InvalidData, "response head too long"));
        }
        match stream.read(&mut chunk)? {
            0 => return Err(io::ErrorKind::UnexpectedEof.into()),
            read => raw.extend_from_slice(&chunk[..read]),
        }
    };
    let head = String::from_utf8_lossy(&raw[..head_end]).to_ascii_lowercase();
    if head.contains("transfer-encoding: chunked") {
        return Err(io::Error::new(io::ErrorKind::InvalidData, "a chunked response"));
    }
    let content_length: usize = head
        .lines()
        .find_map(|line| line.strip_prefix("content-length:"))
        .map_or(Ok(0), |value| value.trim().parse())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidData, "a bad content-length"))?;
    while raw.len() < head_end + content_length {
        match stream.read(&mut chunk)? {
            0 => return Err(io::ErrorKind::UnexpectedEof.into()),
            read => raw.extend_from_slice(&chunk[..read]),
        }
    }
    if raw.len() > head_end + content_length {
        return Err(io::Error::new(io::ErrorKind::InvalidData, "bytes after the response"));
    }
    Ok(parse_response(&raw))
}
