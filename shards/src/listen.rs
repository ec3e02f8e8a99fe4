//! Listening sockets shared by every shard, the check that no other live process listens on
//! the same address, and the accept back-off.
//!
//! Every shard binds the same address with SO_REUSEPORT and the kernel spreads connections
//! over them (MQTT and HTTP alike). Two things follow:
//! - SO_REUSEPORT would let a second engine of the same user silently share the port, so the
//!   first shard *probes* the address with a socket that does not set SO_REUSEPORT
//!   ([`ensure_no_other_listener`]): the kernel refuses it while any socket listens there.
//! - A restart must not be refused by the connections the previous process left behind
//!   (TIME_WAIT, FIN_WAIT after SIGTERM or kill -9 with devices and HTTP clients connected,
//!   which linger for up to a minute). The probe and our listeners set SO_REUSEADDR, and the
//!   sockets accepted from a listener inherit it; between SO_REUSEADDR sockets the kernel
//!   lets a bind through unless one of them *listens*. Sockets left by a process whose
//!   listener lacked SO_REUSEADDR (an older ringiot) still make the probe fail, so a failed
//!   probe is checked against the kernel's table of listening sockets (`/proc/net/tcp*`):
//!   only a real listener refuses the start.
//!
//! Accepting can fail for want of descriptors (EMFILE/ENFILE) or kernel memory: the loops
//! then wait with a doubling delay ([`AcceptBackoff`]) instead of spinning, and log once per
//! episode, not once per attempt.
//!
//! Invariants:
//! - Every listener of the engine has SO_REUSEADDR and SO_REUSEPORT, and a backlog of
//!   [`LISTEN_BACKLOG`].
//! - A start is refused only when a socket *listens* on an overlapping address, never for
//!   lingering connections.

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::os::fd::{FromRawFd, IntoRawFd};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use socket2::{Domain, Protocol, Socket, Type};

/// Pending connections the kernel holds for each listener (a burst of logins or REST clients
/// larger than std's 128 was reset before).
pub const LISTEN_BACKLOG: i32 = 1024;

/// Why a listener could not be had.
#[derive(Debug, thiserror::Error)]
pub enum ListenError {
    #[error("{address} is in use: another process listens on it (another ringiot or broker?)")]
    InUse { address: SocketAddr },
    #[error("binding {address}: {source}")]
    Bind { address: SocketAddr, source: io::Error },
}

/// A listening socket on `address` with SO_REUSEADDR and SO_REUSEPORT, as a glommio listener
/// of the calling executor.
pub fn bind_shared(address: SocketAddr) -> Result<glommio::net::TcpListener, ListenError> {
    let bind = || -> io::Result<Socket> {
        let socket = Socket::new(Domain::for_address(address), Type::STREAM, Some(Protocol::TCP))?;
        socket.set_reuse_address(true)?;
        socket.set_reuse_port(true)?;
        socket.bind(&address.into())?;
        socket.listen(LISTEN_BACKLOG)?;
        Ok(socket)
    };
    let socket = bind().map_err(|source| ListenError::Bind { address, source })?;
    // SAFETY: a bound, listening TCP socket whose ownership moves into the glommio listener.
    Ok(unsafe { glommio::net::TcpListener::from_raw_fd(socket.into_raw_fd()) })
}

/// Refuses `address` if another socket listens on it. Port 0 is never in use.
pub fn ensure_no_other_listener(address: SocketAddr) -> Result<(), ListenError> {
    if address.port() == 0 {
        return Ok(());
    }
    let probe = || -> io::Result<()> {
        let socket = Socket::new(Domain::for_address(address), Type::STREAM, Some(Protocol::TCP))?;
        socket.set_reuse_address(true)?;
        socket.bind(&address.into())
    };
    match probe() {
        Ok(()) => Ok(()),
        Err(error) if error.kind() == io::ErrorKind::AddrInUse => match kernel_listens_on(address) {
            Ok(false) => {
                tracing::info!(
                    %address,
                    "connections of a previous process still hold the port; no process listens on it, starting"
                );
                Ok(())
            }
            Ok(true) => Err(ListenError::InUse { address }),
            // Without the kernel's table, the failed probe is all we know: refuse.
            Err(_) => Err(ListenError::InUse { address }),
        },
        Err(source) => Err(ListenError::Bind { address, source }),
    }
}

/// Whether a TCP socket in LISTEN state holds an address that overlaps `address`.
fn kernel_listens_on(address: SocketAddr) -> io::Result<bool> {
    let mut found = false;
    let mut read_any = false;
    for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
        match std::fs::read_to_string(table) {
            Ok(text) => {
                read_any = true;
                found |= listeners_in_table(&text).any(|listening| overlaps(listening, address));
            }
            Err(error) if error.kind() == io::ErrorKind::NotFound => {}
            Err(error) => return Err(error),
        }
    }
    if read_any {
        Ok(found)
    } else {
        Err(io::Error::new(io::ErrorKind::NotFound, "no /proc/net/tcp"))
    }
}

/// TCP state LISTEN in `/proc/net/tcp` (include/net/tcp_states.h).
const TCP_LISTEN: &str = "0A";

/// The local addresses of the listening sockets in a `/proc/net/tcp` or `tcp6` table. Lines
/// that do not parse are skipped.
fn listeners_in_table(text: &str) -> impl Iterator<Item = SocketAddr> + '_ {
    text.lines().skip(1).filter_map(|line| {
        let mut fields = line.split_whitespace();
        let local = fields.nth(1)?;
        let state = fields.nth(1)?;
        if state != TCP_LISTEN {
            return None;
        }
        parse_table_address(local)
    })
}

/// `0100007F:1F90` (IPv4) or 32 hex digits `:PORT` (IPv6): the address is the kernel's
/// in-memory 32-bit words (network byte order) printed as host-order numbers, so each word's
/// bytes are its value's native-endian bytes.
fn parse_table_address(text: &str) -> Option<SocketAddr> {
    let (address, port) = text.split_once(':')?;
    let port = u16::from_str_radix(port, 16).ok()?;
    let word = |hex: &str| u32::from_str_radix(hex, 16).ok().map(u32::to_ne_bytes);
    let ip = match address.len() {
        8 => IpAddr::V4(Ipv4Addr::from(word(address)?)),
        32 => {
            let mut octets = [0u8; 16];
            for (index, chunk) in octets.chunks_mut(4).enumerate() {
                chunk.copy_from_slice(&word(address.get(index * 8..index * 8 + 8)?)?);
            }
            IpAddr::V6(Ipv6Addr::from(octets))
        }
        _ => return None,
    };
    Some(SocketAddr::new(ip, port))
}

/// Whether a listener on `listening` would take connections meant for `wanted`: same port, and
/// the same address or a wildcard on either side (an IPv6 wildcard also takes IPv4 unless the
/// socket is v6-only, which the table does not say: counted as overlapping).
fn overlaps(listening: SocketAddr, wanted: SocketAddr) -> bool {
    if listening.port() != wanted.port() {
        return false;
    }
    let canonical = |ip: IpAddr| match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4),
        v4 => v4,
    };
    let (listening_ip, wanted_ip) = (canonical(listening.ip()), canonical(wanted.ip()));
    listening_ip.is_unspecified() || wanted_ip.is_unspecified() || listening_ip == wanted_ip
}

/// A process-wide bound on connections of one kind (MQTT or HTTP), shared by every shard:
/// descriptors are a resource of the process, not of a shard. Taken at accept, given back
/// when the connection's descriptor is closed, whichever shard that happens on.
#[derive(Debug)]
pub struct DescriptorBudget {
    open: AtomicUsize,
    max: usize,
}

impl DescriptorBudget {
    pub fn new(max: usize) -> Arc<Self> {
        Arc::new(DescriptorBudget { open: AtomicUsize::new(0), max })
    }

    /// A slot for one more connection, or `None` when the budget is spent.
    pub fn take(self: &Arc<Self>) -> Option<BudgetSlot> {
        self.open
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |open| (open < self.max).then_some(open + 1))
            .ok()
            .map(|_| BudgetSlot(self.clone()))
    }

    /// A slot only while fewer than `ceiling` are taken: how the REST API borrows descriptors
    /// of the MQTT share that the devices leave unused (up to half of it), so a burst of REST
    /// clients beyond the reserve is served while the fleet is small. Borrowed slots count
    /// against MQTT until their connections close.
    pub fn take_while_below(self: &Arc<Self>, ceiling: usize) -> Option<BudgetSlot> {
        let ceiling = ceiling.min(self.max);
        self.open
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |open| (open < ceiling).then_some(open + 1))
            .ok()
            .map(|_| BudgetSlot(self.clone()))
    }

    /// A slot even when the budget is spent: for a connection admitted in place of one just
    /// evicted, whose slot is given back as soon as its task sees the shutdown. The overdraft
    /// is bounded by the connections waiting for a CONNECT, which the reserve covers.
    pub fn take_in_place_of_evicted(self: &Arc<Self>) -> BudgetSlot {
        self.open.fetch_add(1, Ordering::AcqRel);
        BudgetSlot(self.clone())
    }

    pub fn open(&self) -> usize {
        self.open.load(Ordering::Acquire)
    }

    pub fn max(&self) -> usize {
        self.max
    }
}

/// One connection's share of a [`DescriptorBudget`]; dropping it gives the share back. `Send`:
/// it travels with a connection handed to another shard.
#[derive(Debug)]
pub struct BudgetSlot(Arc<DescriptorBudget>);

impl Drop for BudgetSlot {
    fn drop(&mut self) {
        self.0.open.fetch_sub(1, Ordering::AcqRel);
    }
}

/// How the open-files limit is shared out, decided once at start and logged.
///
/// MQTT connections are what a flood can multiply, so they get everything except a
/// *reserve*: the REST API's connections and the engine's own descriptors (log segments and
/// snapshots, push connections, the duplicate made while a connection is handed to another
/// shard, io_uring and eventfds) always find room, whatever the devices' side does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DescriptorPlan {
    pub open_files: u64,
    /// MQTT connections of all shards together.
    pub mqtt_connections_max: usize,
    /// REST connections of all shards together.
    pub http_connections_max: usize,
    /// Kept for the engine's own files and outgoing connections.
    pub internal: usize,
}

impl DescriptorPlan {
    /// Descriptors the engine itself needs: stdio, the data-dir lock, listeners and per shard
    /// its rings, eventfds, log segment and snapshot files, and push connections.
    pub fn internal_descriptors(shard_count: usize) -> usize {
        64 + 16 * shard_count
    }

    /// Shares `open_files` out, keeping `reserve` away from MQTT (clamped to between what the
    /// engine needs plus a few REST connections and half of the limit). `open_files` 0 means
    /// the limit is unknown: nothing is derived, the configured bounds stand alone.
    pub fn derive(open_files: u64, shard_count: usize, reserve: usize) -> DescriptorPlan {
        let internal = Self::internal_descriptors(shard_count);
        if open_files == 0 {
            return DescriptorPlan {
                open_files,
                mqtt_connections_max: usize::MAX,
                http_connections_max: usize::MAX,
                internal,
            };
        }
        let limit = usize::try_from(open_files).unwrap_or(usize::MAX);
        let reserve = reserve.min(limit / 2).max(internal + 16);
        DescriptorPlan {
            open_files,
            mqtt_connections_max: limit.saturating_sub(reserve),
            http_connections_max: reserve - internal,
            internal,
        }
    }
}

/// The delay before the next accept after a failure for want of resources: 1 ms doubling to
/// 500 ms, reset by a success. Warnings are rate-limited: at the limit, accepts alternate
/// between failing and succeeding, and a warning per episode would be one per connection.
#[derive(Debug, Default)]
pub struct AcceptBackoff {
    failures_in_episode: u32,
    failures_unreported: u64,
    last_warning: Option<std::time::Instant>,
}

impl AcceptBackoff {
    const FIRST: Duration = Duration::from_millis(1);
    const MAX: Duration = Duration::from_millis(500);
    /// At most one warning per this long.
    pub const WARNING_INTERVAL: Duration = Duration::from_secs(30);

    /// Records a failed accept at `now`; returns how long to wait, and the failures to warn
    /// about now (those since the last warning), if a warning is due.
    pub fn failed(&mut self, now: std::time::Instant) -> (Duration, Option<u64>) {
        self.failures_in_episode = self.failures_in_episode.saturating_add(1);
        self.failures_unreported += 1;
        let doublings = (self.failures_in_episode - 1).min(16);
        let delay = Self::FIRST.saturating_mul(1 << doublings).min(Self::MAX);
        let due = self.last_warning.is_none_or(|last| now.duration_since(last) >= Self::WARNING_INTERVAL);
        if !due {
            return (delay, None);
        }
        self.last_warning = Some(now);
        (delay, Some(std::mem::take(&mut self.failures_unreported)))
    }

    /// Records a successful accept: the next failure waits the shortest delay again.
    pub fn succeeded(&mut self) {
        self.failures_in_episode = 0;
    }
}

/// Waits after a failed accept on a `kind` ("MQTT", "HTTP") listener. Out of descriptors or
/// kernel memory, an accept would fail again at once: the loop backs off (see
/// [`AcceptBackoff`]). Any other error concerns one connection (it was reset before it was
/// accepted, say): a short pause still, so that an error that persists cannot spin the shard.
pub async fn after_failed_accept(
    kind: &str,
    shard: usize,
    backoff: &mut AcceptBackoff,
    error: glommio::GlommioError<()>,
) {
    let exhausted = match &error {
        glommio::GlommioError::IoError(io) => is_resource_exhaustion(io),
        _ => false,
    };
    if !exhausted {
        tracing::debug!(shard, %error, "accepting a {kind} connection");
        glommio::timer::sleep(Duration::from_millis(1)).await;
        return;
    }
    let (delay, warn) = backoff.failed(std::time::Instant::now());
    if let Some(failures) = warn {
        tracing::warn!(
            shard,
            %error,
            failures,
            "accepting {kind} connections: out of descriptors or memory; backing off (failures since the last warning)"
        );
    }
    glommio::timer::sleep(delay).await;
}

/// Whether an accept error means the process or the system is out of descriptors or memory
/// (wait and retry) rather than a problem of one connection (retry at once).
pub fn is_resource_exhaustion(error: &io::Error) -> bool {
    matches!(error.raw_os_error(), Some(libc::EMFILE | libc::ENFILE | libc::ENOBUFS | libc::ENOMEM))
}

#[cfg(test)]
mod tests {
    use super::*;

    const TCP4: &str = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 0100007F:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1 1 0000000000000000 100 0 0 10 0
   1: 0100007F:075B 0100007F:C350 06 00000000:00000000 03:00000F6E 00000000     0        0 0 3 0000000000000000
   2: 00000000:075B 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 2 1 0000000000000000 100 0 0 10 0
";
    const TCP6: &str = "  sl  local_address                         remote_address                        st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 00000000000000000000000001000000:22B3 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 3 1 0000000000000000 100 0 0 10 0
";

    #[test]
    fn the_kernel_table_yields_only_listening_sockets() {
        let listening: Vec<SocketAddr> = listeners_in_table(TCP4).collect();
        assert_eq!(
            listening,
            vec!["127.0.0.1:8080".parse::<SocketAddr>().unwrap(), "0.0.0.0:1883".parse().unwrap()]
        );
        let listening: Vec<SocketAddr> = listeners_in_table(TCP6).collect();
        assert_eq!(listening, vec!["[::1]:8883".parse::<SocketAddr>().unwrap()]);
        assert_eq!(listeners_in_table("header\ngarbage line\n   0: zz:yy 0 0A\n").count(), 0);
    }

    #[test]
    fn wildcards_and_mapped_addresses_overlap() {
        let address = |text: &str| text.parse::<SocketAddr>().unwrap();
        assert!(overlaps(address("0.0.0.0:1883"), address("127.0.0.1:1883")));
        assert!(overlaps(address("127.0.0.1:1883"), address("0.0.0.0:1883")));
        assert!(overlaps(address("[::]:1883"), address("127.0.0.1:1883")));
        assert!(overlaps(address("[::ffff:127.0.0.1]:1883"), address("127.0.0.1:1883")));
        assert!(!overlaps(address("127.0.0.2:1883"), address("127.0.0.1:1883")));
        assert!(!overlaps(address("0.0.0.0:1884"), address("127.0.0.1:1883")));
    }

    #[test]
    fn a_live_listener_is_found_and_lingering_connections_are_not() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let address = listener.local_addr().unwrap();
        assert!(kernel_listens_on(address).unwrap());
        assert!(matches!(ensure_no_other_listener(address), Err(ListenError::InUse { .. })));
        let client = std::net::TcpStream::connect(address).unwrap();
        let (accepted, _) = listener.accept().unwrap();
        drop(listener);
        // The accepted socket closes first: it lingers in FIN_WAIT/TIME_WAIT on the port, and
        // std's listener had SO_REUSEADDR, so the probe binds.
        drop(accepted);
        assert!(!kernel_listens_on(address).unwrap());
        assert!(ensure_no_other_listener(address).is_ok());
        drop(client);
    }

    #[test]
    fn the_plan_keeps_a_reserve_away_from_mqtt() {
        let plan = DescriptorPlan::derive(20_000, 2, 1024);
        assert_eq!(plan.internal, 96);
        assert_eq!(plan.mqtt_connections_max, 20_000 - 1024);
        assert_eq!(plan.http_connections_max, 1024 - 96);
        // A small limit: the reserve is at most half of it, and at least what the engine needs.
        let small = DescriptorPlan::derive(1000, 2, 1024);
        assert_eq!((small.mqtt_connections_max, small.http_connections_max), (500, 404));
        let tiny = DescriptorPlan::derive(100, 2, 10);
        assert_eq!(tiny.mqtt_connections_max, 0, "below what the engine needs itself: no room for devices");
        assert_eq!(DescriptorPlan::derive(0, 2, 1024).mqtt_connections_max, usize::MAX);
    }

    #[test]
    fn a_budget_gives_slots_back_when_they_drop() {
        let budget = DescriptorBudget::new(2);
        let first = budget.take().unwrap();
        let second = budget.take().unwrap();
        assert!(budget.take().is_none());
        drop(first);
        assert_eq!(budget.open(), 1);
        let third = std::thread::spawn({
            let budget = budget.clone();
            move || budget.take().is_some()
        });
        assert!(third.join().unwrap());
        drop(second);
        assert_eq!(budget.open(), 0, "the slot taken on another thread was dropped there");
    }

    #[test]
    fn borrowing_stops_at_the_ceiling_and_borrowed_slots_count_against_the_lender() {
        let mqtt = DescriptorBudget::new(4);
        let borrowed: Vec<_> =
            std::iter::from_fn(|| mqtt.take_while_below(mqtt.max() / 2)).take(10).collect();
        assert_eq!(borrowed.len(), 2, "only up to half of the lender's budget is lent");
        let own: Vec<_> = std::iter::from_fn(|| mqtt.take()).take(10).collect();
        assert_eq!(own.len(), 2, "what is lent is not the lender's any more");
        drop(borrowed);
        assert!(mqtt.take_while_below(2).is_none(), "the lender itself holds half now");
        assert!(mqtt.take().is_some());
    }

    #[test]
    fn backoff_doubles_to_its_ceiling_resets_and_warns_at_most_every_interval() {
        let start = std::time::Instant::now();
        let mut backoff = AcceptBackoff::default();
        assert_eq!(backoff.failed(start), (Duration::from_millis(1), Some(1)));
        assert_eq!(backoff.failed(start), (Duration::from_millis(2), None));
        for _ in 0..20 {
            backoff.failed(start);
        }
        assert_eq!(backoff.failed(start).0, Duration::from_millis(500));
        backoff.succeeded();
        assert_eq!(backoff.failed(start), (Duration::from_millis(1), None), "warned a moment ago");
        let later = start + AcceptBackoff::WARNING_INTERVAL;
        assert_eq!(backoff.failed(later), (Duration::from_millis(2), Some(24)), "the failures since");
    }

    #[test]
    fn exhaustion_is_told_from_a_failed_connection() {
        assert!(is_resource_exhaustion(&io::Error::from_raw_os_error(libc::EMFILE)));
        assert!(!is_resource_exhaustion(&io::Error::from_raw_os_error(libc::ECONNABORTED)));
    }
}
