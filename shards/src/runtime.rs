//! Starting the shards: one pinned glommio executor per shard, joined into two channel
//! meshes (requests and replies), and the process-wide stop flag.
//!
//! A shard's id is its index in the mesh (glommio orders mesh peers by executor id), so the id
//! a shard learns from `join()` is the one it uses for its data directory and for routing.
//! Whatever executor gets id 0 runs the HTTP front desk.
//!
//! Shutdown: the process flips [`StopFlag`] (from a signal handler); every shard notices it
//! within [`STOP_POLL_INTERVAL`], finishes what is in flight, flushes its log and returns.

use std::future::Future;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use glommio::channels::channel_mesh::MeshBuilder;
use glommio::{LocalExecutorBuilder, Placement};

use crate::mesh::{FromShard, Mesh, ToShard};

/// How often a shard looks at the stop flag. Signals cannot wake a glommio executor directly,
/// and 50 ms is far below anything an operator notices.
pub const STOP_POLL_INTERVAL: Duration = Duration::from_millis(50);

/// Settings of the executors themselves.
#[derive(Debug, Clone)]
pub struct RuntimeConfig {
    pub shard_count: usize,
    /// Memory each executor registers with io_uring (needs ~3× under RLIMIT_MEMLOCK).
    pub io_memory_bytes: usize,
    /// Submission entries of each io_uring ring (see [`DEFAULT_IO_RING_DEPTH`]).
    pub io_ring_depth: usize,
    /// Busy-poll before parking: cuts a mesh hop from ~30 µs to a few µs, costs CPU.
    pub spin_before_park_us: u64,
    /// Pin executor k to CPU k (modulo the CPUs online). Off, the kernel places them.
    pub pin_cpus: bool,
    /// Bound of each mesh channel (per ordered pair of shards).
    pub mesh_capacity: usize,
}

/// The io_uring depth unless configured. The kernel files every armed poll (one per idle
/// connection) in a hash table of `2^(log2(completion entries) − 5)` buckets, at most 256, and
/// glommio cancels and re-arms a timeout on every reactor loop; each cancellation walks one
/// bucket. glommio's default depth (128: 256 completion entries, 8 buckets) made that walk
/// ~1,250 entries long with 10,000 devices on a shard: 15 % of the engine's CPU in
/// `io_poll_find`. 4,096 (8,192 completion entries) gets the 256 buckets: measured 1.9 %, and
/// 12 % less CPU per command round trip at 10,000 devices (bench/README.md).
pub const DEFAULT_IO_RING_DEPTH: usize = 4096;

/// The largest depth io_uring accepts (IORING_MAX_ENTRIES).
pub const IO_RING_DEPTH_MAX: usize = 32768;

/// Bytes of ring memory per executor: three rings (main, latency, poll), each with its
/// submission entries (64 B), their index array (4 B) and twice as many completions (16 B).
fn ring_bytes(depth: usize) -> u64 {
    3 * depth as u64 * (64 + 4 + 2 * 16)
}

/// Set once by a signal handler; read by every shard.
#[derive(Debug, Clone, Default)]
pub struct StopFlag(Arc<AtomicBool>);

impl StopFlag {
    pub fn new() -> Self {
        Self::default()
    }
    pub fn stop(&self) {
        self.0.store(true, Ordering::SeqCst);
    }
    pub fn is_stopped(&self) -> bool {
        self.0.load(Ordering::SeqCst)
    }
    /// The atomic itself, for `signal_hook::flag::register`.
    pub fn as_atomic(&self) -> Arc<AtomicBool> {
        self.0.clone()
    }
    /// Resolves once the flag is set.
    pub async fn wait(&self) {
        while !self.is_stopped() {
            glommio::timer::sleep(STOP_POLL_INTERVAL).await;
        }
    }
}

/// Closes a shard's mesh ends when dropped.
struct CloseOnDrop(Rc<Mesh>);

impl Drop for CloseOnDrop {
    fn drop(&mut self) {
        self.0.close();
    }
}

/// Number of CPUs this process may run on.
pub fn online_cpus() -> usize {
    std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1)
}

/// The CPUs this process may run on (its affinity mask), in ascending order. Pinning only to
/// these keeps `taskset` and cpuset cgroups working.
pub fn allowed_cpus() -> Vec<usize> {
    // SAFETY: cpu_set_t is plain data; sched_getaffinity writes at most its size into it.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    // SAFETY: pid 0 is this thread; the size and pointer describe `set`.
    let read = unsafe { libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut set) };
    let cpus: Vec<usize> = if read == 0 {
        // SAFETY: CPU_ISSET reads the set filled above, within CPU_SETSIZE.
        (0..libc::CPU_SETSIZE as usize).filter(|&cpu| unsafe { libc::CPU_ISSET(cpu, &set) }).collect()
    } else {
        Vec::new()
    };
    if cpus.is_empty() {
        (0..online_cpus()).collect()
    } else {
        cpus
    }
}

/// Raises the soft RLIMIT_MEMLOCK towards what `shard_count` executors need (NOTES.md:
/// roughly 3× `io_memory` each, plus the rings on kernels that still count them). Returns a
/// warning to log when the limit stays too low.
pub fn raise_memlock_limit(config: &RuntimeConfig) -> Option<String> {
    let per_shard = (config.io_memory_bytes as u64) * 3 + ring_bytes(config.io_ring_depth);
    let needed_bytes = per_shard * config.shard_count as u64;
    let mut limit = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit writes into the struct we pass and nothing else.
    if unsafe { libc::getrlimit(libc::RLIMIT_MEMLOCK, &mut limit) } != 0 {
        return Some("could not read RLIMIT_MEMLOCK".into());
    }
    if limit.rlim_cur == libc::RLIM_INFINITY || limit.rlim_cur >= needed_bytes {
        return None;
    }
    let raised = libc::rlimit { rlim_cur: limit.rlim_max.min(needed_bytes.max(limit.rlim_cur)), ..limit };
    // SAFETY: setrlimit reads the struct we pass.
    unsafe { libc::setrlimit(libc::RLIMIT_MEMLOCK, &raised) };
    // Root ignores RLIMIT_MEMLOCK (CAP_IPC_LOCK), so a low number there is harmless.
    // SAFETY: geteuid has no preconditions.
    let is_root = unsafe { libc::geteuid() } == 0;
    if raised.rlim_cur < needed_bytes && !is_root {
        return Some(format!(
            "RLIMIT_MEMLOCK is {} bytes but {} shards with io_memory {} bytes need about {} bytes; \
             raise it (ulimit -l, or LimitMEMLOCK= in a systemd unit) or lower --io-memory-bytes",
            raised.rlim_cur, config.shard_count, config.io_memory_bytes, needed_bytes
        ));
    }
    None
}

/// Raises the soft open-files limit to the hard one; returns the new soft limit.
pub fn raise_open_files_limit() -> u64 {
    let mut limit = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: as above.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) != 0 {
            return 0;
        }
        let raised = libc::rlimit { rlim_cur: limit.rlim_max, ..limit };
        if libc::setrlimit(libc::RLIMIT_NOFILE, &raised) == 0 {
            return raised.rlim_cur;
        }
    }
    limit.rlim_cur
}

/// Starts `config.shard_count` executors. Each joins the meshes and then runs
/// `shard_main(mesh)`; when it ends, its mesh ends are closed so no peer waits on it. Returns once every shard has returned; the first error wins. A shard
/// still waiting for its peers to join gives up when `stop` is set (a peer failed to start).
pub fn run_shards<G, F, E>(config: &RuntimeConfig, stop: &StopFlag, shard_main: G) -> Result<(), E>
where
    G: Fn(Rc<Mesh>) -> F + Send + Sync + Clone + 'static,
    F: Future<Output = Result<(), E>> + 'static,
    E: Send + 'static + From<std::io::Error>,
{
    assert!(config.shard_count > 0, "at least one shard");
    let requests = MeshBuilder::<ToShard, _>::full(config.shard_count, config.mesh_capacity);
    let replies = MeshBuilder::<FromShard, _>::full(config.shard_count, config.mesh_capacity);
    let cpus = allowed_cpus();
    let mut handles = Vec::with_capacity(config.shard_count);
    for index in 0..config.shard_count {
        let placement =
            if config.pin_cpus { Placement::Fixed(cpus[index % cpus.len()]) } else { Placement::Unbound };
        let (requests, replies, shard_main) = (requests.clone(), replies.clone(), shard_main.clone());
        let stop = stop.clone();
        let handle = LocalExecutorBuilder::new(placement)
            .name(&format!("shard-{index}"))
            .io_memory(config.io_memory_bytes)
            .ring_depth(config.io_ring_depth)
            .spin_before_park(Duration::from_micros(config.spin_before_park_us))
            .spawn(move || async move {
                let joined =
                    futures_lite::future::or(async { Some(Mesh::join(requests, replies).await) }, async {
                        stop.wait().await;
                        None
                    })
                    .await;
                match joined {
                    Some(mesh) => {
                        let mesh = Rc::new(mesh);
                        // However the shard ends (return, error or panic), its peers learn it.
                        let _close = CloseOnDrop(mesh.clone());
                        shard_main(mesh).await
                    }
                    None => Err(E::from(std::io::Error::other(format!(
                        "shard {index} stopped before every shard had started"
                    )))),
                }
            })
            .map_err(|e| E::from(std::io::Error::other(format!("starting shard {index}: {e}"))))?;
        handles.push(handle);
    }
    let mut first_error = None;
    for handle in handles {
        match handle.join() {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                first_error.get_or_insert(e);
            }
            Err(e) => {
                first_error.get_or_insert(E::from(std::io::Error::other(format!("shard failed: {e}"))));
            }
        }
    }
    first_error.map_or(Ok(()), Err)
}
