//! The descriptor limit: how many connections it leaves room for, and what
//! the accept loop does when it is reached anyway (other files, or the
//! system-wide limit): a spare descriptor is given up to accept the waiting
//! connection and close it at once (as nginx and libuv do), so the loop
//! neither spins on a connection it cannot take nor stalls everyone behind
//! it. Logged once, then counted.
//!
//! Raising the soft limit to the hard one is the binary's business
//! (`mailboxd` does it at start); this reads the limit in force.

use std::fs::File;
use std::io;
use std::time::{Duration, Instant};

use tokio::net::UnixListener;
use tracing::warn;

use super::log_limit::{RepeatedLines, Verdict};

/// Descriptors kept for the broker itself (the runtime, the listener, the
/// timer, logging, the configuration file, the spare, the refusals under
/// way): connections get the rest of the limit.
pub(crate) const KEPT_FOR_THE_BROKER: usize = 128;

/// How many connections the descriptor limit leaves room for.
pub(crate) fn connection_ceiling() -> usize {
    open_files_limit()
        .saturating_sub(KEPT_FOR_THE_BROKER)
        .max(1)
}

/// The soft limit on open descriptors in force (`RLIMIT_NOFILE`);
/// `usize::MAX` when unlimited or unknown.
pub(crate) fn open_files_limit() -> usize {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `limit` is a valid rlimit for the call to fill.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } != 0
        || limit.rlim_cur == libc::RLIM_INFINITY
    {
        return usize::MAX;
    }
    usize::try_from(limit.rlim_cur).unwrap_or(usize::MAX)
}

/// How many descriptors the process has open now (the entries of
/// `/proc/self/fd`, less the one reading it); `None` without `/proc`.
pub(crate) fn open_files() -> Option<usize> {
    let entries = std::fs::read_dir("/proc/self/fd").ok()?;
    Some(entries.count().saturating_sub(1))
}

/// What the configured limits need in descriptors next to what the
/// open-file limit allows: a warning to log when they cannot all fit
/// (connections, memory files held, the broker's own), `None` when they
/// do. Each region takes two more, and is bounded by the memory budget
/// rather than by a count.
pub(crate) fn fit_warning(
    max_connections: usize,
    max_held_files: usize,
    open_files_limit: usize,
) -> Option<String> {
    let needed = max_connections
        .saturating_add(max_held_files)
        .saturating_add(KEPT_FOR_THE_BROKER);
    (needed > open_files_limit).then(|| {
        format!(
            "limits.max_connections ({max_connections}) + limits.max_held_files \
             ({max_held_files}) + {KEPT_FOR_THE_BROKER} kept for the broker = {needed} \
             descriptors, above the open-file limit (RLIMIT_NOFILE = {open_files_limit}); \
             at that limit new connections are closed at once and file sends fail: raise \
             LimitNOFILE= (ulimit -n) or lower those limits"
        )
    })
}

/// The descriptor figures `status` reports, refreshed as it asks: the
/// count of open files is read from `/proc` at most once a second, since
/// it is read under the broker's lock and a process of many connections
/// has a long directory.
#[derive(Debug, Default)]
pub(crate) struct Figures {
    open_files: Option<(Instant, Option<usize>)>,
}

impl Figures {
    /// `(open_files_limit, open_files)` now (the count up to a second old).
    pub fn read(&mut self) -> (usize, Option<usize>) {
        let now = Instant::now();
        let fresh = self
            .open_files
            .filter(|(when, _)| now.duration_since(*when) < Duration::from_secs(1));
        let open = match fresh {
            Some((_, open)) => open,
            None => {
                let open = open_files();
                self.open_files = Some((now, open));
                open
            }
        };
        (open_files_limit(), open)
    }
}

/// Whether `error` says the process or the system is out of descriptors.
pub(crate) fn is_exhausted(error: &io::Error) -> bool {
    matches!(error.raw_os_error(), Some(libc::EMFILE | libc::ENFILE))
}

/// A descriptor held in reserve, to be able to accept (and close) a
/// connection when the limit is reached.
pub(crate) struct Spare {
    file: Option<File>,
    log: RepeatedLines,
}

impl Spare {
    pub fn new() -> Self {
        Self {
            file: File::open("/dev/null").ok(),
            log: RepeatedLines::new(Instant::now()),
        }
    }

    /// Accepts and closes the connection waiting at `listener` with the
    /// spare descriptor, then takes a spare again. Without one (it could
    /// not be taken back yet) waits a moment instead, so the loop never
    /// spins.
    pub async fn shed(&mut self, listener: &UnixListener, error: &io::Error) {
        match self.log.line(Instant::now()) {
            Verdict::Suppress => {}
            verdict => {
                let suppressed = match verdict {
                    Verdict::WriteAfterSummary(n) => n,
                    _ => 0,
                };
                warn!(
                    %error,
                    suppressed,
                    "out of descriptors: closing new connections at once until some close \
                     (raise LimitNOFILE= or ulimit -n, or lower limits.max_connections)"
                );
            }
        }
        if self.file.take().is_some() {
            // The spare is closed: the accept has a descriptor to use.
            if let Ok(Ok((stream, _))) =
                tokio::time::timeout(Duration::from_millis(10), listener.accept()).await
            {
                drop(stream);
            }
            self.file = File::open("/dev/null").ok();
        }
        if self.file.is_none() {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_that_cannot_fit_under_the_open_file_limit_are_named() {
        assert_eq!(fit_warning(1000, 4096, 1 << 20), None);
        let warning = fit_warning(16_384, 4096, 1024).expect("does not fit");
        assert!(
            warning.contains("limits.max_connections (16384)"),
            "{warning}"
        );
        assert!(
            warning.contains("limits.max_held_files (4096)"),
            "{warning}"
        );
        assert!(warning.contains("RLIMIT_NOFILE = 1024"), "{warning}");
    }

    #[test]
    fn open_files_are_counted_from_proc() {
        // Stdin, stdout, stderr and this file at least (other tests open
        // and close theirs meanwhile: no exact count).
        let file = File::open("/dev/null").expect("open");
        assert!(open_files().expect("/proc") >= 4);
        drop(file);
        assert!(open_files_limit() >= 4);
    }
}
