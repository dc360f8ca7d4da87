//! Opening a mailbox by name (`OpenMailbox`): `MailboxInfo` for one that
//! exists; for one that does not, a wait for its creation, answered in the
//! step that creates it (a client's create or the configuration's
//! declaration) with the rights of that moment, or ended by its timeout, a
//! cancel, a disconnect, shutdown or the per-connection limit.

use super::access_and_limits::harness;
use super::*;
use crate::{AccessPolicy, Permissions};

/// What `info` of a new mailbox shows in a script.
const EMPTY: &str =
    "info queued=0 bytes=0 senders=0 receivers=0 subscribers=0 accepted=0 delivered=0";

#[test]
fn an_open_answers_at_once_for_a_mailbox_that_exists_or_may_not_wait() {
    check(
        "
        c1#1 open jobs never            => c1#1 NoSuchMailbox
        c1#2 open jobs t=0              => c1#2 Timeout
        c1#3 open a:b                   => c1#3 InvalidName
        c2#1 create jobs                => c2#1 created
        c2#2 send jobs hi               => c2#2 sent 1 to 1
        c1#4 open jobs never            => c1#4 info queued=1 bytes=2 senders=0 receivers=0 subscribers=0 accepted=1 delivered=0
        c1#5 open jobs                  => c1#5 info queued=1 bytes=2 senders=0 receivers=0 subscribers=0 accepted=1 delivered=0
        c1#6 list                       => c1#6 list jobs
        ",
    );
}

#[test]
fn waiting_opens_are_answered_when_their_mailbox_is_created_and_no_sooner() {
    check(&format!(
        "
        c1#1 open jobs                  =>
        c2#1 open jobs t=5000           =>
        c3#1 open news                  =>
        c4#1 create other               => c4#1 created
        c4#2 create jobs cap=2          => c4#2 created; c1#1 {EMPTY}; c2#1 {EMPTY}
        advance 5000 =>
        expire                          =>
        c4#3 delete jobs                => c4#3 deleted
        c4#4 create jobs                => c4#4 created
        c3#2 cancel 1                   => c3#1 Cancelled; c3#2 cancelled true
        c4#5 create news                => c4#5 created
        "
    ));
}

#[test]
fn a_waiting_open_ends_with_its_timeout_its_connection_or_the_broker() {
    check(
        "
        c1#1 open jobs t=50             =>
        c2#1 open jobs                  =>
        advance 50 =>
        expire                          => c1#1 Timeout
        disconnect c2                   =>
        c4#1 create jobs                => c4#1 created
        c3#1 open news                  =>
        shutdown                        => c3#1 BrokerShuttingDown
        ",
    );
}

#[test]
fn waiting_opens_count_among_a_connections_waiting_requests() {
    check_with(
        limits(1 << 30, 1),
        &format!(
            "
            c1#1 open a                 =>
            c1#2 open b                 => c1#2 TooManyRequests
            c2#1 create b               => c2#1 created
            c2#2 create a               => c2#2 created; c1#1 {EMPTY}
            "
        ),
    );
}

#[test]
fn a_mailbox_created_without_a_right_for_the_opener_refuses_it_as_info_would() {
    // Default mode 0o760: c1 (uid 2001) owns its own, c3's is closed to c1;
    // c2 is in group 3001, c1's group.
    harness(Limits::default(), AccessPolicy::default()).run(&format!(
        "
        c1#1 open jobs                  =>
        c3#1 open jobs                  =>
        c3#2 create jobs                => c3#2 created; c1#1 PermissionDenied; c3#1 {EMPTY}
        c1#2 open jobs never            => c1#2 PermissionDenied
        c1#3 info jobs                  => c1#3 PermissionDenied
        c2#1 open mine                  =>
        c1#4 create mine                => c1#4 created; c2#1 {EMPTY}
        "
    ));
}

#[test]
fn a_mailbox_the_configuration_declares_answers_the_opens_waiting_for_it() {
    let mut harness = Harness::with_connections(Limits::default());
    assert!(harness.req(ConnectionId(1), 1, open("jobs")).is_empty());
    assert!(harness.req(ConnectionId(2), 1, open("news")).is_empty());
    assert_eq!(
        declare(&mut harness, "jobs", 0o700),
        ["c1#1 PermissionDenied"],
        "root's mailbox of mode 0700 gives uid 2001 no right"
    );
    assert_eq!(
        declare(&mut harness, "news", 0o704),
        [format!("c2#1 {EMPTY}")]
    );
    assert_eq!(harness.core.openings.waiting(), 0);
}

/// Declares mailbox `name` of root with `mode`, as the configuration
/// does; the replies that sent.
fn declare(harness: &mut Harness, name: &str, mode: u32) -> Vec<String> {
    let mut out = Outcome::new();
    let permissions = Permissions {
        owner: 0,
        group: 0,
        mode,
    };
    let declared = harness
        .core
        .declare(name, MailboxSettings::default(), permissions, &mut out);
    assert_eq!(declared, Ok(crate::Declared::Created));
    harness.finish(out).iter().map(show).collect()
}

fn open(name: &str) -> Request {
    Request::OpenMailbox {
        name: name.to_owned(),
        wait: Wait::Forever,
    }
}
