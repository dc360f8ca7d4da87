//! Messages received with manual acknowledgement: held by this connection
//! until settled.

use mailbox_proto::{Message, Request, Response, Source, Verdict, Wait};

use crate::error::Error;
use crate::ops::messages::{received, take_source};
use crate::ops::{expect_answer, Operation};

/// A message received with manual acknowledgement: this connection holds
/// it until it is settled ([`Client::ack`](crate::Client::ack),
/// [`Client::nack`](crate::Client::nack)) or the connection ends, which
/// returns it to the head of where it came from.
///
/// ```
/// use mailbox_client::{Bytes, Held, Message, Metadata, Source};
/// let message = Message {
///     metadata: Metadata {
///         sequence: 4,
///         sender_pid: 1,
///         sender_uid: 1000,
///         sender_gid: 1000,
///         sender_connection: 9,
///         accepted_at_unix_nanos: 0,
///         redeliveries: 0,
///         details: None,
///     },
///     payload: Bytes::from_static(b"job"),
/// };
/// let held = Held::from_source(&Source::Mailbox("jobs".into()), message);
/// assert_eq!(held.mailbox.as_deref(), Some("jobs"));
/// assert_eq!(held.sequence(), 4);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Held {
    /// The mailbox it came from; `None` for this connection's inbox.
    pub mailbox: Option<String>,
    /// The message itself.
    pub message: Message,
}

impl Held {
    /// A message that a manual-acknowledgement receive from `source` took
    /// (for building a [`Held`] from what
    /// [`fetch`](crate::Client::fetch) returned with
    /// [`ReceiveOptions::manual_ack`](crate::ReceiveOptions::manual_ack)).
    pub fn from_source(source: &Source, message: Message) -> Self {
        let mailbox = match source {
            Source::Mailbox(name) => Some(name.clone()),
            Source::Inbox { .. } => None,
        };
        Self { mailbox, message }
    }

    /// The message's sequence number, by which it is settled.
    pub fn sequence(&self) -> u64 {
        self.message.metadata.sequence
    }
}

/// A manual-acknowledgement receive of one message from a mailbox or the
/// inbox → the held message.
#[derive(Debug)]
pub(crate) struct ReceiveHeld {
    source: Source,
    /// The mailbox it came from, for the [`Held`].
    mailbox: Option<String>,
    wait: Wait,
}

impl ReceiveHeld {
    /// From `mailbox`.
    pub(crate) fn mailbox(mailbox: &str, wait: Wait) -> Self {
        Self {
            source: Source::Mailbox(mailbox.to_owned()),
            mailbox: Some(mailbox.to_owned()),
            wait,
        }
    }

    /// From this connection's inbox, from any sender.
    pub(crate) fn inbox(wait: Wait) -> Self {
        Self {
            source: Source::Inbox { from: None },
            mailbox: None,
            wait,
        }
    }
}

impl Operation for ReceiveHeld {
    type Output = Held;

    fn request(&mut self) -> Request {
        Request::ReceiveWith {
            from: take_source(&mut self.source),
            options: mailbox_proto::ReceiveOptions {
                manual_ack: true,
                ..mailbox_proto::ReceiveOptions::default()
            },
            wait: self.wait,
        }
    }

    fn decode(self, answer: Result<Response, Error>) -> Result<Held, Error> {
        received(answer).map(|message| Held {
            mailbox: self.mailbox,
            message,
        })
    }
}

/// `Settle` of a held message with a verdict → done.
#[derive(Debug)]
pub(crate) struct Settle<'a> {
    pub(crate) held: &'a Held,
    pub(crate) verdict: Verdict,
}

impl Operation for Settle<'_> {
    type Output = ();

    fn request(&mut self) -> Request {
        Request::Settle {
            mailbox: self.held.mailbox.clone(),
            sequence: self.held.sequence(),
            verdict: self.verdict,
            redeliveries: Some(self.held.message.metadata.redeliveries),
        }
    }

    fn decode(self, answer: Result<Response, Error>) -> Result<(), Error> {
        expect_answer!(answer, Settled => ())
    }
}
