//! Request/reply across real processes: `mailboxctl call`, handlers built
//! with `recv --exec`, a handler that leaves without replying, many calls
//! outstanding on one connection of the client library, and conversations
//! over two mailboxes with `blocking::Client::exchange` (`mailbox-peer ask`
//! and `echo`), also by a stranger (`setpriv`, as root only).

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use std::process::Stdio;

use mailbox_client::{Client, Target};
use mailbox_tests::configured_broker::{ConfiguredBroker, OPEN_SOCKET};
use mailbox_tests::{binary, exit_code, json_lines, other_users, stderr, Broker};

#[test]
fn a_shell_handler_answers_calls_with_its_output() {
    let broker = Broker::start();
    broker.ok(&["create", "svc"]);
    let _handler = broker.spawn_group(&[
        "recv",
        "svc",
        "--exec",
        r#"printf '%s:' "$MAILBOX_CALL"; tr a-z A-Z"#,
        "--follow",
    ]);
    broker.wait_for_info("svc", "waiting_receivers", 1);

    let reply = broker.ok(&["call", "svc", "hello", "--timeout", "5s"]);
    let (call, text) = reply.split_once(':').expect("CALL:REPLY");
    assert_eq!(text, "HELLO");
    assert!(
        call.parse::<u64>().is_ok(),
        "MAILBOX_CALL is the call id: {reply}"
    );

    let json = broker.ok(&["--json", "call", "svc", "abc", "--timeout", "5s"]);
    let reply = &json_lines(json.as_bytes())[0];
    let call = reply["call"].as_u64().expect("the reply names its call");
    assert_eq!(reply["payload"], format!("{call}:ABC"), "{reply}");
    assert_eq!(reply["sequence"], 0, "replies carry sequence 0: {reply}");
    assert_eq!(reply["mailbox"], serde_json::Value::Null, "{reply}");
}

#[test]
fn a_named_process_answers_calls_to_its_inbox() {
    let broker = Broker::start();
    let _handler = broker.spawn_group(&[
        "--as",
        "upper",
        "recv",
        "--inbox",
        "--exec",
        "tr a-z A-Z",
        "--follow",
    ]);
    mailbox_tests::wait_until("upper is claimed", || {
        broker.names().iter().any(|entry| entry["name"] == "upper")
    });
    for word in ["hello", "again"] {
        let reply = broker.ok(&["call", "--to", "upper", word, "--timeout", "5s"]);
        assert_eq!(reply, word.to_ascii_uppercase());
    }
    assert_eq!(
        exit_code(&broker.run(&["call", "--to", "nobody", "x", "--timeout", "5s"])),
        68
    );
}

#[test]
fn a_handler_that_leaves_without_replying_fails_the_call_at_once_with_76() {
    let broker = Broker::start();
    broker.ok(&["create", "svc"]);
    let start = Instant::now();
    let caller = broker.spawn(&["call", "svc", "hello", "--timeout", "10s"]);
    broker.wait_for_info("svc", "queued_messages", 1);

    // Takes the request, prints it, exits: no reply.
    assert_eq!(broker.ok(&["recv", "svc"]), "hello");
    let output = caller.finish();
    let elapsed = start.elapsed();
    assert_eq!(exit_code(&output), 76, "{}", stderr(&output));
    assert!(
        elapsed < Duration::from_secs(5),
        "NoReply comes when the handler leaves, not at the timeout: {elapsed:?}"
    );
    let text = stderr(&output);
    assert_eq!(text.lines().count(), 1, "{text}");
    assert!(text.contains("left without replying"), "{text}");
}

#[test]
fn a_request_held_by_a_killed_handler_goes_to_the_next_handler() {
    let broker = Broker::start();
    broker.ok(&["create", "svc"]);
    let mut caller = broker.spawn(&["call", "svc", "hello", "--timeout", "10s"]);
    broker.wait_for_info("svc", "queued_messages", 1);

    // Holds the request with manual acknowledgement and hangs; killed.
    let stuck = broker.spawn_group(&["recv", "svc", "--ack", "--exec", "sleep 1000"]);
    broker.wait_for_info("svc", "in_flight", 1);
    stuck.signal_leader(libc::SIGKILL);
    broker.wait_for_info("svc", "queued_messages", 1);
    assert!(
        caller.is_running(),
        "the request went back, the call goes on"
    );

    let answered = broker.run(&[
        "recv",
        "svc",
        "--exec",
        r#"printf '%s:' "$MAILBOX_REDELIVERIES"; tr a-z A-Z"#,
    ]);
    assert_eq!(exit_code(&answered), 0, "{}", stderr(&answered));
    let output = caller.finish();
    assert_eq!(exit_code(&output), 0, "{}", stderr(&output));
    assert_eq!(output.stdout, b"1:HELLO");
    drop(stuck);
}

#[test]
fn a_call_that_nobody_takes_in_time_is_withdrawn() {
    let broker = Broker::start();
    broker.ok(&["create", "svc"]);
    let output = broker.run(&["call", "svc", "lost", "--timeout", "300ms"]);
    assert_eq!(exit_code(&output), 124, "{}", stderr(&output));
    assert_eq!(broker.info("svc")["queued_messages"], 0);
    assert_eq!(
        exit_code(&broker.run(&["recv", "svc", "--timeout", "200ms"])),
        124
    );
}

/// Five calls from one connection, all outstanding at once (the handler
/// answers none before it holds all five), answered in reverse order: each
/// gets its own reply.
#[test]
fn many_calls_outstanding_on_one_connection_each_get_their_own_reply() {
    const CALLS: u64 = 5;
    let broker = Broker::start();
    broker.ok(&["create", "svc"]);
    let handler = broker.peer("serve-reversed", "svc", CALLS);

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let (address, replies) = runtime.block_on(async {
        let client = Client::connect(broker.socket()).await.expect("connect");
        let mut calls = tokio::task::JoinSet::new();
        for index in 0..CALLS {
            let client = client.clone();
            calls.spawn(async move {
                let request = format!("request-{index}");
                let reply = client
                    .call(
                        Target::mailbox("svc"),
                        request.clone(),
                        Duration::from_secs(10),
                    )
                    .await;
                (request, reply)
            });
        }
        let mut replies = Vec::new();
        while let Some(joined) = calls.join_next().await {
            let (request, reply) = joined.expect("call task");
            let reply = reply.unwrap_or_else(|error| panic!("{request}: {error}"));
            replies.push((request, reply));
        }
        (client.address(), replies)
    });

    let mut call_ids = BTreeSet::new();
    for (request, reply) in &replies {
        assert_eq!(reply.payload, request.to_ascii_uppercase(), "{request}");
        call_ids.insert(reply.metadata.call().expect("a reply names its call"));
    }
    assert_eq!(call_ids.len(), CALLS as usize, "one call id per call");

    let output = handler.finish();
    assert!(output.status.success(), "{}", stderr(&output));
    let text = String::from_utf8_lossy(&output.stdout);
    let requests: Vec<&str> = text.lines().filter(|l| l.starts_with("request ")).collect();
    assert_eq!(requests.len(), CALLS as usize, "{text}");
    for line in requests {
        let fields: Vec<&str> = line.split(' ').collect();
        assert_eq!(
            fields[2],
            address.to_string(),
            "all from one connection: {line}"
        );
        assert!(
            call_ids.contains(&fields[1].parse().expect("call id")),
            "{line}"
        );
    }
}

/// The output of a finished `mailbox-peer`, which must have exited 0.
fn peer_output(what: &str, output: std::process::Output) -> String {
    assert_eq!(exit_code(&output), 0, "{what}: {}", stderr(&output));
    String::from_utf8_lossy(&output.stdout).trim().to_owned()
}

#[test]
fn two_processes_converse_with_exchange_one_step_per_request() {
    let broker = Broker::start();
    // Capacity 1 each way: a step is admitted only once the last was taken.
    broker.ok(&["create", "req", "--capacity", "1"]);
    broker.ok(&["create", "req.rep", "--capacity", "1"]);
    let echo = broker.peer("echo", "req", 300);
    let ask = broker.peer("ask", "req", 300);
    assert_eq!(peer_output("ask", ask.finish()), "ok 300");
    assert_eq!(peer_output("echo", echo.finish()), "ok 300");
    for name in ["req", "req.rep"] {
        let info = broker.info(name);
        assert_eq!(info["queued_messages"], 0, "{info}");
        assert_eq!(info["waiting_receivers"], 0, "{info}");
    }
    assert_eq!(broker.info("req")["messages_accepted"], 300);
    assert_eq!(broker.info("req.rep")["messages_accepted"], 300);
}

#[test]
fn an_exchange_waits_for_room_when_the_quiet_send_finds_none() {
    let broker = Broker::start();
    broker.ok(&["create", "req", "--capacity", "1"]);
    broker.ok(&["create", "req.rep", "--capacity", "1"]);
    // `req` is full: the asker's quiet send fails with WouldBlock, and its
    // send then waits, its receive posted, until the message ahead of it
    // is taken.
    broker.ok(&["send", "req", "early"]);
    let ask = broker.peer("ask", "req", 1);
    broker.wait_for_info("req", "waiting_senders", 1);
    assert_eq!(broker.info("req.rep")["waiting_receivers"], 1);
    assert_eq!(broker.ok(&["recv", "req"]), "early");
    let echo = broker.peer("echo", "req", 1);
    assert_eq!(peer_output("ask", ask.finish()), "ok 1");
    assert_eq!(peer_output("echo", echo.finish()), "ok 1");
    assert_eq!(broker.info("req")["messages_accepted"], 2);
}

#[test]
fn a_refused_exchange_withdraws_its_receive() {
    let broker = Broker::start();
    broker.ok(&["create", "req.rep"]);
    let ask = broker.peer("ask", "req", 1);
    assert_eq!(
        peer_output("ask", ask.finish()),
        "refused NoSuchMailbox, receive Some(Cancelled)\nok 1"
    );
    assert_eq!(broker.info("req.rep")["waiting_receivers"], 0);
}

#[test]
fn a_stranger_exchange_is_refused_as_a_send_and_moves_nothing() {
    if !other_users::root() {
        return;
    }
    const STRANGER: u32 = 65534;
    let setup = ConfiguredBroker::start(OPEN_SOCKET, &[]);
    let broker = &setup.broker;
    // Others may receive replies but not send requests.
    broker.ok(&["create", "req", "--mode", "0704"]);
    broker.ok(&["create", "req.rep", "--mode", "0704"]);
    let output = other_users::as_uid(STRANGER, &binary("mailbox-peer"))
        .args(["ask", &broker.socket().to_string_lossy(), "req", "1"])
        .stdin(Stdio::null())
        .output()
        .expect("run mailbox-peer ask as a stranger");
    assert_eq!(
        peer_output("stranger's ask", output),
        "refused PermissionDenied, receive Some(Cancelled)\nok 1"
    );
    for name in ["req", "req.rep"] {
        let info = broker.info(name);
        assert_eq!(info["messages_accepted"], 0, "{info}");
        assert_eq!(info["waiting_receivers"], 0, "{info}");
    }
    // Given the send right, the same stranger converses.
    broker.ok(&["chmod", "req", "0706"]);
    let echo = broker.peer("echo", "req", 5);
    let ask = other_users::as_uid(STRANGER, &binary("mailbox-peer"))
        .args(["ask", &broker.socket().to_string_lossy(), "req", "5"])
        .stdin(Stdio::null())
        .output()
        .expect("run mailbox-peer ask as a stranger");
    assert_eq!(peer_output("stranger's ask", ask), "ok 5");
    assert_eq!(peer_output("echo", echo.finish()), "ok 5");
}
