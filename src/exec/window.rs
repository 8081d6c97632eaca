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
            WindowSpec::Tumbling { grace, .. } | WindowSpec::Hopping { grace, .. } => *grace,
        }
    }

    /// The window size in ms.
    pub fn size(&self) -> i64 {
        match self {
            WindowSpec::Tumbling { size, .. } | WindowSpec::Hopping { size, .. } => *size,
        }
    }

    /// The windows containing `ts`, in ascending start order.
    pub fn assign(&self, ts: i64) -> Vec<TimeWindow> {
        match *self {
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

    /// Whether `window` no longer accepts records once stream time is `stream_time`.
    pub fn is_closed(&self, window: &TimeWindow, stream_time: i64) -> bool {
        window.end.saturating_add(self.grace()) <= stream_time
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
    fn closes_after_grace() {
        let w = WindowSpec::Tumbling { size: 10, grace: 5 };
        let win = TimeWindow { start: 0, end: 10 };
        assert!(!w.is_closed(&win, 14));
        assert!(w.is_closed(&win, 15));
    }
}
