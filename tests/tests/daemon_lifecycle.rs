//! mailboxd as a process: start, refuse a live socket, replace a stale one,
//! shut down cleanly on SIGTERM, and stay up through bad clients.

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::process::Command;
use std::time::Duration;

use mailbox_tests::{binary, Broker};

#[test]
fn sigterm_answers_waiting_clients_removes_the_socket_and_exits_0() {
    let broker = Broker::start();
    broker.ok(&["create", "jobs"]);
    let waiting = broker.spawn(&["recv", "jobs"]);
    broker.wait_for_info("jobs", "waiting_receivers", 1);
    let socket = broker.socket().to_owned();
    let (status, _log) = broker.terminate();
    assert!(
        status.success(),
        "mailboxd exits 0 on SIGTERM, got {status:?}"
    );
    assert!(!socket.exists(), "the socket file is removed");
    let output = waiting.finish();
    // The waiting receive was answered: BrokerShuttingDown maps to exit 69.
    assert_eq!(output.status.code(), Some(69));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("shutting down") || stderr.contains("stopping"),
        "{stderr}"
    );
}

#[test]
fn a_client_that_never_says_hello_does_not_hold_up_shutdown() {
    let broker = Broker::start();
    let mut silent = raw_connection(&broker);
    // Accepted in order: once this later client is answered, the silent
    // one has been accepted and waits in its handshake (10 s timeout).
    broker.ok(&["status"]);
    let started = std::time::Instant::now();
    let (status, _log) = broker.terminate();
    let took = started.elapsed();
    assert!(
        status.success(),
        "mailboxd exits 0 on SIGTERM, got {status:?}"
    );
    // Not the handshake timeout, nor the 5 s shutdown grace.
    assert!(took < Duration::from_secs(3), "shutdown took {took:?}");
    match decode(&read_frame(&mut silent)) {
        mailbox_proto::ServerFrame::Goodbye(error) => {
            assert_eq!(error.kind, mailbox_proto::ErrorKind::BrokerShuttingDown);
        }
        other => panic!("expected a goodbye, got {other:?}"),
    }
}

#[test]
fn a_second_broker_refuses_a_socket_a_live_broker_answers_on() {
    let broker = Broker::start();
    let output = Command::new(binary("mailboxd"))
        .arg("--socket")
        .arg(broker.socket())
        .output()
        .expect("run mailboxd");
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("already listening"), "{stderr}");
    // The first broker is unharmed.
    broker.ok(&["status"]);
}

#[test]
fn a_stale_socket_file_is_replaced() {
    let dir = tempfile::tempdir().expect("temp dir");
    let socket = dir.path().join("stale.sock");
    drop(std::os::unix::net::UnixListener::bind(&socket).expect("bind"));
    assert!(socket.exists());
    let mut child = Command::new(binary("mailboxd"))
        .arg("--socket")
        .arg(&socket)
        .spawn()
        .expect("spawn mailboxd");
    mailbox_tests::wait_until("the new broker answers", || {
        UnixStream::connect(&socket).is_ok()
    });
    mailbox_tests::signal(child.id(), libc::SIGTERM);
    assert!(child.wait().expect("wait").success());
}

#[test]
fn a_regular_file_at_the_socket_path_is_not_removed() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("precious");
    std::fs::write(&path, b"data").expect("write");
    let output = Command::new(binary("mailboxd"))
        .arg("--socket")
        .arg(&path)
        .output()
        .expect("run mailboxd");
    assert!(!output.status.success());
    assert_eq!(std::fs::read(&path).expect("still there"), b"data");
}

fn raw_connection(broker: &Broker) -> UnixStream {
    let stream = UnixStream::connect(broker.socket()).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    stream
}

/// Reads one server frame and returns its body.
fn read_frame(stream: &mut UnixStream) -> Vec<u8> {
    let mut header = [0u8; 4];
    stream.read_exact(&mut header).expect("frame header");
    let mut body = vec![0u8; u32::from_le_bytes(header) as usize];
    stream.read_exact(&mut body).expect("frame body");
    body
}

#[test]
fn a_client_of_another_protocol_version_is_told_so_not_left_hanging() {
    let broker = Broker::start();
    let mut stream = raw_connection(&broker);
    let hello = bytes_of_hello(99);
    stream.write_all(&hello).expect("write hello");
    let body = read_frame(&mut stream);
    let frame: mailbox_proto::ServerFrame = decode(&body);
    match frame {
        mailbox_proto::ServerFrame::Goodbye(error) => {
            assert_eq!(error.kind, mailbox_proto::ErrorKind::UnsupportedVersion);
            assert!(error.message.contains("99"), "{}", error.message);
        }
        other => panic!("expected a goodbye, got {other:?}"),
    }
    broker.ok(&["status"]);
}

#[test]
fn garbage_and_oversized_frames_close_only_that_connection() {
    let broker = Broker::start();
    broker.ok(&["create", "jobs"]);
    let waiting = broker.spawn(&["recv", "jobs"]);
    broker.wait_for_info("jobs", "waiting_receivers", 1);

    let mut garbage = raw_connection(&broker);
    garbage.write_all(b"GET / HTTP/1.1\r\n\r\n").expect("write");
    let frame: mailbox_proto::ServerFrame = decode(&read_frame(&mut garbage));
    assert!(
        matches!(frame, mailbox_proto::ServerFrame::Goodbye(_)),
        "{frame:?}"
    );

    let mut huge = raw_connection(&broker);
    huge.write_all(&bytes_of_hello(mailbox_proto::PROTOCOL_VERSION))
        .expect("hello");
    let _welcome = read_frame(&mut huge);
    huge.write_all(&u32::MAX.to_le_bytes())
        .expect("huge header");
    let frame: mailbox_proto::ServerFrame = decode(&read_frame(&mut huge));
    match frame {
        mailbox_proto::ServerFrame::Goodbye(error) => {
            assert_eq!(error.kind, mailbox_proto::ErrorKind::ProtocolViolation)
        }
        other => panic!("expected a goodbye, got {other:?}"),
    }
    let mut rest = Vec::new();
    let _ = huge.read_to_end(&mut rest);
    assert!(
        rest.is_empty(),
        "the connection is closed after the goodbye"
    );

    // Everyone else is still served.
    broker.ok(&["send", "jobs", "still here"]);
    assert_eq!(waiting.finish().stdout, b"still here");
}

fn bytes_of_hello(version: u32) -> Vec<u8> {
    let hello = mailbox_proto::Hello {
        magic: mailbox_proto::HELLO_MAGIC,
        protocol_version: version,
        client_name: "raw-test".into(),
    };
    let mut buf = bytes::BytesMut::new();
    mailbox_proto::encode_frame(&hello, &mut buf, 4096).expect("encode");
    buf.to_vec()
}

fn decode(body: &[u8]) -> mailbox_proto::ServerFrame {
    let mut buf = bytes::BytesMut::new();
    buf.extend_from_slice(&(body.len() as u32).to_le_bytes());
    buf.extend_from_slice(body);
    mailbox_proto::decode_frame(&mut buf, u32::MAX)
        .expect("valid frame")
        .expect("whole frame")
}
