//! Human durations as `mailboxctl --timeout` takes them: `500ms`, `2s`,
//! `1.5s`, `1m`, `1h`.
//!
//! The syntax is [`mailbox_proto::units`]', shared with the broker's
//! configuration and flags; these names stay for the client's public API.

/// Parses a number (optionally with a decimal fraction) followed by a unit:
/// `ms`, `s`, `min` (or `m`) or `h`. The result is exact to the nanosecond.
///
/// ```
/// use std::time::Duration;
/// use mailbox_client::parse_duration;
/// assert_eq!(parse_duration("500ms").unwrap(), Duration::from_millis(500));
/// assert_eq!(parse_duration("1.5s").unwrap(), Duration::from_millis(1500));
/// assert_eq!(parse_duration("2m").unwrap(), Duration::from_secs(120));
/// assert!(parse_duration("10").is_err()); // the unit is required
/// ```
pub use mailbox_proto::units::parse_duration;

/// Why a string is not a duration (or a size, or a mode: the three share
/// one error type in [`mailbox_proto::units`]).
pub type ParseDurationError = mailbox_proto::units::ParseError;
