//! What a restart costs with many devices (`RESTART_DEVICES` registered, default 10,000, of
//! which `RESTART_CONNECTED` are logged in, default all — one process holds at most its
//! open-files limit of connections; `#[ignore]`d like the campaign): register them, log the
//! connected ones in, then restart twice on the same ports —
//! after kill -9 and after a clean SIGTERM — and measure, from the spawn of the new process,
//! the time to its ready line and the time until every device has logged in again
//! ([`LOGIN_THREADS`] threads reconnecting as fast as they can, as a fleet would after losing
//! its connections).
//!
//! The numbers are printed, never asserted: a timing does not decide a test (STYLE.md §10).

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::thread;
use std::time::{Duration, Instant};

use tests::batch::water_meter;
use tests::mqtt::MqttDevice;

use crate::device::SECRET;
use crate::{free_ports, load, options_on, start_on_same_ports};

const LOGIN_THREADS: usize = 8;
const REGISTRATION_THREADS: usize = 16;
/// How long one device may keep retrying its login after a restart.
const LOGIN_DEADLINE: Duration = Duration::from_secs(120);

/// Logins that had to be tried again, and the last reason, printed with the results.
static LOGIN_RETRIES: AtomicU64 = AtomicU64::new(0);
static LAST_LOGIN_ERROR: Mutex<String> = Mutex::new(String::new());

#[test]
#[ignore = "long: run by scripts/crash-campaign.sh --restart-cost"]
fn restart_cost_with_many_devices() {
    let devices = crate::env_number("RESTART_DEVICES").unwrap_or(10_000) as usize;
    let connected_count =
        crate::env_number("RESTART_CONNECTED").map_or(devices, |count| count as usize).min(devices);
    let open_files = raise_open_files_limit();
    assert!(
        open_files > connected_count as u64 + 100,
        "{connected_count} connections need more than {open_files} open files"
    );
    let temp = tempfile::tempdir().expect("a temp dir");
    let data_dir = temp.path().join("data");
    let options = options_on(free_ports());
    let port_wait = Duration::from_secs(crate::env_number("CRASH_PORT_WAIT_S").unwrap_or(0));
    let first = start_on_same_ports(&data_dir, &options, port_wait);
    let mut engine = first.engine;
    assert_eq!(engine.client_a().post("products", &water_meter()).status, 201);

    let registering = Instant::now();
    let mut device_ids = register_all(engine.http, devices);
    device_ids.truncate(connected_count);
    println!("registered {devices} devices in {} ms", registering.elapsed().as_millis());
    let logging_in = Instant::now();
    let connected = log_in_all(engine.mqtt, &device_ids);
    println!("logged {connected_count} devices in in {} ms", logging_in.elapsed().as_millis());
    println!("first start (empty data dir): ready in {} ms", first.ready.as_millis());

    engine.kill9();
    drop(connected);
    let after_kill = start_on_same_ports(&data_dir, &options, port_wait);
    let connected = log_in_all(after_kill.engine.mqtt, &device_ids);
    let kill_all_back = after_kill.started_at.elapsed();
    let (kill_ready, kill_refused) = (after_kill.ready, after_kill.port_refused_for);
    let mut engine = after_kill.engine;

    let stopping = Instant::now();
    assert!(engine.stop().success(), "SIGTERM stops the engine cleanly");
    let stop_took = stopping.elapsed();
    drop(connected);
    let after_stop = start_on_same_ports(&data_dir, &options, port_wait);
    let connected = log_in_all(after_stop.engine.mqtt, &device_ids);
    let stop_all_back = after_stop.started_at.elapsed();
    drop(connected);

    println!("\n## Restart cost: {devices} devices registered, {connected_count} connected, 2 shards\n");
    println!("| restart | spawn → ready | spawn → all {connected_count} devices logged in again |\n|---|---:|---:|");
    println!("| after kill -9 | {} ms | {} ms |", kill_ready.as_millis(), kill_all_back.as_millis());
    println!(
        "| after SIGTERM (stop took {} ms) | {} ms | {} ms |",
        stop_took.as_millis(),
        after_stop.ready.as_millis(),
        stop_all_back.as_millis()
    );
    let retries = LOGIN_RETRIES.load(Ordering::Relaxed);
    if retries > 0 {
        println!(
            "({retries} logins were tried again; the last reason: {})",
            LAST_LOGIN_ERROR.lock().unwrap()
        );
    }
    for refused in [kill_refused, after_stop.port_refused_for] {
        if !refused.is_zero() {
            println!("(a restart was refused on its ports for {} ms first)", refused.as_millis());
        }
    }
}

/// AddDevice `meter_r{n}` for n in 0..devices from [`REGISTRATION_THREADS`] keep-alive clients.
fn register_all(http: SocketAddr, devices: usize) -> Vec<String> {
    let workers: Vec<_> = (0..REGISTRATION_THREADS)
        .map(|worker| {
            thread::spawn(move || {
                let mut client = load::keep_alive_client(http);
                (worker..devices)
                    .step_by(REGISTRATION_THREADS)
                    .map(|n| {
                        let body = serde_json::json!({
                            "node_id": format!("r{n}"), "product_id": "meter", "auth_info": {"secret": SECRET}
                        });
                        let response = client.post("devices", &body).expect("AddDevice answered");
                        assert_eq!(response.status, 201, "{}", response.text());
                        format!("meter_r{n}")
                    })
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    workers.into_iter().flat_map(|worker| worker.join().expect("a registration thread")).collect()
}

/// Logs every device in from [`LOGIN_THREADS`] threads, each retrying a refused login until
/// [`LOGIN_DEADLINE`]; returns the open connections once all are in.
fn log_in_all(mqtt: SocketAddr, device_ids: &[String]) -> Vec<MqttDevice> {
    let chunk = device_ids.len().div_ceil(LOGIN_THREADS);
    let threads: Vec<_> = device_ids
        .chunks(chunk.max(1))
        .map(|ids| {
            let ids = ids.to_vec();
            thread::spawn(move || ids.iter().map(|id| log_in_retrying(mqtt, id)).collect::<Vec<_>>())
        })
        .collect();
    threads.into_iter().flat_map(|thread| thread.join().expect("a login thread")).collect()
}

fn log_in_retrying(mqtt: SocketAddr, device_id: &str) -> MqttDevice {
    let deadline = Instant::now() + LOGIN_DEADLINE;
    loop {
        match MqttDevice::try_login(mqtt, device_id, SECRET) {
            Ok(device) => return device,
            Err(error) => {
                assert!(Instant::now() < deadline, "{device_id} could not log in again: {error}");
                LOGIN_RETRIES.fetch_add(1, Ordering::Relaxed);
                *LAST_LOGIN_ERROR.lock().unwrap() = error;
                thread::sleep(Duration::from_millis(10));
            }
        }
    }
}

/// Raises this process's open-files soft limit to the hard one; returns the limit.
fn raise_open_files_limit() -> u64 {
    let mut limit = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: `limit` is a valid, writable rlimit.
    assert_eq!(unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) }, 0, "getrlimit");
    let raised = libc::rlimit { rlim_cur: limit.rlim_max, rlim_max: limit.rlim_max };
    // SAFETY: `raised` does not exceed the hard limit.
    if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raised) } == 0 {
        return raised.rlim_cur;
    }
    limit.rlim_cur
}
