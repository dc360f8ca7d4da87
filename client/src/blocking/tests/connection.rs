//! Connecting, the handshake, and a connection that fails.

use super::*;

#[test]
fn a_refused_handshake_is_rejected() {
    let (ours, theirs) = UnixStream::pair().expect("socket pair");
    let broker = crate::test_support::refusing_broker(
        theirs,
        BrokerError::new(ErrorKind::UnsupportedVersion, "speak 2"),
    );
    let error = Client::from_stream(ours).expect_err("should fail");
    assert!(matches!(error, Error::Rejected(_)), "{error}");
    assert_eq!(error.kind(), Some(ErrorKind::UnsupportedVersion));
    broker.finish();
}

#[test]
fn a_goodbye_fails_this_and_every_later_call() {
    let (mut client, _broker) = connected(|_| {
        vec![ServerFrame::Goodbye(BrokerError::new(
            ErrorKind::BrokerShuttingDown,
            "stopping",
        ))]
    });
    let error = client.list().expect_err("should fail");
    assert_eq!(error.kind(), Some(ErrorKind::BrokerShuttingDown));
    let again = client.status().expect_err("should fail");
    assert_eq!(again.kind(), Some(ErrorKind::BrokerShuttingDown));
}

#[test]
fn a_vanished_broker_is_disconnected() {
    let (ours, theirs) = UnixStream::pair().expect("socket pair");
    let broker = fake_broker(theirs, |_| Vec::new());
    let mut client = Client::from_stream(ours).expect("handshake");
    broker.hang_up();
    assert!(matches!(client.list(), Err(Error::Disconnected)));
}

#[test]
fn a_missing_socket_is_a_connect_error() {
    let dir = tempfile::tempdir().expect("temp dir");
    let error = Client::connect(dir.path().join("none.sock")).expect_err("should fail");
    assert!(matches!(error, Error::Connect { .. }), "{error}");
}

#[test]
fn connects_through_a_socket_path() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("broker.sock");
    let listener = std::os::unix::net::UnixListener::bind(&path).expect("bind");
    let server = std::thread::spawn(move || {
        let (stream, _) = listener.accept().expect("accept");
        fake_broker(stream, |frame| {
            answer(
                frame,
                Ok(Response::MailboxPage {
                    mailboxes: Vec::new(),
                    next: None,
                }),
            )
        })
        .finish()
    });
    let mut client = Client::connect(&path).expect("connects");
    assert!(client.list().expect("listed").is_empty());
    drop(client);
    // `connect` announces memory files with its first request's write.
    let frames = server.join().expect("server thread").frames;
    assert_eq!(frames.len(), 2);
    assert_eq!(frames[0].request, mailbox_proto::Request::AcceptFiles);
}
