//! One request, one answer: listings, sends and receives, direct
//! messages, acknowledgements, calls and names.

use super::*;

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
