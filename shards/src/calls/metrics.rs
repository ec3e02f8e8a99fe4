//! Counters and round-trip histograms of synchronous device calls, one set per shard, merged by
//! whoever scrapes them (`/metrics` on shard 0).

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

#[derive(Debug, Clone, PartialEq)]
pub struct CallMetrics {
    /// `[kind][outcome]`, in the order of [`CallKind::ALL`] and [`Outcome::ALL`].
    counts: [[u64; 8]; 3],
    /// Microseconds from the publish to the device's answer, per kind; answered calls only.
    round_trip_us: [Histogram<u64>; 3],
    /// Exact sum of the recorded round trips, per kind (the histogram's is approximate).
    round_trip_sum_us: [u64; 3],
    /// Answers with an unknown or late request id, dropped.
    pub unmatched_answers: u64,
    /// Answers that were not JSON, dropped.
    pub malformed_answers: u64,
}

impl Default for CallMetrics {
    fn default() -> Self {
        let histogram = || {
            Histogram::new_with_bounds(1, ROUND_TRIP_US_MAX, 3)
                .expect("the bounds are valid (1 ≤ low < high)")
        };
        CallMetrics {
            counts: [[0; 8]; 3],
            round_trip_us: [histogram(), histogram(), histogram()],
            round_trip_sum_us: [0; 3],
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
        self.round_trip_us[kind as usize].saturating_record(micros.max(1));
        self.round_trip_sum_us[kind as usize] += micros;
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
    }
}
