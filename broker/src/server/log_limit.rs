//! Keeps one connection from filling the log: the first few lines of a kind
//! in each interval are written, the rest are counted, and one summary line
//! says how many were left out (when the next one comes after the interval,
//! or when the connection closes).
//!
//! Owns no clock: callers pass `now`, so the rule is a plain unit test.

use std::time::{Duration, Instant};

/// Lines of one kind written per connection and interval before the rest
/// are only counted.
pub(crate) const LINES_PER_INTERVAL: u32 = 5;

/// The interval over which [`LINES_PER_INTERVAL`] lines are written.
pub(crate) const INTERVAL: Duration = Duration::from_secs(10);

/// What to do with one more line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// Write it.
    Write,
    /// Write it, after a summary line saying that this many lines of the
    /// previous interval were left out.
    WriteAfterSummary(u64),
    /// Leave it out (it is counted).
    Suppress,
}

/// The lines of one kind of one connection.
#[derive(Debug, Clone)]
pub(crate) struct RepeatedLines {
    interval_started: Instant,
    written: u32,
    suppressed: u64,
}

impl RepeatedLines {
    pub fn new(now: Instant) -> Self {
        Self {
            interval_started: now,
            written: 0,
            suppressed: 0,
        }
    }

    /// Decides about one more line at `now`.
    pub fn line(&mut self, now: Instant) -> Verdict {
        if now.saturating_duration_since(self.interval_started) >= INTERVAL {
            let suppressed = std::mem::take(&mut self.suppressed);
            self.interval_started = now;
            self.written = 1;
            return if suppressed > 0 {
                Verdict::WriteAfterSummary(suppressed)
            } else {
                Verdict::Write
            };
        }
        if self.written < LINES_PER_INTERVAL {
            self.written += 1;
            Verdict::Write
        } else {
            self.suppressed += 1;
            Verdict::Suppress
        }
    }

    /// Lines left out and not yet summarised (to say so when the
    /// connection closes).
    pub fn suppressed(&self) -> u64 {
        self.suppressed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_writes_the_first_lines_then_one_summary_per_interval() {
        let start = Instant::now();
        let mut lines = RepeatedLines::new(start);
        let verdicts: Vec<Verdict> = (0..1000).map(|_| lines.line(start)).collect();
        let written = verdicts.iter().filter(|v| **v == Verdict::Write).count();
        assert_eq!(written, LINES_PER_INTERVAL as usize);
        assert_eq!(lines.suppressed(), 1000 - u64::from(LINES_PER_INTERVAL));
        // Still within the interval: still left out.
        assert_eq!(lines.line(start + INTERVAL / 2), Verdict::Suppress);
        // The next one after the interval is written, after a summary.
        assert_eq!(
            lines.line(start + INTERVAL),
            Verdict::WriteAfterSummary(1000 - u64::from(LINES_PER_INTERVAL) + 1)
        );
        assert_eq!(lines.suppressed(), 0);
        // A quiet interval later, nothing to summarise.
        for _ in 1..LINES_PER_INTERVAL {
            assert_eq!(lines.line(start + INTERVAL), Verdict::Write);
        }
        assert_eq!(lines.line(start + INTERVAL * 3), Verdict::Write);
    }
}
