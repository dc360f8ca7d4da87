//! `mailboxd`, the mailbox broker, as a library.
//!
//! - [`core`]: the mailbox semantics, synchronous and I/O-free.
//! - [`server`]: the tokio tasks that own the Unix sockets and drive the core.
//! - [`systemd`]: readiness, status and watchdog notifications, socket
//!   activation and journal logging, spoken directly (no libsystemd).
//! - [`config`]: the configuration file (`/etc/mailbox/mailboxd.toml`),
//!   read and checked.
//!
//! The binary (`src/bin/mailboxd.rs`) only parses arguments and calls
//! [`server::run`] with a listener it bound, so tests bind their own.

pub mod config;
pub mod core;
pub mod server;
pub mod systemd;
