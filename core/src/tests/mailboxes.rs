//! Mailboxes: names, settings, create, delete.

use super::*;

#[test]
fn names_of_1_to_255_letters_digits_dots_underscores_slashes_dashes_are_valid() {
    check(
        "
        c1#1 create a                          => c1#1 created
        c1#2 create Jobs/high-priority_v2.0    => c1#2 created
        c1#3 create @255                       => c1#3 created
        c1#4 create @256                       => c1#4 InvalidName
        c1#5 create \"\"                       => c1#5 InvalidName
        c1#6 create a:b                        => c1#6 InvalidName
        c1#7 create a*b                        => c1#7 InvalidName
        c1#8 create caf\u{e9}                  => c1#8 InvalidName
        c1#9 list                              => c1#9 list Jobs/high-priority_v2.0 a @255
        ",
    );
    let mut harness = Harness::with_connections(Limits::default());
    for bad in ["a b", "tab\there", "line\nbreak", "nul\0", "a\\b", "~home"] {
        let replies = harness.req(
            ConnectionId(1),
            1,
            Request::CreateMailbox {
                name: bad.to_owned(),
                settings: Box::default(),
            },
        );
        assert_eq!(
            replies.iter().map(show).collect::<Vec<_>>(),
            ["c1#1 InvalidName"],
            "{bad:?}"
        );
    }
}

#[test]
fn requests_naming_a_missing_mailbox_answer_invalid_name_or_no_such_mailbox() {
    check(
        "
        c1#1 send bad!name hi never     => c1#1 InvalidName
        c1#2 recv bad!name never        => c1#2 InvalidName
        c1#3 info bad!name              => c1#3 InvalidName
        c1#4 delete bad!name            => c1#4 InvalidName
        c1#5 sub bad!name               => c1#5 InvalidName
        c1#6 unsub bad!name             => c1#6 InvalidName
        c1#7 send @256 hi               => c1#7 InvalidName
        c1#8 send good hi never         => c1#8 NoSuchMailbox
        c1#9 recv good                  => c1#9 NoSuchMailbox
        c1#10 info good                 => c1#10 NoSuchMailbox
        c1#11 delete good               => c1#11 NoSuchMailbox
        c1#12 sub good                  => c1#12 NoSuchMailbox
        c1#13 unsub good                => c1#13 NoSuchMailbox
        c1#14 status                    => c1#14 status connections=4 mailboxes=0 queued=0 bytes=0
        ",
    );
}

#[test]
fn create_again_with_the_same_settings_succeeds_without_change() {
    check(
        "
        c1#1 create q cap=2 broadcast max=64 fixed=8  => c1#1 created
        c1#2 send q @8                                => c1#2 sent 1 to 0
        c1#3 create q cap=2 broadcast max=64 fixed=8  => c1#3 exists
        c2#2 info q => c2#2 info queued=0 bytes=0 senders=0 receivers=0 subscribers=0 accepted=1 delivered=0
        ",
    );
}

#[test]
fn create_again_with_other_settings_is_mailbox_exists() {
    check(
        "
        c1#1 create q cap=2                  => c1#1 created
        c1#2 create q cap=3                  => c1#2 MailboxExists
        c1#3 create q zero                   => c1#3 MailboxExists
        c1#4 create q                        => c1#4 MailboxExists
        c1#5 create q cap=2 broadcast        => c1#5 MailboxExists
        c1#6 create q cap=2 max=10           => c1#6 MailboxExists
        c1#7 create q cap=2 fixed=8          => c1#7 MailboxExists
        c1#8 create q cap=2                  => c1#8 exists
        ",
    );
}

#[test]
fn contradictory_settings_are_invalid_settings() {
    check(
        "
        c1#1 create a cap=0                  => c1#1 InvalidSettings
        c1#2 create b max=0                  => c1#2 InvalidSettings
        c1#3 create c max=16777217           => c1#3 InvalidSettings
        c1#4 create d max=16777216           => c1#4 created
        c1#5 create e max=8 fixed=9          => c1#5 InvalidSettings
        c1#6 create f max=8 fixed=8          => c1#6 created
        c1#7 create f max=0                  => c1#7 InvalidSettings
        c1#8 list                            => c1#8 list d f
        ",
    );
}

#[test]
fn delete_wakes_every_waiting_sender_and_receiver_with_mailbox_deleted() {
    check(
        "
        c1#1 create q cap=1             => c1#1 created
        c1#2 send q aa                  => c1#2 sent 1 to 1
        c1#3 send q bb                  =>
        c2#1 send q cc t=100            =>
        c1#4 create z zero              => c1#4 created
        c3#1 recv z                     =>
        c3#2 recv z t=100               =>
        c4#1 status                     => c4#1 status connections=4 mailboxes=2 queued=1 bytes=6
        c4#2 delete q                   => c4#2 deleted; c1#3 MailboxDeleted; c2#1 MailboxDeleted
        c4#3 delete z                   => c4#3 deleted; c3#1 MailboxDeleted; c3#2 MailboxDeleted
        c4#4 status                     => c4#4 status connections=4 mailboxes=0 queued=0 bytes=0
        advance 100                     =>
        expire                          =>
        c4#5 delete q                   => c4#5 NoSuchMailbox
        ",
    );
}

#[test]
fn delete_wakes_waiting_subscribers_and_ends_their_subscriptions() {
    check(
        "
        c1#1 create b broadcast cap=1   => c1#1 created
        c2#1 sub b                      => c2#1 subscribed
        c3#1 sub b                      => c3#1 subscribed
        c1#2 send b aa                  => c1#2 sent 1 to 2
        c2#2 recv b                     => c2#2 got 1 aa from c1
        c2#3 recv b                     =>
        c1#3 send b bb                  =>
        c4#1 delete b                   => c4#1 deleted; c2#3 MailboxDeleted; c1#3 MailboxDeleted
        c4#2 status                     => c4#2 status connections=4 mailboxes=0 queued=0 bytes=0
        c2#4 recv b never               => c2#4 NoSuchMailbox
        c4#3 create b broadcast cap=1   => c4#3 created
        c2#5 recv b never               => c2#5 NotSubscribed
        c3#2 unsub b                    => c3#2 NotSubscribed
        disconnect c3                   =>
        c1#4 send b cc                  => c1#4 sent 1 to 0
        ",
    );
}
