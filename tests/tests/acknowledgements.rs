//! Manual acknowledgement across real processes: a receiver that dies while
//! holding messages gives them back, and `mailboxctl recv --ack --exec` is a
//! shell worker that acknowledges on success and puts back on failure.

use std::collections::BTreeSet;

use mailbox_tests::{exit_code, json_lines, Broker};

/// `SEQUENCE REDELIVERIES PAYLOAD` lines of a `mailbox-peer ack`, parsed
/// (the final `ok COUNT` line left out).
fn acked(stdout: &[u8]) -> Vec<(u64, u64, String)> {
    String::from_utf8_lossy(stdout)
        .lines()
        .filter(|line| !line.starts_with("ok "))
        .map(|line| {
            let mut fields = line.splitn(3, ' ');
            let mut number = || {
                fields
                    .next()
                    .and_then(|field| field.parse::<u64>().ok())
                    .unwrap_or_else(|| panic!("bad line {line:?}"))
            };
            let (sequence, redeliveries) = (number(), number());
            (
                sequence,
                redeliveries,
                fields.next().unwrap_or("").to_owned(),
            )
        })
        .collect()
}

fn peer_output(peer: mailbox_tests::Running) -> Vec<(u64, u64, String)> {
    let output = peer.finish();
    assert!(
        output.status.success(),
        "peer failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    acked(&output.stdout)
}

/// A receiver killed with SIGKILL while it holds an
/// unacknowledged message; another receiver gets that message; nothing is
/// lost and nothing is duplicated among the acknowledged messages.
#[test]
fn a_receiver_killed_while_holding_a_message_loses_and_duplicates_nothing() {
    const N: usize = 10;
    let broker = Broker::start();
    broker.ok(&["create", "jobs"]);
    let sent: Vec<String> = (0..N).map(|i| format!("job-{i}")).collect();
    for job in &sent {
        broker.ok(&["send", "jobs", job]);
    }

    // Receiver A takes one message with manual acknowledgement and hangs in
    // its command.
    let a = broker.spawn_group(&["recv", "jobs", "--ack", "--exec", "sleep 1000"]);
    broker.wait_for_info("jobs", "in_flight", 1);
    let info = broker.info("jobs");
    assert_eq!(info["queued_messages"], N - 1, "{info}");

    // SIGKILL mailboxctl itself (its command lives on, holding nothing).
    a.signal_leader(libc::SIGKILL);
    broker.wait_for_info("jobs", "in_flight", 0);
    assert_eq!(
        broker.info("jobs")["queued_messages"],
        N,
        "the held one is back"
    );

    // Receiver B acknowledges everything.
    let b = broker.run(&[
        "--json",
        "recv",
        "jobs",
        "--ack",
        "--count",
        &N.to_string(),
        "--timeout",
        "5s",
    ]);
    assert_eq!(exit_code(&b), 0, "{}", String::from_utf8_lossy(&b.stderr));
    let messages = json_lines(&b.stdout);
    let payloads: Vec<&str> = messages
        .iter()
        .map(|m| m["payload"].as_str().expect("text payload"))
        .collect();
    assert_eq!(
        payloads, sent,
        "every message once, the returned one at the head"
    );
    let unique: BTreeSet<&str> = payloads.iter().copied().collect();
    assert_eq!(unique.len(), N, "no duplicates");
    for (index, message) in messages.iter().enumerate() {
        assert_eq!(message["sequence"], index + 1, "{message}");
        let expected = u64::from(index == 0);
        assert_eq!(
            message["redeliveries"], expected,
            "only the message A held was redelivered: {message}"
        );
    }

    let info = broker.info("jobs");
    assert_eq!(info["queued_messages"], 0, "{info}");
    assert_eq!(info["in_flight"], 0, "{info}");
    assert_eq!(info["messages_redelivered"], 1, "{info}");
    assert_eq!(info["messages_delivered"], N + 1, "{info}");
    // Nothing left over anywhere: no second copy turns up.
    assert_eq!(exit_code(&broker.run(&["recv", "jobs", "--nonblock"])), 75);
    drop(a);
}

/// A library receiver holding several messages is killed: they all go
/// back to the head in their order; then two concurrent receivers that
/// acknowledge everything share the rest without loss or duplicates.
#[test]
fn a_killed_holder_of_several_messages_gives_them_back_at_the_head_in_order() {
    let broker = Broker::start();
    broker.ok(&["create", "jobs"]);
    let sent: Vec<String> = (0..8).map(|i| format!("m{i}")).collect();
    for text in &sent {
        broker.ok(&["send", "jobs", text]);
    }
    let holder = broker.peer("hold", "jobs", 3);
    broker.wait_for_info("jobs", "in_flight", 3);
    holder.kill();
    broker.wait_for_info("jobs", "in_flight", 0);
    assert_eq!(broker.info("jobs")["queued_messages"], 8);

    // The three that were held come first, in order, marked redelivered.
    let first = peer_output(broker.peer("ack", "jobs", 3));
    assert_eq!(
        first,
        [
            (1, 1, "m0".to_owned()),
            (2, 1, "m1".to_owned()),
            (3, 1, "m2".to_owned())
        ]
    );

    // The other five, shared by two receivers at once.
    let left = broker.peer("ack", "jobs", 3);
    let right = broker.peer("ack", "jobs", 2);
    let mut rest = peer_output(left);
    rest.extend(peer_output(right));
    let mut payloads: Vec<String> = rest.iter().map(|(_, _, p)| p.clone()).collect();
    payloads.sort();
    assert_eq!(payloads, sent[3..], "each of the rest exactly once");
    assert!(rest.iter().all(|&(_, redeliveries, _)| redeliveries == 0));

    let info = broker.info("jobs");
    assert_eq!(info["queued_messages"], 0, "{info}");
    assert_eq!(info["in_flight"], 0, "{info}");
    assert_eq!(info["messages_redelivered"], 3, "{info}");
}

/// `recv --ack --exec CMD --follow`: a shell worker. Exit 0 acknowledges;
/// a non-zero exit puts the message back at the head, where the worker
/// takes it again (with MAILBOX_REDELIVERIES one higher); the metadata is
/// in the command's environment.
#[test]
fn a_shell_worker_acks_on_success_and_puts_back_on_failure() {
    let broker = Broker::start();
    broker.ok(&["create", "jobs"]);
    let dir = tempfile::tempdir().expect("temp dir");
    let log = dir.path().join("log");

    let first = broker.spawn(&["send", "jobs", "ok-1"]);
    let first_pid = first.pid();
    assert!(first.finish().status.success());
    broker.ok(&["send", "jobs", "flaky"]);
    broker.ok(&["send", "jobs", "ok-2", "--key", "k2"]);

    // Logs what it got; "flaky" fails on its first delivery only.
    let command = format!(
        r#"payload=$(cat); echo "$MAILBOX_MAILBOX $MAILBOX_SEQUENCE $MAILBOX_REDELIVERIES \
$MAILBOX_SENDER_PID $MAILBOX_SENDER_UID ${{MAILBOX_KEY-nokey}} ${{MAILBOX_CALL-nocall}} \
$payload" >> '{}'; [ "$payload" != flaky ] || [ "$MAILBOX_REDELIVERIES" -ge 1 ]"#,
        log.display()
    );
    let mut worker = broker.spawn_group(&["recv", "jobs", "--ack", "--exec", &command, "--follow"]);
    broker.wait_for_info("jobs", "messages_delivered", 4);
    broker.wait_for_info("jobs", "in_flight", 0);
    let info = broker.info("jobs");
    assert_eq!(info["queued_messages"], 0, "all acknowledged: {info}");
    assert_eq!(info["messages_redelivered"], 1, "{info}");
    assert!(worker.is_running(), "--follow keeps going after a failure");

    let output = worker.stop(libc::SIGTERM);
    // Acknowledged means gone: stopping the worker puts nothing back.
    assert_eq!(broker.info("jobs")["queued_messages"], 0);

    let text = std::fs::read_to_string(&log).expect("the command ran");
    let lines: Vec<Vec<&str>> = text.lines().map(|l| l.split(' ').collect()).collect();
    // SAFETY: getuid has no preconditions.
    let uid = unsafe { libc::getuid() }.to_string();
    let first_pid = first_pid.to_string();
    assert_eq!(lines.len(), 4, "{text}");
    assert_eq!(
        lines[0],
        ["jobs", "1", "0", &first_pid, &uid, "nokey", "nocall", "ok-1"]
    );
    let fields = |line: &[&str]| (line[1].to_owned(), line[2].to_owned(), line[7].to_owned());
    let got: Vec<_> = lines.iter().map(|l| fields(l)).collect();
    let expected = [
        ("1", "0", "ok-1"),
        ("2", "0", "flaky"),
        ("2", "1", "flaky"),
        ("3", "0", "ok-2"),
    ]
    .map(|(s, r, p)| (s.to_owned(), r.to_owned(), p.to_owned()));
    assert_eq!(got, expected, "the failed one again at once, then the next");
    assert_eq!(lines[3][5], "k2", "MAILBOX_KEY: {text}");

    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("for message #2; it was put back"),
        "{stderr}"
    );
}

/// Without `--follow`, `recv --ack --exec` exits 1 when the command fails
/// and the message stays in the mailbox; a successful run removes it.
#[test]
fn a_single_exec_acknowledges_only_when_the_command_succeeds() {
    let broker = Broker::start();
    broker.ok(&["create", "jobs"]);
    broker.ok(&["send", "jobs", "task"]);

    let failed = broker.run(&["recv", "jobs", "--ack", "--exec", "cat >/dev/null; exit 3"]);
    assert_eq!(exit_code(&failed), 1);
    let stderr = String::from_utf8_lossy(&failed.stderr);
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.contains("put back"), "{stderr}");
    let info = broker.info("jobs");
    assert_eq!(info["queued_messages"], 1, "{info}");
    assert_eq!(info["in_flight"], 0, "{info}");

    // The same message, redelivered once; this time the command succeeds.
    let done = broker.run(&[
        "recv",
        "jobs",
        "--ack",
        "--exec",
        r#"[ "$(cat)" = task ] && [ "$MAILBOX_REDELIVERIES" = 1 ] && [ "$MAILBOX_SEQUENCE" = 1 ]"#,
    ]);
    assert_eq!(
        exit_code(&done),
        0,
        "{}",
        String::from_utf8_lossy(&done.stderr)
    );
    let info = broker.info("jobs");
    assert_eq!(info["queued_messages"], 0, "{info}");
    assert_eq!(info["in_flight"], 0, "{info}");
    assert_eq!(exit_code(&broker.run(&["recv", "jobs", "--nonblock"])), 75);
}
