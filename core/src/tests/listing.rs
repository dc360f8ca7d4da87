//! Listings in pages (`listing.rs`): every mailbox and name exactly once,
//! in order, each page within its byte bound, whatever the name lengths;
//! and the one-frame listings refusing, by name of the paged request, a
//! list too long for a frame instead of building one.

use mailbox_proto::{
    codec, ClientFrame, ErrorKind, MailboxSettings, Request, Response, ServerFrame, Wait,
    MAX_LIST_BYTES, MAX_PAGE_BYTES,
};

use super::{ConnectionId, Harness, Limits, Outcome, Reply};
use crate::listing::{MAX_PAGE_ROWS, MAX_PAGE_SCAN};

const C1: ConnectionId = ConnectionId(1);
const C2: ConnectionId = ConnectionId(2);

/// A 255-byte name ending in `n` (so that names sort by `n`).
fn long_name(n: usize) -> String {
    let tail = format!("{n:08}");
    format!("{}{tail}", "m".repeat(255 - tail.len()))
}

/// Applies `request` without the harness's per-step invariant check (which
/// looks at every mailbox: quadratic over tens of thousands of creates).
fn apply(harness: &mut Harness, connection: ConnectionId, request: Request) -> Vec<Reply> {
    let clock = harness.clock();
    let mut out = Outcome::new();
    harness.core.apply(connection, 1, request, &clock, &mut out);
    out.replies
}

fn create(
    harness: &mut Harness,
    connection: ConnectionId,
    name: String,
    settings: &MailboxSettings,
) {
    let replies = apply(
        harness,
        connection,
        Request::CreateMailbox {
            name,
            settings: Box::new(settings.clone()),
        },
    );
    assert!(
        matches!(
            replies[..],
            [Reply {
                result: Ok(Response::Created { created: true }),
                ..
            }]
        ),
        "{replies:?}"
    );
}

/// The mailbox page answered to `request`, checking that its frame fits
/// the page bound.
fn mailbox_page(
    harness: &mut Harness,
    connection: ConnectionId,
    after: Option<String>,
    max: u32,
) -> (Vec<String>, Option<String>) {
    let mut replies = apply(harness, connection, Request::ListMailboxPage { after, max });
    let reply = replies.pop().expect("one reply");
    let frame = ServerFrame::Response {
        id: 1,
        result: reply.result.clone(),
    };
    let len = codec::encoded_len(&frame);
    assert!(len <= MAX_PAGE_BYTES + 1024, "a page of {len} bytes");
    match reply.result {
        Ok(Response::MailboxPage { mailboxes, next }) => {
            (mailboxes.into_iter().map(|info| info.name).collect(), next)
        }
        other => panic!("not a page: {other:?}"),
    }
}

#[test]
fn many_long_named_mailboxes_come_in_pages_that_fit_and_the_old_list_refuses() {
    let mut harness = Harness::with_connections(Limits::default());
    // Each row is over 500 bytes: a 255-byte name and dead letter.
    let settings = MailboxSettings {
        dead_letter: Some("d".repeat(255)),
        ..MailboxSettings::default()
    };
    let count = MAX_LIST_BYTES / 500 + 100;
    // Created out of order: the pages are in name order anyway.
    for n in (0..count).rev() {
        create(&mut harness, C1, long_name(n), &settings);
    }
    harness.core.check_invariants();

    let mut seen = Vec::new();
    let mut after = None;
    let mut pages = 0;
    loop {
        let (names, next) = mailbox_page(&mut harness, C1, after.take(), u32::MAX);
        assert!(
            !names.is_empty(),
            "a page of a visible listing is never empty"
        );
        assert!(names.len() <= MAX_PAGE_ROWS);
        seen.extend(names);
        pages += 1;
        match next {
            Some(next) => {
                assert_eq!(
                    seen.last(),
                    Some(&next),
                    "the cursor is the page's last name"
                );
                after = Some(next);
            }
            None => break,
        }
    }
    let expected: Vec<String> = (0..count).map(long_name).collect();
    assert_eq!(seen.len(), expected.len());
    assert!(seen == expected, "every mailbox once, in order");
    assert!(pages > 1);

    // A page honours a small max, and resumes after any name.
    let (names, next) = mailbox_page(&mut harness, C1, Some(long_name(41)), 3);
    assert_eq!(names, vec![long_name(42), long_name(43), long_name(44)]);
    assert_eq!(next, Some(long_name(44)));
    let (names, _) = mailbox_page(&mut harness, C1, None, 0);
    assert_eq!(names, vec![long_name(0)], "max 0 is taken as 1");

    // The one-frame listing says to use the paged request; it does not
    // build a frame no client could read.
    let replies = apply(&mut harness, C1, Request::ListMailboxes);
    let error = replies[0].result.clone().expect_err("too long for a frame");
    assert_eq!(error.kind, ErrorKind::InvalidRequest);
    assert!(
        error.message.contains("ListMailboxPage"),
        "{}",
        error.message
    );
}

#[test]
fn a_caller_who_sees_few_of_many_mailboxes_gets_bounded_pages_that_reach_the_end() {
    let mut harness = Harness::with_connections(Limits::default());
    // Only c1's own mailboxes are visible to it; c2's are closed to others.
    harness
        .core
        .set_access_policy(crate::AccessPolicy::default());
    let settings = MailboxSettings::default();
    let hidden = MAX_PAGE_SCAN * 2 + 10;
    for n in 0..hidden {
        create(&mut harness, C2, format!("b{n:08}"), &settings);
    }
    create(&mut harness, C1, "a".into(), &settings);
    create(&mut harness, C1, "c".into(), &settings);
    let mut seen = Vec::new();
    let mut after = None;
    let mut pages = 0;
    loop {
        let (names, next) = mailbox_page(&mut harness, C1, after.take(), 100);
        seen.extend(names);
        pages += 1;
        match next {
            Some(next) => after = Some(next),
            None => break,
        }
    }
    assert_eq!(seen, vec!["a".to_owned(), "c".to_owned()]);
    assert!(
        pages >= 3,
        "each page looks at a bounded number of mailboxes"
    );
    // The one-frame listing of the same still works: it fits.
    let replies = apply(&mut harness, C1, Request::ListMailboxes);
    match &replies[0].result {
        Ok(Response::Mailboxes(list)) => assert_eq!(list.len(), 2),
        other => panic!("{other:?}"),
    }
}

#[test]
fn claimed_names_come_in_pages_too() {
    let mut harness = Harness::with_connections(Limits::default());
    let count = 300;
    // A connection holds at most `MAX_NAMES_PER_CONNECTION` names: 30 each.
    let holder = |n: usize| ConnectionId(10 + n as u64 / 30);
    for n in (0..count).step_by(30) {
        harness.connect(holder(n));
    }
    for n in 0..count {
        let replies = apply(
            &mut harness,
            holder(n),
            Request::ClaimName {
                name: format!("svc.{n:04}"),
                wait: Wait::Never,
            },
        );
        assert!(
            matches!(replies[0].result, Ok(Response::NameClaimed)),
            "{replies:?}"
        );
    }
    let mut seen = Vec::new();
    let mut after = None;
    loop {
        let mut replies = apply(
            &mut harness,
            C2,
            Request::ListNamePage {
                after: after.take(),
                max: 7,
            },
        );
        let Ok(Response::NamePage { names, next }) = replies.pop().expect("reply").result else {
            panic!("not a name page");
        };
        assert!(names.len() <= 7);
        for info in names {
            let n: usize = info.name["svc.".len()..].parse().expect("a number");
            assert_eq!(ConnectionId(info.process), holder(n));
            seen.push(info.name);
        }
        match next {
            Some(next) => after = Some(next),
            None => break,
        }
    }
    let expected: Vec<String> = (0..count).map(|n| format!("svc.{n:04}")).collect();
    assert_eq!(seen, expected);
    // Frames of pages decode as client frames do not: this is a server
    // frame, and a client frame of the request round-trips.
    let frame = ClientFrame {
        id: 9,
        request: Request::ListNamePage {
            after: Some("x".into()),
            max: 5,
        },
    };
    let mut buffer = Vec::new();
    codec::encode_frame(&frame, &mut buffer, codec::DEFAULT_MAX_FRAME_LEN).expect("encode");
    let mut bytes = bytes::BytesMut::from(&buffer[..]);
    let back: ClientFrame = codec::decode_frame(&mut bytes, codec::DEFAULT_MAX_FRAME_LEN)
        .expect("decode")
        .expect("whole");
    assert_eq!(back, frame);
}
