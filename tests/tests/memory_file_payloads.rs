//! Memory-file payloads, end to end: a real `mailboxd`, sealed memory
//! files sent by `mailbox-peer` processes and by this test with the
//! client library, received as read-only mappings behind the usual
//! `Message::payload`; refusals of unsealed, short and foreign
//! descriptors and of frames that lie about their descriptors (only that
//! request fails); files in batches and peeks beside inline messages, and
//! the form `mailboxctl --json` reports; the async client's files; the
//! inline fallback for a client that did not announce files, and its
//! typed refusal of a file too long for its frames (the message stays for
//! a client that takes files); a 100 MiB file; a stranger without the
//! send or receive right; and no descriptor left in the broker afterwards.

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::net::UnixStream;

use bytes::Bytes;
use mailbox_client::{Capacity, ConnectOptions, ErrorKind, MailboxSettings, SealedFile};
use mailbox_proto::{Request, Response, Target, Wait};
use mailbox_tests::configured_broker::{ConfiguredBroker, OPEN_SOCKET};
use mailbox_tests::other_users::{as_uid, root, OTHER};
use mailbox_tests::raw_client::{memfd, RawClient};
use mailbox_tests::{binary, client_at, exit_code, rss_bytes, Broker};

/// Byte `index` of the files `mailbox-peer send-file` sends.
fn file_pattern(index: usize) -> u8 {
    (index % 251) as u8
}

/// Whether `bytes` are [`file_pattern`] from the start: compared a
/// period block at a time (memcmp), so 100 MiB check in milliseconds.
fn has_the_pattern(bytes: &[u8]) -> bool {
    let block: Vec<u8> = (0..251 * 4096).map(file_pattern).collect();
    bytes
        .chunks(block.len())
        .all(|chunk| chunk == &block[..chunk.len()])
}

fn all_seals() -> rustix::fs::SealFlags {
    mailbox_proto::memfile::required_seals()
}

fn bounded(capacity: u32) -> MailboxSettings {
    MailboxSettings {
        capacity: Capacity::Bounded(capacity),
        ..MailboxSettings::default()
    }
}

#[test]
fn a_100_mib_file_goes_through_a_bounded_mailbox_unchanged_and_leaves_no_descriptor() {
    // Six times the largest inline message: files have their own limit
    // (limits.max_file_size, 1 GiB), and 100 MiB fits the default budget.
    const LEN: usize = 100 << 20;
    let broker = Broker::start();
    let mut watcher = client_at(broker.socket());
    let idle = broker.settled_descriptors(&mut watcher);
    watcher.create("big", bounded(1)).expect("create");
    // The mailbox is full: the file's send waits for room.
    watcher.send("big", "first").expect("send");
    let before = rss_bytes(broker.pid());
    let sender = broker.peer("send-file", "big", LEN as u64);
    broker.wait_for_info("big", "waiting_senders", 1);

    let mut receiver = client_at(broker.socket());
    assert_eq!(
        &receiver.receive("big").expect("first").payload[..],
        b"first"
    );
    let message = receiver.receive("big").expect("the file");
    assert_eq!(message.payload.len(), LEN);
    // The broker held and passed on 100 MiB without reading them: its
    // resident memory did not take them in.
    let grown = rss_bytes(broker.pid()).saturating_sub(before);
    assert!(grown < 8 << 20, "the broker grew by {grown} bytes");
    // It came as the sender's file, mapped here, not through the socket.
    let maps = std::fs::read_to_string("/proc/self/maps").expect("maps");
    assert!(
        maps.contains("memfd:mailbox-payload"),
        "no mapping of the file"
    );
    assert!(
        has_the_pattern(&message.payload),
        "the payload is not what was sent"
    );
    assert!(mailbox_client::is_memory_file(&message.payload));
    let output = sender.finish();
    let said = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{said}");
    assert!(said.contains("sent 2"), "{said}");
    // The sender cannot change what it sent: the kernel refuses.
    assert!(said.contains("write: refused"), "{said}");
    assert!(said.contains("mapping: refused"), "{said}");
    assert!(!said.contains("allowed"), "{said}");
    // The receiver's mapping still reads the same bytes.
    assert_eq!(message.payload[LEN - 1], file_pattern(LEN - 1));

    drop(message);
    drop(receiver);
    assert_eq!(broker.settled_descriptors(&mut watcher), idle);
    let info = broker.info("big");
    assert_eq!(info["queued_bytes"], 0, "{info}");
}

#[test]
fn a_file_reaches_mailboxctl_and_a_client_that_did_not_announce_files_as_bytes() {
    let broker = Broker::start();
    let mut sender = client_at(broker.socket());
    sender
        .create("q", MailboxSettings::default())
        .expect("create");
    let payload: Vec<u8> = (0..200_000).map(file_pattern).collect();
    let file = SealedFile::from_bytes(&payload).expect("sealed");
    sender.send_file("q", &file).expect("sent");
    sender.send_file("q", &file).expect("sent again");

    // A client that says nothing of files: the bytes come inline, in a
    // `Received`, as to any client built before files.
    let mut raw = RawClient::connect(broker.socket());
    raw.send(
        1,
        Request::Receive {
            mailbox: "q".into(),
            wait: Wait::Forever,
        },
    );
    let (answer, carried) = raw.answer();
    assert_eq!(carried, 0, "no descriptor for a client that did not ask");
    match answer {
        Ok(Response::Received(message)) => assert_eq!(&message.payload[..], &payload[..]),
        other => panic!("expected the bytes inline, got {other:?}"),
    }

    // The library without `accept_files` reads the same bytes.
    let options = ConnectOptions::new().accept_files(false);
    let mut plain =
        mailbox_client::blocking::Client::connect_with(broker.socket(), &options).expect("connect");
    assert_eq!(
        &plain.receive("q").expect("inline").payload[..],
        &payload[..]
    );

    // A file longer than such a receiver's frames: files have their own
    // limit, so the send is accepted; the receive of a client that takes
    // bytes inline is refused before anything is taken, saying why, and a
    // client that takes files then gets that same message.
    let huge_bytes: Vec<u8> = (0..17 << 20).map(file_pattern).collect();
    let huge = SealedFile::from_bytes(&huge_bytes).expect("sealed");
    let receipt = sender
        .send_file("q", &huge)
        .expect("a file has its own limit");
    drop(huge);
    let error = plain.receive("q").expect_err("too long to come inline");
    assert_eq!(error.kind(), Some(ErrorKind::MessageTooLarge), "{error}");
    let said = error.to_string();
    assert!(
        said.contains(&format!("message {}", receipt.sequence))
            && said.contains("does not accept files"),
        "{said}"
    );
    raw.send(
        2,
        Request::Receive {
            mailbox: "q".into(),
            wait: Wait::Never,
        },
    );
    match raw.answer() {
        (Err(error), 0) => assert_eq!(error.kind, ErrorKind::MessageTooLarge, "{error:?}"),
        other => panic!("expected MessageTooLarge, got {other:?}"),
    }
    assert_eq!(broker.info("q")["queued_messages"], 1, "the message stays");
    plain.status().expect("the connection goes on");
    let message = sender
        .receive("q")
        .expect("the file, to a client that takes files");
    assert_eq!(message.metadata.sequence, receipt.sequence);
    assert!(message.payload == huge_bytes[..], "other bytes arrived");
    assert!(
        mailbox_proto::memfile::is_file(&message.payload),
        "as a file"
    );
    drop(message);

    // mailboxctl writes the bytes, whichever form they came in.
    sender.send_file("q", &file).expect("sent");
    let output = broker.run(&["recv", "q"]);
    assert!(output.status.success());
    assert_eq!(&output.stdout[..], &payload[..]);
}

#[test]
fn a_broadcast_passes_the_same_file_to_every_subscriber() {
    let broker = Broker::start();
    let mut watcher = client_at(broker.socket());
    let idle = broker.settled_descriptors(&mut watcher);
    let settings = MailboxSettings {
        policy: mailbox_client::DeliveryPolicy::Broadcast,
        ..MailboxSettings::default()
    };
    watcher.create("news", settings).expect("create");
    let mut subscribers: Vec<_> = (0..3)
        .map(|_| {
            let mut client = client_at(broker.socket());
            client.subscribe("news").expect("subscribe");
            client
        })
        .collect();
    let payload: Vec<u8> = (0..1 << 20).map(file_pattern).collect();
    let file = SealedFile::from_bytes(&payload).expect("sealed");
    let receipt = watcher.send_file("news", &file).expect("sent");
    assert_eq!(receipt.recipients, 3);
    drop(file);
    for subscriber in &mut subscribers {
        let message = subscriber.receive("news").expect("the file");
        assert_eq!(&message.payload[..], &payload[..]);
    }
    drop(subscribers);
    assert_eq!(broker.settled_descriptors(&mut watcher), idle);
}

#[test]
fn with_a_file_threshold_large_sends_go_as_files() {
    let broker = Broker::start();
    let mut client = client_at(broker.socket());
    let settings = MailboxSettings {
        max_message_size: 16 * 1024,
        ..MailboxSettings::default()
    };
    client.create("q", settings).expect("create");
    let large: Vec<u8> = (0..200 * 1024).map(file_pattern).collect();
    // Inline, the mailbox's max_message_size holds.
    let error = client.send("q", large.clone()).expect_err("too large");
    assert_eq!(error.kind(), Some(ErrorKind::MessageTooLarge), "{error}");
    // As a file, the file limit does; smaller payloads stay inline.
    client.set_file_threshold(Some(mailbox_client::DEFAULT_FILE_THRESHOLD));
    client.send("q", large.clone()).expect("sent as a file");
    let error = client
        .send("q", vec![0; 32 * 1024])
        .expect_err("inline, too large");
    assert_eq!(error.kind(), Some(ErrorKind::MessageTooLarge), "{error}");
    assert_eq!(
        &client.receive("q").expect("the file").payload[..],
        &large[..]
    );
}

#[test]
fn a_file_counts_against_the_memory_budget() {
    let broker = Broker::start_with(&["--memory-budget", "1M"]);
    let mut client = client_at(broker.socket());
    client
        .create("q", MailboxSettings::default())
        .expect("create");
    let file = SealedFile::from_bytes(&vec![1; 2 << 20]).expect("sealed");
    let error = client.send_file("q", &file).expect_err("past the budget");
    assert_eq!(error.kind(), Some(ErrorKind::BrokerFull), "{error}");
    let file = SealedFile::from_bytes(&vec![1; 512 << 10]).expect("sealed");
    client.send_file("q", &file).expect("fits");
    assert_eq!(broker.info("q")["queued_bytes"], 512 << 10);
}

#[test]
fn unsealed_short_and_foreign_descriptors_are_refused_and_the_connection_goes_on() {
    let broker = Broker::start();
    let mut watcher = client_at(broker.socket());
    let idle = broker.settled_descriptors(&mut watcher);
    let mut client = client_at(broker.socket());
    client
        .create("q", MailboxSettings::default())
        .expect("create");

    let refused = |client: &mut mailbox_client::blocking::Client, file: SealedFile| {
        let error = client.send_file("q", &file).expect_err("refused");
        assert_eq!(error.kind(), Some(ErrorKind::InvalidRequest), "{error}");
        error.to_string()
    };
    // Not sealed against writing: the sender could change it later.
    let said = refused(
        &mut client,
        SealedFile::from_descriptor(
            memfd(
                b"abc",
                rustix::fs::SealFlags::GROW | rustix::fs::SealFlags::SHRINK,
            ),
            3,
        ),
    );
    assert!(said.contains("not sealed"), "{said}");
    // No seals at all.
    let said = refused(
        &mut client,
        SealedFile::from_descriptor(memfd(b"abc", rustix::fs::SealFlags::empty()), 3),
    );
    assert!(said.contains("not sealed"), "{said}");
    // Shorter than it claims.
    let said = refused(
        &mut client,
        SealedFile::from_descriptor(memfd(b"abc", all_seals()), 4096),
    );
    assert!(said.contains("has 3 bytes"), "{said}");
    // A socket and a pipe's end are not memory files.
    let (socket, _other) = UnixStream::pair().expect("pair");
    let said = refused(&mut client, SealedFile::from_descriptor(socket.into(), 0));
    assert!(said.contains("not a sealable memory file"), "{said}");
    let mut ends = [0; 2];
    // SAFETY: `ends` has room for the two descriptors pipe2 writes.
    assert_eq!(
        unsafe { libc::pipe2(ends.as_mut_ptr(), libc::O_CLOEXEC) },
        0
    );
    // SAFETY: both are new descriptors of this process, owned by nobody else.
    let (reading, _writing) = unsafe {
        use std::os::fd::FromRawFd;
        (OwnedFd::from_raw_fd(ends[0]), OwnedFd::from_raw_fd(ends[1]))
    };
    let said = refused(&mut client, SealedFile::from_descriptor(reading, 0));
    assert!(said.contains("not a sealable memory file"), "{said}");

    // The same connection goes on, and nothing was queued.
    client.send("q", "after").expect("send");
    assert_eq!(&client.receive("q").expect("receive").payload[..], b"after");
    drop(client);
    assert_eq!(broker.settled_descriptors(&mut watcher), idle);
}

#[test]
fn frames_that_lie_about_their_descriptors_fail_alone() {
    let broker = Broker::start();
    let mut watcher = client_at(broker.socket());
    let idle = broker.settled_descriptors(&mut watcher);
    watcher
        .create("q", MailboxSettings::default())
        .expect("create");
    let good = memfd(b"hello", all_seals());
    let send_file = |len| Request::SendFile {
        to: Target::Mailbox("q".into()),
        len,
        options: Box::default(),
        wait: Wait::Never,
        payload: Bytes::new(),
    };

    let mut raw = RawClient::connect(broker.socket());
    // Claims a descriptor it did not send.
    raw.send(1, send_file(5));
    let (answer, _) = raw.answer();
    let error = answer.expect_err("no descriptor");
    assert_eq!(error.kind, ErrorKind::InvalidRequest);
    assert!(error.message.contains("none came with it"), "{error:?}");
    // Sends three where the frame carries one.
    let extra = memfd(b"x", all_seals());
    raw.send_with(
        2,
        send_file(5),
        &[good.as_fd(), extra.as_fd(), extra.as_fd()],
    );
    let (answer, _) = raw.answer();
    let error = answer.expect_err("too many");
    assert_eq!(error.kind, ErrorKind::InvalidRequest);
    assert!(error.message.contains("3 came with it"), "{error:?}");
    // Descriptors with a frame that carries none are dropped; the
    // request is answered as usual.
    raw.send_with(3, Request::Status, &[good.as_fd(), extra.as_fd()]);
    let (answer, _) = raw.answer();
    assert!(matches!(answer, Ok(Response::Status(_))), "{answer:?}");
    // More than a connection may queue at once: all closed.
    let many: Vec<BorrowedFd<'_>> = (0..40).map(|_| extra.as_fd()).collect();
    raw.send_with(4, Request::Status, &many);
    let (answer, _) = raw.answer();
    assert!(matches!(answer, Ok(Response::Status(_))), "{answer:?}");
    // Files sent back to back, each with its own sendmsg, before any
    // answer is read: a read stops after the bytes that brought a
    // descriptor, with more waiting; both are answered.
    // The broker is stopped meanwhile, so that all of them wait in its
    // socket together.
    mailbox_tests::signal(broker.pid(), libc::SIGSTOP);
    for id in 100..103 {
        raw.send_with(id, send_file(5), &[good.as_fd()]);
    }
    mailbox_tests::signal(broker.pid(), libc::SIGCONT);
    for _ in 100..103 {
        let (answer, _) = raw.answer();
        assert!(matches!(answer, Ok(Response::Sent { .. })), "{answer:?}");
    }
    for _ in 100..103 {
        watcher.receive("q").expect("a pipelined file");
    }
    // A file send that waits (the mailbox is full), then a request of no
    // descriptor right behind it: the read that brought the file stops
    // there, and the request behind is read and answered all the same.
    watcher.create("full", bounded(1)).expect("create");
    watcher.send("full", "x").expect("fill");
    let waiting = Request::SendFile {
        to: Target::Mailbox("full".into()),
        len: 5,
        options: Box::default(),
        wait: Wait::Forever,
        payload: Bytes::new(),
    };
    mailbox_tests::signal(broker.pid(), libc::SIGSTOP);
    raw.send_with(400, waiting, &[good.as_fd()]);
    raw.send(401, Request::Status);
    mailbox_tests::signal(broker.pid(), libc::SIGCONT);
    let (answer, _) = raw.answer();
    assert!(matches!(answer, Ok(Response::Status(_))), "{answer:?}");
    watcher.receive("full").expect("the filler");
    let (answer, _) = raw.answer();
    assert!(matches!(answer, Ok(Response::Sent { .. })), "{answer:?}");
    watcher.receive("full").expect("the file");
    // And a good one still goes through on the same connection.
    raw.send_with(5, send_file(5), &[good.as_fd()]);
    let (answer, _) = raw.answer();
    assert!(matches!(answer, Ok(Response::Sent { .. })), "{answer:?}");
    assert_eq!(
        &watcher.receive("q").expect("the file").payload[..],
        b"hello"
    );
    drop(raw);
    assert_eq!(broker.settled_descriptors(&mut watcher), idle);
}

#[test]
fn a_stranger_without_the_send_right_gets_permission_denied_and_the_broker_keeps_no_descriptor() {
    if !root() {
        return;
    }
    let setup = ConfiguredBroker::start(OPEN_SOCKET, &[]);
    let broker = &setup.broker;
    let mut watcher = client_at(broker.socket());
    let idle = broker.settled_descriptors(&mut watcher);
    broker.ok(&["create", "private", "--mode", "0600"]);
    broker.ok(&["create", "open", "--mode", "0622"]);
    let run = |mailbox: &str| {
        let output = as_uid(OTHER, &binary("mailbox-peer"))
            .args(["send-file"])
            .arg(broker.socket())
            .args([mailbox, "70000"])
            .output()
            .expect("run mailbox-peer");
        String::from_utf8_lossy(&output.stdout).into_owned()
    };
    let said = run("private");
    assert!(said.contains("refused PermissionDenied"), "{said}");
    assert_eq!(broker.info("private")["queued_messages"], 0);
    // With the send right, the stranger's file goes through.
    let said = run("open");
    assert!(said.contains("sent 1"), "{said}");
    let message = watcher.receive("open").expect("the stranger's file");
    assert_eq!(message.payload.len(), 70_000);
    assert_eq!(message.metadata.sender_uid, OTHER);
    drop(message);

    // Files in batches and peeks open nothing new to a stranger: without
    // the receive right every path that carries messages is denied, no
    // descriptor leaves the broker, and the file stays queued.
    let file = SealedFile::from_bytes(&[5u8; 70_000]).expect("sealed");
    watcher.send_file("private", &file).expect("sent");
    for args in [
        &["recv", "private", "--json", "--nonblock"][..],
        &["recv", "private", "--count", "5", "--nonblock"],
        &["peek", "private", "--json"],
    ] {
        let output = setup.as_other(args);
        assert_eq!(exit_code(&output), 77, "{args:?}: {output:?}");
        assert!(output.stdout.is_empty(), "{args:?}: {output:?}");
    }
    assert_eq!(broker.info("private")["queued_messages"], 1);
    drop(watcher.receive("private").expect("the file, to its owner"));
    assert_eq!(broker.settled_descriptors(&mut watcher), idle);
}

#[test]
fn batches_and_peeks_carry_files_beside_inline_messages() {
    let broker = Broker::start();
    let mut watcher = client_at(broker.socket());
    let idle = broker.settled_descriptors(&mut watcher);
    watcher.create("q", bounded(8)).expect("create");
    let big: Vec<u8> = (0..(1 << 20) + 3).map(file_pattern).collect();
    let file = SealedFile::from_bytes(&big).expect("sealed");
    watcher.send("q", "first").expect("send");
    watcher.send_file("q", &file).expect("send the file");
    watcher.send("q", "third").expect("send");
    watcher.send_file("q", &file).expect("send the file again");
    drop(file);

    // A peek shows both forms in one page, each file as a file.
    let mut receiver = client_at(broker.socket());
    let page = receiver.peek("q", 10).expect("peek");
    let forms: Vec<bool> = page
        .messages
        .iter()
        .map(|m| mailbox_client::is_memory_file(&m.payload))
        .collect();
    assert_eq!(forms, [false, true, false, true]);
    assert!(has_the_pattern(&page.messages[1].payload));
    assert_eq!(&page.messages[2].payload[..], b"third");
    drop(page);

    // One batch receive takes them all, in order, in their forms.
    let batch = receiver.receive_many("q", 10).expect("a batch");
    let sequences: Vec<u64> = batch.iter().map(|m| m.metadata.sequence).collect();
    assert_eq!(sequences, [1, 2, 3, 4]);
    assert_eq!(&batch[0].payload[..], b"first");
    assert!(!mailbox_client::is_memory_file(&batch[0].payload));
    for file in [&batch[1], &batch[3]] {
        assert!(mailbox_client::is_memory_file(&file.payload));
        assert!(has_the_pattern(&file.payload) && file.payload.len() == big.len());
    }
    assert_eq!(&batch[2].payload[..], b"third");
    drop(batch);

    // mailboxctl says which form arrived.
    let path = tempfile::NamedTempFile::new().expect("temp file");
    std::fs::write(path.path(), &big).expect("write");
    broker.ok(&["send", "q", "--file", path.path().to_str().expect("utf-8")]);
    broker.ok(&["send", "q", "small"]);
    let said = broker.ok(&["recv", "q", "--count", "2", "--json"]);
    let forms: Vec<String> = said
        .lines()
        .map(|line| {
            let value: serde_json::Value = serde_json::from_str(line).expect("json");
            value["form"].as_str().expect("a form").to_owned()
        })
        .collect();
    assert_eq!(forms, ["file", "inline"], "{said}");

    drop(receiver);
    assert_eq!(broker.settled_descriptors(&mut watcher), idle);
}

#[test]
fn the_async_client_sends_and_receives_files() {
    let broker = Broker::start();
    let mut watcher = client_at(broker.socket());
    let idle = broker.settled_descriptors(&mut watcher);
    watcher.create("q", bounded(3)).expect("create");
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let big: Vec<u8> = (0..(2 << 20) + 5).map(file_pattern).collect();
    runtime.block_on(async {
        let client = mailbox_client::Client::connect(broker.socket())
            .await
            .expect("connect");
        let file = SealedFile::from_bytes(&big).expect("sealed");
        let first = client.send_file("q", &file).await.expect("sent");
        client.send("q", "inline").await.expect("sent");
        let second = client
            .send_file("q", &file)
            .await
            .expect("sent, after room");
        assert_eq!((first.sequence, second.sequence), (1, 3));

        let message = client.receive("q").await.expect("the file");
        assert!(mailbox_client::is_memory_file(&message.payload));
        assert!(message.payload == big[..], "other bytes arrived");
        let batch = client.receive_many("q", 5).await.expect("the rest");
        assert_eq!(&batch[0].payload[..], b"inline");
        assert!(mailbox_client::is_memory_file(&batch[1].payload));
        assert!(has_the_pattern(&batch[1].payload));

        // Without accept_files it takes bytes inline, and is refused a
        // file longer than its frames while the message waits for others.
        let options = ConnectOptions::new().accept_files(false);
        let plain = mailbox_client::Client::connect_with(broker.socket(), &options)
            .await
            .expect("connect");
        client.send_file("q", &file).await.expect("sent");
        let inline = plain.receive("q").await.expect("inline");
        assert!(!mailbox_client::is_memory_file(&inline.payload));
        assert!(inline.payload == big[..]);
        let huge: Vec<u8> = (0..17 << 20).map(file_pattern).collect();
        let huge = SealedFile::from_bytes(&huge).expect("sealed");
        client.send_file("q", &huge).await.expect("sent");
        let error = plain.try_receive("q").await.expect_err("too long inline");
        assert_eq!(error.kind(), Some(ErrorKind::MessageTooLarge), "{error}");
        let taken = client
            .receive("q")
            .await
            .expect("the same message, as a file");
        assert_eq!(taken.payload.len(), 17 << 20);
        assert!(has_the_pattern(&taken.payload));
    });
    drop(runtime);
    assert_eq!(broker.settled_descriptors(&mut watcher), idle);
}

/// `mailboxctl send MAILBOX --file PATH` sends a file's contents as a
/// sealed memory file, which `recv` writes back byte for byte; the other
/// forms of a send do not combine with it (exit 2), an unreadable path is
/// exit 1 and a file above the broker's largest message exit 65; nothing
/// is left held.
#[test]
fn mailboxctl_sends_a_file_as_a_memory_file() {
    let broker = Broker::start_with(&["--max-file-size", "2M"]);
    let mut watcher = client_at(broker.socket());
    let idle = broker.settled_descriptors(&mut watcher);
    broker.ok(&["create", "q"]);
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("payload");
    let payload: Vec<u8> = (0..(1 << 20) + 7).map(file_pattern).collect();
    std::fs::write(&path, &payload).expect("write the payload");
    let path = path.to_str().expect("utf-8 path");

    let said = broker.ok(&["send", "q", "--file", path, "-v"]);
    assert!(said.starts_with("sent #1 to"), "{said}");
    let received = broker.run(&["recv", "q"]);
    assert_eq!(exit_code(&received), 0);
    assert!(received.stdout == payload, "recv wrote other bytes");

    for wrong in [
        &["send", "q", "hello", "--file", path][..],
        &["send", "q", "--file", path, "--key", "k"],
        &["send", "q", "--file", path, "--nonblock"],
        &["send", "--to", "1", "--file", path],
    ] {
        assert_eq!(exit_code(&broker.run(wrong)), 2, "{wrong:?}");
    }
    let missing = broker.run(&["send", "q", "--file", "/nonexistent/payload"]);
    assert_eq!(exit_code(&missing), 1);
    // Above the broker's file limit (here --max-file-size 2M): refused,
    // exit code 65, naming the limit.
    let huge = dir.path().join("huge");
    std::fs::write(&huge, vec![1u8; (2 << 20) + 1]).expect("write");
    let too_large = broker.run(&["send", "q", "--file", huge.to_str().expect("utf-8")]);
    assert_eq!(exit_code(&too_large), 65);
    let said = String::from_utf8_lossy(&too_large.stderr);
    assert!(said.contains("max_file_size"), "{said}");

    assert_eq!(broker.info("q")["queued_messages"], 0);
    assert_eq!(broker.settled_descriptors(&mut watcher), idle);
}
