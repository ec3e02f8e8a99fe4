//! Push notifications end to end: a `Pusher` on a glommio executor POSTs to tiny HTTP
//! receivers written with `std::net` on their own threads.
//!
//! Each test waits on an observable event (a counter, a received request) with a deadline,
//! never on a fixed sleep.

use std::future::Future;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use glommio::{LocalExecutorBuilder, Placement};
use shards::push::{PushConfig, PushStats, PushTarget, Pusher};

const DEADLINE: Duration = Duration::from_secs(10);

/// Runs `make()` on a fresh single-threaded glommio executor; a panic inside fails the test.
fn on_executor<F, Fut>(make: F)
where
    F: FnOnce() -> Fut + Send + 'static,
    Fut: Future<Output = ()> + 'static,
{
    LocalExecutorBuilder::new(Placement::Unbound)
        .io_memory(1 << 20)
        .spawn(make)
        .expect("executor starts")
        .join()
        .expect("executor body ran to the end");
}

/// Small back-off so retries happen within milliseconds.
fn fast_config() -> PushConfig {
    PushConfig {
        outbox_max: 100,
        request_timeout: Duration::from_secs(5),
        backoff_min: Duration::from_millis(10),
        backoff_max: Duration::from_millis(50),
    }
}

/// Polls `condition` until it holds or the deadline passes; returns whether it held.
async fn wait_until(mut condition: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + DEADLINE;
    while !condition() {
        if Instant::now() > deadline {
            return false;
        }
        glommio::timer::sleep(Duration::from_millis(2)).await;
    }
    true
}

/// A port nothing listens on (bound, then released).
fn closed_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

fn target(port: u16, path: &str, token: Option<&str>) -> PushTarget {
    PushTarget { url: format!("http://127.0.0.1:{port}{path}"), token: token.map(Into::into) }
}

#[derive(Debug, Clone)]
struct ReceivedRequest {
    connection: usize,
    request_line: String,
    /// Header names lower-cased, in arrival order.
    headers: Vec<(String, String)>,
    body: Vec<u8>,
    status: u16,
}

impl ReceivedRequest {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(key, _)| key == name).map(|(_, value)| value.as_str())
    }
}

/// What a receiver does with one request.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Reaction {
    Answer(u16),
    /// Close the connection without answering.
    HangUp,
    /// Keep the connection open and never answer.
    Ignore,
}

/// How a receiver behaves.
#[derive(Debug, Clone, Default)]
struct Behaviour {
    /// Reactions to the first requests (in arrival order, all connections); `Answer(200)`
    /// afterwards.
    first_reactions: Vec<Reaction>,
    /// Close the connection after each answer, without saying so.
    close_after_answer: bool,
}

impl Behaviour {
    fn reacting(first_reactions: &[Reaction]) -> Behaviour {
        Behaviour { first_reactions: first_reactions.to_vec(), close_after_answer: false }
    }
}

/// A minimal HTTP/1.1 receiver: one thread per connection, keep-alive, `Content-Length`
/// bodies only. Records every request it reads.
#[derive(Debug, Clone)]
struct Receiver {
    requests: Arc<Mutex<Vec<ReceivedRequest>>>,
}

impl Receiver {
    fn start(listener: TcpListener, behaviour: Behaviour) -> Receiver {
        let receiver = Receiver { requests: Arc::default() };
        let requests = receiver.requests.clone();
        std::thread::spawn(move || {
            let behaviour = Arc::new(behaviour);
            let connections = AtomicUsize::new(0);
            for stream in listener.incoming() {
                let Ok(stream) = stream else { return };
                let connection = connections.fetch_add(1, Ordering::Relaxed);
                let (requests, behaviour) = (requests.clone(), behaviour.clone());
                std::thread::spawn(move || serve_connection(stream, connection, &requests, &behaviour));
            }
        });
        receiver
    }

    fn on_port(port: u16, behaviour: Behaviour) -> Receiver {
        Receiver::start(TcpListener::bind(("127.0.0.1", port)).expect("the port is free again"), behaviour)
    }

    fn requests(&self) -> Vec<ReceivedRequest> {
        self.requests.lock().unwrap().clone()
    }

    fn bodies(&self) -> Vec<String> {
        self.requests().iter().map(|request| String::from_utf8_lossy(&request.body).into_owned()).collect()
    }

    fn accepted_bodies(&self) -> Vec<String> {
        self.requests()
            .iter()
            .filter(|request| request.status == 200)
            .map(|request| String::from_utf8_lossy(&request.body).into_owned())
            .collect()
    }
}

fn serve_connection(
    stream: TcpStream,
    connection: usize,
    requests: &Mutex<Vec<ReceivedRequest>>,
    behaviour: &Behaviour,
) {
    let mut writer = stream.try_clone().unwrap();
    let mut reader = BufReader::new(stream);
    while let Some((request_line, headers, body)) = read_request(&mut reader) {
        let reaction = {
            let mut requests = requests.lock().unwrap();
            let reaction =
                behaviour.first_reactions.get(requests.len()).copied().unwrap_or(Reaction::Answer(200));
            let status = match reaction {
                Reaction::Answer(status) => status,
                Reaction::HangUp | Reaction::Ignore => 0,
            };
            requests.push(ReceivedRequest { connection, request_line, headers, body, status });
            reaction
        };
        match reaction {
            Reaction::Answer(status) => {
                let answer = format!("HTTP/1.1 {status} Whatever\r\nContent-Length: 2\r\n\r\nok");
                if writer.write_all(answer.as_bytes()).is_err() || behaviour.close_after_answer {
                    return;
                }
            }
            Reaction::HangUp => return,
            Reaction::Ignore => {}
        }
    }
}

type Request = (String, Vec<(String, String)>, Vec<u8>);

fn read_request(reader: &mut BufReader<TcpStream>) -> Option<Request> {
    let mut request_line = String::new();
    if reader.read_line(&mut request_line).ok()? == 0 {
        return None;
    }
    let mut headers = Vec::new();
    loop {
        let mut line = String::new();
        reader.read_line(&mut line).ok()?;
        let line = line.trim_end();
        if line.is_empty() {
            break;
        }
        let (name, value) = line.split_once(':')?;
        headers.push((name.trim().to_ascii_lowercase(), value.trim().to_owned()));
    }
    let length = headers.iter().find(|(name, _)| name == "content-length")?.1.parse().ok()?;
    let mut body = vec![0; length];
    reader.read_exact(&mut body).ok()?;
    Some((request_line.trim_end().to_owned(), headers, body))
}

#[test]
fn pushes_arrive_in_order_with_headers_over_one_kept_alive_connection() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let receiver = Receiver::start(listener, Behaviour::default());
    let seen = receiver.clone();
    on_executor(move || async move {
        let pusher = Pusher::new(fast_config());
        let target = target(port, "/cb/status?app=1", Some("abc123"));
        for n in 1..=3 {
            pusher.enqueue(&target, format!(r#"{{"n":{n}}}"#).into_bytes());
        }
        assert!(wait_until(|| pusher.stats().sent == 3).await, "{:?}", pusher.stats());
        assert_eq!(pusher.stats(), PushStats { sent: 3, failed_attempts: 0, dropped: 0, queued: 0 });
    });
    let requests = seen.requests();
    assert_eq!(seen.bodies(), [r#"{"n":1}"#, r#"{"n":2}"#, r#"{"n":3}"#]);
    for request in &requests {
        assert_eq!(request.request_line, "POST /cb/status?app=1 HTTP/1.1");
        assert_eq!(request.header("host"), Some(format!("127.0.0.1:{port}").as_str()));
        assert_eq!(request.header("content-type"), Some("application/json"));
        assert_eq!(request.header("content-length"), Some("7"));
        let length_headers = request.headers.iter().filter(|(name, _)| name == "content-length").count();
        assert_eq!(length_headers, 1);
        assert_eq!(request.header("x-push-token"), Some("abc123"));
        assert_eq!(request.connection, 0, "every push reuses the first connection");
    }
}

#[test]
fn a_failing_receiver_gets_the_same_push_again_and_order_is_kept() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let receiver =
        Receiver::start(listener, Behaviour::reacting(&[Reaction::Answer(500), Reaction::Answer(503)]));
    let seen = receiver.clone();
    on_executor(move || async move {
        let pusher = Pusher::new(fast_config());
        let target = target(port, "/cb", None);
        pusher.enqueue(&target, b"first".to_vec());
        pusher.enqueue(&target, b"second".to_vec());
        assert!(wait_until(|| pusher.stats().sent == 2).await, "{:?}", pusher.stats());
        assert_eq!(pusher.stats(), PushStats { sent: 2, failed_attempts: 2, dropped: 0, queued: 0 });
    });
    assert_eq!(seen.bodies(), ["first", "first", "first", "second"]);
    assert_eq!(seen.accepted_bodies(), ["first", "second"]);
    assert!(seen.requests().iter().all(|request| request.header("x-push-token").is_none()));
}

#[test]
fn pushes_queued_while_the_receiver_is_down_arrive_once_it_is_up() {
    let port = closed_port();
    let receiver: Arc<Mutex<Option<Receiver>>> = Arc::default();
    let started = receiver.clone();
    on_executor(move || async move {
        let pusher = Pusher::new(fast_config());
        let target = target(port, "/cb", None);
        for body in ["a", "b", "c"] {
            pusher.enqueue(&target, body.into());
        }
        assert!(wait_until(|| pusher.stats().failed_attempts >= 2).await, "{:?}", pusher.stats());
        assert_eq!(pusher.stats().queued, 3);
        *started.lock().unwrap() = Some(Receiver::on_port(port, Behaviour::default()));
        assert!(wait_until(|| pusher.stats().sent == 3).await, "{:?}", pusher.stats());
        assert_eq!(pusher.stats().queued, 0);
    });
    let receiver = receiver.lock().unwrap().clone().unwrap();
    assert_eq!(receiver.bodies(), ["a", "b", "c"]);
}

#[test]
fn a_full_outbox_drops_the_oldest_pushes_and_keeps_the_newest() {
    let port = closed_port();
    let receiver: Arc<Mutex<Option<Receiver>>> = Arc::default();
    let started = receiver.clone();
    on_executor(move || async move {
        let pusher = Pusher::new(PushConfig { outbox_max: 3, ..fast_config() });
        let target = target(port, "/cb", None);
        for n in 1..=5 {
            pusher.enqueue(&target, n.to_string().into_bytes());
        }
        let stats = pusher.stats();
        assert_eq!((stats.dropped, stats.queued, stats.sent), (2, 3, 0));
        assert!(wait_until(|| pusher.stats().failed_attempts >= 1).await, "{:?}", pusher.stats());
        *started.lock().unwrap() = Some(Receiver::on_port(port, Behaviour::default()));
        assert!(wait_until(|| pusher.stats().sent == 3).await, "{:?}", pusher.stats());
        assert_eq!(pusher.stats().dropped, 2);
    });
    let receiver = receiver.lock().unwrap().clone().unwrap();
    assert_eq!(receiver.bodies(), ["3", "4", "5"]);
}

#[test]
fn a_dead_or_silent_receiver_does_not_delay_a_live_one() {
    let live_listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let live_port = live_listener.local_addr().unwrap().port();
    let live = Receiver::start(live_listener, Behaviour::default());
    // Accepts connections (the kernel's backlog does) but never reads nor answers.
    let silent_listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let silent_port = silent_listener.local_addr().unwrap().port();
    let refused_port = closed_port();
    let seen = live.clone();
    on_executor(move || async move {
        let pusher = Pusher::new(PushConfig { request_timeout: Duration::from_secs(60), ..fast_config() });
        let (silent, refused, live) =
            (target(silent_port, "/", None), target(refused_port, "/", None), target(live_port, "/", None));
        for n in 1..=3 {
            pusher.enqueue(&silent, format!("silent {n}").into_bytes());
            pusher.enqueue(&refused, format!("refused {n}").into_bytes());
            pusher.enqueue(&live, format!("live {n}").into_bytes());
        }
        assert!(wait_until(|| pusher.stats().sent == 3).await, "{:?}", pusher.stats());
        assert!(wait_until(|| pusher.stats().failed_attempts >= 1).await, "{:?}", pusher.stats());
        assert_eq!(pusher.stats().queued, 6, "the silent and refusing targets keep theirs");

        pusher.close();
        let stats = pusher.stats();
        assert_eq!((stats.queued, stats.dropped, stats.sent), (0, 6, 3));
        pusher.enqueue(&live, b"after close".to_vec());
        assert_eq!(pusher.stats().dropped, 7);
        drop(silent_listener);
    });
    assert_eq!(seen.bodies(), ["live 1", "live 2", "live 3"]);
}

#[test]
fn a_receiver_that_drops_kept_alive_connections_costs_no_failed_attempt() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let receiver = Receiver::start(listener, Behaviour { close_after_answer: true, ..Behaviour::default() });
    let seen = receiver.clone();
    on_executor(move || async move {
        let pusher = Pusher::new(fast_config());
        let target = target(port, "/cb", None);
        for n in 1..=3u64 {
            pusher.enqueue(&target, n.to_string().into_bytes());
            assert!(wait_until(|| pusher.stats().sent == n).await, "{:?}", pusher.stats());
        }
        assert_eq!(pusher.stats().failed_attempts, 0);
    });
    assert_eq!(seen.bodies(), ["1", "2", "3"]);
}

#[test]
fn a_target_with_an_unusable_url_has_its_pushes_dropped() {
    on_executor(|| async {
        let pusher = Pusher::new(fast_config());
        let target = PushTarget { url: "https://app.example.com/cb".into(), token: None };
        pusher.enqueue(&target, b"x".to_vec());
        pusher.enqueue(&target, b"y".to_vec());
        assert!(wait_until(|| pusher.stats().dropped == 2).await, "{:?}", pusher.stats());
        assert_eq!(pusher.stats().queued, 0);
    });
}

#[test]
fn a_kept_alive_connection_broken_under_a_request_is_replaced_at_no_cost() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let receiver = Receiver::start(listener, Behaviour::reacting(&[Reaction::Answer(200), Reaction::HangUp]));
    let seen = receiver.clone();
    on_executor(move || async move {
        let pusher = Pusher::new(fast_config());
        let target = target(port, "/cb", None);
        pusher.enqueue(&target, b"1".to_vec());
        assert!(wait_until(|| pusher.stats().sent == 1).await, "{:?}", pusher.stats());
        pusher.enqueue(&target, b"2".to_vec());
        assert!(wait_until(|| pusher.stats().sent == 2).await, "{:?}", pusher.stats());
        assert_eq!(pusher.stats().failed_attempts, 0);
    });
    // Delivery is at least once: the receiver read "2" on the broken connection too.
    assert_eq!(seen.bodies(), ["1", "2", "2"]);
    let connections: Vec<usize> = seen.requests().iter().map(|request| request.connection).collect();
    assert_eq!(connections, [0, 0, 1]);
}

#[test]
fn a_request_without_answer_times_out_and_is_retried_on_a_new_connection() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let receiver = Receiver::start(listener, Behaviour::reacting(&[Reaction::Ignore]));
    let seen = receiver.clone();
    on_executor(move || async move {
        let pusher = Pusher::new(PushConfig { request_timeout: Duration::from_millis(200), ..fast_config() });
        pusher.enqueue(&target(port, "/cb", None), b"late".to_vec());
        assert!(wait_until(|| pusher.stats().sent == 1).await, "{:?}", pusher.stats());
        assert_eq!(pusher.stats().failed_attempts, 1);
    });
    assert_eq!(seen.bodies(), ["late", "late"]);
    let connections: Vec<usize> = seen.requests().iter().map(|request| request.connection).collect();
    assert_eq!(connections, [0, 1]);
}
