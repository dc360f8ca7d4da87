//! One connection shared by many callers, and its end.

use super::*;

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
