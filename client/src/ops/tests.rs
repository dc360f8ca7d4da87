//! The operations' requests and the decoding of their answers, without a
//! connection.

use std::time::Duration;

use bytes::{Bytes, BytesMut};
use mailbox_proto::fixtures::message;
use mailbox_proto::{
    codec, Address, BrokerError, Capacity, ClientFrame, ErrorKind, MailboxSettings, Message,
    NameInfo, ReceiveOptions, Request, Response, SendOptions, Source, Target, Verdict, Wait,
    PROTOCOL_VERSION,
};

use super::acknowledgements::{Held, ReceiveHeld, Settle};
use super::calls::{Call, Reply};
use super::inbox::{ReceiveInbox, SetInboxCapacity};
use super::mailboxes::{Create, MailboxPage, Open};
use super::messages::{
    received_many as decode_received_many, sent, BatchReceipt, Fetch, Peek, Post, Receive,
    ReceiveMany, SendMany, SendReceipt,
};
use super::names::{ClaimName, NamePage, ReleaseName};
use super::pages::{follow_page, Listing, Page, Pages, PAGE_ROWS};
use super::*;
use crate::session::Session;
use crate::test_support::{batch_answer, broker_error, received_many, welcome};

const MAX: u32 = codec::DEFAULT_MAX_FRAME_LEN;

// The decoding of one answer by each operation, as the tests below ask.

fn decode<O: Operation>(operation: O, response: Response) -> Result<O::Output, Error> {
    operation.decode(Ok(response))
}

fn expect_sent(response: Response) -> Result<SendReceipt, Error> {
    sent(Ok(response))
}

fn expect_created(response: Response) -> Result<bool, Error> {
    let create = Create {
        name: "m",
        settings: MailboxSettings::default(),
        mode: None,
        group: None,
    };
    decode(create, response)
}

fn optional_message(answer: Result<Response, Error>) -> Result<Option<Message>, Error> {
    Optional(Receive {
        mailbox: "m",
        wait: Wait::Never,
    })
    .decode(answer)
}

fn expect_sent_many(response: Response, requested: usize) -> Result<BatchReceipt, Error> {
    let payloads = (0..requested).map(|_| Bytes::new());
    decode(SendMany::new("m", payloads, Wait::Forever), response)
}

fn expect_received_many(response: Response, max: u32) -> Result<Vec<Message>, Error> {
    decode_received_many(Ok(response), max)
}

fn receive_many_request(mailbox: &str, max: u32, wait: Wait) -> Request {
    ReceiveMany { mailbox, max, wait }.request()
}

fn optional_messages(answer: Result<Response, Error>, max: u32) -> Result<Vec<Message>, Error> {
    OrEmpty(ReceiveMany {
        mailbox: "m",
        max,
        wait: Wait::Never,
    })
    .decode(answer)
}

fn settle_request(held: &Held, verdict: Verdict) -> Request {
    Settle { held, verdict }.request()
}

fn reply_request(request: &Message, payload: Bytes) -> Result<Request, Error> {
    Reply::to(request, payload).map(|mut reply| reply.request())
}

fn fetch_request(source: Source, options: ReceiveOptions, wait: Wait) -> Request {
    Fetch::new(source, options, wait).request()
}

fn expect_fetched(response: Response, max: Option<u32>) -> Result<Vec<Message>, Error> {
    let options = ReceiveOptions {
        max,
        ..ReceiveOptions::default()
    };
    decode(
        Fetch::new(Source::Inbox { from: None }, options, Wait::Never),
        response,
    )
}

fn expect_held(response: Response, source: &Source) -> Result<Held, Error> {
    let receive = match source {
        Source::Mailbox(mailbox) => ReceiveHeld::mailbox(mailbox, Wait::Never),
        Source::Inbox { .. } => ReceiveHeld::inbox(Wait::Never),
    };
    decode(receive, response)
}

fn expect_settled(response: Response) -> Result<(), Error> {
    let held = Held::from_source(&Source::Inbox { from: None }, message(1, "x"));
    decode(
        Settle {
            held: &held,
            verdict: Verdict::Ack,
        },
        response,
    )
}

fn expect_replied(response: Response) -> Result<(), Error> {
    let reply = Reply::to(&call_message(Some(1)), Bytes::new()).expect("a call");
    decode(reply, response)
}

fn expect_name_claimed(response: Response) -> Result<(), Error> {
    let claim = ClaimName {
        name: "svc",
        wait: Wait::Never,
    };
    decode(claim, response)
}

fn expect_name_released(response: Response) -> Result<(), Error> {
    decode(ReleaseName("svc"), response)
}

fn expect_inbox_capacity_set(response: Response) -> Result<(), Error> {
    decode(SetInboxCapacity(Capacity::Unbounded), response)
}

fn expect_name_page(response: Response) -> Result<Page<NameInfo>, Error> {
    decode(NamePage::new(None, 10), response)
}

fn expect_mailbox_page(response: Response) -> Result<Page<mailbox_proto::MailboxInfo>, Error> {
    decode(MailboxPage::new(None, 10), response)
}

#[test]
fn answers_become_typed_results() {
    assert_eq!(
        expect_sent(Response::Sent {
            sequence: 3,
            recipients: 0
        })
        .expect("sent"),
        SendReceipt {
            sequence: 3,
            recipients: 0
        }
    );
    assert!(matches!(
        expect_sent(Response::Deleted),
        Err(Error::Protocol(_))
    ));
    assert!(expect_created(Response::Created { created: true }).expect("created"));
    let refused = into_result(Err(BrokerError::new(ErrorKind::NoSuchMailbox, "x")));
    assert_eq!(
        refused.expect_err("should fail").kind(),
        Some(ErrorKind::NoSuchMailbox)
    );
}

#[test]
fn opening_a_mailbox_names_it_and_how_long_to_wait_for_it_and_nothing_else() {
    let open = |wait| Open { name: "jobs", wait };
    for wait in [Wait::Never, Wait::Forever, Wait::Timeout { millis: 1500 }] {
        assert_eq!(
            open(wait).request(),
            Request::OpenMailbox {
                name: "jobs".to_owned(),
                wait
            }
        );
        assert_eq!(
            wait_of(&open(wait).request()),
            Some(wait),
            "timed like a receive"
        );
    }
    let info = mailbox_proto::MailboxInfo {
        name: "jobs".to_owned(),
        owner_uid: 1000,
        mode: 0o764,
        ..Default::default()
    };
    assert_eq!(
        decode(open(Wait::Never), Response::Info(Box::new(info.clone()))).expect("opened"),
        info
    );
    for kind in [
        ErrorKind::NoSuchMailbox,
        ErrorKind::PermissionDenied,
        ErrorKind::Timeout,
    ] {
        let refused = open(Wait::Never).decode(Err(broker_error(kind)));
        assert_eq!(refused.expect_err("refused").kind(), Some(kind));
    }
    assert!(matches!(
        decode(open(Wait::Never), Response::Created { created: true }),
        Err(Error::Protocol(_))
    ));
}

#[test]
fn an_empty_mailbox_is_no_message_but_other_errors_stay() {
    assert_eq!(
        optional_message(Err(broker_error(ErrorKind::WouldBlock))).expect("ok"),
        None
    );
    assert!(optional_message(Err(broker_error(ErrorKind::Timeout))).is_err());
    assert_eq!(
        optional_message(Ok(Response::Received(message(1, "x")))).expect("ok"),
        Some(message(1, "x"))
    );
}

#[test]
fn timeouts_round_up_to_whole_milliseconds() {
    assert_eq!(wait_at_most(Duration::ZERO), Wait::Timeout { millis: 0 });
    assert_eq!(
        wait_at_most(Duration::from_nanos(2_000_001)),
        Wait::Timeout { millis: 3 }
    );
    assert_eq!(
        wait_at_most(Duration::MAX),
        Wait::Timeout { millis: u64::MAX }
    );
}

#[test]
fn a_batch_is_all_sent_partly_sent_or_not_sent() {
    let all = expect_sent_many(batch_answer(3, None), 3).expect("all sent");
    assert_eq!(
        all,
        BatchReceipt {
            first_sequence: 10,
            admitted: 3,
            recipients: 1
        }
    );
    assert_eq!(all.sequences(), 10..13);

    let partial =
        expect_sent_many(batch_answer(2, Some(ErrorKind::Timeout)), 3).expect_err("only some sent");
    assert!(
        matches!(
            partial,
            Error::Partial {
                admitted: 2,
                first_sequence: 10,
                ..
            }
        ),
        "{partial}"
    );
    assert_eq!(partial.kind(), Some(ErrorKind::Timeout));
    assert_eq!(partial.admitted(), 2);
    assert!(partial.is_broker_answer());
    assert!(partial.to_string().contains("#10 to #11"), "{partial}");

    // Nothing admitted is the plain error a single send would give.
    let none =
        expect_sent_many(batch_answer(0, Some(ErrorKind::WouldBlock)), 3).expect_err("none sent");
    assert!(matches!(none, Error::Broker(_)), "{none}");
    assert_eq!(none.kind(), Some(ErrorKind::WouldBlock));
    assert_eq!(none.admitted(), 0);
}

#[test]
fn a_batch_answer_that_does_not_add_up_is_a_protocol_error() {
    for (response, requested) in [
        (batch_answer(2, None), 3),
        (batch_answer(3, Some(ErrorKind::Timeout)), 3),
        (batch_answer(4, None), 3),
        (Response::Deleted, 3),
    ] {
        let error = expect_sent_many(response, requested).expect_err("inconsistent");
        assert!(matches!(error, Error::Protocol(_)), "{error}");
    }
}

#[test]
fn received_batches_hold_one_to_max_messages() {
    let messages = expect_received_many(received_many(1..=3).expect("ok"), 3).expect("three");
    assert_eq!(messages.len(), 3);
    for (result, max) in [
        (Ok(Response::ReceivedMany(Vec::new())), 3),
        (received_many(1..=4), 3),
    ] {
        let error = expect_received_many(result.expect("ok"), max).expect_err("bad count");
        assert!(matches!(error, Error::Protocol(_)), "{error}");
    }
    // 0 counts as 1, as the broker counts it.
    assert_eq!(
        receive_many_request("m", 0, Wait::Never),
        Request::ReceiveMany {
            mailbox: "m".into(),
            max: 1,
            wait: Wait::Never
        }
    );
    assert!(
        optional_messages(Err(broker_error(ErrorKind::WouldBlock)), 5)
            .expect("empty is no error")
            .is_empty()
    );
    assert!(optional_messages(Err(broker_error(ErrorKind::Timeout)), 5).is_err());
}

fn call_message(call: Option<u64>) -> Message {
    let mut message = message(5, "request");
    message.metadata.details = call.map(|call| {
        Box::new(mailbox_proto::Details {
            call: Some(call),
            ..Default::default()
        })
    });
    message
}

#[test]
fn operations_encode_their_requests_as_client_frames() {
    let held = Held::from_source(&Source::Inbox { from: None }, message(3, "x"));
    let requests = vec![
        Post::to_process(
            Address::from("worker"),
            Bytes::from_static(b"hi"),
            Wait::Never,
        )
        .request(),
        Post {
            to: Target::mailbox("jobs"),
            payload: Bytes::from_static(b"hi"),
            options: SendOptions {
                stage: mailbox_proto::Stage::Acknowledged,
                key: Some("k".into()),
                ttl_millis: Some(1000),
            },
            wait: Wait::Timeout { millis: 5 },
        }
        .request(),
        ReceiveInbox {
            from: Some(Address::Process(9)),
            wait: Wait::Forever,
        }
        .request(),
        ReceiveHeld::mailbox("jobs", Wait::Never).request(),
        settle_request(&held, Verdict::Nack { to_tail: true }),
        Call {
            to: Target::process(4),
            payload: Bytes::from_static(b"?"),
            options: SendOptions::default(),
            wait: Wait::Forever,
        }
        .request(),
        reply_request(&call_message(Some(77)), Bytes::from_static(b"!")).expect("a call"),
        ClaimName {
            name: "svc",
            wait: Wait::Never,
        }
        .request(),
        ReleaseName("svc").request(),
        Request::ListNames,
        SetInboxCapacity(Capacity::Bounded(8)).request(),
    ];
    let mut session = Session::new(&welcome(PROTOCOL_VERSION));
    let mut out = BytesMut::new();
    for request in &requests {
        session
            .start(request.clone(), (), &mut out)
            .expect("encodes");
    }
    let decoded: Vec<Request> = std::iter::from_fn(|| {
        mailbox_proto::decode_frame::<ClientFrame>(&mut out, MAX).expect("valid")
    })
    .map(|frame| frame.request)
    .collect();
    assert_eq!(decoded, requests);
    // Spot checks of what the helpers build.
    assert_eq!(
        decoded[0],
        Request::SendWith {
            to: Target::Process(Address::Name("worker".into())),
            payload: Bytes::from_static(b"hi"),
            options: Box::default(),
            wait: Wait::Never,
        }
    );
    assert_eq!(
        decoded[3],
        Request::ReceiveWith {
            from: Source::Mailbox("jobs".into()),
            options: ReceiveOptions {
                max: None,
                manual_ack: true,
                priority: 0
            },
            wait: Wait::Never,
        }
    );
    assert_eq!(
        decoded[4],
        Request::Settle {
            mailbox: None,
            sequence: 3,
            verdict: Verdict::Nack { to_tail: true },
            redeliveries: Some(0),
        }
    );
    assert_eq!(
        decoded[6],
        Request::Reply {
            call: 77,
            payload: Bytes::from_static(b"!")
        }
    );
}

#[test]
fn a_reply_to_a_message_that_is_no_call_is_refused_here() {
    let error = reply_request(&call_message(None), Bytes::new()).expect_err("no call");
    assert_eq!(error.kind(), Some(ErrorKind::NotHeld));
    assert!(error.is_broker_answer(), "the connection stays usable");
    assert!(error.to_string().contains("is not a call"), "{error}");
}

#[test]
fn a_batch_of_zero_counts_as_one() {
    let request = fetch_request(
        Source::Inbox { from: None },
        ReceiveOptions {
            max: Some(0),
            ..ReceiveOptions::default()
        },
        Wait::Forever,
    );
    assert!(matches!(
        request,
        Request::ReceiveWith {
            options: ReceiveOptions { max: Some(1), .. },
            ..
        }
    ));
}

#[test]
fn settle_reply_name_and_inbox_answers_become_typed_results() {
    expect_settled(Response::Settled).expect("settled");
    expect_replied(Response::Replied).expect("replied");
    expect_name_claimed(Response::NameClaimed).expect("claimed");
    expect_name_released(Response::NameReleased).expect("released");
    expect_inbox_capacity_set(Response::InboxCapacitySet).expect("set");
    let names = vec![NameInfo {
        name: "svc".into(),
        process: 3,
        pid: 10,
        uid: 20,
        queued_claims: 0,
    }];
    let page = expect_name_page(Response::NamePage {
        names: names.clone(),
        next: Some("svc".into()),
    })
    .expect("names");
    assert_eq!(page.items, names);
    assert_eq!(page.next.as_deref(), Some("svc"));
    // A cursor that does not move on is refused, not followed forever.
    let mut all = Vec::new();
    let stuck = (Vec::<NameInfo>::new(), Some("a".to_owned()));
    assert!(follow_page(&mut all, Some(&"b".to_owned()), stuck).is_err());
    // Sequence numbers may go down (delivery order), but not stand still.
    let mut messages = Vec::<Message>::new();
    assert_eq!(
        follow_page(&mut messages, Some(&9), (Vec::new(), Some(3))).ok(),
        Some(Some(3))
    );
    assert!(follow_page(&mut messages, Some(&3), (Vec::new(), Some(3))).is_err());
    // Each refuses the others' answers as a protocol error.
    for error in [
        expect_settled(Response::Replied).expect_err("wrong"),
        expect_replied(Response::Settled).expect_err("wrong"),
        expect_name_claimed(Response::NameReleased).expect_err("wrong"),
        expect_name_released(Response::NameClaimed).expect_err("wrong"),
        expect_name_page(Response::InboxCapacitySet).expect_err("wrong"),
        expect_mailbox_page(Response::Names(Vec::new())).expect_err("wrong"),
        expect_inbox_capacity_set(Response::Names(Vec::new())).expect_err("wrong"),
    ] {
        assert!(matches!(error, Error::Protocol(_)), "{error}");
    }
    let error = expect_settled(Response::Names(Vec::new())).expect_err("wrong");
    assert!(
        error.to_string().contains("answered Names where Settled"),
        "{error}"
    );
    // Errors of the new kinds stay typed.
    for kind in [
        ErrorKind::NoSuchProcess,
        ErrorKind::NameTaken,
        ErrorKind::NoReply,
        ErrorKind::NotHeld,
        ErrorKind::TimeoutInFlight,
        ErrorKind::Expired,
        ErrorKind::DeadLettered,
        ErrorKind::CallEnded,
        ErrorKind::InvalidRequest,
    ] {
        let error = into_result(Err(BrokerError::new(kind, "x"))).expect_err("refused");
        assert_eq!(error.kind(), Some(kind));
    }
}

#[test]
fn general_receives_expect_one_message_or_a_batch() {
    assert_eq!(
        expect_fetched(Response::Received(message(1, "a")), None).expect("one"),
        vec![message(1, "a")]
    );
    let batch = expect_fetched(received_many(1..=2).expect("ok"), Some(2)).expect("two");
    assert_eq!(batch.len(), 2);
    for (response, max) in [
        (Response::ReceivedMany(vec![message(1, "a")]), None),
        (Response::Received(message(1, "a")), Some(2)),
        (received_many(1..=3).expect("ok"), Some(2)),
    ] {
        let error = expect_fetched(response, max).expect_err("wrong shape");
        assert!(matches!(error, Error::Protocol(_)), "{error}");
    }
    let held = expect_held(
        Response::Received(message(4, "job")),
        &Source::Mailbox("jobs".into()),
    )
    .expect("held");
    assert_eq!(held.mailbox.as_deref(), Some("jobs"));
    assert_eq!(
        settle_request(&held, Verdict::Ack),
        Request::Settle {
            mailbox: Some("jobs".into()),
            sequence: 4,
            verdict: Verdict::Ack,
            redeliveries: Some(0),
        }
    );
}

#[test]
fn a_peek_asks_for_its_page_and_walks_on_from_next() {
    let mut peek = Peek::new(Source::Mailbox("jobs".into()), Some(4), 10);
    assert_eq!(
        peek.request(),
        Request::Peek {
            from: Source::Mailbox("jobs".into()),
            after: Some(4),
            max: 10,
        }
    );
    let page = decode(
        Peek::page("jobs", None),
        Response::Peeked {
            messages: vec![message(5, "a")],
            next: Some(5),
            in_flight: 2,
        },
    )
    .expect("a page");
    assert_eq!(page.messages, vec![message(5, "a")]);
    assert_eq!((page.next, page.in_flight), (Some(5), 2));
    let mut walk = Pages::new(|after| Peek::page("jobs", after));
    walk.record(page).expect("moves on");
    let mut next = walk.next().expect("a next page");
    assert!(matches!(
        next.request(),
        Request::Peek {
            after: Some(5),
            max: PAGE_ROWS,
            ..
        }
    ));
    let wrong = decode(Peek::page("jobs", None), Response::Settled).expect_err("wrong");
    assert!(matches!(wrong, Error::Protocol(_)), "{wrong}");
}
