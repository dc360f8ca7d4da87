//! Descriptors carried by answers: an awaited open gets its own, and those
//! of an answer nobody awaits any more are closed, not leaked. The fake
//! broker here sends a socket as the "region" so that the test can see,
//! from the socket's other end, when every copy of it is closed.

use std::io::{IoSlice, Read, Write};
use std::mem::MaybeUninit;
use std::os::fd::AsFd;

use mailbox_proto::{decode_frame, encode_frame, Hello, RegionAccess, RegionInfo};

use super::*;

/// Encodes `frame`.
fn encoded(frame: &ServerFrame) -> Vec<u8> {
    let mut out = BytesMut::new();
    encode_frame(frame, &mut out, u32::MAX).expect("encodes");
    out.to_vec()
}

/// Reads `stream` until `decode` finds a whole frame in `buffer`.
fn next_frame<T>(
    stream: &mut std::os::unix::net::UnixStream,
    buffer: &mut BytesMut,
    decode: impl Fn(&mut BytesMut) -> Option<T>,
) -> T {
    loop {
        if let Some(frame) = decode(buffer) {
            return frame;
        }
        let mut chunk = [0u8; 4096];
        let read = stream.read(&mut chunk).expect("read");
        assert!(read > 0, "the client hung up");
        buffer.extend_from_slice(&chunk[..read]);
    }
}

fn opened(id: RequestId) -> ServerFrame {
    answer(
        id,
        Ok(Response::RegionOpened {
            region: Box::new(RegionInfo {
                name: "r".into(),
                size: 1,
                ..RegionInfo::default()
            }),
            access: RegionAccess::Read,
        }),
    )
}

/// Sends `frame` with `descriptor` attached.
fn send_with(
    stream: &std::os::unix::net::UnixStream,
    frame: &ServerFrame,
    descriptor: std::os::fd::BorrowedFd<'_>,
) {
    let bytes = encoded(frame);
    let mut space = [MaybeUninit::<u8>::uninit(); rustix::cmsg_space!(ScmRights(1))];
    let mut control = rustix::net::SendAncillaryBuffer::new(&mut space);
    let descriptors = [descriptor];
    assert!(control.push(rustix::net::SendAncillaryMessage::ScmRights(&descriptors)));
    let sent = rustix::net::sendmsg(
        stream,
        &[IoSlice::new(&bytes)],
        &mut control,
        rustix::net::SendFlags::empty(),
    )
    .expect("sendmsg");
    assert_eq!(sent, bytes.len());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_awaited_open_gets_its_descriptor_and_a_dropped_one_closes_it() {
    let (ours, mut theirs) = std::os::unix::net::UnixStream::pair().expect("socket pair");
    let (dropped_tx, dropped_rx) = std::sync::mpsc::channel::<()>();
    // What the "regions" are: one end of each pair goes to the client.
    let (kept_near, kept_far) = std::os::unix::net::UnixStream::pair().expect("pair");
    let (lost_near, lost_far) = std::os::unix::net::UnixStream::pair().expect("pair");
    let broker = std::thread::spawn(move || {
        let mut buffer = BytesMut::new();
        let hello = |buffer: &mut BytesMut| -> Option<Hello> {
            decode_frame(buffer, u32::MAX).expect("a hello")
        };
        let request = |buffer: &mut BytesMut| -> Option<ClientFrame> {
            decode_frame(buffer, u32::MAX).expect("a request")
        };
        next_frame(&mut theirs, &mut buffer, hello);
        theirs
            .write_all(&encoded(&ServerFrame::Welcome(
                crate::test_support::welcome(mailbox_proto::PROTOCOL_VERSION),
            )))
            .expect("welcome");
        // The first open is answered at once, with its descriptor.
        let first: ClientFrame = next_frame(&mut theirs, &mut buffer, request);
        send_with(&theirs, &opened(first.id), kept_far.as_fd());
        drop(kept_far);
        // The second is answered after its caller gave up.
        let second: ClientFrame = next_frame(&mut theirs, &mut buffer, request);
        dropped_rx.recv().expect("the caller gave up");
        send_with(&theirs, &opened(second.id), lost_far.as_fd());
        drop(lost_far);
        // A third request, answered after the second: once the client has
        // its answer, it has handled the second one.
        let third: ClientFrame = next_frame(&mut theirs, &mut buffer, request);
        theirs
            .write_all(&encoded(&answer(third.id, Ok(Response::Deleted))))
            .expect("answer");
        // Until the client hangs up.
        let mut rest = Vec::new();
        let _ = theirs.read_to_end(&mut rest);
    });
    ours.set_nonblocking(true).expect("nonblocking");
    let client = Client::from_stream(UnixStream::from_std(ours).expect("tokio stream"))
        .await
        .expect("handshake");
    within(async {
        let region = client
            .open_region("r", RegionAccess::Read)
            .await
            .expect("opened");
        // The descriptor is the one the broker sent: what goes in here
        // comes out at its other end.
        let mut received = std::os::unix::net::UnixStream::from(region.into_fd());
        received.write_all(b"ping").expect("write");
        let mut ping = [0u8; 4];
        (&kept_near).read_exact(&mut ping).expect("read");
        assert_eq!(&ping, b"ping");

        let gave_up = tokio::time::timeout(
            Duration::from_millis(50),
            client.open_region("r", RegionAccess::Read),
        )
        .await;
        assert!(gave_up.is_err(), "the broker holds the answer back");
        dropped_tx.send(()).expect("tell the broker");
        client.delete_region("r").await.expect("answered");
        // Every copy of the second descriptor is closed: its other end
        // reads the end of the stream.
        lost_near
            .set_read_timeout(Some(Duration::from_secs(10)))
            .expect("timeout");
        let mut nothing = [0u8; 1];
        assert_eq!((&lost_near).read(&mut nothing).expect("end of stream"), 0);
    })
    .await;
    drop(client);
    broker.join().expect("fake broker");
}
