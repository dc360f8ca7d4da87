//! mailboxd's log under systemd: journal-format lines (a syslog priority,
//! no timestamp, no colour) when stderr is the stream `$JOURNAL_STREAM`
//! names, the usual format otherwise.

use std::fs::File;
use std::os::unix::fs::MetadataExt;

use mailbox_tests::Broker;

/// Runs a broker with stderr in a file and `JOURNAL_STREAM` set by
/// `journal_stream` from the file's (device, inode); returns the log.
fn log_with_journal_stream(journal_stream: impl FnOnce(u64, u64) -> String) -> String {
    let dir = tempfile::tempdir().expect("temp dir");
    let log_path = dir.path().join("stderr.log");
    let log = File::create(&log_path).expect("log file");
    let metadata = log.metadata().expect("stat log");
    let stream = journal_stream(metadata.dev(), metadata.ino());
    let broker = Broker::start_configured(&[], |command| {
        command
            .env("RUST_LOG", "info")
            .env("JOURNAL_STREAM", &stream)
            .stderr(log);
    });
    broker.ok(&["status"]);
    let (status, _) = broker.terminate();
    assert!(status.success());
    std::fs::read_to_string(&log_path).expect("read log")
}

#[test]
fn with_stderr_on_the_journal_stream_every_line_carries_a_syslog_priority() {
    let log = log_with_journal_stream(|device, inode| format!("{device}:{inode}"));
    assert!(!log.contains('\x1b'), "no colour: {log:?}");
    let lines: Vec<&str> = log.lines().collect();
    assert!(lines.len() >= 3, "{log}");
    for line in &lines {
        let priority = line
            .strip_prefix('<')
            .and_then(|rest| rest.split_once('>'))
            .map(|(n, _)| n);
        assert!(
            matches!(priority, Some("3" | "4" | "6" | "7")),
            "every line starts with <N>: {line:?}"
        );
        // journald stamps entries itself.
        assert!(
            !line.chars().nth(3).is_some_and(|c| c.is_ascii_digit()),
            "no timestamp: {line:?}"
        );
    }
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("<6>") && l.contains("mailboxd listening")),
        "{log}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("<6>") && l.contains("SIGTERM received")),
        "{log}"
    );
}

#[test]
fn with_stderr_elsewhere_the_log_keeps_its_usual_format() {
    // Another stream's device:inode: stderr is not the journal.
    let log = log_with_journal_stream(|device, inode| format!("{device}:{}", inode + 1));
    let listening = log
        .lines()
        .find(|l| l.contains("mailboxd listening"))
        .unwrap_or_else(|| panic!("{log}"));
    assert!(!listening.starts_with('<'), "{listening:?}");
    assert!(listening.contains("INFO"), "{listening:?}");
    // The usual format starts with a timestamp like 2025-01-31T12:00:00Z.
    let plain = strip_colour(listening);
    let stamp = plain.as_bytes();
    assert!(
        stamp.len() > 10 && stamp[..4].iter().all(u8::is_ascii_digit) && stamp[4] == b'-',
        "{plain:?}"
    );
}

/// `text` without ANSI colour sequences (`ESC [ ... m`).
fn strip_colour(text: &str) -> String {
    let mut plain = String::new();
    let mut rest = text;
    while let Some(start) = rest.find('\x1b') {
        plain.push_str(&rest[..start]);
        rest = rest[start..].split_once('m').map_or("", |(_, after)| after);
    }
    plain.push_str(rest);
    plain
}
