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
    usize::try_from(limit.rlim_cur)
        .unwrap_or(usize::MAX)
        .saturating_sub(KEPT_FOR_THE_BROKER)
        .max(1)
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
