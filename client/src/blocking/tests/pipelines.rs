//! Windows of requests in flight: pipelined and streamed sends and
//! receives.

use super::*;

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
