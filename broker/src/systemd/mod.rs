//! Running under systemd, without libsystemd: the three small protocols a
//! service manager speaks to its services, each read from the environment
//! the manager sets.
//!
//! - [`notify`]: `sd_notify`, datagrams to `$NOTIFY_SOCKET` (readiness,
//!   status, stopping, watchdog pings).
//! - [`activation`]: socket activation, a listening socket inherited as file
//!   descriptor 3 (`$LISTEN_FDS`, `$LISTEN_PID`).
//! - [`journal`]: whether stderr goes to the journal (`$JOURNAL_STREAM`), and
//!   a log format with syslog priority prefixes for it.
//!
//! Outside systemd none of these variables is set and everything here does
//! nothing: the broker binds its own socket and logs as usual.

pub mod activation;
pub mod journal;
pub mod notify;

pub use activation::{take_listener, ActivationError};
pub use notify::Notifier;
