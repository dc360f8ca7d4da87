//! The fair share of queued bytes, end to end: a real `mailboxd` with a
//! 4 MiB budget and the default shares (a quarter per uid, the last eighth
//! for root and the admin group), and `mailboxctl` run as other uids with
//! `setpriv --reuid N --regid N --clear-groups` (util-linux), as
//! `config_and_access.rs` does. These tests need root; run as anyone else
//! they say so and do nothing.

use std::process::Output;

use mailbox_tests::{root, SharedBroker};

/// One message: 100 KiB, under the 128 KiB a single argument may have.
const MESSAGE: usize = 100 << 10;

/// Sends 100 KiB messages as `uid` to `mailbox` until the broker says
/// `BrokerFull` (exit 1); returns how many were taken and the refusal.
fn fill(shared: &SharedBroker, uid: u32, mailbox: &str) -> (usize, String) {
    let message = "x".repeat(MESSAGE);
    for sent in 0..100 {
        let output = shared.as_uid(uid, &["send", mailbox, &message]);
        match output.status.code() {
            Some(0) => continue,
            Some(1) => return (sent, String::from_utf8_lossy(&output.stderr).into_owned()),
            other => panic!(
                "send as uid {uid} exited {other:?}: {}",
                String::from_utf8_lossy(&output.stderr)
            ),
        }
    }
    panic!("uid {uid} sent 10 MiB into a 4 MiB broker");
}

#[track_caller]
fn assert_ok(output: &Output, what: &str) {
    assert!(
        output.status.success(),
        "{what}: exit {:?}, stderr {}",
        output.status.code(),
        String::from_utf8_lossy(&output.stderr)
    );
}

const CONFIG: &str = r#"
[socket]
mode = "0666"

[limits]
memory_budget = "4M"
"#;

#[test]
fn one_uid_fills_only_its_share_and_root_still_sends() {
    if !root() {
        return;
    }
    let shared = SharedBroker::start("mailbox-fair-share-", CONFIG);
    // Root's mailbox, open to everyone: what others put there is theirs.
    assert_ok(
        &shared.as_uid(0, &["create", "open", "--mode", "0777"]),
        "root creates open",
    );
    let (taken, refusal) = fill(&shared, 65534, "open");
    // A quarter of 4 MiB is 1 MiB: ten messages of 100 KiB.
    assert_eq!(taken, 10, "uid 65534's share is a quarter of the budget");
    assert!(
        refusal.contains("uid 65534") && refusal.contains("max_queued_bytes_per_uid"),
        "the refusal says whose share is full: {refusal}"
    );
    // Root and another uid are not affected, even in the same mailbox.
    let message = "x".repeat(MESSAGE);
    assert_ok(
        &shared.as_uid(0, &["send", "open", &message]),
        "root sends to its mailbox",
    );
    assert_ok(
        &shared.as_uid(65533, &["send", "open", &message]),
        "another uid sends",
    );
    // Taking its messages gives uid 65534 its share back.
    assert_ok(
        &shared.as_uid(0, &["recv", "open", "--timeout", "5s"]),
        "root receives",
    );
    assert_ok(
        &shared.as_uid(65534, &["send", "open", &message]),
        "uid 65534 sends again",
    );
}

#[test]
fn many_uids_together_leave_the_reserve_to_root() {
    if !root() {
        return;
    }
    let shared = SharedBroker::start("mailbox-fair-share-", CONFIG);
    for uid in [65531, 65532, 65533, 65534] {
        let name = format!("q{uid}");
        assert_ok(
            &shared.as_uid(uid, &["create", &name]),
            "each uid creates its mailbox",
        );
    }
    // 4 MiB less the reserve of 512 KiB is 3.5 MiB for everyone else:
    // three full shares of ten messages, then five more.
    let mut taken = Vec::new();
    let mut last = String::new();
    for uid in [65534, 65533, 65532, 65531] {
        let (count, refusal) = fill(&shared, uid, &format!("q{uid}"));
        taken.push(count);
        last = refusal;
    }
    assert_eq!(taken, [10, 10, 10, 5], "shares, then the reserve");
    assert!(
        last.contains("only root, the admin group"),
        "the last refusal names the reserve: {last}"
    );
    // Root still sends, into the reserve.
    assert_ok(
        &shared.as_uid(0, &["create", "root.q", "--mode", "0700"]),
        "root creates",
    );
    let message = "x".repeat(MESSAGE);
    for _ in 0..4 {
        assert_ok(
            &shared.as_uid(0, &["send", "root.q", &message]),
            "root sends into the reserve",
        );
    }
    let status = shared.as_uid(0, &["--json", "status"]);
    assert_ok(&status, "status");
    let status: serde_json::Value = serde_json::from_slice(&status.stdout).expect("status is JSON");
    assert_eq!(
        status["queued_bytes"].as_u64(),
        Some(39 * MESSAGE as u64),
        "{status}"
    );
}
