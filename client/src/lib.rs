//! Client library of the mailbox IPC broker, `mailboxd`: named mailboxes
//! and direct messages between processes on one Unix machine.
//!
//! # A first program
//!
//! Start a broker (`mailboxd`), then:
//!
//! ```no_run
//! use mailbox_client::{blocking::Client, Capacity, MailboxSettings};
//!
//! fn main() -> Result<(), mailbox_client::Error> {
//!     // The broker's socket by the usual rule ($MAILBOX_SOCKET, ...).
//!     let mut client = Client::connect_default()?;
//!     // A mailbox of at most 16 messages (created again without change
//!     // when this uid owns it with these settings).
//!     let settings = MailboxSettings {
//!         capacity: Capacity::Bounded(16),
//!         ..MailboxSettings::default()
//!     };
//!     client.create("greetings", settings)?;
//!     client.send("greetings", "hello")?; // waits while the mailbox is full
//!     let message = client.receive("greetings")?; // waits while it is empty
//!     println!(
//!         "{} (message {} from pid {})",
//!         String::from_utf8_lossy(&message.payload),
//!         message.metadata.sequence,
//!         message.metadata.sender_pid
//!     );
//!     Ok(())
//! }
//! ```
//!
//! The same with tokio: [`Client`] has every method of
//! [`blocking::Client`], `async`, on `&self`:
//!
//! ```no_run
//! # async fn demo() -> Result<(), mailbox_client::Error> {
//! let client = mailbox_client::Client::connect_default().await?;
//! client.send("greetings", "hello").await?;
//! let message = client.receive("greetings").await?;
//! # Ok(()) }
//! ```
//!
//! More complete programs are in the crate's `examples/`, each saying how to
//! run it: `producer_consumer` (a bounded buffer between two processes),
//! `request_reply`, `broadcast` and `direct` (named processes), e.g.
//! `cargo run -p mailbox-client --example request_reply`.
//!
//! # The map
//!
//! Two clients with the same methods: [`Client`] (async, tokio: one
//! connection shared by cheap clones, many calls in flight at once from
//! many tasks) and [`blocking::Client`] (plain `std` sockets, no runtime).
//! The links below go to the async client's methods.
//!
//! | to | use |
//! |---|---|
//! | connect | [`Client::connect_default`], [`Client::connect`] (a socket path), [`Client::connect_with`] and [`ConnectOptions`] (timeout, trusted broker user) |
//! | make a mailbox, or find one | [`create`](Client::create) by the party that owns its [`MailboxSettings`], [`create_with`](Client::create_with) (mode and group too); [`open`](Client::open) or [`open_timeout`](Client::open_timeout) (waits for its creation) by every other party; [`info`](Client::info), [`list`](Client::list), [`delete`](Client::delete), [`set_permissions`](Client::set_permissions), [`purge`](Client::purge) |
//! | send and receive | [`send`](Client::send), [`receive`](Client::receive), each with `try_` (do not wait), `_timeout` and `_with` ([`Wait`]) forms; [`subscribe`](Client::subscribe) to a broadcast mailbox |
//! | in batches | [`send_many`](Client::send_many), [`receive_many`](Client::receive_many); many in flight: [`send_stream`](Client::send_stream), [`receive_stream`](Client::receive_stream), [`send_pipelined`](Client::send_pipelined), [`receive_pipelined`](Client::receive_pipelined) |
//! | acknowledge | [`receive_held`](Client::receive_held) → [`Held`], then [`ack`](Client::ack) or [`nack`](Client::nack) |
//! | talk to a process | [`claim_name`](Client::claim_name), [`send_to`](Client::send_to), [`receive_inbox`](Client::receive_inbox), [`receive_from`](Client::receive_from), [`address`](Client::address) |
//! | request/reply | [`call`](Client::call), [`reply`](Client::reply) |
//! | everything at once | [`post`](Client::post) ([`Target`], [`SendOptions`]), [`fetch`](Client::fetch) ([`Source`], [`ReceiveOptions`]) |
//! | watch the broker | [`status`](Client::status), [`names`](Client::names) |
//!
//! Every failure is an [`Error`]; what the broker refused carries an
//! [`ErrorKind`] (see [`Error::kind`]), e.g. `NoSuchMailbox`, `Timeout`,
//! `PermissionDenied`.
//!
//! # Who creates a mailbox
//!
//! A mailbox's settings belong to one party, which creates it; `create`
//! with other settings, or of a mailbox another uid owns, fails with
//! `MailboxExists`. Every other party opens it by name with
//! [`open`](Client::open), which restates nothing: it answers the
//! mailbox's description, or `NoSuchMailbox` when it does not exist yet,
//! or `PermissionDenied` when the owner's mode gives this uid no right on
//! it. [`open_timeout`](Client::open_timeout) waits for the owner to create
//! it, so that the two may start in either order.
//!
//! # Finding and trusting the broker
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
//!
//! # How it is built
//!
//! Both clients are I/O drivers over one shared, I/O-free layer, so they
//! behave the same: `ops` defines every operation once (its request, and
//! how its answer becomes a typed result), `pipeline` the windows of
//! requests in flight, `session` ids, frames and routing; `methods` writes
//! each public method once for both clients.

mod async_client;
pub mod blocking;
mod connect;
mod descriptors;
mod duration;
mod error;
mod memfile;
mod methods;
mod ops;
mod pipeline;
mod region;
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
    RegionAccess, RegionInfo, SendOptions, Source, Stage, Target, Verdict, Wait,
    DEFAULT_INBOX_CAPACITY, DEFAULT_MAX_MESSAGE_SIZE, MAX_KEY_LEN, MAX_MESSAGE_SIZE_LIMIT,
};
pub use memfile::{is_memory_file, FileWriter, SealedFile, DEFAULT_FILE_THRESHOLD};
pub use ops::acknowledgements::Held;
pub use ops::messages::{BatchReceipt, Peeked, SendReceipt};
pub use ops::pages::{Page, PAGE_ROWS};
pub use ops::wait_at_most;
pub use pipeline::{PipelineError, StreamError, StreamReceipt};
pub use region::{Mapping, Region};
