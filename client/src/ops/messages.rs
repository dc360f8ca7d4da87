//! Sending and receiving messages: on a mailbox (one or a batch), and the
//! general send and receive to or from a mailbox or a process's inbox.

use std::ops::Range;

use bytes::Bytes;
use mailbox_proto::{
    Address, BrokerError, Message, ReceiveOptions, Request, Response, SendOptions, Source, Target,
    Wait,
};

use crate::error::Error;
use crate::ops::pages::{PageCursor, Paged, PAGE_ROWS};
use crate::ops::{expect_answer, Operation};

/// What the broker reported for an accepted message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct SendReceipt {
    /// The message's sequence number in its mailbox (from 1, without gaps).
    pub sequence: u64,
    /// How many receivers it will reach: 1 for round-robin, the number of
    /// subscribers at that moment for broadcast (0: nobody will see it).
    pub recipients: u32,
}

/// What the broker reported for a batch send accepted in full. (A batch
/// accepted only in part is an [`Error::Partial`], one refused as a whole an
/// [`Error::Broker`].)
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct BatchReceipt {
    /// The sequence number of the batch's first message. The others follow
    /// without gaps: the broker admits a batch as one sender sending its
    /// messages one after the other, with nothing in between. (For an empty
    /// batch, the mailbox's next sequence number.)
    pub first_sequence: u64,
    /// How many messages were accepted: all of the batch.
    pub admitted: u32,
    /// How many receivers each message reaches, as in [`SendReceipt`] (for
    /// broadcast, the subscribers when the last one was accepted).
    pub recipients: u32,
}

impl BatchReceipt {
    /// The sequence numbers the batch's messages got.
    ///
    /// ```
    /// use mailbox_client::BatchReceipt;
    /// let receipt = BatchReceipt { first_sequence: 7, admitted: 3, recipients: 1 };
    /// assert_eq!(receipt.sequences(), 7..10);
    /// ```
    pub fn sequences(&self) -> Range<u64> {
        self.first_sequence..self.first_sequence + u64::from(self.admitted)
    }
}

/// `Send` or `SendWith` → its receipt.
pub(crate) fn sent(answer: Result<Response, Error>) -> Result<SendReceipt, Error> {
    expect_answer!(answer, Sent { sequence, recipients } => SendReceipt { sequence, recipients })
}

/// A receive of one message → the message.
pub(crate) fn received(answer: Result<Response, Error>) -> Result<Message, Error> {
    expect_answer!(answer, Received(message) => message)
}

/// A receive of up to `max` → the messages (at least one, at most `max`).
pub(crate) fn received_many(
    answer: Result<Response, Error>,
    max: u32,
) -> Result<Vec<Message>, Error> {
    let messages = expect_answer!(answer, ReceivedMany(messages) => messages)?;
    if messages.is_empty() || messages.len() > max.max(1) as usize {
        return Err(Error::Protocol(format!(
            "the broker answered a receive of at most {max} messages with {}",
            messages.len()
        )));
    }
    Ok(messages)
}

/// `SendMany` of `requested` payloads → the receipt of what was admitted
/// and, when that is not all of them, why the rest were not.
pub(crate) fn sent_many(
    answer: Result<Response, Error>,
    requested: usize,
) -> Result<(BatchReceipt, Option<BrokerError>), Error> {
    let (receipt, stopped) = expect_answer!(answer, SentMany { first_sequence, admitted, recipients, stopped } => {
        (BatchReceipt { first_sequence, admitted, recipients }, stopped)
    })?;
    let admitted = receipt.admitted;
    let consistent = match &stopped {
        None => admitted as usize == requested,
        Some(_) => (admitted as usize) < requested,
    };
    if !consistent {
        return Err(Error::Protocol(format!(
            "the broker answered a batch of {requested} messages with {admitted} \
             admitted and {}",
            match &stopped {
                None => "nothing stopping it".to_owned(),
                Some(error) => format!("the rest stopped by {error}"),
            }
        )));
    }
    Ok((receipt, stopped))
}

/// Moves `source` out of an operation into its request (which is built
/// once: what stays behind, an allocation-free placeholder, is never read).
pub(crate) fn take_source(source: &mut Source) -> Source {
    std::mem::replace(source, Source::Inbox { from: None })
}

/// `Send` to a mailbox → its receipt.
#[derive(Debug)]
pub(crate) struct SendMessage<'a> {
    pub(crate) mailbox: &'a str,
    pub(crate) payload: Bytes,
    pub(crate) wait: Wait,
}

impl Operation for SendMessage<'_> {
    type Output = SendReceipt;

    fn request(&mut self) -> Request {
        Request::Send {
            mailbox: self.mailbox.to_owned(),
            payload: std::mem::take(&mut self.payload),
            wait: self.wait,
        }
    }

    fn decode(self, answer: Result<Response, Error>) -> Result<SendReceipt, Error> {
        sent(answer)
    }
}

/// `Receive` of one message from a mailbox → the message.
#[derive(Debug)]
pub(crate) struct Receive<'a> {
    pub(crate) mailbox: &'a str,
    pub(crate) wait: Wait,
}

impl Operation for Receive<'_> {
    type Output = Message;

    fn request(&mut self) -> Request {
        Request::Receive {
            mailbox: self.mailbox.to_owned(),
            wait: self.wait,
        }
    }

    fn decode(self, answer: Result<Response, Error>) -> Result<Message, Error> {
        received(answer)
    }
}

/// `SendMany` → its receipt when all were admitted; [`Error::Partial`]
/// when only some were, [`Error::Broker`] when none was.
#[derive(Debug)]
pub(crate) struct SendMany<'a> {
    mailbox: &'a str,
    payloads: Vec<Bytes>,
    /// How many payloads the request carries (they move into it).
    count: usize,
    wait: Wait,
}

impl<'a> SendMany<'a> {
    /// A batch of `payloads` for `mailbox`.
    pub(crate) fn new(
        mailbox: &'a str,
        payloads: impl IntoIterator<Item = impl Into<Bytes>>,
        wait: Wait,
    ) -> Self {
        let payloads: Vec<Bytes> = payloads.into_iter().map(Into::into).collect();
        Self {
            mailbox,
            count: payloads.len(),
            payloads,
            wait,
        }
    }
}

impl Operation for SendMany<'_> {
    type Output = BatchReceipt;

    fn request(&mut self) -> Request {
        Request::SendMany {
            mailbox: self.mailbox.to_owned(),
            payloads: std::mem::take(&mut self.payloads),
            wait: self.wait,
        }
    }

    fn decode(self, answer: Result<Response, Error>) -> Result<BatchReceipt, Error> {
        match sent_many(answer, self.count)? {
            (receipt, None) => Ok(receipt),
            (receipt, Some(error)) if receipt.admitted == 0 => Err(Error::Broker(error)),
            (receipt, Some(error)) => Err(Error::Partial {
                admitted: receipt.admitted,
                first_sequence: receipt.first_sequence,
                error,
            }),
        }
    }
}

/// `ReceiveMany` of up to `max` (0 counts as 1, as the broker counts it) →
/// the messages.
#[derive(Debug)]
pub(crate) struct ReceiveMany<'a> {
    pub(crate) mailbox: &'a str,
    pub(crate) max: u32,
    pub(crate) wait: Wait,
}

impl Operation for ReceiveMany<'_> {
    type Output = Vec<Message>;

    fn request(&mut self) -> Request {
        Request::ReceiveMany {
            mailbox: self.mailbox.to_owned(),
            max: self.max.max(1),
            wait: self.wait,
        }
    }

    fn decode(self, answer: Result<Response, Error>) -> Result<Vec<Message>, Error> {
        received_many(answer, self.max)
    }
}

/// The general send (`SendWith`): to a mailbox or a process, with options
/// → its receipt.
#[derive(Debug)]
pub(crate) struct Post {
    pub(crate) to: Target,
    pub(crate) payload: Bytes,
    pub(crate) options: SendOptions,
    pub(crate) wait: Wait,
}

impl Post {
    /// A plain send to a process's inbox.
    pub(crate) fn to_process(
        process: impl Into<Address>,
        payload: impl Into<Bytes>,
        wait: Wait,
    ) -> Self {
        Self {
            to: Target::Process(process.into()),
            payload: payload.into(),
            options: SendOptions::default(),
            wait,
        }
    }
}

impl Operation for Post {
    type Output = SendReceipt;

    fn request(&mut self) -> Request {
        Request::SendWith {
            // The request is built once: what stays behind is never read.
            to: std::mem::replace(&mut self.to, Target::Process(Address::Process(0))),
            payload: std::mem::take(&mut self.payload),
            options: Box::new(std::mem::take(&mut self.options)),
            wait: self.wait,
        }
    }

    fn decode(self, answer: Result<Response, Error>) -> Result<SendReceipt, Error> {
        sent(answer)
    }
}

/// The general receive (`ReceiveWith`) → the messages: exactly one for a
/// batch size (`options.max`) of `None`, one to `max` for `Some(max)` (0
/// counts as 1, as the broker counts it).
#[derive(Debug)]
pub(crate) struct Fetch {
    pub(crate) source: Source,
    pub(crate) options: ReceiveOptions,
    pub(crate) wait: Wait,
}

impl Fetch {
    /// A receive from `source` with `options`.
    pub(crate) fn new(source: Source, mut options: ReceiveOptions, wait: Wait) -> Self {
        options.max = options.max.map(|max| max.max(1));
        Self {
            source,
            options,
            wait,
        }
    }
}

impl Operation for Fetch {
    type Output = Vec<Message>;

    fn request(&mut self) -> Request {
        Request::ReceiveWith {
            from: take_source(&mut self.source),
            options: self.options,
            wait: self.wait,
        }
    }

    fn decode(self, answer: Result<Response, Error>) -> Result<Vec<Message>, Error> {
        match self.options.max {
            None => received(answer).map(|message| vec![message]),
            Some(max) => received_many(answer, max),
        }
    }
}

/// A page of queued messages, shown without being taken
/// ([`Client::peek`](crate::Client::peek)).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Peeked {
    /// Copies of the queued messages, in the order receivers would get them
    /// (on `hash` mailboxes: by sequence number). Empty when nothing is
    /// queued after the cursor.
    pub messages: Vec<Message>,
    /// Where the next page starts (pass it as `after`: the sequence number
    /// of this page's last message); `None` on the last page.
    pub next: Option<u64>,
    /// Messages delivered with manual acknowledgement and not settled yet:
    /// not queued, so in no page.
    pub in_flight: u64,
}

/// `Peek` → a page of queued messages, left where they are.
#[derive(Debug)]
pub(crate) struct Peek {
    pub(crate) source: Source,
    pub(crate) cursor: PageCursor<u64>,
}

impl Peek {
    /// A page of at most `max` messages of `source` after `after`.
    pub(crate) fn new(source: Source, after: Option<u64>, max: u32) -> Self {
        Self {
            source,
            cursor: PageCursor { after, max },
        }
    }

    /// A page of [`PAGE_ROWS`] messages of mailbox `mailbox` after `after`.
    pub(crate) fn page(mailbox: &str, after: Option<u64>) -> Self {
        Self::new(Source::Mailbox(mailbox.to_owned()), after, PAGE_ROWS)
    }
}

impl Operation for Peek {
    type Output = Peeked;

    fn request(&mut self) -> Request {
        Request::Peek {
            from: take_source(&mut self.source),
            after: self.cursor.after,
            max: self.cursor.max,
        }
    }

    fn decode(self, answer: Result<Response, Error>) -> Result<Peeked, Error> {
        expect_answer!(answer, Peeked { messages, next, in_flight } => Peeked { messages, next, in_flight })
    }
}

impl Paged for Peek {
    type Row = Message;
    type Cursor = u64;

    fn split(page: Peeked) -> (Vec<Message>, Option<u64>) {
        (page.messages, page.next)
    }
}
