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
/// The mailbox semantics, a crate of its own (`mailbox-core`) so that its
/// dependencies enforce "no I/O, no clock, no tokio"; re-exported here so
/// the server's paths read `crate::core::...`.
pub use mailbox_core as core;
pub mod server;
pub mod systemd;
