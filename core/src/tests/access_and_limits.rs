//! Access control and per-user limits, as scripts. Unlike the other tests,
//! mailboxes get the default mode (0o760: owner everything, group send and
//! receive, others nothing); `c2` is in `c1`'s group 3001 as a
//! supplementary group.

use super::{ConnectionId, Harness, Limits};
use crate::{peer_of_test, AccessPolicy};

pub(super) fn harness(limits: Limits, policy: AccessPolicy) -> Harness {
    let mut harness = Harness::new(limits);
    harness.core.set_access_policy(policy);
    for n in 1..=4 {
        let groups = if n == 2 { vec![3001] } else { Vec::new() };
        harness
            .core
            .connect_with_groups(ConnectionId(n), peer_of_test(ConnectionId(n)), groups);
    }
    harness
}

/// Connects `c9` as root (uid and gid 0), beside a [`harness`]'s users.
pub(super) fn connect_root(harness: &mut Harness) {
    harness.core.connect(
        ConnectionId(9),
        crate::Peer {
            pid: 9,
            uid: 0,
            gid: 0,
        },
    );
}

/// A [`harness`] with `c9` connected as root.
pub(super) fn harness_with_root(limits: Limits, policy: AccessPolicy) -> Harness {
    let mut harness = harness(limits, policy);
    connect_root(&mut harness);
    harness
}

fn check(script: &str) {
    harness(Limits::default(), AccessPolicy::default()).run(script);
}

#[test]
fn the_owner_may_do_everything_its_group_send_and_receive_others_nothing() {
    check(
        "
        c1#1 create q                   => c1#1 created
        c2#1 send q hi                  => c2#1 sent 1 to 1
        c2#2 recv q never               => c2#2 got 1 hi from c2
        c3#1 send q hi                  => c3#1 PermissionDenied
        c3#2 recv q never               => c3#2 PermissionDenied
        c3#3 info q                     => c3#3 PermissionDenied
        c3#4 sendmany q a,b             => c3#4 PermissionDenied
        c3#5 sendw q a stage=received   => c3#5 PermissionDenied
        c3#6 recvw q ack never          => c3#6 PermissionDenied
        c3#7 call q ping                => c3#7 PermissionDenied
        c3#8 list                       => c3#8 list
        c2#3 delete q                   => c2#3 PermissionDenied
        c1#2 list                       => c1#2 list q
        c2#4 list                       => c2#4 list q
        c1#3 delete q                   => c1#3 deleted
        ",
    );
}

#[test]
fn a_denied_operation_changes_nothing() {
    check(
        "
        c1#1 create b broadcast         => c1#1 created
        c3#1 sub b                      => c3#1 PermissionDenied
        c1#2 send b x                   => c1#2 sent 1 to 0
        c1#3 info b                     => c1#3 info queued=0 bytes=0 senders=0 receivers=0 subscribers=0 accepted=1 delivered=0
        c1#4 create h hash              => c1#4 created
        c3#2 recv h never               => c3#2 PermissionDenied
        c1#5 info h                     => c1#5 info queued=0 bytes=0 senders=0 receivers=0 subscribers=0 accepted=0 delivered=0
        ",
    );
}

#[test]
fn root_may_do_everything_and_the_admin_group_may_manage() {
    let policy = AccessPolicy {
        admin_group: Some(3004),
        ..AccessPolicy::default()
    };
    let mut harness = harness(Limits::default(), policy);
    harness.core.connect(
        ConnectionId(9),
        crate::Peer {
            pid: 9,
            uid: 0,
            gid: 0,
        },
    );
    harness.run(
        "
        c1#1 create q                   => c1#1 created
        c9#1 send q root                => c9#1 sent 1 to 1
        c9#2 recv q never               => c9#2 got 1 root from c9
        c4#1 send q hi                  => c4#1 PermissionDenied
        c4#2 delete q                   => c4#2 deleted
        ",
    );
}

#[test]
fn reserved_names_are_claimed_only_by_their_uids() {
    let mut policy = AccessPolicy::default();
    policy.reserved_names.insert("svc".into(), vec![2001]);
    harness(Limits::default(), policy).run(
        "
        c2#1 claim svc                  => c2#1 PermissionDenied
        c1#1 claim svc                  => c1#1 claimed
        c2#2 claim other                => c2#2 claimed
        ",
    );
}

#[test]
fn a_uid_may_own_only_so_many_mailboxes() {
    let limits = Limits {
        max_mailboxes_per_uid: 2,
        ..Limits::default()
    };
    harness(limits, AccessPolicy::default()).run(
        "
        c1#1 create a                   => c1#1 created
        c1#2 create b                   => c1#2 created
        c1#3 create c                   => c1#3 TooManyRequests
        c2#1 create c                   => c2#1 created
        c1#4 delete a                   => c1#4 deleted
        c1#5 create c2                  => c1#5 created
        ",
    );
}

#[test]
fn a_mailbox_holds_only_so_many_bytes() {
    let limits = Limits {
        max_queued_bytes_per_mailbox: 5,
        ..Limits::default()
    };
    harness(limits, AccessPolicy::default()).run(
        "
        c1#1 create q                   => c1#1 created
        c1#2 create r                   => c1#2 created
        c1#3 send q abc                 => c1#3 sent 1 to 1
        c1#4 send q abc                 => c1#4 BrokerFull
        c1#5 send r abc                 => c1#5 sent 1 to 1
        c1#6 recv q never               => c1#6 got 1 abc from c1
        c1#7 send q abc                 => c1#7 sent 2 to 1
        ",
    );
}

#[test]
fn connections_are_limited_in_all_and_per_uid() {
    let limits = Limits {
        max_connections: 5,
        max_connections_per_uid: 1,
        reserved_connections: 0,
        ..Limits::default()
    };
    let harness = harness(limits, AccessPolicy::default());
    let same_uid = crate::Peer {
        pid: 77,
        uid: 2001,
        gid: 3001,
    };
    let refused = harness.core.may_connect(&same_uid).unwrap_err();
    assert_eq!(refused.kind, mailbox_proto::ErrorKind::TooManyRequests);
    assert!(refused.message.contains("uid 2001"), "{}", refused.message);
    let new_uid = crate::Peer {
        pid: 78,
        uid: 5000,
        gid: 5000,
    };
    assert!(harness.core.may_connect(&new_uid).is_ok());
    let limits = Limits {
        max_connections: 4,
        ..Limits::default()
    };
    let full = super::Harness::with_connections(limits);
    let refused = full.core.may_connect(&new_uid).unwrap_err();
    assert!(
        refused.message.contains("4 connections"),
        "{}",
        refused.message
    );
}

#[test]
fn root_and_the_admin_group_keep_a_reserve_of_connections() {
    // Four connections (uids 2001..2004) of at most 8, 2 of them reserved.
    let limits = Limits {
        max_connections: 8,
        reserved_connections: 2,
        ..Limits::default()
    };
    let policy = AccessPolicy {
        admin_group: Some(10),
        ..AccessPolicy::default()
    };
    let mut harness = harness(limits, policy);
    let peer = |uid: u32, gid: u32| crate::Peer { pid: 9, uid, gid };
    for n in 5..=6 {
        let stranger = peer(7000 + n as u32, 7000);
        assert!(harness.core.may_connect(&stranger).is_ok());
        harness.core.connect(ConnectionId(n), stranger);
    }
    // Six of eight: the last two are the reserve.
    let refused = harness.core.may_connect(&peer(7100, 7100)).unwrap_err();
    assert_eq!(refused.kind, mailbox_proto::ErrorKind::TooManyRequests);
    assert!(
        refused.message.contains("limits.reserved_connections"),
        "{}",
        refused.message
    );
    // A member of the admin group (primary or supplementary) and root may.
    assert!(harness.core.may_connect(&peer(7101, 10)).is_ok());
    assert!(harness
        .core
        .may_connect_with_groups(&peer(7102, 7102), &[4, 10])
        .is_ok());
    assert!(harness.core.may_connect(&peer(0, 0)).is_ok());
    harness.core.connect(ConnectionId(7), peer(0, 0));
    harness.core.connect(ConnectionId(8), peer(0, 0));
    // The whole limit holds for root too.
    assert!(harness.core.may_connect(&peer(0, 0)).is_err());
}

#[test]
fn the_per_uid_limit_does_not_apply_to_root() {
    let limits = Limits {
        max_connections_per_uid: 1,
        ..Limits::default()
    };
    let mut harness = harness(limits, AccessPolicy::default());
    let root = crate::Peer {
        pid: 1,
        uid: 0,
        gid: 0,
    };
    for n in 10..13 {
        assert!(harness.core.may_connect(&root).is_ok());
        harness.core.connect(ConnectionId(n), root);
    }
    // Uid 2001 has its one.
    assert!(harness
        .core
        .may_connect(&peer_of_test(ConnectionId(1)))
        .is_err());
}

#[test]
fn the_manage_right_changes_permissions_and_purges() {
    check(
        "
        c1#1 create q                   => c1#1 created
        c1#2 send q a                   => c1#2 sent 1 to 1
        c1#3 sendw q b stage=received   =>
        c3#1 send q c                   => c3#1 PermissionDenied
        c3#2 purge q                    => c3#2 PermissionDenied
        c3#3 chmod q 777                => c3#3 PermissionDenied
        c1#4 chmod q 762                => c1#4 permissions
        c3#4 send q c                   => c3#4 sent 3 to 1
        c3#5 recv q never               => c3#5 PermissionDenied
        c1#5 chown q 2003               => c1#5 PermissionDenied
        c1#6 chgrp q 3003               => c1#6 PermissionDenied
        c1#7 chmod q 766                => c1#7 permissions
        c3#6 recv q never               => c3#6 got 1 a from c1
        c1#8 chmod q 1777               => c1#8 InvalidSettings
        c1#9 purge q                    => c1#9 purged 2; c1#3 Purged
        c1#10 info q                    => c1#10 info queued=0 bytes=0 senders=0 receivers=0 subscribers=0 accepted=3 delivered=1 inflight=0 redelivered=0 expired=0 dead=0 dropped=2
        ",
    );
}

#[test]
fn the_messages_one_uid_sent_hold_only_so_many_bytes_in_all() {
    // Bytes are charged to their sender, wherever they wait: c2 (in c1's
    // group) sending to c1's mailbox uses c2's share, not c1's.
    let limits = Limits {
        max_queued_bytes_per_uid: Some(5),
        ..Limits::default()
    };
    harness(limits, AccessPolicy::default()).run(
        "
        c1#1 create a                   => c1#1 created
        c1#2 create b                   => c1#2 created
        c2#1 create c                   => c2#1 created
        c1#3 send a abc                 => c1#3 sent 1 to 1
        c1#4 send b abc                 => c1#4 BrokerFull
        c2#2 send c abc                 => c2#2 sent 1 to 1
        c2#3 send a ab                  => c2#3 sent 2 to 1
        c2#4 send b a                   => c2#4 BrokerFull
        c1#5 recv a never               => c1#5 got 1 abc from c1
        c1#6 send b abc                 => c1#6 sent 1 to 1
        c1#7 delete b                   => c1#7 deleted
        c1#8 send a abc                 => c1#8 sent 3 to 1
        ",
    );
}

#[test]
fn status_reports_the_cores_limits_then_the_servers() {
    let mut harness = harness(Limits::default(), AccessPolicy::default());
    let server = |name: &str, value| mailbox_proto::Limit {
        name: name.to_owned(),
        value,
    };
    harness.core.set_server_limits(vec![
        server("max_frame_size", 16_842_752),
        server("handshake_timeout", 10_000),
    ]);
    let replies = harness.req(ConnectionId(1), 1, mailbox_proto::Request::Status);
    let Some(Ok(mailbox_proto::Response::Status(status))) =
        replies.into_iter().next().map(|reply| reply.result)
    else {
        panic!("a status");
    };
    let names: Vec<&str> = status.limits.iter().map(|l| l.name.as_str()).collect();
    assert_eq!(names.first(), Some(&"memory_budget"), "{names:?}");
    assert_eq!(
        &names[names.len() - 3..],
        ["max_file_size", "max_frame_size", "handshake_timeout"]
    );
    let handshake = status.limits.last().expect("a limit");
    assert_eq!(handshake.value, 10_000);
    assert_eq!(handshake.unit(), mailbox_proto::LimitUnit::Millis);
}
