//! When EMIT FINAL releases a window: Kafka Streams' emit-on-window-close rules (KIP-825),
//! which ksqlDB's EMIT FINAL uses.
//!
//! A time window `[start, end)` is final once the window close time (stream time minus the
//! grace period) reaches its end; a session (inclusive end) once the close time (stream time
//! minus grace and gap) passes its end. Emission happens only when the close time moves past
//! the last one emitted at. A time window is also subject to the window store's retention
//! (RETENTION, else size plus grace): once the latest window start stored is more than the
//! retention ahead of a window's start, the window has expired unseen, and is dropped
//! without output — as happens in Kafka Streams when a record jumps far ahead.
//!
//! This file only decides; [`super::aggregate`] holds the windows and emits their rows.

use super::window::WindowSpec;

/// A decision to release windows now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Release {
    /// Windows ending at or before this are final (removed from state).
    pub ending_by: i64,
    /// Of those, windows starting before this have expired: dropped without output.
    pub visible_from: i64,
}

/// Per-task EMIT FINAL progress (checkpointed with the aggregation state).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct FinalEmitter {
    /// The close time of the last release, if any.
    pub last_close: Option<i64>,
    /// The latest window start stored, the window store's clock for retention.
    pub max_start: Option<i64>,
}

impl FinalEmitter {
    /// Notes that a window starting at `start` was updated.
    pub fn stored(&mut self, start: i64) {
        self.max_start = Some(self.max_start.map_or(start, |m| m.max(start)));
    }

    /// What to release at `stream_time`, if anything; records the release.
    pub fn release(
        &mut self,
        spec: &WindowSpec,
        stream_time: i64,
        retention: i64,
    ) -> Option<Release> {
        let (close, ending_by, visible_from) = match *spec {
            WindowSpec::Session { gap, grace } => {
                let close = stream_time.saturating_sub(grace).saturating_sub(gap);
                (close, close.saturating_sub(1), i64::MIN)
            }
            _ => {
                let close = stream_time.saturating_sub(spec.grace());
                let visible = self
                    .max_start
                    .map_or(i64::MIN, |m| m.saturating_sub(retention));
                (close, close, visible)
            }
        };
        if self.last_close.is_some_and(|last| last >= close) {
            return None;
        }
        if !self.anything_closes(spec, close) {
            return None;
        }
        self.last_close = Some(close);
        Some(Release {
            ending_by,
            visible_from,
        })
    }

    /// Whether a window can have closed since the last release (Kafka Streams skips the
    /// store scan, and keeps its last close time, when none can).
    fn anything_closes(&self, spec: &WindowSpec, close: i64) -> bool {
        match *spec {
            WindowSpec::Session { .. } => {
                let upper = close.saturating_sub(1);
                upper >= 0 && upper >= self.last_close.unwrap_or(0).max(0)
            }
            _ => {
                let size = spec.size();
                // Windows starting in [lower, upper] end in (last close, close].
                let upper = close.saturating_sub(size);
                let Some(last) = self.last_close else {
                    return upper >= 0;
                };
                let lower = last.saturating_sub(size).max(0) + 1;
                // Compared without listing windows: this runs for every record that advances
                // stream time.
                upper >= 0 && spec.starts(upper) != spec.starts(lower - 1)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TUMBLING: WindowSpec = WindowSpec::Tumbling { size: 2, grace: 1 };

    #[test]
    fn releases_once_close_time_passes_a_window_end() {
        let mut e = FinalEmitter::default();
        e.stored(0);
        assert_eq!(
            e.release(&TUMBLING, 2, 3),
            None,
            "close time 1: nothing ends"
        );
        e.stored(2);
        assert_eq!(
            e.release(&TUMBLING, 3, 3),
            Some(Release {
                ending_by: 2,
                visible_from: -1
            })
        );
        assert_eq!(e.release(&TUMBLING, 3, 3), None, "close time did not move");
    }

    #[test]
    fn a_jump_past_the_retention_expires_windows_unseen() {
        let mut e = FinalEmitter::default();
        e.stored(0);
        e.stored(4);
        let release = e.release(&TUMBLING, 5, 3).unwrap();
        assert_eq!(release.ending_by, 4);
        assert_eq!(release.visible_from, 1, "[0,2) expired, [2,4) visible");
    }

    #[test]
    fn sessions_close_after_gap_and_grace() {
        let spec = WindowSpec::Session { gap: 5, grace: 6 };
        let mut e = FinalEmitter::default();
        assert_eq!(e.release(&spec, 10, 0), None);
        assert_eq!(e.release(&spec, 12, 0).map(|r| r.ending_by), Some(0));
        assert_eq!(e.release(&spec, 30, 0).map(|r| r.ending_by), Some(18));
    }
}
