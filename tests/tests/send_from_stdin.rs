//! `mailboxctl send` with the payload on stdin: it stops reading at the
//! largest message the protocol carries and fails at once, instead of
//! reading all of stdin before checking the size.

use std::process::Stdio;
use std::time::Duration;

use mailbox_tests::{exit_code, stderr, Broker, Running};

// ---------------------------------------------------------------------------
// 17. `send` reads all of stdin before checking the size.

#[test]
fn send_stops_reading_stdin_at_the_largest_message_and_fails_at_once() {
    use std::io::Write;
    let broker = Broker::start();
    broker.ok(&["create", "small", "--max-size", "1KiB"]);
    let mut child = broker
        .ctl()
        .args(["send", "small"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn mailboxctl");
    let mut stdin = child.stdin.take().expect("stdin");
    const OFFERED: usize = 64 << 20;
    let writer = std::thread::spawn(move || {
        let chunk = vec![b'x'; 1 << 20];
        let mut written = 0;
        while written < OFFERED {
            match stdin.write_all(&chunk) {
                Ok(()) => written += chunk.len(),
                Err(error) => {
                    assert_eq!(error.kind(), std::io::ErrorKind::BrokenPipe, "{error}");
                    break;
                }
            }
        }
        written
    });
    let output = Running::from_child(child).finish_within(Duration::from_secs(15), "send");
    let written = writer.join().expect("writer");
    assert_eq!(exit_code(&output), 65, "{}", stderr(&output));
    assert!(
        stderr(&output).contains("larger than"),
        "{}",
        stderr(&output)
    );
    // It stopped at 16 MiB (plus what the pipe holds), not at 64.
    assert!(
        written < 24 << 20,
        "mailboxctl read {written} bytes of stdin"
    );
    // Below the protocol's limit, the mailbox's own maximum is the broker's
    // to enforce, with the same exit code.
    let over = broker.run_with_input(&["send", "small"], &[b'x'; 2048]);
    assert_eq!(exit_code(&over), 65, "{}", stderr(&over));
}
