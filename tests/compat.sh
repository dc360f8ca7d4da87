#!/usr/bin/env bash
# Wire compatibility between two builds: a client built before a change
# talks to a broker built after it, and the reverse.
#
#   tests/compat.sh OLD_BIN_DIR NEW_BIN_DIR
#
# Each directory is a cargo target directory's profile folder (for example
# target/debug) holding mailboxd, mailboxctl and mailbox-peer, built with
# `cargo build --workspace --bins`. The script starts the old mailboxd and
# drives it with the new mailboxctl and mailbox-peer, then the new mailboxd
# with the old ones: create, send, recv (one, many, large, with details),
# list, info, status, call, names, direct sends, broadcast, delete, and a
# bounded producer-consumer run with the blocking and the async client,
# checking outputs and exit codes. It exits 0 when every check passed.
#
# Not run by CI (it needs two builds). To check a branch against an older
# commit:
#
#   git worktree add /tmp/old COMMIT
#   (cd /tmp/old && CARGO_TARGET_DIR=/tmp/old/target cargo build --workspace --bins)
#   cargo build --workspace --bins
#   tests/compat.sh /tmp/old/target/debug target/debug
set -euo pipefail

if [[ $# -ne 2 ]]; then
    echo "usage: $0 OLD_BIN_DIR NEW_BIN_DIR" >&2
    exit 2
fi
old=$(cd "$1" && pwd)
new=$(cd "$2" && pwd)
for dir in "$old" "$new"; do
    for binary in mailboxd mailboxctl mailbox-peer; do
        [[ -x $dir/$binary ]] || { echo "$dir/$binary is missing: build with cargo build --workspace --bins" >&2; exit 2; }
    done
done

failures=0
work=$(mktemp -d)
broker_pid=
cleanup() {
    if [[ -n $broker_pid ]]; then kill -KILL "$broker_pid" 2>/dev/null || true; fi
    # Background clients of a failed pairing.
    jobs -p | xargs -r kill -KILL 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT

pass() { echo "  ok    $1"; }
fail() { echo "  FAIL  $1" >&2; failures=$((failures + 1)); }

# check NAME ACTUAL EXPECTED
check() {
    if [[ $2 == "$3" ]]; then pass "$1"; else fail "$1: got '$2', expected '$3'"; fi
}

# contains NAME TEXT PATTERN: TEXT matches the extended regular expression.
contains() {
    if grep -Eq -- "$3" <<<"$2"; then pass "$1"; else fail "$1: '$2' does not match '$3'"; fi
}

# status_of COMMAND...: runs it (stdout to $out), prints its exit code.
status_of() {
    set +e
    "$@" >"$out" 2>"$work/stderr"
    local code=$?
    set -e
    echo "$code"
}

# wait_for NAME COMMAND...: until COMMAND succeeds, at most 10 s.
wait_for() {
    local name=$1
    shift
    for _ in $(seq 100); do
        if "$@" >/dev/null 2>&1; then return 0; fi
        sleep 0.1
    done
    fail "$name: not within 10 s"
    return 1
}

# pair LABEL BROKER_DIR CLIENT_DIR
pair() {
    local label=$1 broker=$2 client=$3
    local dir=$work/$label
    mkdir -p "$dir"
    local sock=$dir/run/mailboxd.sock
    out=$dir/out
    echo "$label: mailboxd from $broker, clients from $client"

    "$broker/mailboxd" --socket "$sock" --log-level warn </dev/null >/dev/null 2>"$dir/mailboxd.log" &
    broker_pid=$!
    ctl() { "$client/mailboxctl" --socket "$sock" "$@"; }
    peer() { timeout 60 "$client/mailbox-peer" "$1" "$sock" "${@:2}"; }
    wait_for "mailboxd accepts connections" ctl list || return

    # create: new, the same again (no change), other settings (73).
    check "create" "$(status_of ctl create jobs --capacity 100)" 0
    check "create again with the same settings" "$(status_of ctl create jobs --capacity 100)" 0
    check "create with other settings is refused (73)" "$(status_of ctl create jobs --capacity 5)" 73
    ctl create calls >/dev/null
    ctl create pc --capacity 8 >/dev/null
    ctl create news --policy broadcast --capacity 16 >/dev/null

    # send: small, large (written from where it is by the broker), with
    # details (a time-to-live: encoded through bincode, not the fast path).
    head -c 100000 /dev/urandom >"$dir/big"
    check "send" "$(status_of ctl send jobs hello)" 0
    check "send a large message from stdin" "$(status_of ctl send jobs <"$dir/big")" 0
    check "send with a time-to-live" "$(status_of ctl send jobs --ttl 60s third)" 0

    # list, info, status.
    check "list" "$(status_of ctl list --json)" 0
    contains "list names the mailboxes" "$(cat "$out")" '"name": ?"jobs"'
    check "info" "$(status_of ctl info jobs --json)" 0
    contains "info counts the queued messages" "$(cat "$out")" '"queued_messages": ?3[,}]'
    check "status" "$(status_of ctl status --interval 0s --json)" 0

    # recv: in order, bytes exact, details kept, then empty (75).
    check "recv" "$(status_of ctl recv jobs)" 0
    check "recv gets the first message" "$(cat "$out")" hello
    check "recv a large message" "$(status_of ctl recv jobs)" 0
    if cmp -s "$out" "$dir/big"; then pass "the large message's bytes are exact"; else fail "the large message's bytes differ"; fi
    check "recv a message with details" "$(status_of ctl recv jobs --json)" 0
    contains "its payload" "$(cat "$out")" '"payload": ?"third"'
    contains "its expiry" "$(cat "$out")" '"expires_at_unix_nanos": ?[0-9]+'
    check "recv from an empty mailbox would block (75)" "$(status_of ctl recv jobs --nonblock)" 75

    # many at once.
    for n in 1 2 3 4 5; do ctl send jobs "m$n" >/dev/null; done
    check "recv --count 5" "$(status_of ctl recv jobs --count 5)" 0
    check "recv --count 5 gets all five in order" "$(cat "$out")" m1m2m3m4m5

    # call: a mailbox-peer answers in upper case.
    peer serve-reversed calls 1 >"$dir/serve.out" &
    local server=$!
    check "call" "$(status_of ctl call calls question --timeout 10s)" 0
    check "call gets the reply" "$(cat "$out")" QUESTION
    if wait "$server"; then pass "the called peer exits 0"; else fail "the called peer failed"; fi
    contains "the called peer saw the request" "$(cat "$dir/serve.out")" '^request [0-9]+ [0-9]+ question$'

    # names and a direct send to a name.
    timeout 20 "$client/mailboxctl" --socket "$sock" --as worker recv --inbox --timeout 15s >"$dir/inbox.out" 2>&1 &
    local receiver=$!
    wait_for "the name is claimed" bash -c "'$client/mailboxctl' --socket '$sock' names --json | grep -q '\"worker\"'" || true
    check "names" "$(status_of ctl names --json)" 0
    contains "names lists the claimed name" "$(cat "$out")" '"name": ?"worker"'
    check "send to a process by name" "$(status_of ctl send --to worker direct)" 0
    if wait "$receiver"; then pass "the named receiver exits 0"; else fail "the named receiver failed"; fi
    check "the named receiver got the direct message" "$(cat "$dir/inbox.out")" direct

    # broadcast to a subscriber.
    timeout 20 "$client/mailboxctl" --socket "$sock" recv news --timeout 15s >"$dir/news.out" 2>&1 &
    receiver=$!
    wait_for "the subscriber is subscribed" bash -c "'$client/mailboxctl' --socket '$sock' info news --json | grep -Eq '\"subscribers\": ?1[,}]'" || true
    check "send to a broadcast mailbox" "$(status_of ctl send news flash)" 0
    if wait "$receiver"; then pass "the subscriber exits 0"; else fail "the subscriber failed"; fi
    check "the subscriber got the broadcast" "$(cat "$dir/news.out")" flash

    # producer-consumer, bounded: blocking and async consumers, 2,000
    # messages each through a mailbox of capacity 8, checked in order.
    local count=2000 role
    for role in consume consume-async; do
        peer "$role" pc "$count" >"$dir/consumer.out" 2>&1 &
        local consumer=$!
        if peer produce pc "$count" >"$dir/producer.out" 2>&1; then pass "produce $count ($role)"; else fail "produce $count ($role)"; fi
        if wait "$consumer"; then pass "$role exits 0"; else fail "$role failed"; fi
        check "$role got every message in order" "$(cat "$dir/consumer.out")" "ok $count"
    done

    # delete, then it is gone (66).
    check "delete" "$(status_of ctl delete jobs)" 0
    check "info on a deleted mailbox (66)" "$(status_of ctl info jobs)" 66

    kill -TERM "$broker_pid"
    local code=0
    wait "$broker_pid" || code=$?
    broker_pid=
    check "mailboxd exits 0 on SIGTERM" "$code" 0
    if [[ -s $dir/mailboxd.log ]]; then
        echo "  (mailboxd said:)"
        sed 's/^/    /' "$dir/mailboxd.log"
    fi
}

pair old-broker-new-clients "$old" "$new"
pair new-broker-old-clients "$new" "$old"

if [[ $failures -eq 0 ]]; then
    echo "compatible: every check passed"
else
    echo "$failures checks failed" >&2
    exit 1
fi
