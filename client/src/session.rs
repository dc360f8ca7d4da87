//! The bookkeeping of one broker connection, without any I/O.
//!
//! Both the async [`crate::Client`] and the [`crate::blocking::Client`] are thin
//! I/O loops around what this module owns: the handshake, request id
//! allocation, encoding [`ClientFrame`]s into an outgoing buffer, decoding
//! [`ServerFrame`]s from an incoming buffer, routing each response to whatever
//! the caller registered for its id (a oneshot sender, or nothing), turning
//! answers into typed results, and the tallies of pipelined sends and
//! receives. It never touches a socket or a clock, so every rule here is a
//! plain unit test.
//!
//! It deliberately does not decide how to wait (threads or tasks), how to
//! batch writes, or what to do with a response nobody waits for any more.

use std::collections::HashMap;
use std::fmt;
use std::time::Duration;

use std::ops::Range;

use bytes::{Bytes, BytesMut};
use mailbox_proto::{
    codec, encode_frame, Address, BrokerError, BrokerStatus, Capacity, ClientFrame, EncodeError,
    ErrorKind, Hello, MailboxInfo, Message, NameInfo, ReceiveOptions, Request, RequestId, Response,
    SendOptions, ServerFrame, Source, Target, Verdict, Wait, Welcome, PROTOCOL_VERSION,
};

use crate::error::Error;

/// The largest server frame this client accepts (a maximal message plus its
/// metadata fits).
const MAX_SERVER_FRAME_LEN: u32 = codec::DEFAULT_MAX_FRAME_LEN;

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

/// The [`Wait`] for an operation allowed to wait at most `timeout`, rounded
/// up to whole milliseconds so that it never waits less than asked.
///
/// ```
/// use std::time::Duration;
/// use mailbox_client::{wait_at_most, Wait};
/// assert_eq!(wait_at_most(Duration::from_millis(1500)), Wait::Timeout { millis: 1500 });
/// assert_eq!(wait_at_most(Duration::from_micros(1)), Wait::Timeout { millis: 1 });
/// ```
pub fn wait_at_most(timeout: Duration) -> Wait {
    let mut millis = timeout.as_millis();
    if timeout.subsec_nanos() % 1_000_000 != 0 {
        millis += 1;
    }
    Wait::Timeout {
        millis: u64::try_from(millis).unwrap_or(u64::MAX),
    }
}

/// The name a client introduces itself with: the program's file name.
pub(crate) fn default_client_name() -> String {
    std::env::args_os()
        .next()
        .as_deref()
        .map(std::path::Path::new)
        .and_then(|path| path.file_name())
        .map(|name| name.to_string_lossy().into_owned())
        .unwrap_or_else(|| "mailbox-client".to_owned())
}

/// Appends the [`Hello`] frame that opens every connection.
pub(crate) fn encode_hello(client_name: &str, out: &mut BytesMut) -> Result<(), Error> {
    encode_frame(&Hello::new(client_name), out, MAX_SERVER_FRAME_LEN).map_err(encode_error)
}

/// Takes one server frame off the front of `incoming`; `Ok(None)` when more
/// bytes are needed. An error means the stream is out of step.
pub(crate) fn decode_server_frame(incoming: &mut BytesMut) -> Result<Option<ServerFrame>, Error> {
    codec::decode_server_frame(incoming, MAX_SERVER_FRAME_LEN)
        .map_err(|error| Error::Protocol(format!("undecodable frame from the broker: {error}")))
}

/// Checks the broker's answer to our [`Hello`].
pub(crate) fn accept_handshake(frame: ServerFrame) -> Result<Welcome, Error> {
    match frame {
        ServerFrame::Welcome(welcome) if welcome.protocol_version == PROTOCOL_VERSION => {
            Ok(welcome)
        }
        ServerFrame::Welcome(welcome) => Err(Error::Protocol(format!(
            "the broker welcomed protocol version {} but this client speaks version {}",
            welcome.protocol_version, PROTOCOL_VERSION
        ))),
        ServerFrame::Goodbye(error) => Err(Error::Rejected(error)),
        ServerFrame::Response { id, .. } => Err(Error::Protocol(format!(
            "the broker answered request {id} before the handshake"
        ))),
    }
}

fn encode_error(error: EncodeError) -> Error {
    match error {
        // The broker would refuse such a frame as a protocol violation and
        // drop the connection, so it is refused here, typed as the broker
        // would have typed an oversized message.
        EncodeError::FrameTooLarge { max } => Error::Broker(BrokerError::new(
            ErrorKind::MessageTooLarge,
            format!("request is above the broker's frame limit of {max} bytes; not sent"),
        )),
        EncodeError::Unencodable(message) => Error::Protocol(message),
    }
}

/// The refusal of a batch whose request frame would be above the broker's
/// limit: nothing of it was sent.
fn batch_too_large(payloads: &[Bytes], max: u32) -> Error {
    let bytes: usize = payloads.iter().map(Bytes::len).sum();
    Error::Broker(BrokerError::new(
        ErrorKind::MessageTooLarge,
        format!(
            "a batch of {} messages ({bytes} payload bytes) is above the broker's frame \
             limit of {max} bytes; nothing was sent; send fewer at once (send_stream splits \
             batches to fit)",
            payloads.len()
        ),
    ))
}

/// A response matched with what its caller registered for it.
#[derive(Debug)]
pub(crate) struct Routed<W> {
    /// The request's id.
    pub(crate) id: RequestId,
    /// What was registered with [`Session::start`].
    pub(crate) waiter: W,
    /// The broker's answer.
    pub(crate) result: Result<Response, BrokerError>,
}

/// The requests of one connection that still wait for their response, each
/// with a caller-chosen waiter `W`.
///
/// **Invariant**: an id is in `pending` from the moment its frame is encoded
/// until its response is routed or the connection dies, and no two waiting
/// requests share an id.
#[derive(Debug)]
pub(crate) struct Session<W> {
    next_id: RequestId,
    max_frame_len: u32,
    pending: HashMap<RequestId, W>,
}

impl<W> Session<W> {
    /// A session for a connection the broker welcomed.
    pub(crate) fn new(welcome: &Welcome) -> Self {
        Self {
            next_id: 1,
            max_frame_len: welcome.max_frame_len,
            pending: HashMap::new(),
        }
    }

    /// Allocates an id for `request`, appends its frame to `out` and
    /// registers `waiter` for its response. On error nothing changed.
    pub(crate) fn start(
        &mut self,
        request: Request,
        waiter: W,
        out: &mut BytesMut,
    ) -> Result<RequestId, Error> {
        let id = self.allocate_id();
        let frame = ClientFrame { id, request };
        if let Err(error) = encode_frame(&frame, out, self.max_frame_len) {
            return Err(match (&frame.request, error) {
                (Request::SendMany { payloads, .. }, EncodeError::FrameTooLarge { max }) => {
                    batch_too_large(payloads, max)
                }
                (_, error) => encode_error(error),
            });
        }
        self.pending.insert(id, waiter);
        Ok(id)
    }

    fn allocate_id(&mut self) -> RequestId {
        loop {
            let id = self.next_id;
            self.next_id = self.next_id.wrapping_add(1);
            if !self.pending.contains_key(&id) {
                return id;
            }
        }
    }

    /// Matches a frame received after the handshake with its request.
    ///
    /// An error means the connection is over: a `Goodbye` becomes
    /// [`Error::Rejected`], anything unexpected [`Error::Protocol`].
    pub(crate) fn route(&mut self, frame: ServerFrame) -> Result<Routed<W>, Error> {
        match frame {
            ServerFrame::Response { id, result } => match self.pending.remove(&id) {
                Some(waiter) => Ok(Routed { id, waiter, result }),
                None => Err(Error::Protocol(format!(
                    "the broker answered request {id}, which is not waiting"
                ))),
            },
            ServerFrame::Goodbye(error) => Err(Error::Rejected(error)),
            ServerFrame::Welcome(_) => Err(Error::Protocol(
                "the broker sent a second welcome after the handshake".to_owned(),
            )),
        }
    }

    /// Whether `id` still waits for its response.
    pub(crate) fn is_pending(&self, id: RequestId) -> bool {
        self.pending.contains_key(&id)
    }

    /// How many requests wait for their response.
    pub(crate) fn in_flight(&self) -> usize {
        self.pending.len()
    }

    /// Removes every waiting request, for failing them when the connection dies.
    pub(crate) fn drain(&mut self) -> impl Iterator<Item = (RequestId, W)> + '_ {
        self.pending.drain()
    }
}

/// The request's answer as a `Result` of the client's error type.
pub(crate) fn into_result(result: Result<Response, BrokerError>) -> Result<Response, Error> {
    result.map_err(Error::Broker)
}

fn unexpected(expected: &str, response: &Response) -> Error {
    let got = match response {
        Response::Created { .. } => "Created",
        Response::Deleted => "Deleted",
        Response::Mailboxes(_) => "Mailboxes",
        Response::Info(_) => "Info",
        Response::Sent { .. } => "Sent",
        Response::Received(_) => "Received",
        Response::Subscribed { .. } => "Subscribed",
        Response::Unsubscribed => "Unsubscribed",
        Response::CancelResult { .. } => "CancelResult",
        Response::Status(_) => "Status",
        Response::SentMany { .. } => "SentMany",
        Response::ReceivedMany(_) => "ReceivedMany",
        Response::Settled => "Settled",
        Response::Replied => "Replied",
        Response::NameClaimed => "NameClaimed",
        Response::NameReleased => "NameReleased",
        Response::Names(_) => "Names",
        Response::InboxCapacitySet => "InboxCapacitySet",
        Response::InboxPermissionsSet => "InboxPermissionsSet",
        Response::PermissionsSet => "PermissionsSet",
        Response::Purged { .. } => "Purged",
        Response::MailboxPage { .. } => "MailboxPage",
        Response::NamePage { .. } => "NamePage",
    };
    Error::Protocol(format!(
        "the broker answered {got} where {expected} was due"
    ))
}

/// `CreateMailbox` → whether it was created (false: existed with equal settings).
pub(crate) fn expect_created(response: Response) -> Result<bool, Error> {
    match response {
        Response::Created { created } => Ok(created),
        other => Err(unexpected("Created", &other)),
    }
}

/// `DeleteMailbox` → done.
pub(crate) fn expect_deleted(response: Response) -> Result<(), Error> {
    match response {
        Response::Deleted => Ok(()),
        other => Err(unexpected("Deleted", &other)),
    }
}

/// One page of a listing ([`Client::list_page`](crate::Client::list_page),
/// [`Client::names_page`](crate::Client::names_page)), in name order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page<T> {
    /// The rows of this page; possibly none even when more follow (the
    /// broker bounds the work of one page, and may have looked only at
    /// rows the caller may not see).
    pub items: Vec<T>,
    /// Where the next page starts (pass it as `after`); `None` on the last
    /// page.
    pub next: Option<String>,
}

/// How many rows the whole-listing calls ask for per page (the broker also
/// ends a page at [`mailbox_proto::MAX_PAGE_BYTES`]).
pub const PAGE_ROWS: u32 = 1024;

/// `ListMailboxPage`.
pub(crate) fn mailbox_page_request(after: Option<&str>, max: u32) -> Request {
    Request::ListMailboxPage {
        after: after.map(str::to_owned),
        max,
    }
}

/// `ListNamePage`.
pub(crate) fn name_page_request(after: Option<&str>, max: u32) -> Request {
    Request::ListNamePage {
        after: after.map(str::to_owned),
        max,
    }
}

/// `ListMailboxPage` → a page of mailboxes.
pub(crate) fn expect_mailbox_page(response: Response) -> Result<Page<MailboxInfo>, Error> {
    match response {
        Response::MailboxPage { mailboxes, next } => Ok(Page {
            items: mailboxes,
            next,
        }),
        other => Err(unexpected("MailboxPage", &other)),
    }
}

/// `ListNamePage` → a page of claimed names.
pub(crate) fn expect_name_page(response: Response) -> Result<Page<NameInfo>, Error> {
    match response {
        Response::NamePage { names, next } => Ok(Page { items: names, next }),
        other => Err(unexpected("NamePage", &other)),
    }
}

/// Adds `page` to `all` and says where the next page starts (`None`: done);
/// a cursor that does not move forward is a broken broker, not a reason to
/// loop forever.
pub(crate) fn follow_page<T>(
    all: &mut Vec<T>,
    after: Option<&str>,
    page: Page<T>,
) -> Result<Option<String>, Error> {
    all.extend(page.items);
    match (page.next, after) {
        (Some(next), Some(after)) if next.as_str() <= after => Err(Error::Protocol(format!(
            "the broker's next page starts at {next:?}, not after {after:?}"
        ))),
        (next, _) => Ok(next),
    }
}

/// `MailboxInfo` → one mailbox.
pub(crate) fn expect_info(response: Response) -> Result<MailboxInfo, Error> {
    match response {
        Response::Info(info) => Ok(*info),
        other => Err(unexpected("Info", &other)),
    }
}

/// `Send` → its receipt.
pub(crate) fn expect_sent(response: Response) -> Result<SendReceipt, Error> {
    match response {
        Response::Sent {
            sequence,
            recipients,
        } => Ok(SendReceipt {
            sequence,
            recipients,
        }),
        other => Err(unexpected("Sent", &other)),
    }
}

/// `Receive` → the message.
pub(crate) fn expect_message(response: Response) -> Result<Message, Error> {
    match response {
        Response::Received(message) => Ok(message),
        other => Err(unexpected("Received", &other)),
    }
}

/// A non-blocking `Receive` → the message, or `None` for an empty mailbox
/// ([`ErrorKind::WouldBlock`]).
pub(crate) fn optional_message(result: Result<Response, Error>) -> Result<Option<Message>, Error> {
    match result {
        Ok(response) => expect_message(response).map(Some),
        Err(error) if error.kind() == Some(ErrorKind::WouldBlock) => Ok(None),
        Err(error) => Err(error),
    }
}

/// `Subscribe` → whether the subscription is new.
pub(crate) fn expect_subscribed(response: Response) -> Result<bool, Error> {
    match response {
        Response::Subscribed { created } => Ok(created),
        other => Err(unexpected("Subscribed", &other)),
    }
}

/// `Unsubscribe` → done.
pub(crate) fn expect_unsubscribed(response: Response) -> Result<(), Error> {
    match response {
        Response::Unsubscribed => Ok(()),
        other => Err(unexpected("Unsubscribed", &other)),
    }
}

/// `Status` → the broker's figures.
pub(crate) fn expect_status(response: Response) -> Result<BrokerStatus, Error> {
    match response {
        Response::Status(status) => Ok(*status),
        other => Err(unexpected("Status", &other)),
    }
}

/// The request of a batch send, and how many payloads it carries.
pub(crate) fn send_many_request(
    mailbox: &str,
    payloads: impl IntoIterator<Item = impl Into<Bytes>>,
    wait: Wait,
) -> (Request, usize) {
    let payloads: Vec<Bytes> = payloads.into_iter().map(Into::into).collect();
    let count = payloads.len();
    let request = Request::SendMany {
        mailbox: mailbox.to_owned(),
        payloads,
        wait,
    };
    (request, count)
}

/// The request of a batch receive of up to `max` messages (0 counts as 1,
/// as the broker counts it).
pub(crate) fn receive_many_request(mailbox: &str, max: u32, wait: Wait) -> Request {
    Request::ReceiveMany {
        mailbox: mailbox.to_owned(),
        max: max.max(1),
        wait,
    }
}

/// `SendMany` of `requested` payloads → the receipt of what was admitted
/// and, when that is not all of them, why the rest were not.
fn sent_many(
    response: Response,
    requested: usize,
) -> Result<(BatchReceipt, Option<BrokerError>), Error> {
    match response {
        Response::SentMany {
            first_sequence,
            admitted,
            recipients,
            stopped,
        } => {
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
            let receipt = BatchReceipt {
                first_sequence,
                admitted,
                recipients,
            };
            Ok((receipt, stopped))
        }
        other => Err(unexpected("SentMany", &other)),
    }
}

/// `SendMany` of `requested` payloads → its receipt when all were admitted;
/// [`Error::Partial`] when only some were, [`Error::Broker`] when none was.
pub(crate) fn expect_sent_many(
    response: Response,
    requested: usize,
) -> Result<BatchReceipt, Error> {
    match sent_many(response, requested)? {
        (receipt, None) => Ok(receipt),
        (receipt, Some(error)) if receipt.admitted == 0 => Err(Error::Broker(error)),
        (receipt, Some(error)) => Err(Error::Partial {
            admitted: receipt.admitted,
            first_sequence: receipt.first_sequence,
            error,
        }),
    }
}

/// `ReceiveMany` of up to `max` → the messages (at least one, at most `max`).
pub(crate) fn expect_received_many(response: Response, max: u32) -> Result<Vec<Message>, Error> {
    match response {
        Response::ReceivedMany(messages)
            if !messages.is_empty() && messages.len() <= max.max(1) as usize =>
        {
            Ok(messages)
        }
        Response::ReceivedMany(messages) => Err(Error::Protocol(format!(
            "the broker answered a receive of at most {max} messages with {}",
            messages.len()
        ))),
        other => Err(unexpected("ReceivedMany", &other)),
    }
}

/// A non-blocking `ReceiveMany` → the messages, none for an empty mailbox
/// ([`ErrorKind::WouldBlock`]).
pub(crate) fn optional_messages(
    result: Result<Response, Error>,
    max: u32,
) -> Result<Vec<Message>, Error> {
    match result {
        Ok(response) => expect_received_many(response, max),
        Err(error) if error.kind() == Some(ErrorKind::WouldBlock) => Ok(Vec::new()),
        Err(error) => Err(error),
    }
}

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
    /// [`ReceiveOptions::manual_ack`]).
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

    /// The request that settles it.
    pub(crate) fn settle_request(&self, verdict: Verdict) -> Request {
        Request::Settle {
            mailbox: self.mailbox.clone(),
            sequence: self.sequence(),
            verdict,
            redeliveries: Some(self.message.metadata.redeliveries),
        }
    }
}

/// The general send: to a mailbox or a process, with options.
pub(crate) fn post_request(
    to: Target,
    payload: Bytes,
    options: SendOptions,
    wait: Wait,
) -> Request {
    Request::SendWith {
        to,
        payload,
        options: Box::new(options),
        wait,
    }
}

/// A plain send to a process's inbox.
pub(crate) fn send_to_request(process: Address, payload: Bytes, wait: Wait) -> Request {
    post_request(
        Target::Process(process),
        payload,
        SendOptions::default(),
        wait,
    )
}

/// The general receive (a batch `max` of 0 counts as 1, as the broker
/// counts it).
pub(crate) fn fetch_request(from: Source, mut options: ReceiveOptions, wait: Wait) -> Request {
    options.max = options.max.map(|max| max.max(1));
    Request::ReceiveWith {
        from,
        options,
        wait,
    }
}

/// A receive of one message from this connection's inbox, from any sender
/// (`None`) or from one.
pub(crate) fn inbox_request(from: Option<Address>, manual_ack: bool, wait: Wait) -> Request {
    fetch_request(
        Source::Inbox { from },
        ReceiveOptions {
            manual_ack,
            ..ReceiveOptions::default()
        },
        wait,
    )
}

/// A receive of one message from `mailbox`, held until settled.
pub(crate) fn held_request(mailbox: &str, wait: Wait) -> Request {
    fetch_request(
        Source::Mailbox(mailbox.to_owned()),
        ReceiveOptions {
            manual_ack: true,
            ..ReceiveOptions::default()
        },
        wait,
    )
}

/// A call: a request message whose answer is its reply.
pub(crate) fn call_request(
    to: Target,
    payload: Bytes,
    options: SendOptions,
    wait: Wait,
) -> Request {
    Request::Call {
        to,
        payload,
        options: Box::new(options),
        wait,
    }
}

/// The reply to the call `request`, refused here when `request` is no
/// call's request (the broker would answer `NotHeld`).
pub(crate) fn reply_request(request: &Message, payload: Bytes) -> Result<Request, Error> {
    match request.metadata.call() {
        Some(call) => Ok(Request::Reply { call, payload }),
        None => Err(Error::Broker(BrokerError::new(
            ErrorKind::NotHeld,
            format!(
                "message #{} from process {} is not a call (its metadata has no call id), \
                 so there is nothing to reply to; not sent",
                request.metadata.sequence, request.metadata.sender_connection
            ),
        ))),
    }
}

/// Claims a well-known name, waiting for it as `wait` says.
pub(crate) fn claim_name_request(name: &str, wait: Wait) -> Request {
    Request::ClaimName {
        name: name.to_owned(),
        wait,
    }
}

/// Gives a claimed name up.
pub(crate) fn release_name_request(name: &str) -> Request {
    Request::ReleaseName {
        name: name.to_owned(),
    }
}

/// Sets this connection's inbox capacity.
pub(crate) fn inbox_capacity_request(capacity: Capacity) -> Request {
    Request::SetInboxCapacity { capacity }
}

/// `ReceiveWith` with batch size `max` → the messages: exactly one for
/// `None`, one to `max` for `Some(max)`.
pub(crate) fn expect_fetched(response: Response, max: Option<u32>) -> Result<Vec<Message>, Error> {
    match max {
        None => expect_message(response).map(|message| vec![message]),
        Some(max) => expect_received_many(response, max),
    }
}

/// A manual-acknowledgement receive of one message from `source` → the
/// held message.
pub(crate) fn expect_held(response: Response, source: &Source) -> Result<Held, Error> {
    expect_message(response).map(|message| Held::from_source(source, message))
}

/// `Settle` → done.
pub(crate) fn expect_settled(response: Response) -> Result<(), Error> {
    match response {
        Response::Settled => Ok(()),
        other => Err(unexpected("Settled", &other)),
    }
}

/// `Reply` → the reply reached the caller.
pub(crate) fn expect_replied(response: Response) -> Result<(), Error> {
    match response {
        Response::Replied => Ok(()),
        other => Err(unexpected("Replied", &other)),
    }
}

/// `ClaimName` → this connection holds the name.
pub(crate) fn expect_name_claimed(response: Response) -> Result<(), Error> {
    match response {
        Response::NameClaimed => Ok(()),
        other => Err(unexpected("NameClaimed", &other)),
    }
}

/// `ReleaseName` → done.
pub(crate) fn expect_name_released(response: Response) -> Result<(), Error> {
    match response {
        Response::NameReleased => Ok(()),
        other => Err(unexpected("NameReleased", &other)),
    }
}

/// `SetInboxCapacity` → done.
/// `SetInboxPermissions` → done.
pub(crate) fn expect_inbox_permissions_set(response: Response) -> Result<(), Error> {
    match response {
        Response::InboxPermissionsSet => Ok(()),
        other => Err(unexpected("InboxPermissionsSet", &other)),
    }
}

/// The request that creates `name`: with a mode or group, in one step.
pub(crate) fn create_request(
    name: &str,
    settings: mailbox_proto::MailboxSettings,
    mode: Option<u32>,
    group: Option<u32>,
) -> Request {
    if mode.is_none() && group.is_none() {
        Request::CreateMailbox {
            name: name.to_owned(),
            settings: Box::new(settings),
        }
    } else {
        Request::CreateMailboxWith {
            name: name.to_owned(),
            settings: Box::new(settings),
            mode,
            group,
        }
    }
}

pub(crate) fn expect_inbox_capacity_set(response: Response) -> Result<(), Error> {
    match response {
        Response::InboxCapacitySet => Ok(()),
        other => Err(unexpected("InboxCapacitySet", &other)),
    }
}

/// `SetPermissions` → done.
pub(crate) fn expect_permissions_set(response: Response) -> Result<(), Error> {
    match response {
        Response::PermissionsSet => Ok(()),
        other => Err(unexpected("PermissionsSet", &other)),
    }
}

/// `Purge` → how many queued messages were discarded.
pub(crate) fn expect_purged(response: Response) -> Result<u64, Error> {
    match response {
        Response::Purged { discarded } => Ok(discarded),
        other => Err(unexpected("Purged", &other)),
    }
}

/// Keeps the failure of the lowest position in `slot`.
fn note_first_error(slot: &mut Option<(usize, Error)>, position: usize, error: Error) {
    let earlier = matches!(slot, Some((first, _)) if *first < position);
    if !earlier {
        *slot = Some((position, error));
    }
}

/// Why a pipelined send stopped, and exactly which payloads the broker
/// accepted before and after the failure.
///
/// Positions count from 0 in the order the payloads were given. A payload
/// at a position below [`issued`](Self::issued) that is in neither
/// [`accepted`](Self::accepted) nor [`unknown`](Self::unknown) was refused by
/// the broker and will never be delivered; payloads from `issued` on were
/// never sent.
#[derive(Debug)]
pub struct PipelineError {
    /// The failure of the lowest position.
    pub error: Error,
    /// The position of the payload that failed with `error`.
    pub failed_at: usize,
    /// Every accepted payload's position and receipt, by position.
    pub accepted: Vec<(usize, SendReceipt)>,
    /// Positions whose fate is unknown because the connection broke before
    /// their answer arrived (they may or may not have been accepted).
    pub unknown: Vec<usize>,
    /// How many payloads were taken from the input and sent.
    pub issued: usize,
}

impl fmt::Display for PipelineError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "send #{} failed: {} ({} of {} sent messages accepted",
            self.failed_at,
            self.error,
            self.accepted.len(),
            self.issued
        )?;
        if !self.unknown.is_empty() {
            write!(f, ", {} with unknown fate", self.unknown.len())?;
        }
        f.write_str(")")
    }
}

impl std::error::Error for PipelineError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.error)
    }
}

/// The outcome so far of a pipelined send: which positions were accepted,
/// refused or left unknown, and whether to send more.
#[derive(Debug)]
pub(crate) struct SendTally {
    window: usize,
    issued: usize,
    accepted: Vec<(usize, SendReceipt)>,
    unknown: Vec<usize>,
    first_error: Option<(usize, Error)>,
}

impl SendTally {
    /// A tally keeping at most `window` sends (at least 1) in flight.
    pub(crate) fn new(window: usize) -> Self {
        Self {
            window: window.max(1),
            issued: 0,
            accepted: Vec::new(),
            unknown: Vec::new(),
            first_error: None,
        }
    }

    /// How many more sends may be started with `in_flight` unanswered: none
    /// once any send failed.
    pub(crate) fn room(&self, in_flight: usize) -> usize {
        if self.first_error.is_some() {
            0
        } else {
            self.window.saturating_sub(in_flight)
        }
    }

    /// Takes the next position for a send about to start.
    pub(crate) fn issue(&mut self) -> usize {
        let position = self.issued;
        self.issued += 1;
        position
    }

    /// Records that the send at `position` failed before it was written, so
    /// it is certainly not accepted.
    pub(crate) fn not_sent(&mut self, position: usize, error: Error) {
        self.note_error(position, error);
    }

    fn note_error(&mut self, position: usize, error: Error) {
        note_first_error(&mut self.first_error, position, error);
    }

    /// Records the outcome of the send at `position`.
    pub(crate) fn record(&mut self, position: usize, result: Result<Response, Error>) {
        match result.and_then(expect_sent) {
            Ok(receipt) => self.accepted.push((position, receipt)),
            Err(error) => {
                // Only a broker's answer is a definite refusal; a broken
                // connection or a garbled answer leaves the fate unknown.
                if !error.is_broker_answer() {
                    self.unknown.push(position);
                }
                self.note_error(position, error);
            }
        }
    }

    /// Every receipt in input order, or what went wrong.
    pub(crate) fn finish(mut self) -> Result<Vec<SendReceipt>, PipelineError> {
        self.accepted
            .sort_unstable_by_key(|(position, _)| *position);
        self.unknown.sort_unstable();
        match self.first_error {
            None => Ok(self
                .accepted
                .into_iter()
                .map(|(_, receipt)| receipt)
                .collect()),
            Some((failed_at, error)) => Err(PipelineError {
                error,
                failed_at,
                accepted: self.accepted,
                unknown: self.unknown,
                issued: self.issued,
            }),
        }
    }
}

/// The progress of a pipelined receive of `count` messages.
#[derive(Debug)]
pub(crate) struct ReceiveTally {
    count: usize,
    window: usize,
    issued: usize,
    received: usize,
    first_error: Option<Error>,
}

impl ReceiveTally {
    /// A tally for `count` messages with at most `window` (at least 1)
    /// receives in flight.
    pub(crate) fn new(count: usize, window: usize) -> Self {
        Self {
            count,
            window: window.max(1),
            issued: 0,
            received: 0,
            first_error: None,
        }
    }

    /// How many more receives to start with `in_flight` unanswered: never
    /// more than `count` in all, none once one failed.
    pub(crate) fn room(&self, in_flight: usize) -> usize {
        if self.first_error.is_some() {
            return 0;
        }
        self.window
            .saturating_sub(in_flight)
            .min(self.count - self.issued)
    }

    /// Notes that a receive was started.
    pub(crate) fn issue(&mut self) {
        self.issued += 1;
    }

    /// Whether a receive failed, so that the outstanding ones are to be
    /// cancelled (their messages, if any arrive anyway, still count).
    pub(crate) fn failed(&self) -> bool {
        self.first_error.is_some()
    }

    /// Records one receive's answer; returns its message if it got one.
    pub(crate) fn record(&mut self, result: Result<Response, Error>) -> Option<Message> {
        match result.and_then(expect_message) {
            Ok(message) => {
                self.received += 1;
                Some(message)
            }
            Err(error) => {
                if self.first_error.is_none() {
                    self.first_error = Some(error);
                }
                None
            }
        }
    }

    /// How many messages were received, or the first failure.
    pub(crate) fn finish(self) -> Result<usize, Error> {
        match self.first_error {
            None => Ok(self.received),
            Some(error) => Err(error),
        }
    }
}

/// What a streamed send sent: every payload of its input, all accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamReceipt {
    /// How many payloads were sent and accepted: all the input gave.
    pub accepted: usize,
    /// Each batch's receipt, in input order: batch `i` carried the payloads
    /// from the sum of the earlier batches' `admitted` on.
    pub batches: Vec<BatchReceipt>,
}

/// Why a streamed send stopped, and exactly which payloads the broker
/// accepted.
///
/// Positions count from 0 in input order. A batch carries consecutive
/// positions and the broker admits it from its front, so what it accepted of
/// each batch is one range. A position below [`issued`](Self::issued) that
/// is in neither [`accepted`](Self::accepted) nor [`unknown`](Self::unknown)
/// was not accepted and never will be; positions from `issued` on were never
/// sent.
#[derive(Debug)]
pub struct StreamError {
    /// The failure of the lowest position. For a batch that stopped
    /// part-way this is the broker's reason ([`Error::Broker`]) and the
    /// batch's accepted front is in `accepted`.
    pub error: Error,
    /// The position of the first payload not accepted because of `error`.
    pub failed_at: usize,
    /// The accepted positions, one range per batch with that batch's
    /// receipt (covering the range only), sorted by position.
    pub accepted: Vec<(Range<usize>, BatchReceipt)>,
    /// The positions of batches whose fate is unknown because the connection
    /// broke before their answer arrived, sorted.
    pub unknown: Vec<Range<usize>>,
    /// How many payloads were taken from the input and sent.
    pub issued: usize,
}

impl StreamError {
    /// How many payloads the broker accepted.
    pub fn accepted_count(&self) -> usize {
        self.accepted.iter().map(|(range, _)| range.len()).sum()
    }
}

impl fmt::Display for StreamError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "streamed send stopped at payload #{}: {} ({} of {} sent payloads accepted",
            self.failed_at,
            self.error,
            self.accepted_count(),
            self.issued
        )?;
        let unknown: usize = self.unknown.iter().map(Range::len).sum();
        if unknown > 0 {
            write!(f, ", {unknown} with unknown fate")?;
        }
        f.write_str(")")
    }
}

impl std::error::Error for StreamError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.error)
    }
}

/// Bytes of a `SendMany` frame besides its payloads and their length
/// prefixes, at most, not counting the mailbox name: the request id, the
/// variant tags, the name's and the vector's lengths and the wait.
const SEND_MANY_OVERHEAD: usize = 64;

/// Bytes of one payload's length prefix, at most (a varint `u64`).
const PAYLOAD_PREFIX: usize = 9;

/// Cuts a stream of payloads into batches of at most `batch` payloads whose
/// `SendMany` frame fits the broker's limit. A payload too large for any
/// frame goes alone, to be refused when its request is encoded.
#[derive(Debug)]
pub(crate) struct Batcher<I> {
    payloads: std::iter::Fuse<I>,
    /// A payload taken from the input that did not fit the previous batch.
    carry: Option<Bytes>,
    batch: usize,
    /// Bytes a batch's payloads and their prefixes may take.
    budget: usize,
    next_position: usize,
}

impl<I: Iterator<Item = Bytes>> Batcher<I> {
    /// Batches of up to `batch` (at least 1) payloads for `mailbox`, each
    /// fitting a frame of `max_frame_len` bytes.
    pub(crate) fn new(payloads: I, batch: usize, max_frame_len: u32, mailbox: &str) -> Self {
        Self {
            payloads: payloads.fuse(),
            carry: None,
            batch: batch.max(1),
            budget: (max_frame_len as usize).saturating_sub(SEND_MANY_OVERHEAD + mailbox.len()),
            next_position: 0,
        }
    }

    /// The next batch's positions and payloads; `None` once the input is
    /// exhausted.
    pub(crate) fn next_batch(&mut self) -> Option<(Range<usize>, Vec<Bytes>)> {
        let mut payloads = Vec::with_capacity(self.batch.min(4096));
        let mut bytes = 0;
        while payloads.len() < self.batch {
            let Some(payload) = self.carry.take().or_else(|| self.payloads.next()) else {
                break;
            };
            let cost = payload.len().saturating_add(PAYLOAD_PREFIX);
            if !payloads.is_empty() && bytes + cost > self.budget {
                self.carry = Some(payload);
                break;
            }
            bytes += cost;
            payloads.push(payload);
        }
        if payloads.is_empty() {
            return None;
        }
        let start = self.next_position;
        self.next_position += payloads.len();
        Some((start..self.next_position, payloads))
    }
}

/// The outcome so far of a streamed send: which ranges of positions were
/// accepted, refused or left unknown, and whether to send more batches.
#[derive(Debug)]
pub(crate) struct StreamSendTally {
    window: usize,
    issued: usize,
    accepted: Vec<(Range<usize>, BatchReceipt)>,
    unknown: Vec<Range<usize>>,
    first_error: Option<(usize, Error)>,
}

impl StreamSendTally {
    /// A tally keeping at most `window` batches (at least 1) in flight.
    pub(crate) fn new(window: usize) -> Self {
        Self {
            window: window.max(1),
            issued: 0,
            accepted: Vec::new(),
            unknown: Vec::new(),
            first_error: None,
        }
    }

    /// How many more batches may be started with `in_flight` unanswered:
    /// none once any batch stopped or failed.
    pub(crate) fn room(&self, in_flight: usize) -> usize {
        if self.first_error.is_some() {
            0
        } else {
            self.window.saturating_sub(in_flight)
        }
    }

    /// Notes that the batch of `positions` was sent.
    pub(crate) fn issue(&mut self, positions: &Range<usize>) {
        self.issued = self.issued.max(positions.end);
    }

    /// Records that the batch of `positions` could not be sent (so none of
    /// it was accepted).
    pub(crate) fn not_sent(&mut self, positions: &Range<usize>, error: Error) {
        note_first_error(&mut self.first_error, positions.start, error);
    }

    /// Records the answer to the batch of `positions`.
    pub(crate) fn record(&mut self, positions: Range<usize>, result: Result<Response, Error>) {
        let error = match result.and_then(|response| sent_many(response, positions.len())) {
            Ok((receipt, stopped)) => {
                let end = positions.start + receipt.admitted as usize;
                if receipt.admitted > 0 {
                    self.accepted.push((positions.start..end, receipt));
                }
                match stopped {
                    None => return,
                    Some(error) => {
                        note_first_error(&mut self.first_error, end, Error::Broker(error));
                        return;
                    }
                }
            }
            Err(error) => error,
        };
        // Only a broker's answer is a definite refusal; a broken connection
        // or a garbled answer leaves the batch's fate unknown.
        if !error.is_broker_answer() {
            self.unknown.push(positions.clone());
        }
        note_first_error(&mut self.first_error, positions.start, error);
    }

    /// The receipts in input order, or what went wrong.
    pub(crate) fn finish(mut self) -> Result<StreamReceipt, StreamError> {
        self.accepted
            .sort_unstable_by_key(|(positions, _)| positions.start);
        self.unknown
            .sort_unstable_by_key(|positions| positions.start);
        match self.first_error {
            None => Ok(StreamReceipt {
                accepted: self.issued,
                batches: self
                    .accepted
                    .into_iter()
                    .map(|(_, receipt)| receipt)
                    .collect(),
            }),
            Some((failed_at, error)) => Err(StreamError {
                error,
                failed_at,
                accepted: self.accepted,
                unknown: self.unknown,
                issued: self.issued,
            }),
        }
    }
}

/// The progress of a streamed receive of `count` messages by batches.
///
/// **Invariant**: `received + outstanding <= count`, where `outstanding` is
/// the sum of the `max` of the receives in flight, so no receive ever takes
/// a message beyond the `count`th.
#[derive(Debug)]
pub(crate) struct StreamReceiveTally {
    count: usize,
    max: u32,
    window: usize,
    outstanding: usize,
    received: usize,
    first_error: Option<Error>,
}

impl StreamReceiveTally {
    /// A tally for `count` messages taken by receives of up to `max` (at
    /// least 1) with at most `window` (at least 1) in flight.
    pub(crate) fn new(count: usize, max: u32, window: usize) -> Self {
        Self {
            count,
            max: max.max(1),
            window: window.max(1),
            outstanding: 0,
            received: 0,
            first_error: None,
        }
    }

    /// The `max` of the next receive to start with `in_flight` unanswered,
    /// if one is to start: none once one failed, and never more than is
    /// still needed beyond what the outstanding ones may bring.
    pub(crate) fn next_max(&self, in_flight: usize) -> Option<u32> {
        if self.first_error.is_some() || in_flight >= self.window {
            return None;
        }
        let wanted = self.count - self.received - self.outstanding;
        (wanted > 0).then(|| self.max.min(u32::try_from(wanted).unwrap_or(u32::MAX)))
    }

    /// Notes that a receive of up to `max` was started.
    pub(crate) fn issue(&mut self, max: u32) {
        self.outstanding += max as usize;
    }

    /// Records that a receive could not be started.
    pub(crate) fn not_sent(&mut self, error: Error) {
        self.first_error.get_or_insert(error);
    }

    /// Whether a receive failed, so that the outstanding ones are to be
    /// cancelled (their messages, if any arrive anyway, still count).
    pub(crate) fn failed(&self) -> bool {
        self.first_error.is_some()
    }

    /// Records the answer to a receive of up to `max`; returns its messages.
    pub(crate) fn record(&mut self, max: u32, result: Result<Response, Error>) -> Vec<Message> {
        self.outstanding -= max as usize;
        match result.and_then(|response| expect_received_many(response, max)) {
            Ok(messages) => {
                self.received += messages.len();
                messages
            }
            Err(error) => {
                self.first_error.get_or_insert(error);
                Vec::new()
            }
        }
    }

    /// How many messages were received, or the first failure.
    pub(crate) fn finish(self) -> Result<usize, Error> {
        match self.first_error {
            None => Ok(self.received),
            Some(error) => Err(error),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mailbox_proto::Metadata;

    const MAX: u32 = codec::DEFAULT_MAX_FRAME_LEN;

    fn welcome(version: u32) -> Welcome {
        Welcome {
            protocol_version: version,
            broker_version: "test".into(),
            connection_id: 7,
            max_frame_len: MAX,
        }
    }

    fn frame_bytes(frame: &ServerFrame) -> BytesMut {
        let mut buf = BytesMut::new();
        encode_frame(frame, &mut buf, MAX).expect("encodes");
        buf
    }

    fn message(sequence: u64, payload: &'static [u8]) -> Message {
        Message {
            metadata: Metadata {
                sequence,
                sender_pid: 1,
                sender_uid: 2,
                sender_gid: 3,
                sender_connection: 4,
                accepted_at_unix_nanos: 5,
                redeliveries: 0,
                details: None,
            },
            payload: Bytes::from_static(payload),
        }
    }

    fn response(id: RequestId, result: Result<Response, BrokerError>) -> ServerFrame {
        ServerFrame::Response { id, result }
    }

    fn sent(sequence: u64) -> Result<Response, Error> {
        Ok(Response::Sent {
            sequence,
            recipients: 1,
        })
    }

    fn broker_error(kind: ErrorKind) -> Error {
        Error::Broker(BrokerError::new(kind, "test"))
    }

    #[test]
    fn hello_is_what_proto_encodes() {
        let mut out = BytesMut::new();
        encode_hello("tester", &mut out).expect("encodes");
        let hello: Hello = mailbox_proto::decode_frame(&mut out, MAX)
            .expect("valid")
            .expect("whole");
        assert_eq!(hello, Hello::new("tester"));
    }

    #[test]
    fn handshake_accepts_a_welcome_of_our_version() {
        let mut buf = frame_bytes(&ServerFrame::Welcome(welcome(PROTOCOL_VERSION)));
        let frame = decode_server_frame(&mut buf)
            .expect("valid")
            .expect("whole");
        let accepted = accept_handshake(frame).expect("accepted");
        assert_eq!(accepted.connection_id, 7);
    }

    #[test]
    fn handshake_waits_for_a_whole_frame() {
        let whole = frame_bytes(&ServerFrame::Welcome(welcome(PROTOCOL_VERSION)));
        for split in 0..whole.len() {
            let mut partial = BytesMut::from(&whole[..split]);
            assert!(decode_server_frame(&mut partial).expect("valid").is_none());
        }
    }

    #[test]
    fn handshake_refusals_are_typed() {
        let refused = accept_handshake(ServerFrame::Goodbye(BrokerError::new(
            ErrorKind::UnsupportedVersion,
            "speak version 2",
        )))
        .expect_err("should fail");
        assert!(matches!(refused, Error::Rejected(_)));
        assert_eq!(refused.kind(), Some(ErrorKind::UnsupportedVersion));

        let other_version =
            accept_handshake(ServerFrame::Welcome(welcome(99))).expect_err("should fail");
        assert!(
            matches!(other_version, Error::Protocol(_)),
            "{other_version}"
        );

        let early = accept_handshake(response(1, Ok(Response::Deleted))).expect_err("should fail");
        assert!(matches!(early, Error::Protocol(_)), "{early}");
    }

    #[test]
    fn garbage_from_the_broker_is_a_protocol_error() {
        let mut buf = BytesMut::from(&[2u8, 0, 0, 0, 0xff, 0xff][..]);
        assert!(matches!(
            decode_server_frame(&mut buf),
            Err(Error::Protocol(_))
        ));
    }

    #[test]
    fn requests_get_distinct_ids_and_encode_as_client_frames() {
        let mut session = Session::new(&welcome(PROTOCOL_VERSION));
        let mut out = BytesMut::new();
        let first = session
            .start(Request::ListMailboxes, "a", &mut out)
            .expect("starts");
        let second = session
            .start(Request::Status, "b", &mut out)
            .expect("starts");
        assert_ne!(first, second);
        assert_eq!(session.in_flight(), 2);
        let decoded: Vec<ClientFrame> = std::iter::from_fn(|| {
            mailbox_proto::decode_frame::<ClientFrame>(&mut out, MAX).expect("valid")
        })
        .collect();
        assert_eq!(
            decoded,
            vec![
                ClientFrame {
                    id: first,
                    request: Request::ListMailboxes
                },
                ClientFrame {
                    id: second,
                    request: Request::Status
                },
            ]
        );
    }

    #[test]
    fn out_of_order_responses_reach_their_own_waiters() {
        let mut session = Session::new(&welcome(PROTOCOL_VERSION));
        let mut out = BytesMut::new();
        let receive = session
            .start(
                Request::Receive {
                    mailbox: "jobs".into(),
                    wait: Wait::Forever,
                },
                "receive",
                &mut out,
            )
            .expect("starts");
        let list = session
            .start(Request::ListMailboxes, "list", &mut out)
            .expect("starts");

        // The later request is answered first, both in one read.
        let mut incoming = frame_bytes(&response(list, Ok(Response::Mailboxes(vec![]))));
        incoming.extend_from_slice(&frame_bytes(&response(
            receive,
            Ok(Response::Received(message(1, b"hi"))),
        )));
        let first = session
            .route(
                decode_server_frame(&mut incoming)
                    .expect("valid")
                    .expect("whole"),
            )
            .expect("routes");
        assert_eq!((first.id, first.waiter), (list, "list"));
        let second = session
            .route(
                decode_server_frame(&mut incoming)
                    .expect("valid")
                    .expect("whole"),
            )
            .expect("routes");
        assert_eq!((second.id, second.waiter), (receive, "receive"));
        assert_eq!(
            expect_message(into_result(second.result).expect("ok")).expect("message"),
            message(1, b"hi")
        );
        assert_eq!(session.in_flight(), 0);
    }

    #[test]
    fn a_response_to_nothing_or_a_goodbye_ends_the_session() {
        let mut session: Session<()> = Session::new(&welcome(PROTOCOL_VERSION));
        assert!(matches!(
            session.route(response(42, Ok(Response::Deleted))),
            Err(Error::Protocol(_))
        ));
        let goodbye = session
            .route(ServerFrame::Goodbye(BrokerError::new(
                ErrorKind::BrokerShuttingDown,
                "stopping",
            )))
            .expect_err("should fail");
        assert_eq!(goodbye.kind(), Some(ErrorKind::BrokerShuttingDown));
        assert!(matches!(
            session.route(ServerFrame::Welcome(welcome(PROTOCOL_VERSION))),
            Err(Error::Protocol(_))
        ));
    }

    #[test]
    fn an_oversized_request_is_refused_without_a_trace() {
        let mut session = Session::new(&Welcome {
            max_frame_len: 64,
            ..welcome(PROTOCOL_VERSION)
        });
        let mut out = BytesMut::from(&b"queued"[..]);
        let error = session
            .start(
                Request::Send {
                    mailbox: "m".into(),
                    payload: Bytes::from(vec![0u8; 100]),
                    wait: Wait::Forever,
                },
                (),
                &mut out,
            )
            .expect_err("should fail");
        assert_eq!(error.kind(), Some(ErrorKind::MessageTooLarge));
        assert_eq!(&out[..], b"queued");
        assert_eq!(session.in_flight(), 0);
    }

    #[test]
    fn answers_become_typed_results() {
        assert_eq!(
            expect_sent(Response::Sent {
                sequence: 3,
                recipients: 0
            })
            .expect("sent"),
            SendReceipt {
                sequence: 3,
                recipients: 0
            }
        );
        assert!(matches!(
            expect_sent(Response::Deleted),
            Err(Error::Protocol(_))
        ));
        assert!(expect_created(Response::Created { created: true }).expect("created"));
        let refused = into_result(Err(BrokerError::new(ErrorKind::NoSuchMailbox, "x")));
        assert_eq!(
            refused.expect_err("should fail").kind(),
            Some(ErrorKind::NoSuchMailbox)
        );
    }

    #[test]
    fn an_empty_mailbox_is_no_message_but_other_errors_stay() {
        assert_eq!(
            optional_message(Err(broker_error(ErrorKind::WouldBlock))).expect("ok"),
            None
        );
        assert!(optional_message(Err(broker_error(ErrorKind::Timeout))).is_err());
        assert_eq!(
            optional_message(Ok(Response::Received(message(1, b"x")))).expect("ok"),
            Some(message(1, b"x"))
        );
    }

    #[test]
    fn timeouts_round_up_to_whole_milliseconds() {
        assert_eq!(wait_at_most(Duration::ZERO), Wait::Timeout { millis: 0 });
        assert_eq!(
            wait_at_most(Duration::from_nanos(2_000_001)),
            Wait::Timeout { millis: 3 }
        );
        assert_eq!(
            wait_at_most(Duration::MAX),
            Wait::Timeout { millis: u64::MAX }
        );
    }

    #[test]
    fn send_tally_reports_receipts_in_input_order() {
        let mut tally = SendTally::new(2);
        assert_eq!(tally.room(0), 2);
        let (a, b) = (tally.issue(), tally.issue());
        assert_eq!(tally.room(2), 0);
        tally.record(b, sent(2));
        tally.record(a, sent(1));
        let receipts = tally.finish().expect("all accepted");
        assert_eq!(
            receipts.iter().map(|r| r.sequence).collect::<Vec<_>>(),
            vec![1, 2]
        );
    }

    #[test]
    fn send_tally_stops_at_a_refusal_and_keeps_later_acceptances() {
        let mut tally = SendTally::new(4);
        let positions: Vec<usize> = (0..4).map(|_| tally.issue()).collect();
        tally.record(positions[0], sent(1));
        tally.record(positions[2], sent(2));
        tally.record(positions[1], Err(broker_error(ErrorKind::MessageTooLarge)));
        assert_eq!(tally.room(0), 0, "no more sends after a failure");
        tally.record(positions[3], Err(Error::Disconnected));
        let error = tally.finish().expect_err("should fail");
        assert_eq!(error.failed_at, 1);
        assert_eq!(error.error.kind(), Some(ErrorKind::MessageTooLarge));
        assert_eq!(
            error.accepted.iter().map(|(p, _)| *p).collect::<Vec<_>>(),
            vec![0, 2]
        );
        assert_eq!(error.unknown, vec![3], "a broken connection is no refusal");
        assert_eq!(error.issued, 4);
    }

    #[test]
    fn receive_tally_never_asks_for_more_than_count() {
        let mut tally = ReceiveTally::new(3, 8);
        assert_eq!(tally.room(0), 3);
        for _ in 0..3 {
            tally.issue();
        }
        assert_eq!(tally.room(0), 0);
        assert!(tally
            .record(Ok(Response::Received(message(1, b"a"))))
            .is_some());
        assert!(tally
            .record(Err(broker_error(ErrorKind::Timeout)))
            .is_none());
        assert!(tally.failed());
        // A message that arrives despite the cancel still counts.
        assert!(tally
            .record(Ok(Response::Received(message(2, b"b"))))
            .is_some());
        assert_eq!(
            tally.finish().expect_err("should fail").kind(),
            Some(ErrorKind::Timeout)
        );
    }

    fn sent_many(admitted: u32, stopped: Option<ErrorKind>) -> Response {
        Response::SentMany {
            first_sequence: 10,
            admitted,
            recipients: 1,
            stopped: stopped.map(|kind| BrokerError::new(kind, "test")),
        }
    }

    fn received_many(sequences: std::ops::RangeInclusive<u64>) -> Result<Response, Error> {
        Ok(Response::ReceivedMany(
            sequences.map(|sequence| message(sequence, b"m")).collect(),
        ))
    }

    #[test]
    fn a_batch_is_all_sent_partly_sent_or_not_sent() {
        let all = expect_sent_many(sent_many(3, None), 3).expect("all sent");
        assert_eq!(
            all,
            BatchReceipt {
                first_sequence: 10,
                admitted: 3,
                recipients: 1
            }
        );
        assert_eq!(all.sequences(), 10..13);

        let partial = expect_sent_many(sent_many(2, Some(ErrorKind::Timeout)), 3)
            .expect_err("only some sent");
        assert!(
            matches!(
                partial,
                Error::Partial {
                    admitted: 2,
                    first_sequence: 10,
                    ..
                }
            ),
            "{partial}"
        );
        assert_eq!(partial.kind(), Some(ErrorKind::Timeout));
        assert_eq!(partial.admitted(), 2);
        assert!(partial.is_broker_answer());
        assert!(partial.to_string().contains("#10 to #11"), "{partial}");

        // Nothing admitted is the plain error a single send would give.
        let none =
            expect_sent_many(sent_many(0, Some(ErrorKind::WouldBlock)), 3).expect_err("none sent");
        assert!(matches!(none, Error::Broker(_)), "{none}");
        assert_eq!(none.kind(), Some(ErrorKind::WouldBlock));
        assert_eq!(none.admitted(), 0);
    }

    #[test]
    fn a_batch_answer_that_does_not_add_up_is_a_protocol_error() {
        for (response, requested) in [
            (sent_many(2, None), 3),
            (sent_many(3, Some(ErrorKind::Timeout)), 3),
            (sent_many(4, None), 3),
            (Response::Deleted, 3),
        ] {
            let error = expect_sent_many(response, requested).expect_err("inconsistent");
            assert!(matches!(error, Error::Protocol(_)), "{error}");
        }
    }

    #[test]
    fn received_batches_hold_one_to_max_messages() {
        let messages = expect_received_many(received_many(1..=3).expect("ok"), 3).expect("three");
        assert_eq!(messages.len(), 3);
        for (result, max) in [
            (Ok(Response::ReceivedMany(Vec::new())), 3),
            (received_many(1..=4), 3),
        ] {
            let error = expect_received_many(result.expect("ok"), max).expect_err("bad count");
            assert!(matches!(error, Error::Protocol(_)), "{error}");
        }
        // 0 counts as 1, as the broker counts it.
        assert_eq!(
            receive_many_request("m", 0, Wait::Never),
            Request::ReceiveMany {
                mailbox: "m".into(),
                max: 1,
                wait: Wait::Never
            }
        );
        assert!(
            optional_messages(Err(broker_error(ErrorKind::WouldBlock)), 5)
                .expect("empty is no error")
                .is_empty()
        );
        assert!(optional_messages(Err(broker_error(ErrorKind::Timeout)), 5).is_err());
    }

    #[test]
    fn an_oversized_batch_is_refused_without_a_trace() {
        let mut session = Session::new(&Welcome {
            max_frame_len: 256,
            ..welcome(PROTOCOL_VERSION)
        });
        let mut out = BytesMut::from(&b"queued"[..]);
        let (request, count) = send_many_request(
            "m",
            (0..10).map(|_| Bytes::from(vec![0u8; 30])),
            Wait::Forever,
        );
        assert_eq!(count, 10);
        let error = session
            .start(request, (), &mut out)
            .expect_err("should fail");
        assert!(matches!(error, Error::Broker(_)), "{error}");
        assert_eq!(error.kind(), Some(ErrorKind::MessageTooLarge));
        assert!(
            error
                .to_string()
                .contains("a batch of 10 messages (300 payload bytes)"),
            "{error}"
        );
        assert_eq!(&out[..], b"queued");
        assert_eq!(session.in_flight(), 0);
    }

    fn payloads(lens: &[usize]) -> impl Iterator<Item = Bytes> + '_ {
        lens.iter().map(|&len| Bytes::from(vec![7u8; len]))
    }

    #[test]
    fn batches_are_cut_by_count() {
        let mut batcher = Batcher::new(payloads(&[1; 10]), 4, MAX, "m");
        let cuts: Vec<_> = std::iter::from_fn(|| batcher.next_batch())
            .map(|(positions, payloads)| {
                assert_eq!(positions.len(), payloads.len());
                positions
            })
            .collect();
        assert_eq!(cuts, vec![0..4, 4..8, 8..10]);
    }

    #[test]
    fn batches_are_cut_to_fit_the_frame_and_always_fit() {
        let max_frame_len = 1000;
        let lens = [300, 300, 300, 300, 2000, 10, 10];
        let mut session: Session<()> = Session::new(&Welcome {
            max_frame_len,
            ..welcome(PROTOCOL_VERSION)
        });
        let mut batcher = Batcher::new(payloads(&lens), 100, max_frame_len, "jobs");
        let mut cuts = Vec::new();
        let mut out = BytesMut::new();
        while let Some((positions, payloads)) = batcher.next_batch() {
            let request = Request::SendMany {
                mailbox: "jobs".into(),
                payloads,
                wait: Wait::Forever,
            };
            let fits = session.start(request, (), &mut out).is_ok();
            cuts.push((positions, fits));
        }
        // The payload too large for any frame goes alone and is refused.
        assert_eq!(
            cuts,
            vec![(0..3, true), (3..4, true), (4..5, false), (5..7, true)]
        );
    }

    #[test]
    fn stream_send_tally_reports_receipts_in_input_order() {
        let mut tally = StreamSendTally::new(2);
        assert_eq!(tally.room(0), 2);
        let (a, b) = (0..3, 3..5);
        tally.issue(&a);
        tally.issue(&b);
        assert_eq!(tally.room(2), 0);
        tally.record(
            b,
            Ok(Response::SentMany {
                first_sequence: 4,
                admitted: 2,
                recipients: 1,
                stopped: None,
            }),
        );
        tally.record(a, Ok(sent_many(3, None)));
        let receipt = tally.finish().expect("all accepted");
        assert_eq!(receipt.accepted, 5);
        assert_eq!(
            receipt
                .batches
                .iter()
                .map(|b| b.first_sequence)
                .collect::<Vec<_>>(),
            vec![10, 4]
        );
    }

    #[test]
    fn stream_send_tally_says_exactly_which_positions_were_accepted() {
        let mut tally = StreamSendTally::new(4);
        let batches = [0..3, 3..6, 6..9, 9..12];
        for positions in &batches {
            tally.issue(positions);
        }
        // The second batch stops after one message; the third, already in
        // flight, is accepted whole; the fourth's fate is unknown.
        tally.record(batches[2].clone(), Ok(sent_many(3, None)));
        tally.record(
            batches[1].clone(),
            Ok(sent_many(1, Some(ErrorKind::Timeout))),
        );
        assert_eq!(tally.room(0), 0, "no more batches after a stop");
        tally.record(batches[0].clone(), Ok(sent_many(3, None)));
        tally.record(batches[3].clone(), Err(Error::Disconnected));
        let error = tally.finish().expect_err("should fail");
        assert_eq!(error.failed_at, 4);
        assert!(matches!(error.error, Error::Broker(_)), "{}", error.error);
        assert_eq!(error.error.kind(), Some(ErrorKind::Timeout));
        assert_eq!(
            error
                .accepted
                .iter()
                .map(|(p, _)| p.clone())
                .collect::<Vec<_>>(),
            vec![0..3, 3..4, 6..9]
        );
        assert_eq!(error.accepted_count(), 7);
        assert_eq!(error.unknown, vec![9..12]);
        assert_eq!(error.issued, 12);
        assert!(
            error
                .to_string()
                .starts_with("streamed send stopped at payload #4: "),
            "{error}"
        );
    }

    #[test]
    fn a_refused_batch_accepts_none_of_its_positions() {
        let mut tally = StreamSendTally::new(2);
        tally.issue(&(0..2));
        tally.not_sent(&(2..4), broker_error(ErrorKind::MessageTooLarge));
        tally.record(0..2, Err(broker_error(ErrorKind::NoSuchMailbox)));
        let error = tally.finish().expect_err("should fail");
        assert_eq!(error.failed_at, 0);
        assert_eq!(error.error.kind(), Some(ErrorKind::NoSuchMailbox));
        assert!(error.accepted.is_empty() && error.unknown.is_empty());
        assert_eq!(error.issued, 2);
    }

    #[test]
    fn stream_receive_tally_never_asks_beyond_count() {
        let mut tally = StreamReceiveTally::new(10, 4, 8);
        let mut asked = Vec::new();
        while let Some(max) = tally.next_max(asked.len()) {
            tally.issue(max);
            asked.push(max);
        }
        assert_eq!(asked, vec![4, 4, 2]);
        // The first answer brings only 3 of 4: one more may be asked for.
        assert_eq!(tally.record(4, received_many(1..=3)).len(), 3);
        assert_eq!(tally.next_max(2), Some(1));
        assert_eq!(tally.record(4, received_many(4..=7)).len(), 4);
        assert_eq!(tally.record(2, received_many(8..=9)).len(), 2);
        tally.issue(1);
        assert_eq!(tally.next_max(1), None);
        assert_eq!(tally.record(1, received_many(10..=10)).len(), 1);
        assert_eq!(tally.next_max(0), None);
        assert_eq!(tally.finish().expect("all"), 10);
    }

    #[test]
    fn stream_receive_tally_keeps_the_window_and_counts_raced_messages() {
        let mut tally = StreamReceiveTally::new(100, 10, 2);
        tally.issue(10);
        tally.issue(10);
        assert_eq!(tally.next_max(2), None, "window full");
        assert!(tally
            .record(10, Err(broker_error(ErrorKind::Timeout)))
            .is_empty());
        assert!(tally.failed());
        assert_eq!(tally.next_max(1), None, "no more after a failure");
        // Messages handed over despite the cancel still come out.
        assert_eq!(tally.record(10, received_many(1..=5)).len(), 5);
        assert_eq!(
            tally.finish().expect_err("should fail").kind(),
            Some(ErrorKind::Timeout)
        );
    }

    fn call_message(call: Option<u64>) -> Message {
        let mut message = message(5, b"request");
        message.metadata.details = call.map(|call| {
            Box::new(mailbox_proto::Details {
                call: Some(call),
                ..Default::default()
            })
        });
        message
    }

    #[test]
    fn protocol_2_requests_encode_as_client_frames() {
        let held = Held::from_source(&Source::Inbox { from: None }, message(3, b"x"));
        let requests = vec![
            send_to_request(
                Address::from("worker"),
                Bytes::from_static(b"hi"),
                Wait::Never,
            ),
            post_request(
                Target::mailbox("jobs"),
                Bytes::from_static(b"hi"),
                SendOptions {
                    stage: mailbox_proto::Stage::Acknowledged,
                    key: Some("k".into()),
                    ttl_millis: Some(1000),
                },
                Wait::Timeout { millis: 5 },
            ),
            inbox_request(Some(Address::Process(9)), false, Wait::Forever),
            held_request("jobs", Wait::Never),
            held.settle_request(Verdict::Nack { to_tail: true }),
            call_request(
                Target::process(4),
                Bytes::from_static(b"?"),
                SendOptions::default(),
                Wait::Forever,
            ),
            reply_request(&call_message(Some(77)), Bytes::from_static(b"!")).expect("a call"),
            claim_name_request("svc", Wait::Never),
            release_name_request("svc"),
            Request::ListNames,
            inbox_capacity_request(Capacity::Bounded(8)),
        ];
        let mut session = Session::new(&welcome(PROTOCOL_VERSION));
        let mut out = BytesMut::new();
        for request in &requests {
            session
                .start(request.clone(), (), &mut out)
                .expect("encodes");
        }
        let decoded: Vec<Request> = std::iter::from_fn(|| {
            mailbox_proto::decode_frame::<ClientFrame>(&mut out, MAX).expect("valid")
        })
        .map(|frame| frame.request)
        .collect();
        assert_eq!(decoded, requests);
        // Spot checks of what the helpers build.
        assert_eq!(
            decoded[0],
            Request::SendWith {
                to: Target::Process(Address::Name("worker".into())),
                payload: Bytes::from_static(b"hi"),
                options: Box::default(),
                wait: Wait::Never,
            }
        );
        assert_eq!(
            decoded[3],
            Request::ReceiveWith {
                from: Source::Mailbox("jobs".into()),
                options: ReceiveOptions {
                    max: None,
                    manual_ack: true,
                    priority: 0
                },
                wait: Wait::Never,
            }
        );
        assert_eq!(
            decoded[4],
            Request::Settle {
                mailbox: None,
                sequence: 3,
                verdict: Verdict::Nack { to_tail: true },
                redeliveries: Some(0),
            }
        );
        assert_eq!(
            decoded[6],
            Request::Reply {
                call: 77,
                payload: Bytes::from_static(b"!")
            }
        );
    }

    #[test]
    fn a_reply_to_a_message_that_is_no_call_is_refused_here() {
        let error = reply_request(&call_message(None), Bytes::new()).expect_err("no call");
        assert_eq!(error.kind(), Some(ErrorKind::NotHeld));
        assert!(error.is_broker_answer(), "the connection stays usable");
        assert!(error.to_string().contains("is not a call"), "{error}");
    }

    #[test]
    fn a_batch_of_zero_counts_as_one() {
        let request = fetch_request(
            Source::Inbox { from: None },
            ReceiveOptions {
                max: Some(0),
                ..ReceiveOptions::default()
            },
            Wait::Forever,
        );
        assert!(matches!(
            request,
            Request::ReceiveWith {
                options: ReceiveOptions { max: Some(1), .. },
                ..
            }
        ));
    }

    #[test]
    fn protocol_2_answers_become_typed_results() {
        expect_settled(Response::Settled).expect("settled");
        expect_replied(Response::Replied).expect("replied");
        expect_name_claimed(Response::NameClaimed).expect("claimed");
        expect_name_released(Response::NameReleased).expect("released");
        expect_inbox_capacity_set(Response::InboxCapacitySet).expect("set");
        let names = vec![NameInfo {
            name: "svc".into(),
            process: 3,
            pid: 10,
            uid: 20,
            queued_claims: 0,
        }];
        let page = expect_name_page(Response::NamePage {
            names: names.clone(),
            next: Some("svc".into()),
        })
        .expect("names");
        assert_eq!(page.items, names);
        assert_eq!(page.next.as_deref(), Some("svc"));
        // A cursor that does not move on is refused, not followed forever.
        let mut all = Vec::new();
        let stuck = Page {
            items: Vec::<NameInfo>::new(),
            next: Some("a".into()),
        };
        assert!(follow_page(&mut all, Some("b"), stuck).is_err());
        // Each refuses the others' answers as a protocol error.
        for error in [
            expect_settled(Response::Replied).expect_err("wrong"),
            expect_replied(Response::Settled).expect_err("wrong"),
            expect_name_claimed(Response::NameReleased).expect_err("wrong"),
            expect_name_released(Response::NameClaimed).expect_err("wrong"),
            expect_name_page(Response::InboxCapacitySet).expect_err("wrong"),
            expect_mailbox_page(Response::Names(Vec::new())).expect_err("wrong"),
            expect_inbox_capacity_set(Response::Names(Vec::new())).expect_err("wrong"),
        ] {
            assert!(matches!(error, Error::Protocol(_)), "{error}");
        }
        let error = expect_settled(Response::Names(Vec::new())).expect_err("wrong");
        assert!(
            error.to_string().contains("answered Names where Settled"),
            "{error}"
        );
        // Errors of the new kinds stay typed.
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
            let error = into_result(Err(BrokerError::new(kind, "x"))).expect_err("refused");
            assert_eq!(error.kind(), Some(kind));
        }
    }

    #[test]
    fn general_receives_expect_one_message_or_a_batch() {
        assert_eq!(
            expect_fetched(Response::Received(message(1, b"a")), None).expect("one"),
            vec![message(1, b"a")]
        );
        let batch = expect_fetched(received_many(1..=2).expect("ok"), Some(2)).expect("two");
        assert_eq!(batch.len(), 2);
        for (response, max) in [
            (Response::ReceivedMany(vec![message(1, b"a")]), None),
            (Response::Received(message(1, b"a")), Some(2)),
            (received_many(1..=3).expect("ok"), Some(2)),
        ] {
            let error = expect_fetched(response, max).expect_err("wrong shape");
            assert!(matches!(error, Error::Protocol(_)), "{error}");
        }
        let held = expect_held(
            Response::Received(message(4, b"job")),
            &Source::Mailbox("jobs".into()),
        )
        .expect("held");
        assert_eq!(held.mailbox.as_deref(), Some("jobs"));
        assert_eq!(
            held.settle_request(Verdict::Ack),
            Request::Settle {
                mailbox: Some("jobs".into()),
                sequence: 4,
                verdict: Verdict::Ack,
                redeliveries: Some(0),
            }
        );
    }
}
