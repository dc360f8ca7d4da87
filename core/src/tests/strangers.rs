//! What one user can do to another's mailboxes, inbox and names: creating
//! over someone else's mailbox, squatting reserved prefixes, moving messages
//! into a stranger's mailbox as dead letters, giving a mailbox to a group
//! one is not in, flooding an inbox, poisoning a key. Connections as in
//! `access_and_limits.rs`: `cN` has uid 2000+N and gid 3000+N, `c2` is also in group 3001,
//! and mailboxes get the default mode 0o760; `c9` is root.

use std::collections::BTreeSet;

use mailbox_proto::{ErrorKind, MailboxInfo, Request, Response};

use super::access_and_limits::harness_with_root;
use super::{ConnectionId, Harness, Limits};
use crate::{AccessPolicy, Peer, Reservation};

fn with_root(policy: AccessPolicy) -> Harness {
    harness_with_root(Limits::default(), policy)
}

fn check(script: &str) {
    with_root(AccessPolicy::default()).run(script);
}

fn info(harness: &mut Harness, who: u64, name: &str) -> MailboxInfo {
    let replies = harness.req(
        ConnectionId(who),
        900,
        Request::MailboxInfo { name: name.into() },
    );
    match &replies[..] {
        [reply] => match &reply.result {
            Ok(Response::Info(info)) => (**info).clone(),
            other => panic!("info {name}: {other:?}"),
        },
        other => panic!("info {name}: {other:?}"),
    }
}

#[test]
fn creating_a_mailbox_someone_else_made_is_mailbox_exists_even_for_root() {
    let mut harness = with_root(AccessPolicy::default());
    harness.run(
        "
        c3#1 create payroll mode=777    => c3#1 created
        c9#1 create payroll mode=700    => c9#1 MailboxExists
        c1#1 create payroll             => c1#1 MailboxExists
        c9#2 create payroll mode=777    => c9#2 MailboxExists
        ",
    );
    // Nothing changed: still the stranger's, with its mode.
    let payroll = info(&mut harness, 9, "payroll");
    assert_eq!((payroll.owner_uid, payroll.mode), (2003, 0o777));
}

#[test]
fn a_failed_create_says_who_owns_the_mailbox_but_not_its_settings_to_a_stranger() {
    let mut harness = with_root(AccessPolicy::default());
    harness.run("c1#1 create secret cap=7 mode=700 => c1#1 created");
    let replies = harness.req(
        ConnectionId(3),
        1,
        Request::CreateMailboxWith {
            name: "secret".into(),
            settings: Default::default(),
            mode: None,
            group: None,
        },
    );
    let error = replies[0].result.as_ref().unwrap_err();
    assert_eq!(error.kind, ErrorKind::MailboxExists);
    assert!(error.message.contains("uid 2001"), "{}", error.message);
    for secret in ["cap", "7", "700", "capacity"] {
        assert!(
            !error.message.contains(&format!(" {secret}")),
            "{secret} leaked: {}",
            error.message
        );
    }
}

#[test]
fn the_owner_creating_again_gets_its_mailbox_with_the_mode_it_asked_for_applied() {
    let mut harness = with_root(AccessPolicy::default());
    harness.run(
        "
        c1#1 create q mode=777          => c1#1 created
        c1#2 create q mode=700          => c1#2 exists
        c1#3 create q cap=3 mode=700    => c1#3 MailboxExists
        c1#4 create q group=3003        => c1#4 PermissionDenied
        c3#1 send q x                   => c3#1 PermissionDenied
        c1#5 create q                   => c1#5 exists
        ",
    );
    let q = info(&mut harness, 1, "q");
    assert_eq!((q.owner_uid, q.group_gid, q.mode), (2001, 3001, 0o700));
}

#[test]
fn create_sets_mode_and_group_in_the_same_step() {
    let mut harness = with_root(AccessPolicy::default());
    harness.run(
        "
        c2#1 create shared group=3001 mode=740   => c2#1 created
        c1#1 recv shared never                   => c1#1 WouldBlock
        c1#2 send shared x                       => c1#2 PermissionDenied
        c2#2 create mine group=3003              => c2#2 PermissionDenied
        c9#1 create roots group=3003 mode=070    => c9#1 created
        c3#1 send roots hi                       => c3#1 sent 1 to 1
        c2#3 create odd mode=1777                => c2#3 InvalidSettings
        ",
    );
    let roots = info(&mut harness, 9, "roots");
    assert_eq!(
        (roots.owner_uid, roots.group_gid, roots.mode),
        (0, 3003, 0o070)
    );
}

#[test]
fn reserved_prefixes_keep_mailbox_and_well_known_names_for_their_holders() {
    let mut policy = AccessPolicy::default();
    policy.reserved_prefixes.insert(
        "payroll.".into(),
        Reservation {
            uids: vec![2001],
            gids: vec![],
        },
    );
    policy.reserved_prefixes.insert(
        "team.".into(),
        Reservation {
            uids: vec![],
            gids: vec![3001],
        },
    );
    with_root(policy).run(
        "
        c3#1 create payroll.jobs        => c3#1 PermissionDenied
        c3#2 claim payroll.svc          => c3#2 PermissionDenied
        c1#1 create payroll.jobs        => c1#1 created
        c1#2 claim payroll.svc          => c1#2 claimed
        c9#1 create payroll.audit       => c9#1 created
        c2#1 create team.q              => c2#1 created
        c3#3 create team.r              => c3#3 PermissionDenied
        c3#4 create payrollx            => c3#4 created
        ",
    );
}

#[test]
fn dead_letters_go_only_to_a_mailbox_of_the_same_owner() {
    // Writing: a stranger cannot point its dead letters at root's mailbox.
    check(
        "
        c9#1 create rootonly mode=700            => c9#1 created
        c3#1 create nbjobs deliveries=1 dlq=rootonly => c3#1 PermissionDenied
        c3#2 create nbjobs mode=777              => c3#2 created
        ",
    );
}

#[test]
fn a_dead_letter_target_created_later_by_a_stranger_gets_nothing() {
    let mut harness = with_root(AccessPolicy::default());
    harness.run(
        "
        c9#1 create rjobs deliveries=1 dlq=rjobs.dead => c9#1 created
        c3#1 create rjobs.dead mode=700          => c3#1 created
        c9#2 send rjobs secret                   => c9#2 sent 1 to 1
        c9#3 recvw rjobs ack never               => c9#3 got 1 secret from c9
        c9#4 nack rjobs 1                        => c9#4 settled
        c3#2 recv rjobs.dead never               => c3#2 WouldBlock
        ",
    );
    let rjobs = info(&mut harness, 9, "rjobs");
    assert_eq!(
        (rjobs.messages_dead_lettered, rjobs.messages_dropped),
        (0, 1)
    );
    assert_eq!(info(&mut harness, 9, "rjobs.dead").messages_accepted, 0);
}

#[test]
fn a_refused_dead_letter_is_reported_once_per_mailbox() {
    let mut harness = with_root(AccessPolicy::default());
    harness.run(
        "
        c9#1 create rjobs deliveries=1 dlq=rjobs.dead => c9#1 created
        c3#1 create rjobs.dead                   => c3#1 created
        c9#2 sendmany rjobs a,b                  => c9#2 sentmany 1+2 to 1
        ",
    );
    let clock = harness.clock();
    let mut warnings = Vec::new();
    for sequence in 1..=2 {
        let mut out = crate::Outcome::new();
        let take = Request::ReceiveWith {
            from: mailbox_proto::Source::Mailbox("rjobs".into()),
            options: mailbox_proto::ReceiveOptions {
                manual_ack: true,
                ..Default::default()
            },
            wait: mailbox_proto::Wait::Never,
        };
        harness
            .core
            .apply(ConnectionId(9), 10 + sequence, take, &clock, &mut out);
        let nack = Request::Settle {
            mailbox: Some("rjobs".into()),
            sequence,
            verdict: mailbox_proto::Verdict::Nack { to_tail: false },
            redeliveries: None,
        };
        harness
            .core
            .apply(ConnectionId(9), 20 + sequence, nack, &clock, &mut out);
        warnings.append(&mut out.warnings);
    }
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert!(warnings[0].contains("rjobs.dead"), "{}", warnings[0]);
    assert_eq!(info(&mut harness, 9, "rjobs").messages_dropped, 2);
}

#[test]
fn the_administrator_may_open_a_dead_letter_mailbox_to_everyone() {
    let policy = AccessPolicy {
        dead_letter_targets: BTreeSet::from(["dead.all".to_owned()]),
        ..AccessPolicy::default()
    };
    let mut harness = with_root(policy);
    harness.run(
        "
        c9#1 create dead.all mode=700            => c9#1 created
        c3#1 create jobs deliveries=1 dlq=dead.all mode=700 => c3#1 created
        c3#2 send jobs job                       => c3#2 sent 1 to 1
        c3#3 recvw jobs ack never                => c3#3 got 1 job from c3
        c3#4 nack jobs 1                         => c3#4 settled
        c9#2 recv dead.all never                 => c9#2 got 1 job from c3 dead=jobs#1:max-deliveries
        ",
    );
}

#[test]
fn a_group_can_be_given_only_by_its_members_and_root() {
    check(
        "
        c1#1 create mine                => c1#1 created
        c1#2 chgrp mine 3003            => c1#2 PermissionDenied
        c2#1 create theirs              => c2#1 created
        c2#2 chgrp theirs 3001          => c2#2 permissions
        c9#1 chgrp mine 3003            => c9#1 permissions
        ",
    );
}

#[test]
fn an_owner_keeps_the_manage_right_whatever_the_mode() {
    check(
        "
        c1#1 create q                   => c1#1 created
        c1#2 chmod q 000                => c1#2 permissions
        c1#3 send q x                   => c1#3 PermissionDenied
        c1#4 chmod q 700                => c1#4 permissions
        c1#5 send q x                   => c1#5 sent 1 to 1
        c3#1 chmod q 777                => c3#1 PermissionDenied
        ",
    );
}

#[test]
fn an_inbox_admits_its_own_uid_and_root_until_its_owner_opens_it() {
    let mut harness = with_root(AccessPolicy::default());
    // c5 has the same uid as c1.
    harness.core.connect(
        ConnectionId(5),
        Peer {
            pid: 55,
            uid: 2001,
            gid: 3001,
        },
    );
    harness.run(
        "
        c3#1 sendw p1 flood             => c3#1 PermissionDenied
        c3#2 call p1 ping t=1000        => c3#2 PermissionDenied
        c5#1 sendw p1 same-uid          => c5#1 sent 1 to 1
        c9#1 sendw p1 root              => c9#1 sent 2 to 1
        c1#1 sendw p1 self              => c1#1 sent 3 to 1
        c1#2 inboxperm 620              => c1#2 inboxperm
        c2#1 sendw p1 group             => c2#1 sent 4 to 1
        c3#3 sendw p1 flood             => c3#3 PermissionDenied
        c1#3 inboxperm 622              => c1#3 inboxperm
        c3#4 sendw p1 open              => c3#4 sent 5 to 1
        c1#4 inboxperm 600 3003         => c1#4 PermissionDenied
        ",
    );
}

#[test]
fn a_key_with_control_characters_or_too_long_is_refused() {
    let mut harness = with_root(AccessPolicy::default());
    harness.run("c1#1 create h hash => c1#1 created");
    for key in ["", "a\0b", "line\nbreak", &"k".repeat(256)] {
        let replies = harness.req(
            ConnectionId(1),
            2,
            Request::SendWith {
                to: mailbox_proto::Target::Mailbox("h".into()),
                payload: "x".into(),
                options: Box::new(mailbox_proto::SendOptions {
                    key: Some(key.to_owned()),
                    ..Default::default()
                }),
                wait: mailbox_proto::Wait::Never,
            },
        );
        let error = replies[0].result.as_ref().unwrap_err();
        assert_eq!(error.kind, ErrorKind::InvalidRequest, "{key:?}");
    }
    assert_eq!(info(&mut harness, 1, "h").messages_accepted, 0);
    harness.run("c1#3 sendw h ok key=région-7 => c1#3 sent 1 to 1");
}
