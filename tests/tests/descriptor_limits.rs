//! The broker's descriptors, end to end: the limits on the memory files
//! of messages it holds (`limits.max_held_files` and its per-uid share,
//! tested as another uid), what `status` and `mailboxctl status` report
//! (the open-file limit, the descriptors open, the files held), and the
//! life of a file message with real processes: redelivered after its
//! holder is killed, broadcast as one file, moved to a dead-letter
//! mailbox, and after each way it can end (a sender killed mid-send, a
//! receiver killed with files unread in its socket, its mailbox deleted,
//! its time to live over) the broker's `/proc/PID/fd` count back to idle.

use std::io::{BufRead, BufReader};
use std::process::Stdio;
use std::time::Duration;

use bytes::Bytes;
use mailbox_client::{blocking::Client, DeliveryPolicy, ErrorKind, MailboxSettings, SealedFile};
use mailbox_proto::{Request, Response, Target, Wait};
use mailbox_tests::configured_broker::{ConfiguredBroker, OPEN_SOCKET};
use mailbox_tests::other_users::{as_uid, root, OTHER};
use mailbox_tests::raw_client::RawClient;
use mailbox_tests::{binary, client_at, json_lines, wait_until, Broker, Running};

/// A file's payload: `len` bytes of a pattern that starts at `seed`.
fn pattern(seed: u8, len: usize) -> Vec<u8> {
    (0..len)
        .map(|index| seed.wrapping_add((index % 251) as u8))
        .collect()
}

/// The value of `name` in the broker's status list (limits and figures).
fn status_entry(client: &mut Client, name: &str) -> u64 {
    let status = client.status().expect("status");
    status
        .limits
        .iter()
        .find(|limit| limit.name == name)
        .unwrap_or_else(|| panic!("{name} not in status: {:?}", status.limits))
        .value
}

#[test]
fn the_held_files_limit_is_broker_full_naming_its_key_and_status_reports_the_descriptors() {
    let broker = Broker::start_with(&["--max-held-files", "5"]);
    let mut client = client_at(broker.socket());
    client
        .create("q", MailboxSettings::default())
        .expect("create");
    let file = SealedFile::from_bytes(&pattern(1, 4096)).expect("sealed");
    for _ in 0..5 {
        client.send_file("q", &file).expect("within the limit");
    }
    let error = client.send_file("q", &file).expect_err("past the limit");
    assert_eq!(error.kind(), Some(ErrorKind::BrokerFull), "{error}");
    let said = error.to_string();
    assert!(said.contains("limits.max_held_files = 5"), "{said}");
    // Only that send failed: the connection goes on.
    assert_eq!(status_entry(&mut client, "held_files"), 5);
    assert_eq!(status_entry(&mut client, "max_held_files"), 5);
    assert_eq!(status_entry(&mut client, "max_held_files_per_uid"), 1024);
    let limit = status_entry(&mut client, "open_files_limit");
    let open = status_entry(&mut client, "open_files");
    assert!(limit >= open && open >= 5, "{open} open of {limit}");

    // mailboxctl shows them with the figures, and exactly in JSON.
    let text = broker.ok(&["status"]);
    assert!(
        text.contains("memory files held: 5 of 5 (max_held_files)"),
        "{text}"
    );
    assert!(
        text.contains(&format!("of {limit} (open_files_limit)")),
        "{text}"
    );
    let json = &json_lines(broker.ok(&["status", "--json"]).as_bytes())[0];
    assert_eq!(json["held_files"], 5, "{json}");
    assert!(
        json["open_files"].as_u64().is_some_and(|n| n >= 5),
        "{json}"
    );
    assert_eq!(json["limits"]["max_held_files"], 5, "{json}");
    assert_eq!(json["limits"]["open_files_limit"], limit, "{json}");

    // A file received makes room for another.
    assert_eq!(client.receive("q").expect("a file").payload.len(), 4096);
    client.send_file("q", &file).expect("room again");
}

#[test]
fn a_stranger_gets_its_share_of_held_files_and_no_more() {
    if !root() {
        return;
    }
    let setup = ConfiguredBroker::start(OPEN_SOCKET, &["--max-held-files-per-uid", "8"]);
    let broker = &setup.broker;
    let mut watcher = client_at(broker.socket());
    let idle = broker.settled_descriptors(&mut watcher);
    broker.ok(&["create", "open", "--mode", "0622"]);
    let stranger = |count: &str| {
        let output = as_uid(OTHER, &binary("mailbox-peer"))
            .args(["send-files"])
            .arg(broker.socket())
            .args(["open", count])
            .output()
            .expect("run mailbox-peer");
        String::from_utf8_lossy(&output.stdout).into_owned()
    };
    // The stranger fills its share, and no more.
    let said = stranger("20");
    assert!(said.contains("refused BrokerFull after 8"), "{said}");
    assert!(said.contains("limits.max_held_files_per_uid = 8"), "{said}");
    assert!(said.contains(&format!("uid {OTHER}")), "{said}");
    assert_eq!(broker.info("open")["queued_messages"], 8);
    // Root is not held to a share: the broker still takes its files.
    let file = SealedFile::from_bytes(b"root's").expect("sealed");
    watcher.send_file("open", &file).expect("root sends");
    assert_eq!(status_entry(&mut watcher, "held_files"), 9);
    // One of the stranger's received: room for exactly one more.
    let first = watcher.receive("open").expect("the stranger's first");
    assert_eq!(first.metadata.sender_uid, OTHER);
    drop(first);
    let said = stranger("2");
    assert!(said.contains("refused BrokerFull after 1"), "{said}");
    // Everything goes with the mailbox.
    broker.ok(&["delete", "open"]);
    assert_eq!(status_entry(&mut watcher, "held_files"), 0);
    assert_eq!(broker.settled_descriptors(&mut watcher), idle);
}

/// `mailbox-peer hold` as a process: holds `count` messages of `mailbox`
/// with manual acknowledgement; returns once it said it holds the first.
fn holder(broker: &Broker, mailbox: &str, count: u64) -> Running {
    let mut child = std::process::Command::new(binary("mailbox-peer"))
        .args(["hold"])
        .arg(broker.socket())
        .args([mailbox, &count.to_string()])
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn mailbox-peer");
    let mut lines = BufReader::new(child.stdout.take().expect("stdout"));
    let mut line = Vec::new();
    lines.read_until(b'\n', &mut line).expect("read");
    assert!(line.starts_with(b"held "), "{line:?}");
    // The rest of what it says (a binary payload, newlines and all) is
    // drained, so that it never dies of a closed pipe.
    std::thread::spawn(move || std::io::copy(&mut lines, &mut std::io::sink()));
    Running::from_child(child)
}

#[test]
fn a_file_held_by_a_receiver_that_is_killed_goes_to_another_with_the_same_bytes() {
    let broker = Broker::start();
    let mut watcher = client_at(broker.socket());
    let idle = broker.settled_descriptors(&mut watcher);
    watcher
        .create("jobs", MailboxSettings::default())
        .expect("create");
    let payload = pattern(7, 300_000);
    let file = SealedFile::from_bytes(&payload).expect("sealed");
    watcher.send_file("jobs", &file).expect("sent");
    drop(file);
    let held = holder(&broker, "jobs", 1);
    broker.wait_for_info("jobs", "in_flight", 1);
    held.kill();
    broker.wait_for_info("jobs", "in_flight", 0);
    let mut other = client_at(broker.socket());
    let message = other.receive("jobs").expect("redelivered");
    assert_eq!(message.metadata.redeliveries, 1);
    assert!(message.payload == payload, "other bytes after redelivery");
    drop(message);
    drop(other);
    assert_eq!(status_entry(&mut watcher, "held_files"), 0);
    assert_eq!(broker.settled_descriptors(&mut watcher), idle);
}

#[test]
fn a_file_broadcast_to_three_subscribers_is_one_file_in_the_broker() {
    let broker = Broker::start();
    let mut watcher = client_at(broker.socket());
    let idle = broker.settled_descriptors(&mut watcher);
    let settings = MailboxSettings {
        policy: DeliveryPolicy::Broadcast,
        ..MailboxSettings::default()
    };
    watcher.create("news", settings).expect("create");
    let mut subscribers: Vec<Client> = (0..3)
        .map(|_| {
            let mut client = client_at(broker.socket());
            client.subscribe("news").expect("subscribe");
            client
        })
        .collect();
    let before = {
        let mut last = broker.descriptors();
        wait_until("the subscribers' descriptors settle", || {
            std::thread::sleep(Duration::from_millis(100));
            let now = broker.descriptors();
            std::mem::replace(&mut last, now) == now
        });
        last
    };
    let payload = pattern(3, 1 << 20);
    let file = SealedFile::from_bytes(&payload).expect("sealed");
    assert_eq!(
        watcher.send_file("news", &file).expect("sent").recipients,
        3
    );
    drop(file);
    // Three copies of the message, one file.
    assert_eq!(status_entry(&mut watcher, "held_files"), 1);
    assert_eq!(broker.descriptors(), before + 1);
    for subscriber in &mut subscribers {
        let message = subscriber.receive("news").expect("the file");
        assert!(message.payload == payload, "a subscriber read other bytes");
    }
    drop(subscribers);
    assert_eq!(status_entry(&mut watcher, "held_files"), 0);
    assert_eq!(broker.settled_descriptors(&mut watcher), idle);
}

#[test]
fn a_file_moved_to_a_dead_letter_mailbox_is_still_received_as_a_file() {
    let broker = Broker::start();
    let mut watcher = client_at(broker.socket());
    let idle = broker.settled_descriptors(&mut watcher);
    watcher
        .create("dlq", MailboxSettings::default())
        .expect("create");
    let settings = MailboxSettings {
        ttl_millis: Some(200),
        dead_letter: Some("dlq".into()),
        ..MailboxSettings::default()
    };
    watcher.create("src", settings).expect("create");
    let payload = pattern(9, 100_000);
    let file = SealedFile::from_bytes(&payload).expect("sealed");
    watcher.send_file("src", &file).expect("sent");
    watcher.send_file("src", &file).expect("sent");
    drop(file);
    broker.wait_for_info("dlq", "queued_messages", 2);
    // Still the sender's files, still counted.
    assert_eq!(status_entry(&mut watcher, "held_files"), 2);
    // A client that takes files gets the first as a file.
    let mut raw = RawClient::connect(broker.socket());
    raw.send(1, Request::AcceptFiles);
    assert!(matches!(raw.answer().0, Ok(Response::FilesAccepted)));
    raw.send(
        2,
        Request::Receive {
            mailbox: "dlq".into(),
            wait: Wait::Never,
        },
    );
    let (answer, descriptors) = raw.answer();
    match answer {
        Ok(Response::ReceivedFile { metadata, len }) => {
            assert_eq!(len, 100_000);
            let dead = metadata
                .details
                .and_then(|details| details.dead_letter)
                .expect("marked as a dead letter");
            assert_eq!(dead.mailbox, "src");
        }
        other => panic!("expected the file, got {other:?}"),
    }
    assert_eq!(descriptors, 1);
    // And the library reads the same bytes from the second.
    let message = watcher.receive("dlq").expect("the second");
    assert!(message.payload == payload, "other bytes after the move");
    drop(message);
    drop(raw);
    assert_eq!(broker.settled_descriptors(&mut watcher), idle);
}

fn send_file_request(mailbox: &str, len: u64) -> Request {
    Request::SendFile {
        to: Target::Mailbox(mailbox.into()),
        len,
        options: Box::default(),
        wait: Wait::Never,
        payload: Bytes::new(),
    }
}

#[test]
fn however_a_file_message_ends_the_broker_holds_no_descriptor_after() {
    let broker = Broker::start();
    let mut watcher = client_at(broker.socket());
    let idle = broker.settled_descriptors(&mut watcher);
    watcher
        .create("q", MailboxSettings::default())
        .expect("create");
    let file = SealedFile::from_bytes(&pattern(5, 8192)).expect("sealed");

    // A sender that dies mid-send: its descriptor arrived with the first
    // bytes of a frame that never completes.
    let mut sender = RawClient::connect(broker.socket());
    let frame = RawClient::encode(1, send_file_request("q", 8192));
    sender.send_bytes_with(&frame[..6], &[file.as_fd()]);
    wait_until("the broker took the descriptor", || {
        broker.descriptors() >= idle + 2
    });
    drop(sender);
    assert_eq!(
        broker.settled_descriptors(&mut watcher),
        idle,
        "sender died"
    );

    // A receiver killed with files in its socket buffer, unread.
    let mut receiver = RawClient::connect(broker.socket());
    receiver.send(1, Request::AcceptFiles);
    assert!(matches!(receiver.answer().0, Ok(Response::FilesAccepted)));
    for id in 2..5 {
        receiver.send(
            id,
            Request::Receive {
                mailbox: "q".into(),
                wait: Wait::Forever,
            },
        );
    }
    broker.wait_for_info("q", "waiting_receivers", 3);
    for _ in 0..3 {
        watcher.send_file("q", &file).expect("sent");
    }
    drop(receiver);
    assert_eq!(
        broker.settled_descriptors(&mut watcher),
        idle,
        "receiver died"
    );

    // A mailbox deleted with file messages queued.
    for _ in 0..3 {
        watcher.send_file("q", &file).expect("sent");
    }
    assert_eq!(status_entry(&mut watcher, "held_files"), 3);
    watcher.delete("q").expect("delete");
    assert_eq!(status_entry(&mut watcher, "held_files"), 0);
    assert_eq!(broker.settled_descriptors(&mut watcher), idle, "deleted");

    // File messages whose time to live runs out.
    let settings = MailboxSettings {
        ttl_millis: Some(200),
        ..MailboxSettings::default()
    };
    watcher.create("short", settings).expect("create");
    for _ in 0..3 {
        watcher.send_file("short", &file).expect("sent");
    }
    broker.wait_for_info("short", "queued_messages", 0);
    assert_eq!(status_entry(&mut watcher, "held_files"), 0);
    assert_eq!(broker.settled_descriptors(&mut watcher), idle, "expired");
}
