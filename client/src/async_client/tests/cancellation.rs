//! Dropped futures: the cancel of their request, and what crosses it
//! (messages kept for the next receives, a granted name released).

use super::*;

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
    assert!(shared.deliver(vec![(routed, Vec::new())]));
    drop(call);
    let kept = within(client.try_receive("jobs")).await.expect("no error");
    assert_eq!(kept.map(|m| m.metadata.sequence), Some(9));
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
        (
            answer(calls[0].id, Ok(Response::ReceivedMany(messages(7, 2)))),
            Vec::new(),
        ),
        (
            answer(calls[1].id, Ok(Response::Received(message(9, "m")))),
            Vec::new(),
        ),
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
