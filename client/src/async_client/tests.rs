//! The async client against a fake broker: concurrency, cancellation and
//! the messages kept from dropped receives, pipelines and streams.

use super::*;
use crate::test_support::{fake_broker, message, messages, sent_many, FakeBroker};
use crate::*;
use mailbox_proto::ClientFrame;
use mailbox_proto::{RequestId, ServerFrame};
use std::future::Future;
use std::time::Duration;

// The tests run on a multi-threaded runtime because they block a thread
// joining the fake broker, which only ends once the client's aborted
// tasks have released the socket (on another worker).

async fn within<T>(future: impl Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(10), future)
        .await
        .expect("test timed out")
}

async fn connected(
    handler: impl FnMut(&ClientFrame) -> Vec<ServerFrame> + Send + 'static,
) -> (Client, FakeBroker) {
    let (ours, theirs) = std::os::unix::net::UnixStream::pair().expect("socket pair");
    let broker = fake_broker(theirs, handler);
    ours.set_nonblocking(true).expect("nonblocking");
    let stream = UnixStream::from_std(ours).expect("tokio stream");
    let client = Client::from_stream(stream).await.expect("handshake");
    (client, broker)
}

fn answer(id: RequestId, result: Result<Response, BrokerError>) -> ServerFrame {
    ServerFrame::Response { id, result }
}

fn cancelled(request: RequestId) -> ServerFrame {
    answer(
        request,
        Err(BrokerError::new(ErrorKind::Cancelled, "cancelled")),
    )
}

#[test]
fn client_is_cheap_to_share() {
    fn shareable<T: Clone + Send + Sync + 'static>() {}
    shareable::<Client>();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_calls_get_their_own_answers_out_of_order() {
    // Receives are held until a send arrives, then all answered at once.
    let mut held = Vec::new();
    let (client, broker) = connected(move |frame| match &frame.request {
        Request::Receive { .. } => {
            held.push(frame.id);
            Vec::new()
        }
        Request::Send { .. } => {
            let mut replies: Vec<ServerFrame> = held
                .drain(..)
                .enumerate()
                .map(|(i, id)| answer(id, Ok(Response::Received(message(i as u64, "m")))))
                .collect();
            replies.push(answer(
                frame.id,
                Ok(Response::Sent {
                    sequence: 1,
                    recipients: 1,
                }),
            ));
            replies
        }
        _ => vec![answer(
            frame.id,
            Ok(Response::MailboxPage {
                mailboxes: Vec::new(),
                next: None,
            }),
        )],
    })
    .await;
    within(async {
        let receivers: Vec<_> = (0..8)
            .map(|_| {
                let client = client.clone();
                tokio::spawn(async move { client.receive("jobs").await })
            })
            .collect();
        // Wait until the broker holds all eight receives.
        while client.connection.shared.lock().session.in_flight() < 8 {
            tokio::task::yield_now().await;
        }
        assert!(client.list().await.expect("listed").is_empty());
        client.send("jobs", "go").await.expect("sent");
        let mut sequences = Vec::new();
        for receiver in receivers {
            let message = receiver.await.expect("task").expect("message");
            sequences.push(message.metadata.sequence);
        }
        sequences.sort_unstable();
        assert_eq!(sequences, (0..8).collect::<Vec<_>>());
    })
    .await;
    drop(client);
    assert_eq!(broker.finish().frames.len(), 10);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_receive_is_cancelled() {
    let (client, broker) = connected(|frame| match &frame.request {
        Request::Receive {
            wait: Wait::Forever,
            ..
        } => Vec::new(),
        Request::Receive { .. } => vec![answer(
            frame.id,
            Err(BrokerError::new(ErrorKind::WouldBlock, "empty")),
        )],
        Request::Cancel { request } => vec![
            cancelled(*request),
            answer(frame.id, Ok(Response::CancelResult { cancelled: true })),
        ],
        _ => vec![answer(
            frame.id,
            Ok(Response::MailboxPage {
                mailboxes: Vec::new(),
                next: None,
            }),
        )],
    })
    .await;
    within(async {
        let gave_up = tokio::time::timeout(Duration::from_millis(50), client.receive("jobs")).await;
        assert!(gave_up.is_err());
        client.list().await.expect("listed");
        assert_eq!(client.try_receive("jobs").await.expect("no error"), None);
    })
    .await;
    drop(client);
    let frames = broker.finish().frames;
    let kinds: Vec<_> = frames
        .iter()
        .map(|frame| match &frame.request {
            Request::Receive { .. } => "receive",
            Request::Cancel { request } if *request == frames[0].id => "cancel",
            _ => "other",
        })
        .collect();
    assert_eq!(kinds, ["receive", "cancel", "other", "receive"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_crossing_the_cancel_goes_to_the_next_receive() {
    // The broker hands the message over just as the cancel arrives.
    let (client, broker) = connected(|frame| match &frame.request {
        Request::Receive { .. } => Vec::new(),
        Request::Cancel { request } => vec![
            answer(*request, Ok(Response::Received(message(1, "kept")))),
            answer(frame.id, Ok(Response::CancelResult { cancelled: false })),
        ],
        _ => vec![answer(
            frame.id,
            Ok(Response::MailboxPage {
                mailboxes: Vec::new(),
                next: None,
            }),
        )],
    })
    .await;
    within(async {
        let gave_up = tokio::time::timeout(Duration::from_millis(50), client.receive("jobs")).await;
        assert!(gave_up.is_err());
        // Answered after the cancel, so the orphan has been routed by now.
        client.list().await.expect("listed");
        let message = client.receive("jobs").await.expect("kept message");
        assert_eq!(message.payload, "kept");
    })
    .await;
    drop(client);
    let frames = broker.finish().frames;
    assert_eq!(
        frames.len(),
        3,
        "the second receive never reached the broker"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_answer_already_in_the_channel_is_kept_when_its_caller_leaves() {
    let (client, _broker) = connected(|_| Vec::new()).await;
    let shared = &client.connection.shared;
    let request = Request::Receive {
        mailbox: "jobs".into(),
        wait: Wait::Forever,
    };
    let Ok(Begun::Waiting(call)) = shared.begin(request) else {
        panic!("expected a waiting call");
    };
    // The reader routes the answer, then the caller drops its future
    // before polling it again.
    let routed = ServerFrame::Response {
        id: call.id,
        result: Ok(Response::Received(message(9, "late"))),
    };
    assert!(shared.deliver(vec![routed]));
    drop(call);
    let kept = within(client.try_receive("jobs")).await.expect("no error");
    assert_eq!(kept.map(|m| m.metadata.sequence), Some(9));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_connection_fails_waiting_and_later_calls() {
    let (client, broker) = connected(|_| Vec::new()).await;
    within(async {
        let waiting = {
            let client = client.clone();
            tokio::spawn(async move { client.receive("jobs").await })
        };
        while client.connection.shared.lock().session.in_flight() < 1 {
            tokio::task::yield_now().await;
        }
        broker.hang_up();
        let error = waiting.await.expect("task").expect_err("should fail");
        assert!(matches!(error, Error::Disconnected), "{error}");
        assert!(matches!(client.list().await, Err(Error::Disconnected)));
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_goodbye_reaches_every_waiting_call() {
    let (client, _broker) = connected(|frame| match &frame.request {
        Request::Status => vec![ServerFrame::Goodbye(BrokerError::new(
            ErrorKind::BrokerShuttingDown,
            "stopping",
        ))],
        _ => Vec::new(),
    })
    .await;
    within(async {
        let waiting = {
            let client = client.clone();
            tokio::spawn(async move { client.receive("jobs").await })
        };
        while client.connection.shared.lock().session.in_flight() < 1 {
            tokio::task::yield_now().await;
        }
        let error = client.status().await.expect_err("should fail");
        assert_eq!(error.kind(), Some(ErrorKind::BrokerShuttingDown));
        let error = waiting.await.expect("task").expect_err("should fail");
        assert_eq!(error.kind(), Some(ErrorKind::BrokerShuttingDown));
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pipelined_sends_and_receives() {
    let mut sequence = 0;
    let (client, broker) = connected(move |frame| {
        sequence += 1;
        let result = match &frame.request {
            Request::Send { .. } => Ok(Response::Sent {
                sequence,
                recipients: 1,
            }),
            _ => Ok(Response::Received(message(sequence, "m"))),
        };
        vec![answer(frame.id, result)]
    })
    .await;
    within(async {
        let payloads = (0..50).map(|i| format!("message {i}"));
        let receipts = client
            .send_pipelined("jobs", payloads, 8, Wait::Forever)
            .await
            .expect("accepted");
        assert_eq!(receipts.len(), 50);
        assert!(receipts.windows(2).all(|w| w[0].sequence < w[1].sequence));
        let mut got = 0;
        let count = client
            .receive_pipelined("jobs", 20, 8, Wait::Forever, |_| got += 1)
            .await
            .expect("received");
        assert_eq!((count, got), (20, 20));
    })
    .await;
    drop(client);
    let log = broker.finish();
    assert_eq!(log.frames.len(), 70);
    assert!(log.largest_batch > 1, "frames are batched per write");
}

fn sequences(messages: &[Message]) -> Vec<u64> {
    messages.iter().map(|m| m.metadata.sequence).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_crossing_the_cancel_is_kept_whole_for_the_next_receives() {
    // The broker hands three messages over just as the cancel arrives.
    let (client, broker) = connected(|frame| match &frame.request {
        Request::ReceiveMany { .. } | Request::Receive { .. } => Vec::new(),
        Request::Cancel { request } => vec![
            answer(*request, Ok(Response::ReceivedMany(messages(1, 3)))),
            answer(frame.id, Ok(Response::CancelResult { cancelled: false })),
        ],
        _ => vec![answer(
            frame.id,
            Ok(Response::MailboxPage {
                mailboxes: Vec::new(),
                next: None,
            }),
        )],
    })
    .await;
    within(async {
        let gave_up =
            tokio::time::timeout(Duration::from_millis(50), client.receive_many("jobs", 10)).await;
        assert!(gave_up.is_err());
        // Answered after the cancel, so the orphans have been routed.
        client.list().await.expect("listed");
        let first = client.receive_many("jobs", 2).await.expect("kept");
        assert_eq!(sequences(&first), vec![1, 2]);
        let last = client.receive("jobs").await.expect("kept");
        assert_eq!(last.metadata.sequence, 3);
    })
    .await;
    drop(client);
    assert_eq!(
        broker.finish().frames.len(),
        3,
        "the later receives never reached the broker"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_already_in_the_channel_is_kept_when_its_caller_leaves() {
    let (client, _broker) = connected(|_| Vec::new()).await;
    let shared = &client.connection.shared;
    let requests = [
        crate::ops::messages::ReceiveMany {
            mailbox: "jobs",
            max: 10,
            wait: Wait::Forever,
        }
        .request(),
        Request::Receive {
            mailbox: "jobs".into(),
            wait: Wait::Forever,
        },
    ];
    let calls: Vec<PendingCall> = requests
        .into_iter()
        .map(|request| match shared.begin(request) {
            Ok(Begun::Waiting(call)) => call,
            _ => panic!("expected a waiting call"),
        })
        .collect();
    // The reader routes both answers, then the callers leave.
    let routed = vec![
        answer(calls[0].id, Ok(Response::ReceivedMany(messages(7, 2)))),
        answer(calls[1].id, Ok(Response::Received(message(9, "m")))),
    ];
    assert!(shared.deliver(routed));
    drop(calls);
    let kept = within(client.try_receive_many("jobs", 10))
        .await
        .expect("no error");
    assert_eq!(sequences(&kept), vec![7, 8, 9]);
    assert!(shared.lock().orphans.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batches_and_streams() {
    let mut next_sent = 1;
    let mut next_received = 1;
    let (client, broker) = connected(move |frame| {
        let result = match &frame.request {
            Request::SendMany {
                payloads,
                wait: Wait::Never,
                ..
            } => Ok(sent_many(
                next_sent,
                payloads.len() / 2,
                Some(BrokerError::new(ErrorKind::WouldBlock, "full")),
            )),
            Request::SendMany { payloads, .. } => {
                next_sent += payloads.len() as u64;
                Ok(sent_many(
                    next_sent - payloads.len() as u64,
                    payloads.len(),
                    None,
                ))
            }
            Request::ReceiveMany {
                wait: Wait::Never, ..
            } => Err(BrokerError::new(ErrorKind::WouldBlock, "empty")),
            Request::ReceiveMany { max, .. } => {
                let count = u64::from(*max).min(3);
                next_received += count;
                Ok(Response::ReceivedMany(messages(
                    next_received - count,
                    count,
                )))
            }
            _ => Err(BrokerError::new(ErrorKind::Internal, "?")),
        };
        vec![answer(frame.id, result)]
    })
    .await;
    within(async {
        let receipt = client.send_many("jobs", ["a", "b"]).await.expect("sent");
        assert_eq!(receipt.sequences(), 1..3);
        let partial = client
            .try_send_many("jobs", ["c", "d", "e", "f"])
            .await
            .expect_err("half sent");
        assert!(
            matches!(partial, Error::Partial { admitted: 2, .. }),
            "{partial}"
        );
        assert!(client
            .try_receive_many("jobs", 4)
            .await
            .expect("empty is no error")
            .is_empty());

        let payloads = (0..500u32).map(|i| Bytes::from(i.to_le_bytes().to_vec()));
        let receipt = client
            .send_stream("jobs", payloads, 32, 4, Wait::Forever)
            .await
            .expect("accepted");
        assert_eq!(receipt.accepted, 500);
        assert_eq!(receipt.batches.len(), 16);
        assert_eq!(receipt.batches[0].first_sequence, 3);

        let mut got = Vec::new();
        let count = client
            .receive_stream("jobs", 20, 8, 3, Wait::Forever, |m| {
                got.push(m.metadata.sequence)
            })
            .await
            .expect("received");
        assert_eq!(count, 20);
        assert_eq!(got, (1..=20).collect::<Vec<_>>());
    })
    .await;
    drop(client);
    let log = broker.finish();
    let streamed: Vec<Bytes> = log
        .frames
        .iter()
        .filter_map(|frame| match &frame.request {
            Request::SendMany {
                payloads,
                wait: Wait::Forever,
                ..
            } if payloads.len() > 2 => Some(payloads.clone()),
            _ => None,
        })
        .flatten()
        .collect();
    let expected: Vec<Bytes> = (0..500u32)
        .map(|i| Bytes::from(i.to_le_bytes().to_vec()))
        .collect();
    assert_eq!(streamed, expected);
    assert!(log.largest_batch > 1, "frames are batched per write");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_streamed_receive_cancels_after_a_failure_and_keeps_raced_messages() {
    let mut receives = 0;
    let mut held = Vec::new();
    let (client, broker) = connected(move |frame| match &frame.request {
        Request::ReceiveMany { .. } => {
            receives += 1;
            match receives {
                1 => vec![answer(frame.id, Ok(Response::ReceivedMany(messages(1, 4))))],
                2 => vec![answer(
                    frame.id,
                    Err(BrokerError::new(ErrorKind::Timeout, "late")),
                )],
                _ => {
                    held.push(frame.id);
                    Vec::new()
                }
            }
        }
        Request::Cancel { request } => {
            let raced = held.first() == Some(request);
            let result = if raced {
                Ok(Response::ReceivedMany(messages(5, 2)))
            } else {
                Err(BrokerError::new(ErrorKind::Cancelled, "cancelled"))
            };
            vec![
                answer(*request, result),
                answer(frame.id, Ok(Response::CancelResult { cancelled: !raced })),
            ]
        }
        _ => Vec::new(),
    })
    .await;
    within(async {
        let mut got = Vec::new();
        let error = client
            .receive_stream("jobs", 100, 4, 4, Wait::Forever, |m| {
                got.push(m.metadata.sequence)
            })
            .await
            .expect_err("should fail");
        assert_eq!(error.kind(), Some(ErrorKind::Timeout));
        assert_eq!(got, vec![1, 2, 3, 4, 5, 6]);
        assert!(client.connection.shared.lock().orphans.is_empty());
    })
    .await;
    drop(client);
    let cancels = broker
        .finish()
        .frames
        .iter()
        .filter(|f| matches!(f.request, Request::Cancel { .. }))
        .count();
    assert!(cancels >= 2, "every outstanding receive was cancelled");
}

/// A message with a call id and a sender of its own.
fn from_sender(sequence: u64, sender: u64) -> Message {
    let mut message = message(sequence, "m");
    message.metadata.sender_connection = sender;
    message
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_held_message_crossing_the_cancel_waits_for_the_next_held_receive() {
    let (client, broker) = connected(|frame| match &frame.request {
        Request::ReceiveWith {
            wait: Wait::Forever,
            ..
        } => Vec::new(),
        Request::Cancel { request } => vec![
            answer(*request, Ok(Response::Received(message(1, "held")))),
            answer(frame.id, Ok(Response::CancelResult { cancelled: false })),
        ],
        Request::Receive { .. } | Request::ReceiveWith { .. } => vec![answer(
            frame.id,
            Err(BrokerError::new(ErrorKind::WouldBlock, "empty")),
        )],
        _ => vec![answer(
            frame.id,
            Ok(Response::MailboxPage {
                mailboxes: Vec::new(),
                next: None,
            }),
        )],
    })
    .await;
    within(async {
        let gave_up = tokio::time::timeout(
            Duration::from_millis(50),
            client.receive_held("jobs", Wait::Forever),
        )
        .await;
        assert!(gave_up.is_err());
        client.list().await.expect("listed");
        // A plain receive does not take a message held for acknowledgement.
        assert_eq!(client.try_receive("jobs").await.expect("no error"), None);
        let held = client
            .receive_held("jobs", Wait::Never)
            .await
            .expect("kept");
        assert_eq!(held.mailbox.as_deref(), Some("jobs"));
        assert_eq!(held.message.payload, "held");
    })
    .await;
    drop(client);
    let frames = broker.finish().frames;
    assert_eq!(frames.len(), 4, "the last receive never reached the broker");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kept_inbox_messages_go_to_inbox_receives_by_sender() {
    let (client, broker) = connected(|frame| match &frame.request {
        Request::ReceiveWith {
            wait: Wait::Forever,
            options: ReceiveOptions { max: Some(_), .. },
            ..
        } => Vec::new(),
        Request::Cancel { request } => vec![
            answer(
                *request,
                Ok(Response::ReceivedMany(vec![
                    from_sender(1, 40),
                    from_sender(2, 41),
                    from_sender(3, 40),
                ])),
            ),
            answer(frame.id, Ok(Response::CancelResult { cancelled: false })),
        ],
        Request::ReceiveWith { .. } | Request::Receive { .. } => vec![answer(
            frame.id,
            Err(BrokerError::new(ErrorKind::WouldBlock, "empty")),
        )],
        _ => vec![answer(
            frame.id,
            Ok(Response::MailboxPage {
                mailboxes: Vec::new(),
                next: None,
            }),
        )],
    })
    .await;
    within(async {
        let batch = ReceiveOptions {
            max: Some(10),
            ..ReceiveOptions::default()
        };
        let gave_up = tokio::time::timeout(
            Duration::from_millis(50),
            client.fetch(Source::Inbox { from: None }, batch, Wait::Forever),
        )
        .await;
        assert!(gave_up.is_err());
        client.list().await.expect("listed");
        // Not for a mailbox's receives, nor for a sender known by name.
        assert_eq!(client.try_receive("jobs").await.expect("no error"), None);
        assert_eq!(
            client.try_receive_from("svc").await.expect("no error"),
            None
        );
        let from_41 = client.try_receive_from(41).await.expect("no error");
        assert_eq!(from_41.map(|m| m.metadata.sequence), Some(2));
        assert_eq!(
            client
                .receive_inbox()
                .await
                .expect("kept")
                .metadata
                .sequence,
            1
        );
        assert_eq!(
            client
                .receive_from(40)
                .await
                .expect("kept")
                .metadata
                .sequence,
            3
        );
        assert!(client.connection.shared.lock().orphans.is_empty());
    })
    .await;
    drop(client);
    assert_eq!(
        broker.finish().frames.len(),
        5,
        "fetch, cancel, list, the mailbox's and the named sender's receives"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_name_granted_as_its_claim_is_dropped_is_released_again() {
    let (client, broker) = connected(|frame| match &frame.request {
        Request::ClaimName { .. } => Vec::new(),
        Request::Cancel { request } => vec![
            answer(*request, Ok(Response::NameClaimed)),
            answer(frame.id, Ok(Response::CancelResult { cancelled: false })),
        ],
        Request::ReleaseName { .. } => vec![answer(frame.id, Ok(Response::NameReleased))],
        _ => vec![answer(
            frame.id,
            Ok(Response::MailboxPage {
                mailboxes: Vec::new(),
                next: None,
            }),
        )],
    })
    .await;
    within(async {
        let gave_up = tokio::time::timeout(
            Duration::from_millis(50),
            client.claim_name_with("svc", Wait::Forever),
        )
        .await;
        assert!(gave_up.is_err());
        // Answered after the crossing grant, so the release is queued.
        client.list().await.expect("listed");
        while client.connection.shared.lock().session.in_flight() > 0 {
            tokio::task::yield_now().await;
        }
    })
    .await;
    drop(client);
    let frames = broker.finish().frames;
    assert!(
        frames
            .iter()
            .any(|frame| frame.request == Request::ReleaseName { name: "svc".into() }),
        "{frames:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_calls_wait_on_one_connection_and_get_their_own_replies() {
    // The broker holds three calls, then replies in reverse order.
    let mut held: Vec<(RequestId, Bytes)> = Vec::new();
    let (client, _broker) = connected(move |frame| match &frame.request {
        Request::Call { payload, .. } => {
            held.push((frame.id, payload.clone()));
            if held.len() < 3 {
                return Vec::new();
            }
            held.drain(..)
                .rev()
                .map(|(id, payload)| {
                    let mut reply = message(id, "");
                    reply.payload = payload;
                    answer(id, Ok(Response::Received(reply)))
                })
                .collect()
        }
        _ => Vec::new(),
    })
    .await;
    within(async {
        let calls: Vec<_> = ["a", "b", "c"]
            .into_iter()
            .map(|payload| {
                let client = client.clone();
                tokio::spawn(async move {
                    client
                        .call(Target::process("svc"), payload, Duration::from_secs(5))
                        .await
                })
            })
            .collect();
        for (call, payload) in calls.into_iter().zip(["a", "b", "c"]) {
            let reply = call.await.expect("task").expect("reply");
            assert_eq!(reply.payload, payload);
        }
    })
    .await;
}
