//! The client's own defences, end to end: it checks who answers on the
//! socket before trusting it, gives up on a broker that stopped answering,
//! says when a socket is a permission problem rather than a stopped broker,
//! and (`mailboxctl`) bounds what it reads and what it leaves running.
//!
//! Tests about other users run processes under `setpriv --reuid 65534`
//! (util-linux); they need root, and run as anyone else they say so and do
//! nothing.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use mailbox_client::{ConnectOptions, Error};
use mailbox_tests::{binary, exit_code, require_tool, signal, Broker, Running};

/// The uid and gid of "another user" (nobody, nogroup).
const OTHER: u32 = 65534;

fn is_root() -> bool {
    // SAFETY: geteuid cannot fail.
    unsafe { libc::geteuid() == 0 }
}

/// `setpriv` arguments that make the rest run as uid:gid `OTHER`.
fn as_other(program: &Path) -> Command {
    let id = OTHER.to_string();
    let mut command = Command::new(require_tool("setpriv", "apt-get install util-linux"));
    command
        .args(["--reuid", &id, "--regid", &id, "--clear-groups"])
        .arg(program);
    command
}

/// A broker running as uid `OTHER`, its socket in a directory it owns.
fn broker_as_other() -> Broker {
    let dir = tempfile::Builder::new()
        .prefix("mailbox-other-broker-")
        .tempdir_in("/tmp")
        .expect("temp dir");
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755))
        .expect("chmod temp dir");
    let run = dir.path().join("run");
    std::fs::create_dir(&run).expect("socket dir");
    std::os::unix::fs::chown(&run, Some(OTHER), Some(OTHER)).expect("chown socket dir");
    std::fs::set_permissions(&run, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let socket = run.join("mailboxd.sock");
    let child = as_other(&binary("mailboxd"))
        .arg("--socket")
        .arg(&socket)
        .args(["--log-level", "warn"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn mailboxd as another user");
    Broker::adopt(child, socket, dir)
}

fn ctl(socket: &Path) -> Command {
    let mut command = Command::new(binary("mailboxctl"));
    command
        .arg("--socket")
        .arg(socket)
        .stdin(Stdio::null())
        .env_remove("MAILBOX_BROKER_UID");
    command
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

// ---------------------------------------------------------------------------
// 12. Clients trust whoever answers.

#[test]
fn a_broker_of_another_user_is_refused_unless_named() {
    if !is_root() {
        eprintln!("skipped: needs root to run a broker as uid {OTHER}");
        return;
    }
    let broker = broker_as_other();
    let socket = broker.socket().to_owned();

    // Root does not trust a broker run by nobody: exit 78, nothing sent.
    let refused = ctl(&socket).arg("list").output().expect("mailboxctl");
    assert_eq!(exit_code(&refused), 78, "{}", stderr(&refused));
    let said = stderr(&refused);
    assert!(said.contains("runs as uid 65534"), "{said}");
    assert!(said.contains("MAILBOX_BROKER_UID=65534"), "{said}");
    // (The test process has no MAILBOX_BROKER_UID.)
    let refused = mailbox_client::blocking::Client::connect(&socket).expect_err("refused");
    assert!(
        matches!(refused, Error::UntrustedBroker { uid: OTHER, .. }),
        "{refused}"
    );

    // Named by the environment variable, by name or number, or the flag:
    // accepted.
    for (variable, flag) in [
        (Some("65534"), None),
        (Some("nobody"), None),
        (None, Some("nobody")),
    ] {
        let mut command = ctl(&socket);
        if let Some(value) = variable {
            command.env("MAILBOX_BROKER_UID", value);
        }
        if let Some(value) = flag {
            command.args(["--broker-uid", value]);
        }
        let accepted = command.arg("list").output().expect("mailboxctl");
        assert_eq!(exit_code(&accepted), 0, "{}", stderr(&accepted));
    }
    let options = ConnectOptions::new().broker_user(OTHER.to_string());
    mailbox_client::blocking::Client::connect_with(&socket, &options).expect("named: accepted");

    // Its own user trusts it by default.
    let own = as_other(&binary("mailboxctl"))
        .arg("--socket")
        .arg(&socket)
        .arg("list")
        .env_remove("MAILBOX_BROKER_UID")
        .stdin(Stdio::null())
        .output()
        .expect("setpriv mailboxctl");
    assert_eq!(exit_code(&own), 0, "{}", stderr(&own));
}

#[test]
fn a_root_broker_is_trusted_by_everyone() {
    if !is_root() {
        eprintln!("skipped: needs root to run a client as uid {OTHER}");
        return;
    }
    let broker = Broker::start_for_everyone();
    let output = as_other(&binary("mailboxctl"))
        .arg("--socket")
        .arg(broker.socket())
        .arg("list")
        .env_remove("MAILBOX_BROKER_UID")
        .stdin(Stdio::null())
        .output()
        .expect("setpriv mailboxctl");
    assert_eq!(exit_code(&output), 0, "{}", stderr(&output));
}

// ---------------------------------------------------------------------------
// 13. Hangs.

/// A broker stopped with SIGSTOP until dropped (then SIGCONT, so that it can
/// be killed cleanly).
struct Stopped<'a>(&'a Broker);

impl<'a> Stopped<'a> {
    fn new(broker: &'a Broker) -> Self {
        signal(broker.pid(), libc::SIGSTOP);
        Self(broker)
    }
}

impl Drop for Stopped<'_> {
    fn drop(&mut self) {
        signal(self.0.pid(), libc::SIGCONT);
    }
}

/// Waits at most `limit` for `child`; kills it and fails if it is still
/// running then.
fn finish_within(child: Child, limit: Duration, what: &str) -> Output {
    let started = Instant::now();
    let mut running = Running::from_child(child);
    while running.is_running() {
        assert!(
            started.elapsed() < limit,
            "{what} still runs after {limit:?}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    running.finish()
}

#[test]
fn a_timed_command_returns_from_a_stopped_broker() {
    let broker = Broker::start();
    broker.ok(&["create", "q"]);
    let _stopped = Stopped::new(&broker);
    // The broker is stopped before the command connects (the handshake
    // hangs) and for every form of waiting the command has.
    for args in [
        &["recv", "q", "--timeout", "500ms"][..],
        &["recv", "q", "--nonblock"],
        &["send", "q", "hello", "--timeout", "500ms"],
        &["call", "q", "hello", "--timeout", "500ms"],
    ] {
        let child = broker
            .ctl()
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn mailboxctl");
        // Deadline 0.5 s plus the 2 s grace; generous for a loaded machine.
        let output = finish_within(child, Duration::from_secs(15), &format!("{args:?}"));
        assert_eq!(exit_code(&output), 69, "{args:?}: {}", stderr(&output));
        assert!(
            stderr(&output).contains("did not answer"),
            "{args:?}: {}",
            stderr(&output)
        );
    }
}

#[test]
fn the_library_gives_up_on_a_broker_stopped_after_the_handshake() {
    let broker = Broker::start();
    broker.ok(&["create", "q"]);
    let mut blocking = mailbox_client::blocking::Client::connect(broker.socket()).expect("connect");
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let client = runtime
        .block_on(mailbox_client::Client::connect(broker.socket()))
        .expect("connect");
    let stopped = Stopped::new(&broker);

    let started = Instant::now();
    let error = blocking
        .receive_timeout("q", Duration::from_millis(300))
        .expect_err("no answer");
    assert!(matches!(error, Error::NoAnswer { .. }), "{error}");
    assert!(started.elapsed() < Duration::from_secs(15));
    // The connection is closed for good.
    let again = blocking.try_receive("q").expect_err("closed");
    assert!(matches!(again, Error::NoAnswer { .. }), "{again}");

    let started = Instant::now();
    let error = runtime
        .block_on(client.receive_timeout("q", Duration::from_millis(300)))
        .expect_err("no answer");
    assert!(matches!(error, Error::NoAnswer { .. }), "{error}");
    assert!(started.elapsed() < Duration::from_secs(15));

    // Connecting with a timeout to the stopped broker gives up too.
    let options = ConnectOptions::new().timeout(Duration::from_millis(300));
    let error = mailbox_client::blocking::Client::connect_with(broker.socket(), &options)
        .expect_err("no welcome");
    assert!(matches!(error, Error::NoAnswer { .. }), "{error}");
    let error = runtime
        .block_on(mailbox_client::Client::connect_with(
            broker.socket(),
            &options,
        ))
        .expect_err("no welcome");
    assert!(matches!(error, Error::NoAnswer { .. }), "{error}");

    // Resumed, the async connection still works.
    drop(stopped);
    runtime
        .block_on(client.send("q", "after"))
        .expect("works again");
}

// ---------------------------------------------------------------------------
// 19. A socket the user may not open.

#[test]
fn a_socket_behind_a_closed_directory_is_a_permission_problem() {
    if !is_root() {
        eprintln!("skipped: needs root to run a client as uid {OTHER}");
        return;
    }
    // The socket in a directory of root's, mode 0700, in one everyone may
    // enter.
    let dir = tempfile::Builder::new()
        .prefix("mailbox-closed-")
        .tempdir_in("/tmp")
        .expect("temp dir");
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let private = dir.path().join("private");
    std::fs::create_dir(&private).expect("private dir");
    std::fs::set_permissions(&private, std::fs::Permissions::from_mode(0o700)).expect("chmod");
    let socket = private.join("mailboxd.sock");
    let child = Command::new(binary("mailboxd"))
        .arg("--socket")
        .arg(&socket)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn mailboxd");
    let broker = Broker::adopt(child, socket, dir);
    let output = as_other(&binary("mailboxctl"))
        .arg("--socket")
        .arg(broker.socket())
        .arg("list")
        .stdin(Stdio::null())
        .output()
        .expect("setpriv mailboxctl");
    assert_eq!(exit_code(&output), 69, "{}", stderr(&output));
    let said = stderr(&output);
    assert!(said.contains("permission problem"), "{said}");
    assert!(!said.contains("is the broker running"), "{said}");
    assert!(
        said.contains(&format!("directory {}", private.display())),
        "{said}"
    );
    assert!(said.contains("mode 0700"), "{said}");
}

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
    let output = finish_within(child, Duration::from_secs(15), "send");
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
    let output = finish_within(child, Duration::from_secs(15), "the worker");
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

/// Fills the listen backlog of a stopped broker with connections nobody
/// accepts, until a non-blocking connect says EAGAIN; returns them (to keep
/// them open) or `None` if the backlog did not fill within `most`.
fn fill_backlog(socket: &Path, most: usize) -> Option<Vec<std::os::fd::OwnedFd>> {
    use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
    use std::os::unix::ffi::OsStrExt;
    let bytes = socket.as_os_str().as_bytes();
    // SAFETY: an all-zero sockaddr_un is valid.
    let mut address: libc::sockaddr_un = unsafe { std::mem::zeroed() };
    address.sun_family = libc::AF_UNIX as libc::sa_family_t;
    for (to, from) in address.sun_path.iter_mut().zip(bytes) {
        *to = *from as libc::c_char;
    }
    let mut held = Vec::new();
    while held.len() < most {
        // SAFETY: plain system calls; the fd is owned at once.
        let socket = unsafe {
            OwnedFd::from_raw_fd(libc::socket(
                libc::AF_UNIX,
                libc::SOCK_STREAM | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
                0,
            ))
        };
        // SAFETY: `address` is a valid sockaddr_un of the size given.
        let rc = unsafe {
            libc::connect(
                socket.as_raw_fd(),
                (&address as *const libc::sockaddr_un).cast(),
                std::mem::size_of::<libc::sockaddr_un>() as libc::socklen_t,
            )
        };
        if rc != 0 {
            let error = std::io::Error::last_os_error();
            assert_eq!(error.raw_os_error(), Some(libc::EAGAIN), "{error}");
            return Some(held);
        }
        held.push(socket);
    }
    None
}

#[test]
fn a_full_backlog_of_a_stopped_broker_does_not_hang_a_timed_command() {
    let broker = Broker::start();
    broker.ok(&["create", "q"]);
    let _stopped = Stopped::new(&broker);
    let Some(_held) = fill_backlog(broker.socket(), 10_000) else {
        eprintln!("skipped: the listen backlog did not fill with 10,000 connections");
        return;
    };
    let child = broker
        .ctl()
        .args(["recv", "q", "--timeout", "500ms"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn mailboxctl");
    let output = finish_within(child, Duration::from_secs(15), "recv");
    assert_eq!(exit_code(&output), 69, "{}", stderr(&output));
    assert!(
        stderr(&output).contains("did not answer"),
        "{}",
        stderr(&output)
    );
}
