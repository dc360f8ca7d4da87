//! A fake broker for the client's own tests: a thread on one end of a real
//! Unix socket that performs the handshake, decodes every [`ClientFrame`]
//! and answers with whatever the test's handler returns. It knows no mailbox
//! semantics at all.

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::thread::JoinHandle;

use bytes::BytesMut;
use mailbox_proto::{
    codec, decode_frame, encode_frame, BrokerError, ClientFrame, ErrorKind, Hello, Message,
    Response, ServerFrame, Welcome, PROTOCOL_VERSION,
};

use crate::error::Error;

const MAX: u32 = codec::DEFAULT_MAX_FRAME_LEN;

/// What the fake broker saw.
#[derive(Debug, Default)]
pub(crate) struct Log {
    /// Every frame after the hello, in order.
    pub(crate) frames: Vec<ClientFrame>,
    /// The most frames that arrived in one read.
    pub(crate) largest_batch: usize,
}

/// A running fake broker.
pub(crate) struct FakeBroker {
    thread: JoinHandle<Log>,
    stream: UnixStream,
}

impl FakeBroker {
    /// Waits for the client to hang up and returns what the broker saw.
    pub(crate) fn finish(self) -> Log {
        self.thread.join().expect("fake broker thread")
    }

    /// Closes the broker's end of the connection without a word.
    pub(crate) fn hang_up(self) -> Log {
        self.stream
            .shutdown(std::net::Shutdown::Both)
            .expect("shutdown");
        self.finish()
    }
}

/// A message with recognisable metadata (the one fixture of every crate).
pub(crate) use mailbox_proto::fixtures::message;

/// Messages with sequence numbers `first..first + count`.
pub(crate) fn messages(first: u64, count: u64) -> Vec<Message> {
    (first..first + count)
        .map(|sequence| message(sequence, "m"))
        .collect()
}

/// What a broker of the largest frames welcomes a client of `version`
/// with.
pub(crate) fn welcome(version: u32) -> Welcome {
    Welcome {
        protocol_version: version,
        broker_version: "test".into(),
        connection_id: 7,
        max_frame_len: MAX,
    }
}

/// A refusal of kind `kind`, as the client reports it.
pub(crate) fn broker_error(kind: ErrorKind) -> Error {
    Error::Broker(BrokerError::new(kind, "test"))
}

/// The answer to a batch send of which `admitted` were accepted from
/// sequence 10 on, stopped by an error of kind `stopped` if it is some.
pub(crate) fn batch_answer(admitted: u32, stopped: Option<ErrorKind>) -> Response {
    sent_many(
        10,
        admitted as usize,
        stopped.map(|kind| BrokerError::new(kind, "test")),
    )
}

/// The answer to a batch receive: messages of these sequence numbers.
pub(crate) fn received_many(sequences: std::ops::RangeInclusive<u64>) -> Result<Response, Error> {
    Ok(Response::ReceivedMany(
        sequences.map(|sequence| message(sequence, "m")).collect(),
    ))
}

/// The answer to a batch send of which `admitted` were accepted from
/// `first_sequence` on, stopped by `stopped` if it is some.
pub(crate) fn sent_many(
    first_sequence: u64,
    admitted: usize,
    stopped: Option<BrokerError>,
) -> Response {
    Response::SentMany {
        first_sequence,
        admitted: admitted as u32,
        recipients: 1,
        stopped,
    }
}

fn write_frames(stream: &mut UnixStream, frames: &[ServerFrame]) -> bool {
    let mut out = BytesMut::new();
    for frame in frames {
        encode_frame(frame, &mut out, MAX).expect("encodes");
    }
    stream.write_all(&out).is_ok()
}

fn read_hello(stream: &mut UnixStream, incoming: &mut BytesMut) -> Option<Hello> {
    let mut buf = [0u8; 4096];
    loop {
        if let Some(hello) = decode_frame::<Hello>(incoming, MAX).expect("valid hello") {
            return Some(hello);
        }
        match stream.read(&mut buf) {
            Ok(0) | Err(_) => return None,
            Ok(read) => incoming.extend_from_slice(&buf[..read]),
        }
    }
}

/// Serves `stream` until the client hangs up or the handler says goodbye.
pub(crate) fn fake_broker(
    stream: UnixStream,
    handler: impl FnMut(&ClientFrame) -> Vec<ServerFrame> + Send + 'static,
) -> FakeBroker {
    fake_broker_limited(stream, MAX, handler)
}

/// A fake broker that announces `max_frame_len` as its frame limit.
pub(crate) fn fake_broker_limited(
    stream: UnixStream,
    max_frame_len: u32,
    mut handler: impl FnMut(&ClientFrame) -> Vec<ServerFrame> + Send + 'static,
) -> FakeBroker {
    let handle = stream.try_clone().expect("clone stream");
    let thread = std::thread::spawn(move || {
        let mut stream = stream;
        let mut log = Log::default();
        let mut incoming = BytesMut::new();
        let Some(hello) = read_hello(&mut stream, &mut incoming) else {
            return log;
        };
        assert_eq!(hello.protocol_version, PROTOCOL_VERSION);
        let welcome = ServerFrame::Welcome(Welcome {
            protocol_version: PROTOCOL_VERSION,
            broker_version: "fake".into(),
            connection_id: 1,
            max_frame_len,
        });
        if !write_frames(&mut stream, &[welcome]) {
            return log;
        }
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let mut batch = Vec::new();
            while let Some(frame) = decode_frame::<ClientFrame>(&mut incoming, MAX).expect("valid")
            {
                batch.push(frame);
            }
            log.largest_batch = log.largest_batch.max(batch.len());
            let mut replies = Vec::new();
            for frame in &batch {
                replies.extend(handler(frame));
            }
            log.frames.extend(batch);
            let goodbye = replies
                .iter()
                .any(|reply| matches!(reply, ServerFrame::Goodbye(_)));
            if !replies.is_empty() && !write_frames(&mut stream, &replies) {
                return log;
            }
            if goodbye {
                let _ = stream.shutdown(std::net::Shutdown::Both);
                return log;
            }
            match stream.read(&mut buf) {
                Ok(0) | Err(_) => return log,
                Ok(read) => incoming.extend_from_slice(&buf[..read]),
            }
        }
    });
    FakeBroker {
        thread,
        stream: handle,
    }
}

/// Answers the hello with a goodbye carrying `error`, then hangs up.
pub(crate) fn refusing_broker(stream: UnixStream, error: BrokerError) -> FakeBroker {
    let handle = stream.try_clone().expect("clone stream");
    let thread = std::thread::spawn(move || {
        let mut stream = stream;
        let mut incoming = BytesMut::new();
        if read_hello(&mut stream, &mut incoming).is_some() {
            write_frames(&mut stream, &[ServerFrame::Goodbye(error)]);
        }
        let _ = stream.shutdown(std::net::Shutdown::Both);
        Log::default()
    });
    FakeBroker {
        thread,
        stream: handle,
    }
}
