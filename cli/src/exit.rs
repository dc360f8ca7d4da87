//! Exit codes of `mailboxctl` (after sysexits.h where one fits). Part of its
//! interface: scripts match on them, the README lists them, and
//! [`code`] is the one table from client errors to codes: exhaustive, so
//! that a new error kind does not compile until it has its code.

use mailbox_client::{Error, ErrorKind};

/// Anything not listed below (including MailboxDeleted and BrokerFull).
pub(crate) const FAILURE: u8 = 1;
/// Usage error; clap exits with it itself.
#[allow(dead_code)]
pub(crate) const USAGE: u8 = 2;
/// The broker refused the message, name, settings or request (EX_DATAERR).
pub(crate) const REFUSED: u8 = 65;
/// No such mailbox or region (EX_NOINPUT).
pub(crate) const NO_SUCH_MAILBOX: u8 = 66;
/// No process with that address or name (EX_NOHOST).
pub(crate) const NO_SUCH_PROCESS: u8 = 68;
/// The broker cannot be reached, ended the connection, or did not
/// answer a timed request within its timeout plus the grace
/// (EX_UNAVAILABLE).
pub(crate) const UNREACHABLE: u8 = 69;
/// A mailbox or region of that name exists with other settings (or
/// another owner), or the well-known name is held by another process
/// (EX_CANTCREAT).
pub(crate) const EXISTS: u8 = 73;
/// Would block: mailbox full or empty (EX_TEMPFAIL).
pub(crate) const WOULD_BLOCK: u8 = 75;
/// The process handling a call left without replying (EX_PROTOCOL).
pub(crate) const NO_REPLY: u8 = 76;
/// Permission denied (EX_NOPERM).
pub(crate) const PERMISSION_DENIED: u8 = 77;
/// The process answering on the socket runs as a user not trusted as
/// the broker (EX_CONFIG: the socket path or --broker-uid is wrong).
pub(crate) const UNTRUSTED_BROKER: u8 = 78;
/// Timed out after a receiver took the message but before it
/// acknowledged it: the message was not withdrawn.
pub(crate) const TIMEOUT_IN_FLIGHT: u8 = 120;
/// A broadcast subscription was cut off: the subscriber's backlog
/// stayed full for longer than its mailbox allows.
pub(crate) const SLOW_CONSUMER: u8 = 121;
/// Timed out (as timeout(1)).
pub(crate) const TIMEOUT: u8 = 124;

/// The exit code for a client error.
pub(crate) fn code(error: &Error) -> u8 {
    match error {
        Error::Connect { .. }
        | Error::Disconnected
        | Error::Rejected(_)
        | Error::NoAnswer { .. } => UNREACHABLE,
        Error::UntrustedBroker { .. } => UNTRUSTED_BROKER,
        Error::Io(_) | Error::Protocol(_) => FAILURE,
        Error::Broker(error) | Error::Partial { error, .. } => match error.kind {
            ErrorKind::InvalidName
            | ErrorKind::InvalidSettings
            | ErrorKind::MessageTooLarge
            | ErrorKind::WrongMessageSize
            | ErrorKind::InvalidRequest => REFUSED,
            ErrorKind::NoSuchMailbox | ErrorKind::NoSuchRegion => NO_SUCH_MAILBOX,
            ErrorKind::NoSuchProcess => NO_SUCH_PROCESS,
            ErrorKind::BrokerShuttingDown => UNREACHABLE,
            ErrorKind::MailboxExists | ErrorKind::RegionExists | ErrorKind::NameTaken => EXISTS,
            ErrorKind::WouldBlock => WOULD_BLOCK,
            ErrorKind::NoReply => NO_REPLY,
            ErrorKind::PermissionDenied => PERMISSION_DENIED,
            ErrorKind::TimeoutInFlight => TIMEOUT_IN_FLIGHT,
            ErrorKind::Timeout => TIMEOUT,
            ErrorKind::SlowConsumer => SLOW_CONSUMER,
            ErrorKind::MailboxDeleted
            | ErrorKind::BrokerFull
            | ErrorKind::NotSubscribed
            | ErrorKind::NotBroadcast
            | ErrorKind::Cancelled
            | ErrorKind::DuplicateRequestId
            | ErrorKind::TooManyRequests
            | ErrorKind::ProtocolViolation
            | ErrorKind::UnsupportedVersion
            | ErrorKind::Internal
            | ErrorKind::Expired
            | ErrorKind::DeadLettered
            | ErrorKind::NotHeld
            | ErrorKind::CallEnded
            | ErrorKind::Purged => FAILURE,
        },
    }
}

#[cfg(test)]
mod tests {
    use std::io;
    use std::time::Duration;

    use mailbox_client::{BrokerError, Error, ErrorKind};

    use super::code;
    use crate::testing::broker;

    #[test]
    fn exit_codes_follow_the_table() {
        let cases = [
            (broker(ErrorKind::MessageTooLarge), 65),
            (broker(ErrorKind::WrongMessageSize), 65),
            (broker(ErrorKind::InvalidName), 65),
            (broker(ErrorKind::InvalidSettings), 65),
            (broker(ErrorKind::NoSuchMailbox), 66),
            (broker(ErrorKind::NoSuchRegion), 66),
            (broker(ErrorKind::RegionExists), 73),
            (broker(ErrorKind::NotSubscribed), 1),
            (broker(ErrorKind::NotBroadcast), 1),
            (Error::Disconnected, 69),
            (
                Error::Rejected(BrokerError::new(ErrorKind::UnsupportedVersion, "v2")),
                69,
            ),
            (broker(ErrorKind::BrokerShuttingDown), 69),
            (
                Error::Connect {
                    path: "/x".into(),
                    source: io::ErrorKind::NotFound.into(),
                    hint: "".into(),
                },
                69,
            ),
            (
                Error::NoAnswer {
                    waited: Duration::from_secs(1),
                },
                69,
            ),
            (
                Error::UntrustedBroker {
                    path: "/x".into(),
                    uid: 65534,
                    pid: 1,
                    named: None,
                },
                78,
            ),
            (broker(ErrorKind::MailboxExists), 73),
            (broker(ErrorKind::WouldBlock), 75),
            (broker(ErrorKind::PermissionDenied), 77),
            (broker(ErrorKind::Timeout), 124),
            (broker(ErrorKind::MailboxDeleted), 1),
            (broker(ErrorKind::BrokerFull), 1),
            (Error::Protocol("?".into()), 1),
            (broker(ErrorKind::NoSuchProcess), 68),
            (broker(ErrorKind::NameTaken), 73),
            (broker(ErrorKind::NoReply), 76),
            (broker(ErrorKind::TimeoutInFlight), 120),
            (broker(ErrorKind::InvalidRequest), 65),
            (broker(ErrorKind::Expired), 1),
            (broker(ErrorKind::DeadLettered), 1),
            (broker(ErrorKind::NotHeld), 1),
            (broker(ErrorKind::CallEnded), 1),
            (broker(ErrorKind::SlowConsumer), 121),
        ];
        for (error, expected) in cases {
            assert_eq!(code(&error), expected, "{error:?}");
        }
    }
}
