//! The blocking client against a fake broker: requests and answers,
//! pipelines and streams, batches, failures of the connection.

use super::*;

use crate::test_support::{
    fake_broker, fake_broker_limited, message, messages, sent_many, FakeBroker,
};
use mailbox_proto::{
    Address, Capacity, ClientFrame, ErrorKind, MailboxInfo, MailboxSettings, NameInfo,
    ReceiveOptions, SendOptions, ServerFrame, Source, Target, Verdict,
};

fn connected(
    handler: impl FnMut(&ClientFrame) -> Vec<ServerFrame> + Send + 'static,
) -> (Client, FakeBroker) {
    let (ours, theirs) = UnixStream::pair().expect("socket pair");
    let broker = fake_broker(theirs, handler);
    let client = Client::from_stream(ours).expect("handshake");
    (client, broker)
}

fn answer(frame: &ClientFrame, result: Result<Response, BrokerError>) -> Vec<ServerFrame> {
    vec![ServerFrame::Response {
        id: frame.id,
        result,
    }]
}

#[test]
fn list_and_names_follow_the_pages_to_the_end() {
    // A broker with names "m0".."m9", three to a page.
    let names: Vec<String> = (0..10).map(|n| format!("m{n}")).collect();
    let page_of = move |after: &Option<String>| {
        let rest: Vec<String> = names
            .iter()
            .filter(|name| after.as_ref().is_none_or(|after| *name > after))
            .cloned()
            .collect();
        let page: Vec<String> = rest.iter().take(3).cloned().collect();
        let next = (rest.len() > 3).then(|| page[2].clone());
        (page, next)
    };
    let (mut client, broker) = connected(move |frame| match &frame.request {
        Request::ListMailboxPage { after, .. } => {
            let (page, next) = page_of(after);
            let mailboxes = page
                .into_iter()
                .map(|name| MailboxInfo {
                    name,
                    mode: 0o760,
                    ..MailboxInfo::default()
                })
                .collect();
            answer(frame, Ok(Response::MailboxPage { mailboxes, next }))
        }
        Request::ListNamePage { after, .. } => {
            let (page, next) = page_of(after);
            let names = page
                .into_iter()
                .map(|name| NameInfo {
                    name,
                    process: 1,
                    pid: 2,
                    uid: 3,
                    queued_claims: 0,
                })
                .collect();
            answer(frame, Ok(Response::NamePage { names, next }))
        }
        _ => answer(frame, Err(BrokerError::new(ErrorKind::Internal, "no"))),
    });
    let listed: Vec<String> = client
        .list()
        .expect("list")
        .into_iter()
        .map(|info| info.name)
        .collect();
    let named: Vec<String> = client
        .names()
        .expect("names")
        .into_iter()
        .map(|info| info.name)
        .collect();
    let expected: Vec<String> = (0..10).map(|n| format!("m{n}")).collect();
    assert_eq!(listed, expected);
    assert_eq!(named, expected);
    drop(client);
    // Four pages each: 3 + 3 + 3 + 1.
    assert_eq!(broker.finish().frames.len(), 8);
}

#[test]
fn requests_get_their_answers() {
    let (mut client, broker) = connected(|frame| match &frame.request {
        Request::CreateMailbox { .. } => answer(frame, Ok(Response::Created { created: true })),
        Request::Send { .. } => answer(
            frame,
            Ok(Response::Sent {
                sequence: 1,
                recipients: 1,
            }),
        ),
        Request::Receive { .. } => answer(frame, Ok(Response::Received(message(1, "hi")))),
        _ => answer(frame, Err(BrokerError::new(ErrorKind::NoSuchMailbox, "no"))),
    });
    assert!(client
        .create("jobs", MailboxSettings::default())
        .expect("created"));
    let receipt = client.send("jobs", "hi").expect("sent");
    assert_eq!(receipt.sequence, 1);
    assert_eq!(client.receive("jobs").expect("message").payload, "hi");
    let error = client.delete("jobs").expect_err("should fail");
    assert_eq!(error.kind(), Some(ErrorKind::NoSuchMailbox));
    drop(client);
    let log = broker.finish();
    assert_eq!(log.frames.len(), 4);
}

#[test]
fn empty_mailbox_is_none_and_timeouts_are_typed() {
    let (mut client, _broker) = connected(|frame| match &frame.request {
        Request::Receive {
            wait: Wait::Never, ..
        } => answer(frame, Err(BrokerError::new(ErrorKind::WouldBlock, "empty"))),
        Request::Receive {
            wait: Wait::Timeout { millis: 250 },
            ..
        } => answer(frame, Err(BrokerError::new(ErrorKind::Timeout, "late"))),
        _ => answer(frame, Err(BrokerError::new(ErrorKind::Internal, "?"))),
    });
    assert_eq!(client.try_receive("jobs").expect("no error"), None);
    let error = client
        .receive_timeout("jobs", Duration::from_millis(250))
        .expect_err("should fail");
    assert_eq!(error.kind(), Some(ErrorKind::Timeout));
}

#[test]
fn pipelined_sends_batch_frames_and_return_receipts_in_order() {
    let mut sequence = 0;
    let (mut client, broker) = connected(move |frame| {
        sequence += 1;
        answer(
            frame,
            Ok(Response::Sent {
                sequence,
                recipients: 1,
            }),
        )
    });
    let payloads = (0..100).map(|i| Bytes::from(format!("message {i}")));
    let receipts = client
        .send_pipelined("jobs", payloads, 16, Wait::Forever)
        .expect("all accepted");
    assert_eq!(
        receipts.iter().map(|r| r.sequence).collect::<Vec<_>>(),
        (1..=100).collect::<Vec<_>>()
    );
    drop(client);
    let log = broker.finish();
    assert_eq!(log.frames.len(), 100);
    assert_eq!(log.largest_batch, 16, "one write carries a whole window");
}

#[test]
fn pipelined_sends_stop_at_a_refusal_and_say_which_were_accepted() {
    // The broker answers a window of four in reverse order; the third
    // payload is too large.
    let mut held = Vec::new();
    let (mut client, _broker) = connected(move |frame| {
        held.push(frame.clone());
        if held.len() < 4 {
            return Vec::new();
        }
        held.drain(..)
            .rev()
            .map(|frame| {
                let result = match &frame.request {
                    Request::Send { payload, .. } if payload.len() > 3 => Err(BrokerError::new(
                        ErrorKind::MessageTooLarge,
                        "above 3 bytes",
                    )),
                    _ => Ok(Response::Sent {
                        sequence: frame.id,
                        recipients: 1,
                    }),
                };
                ServerFrame::Response {
                    id: frame.id,
                    result,
                }
            })
            .collect()
    });
    let payloads = ["a", "b", "large", "c", "never sent"];
    let error = client
        .send_pipelined("jobs", payloads, 4, Wait::Never)
        .expect_err("should fail");
    assert_eq!(error.failed_at, 2);
    assert_eq!(error.error.kind(), Some(ErrorKind::MessageTooLarge));
    assert_eq!(
        error.accepted.iter().map(|(p, _)| *p).collect::<Vec<_>>(),
        vec![0, 1, 3]
    );
    assert!(error.unknown.is_empty());
    assert_eq!(error.issued, 4);
}

#[test]
fn pipelined_receives_keep_a_window_and_cancel_after_a_failure() {
    let mut sequence = 0;
    let (mut client, broker) = connected(move |frame| match &frame.request {
        Request::Receive { .. } if sequence < 5 => {
            sequence += 1;
            answer(frame, Ok(Response::Received(message(sequence, "m"))))
        }
        // The sixth receive times out; later ones wait until cancelled.
        Request::Receive { .. } if sequence == 5 => {
            sequence += 1;
            answer(frame, Err(BrokerError::new(ErrorKind::Timeout, "late")))
        }
        Request::Receive { .. } => Vec::new(),
        Request::Cancel { request } => vec![
            ServerFrame::Response {
                id: *request,
                result: Err(BrokerError::new(ErrorKind::Cancelled, "cancelled")),
            },
            ServerFrame::Response {
                id: frame.id,
                result: Ok(Response::CancelResult { cancelled: true }),
            },
        ],
        _ => Vec::new(),
    });
    let mut got = Vec::new();
    let error = client
        .receive_pipelined("jobs", 10, 4, Wait::Forever, |m| {
            got.push(m.metadata.sequence)
        })
        .expect_err("should fail");
    assert_eq!(error.kind(), Some(ErrorKind::Timeout));
    assert_eq!(got, vec![1, 2, 3, 4, 5]);
    // The connection is still usable and nothing is left filed.
    assert!(client.answered.is_empty());
    assert_eq!(client.session.in_flight(), 0);
    drop(client);
    let log = broker.finish();
    let receives = log
        .frames
        .iter()
        .filter(|f| matches!(f.request, Request::Receive { .. }))
        .count();
    assert!(receives <= 10, "never more than count receives");
}

#[test]
fn pipelined_receives_stop_at_count() {
    let mut sequence = 0;
    let (mut client, broker) = connected(move |frame| {
        sequence += 1;
        answer(frame, Ok(Response::Received(message(sequence, "m"))))
    });
    let mut got = 0;
    let count = client
        .receive_pipelined("jobs", 7, 3, Wait::Forever, |_| got += 1)
        .expect("received");
    assert_eq!((count, got), (7, 7));
    drop(client);
    assert_eq!(broker.finish().frames.len(), 7);
}

fn refusal(kind: ErrorKind) -> BrokerError {
    BrokerError::new(kind, "test")
}

/// The payloads of every `SendMany` the broker saw, batch by batch.
fn batches_seen(frames: &[ClientFrame]) -> Vec<Vec<Bytes>> {
    frames
        .iter()
        .filter_map(|frame| match &frame.request {
            Request::SendMany { payloads, .. } => Some(payloads.clone()),
            _ => None,
        })
        .collect()
}

#[test]
fn batch_sends_are_all_sent_partly_sent_or_not_sent() {
    let (mut client, broker) = connected(|frame| match &frame.request {
        Request::SendMany { payloads, wait, .. } => {
            let result = match wait {
                Wait::Forever => sent_many(1, payloads.len(), None),
                // Room for two only.
                Wait::Never => sent_many(4, 2, Some(refusal(ErrorKind::WouldBlock))),
                Wait::Timeout { .. } => sent_many(6, 0, Some(refusal(ErrorKind::Timeout))),
            };
            answer(frame, Ok(result))
        }
        _ => answer(frame, Err(refusal(ErrorKind::Internal))),
    });
    let receipt = client.send_many("jobs", ["a", "b", "c"]).expect("all sent");
    assert_eq!(receipt.sequences(), 1..4);

    let payloads = ["d", "e", "f"];
    let error = client
        .try_send_many("jobs", payloads)
        .expect_err("only some sent");
    let Error::Partial {
        admitted,
        first_sequence,
        ref error,
    } = error
    else {
        panic!("expected a partial send, got {error}");
    };
    assert_eq!((admitted, first_sequence), (2, 4));
    assert_eq!(error.kind, ErrorKind::WouldBlock);
    assert_eq!(&payloads[admitted as usize..], ["f"]);

    let error = client
        .send_many_timeout("jobs", ["g"], Duration::from_millis(5))
        .expect_err("none sent");
    assert!(matches!(error, Error::Broker(_)), "{error}");
    assert_eq!(error.kind(), Some(ErrorKind::Timeout));
    drop(client);
    let log = broker.finish();
    assert_eq!(
        batches_seen(&log.frames),
        vec![vec!["a", "b", "c"], vec!["d", "e", "f"], vec!["g"]]
    );
    assert_eq!(
        log.frames[2].request,
        Request::SendMany {
            mailbox: "jobs".into(),
            payloads: vec![Bytes::from("g")],
            wait: Wait::Timeout { millis: 5 },
        }
    );
}

#[test]
fn batch_receives_take_what_is_there_up_to_max() {
    let (mut client, broker) = connected(|frame| match &frame.request {
        Request::ReceiveMany {
            wait: Wait::Never, ..
        } => answer(frame, Err(refusal(ErrorKind::WouldBlock))),
        Request::ReceiveMany {
            wait: Wait::Timeout { .. },
            ..
        } => answer(frame, Err(refusal(ErrorKind::Timeout))),
        // Three messages are there.
        Request::ReceiveMany { max, .. } => answer(
            frame,
            Ok(Response::ReceivedMany(messages(1, u64::from(*max).min(3)))),
        ),
        _ => answer(frame, Err(refusal(ErrorKind::Internal))),
    });
    let got = client.receive_many("jobs", 5).expect("messages");
    assert_eq!(
        got.iter().map(|m| m.metadata.sequence).collect::<Vec<_>>(),
        vec![1, 2, 3]
    );
    assert_eq!(client.receive_many("jobs", 0).expect("one").len(), 1);
    assert!(client
        .try_receive_many("jobs", 5)
        .expect("empty is no error")
        .is_empty());
    let error = client
        .receive_many_timeout("jobs", 5, Duration::from_millis(5))
        .expect_err("should fail");
    assert_eq!(error.kind(), Some(ErrorKind::Timeout));
    drop(client);
    let maxes: Vec<u32> = broker
        .finish()
        .frames
        .iter()
        .filter_map(|frame| match frame.request {
            Request::ReceiveMany { max, .. } => Some(max),
            _ => None,
        })
        .collect();
    assert_eq!(maxes, vec![5, 1, 5, 5]);
}

#[test]
fn a_batch_above_the_frame_limit_is_refused_without_sending() {
    let (ours, theirs) = UnixStream::pair().expect("socket pair");
    let broker = fake_broker_limited(theirs, 1024, |frame| match &frame.request {
        Request::SendMany { payloads, .. } => answer(frame, Ok(sent_many(1, payloads.len(), None))),
        _ => answer(frame, Err(refusal(ErrorKind::Internal))),
    });
    let mut client = Client::from_stream(ours).expect("handshake");
    let large = (0..10).map(|_| Bytes::from(vec![1u8; 200]));
    let error = client.send_many("jobs", large).expect_err("refused");
    assert!(matches!(error, Error::Broker(_)), "{error}");
    assert_eq!(error.kind(), Some(ErrorKind::MessageTooLarge));
    assert!(error.to_string().contains("nothing was sent"), "{error}");
    // The connection is still fine.
    let receipt = client.send_many("jobs", ["small"]).expect("sent");
    assert_eq!(receipt.admitted, 1);
    drop(client);
    assert_eq!(batches_seen(&broker.finish().frames), vec![vec!["small"]]);
}

#[test]
fn streamed_sends_keep_a_window_of_batches() {
    let mut next = 1;
    let (mut client, broker) = connected(move |frame| match &frame.request {
        Request::SendMany { payloads, .. } => {
            let first = next;
            next += payloads.len() as u64;
            answer(frame, Ok(sent_many(first, payloads.len(), None)))
        }
        _ => answer(frame, Err(refusal(ErrorKind::Internal))),
    });
    let input: Vec<Bytes> = (0..1000u32)
        .map(|i| Bytes::from(i.to_le_bytes().to_vec()))
        .collect();
    let receipt = client
        .send_stream("jobs", input.clone(), 64, 4, Wait::Forever)
        .expect("all accepted");
    assert_eq!(receipt.accepted, 1000);
    assert_eq!(receipt.batches.len(), 16);
    assert_eq!(receipt.batches[15].sequences(), 961..1001);
    drop(client);
    let log = broker.finish();
    let seen = batches_seen(&log.frames);
    assert!(seen.iter().all(|batch| batch.len() <= 64));
    assert_eq!(seen.concat(), input, "every payload once, in order");
    assert_eq!(log.largest_batch, 4, "one write carries a whole window");
}

#[test]
fn streamed_sends_cut_batches_to_fit_the_frame_limit() {
    let (ours, theirs) = UnixStream::pair().expect("socket pair");
    let broker = fake_broker_limited(theirs, 1024, |frame| match &frame.request {
        Request::SendMany { payloads, .. } => answer(frame, Ok(sent_many(1, payloads.len(), None))),
        _ => answer(frame, Err(refusal(ErrorKind::Internal))),
    });
    let mut client = Client::from_stream(ours).expect("handshake");
    let input: Vec<Bytes> = (0..50).map(|_| Bytes::from(vec![2u8; 100])).collect();
    let receipt = client
        .send_stream("jobs", input.clone(), 64, 2, Wait::Forever)
        .expect("all accepted");
    assert_eq!(receipt.accepted, 50);
    drop(client);
    let seen = batches_seen(&broker.finish().frames);
    assert!(seen.len() > 1 && seen.iter().all(|batch| batch.len() < 10));
    assert_eq!(seen.concat(), input);
}

#[test]
fn a_streamed_send_stops_at_a_partial_batch_and_says_what_was_accepted() {
    // Three batches of five arrive together; the second stops after
    // three messages, the others are accepted whole.
    let mut held = Vec::new();
    let (mut client, broker) = connected(move |frame| {
        held.push(frame.clone());
        if held.len() < 3 {
            return Vec::new();
        }
        held.drain(..)
            .enumerate()
            .map(|(index, frame)| {
                let result = match index {
                    1 => sent_many(6, 3, Some(refusal(ErrorKind::Timeout))),
                    _ => sent_many(1 + 5 * index as u64, 5, None),
                };
                ServerFrame::Response {
                    id: frame.id,
                    result: Ok(result),
                }
            })
            .collect()
    });
    let input = (0..30).map(|i| Bytes::from(vec![i as u8]));
    let error = client
        .send_stream("jobs", input, 5, 3, Wait::Timeout { millis: 10 })
        .expect_err("should stop");
    assert_eq!(error.failed_at, 8);
    assert_eq!(error.error.kind(), Some(ErrorKind::Timeout));
    assert_eq!(
        error
            .accepted
            .iter()
            .map(|(positions, _)| positions.clone())
            .collect::<Vec<_>>(),
        vec![0..5, 5..8, 10..15]
    );
    assert_eq!(error.accepted[1].1.sequences(), 6..9);
    assert_eq!(error.accepted_count(), 13);
    assert!(error.unknown.is_empty());
    assert_eq!(error.issued, 15);
    drop(client);
    assert_eq!(
        batches_seen(&broker.finish().frames).len(),
        3,
        "no batch after the stop"
    );
}

#[test]
fn streamed_receives_never_take_beyond_count() {
    // Three messages at most are available per receive.
    let mut next = 1;
    let (mut client, broker) = connected(move |frame| match &frame.request {
        Request::ReceiveMany { max, .. } => {
            let count = u64::from(*max).min(3);
            next += count;
            answer(
                frame,
                Ok(Response::ReceivedMany(messages(next - count, count))),
            )
        }
        _ => answer(frame, Err(refusal(ErrorKind::Internal))),
    });
    let mut got = Vec::new();
    let count = client
        .receive_stream("jobs", 20, 8, 3, Wait::Forever, |m| {
            got.push(m.metadata.sequence)
        })
        .expect("received");
    assert_eq!(count, 20);
    assert_eq!(got, (1..=20).collect::<Vec<_>>());
    drop(client);
    // Each receive was answered before the next arrived, so the broker
    // had handed over `delivered` when each asked for its `max`.
    let mut delivered = 0;
    for frame in broker.finish().frames {
        let Request::ReceiveMany { max, .. } = frame.request else {
            panic!("unexpected {frame:?}");
        };
        assert!(delivered + max <= 20, "asked beyond count");
        delivered += max.min(3);
    }
    assert_eq!(delivered, 20);
}

#[test]
fn a_streamed_receive_cancels_after_a_failure_and_keeps_raced_messages() {
    let mut receives = 0;
    let mut held = Vec::new();
    let (mut client, broker) = connected(move |frame| match &frame.request {
        Request::ReceiveMany { .. } => {
            receives += 1;
            match receives {
                1 => answer(frame, Ok(Response::ReceivedMany(messages(1, 4)))),
                2 => answer(frame, Err(refusal(ErrorKind::Timeout))),
                _ => {
                    held.push(frame.id);
                    Vec::new()
                }
            }
        }
        // The first held receive got two messages just before its
        // cancel arrived; the others are withdrawn.
        Request::Cancel { request } => {
            let raced = held.first() == Some(request);
            let result = if raced {
                Ok(Response::ReceivedMany(messages(5, 2)))
            } else {
                Err(refusal(ErrorKind::Cancelled))
            };
            vec![
                ServerFrame::Response {
                    id: *request,
                    result,
                },
                ServerFrame::Response {
                    id: frame.id,
                    result: Ok(Response::CancelResult { cancelled: !raced }),
                },
            ]
        }
        _ => Vec::new(),
    });
    let mut got = Vec::new();
    let error = client
        .receive_stream("jobs", 100, 4, 4, Wait::Forever, |m| {
            got.push(m.metadata.sequence)
        })
        .expect_err("should fail");
    assert_eq!(error.kind(), Some(ErrorKind::Timeout));
    assert_eq!(got, vec![1, 2, 3, 4, 5, 6]);
    assert!(client.answered.is_empty());
    assert_eq!(client.session.in_flight(), 0);
    drop(client);
    let log = broker.finish();
    let cancels = log
        .frames
        .iter()
        .filter(|f| matches!(f.request, Request::Cancel { .. }))
        .count();
    assert!(cancels >= 2, "every outstanding receive was cancelled");
}

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
    assert_eq!(server.join().expect("server thread").frames.len(), 1);
}

/// A fake broker that answers every request of direct messages,
/// acknowledgements, calls and names in one fixed way.
fn direct_acks_calls_names_broker(frame: &ClientFrame) -> Vec<ServerFrame> {
    let refuse = |kind| Err(BrokerError::new(kind, "test"));
    let result = match &frame.request {
        Request::SendWith {
            to: Target::Process(Address::Name(name)),
            ..
        } if name == "nobody" => refuse(ErrorKind::NoSuchProcess),
        Request::SendWith { .. } => Ok(Response::Sent {
            sequence: 1,
            recipients: 1,
        }),
        Request::ReceiveWith {
            wait: Wait::Never, ..
        } => refuse(ErrorKind::WouldBlock),
        Request::ReceiveWith {
            options: ReceiveOptions { max: Some(max), .. },
            ..
        } => Ok(Response::ReceivedMany(messages(1, u64::from(*max)))),
        Request::ReceiveWith {
            from: Source::Inbox { from: Some(_) },
            ..
        } => Ok(Response::Received(message(2, "from one"))),
        Request::ReceiveWith { .. } => {
            let mut request = message(3, "request");
            request.metadata.details = Some(Box::new(mailbox_proto::Details {
                call: Some(77),
                ..Default::default()
            }));
            Ok(Response::Received(request))
        }
        Request::Settle { .. } => Ok(Response::Settled),
        Request::Call { payload, .. } => {
            let mut reply = message(1, "");
            reply.payload = payload.clone();
            Ok(Response::Received(reply))
        }
        Request::Reply { .. } => Ok(Response::Replied),
        Request::ClaimName {
            wait: Wait::Never, ..
        } => refuse(ErrorKind::NameTaken),
        Request::ClaimName { .. } => Ok(Response::NameClaimed),
        Request::ReleaseName { .. } => Ok(Response::NameReleased),
        Request::ListNamePage { .. } => Ok(Response::NamePage {
            names: vec![NameInfo {
                name: "svc".into(),
                process: 1,
                pid: 2,
                uid: 3,
                queued_claims: 0,
            }],
            next: None,
        }),
        Request::SetInboxCapacity { .. } => Ok(Response::InboxCapacitySet),
        _ => refuse(ErrorKind::Internal),
    };
    answer(frame, result)
}

#[test]
fn direct_messages_acks_calls_and_names() {
    let (mut client, broker) = connected(direct_acks_calls_names_broker);
    assert_eq!(client.address(), client.connection_id());
    assert_eq!(client.send_to("worker", "hi").expect("sent").sequence, 1);
    assert_eq!(
        client
            .send_to("nobody", "hi")
            .expect_err("no such process")
            .kind(),
        Some(ErrorKind::NoSuchProcess)
    );
    client.try_send_to(7, "hi").expect("sent");
    client
        .send_to_timeout(7, "hi", Duration::from_millis(10))
        .expect("sent");
    let options = SendOptions {
        stage: mailbox_proto::Stage::Acknowledged,
        key: Some("k".into()),
        ttl_millis: None,
    };
    client
        .post(Target::mailbox("jobs"), "x", options.clone(), Wait::Forever)
        .expect("posted");

    assert_eq!(client.try_receive_inbox().expect("no error"), None);
    assert_eq!(client.try_receive_from(7).expect("no error"), None);
    assert_eq!(client.receive_from(7).expect("message").payload, "from one");
    assert_eq!(
        client
            .receive_from_timeout("svc", Duration::from_secs(1))
            .expect("message")
            .metadata
            .sequence,
        2
    );
    let request = client.receive_inbox().expect("message");
    assert_eq!(request.metadata.call(), Some(77));
    client.reply(&request, "answer").expect("replied");
    let not_a_call = client.receive_from(7).expect("message");
    assert_eq!(
        client.reply(&not_a_call, "x").expect_err("no call").kind(),
        Some(ErrorKind::NotHeld)
    );

    let batch = client
        .fetch(
            Source::Mailbox("jobs".into()),
            ReceiveOptions {
                max: Some(3),
                manual_ack: true,
                priority: 5,
            },
            Wait::Forever,
        )
        .expect("batch");
    assert_eq!(batch.len(), 3);
    let held = client.receive_held("jobs", Wait::Forever).expect("held");
    assert_eq!(held.mailbox.as_deref(), Some("jobs"));
    client.ack(&held).expect("acked");
    let held = client.receive_inbox_held(Wait::Forever).expect("held");
    assert_eq!(held.mailbox, None);
    client.nack(&held, true).expect("nacked");

    let reply = client
        .call(Target::process("svc"), "ping", Duration::from_secs(1))
        .expect("reply");
    assert_eq!(reply.payload, "ping");
    client
        .call_with(Target::mailbox("rpc"), "pong", options, Wait::Forever)
        .expect("reply");

    assert_eq!(
        client.claim_name("svc").expect_err("taken").kind(),
        Some(ErrorKind::NameTaken)
    );
    client
        .claim_name_with("svc", Wait::Forever)
        .expect("claimed");
    assert_eq!(client.names().expect("names")[0].name, "svc");
    client.release_name("svc").expect("released");
    client
        .set_inbox_capacity(Capacity::Unbounded)
        .expect("capacity set");

    drop(client);
    let requests: Vec<Request> = broker
        .finish()
        .frames
        .into_iter()
        .map(|frame| frame.request)
        .collect();
    // The refused reply never reached the broker.
    let replies: Vec<&Request> = requests
        .iter()
        .filter(|r| matches!(r, Request::Reply { .. }))
        .collect();
    assert_eq!(
        replies,
        [&Request::Reply {
            call: 77,
            payload: Bytes::from_static(b"answer")
        }]
    );
    let settles: Vec<&Request> = requests
        .iter()
        .filter(|r| matches!(r, Request::Settle { .. }))
        .collect();
    assert_eq!(
        settles,
        [
            &Request::Settle {
                mailbox: Some("jobs".into()),
                sequence: 3,
                verdict: Verdict::Ack,
                redeliveries: Some(0),
            },
            &Request::Settle {
                mailbox: None,
                sequence: 3,
                verdict: Verdict::Nack { to_tail: true },
                redeliveries: Some(0),
            },
        ]
    );
    assert!(requests.contains(&Request::ReceiveWith {
        from: Source::Inbox {
            from: Some(Address::Name("svc".into()))
        },
        options: ReceiveOptions::default(),
        wait: Wait::Timeout { millis: 1000 },
    }));
    assert!(requests.contains(&Request::SetInboxCapacity {
        capacity: Capacity::Unbounded
    }));
}
