//! File descriptors from the broker: reading the socket with `recvmsg` so
//! that descriptors sent as `SCM_RIGHTS` ancillary data are kept, and
//! giving each decoded frame the descriptors it carries.
//!
//! The rule (see "Descriptors" in `PROTOCOL.md`): the broker sends a
//! frame's descriptors no later than the frame's first byte, and in the
//! order of the frames; a frame says how many it carries
//! ([`ServerFrame::descriptor_count`]). So the client keeps the
//! descriptors that arrived in a queue, in order, and each frame, as it is
//! decoded (in order), takes that many from the front. Received
//! descriptors are [`OwnedFd`]s from the start: whatever becomes of the
//! frame (an answer nobody waits for, a closed connection), they are
//! closed when dropped.
//!
//! Used by both drivers: the blocking client's socket reads and the async
//! client's reader task.

use std::collections::VecDeque;
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};

use bytes::BytesMut;
use mailbox_proto::memfile::map_sealed;
use mailbox_proto::{BrokerError, ErrorKind, Message, PayloadFile, Response, ServerFrame};
use rustix::net::{SendAncillaryBuffer, SendAncillaryMessage, SendFlags};

use crate::error::Error;

/// The descriptors one frame carried, in order (empty for almost every
/// frame: no allocation then).
pub(crate) type Descriptors = Vec<OwnedFd>;

/// Reads once from `socket` into the spare capacity of `incoming`, and
/// appends the descriptors that came along to `received`. `Ok(0)` is the
/// end of the stream.
pub(crate) fn receive(
    socket: &impl AsRawFd,
    incoming: &mut BytesMut,
    received: &mut VecDeque<OwnedFd>,
) -> io::Result<usize> {
    let read = loop {
        match mailbox_proto::descriptors::receive(socket, incoming, 0, |file| {
            received.push_back(file)
        }) {
            Ok(read) => break read,
            Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
            Err(error) => return Err(error),
        }
    };
    if read.truncated {
        return Err(io::Error::other(
            "the broker sent more descriptors at once than this client takes; some were lost",
        ));
    }
    Ok(read.bytes)
}

/// The descriptors `frame` carries, from the front of `received`; a frame
/// that announces more than arrived is a protocol error.
pub(crate) fn take_for(
    frame: &ServerFrame,
    received: &mut VecDeque<OwnedFd>,
) -> Result<Descriptors, Error> {
    let count = frame.descriptor_count();
    if count == 0 {
        return Ok(Vec::new());
    }
    if received.len() < count {
        return Err(Error::Protocol(format!(
            "the broker's frame carries {count} descriptors but {} arrived",
            received.len()
        )));
    }
    Ok(received.drain(..count).collect())
}

/// Turns an answer that carries memory files back into the plain answer
/// it stands for, each file's payload a read-only mapping of it, so that
/// callers of `payload` see no difference: a [`Response::ReceivedFile`]
/// becomes the [`Response::Received`], a [`Response::WithFiles`] the
/// response it wraps. The one place both clients do it. A file that does
/// not map (or is not sealed as the broker promised), or a list of files
/// that does not match the answer, fails that answer alone.
pub(crate) fn map_files(
    result: Result<Response, BrokerError>,
    mut descriptors: Descriptors,
) -> (Result<Response, BrokerError>, Descriptors) {
    match result {
        Ok(Response::ReceivedFile { metadata, len }) => {
            let mapped = match descriptors.pop() {
                Some(file) => map_one(file, len, metadata.sequence),
                None => Err(violation(
                    "the broker's memory-file message came without its file",
                )),
            };
            let result = mapped.map(|payload| Response::Received(Message { metadata, payload }));
            (result, descriptors)
        }
        Ok(Response::WithFiles { response, files }) => {
            (with_files(*response, &files, descriptors), Vec::new())
        }
        result => (result, descriptors),
    }
}

/// [`map_files`] of a decoded frame (the async client maps in its reader,
/// before answers reach their callers or are kept for later receives).
pub(crate) fn map_frame(
    frame: ServerFrame,
    descriptors: Descriptors,
) -> (ServerFrame, Descriptors) {
    match frame {
        ServerFrame::Response { id, result } => {
            let (result, descriptors) = map_files(result, descriptors);
            (ServerFrame::Response { id, result }, descriptors)
        }
        frame => (frame, descriptors),
    }
}

/// The response a [`Response::WithFiles`] wraps, its file payloads mapped.
fn with_files(
    mut response: Response,
    files: &[PayloadFile],
    descriptors: Descriptors,
) -> Result<Response, BrokerError> {
    if matches!(
        response,
        Response::WithFiles { .. } | Response::ReceivedFile { .. }
    ) {
        return Err(violation("the broker nested answers that carry files"));
    }
    if descriptors.len() != files.len() {
        return Err(violation(format!(
            "the broker's answer names {} memory files but carried {} descriptors",
            files.len(),
            descriptors.len()
        )));
    }
    let messages = response.messages_mut();
    for (named, file) in files.iter().zip(descriptors) {
        let Some(message) = messages.get_mut(named.index as usize) else {
            return Err(violation(format!(
                "the broker's answer names a memory file for message {} of {}",
                named.index,
                messages.len()
            )));
        };
        message.payload = map_one(file, named.len, message.metadata.sequence)?;
    }
    Ok(response)
}

/// A read-only mapping of the broker's file for message `sequence`.
fn map_one(file: OwnedFd, len: u64, sequence: u64) -> Result<bytes::Bytes, BrokerError> {
    map_sealed(file, len, false).map_err(|why| {
        violation(format!(
            "the broker's memory file for message {sequence}: {why}"
        ))
    })
}

fn violation(message: impl Into<String>) -> BrokerError {
    BrokerError::new(ErrorKind::ProtocolViolation, message)
}

/// One `sendmsg` of `bytes` with `file` as `SCM_RIGHTS`; returns how many
/// bytes it took (at least one: the descriptor goes with the first).
pub(crate) fn send_with(
    socket: &impl AsFd,
    bytes: &[u8],
    file: BorrowedFd<'_>,
) -> io::Result<usize> {
    let mut space = [std::mem::MaybeUninit::<u8>::uninit(); rustix::cmsg_space!(ScmRights(1))];
    let mut control = SendAncillaryBuffer::new(&mut space);
    let files = [file];
    if !control.push(SendAncillaryMessage::ScmRights(&files)) {
        return Err(io::Error::other("no room for the descriptor"));
    }
    loop {
        match rustix::net::sendmsg(
            socket,
            &[io::IoSlice::new(bytes)],
            &mut control,
            SendFlags::NOSIGNAL,
        ) {
            Ok(sent) => return Ok(sent),
            Err(rustix::io::Errno::INTR) => {}
            Err(error) => return Err(error.into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::os::unix::net::UnixStream;

    use mailbox_proto::{RegionAccess, Response};

    fn opened() -> ServerFrame {
        ServerFrame::Response {
            id: 1,
            result: Ok(Response::RegionOpened {
                region: Box::default(),
                access: RegionAccess::Read,
            }),
        }
    }

    #[test]
    fn descriptors_sent_with_bytes_arrive_in_order() {
        let (broker, client) = UnixStream::pair().expect("pair");
        let files: Vec<OwnedFd> = (0..3)
            .map(|_| {
                rustix::fs::memfd_create("test", rustix::fs::MemfdFlags::CLOEXEC).expect("memfd")
            })
            .collect();
        let mut space = [std::mem::MaybeUninit::<u8>::uninit(); rustix::cmsg_space!(ScmRights(3))];
        let mut control = rustix::net::SendAncillaryBuffer::new(&mut space);
        let borrowed: Vec<_> = files.iter().map(std::os::fd::AsFd::as_fd).collect();
        assert!(control.push(rustix::net::SendAncillaryMessage::ScmRights(&borrowed)));
        rustix::net::sendmsg(
            &broker,
            &[io::IoSlice::new(b"abc")],
            &mut control,
            rustix::net::SendFlags::empty(),
        )
        .expect("sent");
        (&broker).write_all(b"def").expect("sent");

        let mut incoming = BytesMut::with_capacity(64);
        let mut received = VecDeque::new();
        let mut total = 0;
        while total < 6 {
            total += receive(&client, &mut incoming, &mut received).expect("read");
        }
        assert_eq!(&incoming[..], b"abcdef");
        assert_eq!(received.len(), 3);
        // The same files, in order.
        for (sent, got) in files.iter().zip(&received) {
            let sent = rustix::fs::fstat(sent).expect("stat");
            let got = rustix::fs::fstat(got).expect("stat");
            assert_eq!((sent.st_dev, sent.st_ino), (got.st_dev, got.st_ino));
        }

        // A frame takes as many as it announces, from the front.
        let first_inode = rustix::fs::fstat(&received[0]).expect("stat").st_ino;
        let taken = take_for(&opened(), &mut received).expect("there");
        assert_eq!(taken.len(), 1);
        assert_eq!(
            rustix::fs::fstat(&taken[0]).expect("stat").st_ino,
            first_inode
        );
        assert_eq!(received.len(), 2);
        let plain = ServerFrame::Response {
            id: 2,
            result: Ok(Response::Deleted),
        };
        assert!(take_for(&plain, &mut received).expect("none").is_empty());
        received.clear();
        assert!(matches!(
            take_for(&opened(), &mut received),
            Err(Error::Protocol(_))
        ));
    }
}
