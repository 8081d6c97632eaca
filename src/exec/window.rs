//! Window assignment for streaming aggregates.
//!
//! Maps a record's event time to the time windows it belongs to (`TUMBLING`, `HOPPING`),
//! aligned to the epoch as Kafka Streams aligns them, and says when a window has closed:
//! when stream time reaches its end plus the grace period. Pure functions only: state lives
//! in [`crate::state`], and emitting results is [`super::aggregate`]'s job.

/// ksqlDB's default grace period when a window gives none: 24 hours.
pub const DEFAULT_GRACE_MS: i64 = 24 * 60 * 60 * 1000;

/// A time window `[start, end)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TimeWindow {
    /// Inclusive start, epoch ms.
    pub start: i64,
    /// Exclusive end, epoch ms.
    pub end: i64,
}

/// How records are grouped in time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WindowSpec {
    /// Fixed, non-overlapping windows of `size` ms.
    Tumbling {
        /// Window size, ms.
        size: i64,
        /// Grace period, ms.
        grace: i64,
    },
    /// Sessions of activity separated by more than `gap` ms without records.
    Session {
        /// The inactivity gap, ms.
        gap: i64,
        /// Grace period, ms.
        grace: i64,
    },
    /// Windows of `size` ms starting every `advance` ms.
    Hopping {
        /// Window size, ms.
        size: i64,
        /// Distance between window starts, ms.
        advance: i64,
        /// Grace period, ms.
        grace: i64,
    },
}

impl WindowSpec {
    /// The grace period in ms.
    pub fn grace(&self) -> i64 {
        match self {
            WindowSpec::Tumbling { grace, .. }
            | WindowSpec::Hopping { grace, .. }
            | WindowSpec::Session { grace, .. } => *grace,
        }
    }

    /// The window size in ms.
    pub fn size(&self) -> i64 {
        match self {
            WindowSpec::Tumbling { size, .. } | WindowSpec::Hopping { size, .. } => *size,
            WindowSpec::Session { gap, .. } => *gap,
        }
    }

    /// The windows containing `ts`, in ascending start order (a new session: `[ts, ts]`).
    pub fn assign(&self, ts: i64) -> Vec<TimeWindow> {
        match *self {
            WindowSpec::Session { .. } => vec![TimeWindow { start: ts, end: ts }],
            WindowSpec::Tumbling { size, .. } => {
                let start = ts - ts.rem_euclid(size);
                vec![TimeWindow {
                    start,
                    end: start.saturating_add(size),
                }]
            }
            WindowSpec::Hopping { size, advance, .. } => {
                // As Kafka Streams' TimeWindows.windowsFor: every start in (ts - size, ts].
                let last = ts - ts.rem_euclid(advance);
                let mut windows = Vec::new();
                let mut start = last;
                while start > ts - size {
                    if start >= 0 {
                        windows.push(TimeWindow {
                            start,
                            end: start.saturating_add(size),
                        });
                    }
                    start -= advance;
                }
                windows.reverse();
                windows
            }
        }
    }

    /// The first and last start of the time windows containing `ts` (a time ≥ 0), the same
    /// windows [`Self::assign`] lists, without listing them; `None` for sessions.
    pub fn starts(&self, ts: i64) -> Option<(i64, i64)> {
        let (size, advance) = match *self {
            WindowSpec::Tumbling { size, .. } => (size, size),
            WindowSpec::Hopping { size, advance, .. } => (size, advance),
            WindowSpec::Session { .. } => return None,
        };
        let last = ts - ts.rem_euclid(advance);
        // The earliest start still after `ts - size`, and not before the epoch.
        let back = (last - (ts - size) - 1).div_euclid(advance);
        Some(((last - back * advance).max(0), last))
    }

    /// Whether `window` no longer accepts records once stream time is `stream_time`.
    pub fn is_closed(&self, window: &TimeWindow, stream_time: i64) -> bool {
        window.end <= self.closed_up_to(stream_time)
    }

    /// The latest window end that is closed at `stream_time` (windows ending at or before it).
    /// Time windows close at end + grace; a session (whose end is inclusive) once stream time
    /// passes end + gap + grace, as in Kafka Streams.
    pub fn closed_up_to(&self, stream_time: i64) -> i64 {
        match self {
            WindowSpec::Session { gap, grace } => stream_time
                .saturating_sub(grace.saturating_add(*gap))
                .saturating_sub(1),
            _ => stream_time.saturating_sub(self.grace()),
        }
    }

    /// Whether a session ending at `end` and a record at `ts` belong together.
    pub fn session_touches(&self, window: &TimeWindow, ts: i64) -> bool {
        match self {
            WindowSpec::Session { gap, .. } => {
                window.end.saturating_add(*gap) >= ts && window.start.saturating_sub(*gap) <= ts
            }
            _ => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tumbling_aligns_to_epoch() {
        let w = WindowSpec::Tumbling {
            size: 300_000,
            grace: 0,
        };
        assert_eq!(
            w.assign(299_999),
            vec![TimeWindow {
                start: 0,
                end: 300_000
            }]
        );
        assert_eq!(
            w.assign(300_000),
            vec![TimeWindow {
                start: 300_000,
                end: 600_000
            }]
        );
    }

    #[test]
    fn hopping_covers_every_overlapping_window() {
        let w = WindowSpec::Hopping {
            size: 10,
            advance: 5,
            grace: 0,
        };
        let starts: Vec<i64> = w.assign(12).iter().map(|w| w.start).collect();
        assert_eq!(starts, vec![5, 10]);
        let starts: Vec<i64> = w.assign(3).iter().map(|w| w.start).collect();
        assert_eq!(starts, vec![0]);
    }

    #[test]
    fn starts_bound_the_assigned_windows() {
        for spec in [
            WindowSpec::Tumbling { size: 10, grace: 0 },
            WindowSpec::Hopping {
                size: 10,
                advance: 3,
                grace: 0,
            },
        ] {
            for ts in 0..40 {
                let windows = spec.assign(ts);
                let bounds = windows
                    .first()
                    .zip(windows.last())
                    .map(|(f, l)| (f.start, l.start));
                assert_eq!(spec.starts(ts), bounds, "{spec:?} at {ts}");
            }
        }
    }

    #[test]
    fn closes_after_grace() {
        let w = WindowSpec::Tumbling { size: 10, grace: 5 };
        let win = TimeWindow { start: 0, end: 10 };
        assert!(!w.is_closed(&win, 14));
        assert!(w.is_closed(&win, 15));
    }
}
