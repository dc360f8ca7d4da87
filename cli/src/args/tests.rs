//! The command line's own tests: what each command accepts and refuses.

use std::ffi::OsStr;
use std::time::Duration;

use clap::CommandFactory;
use mailbox_client::{Address, DeliveryPolicy, Stage, Target};

use super::{Cli, Command, StageArg};
use crate::testing::{command, usage_error};

#[test]
fn the_command_line_is_consistent() {
    Cli::command().debug_assert();
}

#[test]
fn send_goes_to_exactly_one_of_a_mailbox_and_a_process() {
    // A mailbox and a message, as before.
    let Command::Send { to, .. } = command(&["send", "jobs", "hi"]) else {
        panic!("send");
    };
    assert_eq!(to.target(), Target::mailbox("jobs"));
    assert_eq!(to.message.as_deref(), Some(OsStr::new("hi")));

    // With --to, the one argument is the message.
    let Command::Send { to, .. } = command(&["send", "--to", "worker", "hi"]) else {
        panic!("send");
    };
    assert_eq!(to.target(), Target::process("worker"));
    assert_eq!(to.message.as_deref(), Some(OsStr::new("hi")));
    assert_eq!(to.mailbox, None);

    // Digits are a process address; no argument: the message is stdin.
    let Command::Send { to, .. } = command(&["send", "--to", "42"]) else {
        panic!("send");
    };
    assert_eq!(to.target(), Target::Process(Address::Process(42)));
    assert_eq!(to.message, None);

    for args in [
        &["send", "jobs", "hi", "--to", "worker"][..],
        &["send"][..],
        &["send", "--nonblock"][..],
        &["call", "jobs", "ping", "--to", "7"][..],
        &["call"][..],
    ] {
        let error = usage_error(args);
        assert_eq!(error.exit_code(), 2, "{args:?}: {error}");
    }
    let both = usage_error(&["send", "jobs", "hi", "--to", "worker"]).to_string();
    assert!(both.contains("not both"), "{both}");
}

#[test]
fn send_takes_a_stage_a_key_and_a_time_to_live() {
    let Command::Send {
        stage, key, ttl, ..
    } = command(&[
        "send",
        "jobs",
        "hi",
        "--wait",
        "acknowledged",
        "--key",
        "customer-1",
        "--ttl",
        "1.5s",
    ])
    else {
        panic!("send");
    };
    assert_eq!(stage.map(Stage::from), Some(Stage::Acknowledged));
    assert_eq!(key.as_deref(), Some("customer-1"));
    assert_eq!(ttl, Some(1500));
    let Command::Send { stage, ttl, .. } =
        command(&["send", "jobs", "--wait", "received", "--ttl", "0.1ms"])
    else {
        panic!("send");
    };
    assert_eq!(stage, Some(StageArg::Received));
    assert_eq!(ttl, Some(1), "rounded up to whole milliseconds");
    for args in [
        &["send", "jobs", "--wait", "delivered"][..],
        &["send", "jobs", "--ttl", "0ms"][..],
        &["send", "jobs", "--ttl", "10"][..],
    ] {
        assert_eq!(usage_error(args).exit_code(), 2, "{args:?}");
    }
}

#[test]
fn recv_takes_the_inbox_acks_priorities_and_a_command() {
    let Command::Recv {
        name,
        inbox,
        from,
        ack,
        priority,
        exec,
        follow,
        ..
    } = command(&[
        "recv",
        "--from",
        "7",
        "--ack",
        "--priority",
        "-3",
        "--exec",
        "wc -c",
        "--follow",
    ])
    else {
        panic!("recv");
    };
    assert_eq!(name, None);
    assert!(!inbox, "--from implies it");
    assert!(ack && follow);
    assert_eq!(from, Some(Address::Process(7)));
    assert_eq!(priority, -3);
    assert_eq!(exec.as_deref(), Some(OsStr::new("wc -c")));
    let Command::Recv { priority, ack, .. } = command(&["recv", "jobs"]) else {
        panic!("recv");
    };
    assert_eq!((priority, ack), (0, false));
    assert!(matches!(
        command(&["recv", "--inbox"]),
        Command::Recv {
            name: None,
            inbox: true,
            from: None,
            ..
        }
    ));
    for args in [
        &["recv"][..],
        &["recv", "jobs", "--inbox"][..],
        &["recv", "jobs", "--from", "7"][..],
        &["recv", "jobs", "--count", "2", "--follow"][..],
        &["recv", "jobs", "--priority", "high"][..],
    ] {
        assert_eq!(usage_error(args).exit_code(), 2, "{args:?}");
    }
}

#[test]
fn call_create_names_and_as_parse() {
    let cli = Cli::parse_for_test(&[
        "call",
        "--to",
        "svc",
        "ping",
        "--timeout",
        "2s",
        "--as",
        "me",
    ])
    .expect("valid");
    assert_eq!(cli.as_name.as_deref(), Some("me"));
    let Command::Call {
        to, timeout, key, ..
    } = cli.command
    else {
        panic!("call");
    };
    assert_eq!(to.target(), Target::process("svc"));
    assert_eq!(to.message.as_deref(), Some(OsStr::new("ping")));
    assert_eq!(timeout, Some(Duration::from_secs(2)));
    assert_eq!(key, None);

    let Command::Create {
        policy,
        max_deliveries,
        dead_letter,
        ttl,
        ..
    } = command(&[
        "create",
        "jobs",
        "--policy",
        "hash",
        "--max-deliveries",
        "3",
        "--dead-letter",
        "jobs.dead",
        "--ttl",
        "1m",
    ])
    else {
        panic!("create");
    };
    assert_eq!(policy, DeliveryPolicy::Hash);
    assert_eq!(max_deliveries, Some(3));
    assert_eq!(dead_letter.as_deref(), Some("jobs.dead"));
    assert_eq!(ttl, Some(60_000));
    assert!(matches!(
        command(&["create", "p", "--policy", "priority"]),
        Command::Create {
            policy: DeliveryPolicy::Priority,
            ..
        }
    ));
    assert_eq!(
        usage_error(&["create", "jobs", "--max-deliveries", "0"]).exit_code(),
        2
    );
    assert!(matches!(command(&["--as", "me", "names"]), Command::Names));
}

#[test]
fn peek_takes_a_mailbox_a_count_and_a_cursor() {
    assert!(matches!(
        command(&["peek", "jobs"]),
        Command::Peek { ref name, count: 10, after: None } if name == "jobs"
    ));
    assert!(matches!(
        command(&["peek", "jobs", "--count", "3", "--after", "7"]),
        Command::Peek {
            count: 3,
            after: Some(7),
            ..
        }
    ));
    for args in [
        &["peek"][..],
        &["peek", "jobs", "--count", "0"][..],
        &["peek", "jobs", "--after", "-1"][..],
    ] {
        assert_eq!(usage_error(args).exit_code(), 2, "{args:?}");
    }
}

#[test]
fn as_and_inbox_mode_come_before_or_after_the_command_once() {
    for args in [
        &["--as", "svc", "--inbox-mode", "0622", "recv", "--inbox"][..],
        &["recv", "--inbox", "--as", "svc", "--inbox-mode", "0622"][..],
    ] {
        let cli = Cli::parse_for_test(args).expect("valid");
        assert_eq!(cli.as_name.as_deref(), Some("svc"), "{args:?}");
        assert_eq!(cli.inbox_mode, Some(0o622), "{args:?}");
    }
    let twice = usage_error(&["--as", "a", "send", "--as", "b", "jobs", "x"]).to_string();
    assert!(twice.contains("give it once"), "{twice}");
    // Only where they mean something: not after commands without an inbox.
    for args in [
        &["top", "--as", "svc"][..],
        &["list", "--as", "svc"][..],
        &["send", "jobs", "x", "--inbox-mode", "0622"][..],
    ] {
        assert_eq!(usage_error(args).exit_code(), 2, "{args:?}");
    }
}

#[test]
fn framing_flags_are_one_of_three_and_only_for_text_output() {
    for args in [
        &["recv", "jobs", "--raw", "-0"][..],
        &["recv", "jobs", "--raw", "--delimiter", ","][..],
        &["--json", "recv", "jobs", "-0"][..],
        &["recv", "jobs", "--exec", "cat", "--raw"][..],
        &["send", "jobs", "x", "--raw"][..],
    ] {
        assert_eq!(usage_error(args).exit_code(), 2, "{args:?}");
    }
    assert!(command(&["recv", "jobs", "--delimiter", "\\n"])
        .framing()
        .is_some_and(|framing| framing.delimiter.is_some()));
}

#[test]
fn receipts_are_asked_for_with_verbose() {
    assert!(command(&["delete", "jobs", "-v"]).verbose());
    assert!(command(&["send", "jobs", "x", "--verbose"]).verbose());
    assert!(!command(&["create", "jobs"]).verbose());
    assert_eq!(usage_error(&["list", "-v"]).exit_code(), 2);
}
