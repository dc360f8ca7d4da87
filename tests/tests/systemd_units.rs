//! The unit files in `systemd/`, checked offline by `systemd-analyze`,
//! `systemd-sysusers` and `systemd-tmpfiles` (the `systemd` package;
//! `.ci/run` installs it), and each service's `ExecStart=` run against a
//! test listener on `$NOTIFY_SOCKET`.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use mailbox_tests::service_manager::{NotifyListener, INSTALL_SYSTEMD};
use mailbox_tests::{binary, is_socket, require_tool, Broker};

fn repository() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace root")
        .to_owned()
}

fn read_unit(relative: &str) -> String {
    std::fs::read_to_string(repository().join("systemd").join(relative))
        .unwrap_or_else(|error| panic!("systemd/{relative}: {error}"))
}

/// Every `(section, key, value)` of a unit file, in order.
fn settings(unit: &str) -> Vec<(String, String, String)> {
    let mut section = String::new();
    let mut out = Vec::new();
    for line in unit.lines().map(str::trim) {
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            section = name.to_owned();
        } else if let Some((key, value)) = line.split_once('=') {
            out.push((
                section.clone(),
                key.trim().to_owned(),
                value.trim().to_owned(),
            ));
        }
    }
    out
}

fn setting(unit: &str, section: &str, key: &str) -> Option<String> {
    settings(unit)
        .into_iter()
        .rev()
        .find(|(s, k, _)| s == section && k == key)
        .map(|(_, _, v)| v)
}

/// The units with the installed binary path replaced by the one just built,
/// copied to `<dir>/system` and `<dir>/user`.
fn copy_units(dir: &Path) -> (PathBuf, PathBuf) {
    let mailboxd = binary("mailboxd");
    let mut copied = (dir.join("system"), dir.join("user"));
    for (name, target) in [
        ("mailboxd.service", &copied.0),
        ("mailboxd.socket", &copied.0),
        ("user/mailboxd.service", &copied.1),
        ("user/mailboxd.socket", &copied.1),
    ] {
        std::fs::create_dir_all(target).expect("mkdir");
        let text = read_unit(name).replace(
            "/usr/local/bin/mailboxd",
            mailboxd.to_str().expect("utf-8 path"),
        );
        let file_name = Path::new(name).file_name().expect("file name");
        std::fs::write(target.join(file_name), text).expect("write unit");
    }
    copied.0 = copied.0.canonicalize().expect("canonical");
    copied.1 = copied.1.canonicalize().expect("canonical");
    copied
}

/// `systemd-analyze [--user] verify` on the socket and service in `dir`.
fn verify(analyze: &Path, dir: &Path, user: bool, runtime_dir: &Path) -> Output {
    let mut command = Command::new(analyze);
    if user {
        command.arg("--user");
    }
    command
        .args(["verify", "--man=no"])
        .arg(dir.join("mailboxd.socket"))
        .arg(dir.join("mailboxd.service"))
        .current_dir(dir)
        // What %t expands to in user units.
        .env("XDG_RUNTIME_DIR", runtime_dir)
        .env("SYSTEMD_LOG_COLOR", "0")
        .output()
        .expect("run systemd-analyze")
}

#[test]
fn systemd_analyze_verify_finds_nothing_to_complain_about() {
    let analyze = require_tool("systemd-analyze", INSTALL_SYSTEMD);
    let dir = tempfile::tempdir().expect("temp dir");
    let runtime_dir = dir.path().join("runtime");
    std::fs::create_dir_all(&runtime_dir).expect("mkdir");
    let (system, user) = copy_units(dir.path());
    for (units, is_user) in [(&system, false), (&user, true)] {
        let output = verify(&analyze, units, is_user, &runtime_dir);
        let said = format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        assert!(
            output.status.success() && said.trim().is_empty(),
            "systemd-analyze {}verify on {}: {:?}\n{said}",
            if is_user { "--user " } else { "" },
            units.display(),
            output.status
        );
    }

    // The check has teeth: the same verify reports a misspelt key, which
    // systemd otherwise only logs and ignores (exit status 0).
    let broken = dir.path().join("broken");
    std::fs::create_dir_all(&broken).expect("mkdir");
    for name in ["mailboxd.socket", "mailboxd.service"] {
        let text = std::fs::read_to_string(system.join(name)).expect("read");
        std::fs::write(
            broken.join(name),
            text.replace("NotifyAccess=", "NotifyAcess="),
        )
        .expect("write");
    }
    let output = verify(&analyze, &broken, false, &runtime_dir);
    let said = String::from_utf8_lossy(&output.stderr);
    assert!(said.contains("NotifyAcess"), "{said}");
}

#[test]
fn the_system_service_is_sandboxed() {
    let analyze = require_tool("systemd-analyze", INSTALL_SYSTEMD);
    let dir = tempfile::tempdir().expect("temp dir");
    let (system, _user) = copy_units(dir.path());
    // Exposure 0.0 (best) to 10.0; --threshold is in tenths. At most 1.0:
    // "SAFE".
    let output = Command::new(analyze)
        .args(["security", "--offline=yes", "--threshold=10", "--no-pager"])
        .arg(system.join("mailboxd.service"))
        .env("SYSTEMD_LOG_COLOR", "0")
        .output()
        .expect("run systemd-analyze security");
    assert!(
        output.status.success(),
        "exposure above 1.0: {}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

#[test]
fn the_units_agree_with_mailboxd_and_each_other() {
    let service = read_unit("mailboxd.service");
    let socket = read_unit("mailboxd.socket");
    let user_service = read_unit("user/mailboxd.service");
    let user_socket = read_unit("user/mailboxd.socket");
    for (unit, name) in [(&service, "system"), (&user_service, "user")] {
        let get = |key: &str| setting(unit, "Service", key);
        assert_eq!(get("Type").as_deref(), Some("notify"), "{name}");
        assert_eq!(get("NotifyAccess").as_deref(), Some("main"), "{name}");
        assert_eq!(get("Restart").as_deref(), Some("on-failure"), "{name}");
        assert!(get("WatchdogSec").is_some(), "{name}");
        assert_eq!(
            get("RuntimeDirectory").as_deref(),
            Some("mailbox"),
            "{name}"
        );
        // Stopping the service must not delete the socket unit's socket.
        assert_eq!(
            get("RuntimeDirectoryPreserve").as_deref(),
            Some("yes"),
            "{name}"
        );
    }
    assert_eq!(
        setting(&service, "Service", "User").as_deref(),
        Some("mailbox")
    );
    assert_eq!(
        setting(&service, "Service", "Group").as_deref(),
        Some("mailbox")
    );
    for (unit, path, mode) in [
        (&socket, "/run/mailbox/mailboxd.sock", "0660"),
        (&user_socket, "%t/mailbox/mailboxd.sock", "0600"),
    ] {
        assert_eq!(
            setting(unit, "Socket", "ListenStream").as_deref(),
            Some(path)
        );
        assert_eq!(setting(unit, "Socket", "SocketMode").as_deref(), Some(mode));
        assert_eq!(
            setting(unit, "Socket", "Service").as_deref(),
            Some("mailboxd.service")
        );
    }
    assert_eq!(
        setting(&socket, "Socket", "SocketGroup").as_deref(),
        Some("mailbox")
    );
    // Started without its socket unit, each service binds the same path.
    assert_eq!(
        setting(&service, "Service", "ExecStart").as_deref(),
        Some("/usr/local/bin/mailboxd --socket /run/mailbox/mailboxd.sock")
    );
    assert_eq!(
        setting(&user_service, "Service", "ExecStart").as_deref(),
        Some("/usr/local/bin/mailboxd --socket %t/mailbox/mailboxd.sock")
    );
}

/// The service's `ExecStart=` as a command for the built mailboxd, with
/// `%t` and `/run` moved into `runtime`.
fn exec_start(unit: &str, runtime: &Path) -> Command {
    let line = setting(unit, "Service", "ExecStart").expect("ExecStart=");
    let runtime = runtime.to_str().expect("utf-8 path");
    let line = line
        .replace("%t/", &format!("{runtime}/"))
        .replace("/run/", &format!("{runtime}/"));
    let mut words = line.split_whitespace();
    assert_eq!(words.next(), Some("/usr/local/bin/mailboxd"));
    let mut command = Command::new(binary("mailboxd"));
    command.args(words);
    command
}

#[test]
fn each_services_command_line_starts_this_mailboxd() {
    for name in ["mailboxd.service", "user/mailboxd.service"] {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut notify = NotifyListener::at_path(dir.path());
        let runtime = dir.path().join("runtime");
        let socket = runtime.join("mailbox").join("mailboxd.sock");
        let child = exec_start(&read_unit(name), &runtime)
            .env("NOTIFY_SOCKET", &notify.address)
            .env_remove("LISTEN_FDS")
            .env_remove("LISTEN_PID")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn mailboxd");
        notify.wait_for_line("READY=1");
        assert!(is_socket(&socket), "{name}: listening on {socket:?}");
        let broker = Broker::adopt(
            child,
            socket.clone(),
            tempfile::tempdir().expect("temp dir"),
        );
        broker.ok(&["status"]);
        let (status, log) = broker.terminate();
        assert!(status.success(), "{name}: {status:?} {log}");
        assert!(!socket.exists(), "{name}: its own socket is removed");
    }
}

#[test]
fn sysusers_and_tmpfiles_create_the_user_and_the_socket_directory() {
    let sysusers = require_tool("systemd-sysusers", INSTALL_SYSTEMD);
    let tmpfiles = require_tool("systemd-tmpfiles", INSTALL_SYSTEMD);
    let root = tempfile::tempdir().expect("temp dir");
    std::fs::create_dir_all(root.path().join("etc")).expect("mkdir");
    let config = repository().join("systemd");

    let output = Command::new(sysusers)
        .arg(format!("--root={}", root.path().display()))
        .arg(config.join("mailbox.sysusers"))
        .output()
        .expect("run systemd-sysusers");
    assert!(output.status.success(), "{output:?}");
    let passwd = std::fs::read_to_string(root.path().join("etc/passwd")).expect("passwd");
    let group = std::fs::read_to_string(root.path().join("etc/group")).expect("group");
    let user: Vec<&str> = passwd
        .lines()
        .find(|l| l.starts_with("mailbox:"))
        .unwrap_or_else(|| panic!("no mailbox user: {passwd}"))
        .split(':')
        .collect();
    let gid = group
        .lines()
        .find(|l| l.starts_with("mailbox:"))
        .unwrap_or_else(|| panic!("no mailbox group: {group}"))
        .split(':')
        .nth(2)
        .expect("gid");
    assert_eq!(user[3], gid, "the user's primary group is mailbox");
    assert!(user[6].ends_with("nologin"), "{user:?}");
    let uid: u32 = user[2].parse().expect("uid");
    assert!(uid < 1000, "a system user: {uid}");

    let output = Command::new(tmpfiles)
        .arg(format!("--root={}", root.path().display()))
        .arg("--create")
        .arg(config.join("mailbox.tmpfiles"))
        .output()
        .expect("run systemd-tmpfiles");
    let metadata = std::fs::metadata(root.path().join("run/mailbox")).expect("/run/mailbox");
    assert!(metadata.is_dir());
    assert_eq!(metadata.permissions().mode() & 0o7777, 0o755);
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } == 0 {
        assert!(output.status.success(), "{output:?}");
        // Owned by the user sysusers created (in the same root).
        assert_eq!(metadata.uid(), uid);
        assert_eq!(metadata.gid().to_string(), gid);
    } else {
        // Only root may give the directory away; everything else must work.
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(
            stderr
                .lines()
                .all(|l| l.contains("Operation not permitted")),
            "{stderr}"
        );
        eprintln!("not root: /run/mailbox's owner is checked only when run as root (as CI does)");
    }
}

#[test]
fn the_unit_files_are_where_the_readme_says() {
    let readme = std::fs::read_to_string(repository().join("README.md")).expect("README");
    for name in [
        "systemd/mailboxd.service",
        "systemd/mailboxd.socket",
        "systemd/mailbox.sysusers",
        "systemd/mailbox.tmpfiles",
        "systemd/user/mailboxd.service",
        "systemd/user/mailboxd.socket",
    ] {
        assert!(repository().join(name).is_file(), "{name}");
        assert!(readme.contains(name), "README.md mentions {name}");
    }
}
