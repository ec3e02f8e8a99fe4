//! Counters and round-trip histograms of synchronous device calls, one set per shard, merged by
//! whoever scrapes them (`/metrics` on shard 0).

use std::time::{Duration, Instant};

use hdrhistogram::Histogram;

use super::CallKind;

/// How a call ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The device answered.
    Ok,
    /// No answer before the deadline.
    Timeout,
    /// The device has no live session.
    Offline,
    /// The request broke the product model or the API's rules.
    Invalid,
    /// No such device (or it was deleted while the call waited).
    Unknown,
    /// The device had as many calls waiting as allowed (or its QoS 1 window was full).
    Busy,
    /// The caller went away while the call waited (an HTTP client hanging up).
    Cancelled,
    /// The device's home shard could not be reached (shutting down).
    Unavailable,
}

impl Outcome {
    pub const ALL: [Outcome; 8] = [
        Outcome::Ok,
        Outcome::Timeout,
        Outcome::Offline,
        Outcome::Invalid,
        Outcome::Unknown,
        Outcome::Busy,
        Outcome::Cancelled,
        Outcome::Unavailable,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Ok => "ok",
            Outcome::Timeout => "timeout",
            Outcome::Offline => "offline",
            Outcome::Invalid => "invalid",
            Outcome::Unknown => "unknown",
            Outcome::Busy => "busy",
            Outcome::Cancelled => "cancelled",
            Outcome::Unavailable => "unavailable",
        }
    }
}

/// Largest round trip recorded exactly: a minute (longer ones are clamped to it).
const ROUND_TRIP_US_MAX: u64 = 60_000_000;
/// The recent round trips are those of the current window and the one before it: the last
/// 60 to 120 s (each shard turns its window on its own clock).
pub const RECENT_WINDOW: Duration = Duration::from_secs(60);

fn round_trip_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, ROUND_TRIP_US_MAX, 3).expect("the bounds are valid (1 ≤ low < high)")
}

/// Round trips of the last one or two [`RECENT_WINDOW`]s, per kind.
#[derive(Debug, Clone, PartialEq)]
struct Recent {
    current: [Histogram<u64>; 3],
    previous: [Histogram<u64>; 3],
    current_since: Instant,
}

impl Recent {
    fn new(now: Instant) -> Self {
        let three = || [round_trip_histogram(), round_trip_histogram(), round_trip_histogram()];
        Recent { current: three(), previous: three(), current_since: now }
    }

    /// Turns the window when it is over (twice over: nothing recent is left).
    fn turn(&mut self, now: Instant) {
        let age = now.saturating_duration_since(self.current_since);
        if age < RECENT_WINDOW {
            return;
        }
        for (previous, current) in self.previous.iter_mut().zip(&mut self.current) {
            if age < 2 * RECENT_WINDOW {
                std::mem::swap(previous, current);
            } else {
                previous.reset();
            }
            current.reset();
        }
        self.current_since = now;
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct CallMetrics {
    /// `[kind][outcome]`, in the order of [`CallKind::ALL`] and [`Outcome::ALL`].
    counts: [[u64; 8]; 3],
    /// Microseconds from the publish to the device's answer, per kind; answered calls only.
    round_trip_us: [Histogram<u64>; 3],
    /// Exact sum of the recorded round trips, per kind (the histogram's is approximate).
    round_trip_sum_us: [u64; 3],
    /// The same round trips, of the last minute or two only.
    recent: Recent,
    /// Answers with an unknown or late request id, dropped.
    pub unmatched_answers: u64,
    /// Answers that were not JSON, dropped.
    pub malformed_answers: u64,
}

impl Default for CallMetrics {
    fn default() -> Self {
        let histogram = round_trip_histogram;
        CallMetrics {
            counts: [[0; 8]; 3],
            round_trip_us: [histogram(), histogram(), histogram()],
            round_trip_sum_us: [0; 3],
            recent: Recent::new(Instant::now()),
            unmatched_answers: 0,
            malformed_answers: 0,
        }
    }
}

impl CallMetrics {
    pub fn count(&mut self, kind: CallKind, outcome: Outcome) {
        self.counts[kind as usize][outcome as usize] += 1;
    }

    pub fn record_round_trip(&mut self, kind: CallKind, micros: u64) {
        self.record_round_trip_at(kind, micros, Instant::now());
    }

    fn record_round_trip_at(&mut self, kind: CallKind, micros: u64, now: Instant) {
        self.round_trip_us[kind as usize].saturating_record(micros.max(1));
        self.round_trip_sum_us[kind as usize] += micros;
        self.recent.turn(now);
        self.recent.current[kind as usize].saturating_record(micros.max(1));
    }

    /// The round trips of the last 60–120 s ([`RECENT_WINDOW`]), per kind, as of `now`.
    pub fn recent_round_trip_us(&mut self, kind: CallKind, now: Instant) -> Histogram<u64> {
        self.recent.turn(now);
        let mut recent = self.recent.previous[kind as usize].clone();
        // Same bounds, so adding cannot fail.
        let _ = recent.add(&self.recent.current[kind as usize]);
        recent
    }

    pub fn round_trip_sum_us(&self, kind: CallKind) -> u64 {
        self.round_trip_sum_us[kind as usize]
    }

    pub fn calls(&self, kind: CallKind, outcome: Outcome) -> u64 {
        self.counts[kind as usize][outcome as usize]
    }

    pub fn round_trip_us(&self, kind: CallKind) -> &Histogram<u64> {
        &self.round_trip_us[kind as usize]
    }

    /// Adds another shard's figures to these.
    pub fn merge(&mut self, other: &CallMetrics) {
        for (mine, theirs) in self.counts.iter_mut().zip(&other.counts) {
            for (a, b) in mine.iter_mut().zip(theirs) {
                *a += b;
            }
        }
        for (mine, theirs) in self.round_trip_us.iter_mut().zip(&other.round_trip_us) {
            // Same bounds on every shard, so adding cannot fail.
            let _ = mine.add(theirs);
        }
        for (mine, theirs) in self.round_trip_sum_us.iter_mut().zip(&other.round_trip_sum_us) {
            *mine += theirs;
        }
        // Each shard's recent window, as of the scrape, into this one's previous window (the
        // merged copy is only read).
        let now = Instant::now();
        let mut other = other.clone();
        for kind in CallKind::ALL {
            let theirs = other.recent_round_trip_us(kind, now);
            self.recent.turn(now);
            let _ = self.recent.previous[kind as usize].add(&theirs);
        }
        self.unmatched_answers += other.unmatched_answers;
        self.malformed_answers += other.malformed_answers;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shards_merge_counts_and_histograms() {
        let mut a = CallMetrics::default();
        let mut b = CallMetrics::default();
        a.count(CallKind::Command, Outcome::Ok);
        b.count(CallKind::Command, Outcome::Ok);
        b.count(CallKind::PropertiesGet, Outcome::Busy);
        a.record_round_trip(CallKind::Command, 100);
        b.record_round_trip(CallKind::Command, 300);
        b.record_round_trip(CallKind::Command, 0);
        b.unmatched_answers = 2;
        a.merge(&b);
        assert_eq!(a.calls(CallKind::Command, Outcome::Ok), 2);
        assert_eq!(a.calls(CallKind::PropertiesGet, Outcome::Busy), 1);
        assert_eq!(a.calls(CallKind::PropertiesSet, Outcome::Busy), 0);
        let histogram = a.round_trip_us(CallKind::Command);
        assert_eq!(histogram.len(), 3);
        assert_eq!(histogram.min(), 1, "a zero round trip counts as 1 µs");
        assert!(histogram.value_at_quantile(1.0) >= 300);
        assert_eq!(a.round_trip_sum_us(CallKind::Command), 400);
        assert_eq!(a.unmatched_answers, 2);
        assert_eq!(
            a.recent_round_trip_us(CallKind::Command, Instant::now()).len(),
            3,
            "recent ones merge too"
        );
    }

    #[test]
    fn recent_round_trips_are_those_of_the_last_one_or_two_windows() {
        let start = Instant::now();
        let mut metrics = CallMetrics { recent: Recent::new(start), ..Default::default() };
        metrics.record_round_trip_at(CallKind::Command, 1_000, start);
        metrics.record_round_trip_at(CallKind::Command, 2_000, start + RECENT_WINDOW / 2);
        assert_eq!(metrics.recent_round_trip_us(CallKind::Command, start + RECENT_WINDOW / 2).len(), 2);
        // One window later the first window is the previous one: still recent.
        metrics.record_round_trip_at(CallKind::Command, 50_000, start + RECENT_WINDOW);
        let recent = metrics.recent_round_trip_us(CallKind::Command, start + RECENT_WINDOW);
        assert_eq!(recent.len(), 3);
        // Another window later only the 50 ms one is left; two windows of silence: nothing.
        let recent = metrics.recent_round_trip_us(CallKind::Command, start + 2 * RECENT_WINDOW);
        assert_eq!(recent.len(), 1);
        assert!((49_000..=51_000).contains(&recent.value_at_quantile(0.5)), "the 50 ms one");
        assert!(metrics.recent_round_trip_us(CallKind::Command, start + 5 * RECENT_WINDOW).is_empty());
        assert_eq!(metrics.round_trip_us(CallKind::Command).len(), 3, "the since-start histogram keeps all");
        assert!(metrics.recent_round_trip_us(CallKind::PropertiesGet, start + 5 * RECENT_WINDOW).is_empty());
    }
}
