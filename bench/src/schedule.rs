//! When each client sends, and to which device.
//!
//! Closed loop: a client sends its next request as soon as the previous answer is in, so the
//! offered load adapts to the server and a stall shows up as fewer requests, not as latency.
//! Open loop: the total rate R is split evenly over C clients; client `c` sends its `k`-th
//! request at the intended time `start + phase_c + k · C/R`, with the phases spread so the
//! clients do not fire together. Latency is measured from the *intended* time, not from the
//! moment the request actually left: a client that falls behind sends at once and each late
//! request carries its waiting time (the correction for coordinated omission).

use std::time::{Duration, Instant};

/// Intended send times of one open-loop client.
#[derive(Debug, Clone, Copy)]
pub struct OpenLoopSchedule {
    first_send: Instant,
    interval: Duration,
}

impl OpenLoopSchedule {
    /// The schedule of client `client_index` out of `clients` sharing `total_rate_per_s`.
    pub fn for_client(start: Instant, total_rate_per_s: f64, clients: usize, client_index: usize) -> Self {
        assert!(total_rate_per_s > 0.0 && clients > 0 && client_index < clients);
        let interval = Duration::from_secs_f64(clients as f64 / total_rate_per_s);
        let phase = interval.mul_f64(client_index as f64 / clients as f64);
        OpenLoopSchedule { first_send: start + phase, interval }
    }

    /// When request number `sequence` (from 0) should leave.
    pub fn intended_send(&self, sequence: u64) -> Instant {
        self.first_send + self.interval.mul_f64(sequence as f64)
    }

    pub fn interval(&self) -> Duration {
        self.interval
    }
}

/// xorshift64*: a tiny seeded generator for picking devices (not cryptographic; reproducible
/// per client so runs against two targets draw the same device sequence).
#[derive(Debug, Clone)]
pub struct DevicePicker {
    state: u64,
    devices: u64,
}

impl DevicePicker {
    pub fn new(seed: u64, devices: u64) -> DevicePicker {
        assert!(devices > 0);
        // Spread small seeds over the state space; the state must never be zero.
        let state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
        DevicePicker { state, devices }
    }

    pub fn next_device(&mut self) -> u64 {
        self.state ^= self.state >> 12;
        self.state ^= self.state << 25;
        self.state ^= self.state >> 27;
        let random = self.state.wrapping_mul(0x2545_F491_4F6C_DD1D);
        // Multiply-shift maps uniformly onto 0..devices without a division.
        ((u128::from(random) * u128::from(self.devices)) >> 64) as u64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn intended_times_are_evenly_spaced_at_the_per_client_rate() {
        let start = Instant::now();
        let schedule = OpenLoopSchedule::for_client(start, 1000.0, 10, 0);
        assert_eq!(schedule.interval(), Duration::from_millis(10));
        assert_eq!(schedule.intended_send(0), start);
        assert_eq!(schedule.intended_send(1), start + Duration::from_millis(10));
        assert_eq!(schedule.intended_send(100), start + Duration::from_secs(1));
    }

    #[test]
    fn clients_are_phased_across_one_interval() {
        let start = Instant::now();
        let phases: Vec<Duration> = (0..4)
            .map(|client| OpenLoopSchedule::for_client(start, 400.0, 4, client).intended_send(0) - start)
            .collect();
        let expected: Vec<Duration> =
            [0, 2_500, 5_000, 7_500].iter().map(|&us| Duration::from_micros(us)).collect();
        assert_eq!(phases, expected);
    }

    #[test]
    fn all_clients_together_send_at_the_total_rate() {
        let start = Instant::now();
        let horizon = start + Duration::from_secs(1);
        let clients = 7;
        let sent: u64 = (0..clients)
            .map(|client| {
                let schedule = OpenLoopSchedule::for_client(start, 7_000.0, clients, client);
                (0..).take_while(|&k| schedule.intended_send(k) < horizon).count() as u64
            })
            .sum();
        assert_eq!(sent, 7_000);
    }

    #[test]
    fn picked_devices_stay_in_range_and_cover_it() {
        let mut picker = DevicePicker::new(3, 10);
        let mut seen = [0u32; 10];
        for _ in 0..10_000 {
            seen[picker.next_device() as usize] += 1;
        }
        assert!(seen.iter().all(|&count| (800..1200).contains(&count)), "{seen:?}");
    }

    #[test]
    fn the_same_seed_picks_the_same_devices() {
        let mut first = DevicePicker::new(42, 1_000);
        let mut second = DevicePicker::new(42, 1_000);
        assert!((0..100).all(|_| first.next_device() == second.next_device()));
    }
}
