//! A local HTTP receiver for push notifications: a std `TcpListener` served by a thread (one more
//! per connection), HTTP/1.1 keep-alive aware (the engine reuses its connections), answering
//! every request `200 OK` and keeping what it got so a test can wait for "N pushes before a
//! deadline".

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

/// One request the receiver got.
#[derive(Debug, Clone)]
pub struct Push {
    pub method: String,
    pub target: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Push {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!("push body is not JSON ({e}): {}", String::from_utf8_lossy(&self.body))
        })
    }
}

type Shared = Arc<(Mutex<Vec<Push>>, Condvar)>;

/// A running receiver; its threads live as long as the test process.
#[derive(Debug, Clone)]
pub struct Receiver {
    pub port: u16,
    pushes: Shared,
}

/// A port nothing listens on (bound, learnt and released).
pub fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("binding a probe port");
    listener.local_addr().unwrap().port()
}

impl Receiver {
    /// A receiver on a fresh port.
    pub fn start() -> Receiver {
        Receiver::start_on(0)
    }

    /// A receiver on `127.0.0.1:port` (0: any free port).
    pub fn start_on(port: u16) -> Receiver {
        let listener = TcpListener::bind(("127.0.0.1", port)).expect("binding the push receiver");
        let port = listener.local_addr().unwrap().port();
        let pushes: Shared = Arc::new((Mutex::new(Vec::new()), Condvar::new()));
        let shared = pushes.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming().map_while(Result::ok) {
                let shared = shared.clone();
                std::thread::spawn(move || serve(stream, &shared));
            }
        });
        Receiver { port, pushes }
    }

    /// `http://127.0.0.1:{port}/push`.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}/push", self.port)
    }

    /// Everything received so far.
    pub fn pushes(&self) -> Vec<Push> {
        self.pushes.0.lock().unwrap().clone()
    }

    /// Waits until at least `count` requests came (panics, showing them, at `timeout`) and
    /// returns all received so far.
    pub fn wait_for(&self, count: usize, timeout: Duration) -> Vec<Push> {
        self.wait_until(timeout, &format!("{count} pushes"), |pushes| pushes.len() >= count)
    }

    /// Waits until `done(received)` holds (panics at `timeout`, naming `what`) and returns all
    /// received so far.
    pub fn wait_until(&self, timeout: Duration, what: &str, done: impl Fn(&[Push]) -> bool) -> Vec<Push> {
        let deadline = Instant::now() + timeout;
        let (lock, condvar) = &*self.pushes;
        let mut pushes = lock.lock().unwrap();
        loop {
            if done(&pushes) {
                return pushes.clone();
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                let bodies: Vec<String> =
                    pushes.iter().map(|p| String::from_utf8_lossy(&p.body).into()).collect();
                panic!("waited {timeout:?} for {what}; got {}:\n{}", pushes.len(), bodies.join("\n"));
            }
            pushes = condvar.wait_timeout(pushes, left).unwrap().0;
        }
    }
}

/// Serves one connection: request after request until the peer closes it.
fn serve(mut stream: TcpStream, shared: &Shared) {
    let mut buffer = Vec::new();
    let mut chunk = [0u8; 8192];
    loop {
        match parse_request(&buffer) {
            Some((push, used)) => {
                buffer.drain(..used);
                if stream.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n").is_err() {
                    return;
                }
                let close = push.header("connection").is_some_and(|v| v.eq_ignore_ascii_case("close"));
                let (lock, condvar) = &**shared;
                lock.lock().unwrap().push(push);
                condvar.notify_all();
                if close {
                    return;
                }
            }
            None => match stream.read(&mut chunk) {
                Ok(0) | Err(_) => return,
                Ok(read) => buffer.extend_from_slice(&chunk[..read]),
            },
        }
    }
}

/// One complete request at the start of `buffer` and the bytes it takes, or `None` if more
/// bytes are needed. Bodies by `Content-Length` or chunked.
fn parse_request(buffer: &[u8]) -> Option<(Push, usize)> {
    let head_end = buffer.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = String::from_utf8_lossy(&buffer[..head_end]).into_owned();
    let mut lines = head.split("\r\n");
    let mut request_line = lines.next().unwrap_or_default().split_whitespace();
    let method = request_line.next().unwrap_or_default().to_owned();
    let target = request_line.next().unwrap_or_default().to_owned();
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_owned(), v.trim().to_owned()))
        .collect();
    let find =
        |name: &str| headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.clone());
    let body_start = head_end + 4;
    let chunked = find("transfer-encoding").is_some_and(|v| v.eq_ignore_ascii_case("chunked"));
    let (body, end) = if chunked {
        dechunk(&buffer[body_start..]).map(|(body, used)| (body, body_start + used))?
    } else {
        let length: usize = find("content-length").map_or(0, |v| v.parse().expect("numeric Content-Length"));
        if buffer.len() < body_start + length {
            return None;
        }
        (buffer[body_start..body_start + length].to_vec(), body_start + length)
    };
    Some((Push { method, target, headers, body }, end))
}

fn dechunk(mut data: &[u8]) -> Option<(Vec<u8>, usize)> {
    let total = data.len();
    let mut body = Vec::new();
    loop {
        let line_end = data.windows(2).position(|w| w == b"\r\n")?;
        let size_text = String::from_utf8_lossy(&data[..line_end]);
        let size = usize::from_str_radix(size_text.split(';').next().unwrap_or("").trim(), 16)
            .expect("a chunk size");
        data = &data[line_end + 2..];
        if size == 0 {
            // Trailers (none expected) end with an empty line.
            let trailer_end = data.windows(2).position(|w| w == b"\r\n")?;
            data = &data[trailer_end + 2..];
            return Some((body, total - data.len()));
        }
        if data.len() < size + 2 {
            return None;
        }
        body.extend_from_slice(&data[..size]);
        data = &data[size + 2..];
    }
}
