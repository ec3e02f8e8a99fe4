//! # Crash campaign: kill -9 under mixed load, restart on the same ports, lose nothing
//!
//! Long and `#[ignore]`d, so the default `cargo test` never runs it; `scripts/crash-campaign.sh
//! [CYCLES]` runs it in release mode. Settings come from the environment and are printed with a
//! line that reproduces the run:
//! - `CRASH_CYCLES` (default 3): kill -9 cycles;
//! - `CRASH_SEED` (default: the clock): the seed of every random choice (kill moments, pacing);
//! - `CRASH_PORT_WAIT_S` (default 0): how long a restart may retry while the engine says its
//!   ports are in use (0: a refused same-port restart fails the campaign at once);
//! - `CRASH_LOG_COMPACTION_BYTES` (default: the engine's 64 MiB): a small bound makes the shards
//!   snapshot and drop segments all the time, so kills land in compactions too.
//!
//! One engine (2 shards, one data dir, two ports picked once) lives through every cycle:
//! 1. register the cycle's fresh devices (8 online, 8 offline message targets) and log the
//!    online ones in, subscribed at QoS 1 (they report properties and answer commands);
//! 2. start the load ([`load`]): AddDevice workers, one CreateMessage sender per device,
//!    createCommands batch tasks — every thread on its own keep-alive connection;
//! 3. kill -9 at a random moment of the load, with those connections and the devices open;
//! 4. restart at once on the **same** ports and data dir: time to the ready line, and until
//!    every online device has reconnected by itself;
//! 5. check every acknowledged write ([`verify`]), then stop the cycle's devices.
//!
//! Fresh devices per cycle keep every device under the 20-message history, so "listed" is
//! exact. The second test, [`restart_cost`], measures what a restart costs with many devices.
//!
//! Invariants (what a passing campaign shows):
//! - nothing acknowledged is lost: devices, messages, property reports, batch tasks and the
//!   target results seen before the kill;
//! - every acknowledged message reaches its device at least once, first arrivals in creation
//!   order;
//! - the engine restarts on the ports it was killed on, with clients still connected to them.

mod device;
mod load;
mod restart_cost;
mod rng;
mod verify;

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::json;
use tests::batch::water_meter;
use tests::{Engine, EngineOptions};

use device::{Control, SimulatedDevice, SECRET};
use rng::Rng;
use verify::{CycleLoad, Tally};

const SHARDS: usize = 2;
const ONLINE_DEVICES: usize = 8;
const OFFLINE_DEVICES: usize = 8;
const REGISTRATION_WORKERS: usize = 3;
/// The kill comes this long after the load starts (uniform, drawn from the seed).
const KILL_AFTER_MS: (u64, u64) = (200, 2500);
/// How long the online devices may take to reconnect after the restart.
const RECONNECT_DEADLINE: Duration = Duration::from_secs(60);

#[derive(Debug)]
struct Settings {
    cycles: usize,
    seed: u64,
    port_wait: Duration,
    log_compaction_bytes: Option<u64>,
}

fn env_number(name: &str) -> Option<u64> {
    let text = std::env::var(name).ok()?;
    Some(text.trim().parse().unwrap_or_else(|_| panic!("{name}={text:?} is not a number")))
}

fn settings() -> Settings {
    let clock_seed =
        SystemTime::now().duration_since(UNIX_EPOCH).expect("clock after 1970").as_nanos() as u64;
    Settings {
        cycles: env_number("CRASH_CYCLES").unwrap_or(3) as usize,
        seed: env_number("CRASH_SEED").unwrap_or(clock_seed),
        port_wait: Duration::from_secs(env_number("CRASH_PORT_WAIT_S").unwrap_or(0)),
        log_compaction_bytes: env_number("CRASH_LOG_COMPACTION_BYTES"),
    }
}

/// Two loopback ports free now, below the kernel's ephemeral range (as 1883 and 8080 are), so
/// no outgoing connection — a device reconnecting to a dead engine included — can be given one
/// of them as its source port while the engine is down. The engine keeps them for good.
pub fn free_ports() -> (u16, u16) {
    let ephemeral_low: u16 = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|range| range.split_whitespace().next()?.parse().ok())
        .unwrap_or(32768);
    let low = 10_000.min(ephemeral_low / 2);
    let span = u32::from(ephemeral_low - low);
    let start = low + (std::process::id() % span) as u16;
    let candidates = (start..ephemeral_low).chain(low..start);
    let free: Vec<u16> =
        candidates.filter(|&port| TcpListener::bind(("127.0.0.1", port)).is_ok()).take(2).collect();
    assert_eq!(free.len(), 2, "two free ports below {ephemeral_low}");
    (free[0], free[1])
}

pub fn options_on(ports: (u16, u16)) -> EngineOptions {
    let args = [
        "--http-listen".to_owned(),
        format!("127.0.0.1:{}", ports.0),
        "--mqtt-listen".to_owned(),
        format!("127.0.0.1:{}", ports.1),
        "--command-timeout-ms".to_owned(),
        "5000".to_owned(),
    ];
    EngineOptions { shards: SHARDS, args: args.into(), ..Default::default() }
}

/// A start on the given ports: the engine, the time from spawn to its ready line, and how long
/// it was refused with "in use" first (only within `port_wait`).
#[derive(Debug)]
pub struct Restart {
    pub engine: Engine,
    pub ready: Duration,
    pub port_refused_for: Duration,
    /// When the successful start was spawned.
    pub started_at: Instant,
}

pub fn start_on_same_ports(data_dir: &Path, options: &EngineOptions, port_wait: Duration) -> Restart {
    let first_try = Instant::now();
    let mut refused = false;
    loop {
        let started_at = Instant::now();
        match Engine::start_on(data_dir, options) {
            Ok(engine) => {
                let ready = started_at.elapsed();
                let port_refused_for = if refused { started_at - first_try } else { Duration::ZERO };
                return Restart { engine, ready, port_refused_for, started_at };
            }
            Err(stderr) if stderr.contains("in use") && first_try.elapsed() < port_wait => {
                refused = true;
                // Not an event we can await: the kernel frees the port when its sockets expire.
                thread::sleep(Duration::from_millis(500));
            }
            Err(stderr) => panic!(
                "the engine did not start on its ports (refused for {:?}); data dir kept at {}:\n{stderr}",
                first_try.elapsed(),
                data_dir.display()
            ),
        }
    }
}

/// What one cycle measured, for the summary.
#[derive(Debug, Clone, Copy)]
struct CycleTimes {
    kill_after: Duration,
    ready: Duration,
    devices_back: Option<Duration>,
    port_refused_for: Duration,
}

#[test]
#[ignore = "long: run by scripts/crash-campaign.sh"]
fn acknowledged_writes_survive_kill_9_cycles_under_mixed_load() {
    let settings = settings();
    let compaction =
        settings.log_compaction_bytes.map_or(String::new(), |b| format!(" CRASH_LOG_COMPACTION_BYTES={b}"));
    println!(
        "crash campaign: {} cycles, seed {} — reproduce with CRASH_SEED={} CRASH_CYCLES={}{compaction}",
        settings.cycles, settings.seed, settings.seed, settings.cycles
    );
    let data_dir: PathBuf =
        std::env::temp_dir().join(format!("ringiot-crash-campaign-{}", settings.seed)).join("data");
    let _ = std::fs::remove_dir_all(data_dir.parent().expect("a parent"));
    let ports = free_ports();
    let mut options = options_on(ports);
    if let Some(bytes) = settings.log_compaction_bytes {
        options.config_extra = format!("log_compaction_bytes = {bytes}");
    }
    println!("data dir {}, http port {}, mqtt port {}", data_dir.display(), ports.0, ports.1);
    let mut engine = start_on_same_ports(&data_dir, &options, Duration::ZERO).engine;
    let created = engine.client_a().post("products", &water_meter());
    assert_eq!(created.status, 201, "{}", created.text());

    let mut rng = Rng::new(settings.seed);
    let mut tally = Tally::default();
    let mut times = Vec::with_capacity(settings.cycles);
    let mut acked_reports = 0;
    for cycle in 1..=settings.cycles {
        let (lost_before, anomalies_before) = (tally.lost_total(), tally.anomalies.len());
        let (load, restart, kill_after) = run_cycle(engine, cycle, &mut rng, &data_dir, &options, &settings);
        engine = restart.engine;
        let devices_back = wait_devices_back(&load, restart.started_at);
        if devices_back.is_none() {
            tally
                .anomalies
                .push(format!("cycle {cycle}: not every device reconnected within {RECONNECT_DEADLINE:?}"));
        }
        verify::verify_cycle(&engine, &load, &mut tally);
        let cycle_reports: u64 = load
            .online
            .iter()
            .map(|(_, device)| device.record.lock().unwrap().report_acked.unwrap_or(0))
            .sum();
        acked_reports += cycle_reports;
        let cycle_times = CycleTimes {
            kill_after,
            ready: restart.ready,
            devices_back,
            port_refused_for: restart.port_refused_for,
        };
        print_cycle(cycle, &load, cycle_reports, cycle_times, &tally, lost_before, anomalies_before);
        times.push(cycle_times);
        stop_devices(load);
    }
    print_summary(&settings, &tally, acked_reports, &times);
    for finding in tally.losses.iter().chain(&tally.anomalies) {
        println!("FINDING: {finding}");
    }
    assert!(
        tally.losses.is_empty() && tally.anomalies.is_empty(),
        "{} losses and {} anomalies (seed {}); data dir kept at {}",
        tally.losses.len(),
        tally.anomalies.len(),
        settings.seed,
        data_dir.display()
    );
    assert!(engine.stop().success(), "the engine stops cleanly after the campaign");
    let _ = std::fs::remove_dir_all(data_dir.parent().expect("a parent"));
}

/// Registers the cycle's devices, runs the load, kills the engine at a random moment and
/// restarts it; returns what the load recorded and the restarted engine.
fn run_cycle(
    mut engine: Engine,
    cycle: usize,
    rng: &mut Rng,
    data_dir: &Path,
    options: &EngineOptions,
    settings: &Settings,
) -> (CycleLoad, Restart, Duration) {
    let client = engine.client_a();
    let node_ids =
        |kind: &str, count: usize| (0..count).map(|n| format!("c{cycle}{kind}{n}")).collect::<Vec<_>>();
    let (online_nodes, offline_nodes) = (node_ids("on", ONLINE_DEVICES), node_ids("off", OFFLINE_DEVICES));
    for node_id in online_nodes.iter().chain(&offline_nodes) {
        let body = json!({"node_id": node_id, "product_id": "meter", "auth_info": {"secret": SECRET}});
        let response = client.post("devices", &body);
        assert_eq!(response.status, 201, "{}", response.text());
    }
    let online_ids: Vec<String> = online_nodes.iter().map(|node| format!("meter_{node}")).collect();
    let offline_ids: Vec<String> = offline_nodes.iter().map(|node| format!("meter_{node}")).collect();

    let control = Arc::new(Control::default());
    let devices: Vec<SimulatedDevice> = online_ids
        .iter()
        .enumerate()
        .map(|(n, id)| SimulatedDevice::start(engine.mqtt, id, n % 2 == 0, control.clone(), rng.fork()))
        .collect();
    let stop = Arc::new(AtomicBool::new(false));
    let http = engine.http;
    let registrations: Vec<_> = (0..REGISTRATION_WORKERS)
        .map(|worker| load::spawn_registrations(http, format!("c{cycle}w{worker}"), stop.clone(), rng.fork()))
        .collect();
    let sender = |device_id: &String, rng: &mut Rng| {
        load::spawn_message_sender(http, device_id.clone(), cycle, stop.clone(), rng.fork())
    };
    let online_senders: Vec<_> = online_ids.iter().map(|id| sender(id, rng)).collect();
    let offline_senders: Vec<_> = offline_ids.iter().map(|id| sender(id, rng)).collect();
    let targets = online_ids.iter().chain(&offline_ids).cloned().collect();
    let batch = load::spawn_batch_tasks(http, targets, stop.clone(), rng.fork());

    // The random moment of the kill: this sleep is the experiment, not a synchronisation.
    let kill_after = rng.duration_ms(KILL_AFTER_MS.0, KILL_AFTER_MS.1);
    thread::sleep(kill_after);
    let killed_at = Instant::now();
    engine.kill9();
    stop.store(true, Ordering::SeqCst);
    let load = CycleLoad {
        cycle,
        killed_at,
        registrations: registrations
            .into_iter()
            .map(|worker| worker.join().expect("a registration worker"))
            .collect(),
        online: online_senders
            .into_iter()
            .map(|sender| sender.join().expect("a message sender"))
            .zip(devices)
            .collect(),
        offline: offline_senders.into_iter().map(|sender| sender.join().expect("a message sender")).collect(),
        batch: batch.join().expect("the batch worker"),
        control,
    };
    let restart = start_on_same_ports(data_dir, options, settings.port_wait);
    (load, restart, kill_after)
}

/// Time from the restart's spawn until the last online device logged in again.
fn wait_devices_back(load: &CycleLoad, started_at: Instant) -> Option<Duration> {
    let deadline = Instant::now() + RECONNECT_DEADLINE;
    loop {
        let back: Vec<Option<Instant>> =
            load.online.iter().map(|(_, device)| device.record.lock().unwrap().reconnected_at).collect();
        if back.iter().all(Option::is_some) {
            return back.into_iter().flatten().max().map(|last| last.saturating_duration_since(started_at));
        }
        if Instant::now() >= deadline {
            return None;
        }
        thread::sleep(Duration::from_millis(5));
    }
}

fn stop_devices(load: CycleLoad) {
    load.control.stop.store(true, Ordering::SeqCst);
    for (_, device) in load.online {
        device.join();
    }
}

fn print_cycle(
    cycle: usize,
    load: &CycleLoad,
    acked_reports: u64,
    times: CycleTimes,
    tally: &Tally,
    lost_before: u64,
    anomalies_before: usize,
) {
    let registrations: usize = load.registrations.iter().map(|log| log.acked.len()).sum();
    let online: usize = load.online.iter().map(|(log, _)| log.acked().count()).sum();
    let offline: usize = load.offline.iter().map(|log| log.acked().count()).sum();
    let seen_results: usize = load.batch.tasks.iter().map(|task| task.seen_final.len()).sum();
    println!(
        "cycle {cycle}: kill after {} ms; acked {registrations} registrations, {online} messages to online + {offline} to offline devices, {acked_reports} reports, {} batch tasks ({seen_results} results seen); restart to ready {} ms{}, devices back {}; losses {}, anomalies {}",
        times.kill_after.as_millis(),
        load.batch.tasks.len(),
        times.ready.as_millis(),
        if times.port_refused_for.is_zero() { String::new() } else { format!(" (ports refused for {} ms first)", times.port_refused_for.as_millis()) },
        times.devices_back.map_or("never".into(), |back| format!("{} ms", back.as_millis())),
        tally.lost_total() - lost_before,
        tally.anomalies.len() - anomalies_before,
    );
}

fn percentile_ms(mut values: Vec<Duration>, fraction: f64) -> u128 {
    if values.is_empty() {
        return 0;
    }
    values.sort();
    let index = ((values.len() - 1) as f64 * fraction).round() as usize;
    values[index].as_millis()
}

fn print_summary(settings: &Settings, tally: &Tally, acked_reports: u64, times: &[CycleTimes]) {
    println!("\n## Crash campaign: seed {}, {} kill -9 cycles\n", settings.seed, times.len());
    println!("| acknowledged writes checked | checked | lost |\n|---|---:|---:|");
    for (kind, counts) in &tally.kinds {
        println!("| {kind} | {} | {} |", counts.checked, counts.lost);
    }
    println!("| (property reports PUBACKed; the shadow checked per device) | {acked_reports} | |");
    println!(
        "\nlosses {}, anomalies {}, calls with an unknown outcome (in flight at the kill) {}, duplicate deliveries {}, batch targets ended IOTDA.000503 by a restart {}",
        tally.lost_total(),
        tally.anomalies.len(),
        tally.unknown_outcomes,
        tally.duplicate_deliveries,
        tally.restart_failed_targets
    );
    let ready: Vec<Duration> = times.iter().map(|t| t.ready).collect();
    let back: Vec<Duration> = times.iter().filter_map(|t| t.devices_back).collect();
    let refused = times.iter().filter(|t| !t.port_refused_for.is_zero()).count();
    println!(
        "restart to ready: p50 {} ms, max {} ms; online devices back: p50 {} ms, max {} ms; restarts refused on the ports first: {refused}",
        percentile_ms(ready.clone(), 0.5),
        percentile_ms(ready, 1.0),
        percentile_ms(back.clone(), 0.5),
        percentile_ms(back, 1.0),
    );
}
