//! `mailboxctl recv --exec`, end to end: the command and what it started
//! die with a killed `mailboxctl` (its guardian) but are left alone when the
//! command ends normally; a message the worker cannot hand over goes back
//! once, behind the others; what a message contains never fails the
//! command (a key the environment cannot hold is refused at the broker).

use std::process::Stdio;
use std::time::Duration;

use mailbox_tests::{exit_code, signal, stderr, Broker, Running};

// ---------------------------------------------------------------------------
// 16. `recv --exec` leaves its command running when mailboxctl is killed.

/// Whether `pid` is gone (or a zombie nobody reaped yet).
fn is_gone(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        Ok(stat) => stat
            .rsplit_once(')')
            .is_some_and(|(_, rest)| rest.trim_start().starts_with('Z')),
    }
}

#[test]
fn killing_mailboxctl_kills_its_exec_command_and_what_that_started() {
    let broker = Broker::start();
    broker.ok(&["create", "jobs"]);
    broker.ok(&["send", "jobs", "task"]);
    let dir = tempfile::tempdir().expect("temp dir");
    let pids = dir.path().join("pids");
    // The shell, and a grandchild it waits for (not exec'd in its place).
    let command = format!(
        "echo $$ >> {0}; sleep 300 & echo $! >> {0}; wait",
        pids.display()
    );
    let worker = broker
        .ctl()
        .args(["recv", "jobs", "--ack", "--exec", &command])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn mailboxctl");
    mailbox_tests::wait_until("the command started its sleep", || {
        std::fs::read_to_string(&pids).is_ok_and(|text| text.lines().count() == 2)
    });
    let started: Vec<i32> = std::fs::read_to_string(&pids)
        .expect("pids")
        .lines()
        .map(|line| line.trim().parse().expect("a pid"))
        .collect();
    let mut worker = Running::from_child(worker);
    signal(worker.pid(), libc::SIGKILL);
    while worker.is_running() {
        std::thread::sleep(Duration::from_millis(10));
    }
    for pid in started {
        mailbox_tests::wait_until(&format!("process {pid} of the command is gone"), || {
            is_gone(pid)
        });
    }
    // Its message was not acknowledged: it is back for the next worker.
    assert_eq!(broker.ok(&["recv", "jobs", "--nonblock"]), "task");
}

#[test]
fn a_command_that_ends_normally_leaves_its_background_work_alone() {
    let broker = Broker::start();
    broker.ok(&["create", "jobs"]);
    broker.ok(&["send", "jobs", "task"]);
    let dir = tempfile::tempdir().expect("temp dir");
    let pid_file = dir.path().join("pid");
    let command = format!(
        "sleep 300 > /dev/null 2>&1 & echo $! > {}",
        pid_file.display()
    );
    broker.ok(&["recv", "jobs", "--exec", &command]);
    let pid: i32 = std::fs::read_to_string(&pid_file)
        .expect("pid")
        .trim()
        .parse()
        .expect("a pid");
    // The guardian stood down: the background sleep still runs.
    std::thread::sleep(Duration::from_millis(200));
    assert!(!is_gone(pid), "a normal end kills nothing");
    signal(pid as u32, libc::SIGKILL);
}

// ---------------------------------------------------------------------------
// 9. `--exec` never fails because of what a message contains; a message it
// cannot hand over is put back once, never retried in a loop.

#[test]
fn a_message_the_worker_cannot_hand_over_goes_back_once_behind_the_others() {
    let broker = Broker::start();
    broker.ok(&["create", "jobs", "--max-deliveries", "3"]);
    broker.ok(&["send", "jobs", "first"]);
    broker.ok(&["send", "jobs", "second"]);
    // No sh on PATH: the command cannot be started, whatever the message.
    let child = broker
        .ctl()
        .args(["recv", "jobs", "--ack", "--follow", "--exec", "cat"])
        .env("PATH", "/nonexistent")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn mailboxctl");
    let output = Running::from_child(child).finish_within(Duration::from_secs(15), "the worker");
    assert_eq!(exit_code(&output), 1, "{}", stderr(&output));
    assert!(
        stderr(&output).contains("cannot start the command"),
        "{}",
        stderr(&output)
    );
    // Put back at the tail, counted: the next message is not blocked.
    let next = broker.ok(&["--json", "recv", "jobs", "--nonblock"]);
    assert_eq!(
        mailbox_tests::json_lines(next.as_bytes())[0]["payload"],
        "second"
    );
    let again = broker.ok(&["--json", "recv", "jobs", "--nonblock"]);
    let again = &mailbox_tests::json_lines(again.as_bytes())[0];
    assert_eq!(again["payload"], "first");
    assert_eq!(again["redeliveries"], 1);
}

#[test]
fn a_poison_key_is_refused_at_the_broker_and_a_valid_one_reaches_the_command() {
    let broker = Broker::start();
    broker.ok(&["create", "jobs"]);
    let mut client = mailbox_client::blocking::Client::connect(broker.socket()).expect("connect");
    let post = |client: &mut mailbox_client::blocking::Client, key: &str| {
        let options = mailbox_client::SendOptions {
            key: Some(key.into()),
            ..Default::default()
        };
        client.post(
            mailbox_client::Target::mailbox("jobs"),
            "poison",
            options,
            mailbox_client::Wait::Never,
        )
    };
    // Sent with the protocol directly (mailboxctl's arguments cannot hold a
    // NUL): the broker refuses it, so it can never block a worker.
    let refused = post(&mut client, "a\0b").expect_err("a NUL in a key");
    assert_eq!(
        refused.kind(),
        Some(mailbox_client::ErrorKind::InvalidRequest),
        "{refused}"
    );
    assert_eq!(broker.info("jobs")["messages_accepted"], 0);
    post(&mut client, "é-1").expect("a valid key");
    let output = broker.run(&[
        "recv",
        "jobs",
        "--ack",
        "--exec",
        r#"test "$MAILBOX_KEY" = "é-1" && test "$MAILBOX_KEY_HEX" = c3a92d31 && test "$(cat)" = poison"#,
    ]);
    assert_eq!(exit_code(&output), 0, "{}", stderr(&output));
}
