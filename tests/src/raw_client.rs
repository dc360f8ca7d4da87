//! A client that speaks the protocol by hand, for the tests of what a
//! client may send with its frames: no `AcceptFiles` unless it sends one,
//! any descriptors it likes with any frame (up to the kernel's 253 in one
//! `sendmsg`), and answers read with a plain `read` (descriptors the
//! broker sends back are dropped by the kernel: only their count, from the
//! frame, matters to these tests).

use std::collections::VecDeque;
use std::io::{IoSlice, Read, Write};
use std::mem::MaybeUninit;
use std::os::fd::BorrowedFd;
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::Duration;

use bytes::BytesMut;
use mailbox_proto::{BrokerError, ClientFrame, Hello, Request, Response, ServerFrame};

/// A connection past its hello, speaking frames by hand.
pub struct RawClient {
    /// The socket, for tests that write or shut it down themselves.
    pub stream: UnixStream,
    incoming: BytesMut,
    frames: VecDeque<ServerFrame>,
}

impl RawClient {
    /// Connects to the broker at `socket` and takes its welcome.
    pub fn connect(socket: &Path) -> Self {
        let mut stream = UnixStream::connect(socket).expect("connect");
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .expect("timeout");
        let mut hello = BytesMut::new();
        mailbox_proto::encode_frame(&Hello::new("raw"), &mut hello, u32::MAX).expect("hello");
        stream.write_all(&hello).expect("hello");
        let mut client = Self {
            stream,
            incoming: BytesMut::new(),
            frames: VecDeque::new(),
        };
        assert!(matches!(client.frame(), ServerFrame::Welcome(_)));
        client
    }

    /// The bytes of request `id`.
    pub fn encode(id: u64, request: Request) -> BytesMut {
        let mut out = BytesMut::new();
        mailbox_proto::encode_frame(&ClientFrame { id, request }, &mut out, u32::MAX)
            .expect("encodes");
        out
    }

    /// Sends request `id` with no descriptor.
    pub fn send(&mut self, id: u64, request: Request) {
        self.stream
            .write_all(&Self::encode(id, request))
            .expect("write");
    }

    /// Sends request `id` with `files` as `SCM_RIGHTS` of its first bytes.
    pub fn send_with(&mut self, id: u64, request: Request, files: &[BorrowedFd<'_>]) {
        let bytes = Self::encode(id, request);
        self.send_bytes_with(&bytes, files);
    }

    /// Sends `bytes`, `files` as `SCM_RIGHTS` of the first of them.
    pub fn send_bytes_with(&mut self, bytes: &[u8], files: &[BorrowedFd<'_>]) {
        let mut space = vec![MaybeUninit::<u8>::uninit(); rustix::cmsg_space!(ScmRights(253))];
        let mut control = rustix::net::SendAncillaryBuffer::new(&mut space);
        assert!(control.push(rustix::net::SendAncillaryMessage::ScmRights(files)));
        let sent = rustix::net::sendmsg(
            &self.stream,
            &[IoSlice::new(bytes)],
            &mut control,
            rustix::net::SendFlags::empty(),
        )
        .expect("sendmsg");
        self.stream.write_all(&bytes[sent..]).expect("write");
    }

    /// The next frame from the broker.
    pub fn frame(&mut self) -> ServerFrame {
        loop {
            if let Some(frame) = self.frames.pop_front() {
                return frame;
            }
            let mut chunk = vec![0u8; 1 << 20];
            let read = self.stream.read(&mut chunk).expect("read");
            assert!(read > 0, "the broker closed the connection");
            self.incoming.extend_from_slice(&chunk[..read]);
            while let Some(frame) =
                mailbox_proto::decode_server_frame(&mut self.incoming, u32::MAX).expect("frame")
            {
                self.frames.push_back(frame);
            }
        }
    }

    /// The next response, and how many descriptors its frame says it
    /// carries (a plain `read` loses them: only the count matters here).
    pub fn answer(&mut self) -> (Result<Response, BrokerError>, usize) {
        let frame = self.frame();
        let count = frame.descriptor_count();
        match frame {
            ServerFrame::Response { result, .. } => (result, count),
            other => panic!("expected a response, got {other:?}"),
        }
    }
}

/// A memory file holding `bytes`, with `seals` (possibly none): the
/// payload file of the descriptor tests, well formed or not.
pub fn memfd(bytes: &[u8], seals: rustix::fs::SealFlags) -> std::os::fd::OwnedFd {
    let file = rustix::fs::memfd_create(
        "test",
        rustix::fs::MemfdFlags::CLOEXEC | rustix::fs::MemfdFlags::ALLOW_SEALING,
    )
    .expect("memfd");
    rustix::io::write(&file, bytes).expect("write");
    if !seals.is_empty() {
        rustix::fs::fcntl_add_seals(&file, seals).expect("seal");
    }
    file
}
