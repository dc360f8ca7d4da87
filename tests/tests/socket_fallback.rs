//! The socket rule for a user with nothing set up: as uid 65534 with an
//! empty environment (no `XDG_RUNTIME_DIR`, no `MAILBOX_SOCKET`), `mailboxd`
//! with no arguments listens on `/tmp/mailbox-65534/mailboxd.sock` in a
//! directory it creates with mode 0700, and `mailboxctl` finds it there; a
//! directory planted there by someone else is refused in one line; with no
//! broker of its own, the user's `mailboxctl` finds the system broker on
//! `/run/mailbox/mailboxd.sock`.
//!
//! Each test runs in a mount namespace of its own (`unshare --mount`) with
//! empty tmpfs on `/tmp` and `/run`: the fixed paths of the rule are then
//! nobody else's, and a real broker on this machine is out of the way.
//! (`mailbox_tests::private_tmp` copies the binaries in first.)

use std::process::Output;

use mailbox_tests::private_tmp;

/// Shell functions and variables the scripts share: `$NOBODY` runs a
/// command as uid 65534 with only PATH in its environment; `wait_for_socket`
/// waits for a socket file to appear.
const PRELUDE: &str = r#"
NOBODY="setpriv --reuid 65534 --regid 65534 --clear-groups env -i PATH=/usr/bin:/bin"
wait_for_socket() {
    i=0
    while [ ! -S "$1" ]; do
        i=$((i + 1))
        if [ "$i" -ge 400 ]; then echo "no socket appeared at $1" >&2; return 1; fi
        sleep 0.05
    done
}
"#;

/// Runs `script` (sh, stopping at the first failure) as root in a mount
/// namespace of its own where `/tmp` and `/run` are empty tmpfs, with
/// `$MAILBOXD` and `$MAILBOXCTL` naming the binaries.
fn run_isolated(script: &str) -> Output {
    let output = private_tmp::run(&format!("{PRELUDE}\n{script}"));
    assert!(output.status.success(), "the script failed: {output:?}");
    output
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn a_user_with_an_empty_environment_starts_mailboxd_with_no_arguments_and_mailboxctl_finds_it() {
    let output = run_isolated(
        r#"
        $NOBODY "$MAILBOXD" >/tmp/broker.out 2>/tmp/broker.err &
        broker=$!
        trap 'kill $broker 2>/dev/null || true' EXIT
        wait_for_socket /tmp/mailbox-65534/mailboxd.sock
        stat -c 'directory %a %u' /tmp/mailbox-65534
        $NOBODY "$MAILBOXCTL" create jobs
        $NOBODY "$MAILBOXCTL" list
        kill $broker
        wait $broker
        echo "broker exit $?"
        [ ! -e /tmp/mailbox-65534/mailboxd.sock ] && echo "socket removed"
        cat /tmp/broker.err >&2
        "#,
    );
    let stdout = text(&output.stdout);
    let log = text(&output.stderr);
    assert!(stdout.contains("directory 700 65534"), "{stdout}");
    assert!(
        stdout.contains("jobs"),
        "mailboxctl found the broker: {stdout}"
    );
    assert!(stdout.contains("broker exit 0"), "{stdout}");
    assert!(stdout.contains("socket removed"), "{stdout}");
    assert!(
        log.contains("socket=/tmp/mailbox-65534/mailboxd.sock"),
        "{log}"
    );
}

#[test]
fn a_per_user_directory_planted_by_someone_else_is_refused_in_one_line() {
    let output = run_isolated(
        r#"
        try() {
            set +e
            timeout 20 $NOBODY "$MAILBOXD" 2>/tmp/err
            echo "exit $?"
            set -e
            echo "lines $(wc -l </tmp/err)"
            grep '^mailboxd: ' /tmp/err
            rm -rf /tmp/mailbox-65534
        }
        echo "== root's directory"
        mkdir -m 0755 /tmp/mailbox-65534
        try
        echo "== open to others"
        mkdir -m 0700 /tmp/mailbox-65534
        chown 65534 /tmp/mailbox-65534
        chmod 0777 /tmp/mailbox-65534
        try
        echo "== a symbolic link"
        mkdir -m 0700 /tmp/elsewhere
        chown 65534 /tmp/elsewhere
        ln -s /tmp/elsewhere /tmp/mailbox-65534
        try
        [ ! -e /tmp/elsewhere/mailboxd.sock ] && echo "nothing bound through the link"
        "#,
    );
    let stdout = text(&output.stdout);
    let cases: Vec<&str> = stdout.split("== ").skip(1).collect();
    let expectations = [
        "it belongs to uid 0, not to the broker's uid 65534",
        "its mode 0777 lets others than its owner replace the socket",
        "it is not a directory but a symbolic link",
    ];
    assert_eq!(cases.len(), expectations.len(), "{stdout}");
    for (case, says) in cases.iter().zip(expectations) {
        assert!(case.contains("exit 1\n"), "{case}");
        assert!(case.contains("lines 1\n"), "one line only: {case}");
        assert!(
            case.contains("mailboxd: refusing the socket directory /tmp/mailbox-65534: ")
                && case.contains(says),
            "{case}"
        );
    }
    assert!(
        stdout.contains("nothing bound through the link"),
        "{stdout}"
    );
}

#[test]
fn a_user_with_no_broker_of_its_own_finds_the_system_broker() {
    let output = run_isolated(
        r#"
        printf '[socket]\nmode = "0666"\n' >/tmp/mailboxd.toml
        env -i PATH=/usr/bin:/bin "$MAILBOXD" --config /tmp/mailboxd.toml \
            >/tmp/broker.out 2>/tmp/broker.err &
        broker=$!
        trap 'kill $broker 2>/dev/null || true' EXIT
        wait_for_socket /run/mailbox/mailboxd.sock
        "$MAILBOXCTL" --socket /run/mailbox/mailboxd.sock create shared --mode 0666
        $NOBODY "$MAILBOXCTL" send shared hello
        echo "== sent"
        # Even with a session directory of its own, where no broker runs.
        $NOBODY XDG_RUNTIME_DIR=/tmp/no-session "$MAILBOXCTL" --json info shared
        "#,
    );
    let stdout = text(&output.stdout);
    let (_, info) = stdout.split_once("== sent\n").expect("the send succeeded");
    let info: serde_json::Value = serde_json::from_str(info.trim()).expect("info as JSON");
    assert_eq!(info["name"], "shared", "{info}");
    assert_eq!(info["queued_messages"], 1, "{info}");
}

#[test]
fn a_client_passes_over_a_per_user_directory_planted_by_someone_else() {
    // Uid 1234 makes /tmp/mailbox-65534 first and runs a broker in it; the
    // user's mailboxctl must not take it for the user's own broker (it
    // would stop there, refusing an untrusted broker) but go on to the
    // system broker.
    let output = run_isolated(
        r#"
        printf '[socket]\nmode = "0666"\n' >/tmp/mailboxd.toml
        env -i PATH=/usr/bin:/bin "$MAILBOXD" --config /tmp/mailboxd.toml \
            >/tmp/system.out 2>/tmp/system.err &
        system=$!
        mkdir -m 0755 /tmp/mailbox-65534
        chown 1234 /tmp/mailbox-65534
        setpriv --reuid 1234 --regid 1234 --clear-groups env -i PATH=/usr/bin:/bin \
            "$MAILBOXD" --config /tmp/mailboxd.toml --socket /tmp/mailbox-65534/mailboxd.sock \
            >/tmp/planted.out 2>/tmp/planted.err &
        planted=$!
        trap 'kill $system $planted 2>/dev/null || true' EXIT
        wait_for_socket /run/mailbox/mailboxd.sock
        wait_for_socket /tmp/mailbox-65534/mailboxd.sock
        "$MAILBOXCTL" --socket /run/mailbox/mailboxd.sock create system-only --mode 0666
        echo "== info"
        $NOBODY "$MAILBOXCTL" --json info system-only
        "#,
    );
    let stdout = text(&output.stdout);
    let (_, info) = stdout.split_once("== info\n").expect("created");
    let info: serde_json::Value = serde_json::from_str(info.trim()).expect("info as JSON");
    assert_eq!(info["name"], "system-only", "{info}");
}

#[test]
fn a_runtime_directory_of_another_user_is_passed_over_as_after_su() {
    // After `su`, XDG_RUNTIME_DIR may still name the first user's
    // directory: the broker could not listen there, and its clients would
    // look there. Both pass it over, and meet in the per-user fallback.
    let output = run_isolated(
        r#"
        mkdir -p -m 0700 /run/user/0
        AFTER_SU="$NOBODY XDG_RUNTIME_DIR=/run/user/0"
        $AFTER_SU "$MAILBOXD" >/tmp/broker.out 2>/tmp/broker.err &
        broker=$!
        trap 'kill $broker 2>/dev/null || true' EXIT
        wait_for_socket /tmp/mailbox-65534/mailboxd.sock
        $AFTER_SU "$MAILBOXCTL" create after-su
        $AFTER_SU "$MAILBOXCTL" list
        "#,
    );
    let stdout = text(&output.stdout);
    assert!(stdout.contains("after-su"), "{stdout}");
}
