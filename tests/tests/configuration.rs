//! The configuration file, end to end: a real `mailboxd` started with
//! `--config`: the file at start and under `--check-config` (its errors
//! naming file, line and key), SIGHUP reloads, and the limits it and the
//! flags (old spellings included) set.
//!
//! The broker's directory is world-accessible and `mailboxctl` sits beside
//! it (see `mailbox_tests::configured_broker`), so the limit per uid can be
//! tried as uid 65534 under `setpriv`; that test needs root, and run as
//! anyone else it says so and does nothing.

use std::io::{ErrorKind as IoErrorKind, Read};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::process::{Command, Output, Stdio};

use bytes::BytesMut;
use mailbox_proto::{decode_server_frame, ErrorKind, ServerFrame};
use mailbox_tests::configured_broker::{ConfiguredBroker, OPEN_SOCKET};
use mailbox_tests::other_users::{root, OTHER};
use mailbox_tests::{assert_exit, binary, stderr, wait_until, PATIENCE};

// ---------------------------------------------------------------------------
// The file, at start and with --check-config.

#[test]
fn declared_mailboxes_exist_at_start_with_their_owner_group_and_mode() {
    let setup = ConfiguredBroker::start(
        r#"
[access]
default_mode = "0700"

[[mailbox]]
name = "jobs"
capacity = 4
policy = "priority"
max_message_size = "4K"
owner = "nobody"
group = 100
mode = "0764"

[[mailbox]]
name = "plain"
"#,
        &[],
    );
    let jobs = setup.broker.info("jobs");
    assert_eq!(jobs["owner_uid"], 65534, "{jobs}");
    assert_eq!(jobs["group_gid"], 100, "{jobs}");
    assert_eq!(jobs["mode"], "0764", "{jobs}");
    assert_eq!(jobs["capacity"], "4", "{jobs}");
    assert_eq!(jobs["policy"], "priority", "{jobs}");
    assert_eq!(jobs["max_message_size"], 4096, "{jobs}");
    // Defaults: the broker's uid and gid, and [access] default_mode.
    // SAFETY: no preconditions.
    let (uid, gid) = unsafe { (libc::geteuid(), libc::getegid()) };
    let plain = setup.broker.info("plain");
    assert_eq!(plain["owner_uid"], uid, "{plain}");
    assert_eq!(plain["group_gid"], gid, "{plain}");
    assert_eq!(plain["mode"], "0700", "{plain}");
    assert_eq!(plain["capacity"], "unbounded", "{plain}");
    // The text form shows them too.
    let text = setup.broker.ok(&["info", "jobs"]);
    assert!(text.contains("mode: 0764"), "{text}");
    // The owner by name (nobody, on most systems) and uid, or its uid alone.
    assert!(
        text.lines().any(
            |line| line.starts_with("owner: ") && line.ends_with(" (65534)")
                || line == "owner: uid 65534"
        ),
        "{text}"
    );
    // A mailbox created by a client gets [access] default_mode.
    setup.broker.ok(&["create", "made"]);
    assert_eq!(setup.broker.info("made")["mode"], "0700");
}

#[test]
fn the_socket_gets_the_configured_mode_and_group() {
    let setup = ConfiguredBroker::start("[socket]\nmode = \"0660\"\ngroup = 65534\n", &[]);
    let meta = std::fs::metadata(setup.broker.socket()).expect("socket metadata");
    assert_eq!(meta.permissions().mode() & 0o7777, 0o660);
    assert_eq!(meta.gid(), 65534);
    setup.broker.ok(&["status"]);
}

/// `mailboxd --check-config --config PATH`.
fn check_config(path: &Path) -> Output {
    Command::new(binary("mailboxd"))
        .arg("--check-config")
        .arg("--config")
        .arg(path)
        .output()
        .expect("run mailboxd --check-config")
}

#[test]
fn check_config_accepts_a_good_file_and_names_file_line_and_key_of_a_bad_one() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("mailboxd.toml");
    let shown = path.display().to_string();

    std::fs::write(
        &path,
        "[limits]\nmax_connections = 10\nhandshake_timeout = \"5s\"\n\n[[mailbox]]\nname = \"jobs\"\n",
    )
    .expect("write");
    let output = check_config(&path);
    assert_exit(&output, 0, "a good file");
    assert_eq!(
        String::from_utf8_lossy(&output.stdout).trim(),
        format!("ok: {shown}")
    );

    for (text, expected) in [
        (
            "[socket]\nmode = \"0666\"\n\n[limits]\nmax_connections = \"lots\"\n",
            format!("{shown}:5: limits.max_connections: expected a number"),
        ),
        (
            "[limits]\nmax_conections = 5\n",
            format!("{shown}:2: limits.max_conections: unknown key `max_conections`"),
        ),
        (
            "[limits]\nmemory_budget = \"64Q\"\n",
            format!("{shown}:2: limits.memory_budget: unknown unit \"Q\""),
        ),
        (
            "[[mailbox]]\nname = \"a\"\n\n[[mailbox]]\nname = \"b\"\ncapacity = \"lots\"\n",
            format!("{shown}:6: mailbox[1].capacity: \"lots\": expected \"zero\""),
        ),
    ] {
        std::fs::write(&path, text).expect("write");
        let output = check_config(&path);
        assert_exit(&output, 1, text);
        let said = stderr(&output);
        assert!(
            said.starts_with(&expected),
            "{text:?}:\n got {said}\nwant {expected}"
        );
        assert_eq!(said.lines().count(), 1, "one line: {said}");

        // The broker refuses to start on it, with the same line.
        let started = Command::new(binary("mailboxd"))
            .arg("--config")
            .arg(&path)
            .arg("--socket")
            .arg(dir.path().join("never.sock"))
            .output()
            .expect("run mailboxd");
        assert_exit(&started, 1, "mailboxd on a bad file");
        assert!(stderr(&started).contains(&expected), "{}", stderr(&started));
        assert!(!dir.path().join("never.sock").exists());
    }

    let missing = dir.path().join("missing.toml");
    let output = check_config(&missing);
    assert_exit(&output, 1, "a missing file named with --config");
    assert!(
        stderr(&output).contains("cannot read it"),
        "{}",
        stderr(&output)
    );
}

#[test]
fn the_readme_example_configuration_is_valid() {
    let readme_path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../README.md");
    let readme = std::fs::read_to_string(&readme_path).expect("read README.md");
    let section = readme
        .split_once("\n## Configuration\n")
        .map(|(_, rest)| rest)
        .expect("README.md has a Configuration section");
    let example = section
        .split_once("```toml\n")
        .and_then(|(_, rest)| rest.split_once("```"))
        .map(|(example, _)| example)
        .expect("the Configuration section has a ```toml example");
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("mailboxd.toml");
    std::fs::write(&path, example).expect("write");
    let output = check_config(&path);
    assert_exit(&output, 0, "the README's example");
    // With every commented key uncommented (names replaced by ids, which
    // exist everywhere), it is still valid.
    let uncommented: String = example
        .lines()
        .map(|line| match line.strip_prefix("# ") {
            Some(key) if key.contains(" = ") && !key.starts_with(' ') => {
                let value = key.split_once('#').map_or(key, |(value, _)| value);
                let value = value
                    .replace("\"mailbox-admin\"", "4242")
                    .replace("\"mailbox\"", "4243")
                    .replace("\"staff\"", "4244")
                    .replace("\"@staff\"", "\"@4244\"")
                    .replace("\"alice\"", "1000");
                format!("{value}\n")
            }
            _ => format!("{line}\n"),
        })
        .collect();
    std::fs::write(&path, &uncommented).expect("write");
    let output = check_config(&path);
    assert_exit(&output, 0, &uncommented);
}

// ---------------------------------------------------------------------------
// SIGHUP.

#[test]
fn sighup_applies_new_mailboxes_limits_and_permissions_and_keeps_queued_messages() {
    let before = r#"
[socket]
mode = "0666"

[limits]
max_connections = 100
memory_budget = "1M"

[[mailbox]]
name = "jobs"
capacity = 8

[[mailbox]]
name = "kept"
"#;
    // The command line's --memory-budget wins over the file, at every reload.
    let setup = ConfiguredBroker::start(before, &["--memory-budget", "2M"]);
    assert_eq!(setup.limit("max_connections"), 100);
    assert_eq!(setup.limit("memory_budget"), 2 << 20);
    for message in ["one", "two", "three"] {
        setup.broker.ok(&["send", "jobs", message]);
    }
    assert!(!setup.exists("later"));

    setup.reload(
        r#"
[socket]
mode = "0666"

[limits]
max_connections = 50
memory_budget = "4M"

[[mailbox]]
name = "jobs"
capacity = 16
mode = "0766"

[[mailbox]]
name = "later"
capacity = "zero"
"#,
    );
    wait_until("the new limit is in force", || {
        setup.limit("max_connections") == 50
    });
    assert_eq!(
        setup.limit("memory_budget"),
        2 << 20,
        "--memory-budget still wins"
    );
    let later = setup.broker.info("later");
    assert_eq!(later["capacity"], "zero", "{later}");
    // jobs: its permissions changed, its settings (and so its queue) kept,
    // with a warning that they differ from the file.
    let jobs = setup.broker.info("jobs");
    assert_eq!(jobs["mode"], "0766", "{jobs}");
    assert_eq!(jobs["capacity"], "8", "{jobs}");
    assert_eq!(jobs["queued_messages"], 3, "{jobs}");
    setup.wait_for_log("other settings than the configuration declares", 1);
    // A mailbox no longer in the file stays.
    assert!(setup.exists("kept"));
    assert_eq!(
        setup.broker.ok(&["recv", "jobs", "--count", "3"]),
        "onetwothree"
    );
    let log = setup.log();
    assert!(log.contains("configuration reloaded"), "{log}");
}

#[test]
fn a_broken_file_on_sighup_keeps_the_old_configuration() {
    let good = "[limits]\nmax_connections = 100\n\n[[mailbox]]\nname = \"jobs\"\n";
    let setup = ConfiguredBroker::start(good, &[]);
    setup.broker.ok(&["send", "jobs", "queued"]);

    setup.reload("[limits]\nmax_connections = \"lots\"\n\n[[mailbox]]\nname = \"new\"\n");
    let expected = format!(
        "{}:2: limits.max_connections: expected a number",
        setup.config().display()
    );
    setup.wait_for_log(&expected, 1);
    assert!(
        setup.log().contains("configuration not reloaded"),
        "{}",
        setup.log()
    );
    // Still serving, on the old configuration.
    assert_eq!(setup.limit("max_connections"), 100);
    assert!(!setup.exists("new"));
    assert_eq!(setup.broker.ok(&["recv", "jobs", "--nonblock"]), "queued");
    setup.broker.ok(&["create", "other"]);

    // An unknown key is just as bad.
    setup.reload("[limits]\nmax_connections = 7\nmax_conections = 8\n");
    setup.wait_for_log("limits.max_conections: unknown key", 1);
    assert_eq!(setup.limit("max_connections"), 100);

    // Once fixed, a reload applies it.
    setup.reload("[limits]\nmax_connections = 42\n");
    wait_until("the fixed file is in force", || {
        setup.limit("max_connections") == 42
    });
    let (status, _) = setup.broker.terminate();
    assert!(status.success(), "{status:?}");
}

// ---------------------------------------------------------------------------
// Limits.

#[test]
fn max_connections_per_uid_refuses_a_further_client_naming_the_limit() {
    if !root() {
        return;
    }
    let setup = ConfiguredBroker::start(
        &format!("{OPEN_SOCKET}\n[limits]\nmax_connections_per_uid = 1\n"),
        &[],
    );
    let id = OTHER.to_string();
    let ids = ["--reuid", &id, "--regid", &id, "--clear-groups"];
    // One connection of uid 65534, waiting in its inbox.
    let mut holder = setup
        .as_user_command(&ids, &["recv", "--inbox"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn the holder");
    wait_until("the holder is connected", || {
        setup.status()["connections"].as_u64() == Some(2)
    });
    let refused = setup.as_other(&["status"]);
    assert_ne!(refused.status.code(), Some(0));
    let said = stderr(&refused);
    assert!(said.contains("max_connections_per_uid"), "{said}");
    assert!(said.contains("uid 65534"), "{said}");
    assert_eq!(said.lines().count(), 1, "{said}");
    // Other uids are not affected.
    setup.broker.ok(&["status"]);
    let _ = holder.kill();
    let _ = holder.wait();
    wait_until("the holder is gone", || {
        setup.status()["connections"].as_u64() == Some(1)
    });
    assert_exit(&setup.as_other(&["status"]), 0, "after the holder left");
}

#[test]
fn max_requests_in_flight_is_one_setting_under_its_flag_and_its_old_flag() {
    let new = ConfiguredBroker::start("", &["--max-requests-in-flight", "9"]);
    assert_eq!(new.limit("max_requests_in_flight"), 9);
    assert!(!new.log().contains("deprecated"), "{}", new.log());
    // The old flag, as scripts may still spell it: the same setting, and
    // one line in the log naming the new one.
    let old = ConfiguredBroker::start("", &["--max-waiting-per-connection", "7"]);
    assert_eq!(old.limit("max_requests_in_flight"), 7);
    old.wait_for_log(
        "--max-waiting-per-connection is deprecated: it is now called --max-requests-in-flight",
        1,
    );
}

#[test]
fn a_silent_connection_is_closed_after_the_handshake_timeout() {
    let setup = ConfiguredBroker::start("[limits]\nhandshake_timeout = \"300ms\"\n", &[]);
    let mut stream = UnixStream::connect(setup.broker.socket()).expect("connect");
    stream
        .set_read_timeout(Some(PATIENCE))
        .expect("read timeout");
    let mut incoming = BytesMut::new();
    let mut frames = Vec::new();
    loop {
        if let Some(frame) = decode_server_frame(&mut incoming, u32::MAX).expect("decodes") {
            frames.push(frame);
            continue;
        }
        let mut chunk = [0u8; 4096];
        match stream.read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => incoming.extend_from_slice(&chunk[..n]),
            Err(error) if error.kind() == IoErrorKind::ConnectionReset => break,
            Err(error) => panic!("the broker did not close the silent connection: {error}"),
        }
    }
    match frames.as_slice() {
        [ServerFrame::Goodbye(error)] => {
            assert_eq!(error.kind, ErrorKind::ProtocolViolation, "{error}");
            assert!(error.message.contains("no hello within 300ms"), "{error}");
        }
        other => panic!("expected one goodbye, got {other:?}"),
    }
    setup.broker.ok(&["status"]);
}
