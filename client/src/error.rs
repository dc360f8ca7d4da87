//! The client's one error type, shared by the async and the blocking client.
//!
//! It separates what the broker said ([`Error::Broker`], typed by
//! [`ErrorKind`]) from what happened to the connection (could not connect,
//! refused, closed, broken). It does not decide what a program should do about
//! an error: `mailboxctl` maps kinds to exit codes and hints itself.

use std::io;
use std::path::PathBuf;

use mailbox_proto::{BrokerError, ErrorKind};

/// Everything that can go wrong talking to `mailboxd`.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The socket could not be connected to.
    #[error("cannot connect to mailboxd at {}: {source}; {hint}", .path.display())]
    Connect {
        /// The socket path tried.
        path: PathBuf,
        /// Why the connection failed.
        source: io::Error,
        /// What to do about it: start the broker, or, for a socket this
        /// user may not open, whose directory or socket it is and what
        /// access it needs.
        hint: Box<str>,
    },
    /// The process answering on the socket runs as a user this client does
    /// not trust as the broker (see [`ConnectOptions`](crate::ConnectOptions)):
    /// nothing was sent to it.
    #[error(
        "the process answering at {} (pid {pid}) runs as uid {uid}, which this client does \
         not trust as the broker (trusted: root, the user mailbox, your own uid {}{}); \
         if it is the broker you mean, set MAILBOX_BROKER_UID={uid}",
        .path.display(),
        // SAFETY: geteuid cannot fail.
        unsafe { libc::geteuid() },
        .named.as_ref().map(|user| format!(", and {user} named by MAILBOX_BROKER_UID or the option")).unwrap_or_default()
    )]
    UntrustedBroker {
        /// The socket path.
        path: PathBuf,
        /// The uid the answering process runs as (`SO_PEERCRED`).
        uid: u32,
        /// Its process id.
        pid: u32,
        /// The user also trusted by `$MAILBOX_BROKER_UID` or the option.
        named: Option<Box<str>>,
    },
    /// The broker did not answer within a timed request's timeout plus
    /// [`ANSWER_GRACE`](crate::ANSWER_GRACE) (or a connect's timeout): it is
    /// stopped, hung or overloaded. The blocking client closes the
    /// connection (every later call fails with this error); the async one
    /// withdraws the request and keeps the connection.
    #[error(
        "the broker did not answer within {waited:?}; it may be stopped (SIGSTOP) or \
         overloaded"
    )]
    NoAnswer {
        /// How long the client waited.
        waited: std::time::Duration,
    },
    /// Reading from or writing to the connection failed.
    #[error("i/o error on the broker connection: {0}")]
    Io(#[from] io::Error),
    /// The broker sent something this client cannot understand (an
    /// undecodable or unexpected frame). The connection is closed.
    #[error("protocol error: {0}")]
    Protocol(String),
    /// The broker refused the handshake or ended the connection with a
    /// `Goodbye` (for example because it is shutting down).
    #[error("the broker ended the connection: {0}")]
    Rejected(BrokerError),
    /// The broker answered the request with an error. For a batch send this
    /// means that **none** of its messages was sent.
    ///
    /// The client also refuses a few requests itself, without sending them,
    /// typed as the broker would have refused them: a request above the
    /// broker's frame limit (kind `MessageTooLarge`) and a reply to a
    /// message that is no call's request (kind `NotHeld`). Either way the
    /// connection is still usable.
    ///
    /// Every kind of the protocol comes through here like the others:
    ///
    /// ```
    /// use mailbox_client::{BrokerError, Error, ErrorKind};
    /// let error = Error::Broker(BrokerError::new(ErrorKind::NameTaken, "svc is held by process 4"));
    /// assert_eq!(error.kind(), Some(ErrorKind::NameTaken));
    /// assert!(error.is_broker_answer());
    /// ```
    #[error("{0}")]
    Broker(BrokerError),
    /// A batch send stopped part-way: the first `admitted` messages (at
    /// least one) were accepted, with sequence numbers `first_sequence..`,
    /// and the rest were not and never will be; `error` says why (kind
    /// `WouldBlock`, `Timeout`, `Cancelled`, `MailboxDeleted`,
    /// `BrokerShuttingDown` or `TooManyRequests`). To send the rest, send
    /// the payloads from index `admitted` on again.
    ///
    /// [`Error::kind`] is the kind of `error`, so code that only looks at
    /// kinds must not resend a whole batch on, say, `WouldBlock` without
    /// first checking [`Error::admitted`].
    ///
    /// ```
    /// use mailbox_client::{BrokerError, Error, ErrorKind};
    /// let error = Error::Partial {
    ///     admitted: 3,
    ///     first_sequence: 10,
    ///     error: BrokerError::new(ErrorKind::WouldBlock, "mailbox jobs is full"),
    /// };
    /// assert_eq!(error.kind(), Some(ErrorKind::WouldBlock));
    /// assert_eq!(error.admitted(), 3);
    /// assert_eq!(
    ///     error.to_string(),
    ///     "batch send stopped after 3 of its messages (#10 to #12); the rest were not \
    ///      sent and never will be: would block: mailbox jobs is full"
    /// );
    /// ```
    #[error(
        "batch send stopped after {admitted} of its messages (#{first_sequence} to #{}); \
         the rest were not sent and never will be: {error}",
        .first_sequence + u64::from(*.admitted).saturating_sub(1)
    )]
    Partial {
        /// How many messages, from the first of the batch, were accepted.
        admitted: u32,
        /// The sequence number of the first accepted one; the others follow
        /// without gaps.
        first_sequence: u64,
        /// Why the rest were not accepted.
        error: BrokerError,
    },
    /// The broker closed the connection without saying why.
    #[error("the broker closed the connection")]
    Disconnected,
}

impl Error {
    /// The broker's kind of error, when the broker gave one (an error answer
    /// or a `Goodbye`); `None` for connection failures.
    ///
    /// ```
    /// use mailbox_client::{BrokerError, Error, ErrorKind};
    /// let error = Error::Broker(BrokerError::new(ErrorKind::WouldBlock, "mailbox is empty"));
    /// assert_eq!(error.kind(), Some(ErrorKind::WouldBlock));
    /// assert_eq!(Error::Disconnected.kind(), None);
    /// ```
    pub fn kind(&self) -> Option<ErrorKind> {
        match self {
            Error::Broker(error) | Error::Rejected(error) | Error::Partial { error, .. } => {
                Some(error.kind)
            }
            Error::Connect { .. }
            | Error::UntrustedBroker { .. }
            | Error::NoAnswer { .. }
            | Error::Io(_)
            | Error::Protocol(_)
            | Error::Disconnected => None,
        }
    }

    /// Whether the error is the broker's answer to one request, so that the
    /// connection is still usable (as opposed to a connection failure).
    pub fn is_broker_answer(&self) -> bool {
        matches!(self, Error::Broker(_) | Error::Partial { .. })
    }

    /// How many messages of a batch send were accepted despite this error:
    /// `admitted` for [`Error::Partial`], 0 for a broker's answer
    /// ([`Error::Broker`]: none was sent). For a connection failure the
    /// batch's fate is unknown, and 0 is only the count known for sure.
    pub fn admitted(&self) -> u32 {
        match self {
            Error::Partial { admitted, .. } => *admitted,
            _ => 0,
        }
    }

    /// A copy of this error, for handing one connection failure to every
    /// request that was waiting on the connection (`io::Error` is not `Clone`).
    pub(crate) fn replicate(&self) -> Error {
        match self {
            Error::Connect { path, source, hint } => Error::Connect {
                path: path.clone(),
                source: io::Error::new(source.kind(), source.to_string()),
                hint: hint.clone(),
            },
            Error::UntrustedBroker {
                path,
                uid,
                pid,
                named,
            } => Error::UntrustedBroker {
                path: path.clone(),
                uid: *uid,
                pid: *pid,
                named: named.clone(),
            },
            Error::NoAnswer { waited } => Error::NoAnswer { waited: *waited },
            Error::Io(error) => Error::Io(io::Error::new(error.kind(), error.to_string())),
            Error::Protocol(message) => Error::Protocol(message.clone()),
            Error::Rejected(error) => Error::Rejected(error.clone()),
            Error::Broker(error) => Error::Broker(error.clone()),
            Error::Partial {
                admitted,
                first_sequence,
                error,
            } => Error::Partial {
                admitted: *admitted,
                first_sequence: *first_sequence,
                error: error.clone(),
            },
            Error::Disconnected => Error::Disconnected,
        }
    }

    /// Classifies an I/O error on an established connection: the peer going
    /// away is [`Error::Disconnected`], anything else stays [`Error::Io`].
    pub(crate) fn from_connection_io(error: io::Error) -> Error {
        match error.kind() {
            io::ErrorKind::UnexpectedEof
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::BrokenPipe => Error::Disconnected,
            _ => Error::Io(error),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connect_error_says_what_to_do() {
        let path = std::path::Path::new("/tmp/x.sock");
        let source = io::Error::from(io::ErrorKind::NotFound);
        let error = Error::Connect {
            path: path.to_owned(),
            hint: crate::connect::connect_hint(path, &source).into(),
            source,
        };
        let text = error.to_string();
        assert!(
            text.starts_with("cannot connect to mailboxd at /tmp/x.sock: "),
            "{text}"
        );
        assert!(text.ends_with("set MAILBOX_SOCKET"), "{text}");
    }

    #[test]
    fn replicate_keeps_kind_and_text() {
        let error = Error::Io(io::Error::other("boom"));
        let copy = error.replicate();
        assert_eq!(copy.to_string(), error.to_string());
        let goodbye = Error::Rejected(BrokerError::new(ErrorKind::BrokerShuttingDown, "bye"));
        assert_eq!(
            goodbye.replicate().kind(),
            Some(ErrorKind::BrokerShuttingDown)
        );
    }

    #[test]
    fn peer_going_away_is_disconnected() {
        let reset = io::Error::from(io::ErrorKind::ConnectionReset);
        assert!(matches!(
            Error::from_connection_io(reset),
            Error::Disconnected
        ));
        let other = io::Error::from(io::ErrorKind::PermissionDenied);
        assert!(matches!(Error::from_connection_io(other), Error::Io(_)));
    }

    #[test]
    fn every_kind_of_protocol_2_is_typed() {
        for kind in [
            ErrorKind::NoSuchProcess,
            ErrorKind::NameTaken,
            ErrorKind::NoReply,
            ErrorKind::NotHeld,
            ErrorKind::TimeoutInFlight,
            ErrorKind::Expired,
            ErrorKind::DeadLettered,
            ErrorKind::CallEnded,
            ErrorKind::InvalidRequest,
        ] {
            let error = Error::Broker(BrokerError::new(kind, "words"));
            assert_eq!(error.kind(), Some(kind));
            assert_eq!(error.replicate().kind(), Some(kind));
            assert_eq!(error.to_string(), format!("{kind}: words"));
        }
    }
}
