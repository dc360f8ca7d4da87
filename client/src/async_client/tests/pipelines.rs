//! Windows of requests in flight: pipelined and streamed sends and
//! receives.

use super::*;

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
