//! Application clients: the callers whose round trips are measured.
//!
//! Against ringiot a client is one keep-alive HTTP/1.1 connection sending IoTDA's synchronous
//! CreateCommand (`POST /v5/iot/{project}/devices/{id}/commands`, free-format `paras`); the
//! engine answers only once the device has. Against a broker a client is one MQTT connection
//! that publishes the command to the device's command topic with a `reply_to` topic of its
//! own and waits for the device's answer there. Either way a client has one call in flight.
//!
//! A client runs until the end of the run; calls whose (intended) send time falls in the
//! warm-up are made but not recorded. Successful calls go into the client's own histogram;
//! a call that fails (any non-200, an `error_code` in the body, a timeout, a closed
//! connection) is counted as an error and not timed.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::bail;
use bytes::BytesMut;
use mqttbytes::v4::{self, Packet};
use mqttbytes::QoS;

use crate::fleet::{device_id, next_packet, DeviceSet};
use crate::http::HttpConnection;
use crate::schedule::{DevicePicker, OpenLoopSchedule};
use crate::stats::LatencyHistogram;
use crate::target::Target;
use crate::transport::{Connection, Endpoint};

/// How long a broker client waits for a device's answer (the engine's default command timeout).
const BROKER_ANSWER_DEADLINE: Duration = Duration::from_secs(20);
/// Closed loop: the pause after a failed call.
const ERROR_PAUSE: Duration = Duration::from_millis(1);
const COMMAND_BODY: &[u8] = br#"{"paras":{"n":1}}"#;

/// One application client.
#[derive(Debug)]
pub enum Caller {
    Rest(RestCaller),
    Broker(BrokerCaller),
}

impl Caller {
    /// One command to device `device_index`, answered or failed.
    async fn call(&mut self, device_index: u64) -> Result<(), String> {
        match self {
            Caller::Rest(rest) => rest.call(device_index).await,
            Caller::Broker(broker) => broker.call(device_index).await,
        }
    }
}

#[derive(Debug)]
pub struct RestCaller {
    connection: HttpConnection,
    path_prefix: String,
    token: String,
    /// What a drawn device index names.
    devices: DeviceSet,
}

impl RestCaller {
    pub async fn connect(target: &Target) -> anyhow::Result<RestCaller> {
        Ok(RestCaller {
            connection: HttpConnection::connect(&target.http).await?,
            path_prefix: format!("/v5/iot/{}/devices/", target.project_id),
            token: target.token.clone(),
            devices: DeviceSet::Direct,
        })
    }

    /// Calls the devices of `devices` (the fleet's own by default).
    pub fn calling(self, devices: DeviceSet) -> RestCaller {
        RestCaller { devices, ..self }
    }

    async fn call(&mut self, device_index: u64) -> Result<(), String> {
        let path = format!("{}{}/commands", self.path_prefix, self.devices.device_id(device_index));
        let headers = [("X-Auth-Token", self.token.as_str()), ("Content-Type", "application/json")];
        match self.connection.request("POST", &path, &headers, COMMAND_BODY).await {
            Ok(response) if response.status == 200 && !contains(&response.body, b"\"error_code\"") => Ok(()),
            Ok(response) => Err(format!("{} {}", response.status, response.text())),
            Err(error) => Err(error.to_string()),
        }
    }
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|window| window == needle)
}

/// An application on a broker: publishes commands, reads answers on `bench/{client}/response/#`.
#[derive(Debug)]
pub struct BrokerCaller {
    stream: Connection,
    buffer: BytesMut,
    out: BytesMut,
    reply_to: String,
    client_index: usize,
    sequence: u64,
}

impl BrokerCaller {
    pub async fn connect(broker: &Endpoint, client_index: usize) -> anyhow::Result<BrokerCaller> {
        let mut stream = broker.connect().await?;
        let mut connect = v4::Connect::new(format!("bench-app-{client_index}"));
        connect.keep_alive = 0;
        connect.clean_session = true;
        let mut out = BytesMut::with_capacity(512);
        connect.write(&mut out).map_err(|error| anyhow::anyhow!("encoding CONNECT: {error:?}"))?;
        let reply_to = format!("bench/{client_index}/response");
        let mut subscribe = v4::Subscribe::new(format!("{reply_to}/#"), QoS::AtMostOnce);
        subscribe.pkid = 1;
        subscribe.write(&mut out).map_err(|error| anyhow::anyhow!("encoding SUBSCRIBE: {error:?}"))?;
        stream.send(&out).await?;
        let mut buffer = BytesMut::with_capacity(4096);
        match next_packet(&mut stream, &mut buffer).await? {
            Packet::ConnAck(connack) if connack.code == v4::ConnectReturnCode::Success => {}
            other => bail!("broker refused the application client: {other:?}"),
        }
        match next_packet(&mut stream, &mut buffer).await? {
            Packet::SubAck(_) => {}
            other => bail!("expected SUBACK, got {other:?}"),
        }
        Ok(BrokerCaller { stream, buffer, out, reply_to, client_index, sequence: 0 })
    }

    async fn call(&mut self, device_index: u64) -> Result<(), String> {
        self.sequence += 1;
        let request_id = format!("{}-{}", self.client_index, self.sequence);
        let topic = format!("$oc/devices/{}/sys/commands/request_id={request_id}", device_id(device_index));
        let payload = format!(r#"{{"paras":{{"n":1}},"reply_to":"{}"}}"#, self.reply_to);
        self.out.clear();
        v4::Publish::new(topic, QoS::AtMostOnce, payload)
            .write(&mut self.out)
            .map_err(|e| format!("{e:?}"))?;
        self.stream.send(&self.out).await.map_err(|error| error.to_string())?;
        let expected_suffix = format!("/request_id={request_id}");
        let answer = async {
            loop {
                match next_packet(&mut self.stream, &mut self.buffer).await {
                    Ok(Packet::Publish(publish)) if publish.topic.ends_with(&expected_suffix) => {
                        return Ok(())
                    }
                    Ok(_) => {}
                    Err(error) => return Err(format!("{error:#}")),
                }
            }
        };
        match tokio::time::timeout(BROKER_ANSWER_DEADLINE, answer).await {
            Ok(result) => result,
            Err(_) => Err(format!("no answer within {BROKER_ANSWER_DEADLINE:?}")),
        }
    }
}

/// Counters every client bumps, read by the progress line.
#[derive(Debug, Default)]
pub struct LiveCounters {
    pub ops: AtomicU64,
    pub errors: AtomicU64,
}

/// When one client runs and what it calls.
#[derive(Debug, Clone, Copy)]
pub struct ClientPlan {
    pub client_index: usize,
    pub clients: usize,
    pub devices: u64,
    pub start: Instant,
    pub warmup_end: Instant,
    pub end: Instant,
    /// Open loop at this total rate; `None` = closed loop.
    pub total_rate_per_s: Option<f64>,
}

/// What one client measured after the warm-up.
#[derive(Debug)]
pub struct ClientResult {
    pub latency: LatencyHistogram,
    pub ops: u64,
    pub errors: u64,
    pub first_error: Option<String>,
}

/// Runs one client until `plan.end`.
pub async fn drive(mut caller: Caller, plan: ClientPlan, live: Arc<LiveCounters>) -> ClientResult {
    let schedule = plan
        .total_rate_per_s
        .map(|rate| OpenLoopSchedule::for_client(plan.start, rate, plan.clients, plan.client_index));
    let mut picker = DevicePicker::new(plan.client_index as u64 + 1, plan.devices);
    let mut result = ClientResult { latency: LatencyHistogram::new(), ops: 0, errors: 0, first_error: None };
    for sequence in 0.. {
        let intended = match &schedule {
            Some(schedule) => schedule.intended_send(sequence),
            None => Instant::now(),
        };
        if intended >= plan.end {
            break;
        }
        if intended > Instant::now() {
            tokio::time::sleep_until(tokio::time::Instant::from_std(intended)).await;
        }
        let outcome = caller.call(picker.next_device()).await;
        let done = Instant::now();
        let recorded = intended >= plan.warmup_end;
        match outcome {
            Ok(()) => {
                live.ops.fetch_add(1, Ordering::Relaxed);
                if recorded {
                    result.ops += 1;
                    result.latency.record_us(done.saturating_duration_since(intended).as_micros() as u64);
                }
            }
            Err(error) => {
                live.errors.fetch_add(1, Ordering::Relaxed);
                if recorded {
                    result.errors += 1;
                }
                result.first_error.get_or_insert(error);
                if schedule.is_none() {
                    // A failing target answers at once; do not spin a closed loop on it.
                    tokio::time::sleep(ERROR_PAUSE).await;
                }
            }
        }
    }
    result
}
