//! The configuration file, SIGHUP reloads, limits and access control, end to
//! end: a real `mailboxd` started with `--config`, and `mailboxctl` run as
//! root and as other uids.
//!
//! Clients of other uids run under `setpriv --reuid 65534 --regid 65534
//! --clear-groups` (util-linux). For them to reach the broker, each test's
//! directory is world-accessible, the socket's mode comes from the
//! configuration (`0666`), and `mailboxctl` is linked or copied into the
//! directory (the target directory may not be reachable by other users).
//! Those tests need root; run as anyone else they say so and do nothing.

use std::fs::File;
use std::io::{ErrorKind as IoErrorKind, Read};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use bytes::BytesMut;
use mailbox_proto::{decode_server_frame, ErrorKind, ServerFrame};
use mailbox_tests::{binary, require_tool, signal, wait_until, Broker, PATIENCE};
use serde_json::Value;

/// The uid and gid clients of "another user" run as (nobody, nogroup).
const OTHER: u32 = 65534;

/// A broker started from a configuration file in a directory every user
/// can reach.
struct Setup {
    broker: Broker,
    config: PathBuf,
    log: PathBuf,
    ctl: PathBuf,
}

/// A temporary directory whose ancestors every user may traverse.
fn shared_temp_dir() -> tempfile::TempDir {
    let reachable = |dir: &Path| {
        dir.ancestors().all(|ancestor| {
            std::fs::metadata(ancestor).is_ok_and(|meta| meta.permissions().mode() & 0o001 != 0)
        })
    };
    let base = std::env::temp_dir();
    let base = if reachable(&base) {
        base
    } else {
        PathBuf::from("/tmp")
    };
    let dir = tempfile::Builder::new()
        .prefix("mailbox-access-")
        .tempdir_in(base)
        .expect("temp dir");
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755))
        .expect("chmod temp dir");
    dir
}

impl Setup {
    /// Starts `mailboxd --config FILE` with `config` as the file, plus `args`.
    fn start(config: &str, args: &[&str]) -> Self {
        let dir = shared_temp_dir();
        let path = dir.path().to_owned();
        let config_path = path.join("mailboxd.toml");
        std::fs::write(&config_path, config).expect("write config");
        let ctl = path.join("mailboxctl");
        let built = binary("mailboxctl");
        if std::fs::hard_link(&built, &ctl).is_err() {
            std::fs::copy(&built, &ctl).expect("copy mailboxctl");
        }
        std::fs::set_permissions(&ctl, std::fs::Permissions::from_mode(0o755))
            .expect("chmod mailboxctl");
        let socket = path.join("mailboxd.sock");
        let log = path.join("mailboxd.log");
        let child = Command::new(binary("mailboxd"))
            .arg("--config")
            .arg(&config_path)
            .arg("--socket")
            .arg(&socket)
            .args(["--log-level", "info"])
            .args(args)
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(File::create(&log).expect("log file"))
            .spawn()
            .expect("spawn mailboxd");
        let broker = Broker::adopt(child, socket, dir);
        Self {
            broker,
            config: config_path,
            log,
            ctl,
        }
    }

    /// What the broker logged so far.
    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Waits until the log contains `text` `count` times or more.
    fn wait_for_log(&self, text: &str, count: usize) {
        wait_until(&format!("the log says {text:?} {count} times"), || {
            self.log().matches(text).count() >= count
        });
    }

    /// Replaces the configuration file and sends SIGHUP.
    fn reload(&self, config: &str) {
        std::fs::write(&self.config, config).expect("rewrite config");
        signal(self.broker.pid(), libc::SIGHUP);
    }

    /// `mailboxctl ARGS` as uid:gid `OTHER`, without supplementary groups.
    fn as_other(&self, args: &[&str]) -> Output {
        let id = OTHER.to_string();
        self.as_user(&["--reuid", &id, "--regid", &id, "--clear-groups"], args)
    }

    /// `mailboxctl ARGS` under `setpriv IDS`.
    fn as_user(&self, ids: &[&str], args: &[&str]) -> Output {
        self.as_user_command(ids, args)
            .output()
            .expect("run setpriv mailboxctl")
    }

    fn as_user_command(&self, ids: &[&str], args: &[&str]) -> Command {
        let mut command = Command::new(require_tool("setpriv", "apt-get install util-linux"));
        command
            .args(ids)
            .arg(&self.ctl)
            .arg("--socket")
            .arg(self.broker.socket())
            .args(args)
            .stdin(Stdio::null());
        command
    }

    /// `mailboxctl --json status`, parsed.
    fn status(&self) -> Value {
        let text = self.broker.ok(&["--json", "status"]);
        serde_json::from_str(text.trim()).expect("status is one JSON object")
    }

    /// A limit as `status` reports it.
    fn limit(&self, name: &str) -> u64 {
        self.status()["limits"][name]
            .as_u64()
            .unwrap_or_else(|| panic!("status has no limit {name}: {}", self.status()))
    }

    /// Whether mailbox `name` exists.
    fn exists(&self, name: &str) -> bool {
        self.broker.run(&["info", name]).status.success()
    }
}

/// Whether this process is root (the cross-uid tests need to be).
fn root() -> bool {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } == 0 {
        return true;
    }
    eprintln!("note: not root, so this test cannot run clients as other uids; skipped");
    false
}

/// Asserts `output` exited with `code`, showing its stderr otherwise.
#[track_caller]
fn assert_exit(output: &Output, code: i32, what: &str) {
    assert_eq!(
        output.status.code(),
        Some(code),
        "{what}: stdout {:?} stderr {:?}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// The configuration most tests start from: a socket others can connect to.
const OPEN_SOCKET: &str = "[socket]\nmode = \"0666\"\n";

// ---------------------------------------------------------------------------
// The file, at start and with --check-config.

#[test]
fn declared_mailboxes_exist_at_start_with_their_owner_group_and_mode() {
    let setup = Setup::start(
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
    let setup = Setup::start("[socket]\nmode = \"0660\"\ngroup = 65534\n", &[]);
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
    let setup = Setup::start(before, &["--memory-budget", "2M"]);
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
    let setup = Setup::start(good, &[]);
    setup.broker.ok(&["send", "jobs", "queued"]);

    setup.reload("[limits]\nmax_connections = \"lots\"\n\n[[mailbox]]\nname = \"new\"\n");
    let expected = format!(
        "{}:2: limits.max_connections: expected a number",
        setup.config.display()
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
    let setup = Setup::start(
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
    let new = Setup::start("", &["--max-requests-in-flight", "9"]);
    assert_eq!(new.limit("max_requests_in_flight"), 9);
    assert!(!new.log().contains("deprecated"), "{}", new.log());
    // The old flag, as scripts may still spell it: the same setting, and
    // one line in the log naming the new one.
    let old = Setup::start("", &["--max-waiting-per-connection", "7"]);
    assert_eq!(old.limit("max_requests_in_flight"), 7);
    old.wait_for_log(
        "--max-waiting-per-connection is deprecated: it is now called --max-requests-in-flight",
        1,
    );
}

#[test]
fn a_silent_connection_is_closed_after_the_handshake_timeout() {
    let setup = Setup::start("[limits]\nhandshake_timeout = \"300ms\"\n", &[]);
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

// ---------------------------------------------------------------------------
// Access control across uids.

#[test]
fn others_without_rights_are_refused_and_change_nothing() {
    if !root() {
        return;
    }
    let setup = Setup::start(OPEN_SOCKET, &[]);
    setup.broker.ok(&["create", "secret"]);
    setup.broker.ok(&["send", "secret", "for root"]);
    let before = setup.broker.info("secret");
    assert_eq!(before["mode"], "0760");
    assert_eq!(before["owner_uid"], 0);

    for args in [
        &["send", "secret", "intruder"][..],
        &["recv", "secret", "--nonblock"],
        &["delete", "secret"],
        &["info", "secret"],
        &["purge", "secret"],
        &["chmod", "secret", "0777"],
        &["chown", "secret", "65534"],
    ] {
        let output = setup.as_other(args);
        assert_exit(&output, 77, &format!("{args:?} as uid 65534"));
        let said = stderr(&output);
        assert!(said.contains("permission denied"), "{said}");
        assert!(said.contains("uid 65534"), "{said}");
    }
    let after = setup.broker.info("secret");
    assert_eq!(before, after, "nothing changed");
    assert_eq!(
        setup.broker.ok(&["recv", "secret", "--nonblock"]),
        "for root"
    );
    setup.wait_for_log("permission denied", 7);
}

#[test]
fn chmod_gives_others_exactly_the_rights_of_its_mode() {
    if !root() {
        return;
    }
    let setup = Setup::start(OPEN_SOCKET, &[]);
    setup.broker.ok(&["create", "inbox"]);
    // 0762: others may send (2), not receive (4) or manage (1).
    let changed = setup.broker.ok(&["chmod", "inbox", "0762", "-v"]);
    assert!(changed.contains("0762"), "{changed}");
    assert_eq!(setup.broker.info("inbox")["mode"], "0762");
    assert_exit(&setup.as_other(&["send", "inbox", "hello"]), 0, "send");
    assert_exit(&setup.as_other(&["info", "inbox"]), 0, "info");
    assert_exit(
        &setup.as_other(&["recv", "inbox", "--nonblock"]),
        77,
        "recv",
    );
    assert_exit(&setup.as_other(&["delete", "inbox"]), 77, "delete");
    assert_exit(&setup.as_other(&["purge", "inbox"]), 77, "purge");
    assert_eq!(setup.broker.info("inbox")["queued_messages"], 1);

    // 0766: others may send and receive (6), still not manage.
    setup.broker.ok(&["chmod", "inbox", "0766"]);
    assert_eq!(
        setup.as_other(&["recv", "inbox", "--nonblock"]).stdout,
        b"hello"
    );
    assert_exit(&setup.as_other(&["send", "inbox", "again"]), 0, "send");
    assert_exit(&setup.as_other(&["delete", "inbox"]), 77, "delete");
    assert_exit(&setup.as_other(&["chmod", "inbox", "0777"]), 77, "chmod");

    // 0761: others may manage (1) but not send or receive.
    setup.broker.ok(&["chmod", "inbox", "0761"]);
    assert_exit(&setup.as_other(&["send", "inbox", "x"]), 77, "send");
    assert_exit(&setup.as_other(&["purge", "inbox"]), 0, "purge");
    assert_eq!(setup.broker.info("inbox")["queued_messages"], 0);

    // Root purges: the queue empties, the mailbox stays.
    setup.broker.ok(&["send", "inbox", "one"]);
    setup.broker.ok(&["send", "inbox", "two"]);
    let purged = setup.broker.ok(&["--json", "purge", "inbox"]);
    let purged: Value = serde_json::from_str(purged.trim()).expect("json");
    assert_eq!(purged["purged"], 2);
    assert_eq!(setup.broker.info("inbox")["queued_messages"], 0);
    assert_exit(
        &setup.as_other(&["delete", "inbox"]),
        0,
        "delete with manage",
    );
    assert!(!setup.exists("inbox"));
}

#[test]
fn a_mailbox_belongs_to_its_creator_and_root_may_do_everything() {
    if !root() {
        return;
    }
    let setup = Setup::start(OPEN_SOCKET, &[]);
    assert_exit(
        &setup.as_other(&["create", "mine", "--mode", "0700"]),
        0,
        "create as uid 65534",
    );
    let mine = setup.broker.info("mine");
    assert_eq!(mine["owner_uid"], OTHER, "{mine}");
    assert_eq!(mine["group_gid"], OTHER, "{mine}");
    assert_eq!(mine["mode"], "0700", "{mine}");
    // Its owner may use and manage it.
    assert_exit(&setup.as_other(&["send", "mine", "a"]), 0, "owner sends");
    assert_exit(
        &setup.as_other(&["chmod", "mine", "0760"]),
        0,
        "owner chmods",
    );
    // Root may do everything, whatever the mode.
    setup.broker.ok(&["chmod", "mine", "0000"]);
    setup.broker.ok(&["send", "mine", "b"]);
    assert_eq!(setup.broker.ok(&["recv", "mine", "--count", "2"]), "ab");
    setup.broker.ok(&["chown", "mine", "root:100"]);
    let mine = setup.broker.info("mine");
    assert_eq!(mine["owner_uid"], 0, "{mine}");
    assert_eq!(mine["group_gid"], 100, "{mine}");
    // No longer its owner's: mode 0000 leaves uid 65534 nothing.
    assert_exit(
        &setup.as_other(&["delete", "mine"]),
        77,
        "former owner deletes",
    );
    setup.broker.ok(&["chown", "mine", ":nogroup"]);
    assert_eq!(setup.broker.info("mine")["group_gid"], 65534);
    setup.broker.ok(&["delete", "mine"]);
    assert!(!setup.exists("mine"));

    // create --group, by root.
    setup
        .broker
        .ok(&["create", "shared", "--mode", "0770", "--group", "100"]);
    let shared = setup.broker.info("shared");
    assert_eq!(shared["group_gid"], 100, "{shared}");
    assert_eq!(shared["mode"], "0770", "{shared}");
    // Unknown users and groups are usage errors, before anything is sent.
    let output = setup.broker.run(&["chown", "shared", "no-such-user-here"]);
    assert_exit(&output, 2, "chown to an unknown user");
    assert!(
        stderr(&output).contains("no user named"),
        "{}",
        stderr(&output)
    );
}

#[test]
fn the_admin_group_may_manage_every_mailbox_but_not_read_it() {
    if !root() {
        return;
    }
    let setup = Setup::start(
        &format!("{OPEN_SOCKET}\n[access]\nadmin_group = 4242\n"),
        &[],
    );
    setup.broker.ok(&["create", "private"]);
    setup.broker.ok(&["chmod", "private", "0700"]);
    setup.broker.ok(&["send", "private", "x"]);
    // uid 65533 with 4242 as a supplementary group: an administrator.
    let admin = ["--reuid", "65533", "--regid", "100", "--groups", "4242"];
    assert_exit(
        &setup.as_user(&admin, &["recv", "private", "--nonblock"]),
        77,
        "admin receives",
    );
    assert_exit(
        &setup.as_user(&admin, &["send", "private", "y"]),
        77,
        "admin sends",
    );
    // The same uid without the group may not delete.
    let plain = ["--reuid", "65533", "--regid", "100", "--clear-groups"];
    assert_exit(
        &setup.as_user(&plain, &["delete", "private"]),
        77,
        "non-admin deletes",
    );
    assert_exit(
        &setup.as_user(&admin, &["delete", "private"]),
        0,
        "admin deletes",
    );
    assert!(!setup.exists("private"));
}

#[test]
fn a_reserved_name_is_refused_to_other_uids() {
    if !root() {
        return;
    }
    let setup = Setup::start(
        &format!("{OPEN_SOCKET}\n[access.names]\n\"org.example.svc\" = [\"root\"]\n"),
        &[],
    );
    let output = setup.as_other(&["--as", "org.example.svc", "names"]);
    assert_exit(&output, 77, "uid 65534 claims a name reserved to root");
    assert!(stderr(&output).contains("reserved"), "{}", stderr(&output));
    // A free name is fine; root may claim the reserved one.
    assert_exit(
        &setup.as_other(&["--as", "free.name", "names"]),
        0,
        "free name",
    );
    let names = setup.broker.ok(&["--as", "org.example.svc", "names"]);
    assert!(names.contains("org.example.svc"), "{names}");
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
// What one user can do to another.

#[test]
fn creating_a_mailbox_a_stranger_made_fails_and_leaves_it_as_it_was() {
    if !root() {
        return;
    }
    let setup = Setup::start(OPEN_SOCKET, &[]);
    assert_exit(
        &setup.as_other(&["create", "payroll", "--mode", "0777"]),
        0,
        "nobody creates payroll first",
    );
    let output = setup.broker.run(&["create", "payroll", "--mode", "0700"]);
    assert_exit(&output, 73, "root creates payroll second");
    let said = stderr(&output);
    assert!(said.contains("belongs to uid 65534"), "{said}");
    let payroll = setup.broker.info("payroll");
    assert_eq!(payroll["owner_uid"], OTHER, "{payroll}");
    assert_eq!(payroll["mode"], "0777", "{payroll}");

    // The other way round, a stranger learns the owner, not the settings.
    setup
        .broker
        .ok(&["create", "secret", "--capacity", "7", "--mode", "0700"]);
    let output = setup.as_other(&["create", "secret"]);
    assert_exit(&output, 73, "nobody creates root's secret");
    let said = stderr(&output);
    assert!(said.contains("belongs to uid 0"), "{said}");
    assert!(!said.contains("capacity"), "{said}");
    assert!(!said.contains("0700"), "{said}");

    // Its owner creating again gets its mailbox, with the mode it asks for.
    setup
        .broker
        .ok(&["create", "secret", "--capacity", "7", "--mode", "0760"]);
    assert_eq!(setup.broker.info("secret")["mode"], "0760");
}

#[test]
fn reserved_prefixes_keep_names_for_their_holders() {
    if !root() {
        return;
    }
    let setup = Setup::start(
        &format!("{OPEN_SOCKET}\n[access.reserved_prefixes]\n\"payroll.\" = \"root\"\n"),
        &[],
    );
    let output = setup.as_other(&["create", "payroll.jobs"]);
    assert_exit(&output, 77, "nobody squats payroll.jobs");
    assert!(stderr(&output).contains("reserved"), "{}", stderr(&output));
    assert_exit(
        &setup.as_other(&["--as", "payroll.svc", "names"]),
        77,
        "nobody claims payroll.svc",
    );
    assert!(!setup.exists("payroll.jobs"));
    setup.broker.ok(&["create", "payroll.jobs"]);
    assert_exit(
        &setup.as_other(&["create", "payrolls"]),
        0,
        "a name outside the prefix",
    );
}

#[test]
fn dead_letters_never_move_into_a_strangers_mailbox() {
    if !root() {
        return;
    }
    let setup = Setup::start(OPEN_SOCKET, &[]);
    // Writing into root's mailbox through a dead-letter setting.
    setup.broker.ok(&["create", "rootonly", "--mode", "0700"]);
    let output = setup.as_other(&[
        "create",
        "nbjobs",
        "--max-deliveries",
        "1",
        "--dead-letter",
        "rootonly",
    ]);
    assert_exit(
        &output,
        77,
        "nobody points its dead letters at root's mailbox",
    );
    assert!(!setup.exists("nbjobs"));

    // Reading root's failed messages by creating its dead-letter mailbox.
    setup.broker.ok(&[
        "create",
        "rjobs",
        "--ttl",
        "100ms",
        "--dead-letter",
        "rjobs.dead",
    ]);
    assert_exit(
        &setup.as_other(&["create", "rjobs.dead", "--mode", "0700"]),
        0,
        "nobody creates rjobs.dead",
    );
    setup.broker.ok(&["send", "rjobs", "salary of alice"]);
    wait_until("the message expires", || {
        setup.broker.info("rjobs")["messages_dropped"] == 1
    });
    assert_exit(
        &setup.as_other(&["recv", "rjobs.dead", "--nonblock"]),
        75,
        "nothing reached the stranger",
    );
    assert_eq!(setup.broker.info("rjobs")["messages_dead_lettered"], 0);
    setup.wait_for_log("dead letter refused", 1);
}

#[test]
fn a_group_is_given_only_by_its_members_and_an_owner_always_manages() {
    if !root() {
        return;
    }
    let setup = Setup::start(OPEN_SOCKET, &[]);
    assert_exit(&setup.as_other(&["create", "mine"]), 0, "create");
    let output = setup.as_other(&["chown", "mine", ":0"]);
    assert_exit(&output, 77, "nobody gives its mailbox to group root");
    assert!(
        stderr(&output).contains("not a member"),
        "{}",
        stderr(&output)
    );
    assert_eq!(setup.broker.info("mine")["group_gid"], OTHER);
    // Mode 0000 takes the owner's own rights away, but not managing them.
    assert_exit(&setup.as_other(&["chmod", "mine", "0000"]), 0, "chmod 0");
    assert_exit(&setup.as_other(&["send", "mine", "x"]), 77, "send at 0000");
    assert_exit(&setup.as_other(&["chmod", "mine", "0700"]), 0, "chmod back");
    assert_exit(&setup.as_other(&["send", "mine", "x"]), 0, "send at 0700");
}

#[test]
fn an_inbox_takes_only_its_own_uid_until_its_owner_opens_it() {
    if !root() {
        return;
    }
    let setup = Setup::start(OPEN_SOCKET, &[]);
    let mut closed = setup
        .broker
        .ctl()
        .args(["--as", "svc.closed", "recv", "--inbox", "--timeout", "20s"])
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn receiver");
    let mut open = setup
        .broker
        .ctl()
        .args([
            "--as",
            "svc.open",
            "--inbox-mode",
            "0622",
            "recv",
            "--inbox",
            "--timeout",
            "20s",
        ])
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn receiver");
    wait_until("both names are claimed", || {
        let names = setup.broker.ok(&["names"]);
        names.contains("svc.closed") && names.contains("svc.open")
    });
    let output = setup.as_other(&["send", "--to", "svc.closed", "flood"]);
    assert_exit(&output, 77, "nobody sends to a closed inbox");
    assert!(stderr(&output).contains("inbox"), "{}", stderr(&output));
    assert_exit(
        &setup.as_other(&["send", "--to", "svc.open", "welcome"]),
        0,
        "nobody sends to an opened inbox",
    );
    // Root may always send.
    setup
        .broker
        .ok(&["send", "--to", "svc.closed", "from root"]);
    let mut got = String::new();
    closed
        .stdout
        .take()
        .expect("stdout")
        .read_to_string(&mut got)
        .expect("read");
    assert_eq!(got, "from root");
    assert!(closed.wait().expect("wait").success());
    let mut got = String::new();
    open.stdout
        .take()
        .expect("stdout")
        .read_to_string(&mut got)
        .expect("read");
    assert_eq!(got, "welcome");
    assert!(open.wait().expect("wait").success());
}

#[test]
fn a_key_with_control_characters_is_refused_at_the_door() {
    let broker = Broker::start();
    broker.ok(&["create", "h", "--policy", "hash"]);
    for key in ["a\u{1}b", "tab\there", &"k".repeat(256)] {
        let output = broker.run(&["send", "h", "x", "--key", key]);
        assert_exit(&output, 65, &format!("key {key:?}"));
    }
    assert_eq!(broker.info("h")["messages_accepted"], 0);
    broker.ok(&["send", "h", "x", "--key", "région-7"]);
    assert_eq!(broker.info("h")["messages_accepted"], 1);
}

#[test]
fn a_strangers_paged_listing_shows_only_what_it_has_a_right_on() {
    if !root() {
        return;
    }
    let setup = Setup::start(OPEN_SOCKET, &[]);
    setup.broker.ok(&["create", "secret", "--mode", "0700"]);
    setup.broker.ok(&["create", "open", "--mode", "0766"]);
    // `list` reads the paged listing (ListMailboxPage) to its end.
    let output = setup.as_other(&["list"]);
    assert_exit(&output, 0, "list as uid 65534");
    let listed = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(listed.contains("open"), "{listed}");
    assert!(!listed.contains("secret"), "{listed}");
}
