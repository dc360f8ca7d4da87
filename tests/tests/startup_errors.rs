//! How `mailboxd` fails to start: each failure is one line on stderr,
//! `mailboxd: <what is wrong>; <what to do>`, printed once, naming only
//! what exists, with the exit code (1, or 2 for a usage error); and its log
//! has no colour codes when stderr is not a terminal.

use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::process::Command;

use mailbox_tests::{binary, Broker};

/// Runs `mailboxd` as `command` says and expects it to exit at once:
/// its exit code and stderr.
fn failed_start(command: &mut Command) -> (i32, String) {
    let output = mailbox_tests::failed_start(command);
    let code = output.status.code().expect("an exit code");
    (code, String::from_utf8_lossy(&output.stderr).into_owned())
}

/// The one failure line of `stderr` (log lines may come before it), after
/// checking that there is exactly one and that it says `says`.
fn failure_line<'a>(stderr: &'a str, says: &[&str]) -> &'a str {
    let lines: Vec<&str> = stderr
        .lines()
        .filter(|line| line.starts_with("mailboxd: ") || line.contains("ERROR"))
        .collect();
    assert_eq!(lines.len(), 1, "one failure line, printed once: {stderr}");
    for text in says {
        assert!(lines[0].contains(text), "{text:?} not in {stderr}");
    }
    lines[0]
}

fn mailboxd() -> Command {
    let mut command = Command::new(binary("mailboxd"));
    command.env_remove("MAILBOX_SOCKET");
    command
}

#[test]
fn a_socket_directory_the_user_may_not_create_is_one_line_with_a_hint() {
    // As uid 65534 with an empty environment, in a root-only directory
    // (0700) in which it may create nothing.
    let closed = tempfile::tempdir().expect("temp dir");
    let socket = closed.path().join("mailbox").join("mailboxd.sock");
    let (code, stderr) = failed_start(
        mailboxd()
            .args(["--socket".as_ref(), socket.as_os_str()])
            .env_clear()
            .env("PATH", "/usr/bin:/bin")
            .uid(65534)
            .gid(65534),
    );
    assert_eq!(code, 1, "{stderr}");
    let line = failure_line(
        &stderr,
        &[
            &format!(
                "mailboxd: cannot create the socket directory {}: Permission denied",
                closed.path().join("mailbox").display()
            ),
            "set MAILBOX_SOCKET or --socket to a path in a directory you own",
        ],
    );
    assert_eq!(line.matches("Permission denied").count(), 1, "{line}");
    assert!(
        !line.contains("configuration"),
        "no configuration exists: {line}"
    );
}

#[test]
fn a_second_broker_on_a_live_socket_says_which_and_what_to_do() {
    let broker = Broker::start();
    let (code, stderr) = failed_start(mailboxd().arg("--socket").arg(broker.socket()));
    assert_eq!(code, 1, "{stderr}");
    failure_line(
        &stderr,
        &[
            &format!(
                "mailboxd: another broker is already listening on {}",
                broker.socket().display()
            ),
            "stop it first, or give this one another socket with --socket or MAILBOX_SOCKET",
        ],
    );
}

#[test]
fn a_bad_configuration_names_the_file_line_and_key_and_how_to_check_it() {
    let dir = tempfile::tempdir().expect("temp dir");
    let config = dir.path().join("mailboxd.toml");
    std::fs::write(&config, "[limits]\nmemory_budget = \"lots\"\n").expect("write");
    let socket = dir.path().join("mailboxd.sock");
    let (code, stderr) = failed_start(
        mailboxd()
            .arg("--config")
            .arg(&config)
            .arg("--socket")
            .arg(&socket),
    );
    assert_eq!(code, 1, "{stderr}");
    failure_line(
        &stderr,
        &[
            &format!("mailboxd: {}:2: limits.memory_budget: ", config.display()),
            &format!(
                "fix the file; `mailboxd --check-config --config {}` checks it",
                config.display()
            ),
        ],
    );

    let missing = dir.path().join("missing.toml");
    let (code, stderr) = failed_start(mailboxd().arg("--config").arg(&missing));
    assert_eq!(code, 1, "{stderr}");
    failure_line(
        &stderr,
        &[
            &format!(
                "mailboxd: {}: cannot read it: No such file",
                missing.display()
            ),
            "leave --config out to use /etc/mailbox/mailboxd.toml or the built-in defaults",
        ],
    );
}

#[test]
fn a_bad_flag_value_is_one_line_and_exit_2() {
    let (code, stderr) = failed_start(mailboxd().args(["--memory-budget", "lots"]));
    assert_eq!(code, 2, "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    failure_line(
        &stderr,
        &[
            "mailboxd: invalid value 'lots' for '--memory-budget <BYTES>'",
            "; see mailboxd --help",
        ],
    );
}

#[test]
fn a_broken_socket_activation_environment_is_one_line_with_a_hint() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (code, stderr) = failed_start(
        mailboxd()
            .arg("--socket")
            .arg(dir.path().join("mailboxd.sock"))
            .env("LISTEN_PID", "self")
            .env("LISTEN_FDS", "1"),
    );
    assert_eq!(code, 1, "{stderr}");
    failure_line(
        &stderr,
        &[
            "mailboxd: LISTEN_PID=\"self\" is not a process id",
            "start mailboxd from its mailboxd.socket unit, or unset LISTEN_PID and LISTEN_FDS",
        ],
    );
}

#[test]
fn the_log_written_to_a_file_has_no_colour_codes() {
    let dir = tempfile::tempdir().expect("temp dir");
    let log = dir.path().join("mailboxd.log");
    let file = std::fs::File::create(&log).expect("create the log file");
    std::fs::set_permissions(&log, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    let broker = Broker::start_configured(&[], |command| {
        command
            .stderr(file)
            .env("RUST_LOG", "info")
            .env("TERM", "xterm-256color")
            .env_remove("NO_COLOR");
    });
    let (status, _) = broker.terminate();
    assert!(status.success());
    let written = std::fs::read(&log).expect("read the log");
    let text = String::from_utf8_lossy(&written);
    assert!(text.contains("mailboxd listening"), "{text}");
    assert!(
        !written.contains(&0x1b),
        "escape codes in a log file: {text:?}"
    );
}

#[test]
fn a_file_in_the_way_of_the_socket_is_named_and_left_alone() {
    let dir = tempfile::tempdir().expect("temp dir");
    let socket = dir.path().join("mailboxd.sock");
    std::fs::write(&socket, "not a socket").expect("write");
    let (code, stderr) = failed_start(mailboxd().arg("--socket").arg(&socket));
    assert_eq!(code, 1, "{stderr}");
    failure_line(
        &stderr,
        &[&format!(
            "mailboxd: {} is in the way: it is not a socket; remove it, or choose another path",
            socket.display()
        )],
    );
    assert_eq!(
        std::fs::read(&socket).expect("still there"),
        b"not a socket"
    );
}
