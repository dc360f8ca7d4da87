//! What a newcomer installs beside the binaries: `mailboxctl completions
//! SHELL` / `mailboxd --completions SHELL` print a script for bash, zsh and
//! fish naming the commands and flags, `mailboxctl manual` and `mailboxd
//! --manual` print manual pages that `man` renders, all without a broker;
//! and `--version` names each program.

use std::io::Write;
use std::process::{Command, Output, Stdio};

use mailbox_tests::binary;

/// Runs `program` with `args` where no broker is: `MAILBOX_SOCKET` names a
/// socket that does not exist, so anything that tried to connect would fail.
fn run(program: &str, args: &[&str]) -> Output {
    let output = Command::new(binary(program))
        .args(args)
        .env("MAILBOX_SOCKET", "/nonexistent/mailboxd.sock")
        .output()
        .expect("run");
    assert!(
        output.status.success(),
        "{program} {args:?} failed: {output:?}"
    );
    output
}

fn text(output: &Output) -> String {
    String::from_utf8(output.stdout.clone()).expect("UTF-8 output")
}

/// `page` rendered by `man -l -` when `man` is installed, else checked to
/// be roff with its title line.
fn rendered(page: &[u8], title: &str) -> String {
    let roff = String::from_utf8_lossy(page).into_owned();
    assert!(roff.contains(&format!(".TH {title}")), "{roff}");
    let Ok(mut man) = Command::new("man")
        .args(["-l", "-"])
        .env("MANPAGER", "cat")
        .env("MANWIDTH", "80")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
    else {
        return roff;
    };
    man.stdin
        .take()
        .expect("stdin")
        .write_all(page)
        .expect("feed man");
    let output = man.wait_with_output().expect("man");
    assert!(output.status.success(), "man -l - failed: {output:?}");
    String::from_utf8_lossy(&output.stdout).into_owned()
}

#[test]
fn mailboxctl_prints_a_completion_script_for_each_shell_without_a_broker() {
    for shell in ["bash", "zsh", "fish"] {
        let script = text(&run("mailboxctl", &["completions", shell]));
        for word in ["create", "send", "recv", "status", "socket", "timeout"] {
            assert!(script.contains(word), "{shell} script lacks {word}");
        }
    }
    // bash accepts its script and registers the completion.
    if Command::new("bash").arg("--version").output().is_ok() {
        let script = text(&run("mailboxctl", &["completions", "bash"]));
        let output = Command::new("bash")
            .args(["-c", &format!("{script}\ncomplete -p mailboxctl")])
            .output()
            .expect("bash");
        assert!(
            String::from_utf8_lossy(&output.stdout).contains("-F _mailboxctl mailboxctl"),
            "{output:?}"
        );
    }
}

#[test]
fn mailboxd_prints_a_completion_script_for_each_shell() {
    for shell in ["bash", "zsh", "fish"] {
        let script = text(&run("mailboxd", &["--completions", shell]));
        for word in ["socket", "config", "memory-budget", "log-level"] {
            assert!(script.contains(word), "{shell} script lacks {word}");
        }
    }
}

#[test]
fn the_manual_pages_render_and_cover_every_command() {
    let page = run("mailboxctl", &["manual"]).stdout;
    let shown = rendered(&page, "mailboxctl 1");
    assert!(shown.contains("mailboxctl-send"), "{shown}");
    assert!(shown.contains("/tmp/mailbox-UID/"), "{shown}");

    let dir = tempfile::tempdir().expect("temp dir");
    let dir_text = dir.path().to_str().expect("UTF-8 path");
    run("mailboxctl", &["manual", "--dir", dir_text]);
    for command in ["create", "send", "recv", "call", "status", "completions"] {
        let name = format!("mailboxctl-{command}");
        let page = std::fs::read(dir.path().join(format!("{name}.1"))).expect("a page");
        let shown = rendered(&page, &format!("{name} 1"));
        assert!(shown.contains(&name), "{shown}");
    }
    assert!(dir.path().join("mailboxctl.1").exists());

    let page = run("mailboxd", &["--manual"]).stdout;
    assert!(String::from_utf8_lossy(&page).contains("pass messages"));
    let shown = rendered(&page, "mailboxd 8");
    assert!(shown.contains("memory-budget"), "{shown}");
}

#[test]
fn version_names_each_program() {
    let version = env!("CARGO_PKG_VERSION");
    assert_eq!(
        text(&run("mailboxd", &["--version"])),
        format!("mailboxd {version}\n")
    );
    assert_eq!(
        text(&run("mailboxctl", &["--version"])),
        format!("mailboxctl {version}\n")
    );
    let help = text(&run("mailboxd", &["--help"]));
    assert!(help.contains("lets the programs of this machine pass messages"));
    assert!(!help.contains("tokio"), "{help}");
}
