//! The README's five-minute tour does what it says, for a newcomer with
//! nothing set up: its `sh` block is run line by line as uid 65534 with an
//! empty environment (no `XDG_RUNTIME_DIR`, no `MAILBOX_SOCKET`), against a
//! `mailboxd` started with no arguments by the same user, and each line's
//! exit code and output are checked against what its comment says
//! (`exit N`, `prints ...`, and 0 for every other line).
//!
//! It runs in a mount namespace of its own (`unshare --mount`) with empty
//! tmpfs on `/tmp` and `/run`, so the per-user socket directory
//! (`/tmp/mailbox-65534/`) is the test's own.

use mailbox_tests::private_tmp;
use std::collections::BTreeMap;

/// One line of the tour: its shell code and what its comment promises.
struct Step {
    code: String,
    comment: String,
    background: bool,
}

/// The `sh` block under "## A five-minute tour", as steps.
fn tour() -> Vec<Step> {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../README.md"))
        .expect("read README.md");
    let section = readme
        .split("## A five-minute tour")
        .nth(1)
        .expect("the README has a tour");
    let block = section
        .split("```sh\n")
        .nth(1)
        .and_then(|rest| rest.split("\n```").next())
        .expect("the tour has an sh block");
    block
        .lines()
        .map(str::trim)
        .filter(|line| !line.is_empty() && !line.starts_with('#'))
        .map(|line| {
            let (code, comment) = match line.find(" # ") {
                Some(at) => (line[..at].trim(), line[at + 3..].trim()),
                None => (line, ""),
            };
            let background = code.ends_with('&');
            Step {
                code: code.trim_end_matches('&').trim().to_owned(),
                comment: comment.to_owned(),
                background,
            }
        })
        .collect()
}

/// The exit code a step's comment promises (`exit N`), else 0.
fn promised_exit(comment: &str) -> i32 {
    comment
        .split("exit ")
        .nth(1)
        .and_then(|rest| {
            rest.split(|c: char| !c.is_ascii_digit())
                .next()
                .and_then(|digits| digits.parse().ok())
        })
        .unwrap_or(0)
}

/// Runs the tour; returns each step's output and exit code (background
/// steps: their output once the tour ended, and no code).
fn run(steps: &[Step]) -> (BTreeMap<usize, (String, Option<i32>)>, String) {
    let mut tour = String::from("cd /tmp/home\n");
    for (index, step) in steps.iter().enumerate() {
        if step.background {
            tour.push_str(&format!(
                "( {} ) >/tmp/out/{index} 2>&1 &\nsleep 0.3\n",
                step.code
            ));
        } else {
            tour.push_str(&format!(
                "( {} ) >/tmp/out/{index} 2>&1 </dev/null\necho $? >/tmp/out/{index}.exit\n",
                step.code
            ));
        }
    }
    // What is still running (the --follow receivers) is stopped after a
    // moment to print what arrived.
    tour.push_str("sleep 1\nkill $(jobs -p) 2>/dev/null\nwait\n");
    let script = format!(
        r#"mkdir -m 0777 /tmp/out /tmp/home
cat > /tmp/tour.sh <<'TOUR'
{tour}
TOUR
AS_NEWCOMER="setpriv --reuid 65534 --regid 65534 --clear-groups env -i HOME=/tmp/home PATH=/tmp/bin:/usr/bin:/bin"
$AS_NEWCOMER mailboxd 2>/tmp/broker.err &
broker=$!
i=0
while [ ! -S /tmp/mailbox-65534/mailboxd.sock ]; do
    i=$((i + 1)); [ "$i" -lt 400 ] || {{ cat /tmp/broker.err >&2; exit 1; }}
    sleep 0.05
done
$AS_NEWCOMER bash /tmp/tour.sh || true
kill $broker; wait $broker || true
for f in /tmp/out/*; do
    case $f in *.exit) ;; *) printf '@@ %s %s\n' "${{f##*/}}" "$(cat "$f.exit" 2>/dev/null || echo bg)"; cat "$f"; echo;; esac
done
echo "@@ broker"; cat /tmp/broker.err
"#
    );
    let output = private_tmp::run(&script);
    let transcript = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "the tour could not run: {}\n{transcript}",
        String::from_utf8_lossy(&output.stderr)
    );
    let mut outputs = BTreeMap::new();
    for chunk in transcript.split("@@ ").skip(1) {
        let (header, body) = chunk.split_once('\n').unwrap_or((chunk, ""));
        let mut words = header.split_whitespace();
        let (Some(index), Some(code)) = (words.next(), words.next()) else {
            continue;
        };
        if let Ok(index) = index.parse::<usize>() {
            outputs.insert(index, (body.to_owned(), code.parse().ok()));
        }
    }
    (outputs, transcript)
}

#[test]
fn the_readme_tour_does_what_its_comments_say_for_a_user_with_nothing_set_up() {
    if !mailbox_tests::other_users::root() {
        return;
    }
    let steps = tour();
    assert!(steps.len() > 20, "the tour has {} lines", steps.len());
    let (outputs, transcript) = run(&steps);
    // The whole run, for `cargo test -- --nocapture` (steps by index).
    eprintln!("{transcript}");
    let output_of = |needle: &str| -> &str {
        let index = steps
            .iter()
            .position(|step| step.code.contains(needle))
            .unwrap_or_else(|| panic!("the tour has no line with {needle:?}"));
        outputs
            .get(&index)
            .map(|(text, _)| text.as_str())
            .unwrap_or_else(|| panic!("no output for {needle:?}: {transcript}"))
    };
    for (index, step) in steps.iter().enumerate() {
        let Some((text, code)) = outputs.get(&index) else {
            panic!("line {:?} did not run: {transcript}", step.code);
        };
        if !step.background {
            assert_eq!(
                *code,
                Some(promised_exit(&step.comment)),
                "line {:?} ({}) printed {text:?}",
                step.code,
                step.comment
            );
        }
    }
    // What the comments promise to print.
    let first = steps
        .iter()
        .position(|step| step.code == "mailboxctl recv jobs")
        .expect("a plain recv of jobs");
    assert_eq!(outputs[&first].0.trim(), "first", "{transcript}");
    let both = output_of("recv jobs --count 2");
    assert!(
        both.contains("second") && both.contains("third"),
        "{both:?}"
    );
    assert!(output_of("--json recv meet").contains("\"payload\":\"hello\""));
    let subscribers: Vec<_> = steps
        .iter()
        .enumerate()
        .filter(|(_, step)| step.code == "mailboxctl recv news --follow")
        .map(|(index, _)| outputs[&index].0.clone())
        .collect();
    assert_eq!(subscribers.len(), 2);
    for got in &subscribers {
        assert!(got.contains("to everyone"), "a subscriber printed {got:?}");
    }
    assert!(output_of("--as worker recv --inbox").contains("just for you"));
    assert!(output_of("call upper").contains("HELLO"));
    assert!(output_of("peek jobs").contains("stuck"));
    assert!(output_of("mailboxctl names").contains("worker"));
    assert!(output_of("mailboxctl status").contains("max_frame_size"));
}
