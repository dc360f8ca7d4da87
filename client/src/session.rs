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

use bytes::BytesMut;
use mailbox_proto::{
    codec, decode_frame, encode_frame, BrokerError, BrokerStatus, ClientFrame, EncodeError,
    ErrorKind, Hello, MailboxInfo, Message, Request, RequestId, Response, ServerFrame, Wait,
    Welcome, PROTOCOL_VERSION,
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
    decode_frame(incoming, MAX_SERVER_FRAME_LEN)
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
        encode_frame(&ClientFrame { id, request }, out, self.max_frame_len)
            .map_err(encode_error)?;
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

/// `ListMailboxes` → every mailbox.
pub(crate) fn expect_mailboxes(response: Response) -> Result<Vec<MailboxInfo>, Error> {
    match response {
        Response::Mailboxes(mailboxes) => Ok(mailboxes),
        other => Err(unexpected("Mailboxes", &other)),
    }
}

/// `MailboxInfo` → one mailbox.
pub(crate) fn expect_info(response: Response) -> Result<MailboxInfo, Error> {
    match response {
        Response::Info(info) => Ok(info),
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
        Response::Status(status) => Ok(status),
        other => Err(unexpected("Status", &other)),
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
        let earlier = matches!(&self.first_error, Some((first, _)) if *first < position);
        if !earlier {
            self.first_error = Some((position, error));
        }
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

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
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
        let hello: Hello = decode_frame(&mut out, MAX).expect("valid").expect("whole");
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
        let decoded: Vec<ClientFrame> =
            std::iter::from_fn(|| decode_frame::<ClientFrame>(&mut out, MAX).expect("valid"))
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
}
