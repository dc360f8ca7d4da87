//! Client library of the mailbox IPC broker, `mailboxd`.
//!
//! - [`Client`]: async (tokio). One connection shared by cheap clones; many
//!   calls may be in flight at once from many tasks.
//! - [`blocking::Client`]: plain `std` sockets, no runtime, for simple
//!   programs and `mailboxctl`.
//!
//! Both are I/O drivers over one shared, I/O-free layer, so they behave the
//! same: `ops` defines every operation once (its request, and how its answer
//! becomes a typed result), `pipeline` the windows of requests in flight,
//! `session` ids, frames and routing; `methods` writes each public method
//! once for both clients. Every broker error reaches the caller typed by
//! [`ErrorKind`] (see [`Error::kind`]).
//!
//! The broker's socket is found by the rule of [`mailbox_proto::socket_path`]:
//! an explicit path, else `$MAILBOX_SOCKET`, else the first of
//! `$XDG_RUNTIME_DIR/mailbox/mailboxd.sock`, `/tmp/mailbox-UID/mailboxd.sock`
//! (the per-user fallback of a broker run by a user without
//! `XDG_RUNTIME_DIR`) and `/run/mailbox/mailboxd.sock` where a socket exists.
//!
//! Before sending anything, a client checks who answers on the socket
//! (`SO_PEERCRED`): root, the service user `mailbox`, its own uid, or the
//! user named by `$MAILBOX_BROKER_UID` or [`ConnectOptions::broker_user`];
//! anyone else is [`Error::UntrustedBroker`].
//!
//! This crate does not retry or reconnect: timeouts are the broker's
//! ([`Wait`]), and a broken connection fails every call on it. It only
//! stops waiting on its own when the broker fails to answer a timed
//! request within its timeout plus [`ANSWER_GRACE`] (a stopped or hung
//! broker): [`Error::NoAnswer`].

mod async_client;
pub mod blocking;
mod connect;
mod duration;
mod error;
mod methods;
mod ops;
mod pipeline;
mod session;
#[cfg(test)]
mod test_support;

pub use async_client::Client;
pub use connect::{ConnectOptions, ANSWER_GRACE, BROKER_UID_VARIABLE};
pub use duration::{parse_duration, ParseDurationError};
pub use error::Error;
pub use mailbox_proto::{
    validate_key, Address, BrokerError, BrokerStatus, Bytes, Capacity, DeadLetter, DeliveryPolicy,
    Details, ErrorKind, MailboxInfo, MailboxSettings, Message, Metadata, NameInfo, ReceiveOptions,
    SendOptions, Source, Stage, Target, Verdict, Wait, DEFAULT_INBOX_CAPACITY,
    DEFAULT_MAX_MESSAGE_SIZE, MAX_KEY_LEN, MAX_MESSAGE_SIZE_LIMIT,
};
pub use ops::acknowledgements::Held;
pub use ops::messages::{BatchReceipt, Peeked, SendReceipt};
pub use ops::pages::{Page, PAGE_ROWS};
pub use ops::wait_at_most;
pub use pipeline::{PipelineError, StreamError, StreamReceipt};
