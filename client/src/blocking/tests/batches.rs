//! Batch sends and receives in one request each.

use super::*;

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
