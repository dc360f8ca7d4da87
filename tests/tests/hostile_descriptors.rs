//! Hostile descriptors, end to end with a raw socket: frames that claim a
//! descriptor they did not send, 200 descriptors in one `sendmsg`, and
//! descriptors that are not a sealed memory file of the claimed length (a
//! socket, a pipe, a directory opened plainly and with `O_PATH`, a regular
//! file on disk, an unsealed memory file, one shorter and one longer than
//! claimed). Each is refused with an error naming what is wrong, only that
//! request fails, the connection and other clients go on, and the
//! broker's descriptor count is back to its idle value after each case.
//! Also: a receiver that takes files and never reads does not make the
//! broker hold their descriptors (see "Descriptors in flight" in the
//! README).

use std::os::fd::{AsFd, BorrowedFd, FromRawFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::time::Duration;

use bytes::Bytes;
use mailbox_client::{MailboxSettings, SealedFile};
use mailbox_proto::{ErrorKind, Request, Response, Target, Wait};
use mailbox_tests::raw_client::{memfd, RawClient};
use mailbox_tests::{client_at, wait_until, Broker};

fn sealed(bytes: &[u8]) -> OwnedFd {
    memfd(bytes, mailbox_proto::memfile::required_seals())
}

fn send_file(len: u64) -> Request {
    Request::SendFile {
        to: Target::Mailbox("q".into()),
        len,
        options: Box::default(),
        wait: Wait::Never,
        payload: Bytes::new(),
    }
}

/// The broker's descriptor count once it stopped moving.
fn settled(broker: &Broker) -> usize {
    let mut last = broker.descriptors();
    wait_until("the broker's descriptors settle", || {
        std::thread::sleep(Duration::from_millis(100));
        let now = broker.descriptors();
        std::mem::replace(&mut last, now) == now
    });
    last
}

/// Waits for the broker's descriptors to be `idle` again.
fn back_to(broker: &Broker, idle: usize, case: &str) {
    wait_until(
        &format!("the broker's descriptors back to {idle} after {case}"),
        || broker.descriptors() == idle,
    );
}

/// Both ends of a new pipe.
fn pipe() -> (OwnedFd, OwnedFd) {
    let mut ends = [0; 2];
    // SAFETY: `ends` has room for the two descriptors pipe2 writes.
    assert_eq!(
        unsafe { libc::pipe2(ends.as_mut_ptr(), libc::O_CLOEXEC) },
        0
    );
    // SAFETY: both are new descriptors of this process, owned by nobody else.
    unsafe { (OwnedFd::from_raw_fd(ends[0]), OwnedFd::from_raw_fd(ends[1])) }
}

#[test]
fn each_hostile_descriptor_fails_its_request_alone_and_leaves_nothing_behind() {
    let broker = Broker::start();
    let mut witness = client_at(broker.socket());
    witness
        .create("q", MailboxSettings::default())
        .expect("create");
    let mut raw = RawClient::connect(broker.socket());
    raw.send(1, Request::Status);
    assert!(matches!(raw.answer().0, Ok(Response::Status(_))));
    let idle = settled(&broker);

    let dir = tempfile::tempdir().expect("temp dir");
    let on_disk = std::fs::File::open(std::env::current_exe().expect("this test's path"))
        .expect("open a file on disk");
    let directory = std::fs::File::open(dir.path()).expect("open a directory");
    let path_only = rustix::fs::open(
        dir.path(),
        rustix::fs::OFlags::PATH | rustix::fs::OFlags::CLOEXEC,
        rustix::fs::Mode::empty(),
    )
    .expect("O_PATH");
    let (socket, _other_end) = UnixStream::pair().expect("pair");
    let (pipe_read, _pipe_write) = pipe();
    let unsealed = memfd(b"abc", rustix::fs::SealFlags::GROW);
    let three = sealed(b"abc");

    // (what, the descriptor, the length the frame claims, what the error
    // must say)
    let cases: Vec<(&str, BorrowedFd<'_>, u64, &[&str])> = vec![
        (
            "a socket",
            socket.as_fd(),
            0,
            &["not a sealable memory file", "not a regular file"],
        ),
        (
            "a pipe",
            pipe_read.as_fd(),
            0,
            &["not a sealable memory file", "not a regular file"],
        ),
        ("a directory", directory.as_fd(), 0, &["not a regular file"]),
        (
            "a directory opened O_PATH",
            path_only.as_fd(),
            0,
            &["not a regular file"],
        ),
        (
            "a regular file on disk",
            on_disk.as_fd(),
            0,
            &["not a sealable memory file", "not sealed"],
        ),
        (
            "an unsealed memory file",
            unsealed.as_fd(),
            3,
            &["not sealed"],
        ),
        (
            "a memory file shorter than claimed",
            three.as_fd(),
            4096,
            &["has 3 bytes, but the request claims 4096"],
        ),
        (
            "a memory file longer than claimed",
            three.as_fd(),
            2,
            &["has 3 bytes, but the request claims 2"],
        ),
    ];
    let on_disk_len = on_disk.metadata().expect("stat").len();
    for (index, (what, descriptor, claimed, says)) in cases.into_iter().enumerate() {
        let id = 10 + index as u64;
        // A file on disk claims its real length, so that only its kind
        // can be what is wrong.
        let claimed = if what == "a regular file on disk" {
            on_disk_len
        } else {
            claimed
        };
        raw.send_with(id, send_file(claimed), &[descriptor]);
        let (answer, _) = raw.answer();
        let error = answer.expect_err(what);
        assert_eq!(error.kind, ErrorKind::InvalidRequest, "{what}: {error:?}");
        assert!(
            says.iter().any(|said| error.message.contains(said)),
            "{what}: {error:?} says none of {says:?}"
        );
        // The same connection goes on, and so do the others.
        raw.send(id + 100, Request::Status);
        assert!(matches!(raw.answer().0, Ok(Response::Status(_))), "{what}");
        witness.send("q", what).expect("the witness sends");
        assert_eq!(
            &witness.receive("q").expect("the witness receives").payload[..],
            what.as_bytes()
        );
        back_to(&broker, idle, what);
    }

    // A frame that claims a descriptor and comes with none.
    raw.send(50, send_file(3));
    let error = raw.answer().0.expect_err("no descriptor");
    assert_eq!(error.kind, ErrorKind::InvalidRequest);
    assert!(error.message.contains("none came with it"), "{error:?}");
    back_to(&broker, idle, "a claim without a descriptor");

    // 200 descriptors in one sendmsg, with a frame that carries one: the
    // broker queues at most 16 not yet claimed and closes the rest as they
    // arrive; the request fails and says so.
    let many: Vec<BorrowedFd<'_>> = (0..200).map(|_| three.as_fd()).collect();
    raw.send_with(51, send_file(3), &many);
    let error = raw.answer().0.expect_err("200 descriptors");
    assert_eq!(error.kind, ErrorKind::InvalidRequest);
    assert!(error.message.contains("carries 1 descriptor"), "{error:?}");
    assert!(
        error.message.contains("16 or more came with it"),
        "{error:?}"
    );
    back_to(&broker, idle, "200 descriptors with a send");
    // And with a frame that carries none: answered as usual.
    raw.send_with(52, Request::Status, &many);
    assert!(matches!(raw.answer().0, Ok(Response::Status(_))));
    back_to(&broker, idle, "200 descriptors with a status");

    // A good file still goes through on the same connection.
    raw.send_with(53, send_file(3), &[three.as_fd()]);
    assert!(matches!(raw.answer().0, Ok(Response::Sent { .. })));
    assert_eq!(&witness.receive("q").expect("the file").payload[..], b"abc");
    back_to(&broker, idle, "a good file, received");
    assert_eq!(broker.info("q")["queued_messages"], 0);
}

/// A receiver that takes files, posts many receives and never reads: the
/// broker writes the files to its socket (the kernel holds them in flight,
/// not the broker), and what waits in its outbox counts against the buffer
/// limits (each descriptor as 64 KiB), so the broker's own descriptors stay
/// bounded; when the receiver goes, every one is released.
#[test]
fn a_receiver_that_never_reads_its_files_does_not_make_the_broker_hold_them() {
    const FILES: u64 = 1500;
    let broker = Broker::start();
    let mut witness = client_at(broker.socket());
    witness
        .create("q", MailboxSettings::default())
        .expect("create");
    let idle = broker.settled_descriptors(&mut witness);

    let mut receiver = RawClient::connect(broker.socket());
    receiver.send(1, Request::AcceptFiles);
    assert!(matches!(receiver.answer().0, Ok(Response::FilesAccepted)));
    let mut receives = bytes::BytesMut::new();
    for id in 0..FILES {
        receives.extend_from_slice(&RawClient::encode(
            100 + id,
            Request::Receive {
                mailbox: "q".into(),
                wait: Wait::Forever,
            },
        ));
    }
    std::io::Write::write_all(&mut receiver.stream, &receives).expect("post receives");
    broker.wait_for_info("q", "waiting_receivers", FILES);

    // One connection for the receiver, and what it was handed.
    let mut most = 0;
    let mut sender = client_at(broker.socket());
    for index in 0..FILES {
        let file = SealedFile::from_bytes(&[index as u8; 512]).expect("sealed");
        sender.send_file("q", &file).expect("sent");
        if index % 50 == 0 {
            most = most.max(broker.descriptors());
        }
    }
    most = most.max(broker.descriptors());
    // What the broker still holds of them: the files queued in the mailbox
    // (when the receiver was cut for not reading, the sends after it
    // queued), counted in `held_files`.
    let queued = broker.info("q")["queued_messages"].as_u64().expect("count") as usize;
    let status = witness.status().expect("status");
    let held = status
        .limits
        .iter()
        .find(|limit| limit.name == "held_files")
        .expect("held_files in status");
    assert_eq!(
        held.value as usize, queued,
        "held files are the queued ones"
    );
    // The broker's own: the two new connections, the queued files, and at
    // most what an outbox may hold before its connection is cut (its byte
    // limit over 64 KiB a descriptor: well under the 1,500 files).
    let bound = idle + 2 + queued + (64 << 20) / (64 << 10);
    assert!(
        most <= bound,
        "the broker held {most} descriptors (idle {idle}, {queued} queued)"
    );
    drop(sender);
    drop(receiver);
    witness.delete("q").expect("delete");
    assert_eq!(broker.settled_descriptors(&mut witness), idle);
    // The witness is still served.
    assert_eq!(witness.status().expect("status").connections, 1);
}
