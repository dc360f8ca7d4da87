//! Hostile users against the broker's resources, end to end: a real
//! `mailboxd` with its socket open to everyone (mode 0666) and small limits,
//! attacked by `mailbox-hostile` processes running as other uids under
//! `setpriv` (connections and buffers are counted per uid), while a
//! well-behaved root client keeps doing round trips and the broker's RSS is
//! sampled.
//!
//! Needs root (to run clients as other uids); as anyone else the tests say
//! so and do nothing.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use bytes::BytesMut;
use mailbox_client::blocking::Client;
use mailbox_proto::{
    decode_server_frame, encode_frame, ErrorKind, Hello, ServerFrame, HELLO_MAGIC, PROTOCOL_VERSION,
};
use mailbox_tests::configured_broker::{ConfiguredBroker, OPEN_SOCKET};
use mailbox_tests::other_users::{as_uid, root};
use mailbox_tests::watch::Watch;
use mailbox_tests::{binary, require_tool, rss_bytes, wait_until, witness_round_trip, PATIENCE};

const MIB: u64 = 1024 * 1024;

/// A broker started with a configuration file, its socket open to all, its
/// log in a file (what `ConfiguredBroker` has, through `Deref`).
struct Setup(ConfiguredBroker);

impl std::ops::Deref for Setup {
    type Target = ConfiguredBroker;

    fn deref(&self) -> &ConfiguredBroker {
        &self.0
    }
}

impl Setup {
    fn start(limits: &str, args: &[&str]) -> Self {
        Self::start_under(&[], limits, args)
    }

    /// Like [`Setup::start`], `mailboxd` run by `wrapper` (a command and
    /// its arguments, like `prlimit --nofile=N`).
    fn start_under(wrapper: &[&str], limits: &str, args: &[&str]) -> Self {
        let config = format!("{OPEN_SOCKET}\n[limits]\n{limits}\n");
        Self(ConfiguredBroker::start_under(
            wrapper, "warn", &config, args,
        ))
    }

    /// Starts `mailbox-hostile ATTACK SOCKET SECONDS COUNT ARG` as `uid`.
    fn attack(&self, uid: u32, attack: &str, seconds: f64, count: usize, arg: &str) -> Attack {
        let child = as_uid(uid, &binary("mailbox-hostile"))
            .arg(attack)
            .arg(self.broker.socket())
            .arg(seconds.to_string())
            .arg(count.to_string())
            .arg(arg)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn mailbox-hostile");
        Attack {
            name: attack.to_owned(),
            child,
        }
    }
}

/// A running `mailbox-hostile`.
struct Attack {
    name: String,
    child: Child,
}

impl Attack {
    /// Waits for it; its summary line as `key -> value`.
    fn finish(self) -> HashMap<String, String> {
        let output = self.child.wait_with_output().expect("mailbox-hostile");
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert!(
            output.status.success(),
            "{} failed: {stdout} {}",
            self.name,
            String::from_utf8_lossy(&output.stderr)
        );
        eprintln!("{}: {}", self.name, stdout.trim());
        stdout
            .split_whitespace()
            .filter_map(|word| word.split_once('='))
            .map(|(key, value)| (key.to_owned(), value.to_owned()))
            .collect()
    }
}

fn number(summary: &HashMap<String, String>, key: &str) -> u64 {
    summary
        .get(key)
        .and_then(|value| value.parse().ok())
        .unwrap_or_else(|| panic!("no {key} in {summary:?}"))
}

fn hello_bytes() -> Vec<u8> {
    let hello = Hello {
        magic: HELLO_MAGIC,
        protocol_version: PROTOCOL_VERSION,
        client_name: "hostile-resources".into(),
    };
    let mut buf = BytesMut::new();
    encode_frame(&hello, &mut buf, u32::MAX).expect("encode hello");
    buf.to_vec()
}

/// Reads server frames until a goodbye (returned) or the close (`None`).
fn goodbye_of(stream: &mut UnixStream) -> Option<mailbox_proto::BrokerError> {
    let mut incoming = BytesMut::new();
    let mut chunk = [0u8; 4096];
    loop {
        while let Some(frame) = decode_server_frame(&mut incoming, u32::MAX).expect("frames decode")
        {
            if let ServerFrame::Goodbye(error) = frame {
                return Some(error);
            }
        }
        match stream.read(&mut chunk) {
            Ok(0) | Err(_) => return None,
            Ok(n) => incoming.extend_from_slice(&chunk[..n]),
        }
    }
}

#[test]
fn connections_are_counted_per_uid_from_accept_and_root_keeps_a_reserve() {
    if !root() {
        return;
    }
    // 64 in all, 8 of them for root, 40 per uid.
    let setup = Setup::start(
        "max_connections = 64\nmax_connections_per_uid = 40\nreserved_connections = 8",
        &[],
    );
    let mut witness = setup.broker.client();
    let connections = |witness: &mut Client| witness.status().expect("status").connections;

    // Connections that never say hello count from accept.
    let first = setup.attack(60001, "idle", 3.0, 60, "");
    wait_until("uid 60001 holds 40 connections", || {
        connections(&mut witness) == 41
    });
    // The next uid gets what is left below the reserve: 64 - 8 - 41.
    let second = setup.attack(60002, "idle", 3.0, 60, "");
    wait_until("the unreserved connections are taken", || {
        connections(&mut witness) == 56
    });
    // Root still connects, into the reserve, and is served.
    let mut admin = setup.broker.client();
    witness_round_trip(&mut admin);

    let first = first.finish();
    assert_eq!(number(&first, "opened"), 60);
    assert_eq!(number(&first, "welcomed"), 0);
    assert_eq!(number(&first, "refused"), 20, "{first:?}");
    assert!(
        first["goodbyes"].contains("TooManyRequests:uid_60001_has_its_limit_of_40_connections"),
        "{first:?}"
    );
    let second = second.finish();
    assert_eq!(number(&second, "refused"), 45, "{second:?}");
    assert!(
        second["goodbyes"].contains("limits.reserved_connections"),
        "{second:?}"
    );
    // A flood of refusals is not a flood of log lines.
    let log = setup.log();
    assert!(
        log.matches("connection refused").count() < 20,
        "{} refusal lines",
        log.matches("connection refused").count()
    );
}

#[test]
fn a_frame_must_complete_within_the_frame_timeout() {
    let setup = Setup::start("", &["--frame-timeout", "1s"]);
    let mut stream = UnixStream::connect(setup.broker.socket()).expect("connect");
    stream
        .set_read_timeout(Some(PATIENCE))
        .expect("read timeout");
    stream.write_all(&hello_bytes()).expect("hello");
    // A header promising 1 MiB, some of it, then nothing more.
    stream
        .write_all(&(1u32 << 20).to_le_bytes())
        .expect("header");
    stream.write_all(&[0u8; 1000]).expect("some of the body");
    let started = Instant::now();
    let goodbye = goodbye_of(&mut stream).expect("a goodbye");
    let took = started.elapsed();
    assert_eq!(goodbye.kind, ErrorKind::ProtocolViolation, "{goodbye}");
    assert!(
        goodbye.message.contains("limits.frame_timeout")
            && goodbye
                .message
                .contains("1004 of its 1048580 bytes arrived"),
        "{goodbye}"
    );
    assert!(took < Duration::from_secs(5), "cut after {took:?}");
    // Others are served.
    witness_round_trip(&mut setup.broker.client());
}

#[test]
fn denied_requests_are_logged_a_few_times_then_counted() {
    if !root() {
        return;
    }
    let setup = Setup::start("", &[]);
    setup.broker.ok(&["create", "secret"]);
    let denied = setup.attack(65534, "deny", 20.0, 20_000, "secret").finish();
    assert_eq!(number(&denied, "denied"), 20_000, "{denied:?}");
    // Five lines every 10 s (one interval, unless this machine is very
    // slow), and summaries saying how many were left out, the last when
    // the connection closes: together, every denial.
    wait_until("the log accounts for every denial", || {
        let (written, left_out) = denials_logged(&setup.log());
        written + left_out == 20_000
    });
    let log = setup.log();
    let (written, _) = denials_logged(&log);
    assert!((5..=15).contains(&written), "{written} lines: {log}");
    assert!(log.contains("more times on this connection"), "{log}");
    assert!(log.len() < 10_000, "{} bytes of log", log.len());
}

/// Denials the log wrote a line for, and those its summaries say it left
/// out (`permission denied N more times ...`).
fn denials_logged(log: &str) -> (u64, u64) {
    let mut written = 0;
    let mut left_out = 0;
    for line in log.lines() {
        let Some((_, rest)) = line.split_once("permission denied") else {
            continue;
        };
        let summary = rest
            .trim_start()
            .split_once(" more times")
            .and_then(|(count, _)| count.parse::<u64>().ok());
        match summary {
            Some(count) => left_out += count,
            None => written += 1,
        }
    }
    (written, left_out)
}

/// Receives one connection posts on one mailbox: before waiting lines were
/// indexed by ticket, each new one scanned the line, and 50,000 stalled
/// the broker for seconds.
const WAITING_RECEIVES: usize = 50_000;

#[test]
fn a_good_client_is_served_while_hostile_clients_attack_resources() {
    if !root() {
        return;
    }
    // Small budgets, so the attacks reach them quickly.
    let budget = 32 * MIB;
    let buffered = 32 * MIB;
    let setup = Setup::start(
        "memory_budget = \"32M\"\n\
         max_connections_per_uid = 300\n\
         max_buffered_bytes = \"32M\"\n\
         max_buffered_bytes_per_uid = \"8M\"\n\
         handshake_timeout = \"2s\"\n\
         frame_timeout = \"2s\"\n\
         write_timeout = \"2s\"",
        &[],
    );
    let mut witness = setup.broker.client();
    witness_round_trip(&mut witness);
    let idle_rss = rss_bytes(setup.broker.pid());
    let watch = Watch::start(&setup.broker, Some(10));
    let seconds = 6.0;
    let attacks = [
        setup.attack(60001, "idle", seconds, 1000, ""),
        setup.attack(60002, "slow-hello", seconds, 200, ""),
        setup.attack(60003, "no-read", seconds, 40, ""),
        setup.attack(60004, "dribble", seconds, 40, &(16 << 20).to_string()),
        setup.attack(
            60005,
            "receives",
            seconds,
            WAITING_RECEIVES,
            "hostile-waits",
        ),
        setup.attack(60006, "mailboxes", seconds, 3_000, "hostile"),
    ];
    let summaries: Vec<_> = attacks.into_iter().map(Attack::finish).collect();
    let (rss, slowest) = watch.finish();
    eprintln!(
        "idle RSS {} MiB; peak {} MiB under attack; slowest round trip {slowest:?}",
        idle_rss >> 20,
        rss >> 20
    );
    let [idle, slow_hello, no_read, dribble, receives, mailboxes] = &summaries[..] else {
        unreachable!()
    };
    // No connection of uid 60001 ever said hello; its first 300 were held
    // until the handshake timeout, the rest refused at once.
    assert_eq!(number(idle, "welcomed"), 0);
    assert!(number(idle, "refused") >= 700, "{idle:?}");
    // Slow hellos ran out of time.
    assert_eq!(number(slow_hello, "welcomed"), 0, "{slow_hello:?}");
    assert_eq!(number(slow_hello, "refused"), 200, "{slow_hello:?}");
    // Clients that read nothing were cut off (before their welcome was
    // written, for most: it goes with the replies they do not read).
    assert_eq!(
        number(no_read, "cut") + number(no_read, "refused"),
        40,
        "{no_read:?}"
    );
    assert!(
        no_read["goodbyes"].contains("limits.max_buffered_bytes_per_uid"),
        "{no_read:?}"
    );
    // Frames that never completed were cut at the frame timeout.
    assert_eq!(number(dribble, "cut"), 40, "{dribble:?}");
    assert!(
        dribble["goodbyes"].contains("limits.frame_timeout"),
        "{dribble:?}"
    );
    assert_eq!(number(receives, "posted"), WAITING_RECEIVES as u64);
    assert_eq!(number(mailboxes, "created"), 3_000);

    assert!(
        slowest < Duration::from_secs(2),
        "a round trip took {slowest:?} under attack"
    );
    // Budgets (buffers with their overdraft of a quarter) plus the
    // documented fixed overhead (64 MiB: the binary, the runtime, the
    // connections' fixed costs, mailboxes and waiting requests of this
    // test).
    let bound = budget + buffered + buffered / 4 + 64 * MIB;
    assert!(
        rss < bound,
        "the broker grew to {} MiB (bound {} MiB)",
        rss >> 20,
        bound >> 20
    );
    // Still serving after it all.
    witness_round_trip(&mut witness);
}

#[test]
fn a_client_that_reads_none_of_its_replies_is_cut_after_the_write_timeout() {
    // Buffer limits high enough that only the write timeout can cut it.
    let setup = Setup::start("", &["--write-timeout", "1s"]);
    setup.broker.ok(&["create", "own"]);
    let mut stream = UnixStream::connect(setup.broker.socket()).expect("connect");
    stream.write_all(&hello_bytes()).expect("hello");
    // 12 MiB of replies asked for, none read: past the socket's buffer, so
    // the broker's writer waits; the reader pauses at the 8 MiB high-water
    // mark. Before, the connection stayed like that for good.
    let payload = bytes::Bytes::from(vec![7u8; 256 * 1024]);
    let mut flood = BytesMut::new();
    for id in 0..48u64 {
        let send = mailbox_proto::Request::Send {
            mailbox: "own".into(),
            payload: payload.clone(),
            wait: mailbox_proto::Wait::Never,
        };
        let receive = mailbox_proto::Request::Receive {
            mailbox: "own".into(),
            wait: mailbox_proto::Wait::Never,
        };
        for (n, request) in [(2 * id, send), (2 * id + 1, receive)] {
            encode_frame(
                &mailbox_proto::ClientFrame { id: n, request },
                &mut flood,
                u32::MAX,
            )
            .expect("encode");
        }
    }
    stream.set_nonblocking(true).expect("nonblocking");
    let mut written = 0;
    let started = Instant::now();
    while written < flood.len() && started.elapsed() < Duration::from_secs(2) {
        match stream.write(&flood[written..]) {
            Ok(n) => written += n,
            Err(error) if error.kind() == std::io::ErrorKind::WouldBlock => {
                std::thread::sleep(Duration::from_millis(10));
            }
            Err(_) => break,
        }
    }
    wait_until("the broker cuts the client off", || {
        setup.log().contains("limits.write_timeout")
    });
    // What was written before is still there to read; then the close.
    stream.set_nonblocking(false).expect("blocking");
    stream
        .set_read_timeout(Some(PATIENCE))
        .expect("read timeout");
    let mut rest = Vec::new();
    match stream.read_to_end(&mut rest) {
        Ok(_) => {}
        Err(error) => assert_eq!(
            error.kind(),
            std::io::ErrorKind::ConnectionReset,
            "the connection is closed: {error}"
        ),
    }
    witness_round_trip(&mut setup.broker.client());
}

#[test]
fn past_the_descriptor_limit_connections_are_refused_at_once_and_root_gets_in() {
    if !root() {
        return;
    }
    let prlimit = require_tool("prlimit", "apt-get install util-linux");
    let prlimit = prlimit.to_str().expect("utf-8 path");
    // 160 descriptors: 32 connections, 8 of them for root.
    let setup = Setup::start_under(&[prlimit, "--nofile=160:160"], "", &[]);
    let mut witness = setup.broker.client();
    let limits = witness.status().expect("status").limits;
    let max = limits
        .iter()
        .find(|limit| limit.name == "max_connections")
        .expect("max_connections")
        .value;
    assert_eq!(max, 32);
    assert!(setup.log().contains("RLIMIT_NOFILE"), "{}", setup.log());

    // A uid opens 200 connections that never say hello: before, each took
    // a descriptor until the handshake timeout, accept failed with EMFILE,
    // and everyone else waited seconds.
    let attack = setup.attack(60001, "idle", 3.0, 200, "");
    wait_until("the unreserved connections are taken", || {
        witness.status().expect("status").connections == 24
    });
    let started = Instant::now();
    witness_round_trip(&mut setup.broker.client());
    let took = started.elapsed();
    assert!(took < Duration::from_secs(2), "root waited {took:?}");
    let idle = attack.finish();
    assert_eq!(number(&idle, "refused"), 200 - 23, "{idle:?}");
}
