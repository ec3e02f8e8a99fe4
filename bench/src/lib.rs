//! ringiot-bench: end-to-end benchmarks of the ringiot engine, as its users would see it.
//!
//! The bench starts the release engine (or targets a running one), registers a fleet through
//! the REST API, logs the fleet in over MQTT as IoTDA devices, and measures from the outside:
//! every time is taken on the bench's clock around real sockets, so a figure includes the
//! engine, the kernel's loopback and the bench itself. On a small machine the bench and the
//! engine compete for the same cores — each scenario prints the CPU both used so a reader can
//! tell which one limited a figure.
//!
//! # Layout
//!
//! | module | what it holds |
//! |---|---|
//! | [`target`] | starting/stopping the engine (temp data dir, generated config, port 0, ready line) |
//! | [`registration`] | the product and devices created over REST before a run |
//! | [`fleet`] | the simulated devices: login, answering downlink requests, source-address spread |
//! | [`downlink`] | what the devices received (messages per device in order, command arrival times) |
//! | [`clients`] | the application callers (REST for ringiot, MQTT for a broker) and the client loop |
//! | [`schedule`] | closed/open loop timing and the device picker |
//! | [`http`] | the minimal keep-alive HTTP/1.1 client |
//! | [`transport`] | TCP or TLS (`--tls`, rustls, full handshakes): endpoints and connections |
//! | [`mosquitto`] | the Mosquitto baseline broker |
//! | [`observe`] | `/metrics` parsing, RSS and per-thread CPU from `/proc` |
//! | [`stats`] | histograms, merging, the JSON result line |
//! | [`scenarios`] | `command-rtt`, `connect`, `messages`, `batch`, `gateway` |
//! | [`report`] | medians over repeated runs as markdown |
//! | [`limits`] | the open-files budget |
//!
//! # Invariants
//!
//! - A measured call has exactly one request in flight per client connection; clients never
//!   share a socket or a histogram.
//! - Nothing measured waits on a sleep except the open-loop schedule, whose lateness is
//!   charged to the latency (coordinated omission).
//! - A timing never fails a test: the unit tests check the arithmetic, not the machine.
//! - With `--tls` every connection makes a full handshake (no session resumption), so a
//!   login's time and CPU always include one; ringiot and the baseline are reached with the
//!   same client configuration and serve the same certificate.

pub mod clients;
pub mod downlink;
pub mod fleet;
pub mod http;
pub mod limits;
pub mod mosquitto;
pub mod observe;
pub mod registration;
pub mod report;
pub mod scenarios;
pub mod schedule;
pub mod stats;
pub mod target;
pub mod transport;
