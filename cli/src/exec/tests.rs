//! `recv --exec`'s tests: the command's environment, its input and a
//! call's reply.

use std::ffi::OsStr;

use mailbox_client::{Details, Message};
use mailbox_proto::fixtures;

use super::{environment, execute, Handed};

/// Message 9 (redelivered 7 times) with the given call id and key; its
/// sender is connection 4, pid 1, uid 2 ([`fixtures::message`]).
fn call_message(call: Option<u64>, key: Option<&str>) -> Message {
    let mut message = match (call, key) {
        (None, None) => fixtures::message(9, "ping"),
        _ => fixtures::message_with(
            9,
            "ping",
            Details {
                key: key.map(str::to_owned),
                call,
                ..Default::default()
            },
        ),
    };
    message.metadata.redeliveries = 7;
    message
}

#[test]
fn exec_gets_the_metadata_in_its_environment() {
    let variables = environment(Some("jobs"), &call_message(Some(5), Some("k1")));
    let get = |name: &str| {
        variables
            .iter()
            .find(|(variable, _)| *variable == name)
            .and_then(|(_, value)| value.clone())
            .map(|value| value.into_string().expect("utf-8"))
    };
    assert_eq!(get("MAILBOX_MAILBOX").as_deref(), Some("jobs"));
    assert_eq!(get("MAILBOX_SEQUENCE").as_deref(), Some("9"));
    assert_eq!(get("MAILBOX_SENDER").as_deref(), Some("4"));
    assert_eq!(get("MAILBOX_SENDER_PID").as_deref(), Some("1"));
    assert_eq!(get("MAILBOX_SENDER_UID").as_deref(), Some("2"));
    assert_eq!(get("MAILBOX_REDELIVERIES").as_deref(), Some("7"));
    assert_eq!(get("MAILBOX_KEY").as_deref(), Some("k1"));
    assert_eq!(get("MAILBOX_CALL").as_deref(), Some("5"));
    // Unset ones are removed, so that none leaks from mailboxctl's own.
    assert_eq!(get("MAILBOX_KEY_HEX").as_deref(), Some("6b31"));
    let plain = environment(None, &call_message(None, None));
    for name in [
        "MAILBOX_MAILBOX",
        "MAILBOX_KEY",
        "MAILBOX_KEY_HEX",
        "MAILBOX_CALL",
    ] {
        assert!(plain.contains(&(name, None)), "{name} removed");
    }
    // A key no environment variable can hold is left out, and given in
    // hexadecimal; no value holds a NUL byte, so the command can start.
    let poison = environment(None, &call_message(None, Some("a\0b")));
    assert!(poison.contains(&("MAILBOX_KEY", None)));
    assert!(poison.contains(&("MAILBOX_KEY_HEX", Some("610062".into()))));
    for (name, value) in &poison {
        let bytes = value.as_ref().map(|v| v.as_encoded_bytes().to_vec());
        assert!(
            !bytes.unwrap_or_default().contains(&0),
            "{name} holds a NUL"
        );
    }
    let ran = execute(
        OsStr::new("test -z \"$MAILBOX_KEY\" && test \"$MAILBOX_KEY_HEX\" = 610062"),
        None,
        &call_message(None, Some("a\0b")),
    )
    .expect("ran");
    assert!(
        matches!(ran, Handed::Ran(ref ran) if ran.status.success()),
        "{ran:?}"
    );
}

#[test]
fn exec_feeds_the_payload_and_captures_a_calls_reply() {
    let ran = |cmd: &str, message: &Message| match execute(OsStr::new(cmd), Some("jobs"), message)
        .expect("ran")
    {
        Handed::Ran(ran) => ran,
        Handed::NotStarted(error) => panic!("not started: {error}"),
    };
    let ran1 = ran(
        r#"cat; printf ' %s %s' "$MAILBOX_CALL" "$MAILBOX_MAILBOX""#,
        &call_message(Some(5), None),
    );
    assert!(ran1.status.success());
    assert_eq!(ran1.stdout, b"ping 5 jobs");
    // A command that ignores its input and fails.
    let ran = ran("exit 3", &call_message(None, None));
    assert_eq!(ran.status.code(), Some(3));
    assert!(ran.stdout.is_empty(), "not a call: stdout is not captured");
}
