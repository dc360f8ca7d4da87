//! The bookkeeping of one broker connection, without any I/O.
//!
//! Both the async [`crate::Client`] and the [`crate::blocking::Client`] are
//! I/O drivers around what this module owns: the handshake, request id
//! allocation, encoding [`ClientFrame`]s into an outgoing buffer, decoding
//! [`ServerFrame`]s from an incoming buffer, and routing each response to
//! whatever the caller registered for its id (a oneshot sender, or nothing).
//! It never touches a socket or a clock, so every rule here is a plain unit
//! test.
//!
//! It deliberately does not decide how to wait (threads or tasks), how to
//! batch writes, or what to do with a response nobody waits for any more;
//! what a request is and what its answer means is [`crate::ops`], and
//! windows of requests in flight are [`crate::pipeline`].

use std::collections::HashMap;

use bytes::{Bytes, BytesMut};
use mailbox_proto::{
    codec, encode_frame, BrokerError, ClientFrame, EncodeError, ErrorKind, Hello, Request,
    RequestId, Response, ServerFrame, Welcome, PROTOCOL_VERSION,
};

use crate::error::Error;

/// The largest server frame this client accepts (a maximal message plus its
/// metadata fits).
const MAX_SERVER_FRAME_LEN: u32 = codec::DEFAULT_MAX_FRAME_LEN;

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

    /// Stops waiting for `id`: a quiet send (`Request::SendQuietly`),
    /// whose success has no answer, once a later answer proved it admitted.
    pub(crate) fn forget(&mut self, id: RequestId) -> Option<W> {
        self.pending.remove(&id)
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::messages::SendMany;
    use crate::ops::Operation;
    use crate::test_support::welcome;
    use mailbox_proto::fixtures::message;
    use mailbox_proto::Wait;

    const MAX: u32 = codec::DEFAULT_MAX_FRAME_LEN;

    fn frame_bytes(frame: &ServerFrame) -> BytesMut {
        let mut buf = BytesMut::new();
        encode_frame(frame, &mut buf, MAX).expect("encodes");
        buf
    }

    fn response(id: RequestId, result: Result<Response, BrokerError>) -> ServerFrame {
        ServerFrame::Response { id, result }
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
            Ok(Response::Received(message(1, "hi"))),
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
            second.result.expect("answered"),
            Response::Received(message(1, "hi"))
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
    fn an_oversized_batch_is_refused_without_a_trace() {
        let mut session = Session::new(&Welcome {
            max_frame_len: 256,
            ..welcome(PROTOCOL_VERSION)
        });
        let mut out = BytesMut::from(&b"queued"[..]);
        let request = SendMany::new(
            "m",
            (0..10).map(|_| Bytes::from(vec![0u8; 30])),
            Wait::Forever,
        )
        .request();
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
}
