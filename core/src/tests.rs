//! Tests of the core: every rule of the product as a script of requests and
//! the replies they must produce ([`check`]), then a property test that runs
//! random operations against the core and against a naive model ([`Model`])
//! and compares every reply.
//!
//! A script has one step per line, `STEP => REPLY; REPLY; ...`. The replies
//! that step produced (to any connection) are compared with the expected ones
//! as a multiset, since the order inside one outcome carries no meaning across
//! connections. Connections `c1` to `c4` exist at the start; `cN` has pid
//! `1000+N`, uid `2000+N` and gid `3000+N`.
//!
//! Steps:
//! - `c1#7 REQUEST`: request id 7 of connection 1, where REQUEST is one of
//!   `create NAME [zero|cap=N|unbounded] [broadcast] [max=N] [fixed=N]`,
//!   `delete NAME`, `info NAME`, `list`, `status`, `send NAME PAYLOAD [WAIT]`,
//!   `sendmany NAME P1,P2,... [WAIT]` (`-` for no payloads), `recv NAME
//!   [WAIT]`, `recvmany NAME MAX [WAIT]`, `sub NAME`, `unsub NAME`, `cancel
//!   ID`. WAIT is `forever` (the default), `never` or `t=MILLIS`. A NAME or
//!   PAYLOAD written `@N` is N bytes of `x`; `""` is empty.
//!   Step 3 adds (tests in `step3.rs`): `sendw TARGET PAYLOAD
//!   [stage=received|acknowledged] [key=K] [ttl=MS] [WAIT]` and `call TARGET
//!   PAYLOAD [key=K] [ttl=MS] [WAIT]`, where TARGET is a mailbox, `pN`
//!   (process N) or `n:NAME` (a well-known name); `recvw SOURCE [ack]
//!   [prio=N] [max=N] [from=pN|n:NAME] [WAIT]` with SOURCE a mailbox or
//!   `inbox`; `ack PLACE SEQ`, `nack PLACE SEQ [tail]` (PLACE a mailbox or
//!   `inbox`; `SEQ/R` settles only the delivery with R redeliveries); `reply CALL PAYLOAD`; `claim NAME [WAIT]` (default `never`),
//!   `release NAME`, `names`, `inboxcap CAPACITY`; and the settings `hash`,
//!   `priority`, `deliveries=N`, `dlq=NAME`, `ttl=MS`; the settings `ack=MS`
//!   (acknowledgement timeout, tests in `ack_timeouts.rs`) and `cut=MS`
//!   (cut slow subscribers after, `slow_subscribers.rs`). Step 4 adds `chmod NAME
//!   OCTAL`, `chown NAME UID`, `chgrp NAME GID` and `purge NAME` (answered
//!   `permissions`, `purged N`).
//! - `advance MILLIS`, `expire`, `connect cN`, `disconnect cN`, `shutdown`.
//!
//! Replies read `c1#7 sent 3 to 1` (sequence, recipients), `c2#1 got 3 hi from
//! c1` (sequence, payload, sender), `c1#8 WouldBlock` (an error, by kind),
//! `created`, `exists`, `deleted`, `subscribed`, `subscribed already`,
//! `unsubscribed`, `cancelled true|false`, `list NAME...`, `info ...` and
//! `status ...` (see [`show`]). A batch send is answered `c1#9 sentmany 4+3 to
//! 1` (first sequence + how many were admitted, recipients), with `stopped
//! KIND` after it when it ended before all were admitted (`c1#9 sentmany 4+1
//! to 1 stopped Timeout`). A batch receive is answered `c2#3 gotmany 4:a 5:b
//! from c1`: SEQUENCE:PAYLOAD in order, grouped by sender into runs separated
//! by commas (`gotmany 1:a from c1, 2:b 3:c from c2`). A received message
//! shows what it carries beyond that: ` r=N` (redeliveries), ` key=K`, ` call=N`,
//! ` dead=MAILBOX#SEQ:REASON`; `info` adds ` inflight=.. redelivered=..
//! expired=.. dead=.. dropped=..` when any of them is not zero, then
//! ` acktimeouts=N` and ` cut=N` when not zero. Step 3
//! replies: `settled`, `replied`, `claimed`, `released`, `inboxcap`, `names
//! NAME=cN+QUEUED...`.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::time::{Duration, Instant};

use bytes::Bytes;
use mailbox_proto::{
    Address, BrokerStatus, Capacity, DeliveryPolicy, ErrorKind, MailboxInfo, MailboxSettings,
    Message, Metadata, ReceiveOptions, Request, RequestId, Response, SendOptions, Source, Stage,
    Target, Verdict, Wait, PROTOCOL_VERSION,
};
use proptest::prelude::*;

use super::{Clock, ConnectionId, Core, Limits, Outcome, Peer, Reply, Ticket};

mod ack_timeouts;
mod fair_share;
mod invariants;
mod listing;
mod many_waiters;
mod slow_subscribers;
mod step3;
mod step4;
mod strangers;

/// Wall time at the start of every test, in nanoseconds since the epoch.
const UNIX_BASE: u64 = 1_700_000_000_000_000_000;

pub(super) fn peer_of(connection: ConnectionId) -> Peer {
    let n = connection.0 as u32;
    Peer {
        pid: 1000 + n,
        uid: 2000 + n,
        gid: 3000 + n,
    }
}

/// A core, a clock the test moves, and the connections that are gone (no
/// reply may ever reach them). Checks the core's invariants after every step.
struct Harness {
    core: Core,
    started: Instant,
    elapsed_millis: u64,
    gone: HashSet<ConnectionId>,
}

impl Harness {
    fn new(limits: Limits) -> Self {
        let started = Instant::now();
        let mut core = Core::new(limits, started);
        // Access control has its own tests (`access.rs`); elsewhere every
        // connection may do everything.
        core.set_access_policy(super::AccessPolicy {
            default_mode: 0o777,
            default_inbox_mode: 0o777,
            ..super::AccessPolicy::default()
        });
        Self {
            core,
            started,
            elapsed_millis: 0,
            gone: HashSet::new(),
        }
    }

    /// A harness with `c1` to `c4` connected.
    fn with_connections(limits: Limits) -> Self {
        let mut harness = Self::new(limits);
        for n in 1..=4 {
            harness.connect(ConnectionId(n));
        }
        harness
    }

    fn clock(&self) -> Clock {
        Clock {
            now: self.started + Duration::from_millis(self.elapsed_millis),
            unix_nanos: UNIX_BASE + self.elapsed_millis * 1_000_000,
        }
    }

    fn connect(&mut self, connection: ConnectionId) {
        self.core.connect(connection, peer_of(connection));
        self.core.check_invariants();
    }

    fn req(&mut self, connection: ConnectionId, id: RequestId, request: Request) -> Vec<Reply> {
        let clock = self.clock();
        let mut out = Outcome::new();
        self.core.apply(connection, id, request, &clock, &mut out);
        self.finish(out)
    }

    fn advance(&mut self, millis: u64) {
        self.elapsed_millis += millis;
    }

    fn expire(&mut self) -> Vec<Reply> {
        let clock = self.clock();
        let mut out = Outcome::new();
        self.core.expire(&clock, &mut out);
        self.finish(out)
    }

    fn disconnect(&mut self, connection: ConnectionId) -> Vec<Reply> {
        self.gone.insert(connection);
        let clock = self.clock();
        let mut out = Outcome::new();
        self.core.disconnect(connection, &clock, &mut out);
        self.finish(out)
    }

    fn shut_down(&mut self) -> Vec<Reply> {
        let clock = self.clock();
        let mut out = Outcome::new();
        self.core.shut_down(&clock, &mut out);
        self.finish(out)
    }

    fn finish(&mut self, out: Outcome) -> Vec<Reply> {
        self.core.check_invariants();
        for reply in &out.replies {
            assert!(
                !self.gone.contains(&reply.ticket.connection),
                "a reply went to a connection that is gone: {reply:?}"
            );
        }
        out.replies
    }

    /// Runs a script (see the module doc), panicking at the first step whose
    /// replies differ.
    fn run(&mut self, script: &str) {
        for line in script
            .lines()
            .map(str::trim)
            .filter(|line| !line.is_empty())
        {
            let Some((step, expected)) = line.split_once("=>") else {
                panic!("no `=>` in script line {line:?}");
            };
            let replies = self.step(step.trim());
            let mut actual: Vec<String> = replies.iter().map(show).collect();
            let mut expected: Vec<String> = expected
                .split(';')
                .map(str::trim)
                .filter(|reply| !reply.is_empty())
                .map(str::to_owned)
                .collect();
            actual.sort();
            expected.sort();
            assert_eq!(actual, expected, "replies to `{}`", step.trim());
        }
    }

    fn step(&mut self, step: &str) -> Vec<Reply> {
        let words: Vec<&str> = step.split_whitespace().collect();
        match words.as_slice() {
            ["advance", millis] => {
                self.advance(number(millis));
                Vec::new()
            }
            ["expire"] => self.expire(),
            ["connect", who] => {
                self.connect(connection(who));
                Vec::new()
            }
            ["disconnect", who] => self.disconnect(connection(who)),
            ["shutdown"] => self.shut_down(),
            [ticket, request @ ..] => {
                let Some((who, id)) = ticket.split_once('#') else {
                    panic!("a request step starts with cN#ID, not {ticket:?}");
                };
                self.req(connection(who), number(id), parse_request(request))
            }
            [] => panic!("empty step"),
        }
    }
}

fn number<T: std::str::FromStr>(word: &str) -> T {
    word.parse()
        .unwrap_or_else(|_| panic!("{word:?} is not a number"))
}

fn connection(word: &str) -> ConnectionId {
    match word.strip_prefix('c') {
        Some(n) => ConnectionId(number(n)),
        None => panic!("a connection is written cN, not {word:?}"),
    }
}

/// A name or payload: `@N` is N bytes of `x`, `""` is empty.
fn text(word: &str) -> String {
    match word.strip_prefix('@') {
        Some(n) => "x".repeat(number(n)),
        None if word == "\"\"" => String::new(),
        None => word.to_owned(),
    }
}

fn parse_wait(words: &[&str]) -> Wait {
    match words {
        [] | ["forever"] => Wait::Forever,
        ["never"] => Wait::Never,
        [word] if word.starts_with("t=") => Wait::Timeout {
            millis: number(&word[2..]),
        },
        _ => panic!("bad wait {words:?}"),
    }
}

fn parse_settings(words: &[&str]) -> MailboxSettings {
    let mut settings = MailboxSettings::default();
    for word in words {
        match word.split_once('=') {
            None if *word == "zero" => settings.capacity = Capacity::Zero,
            None if *word == "unbounded" => settings.capacity = Capacity::Unbounded,
            None if *word == "broadcast" => settings.policy = DeliveryPolicy::Broadcast,
            None if *word == "hash" => settings.policy = DeliveryPolicy::Hash,
            None if *word == "priority" => settings.policy = DeliveryPolicy::Priority,
            Some(("deliveries", n)) => settings.max_deliveries = Some(number(n)),
            Some(("dlq", name)) => settings.dead_letter = Some(text(name)),
            Some(("ttl", n)) => settings.ttl_millis = Some(number(n)),
            Some(("ack", n)) => settings.ack_timeout_millis = Some(number(n)),
            Some(("cut", n)) => settings.cut_slow_subscribers_after_millis = Some(number(n)),
            Some(("cap", n)) => settings.capacity = Capacity::Bounded(number(n)),
            Some(("max", n)) => settings.max_message_size = number(n),
            Some(("fixed", n)) => settings.fixed_size = Some(number(n)),
            _ => panic!("bad setting {word:?}"),
        }
    }
    settings
}

fn parse_request(words: &[&str]) -> Request {
    match words {
        ["create", name, settings @ ..] => {
            // `mode=NNN` and `group=N` make it a CreateMailboxWith.
            let (access, settings): (Vec<&str>, Vec<&str>) = settings
                .iter()
                .partition(|word| word.starts_with("mode=") || word.starts_with("group="));
            let settings = parse_settings(&settings);
            if access.is_empty() {
                Request::CreateMailbox {
                    name: text(name),
                    settings: Box::new(settings),
                }
            } else {
                let mut mode = None;
                let mut group = None;
                for word in access {
                    match word.split_once('=') {
                        Some(("mode", m)) => mode = Some(parse_octal(m)),
                        Some(("group", g)) => group = Some(number(g)),
                        _ => unreachable!(),
                    }
                }
                Request::CreateMailboxWith {
                    name: text(name),
                    settings: Box::new(settings),
                    mode,
                    group,
                }
            }
        }
        ["delete", name] => Request::DeleteMailbox { name: text(name) },
        ["info", name] => Request::MailboxInfo { name: text(name) },
        ["list"] => Request::ListMailboxes,
        ["status"] => Request::Status,
        ["send", name, payload, wait @ ..] => send(&text(name), &text(payload), parse_wait(wait)),
        ["sendmany", name, payloads, wait @ ..] => {
            let payloads: Vec<String> = match *payloads {
                "-" => Vec::new(),
                list => list.split(',').map(text).collect(),
            };
            let payloads: Vec<&str> = payloads.iter().map(String::as_str).collect();
            send_many(&text(name), &payloads, parse_wait(wait))
        }
        ["recv", name, wait @ ..] => recv(&text(name), parse_wait(wait)),
        ["recvmany", name, max, wait @ ..] => recv_many(&text(name), number(max), parse_wait(wait)),
        ["sub", name] => Request::Subscribe {
            mailbox: text(name),
        },
        ["unsub", name] => Request::Unsubscribe {
            mailbox: text(name),
        },
        ["cancel", id] => Request::Cancel {
            request: number(id),
        },
        ["sendw", target, payload, options @ ..] => {
            let (options, wait) = parse_send_options(options);
            Request::SendWith {
                to: parse_target(target),
                payload: Bytes::from(text(payload)),
                options: Box::new(options),
                wait,
            }
        }
        ["call", target, payload, options @ ..] => {
            let (options, wait) = parse_send_options(options);
            Request::Call {
                to: parse_target(target),
                payload: Bytes::from(text(payload)),
                options: Box::new(options),
                wait,
            }
        }
        ["reply", call, payload] => Request::Reply {
            call: number(call),
            payload: Bytes::from(text(payload)),
        },
        ["recvw", source, options @ ..] => {
            let mut receive = ReceiveOptions::default();
            let mut from = None;
            let mut rest = Vec::new();
            for word in options {
                match word.split_once('=') {
                    None if *word == "ack" => receive.manual_ack = true,
                    Some(("prio", n)) => receive.priority = number(n),
                    Some(("max", n)) => receive.max = Some(number(n)),
                    Some(("from", who)) => from = Some(parse_address(who)),
                    _ => rest.push(*word),
                }
            }
            let from = match *source {
                "inbox" => Source::Inbox { from },
                name => Source::Mailbox(text(name)),
            };
            Request::ReceiveWith {
                from,
                options: receive,
                wait: parse_wait(&rest),
            }
        }
        ["ack", place, sequence] => settle(place, sequence, Verdict::Ack),
        ["nack", place, sequence] => settle(place, sequence, Verdict::Nack { to_tail: false }),
        ["nack", place, sequence, "tail"] => {
            settle(place, sequence, Verdict::Nack { to_tail: true })
        }
        ["claim", name, wait @ ..] => Request::ClaimName {
            name: text(name),
            wait: match wait {
                [] => Wait::Never,
                wait => parse_wait(wait),
            },
        },
        ["release", name] => Request::ReleaseName { name: text(name) },
        ["names"] => Request::ListNames,
        ["chmod", name, mode] => Request::SetPermissions {
            name: text(name),
            owner: None,
            group: None,
            mode: Some(parse_octal(mode)),
        },
        ["chown", name, owner] => Request::SetPermissions {
            name: text(name),
            owner: Some(number(owner)),
            group: None,
            mode: None,
        },
        ["chgrp", name, group] => Request::SetPermissions {
            name: text(name),
            owner: None,
            group: Some(number(group)),
            mode: None,
        },
        ["purge", name] => Request::Purge { name: text(name) },
        ["inboxperm", mode] => Request::SetInboxPermissions {
            mode: Some(parse_octal(mode)),
            group: None,
        },
        ["inboxperm", mode, group] => Request::SetInboxPermissions {
            mode: Some(parse_octal(mode)),
            group: Some(number(group)),
        },
        ["inboxcap", capacity] => Request::SetInboxCapacity {
            capacity: capacity
                .parse()
                .unwrap_or_else(|_| panic!("bad capacity {capacity}")),
        },
        _ => panic!("bad request {words:?}"),
    }
}

fn parse_octal(mode: &str) -> u32 {
    u32::from_str_radix(mode, 8).unwrap_or_else(|_| panic!("bad mode {mode}"))
}

/// `pN` is process N, `n:NAME` a well-known name.
fn parse_address(word: &str) -> Address {
    match (word.strip_prefix('p'), word.strip_prefix("n:")) {
        (Some(n), _) if n.parse::<u64>().is_ok() => Address::Process(number(n)),
        (_, Some(name)) => Address::Name(name.to_owned()),
        _ => panic!("an address is pN or n:NAME, not {word:?}"),
    }
}

/// A process address (`pN`, `n:NAME`) or a mailbox name.
fn parse_target(word: &str) -> Target {
    if word.starts_with("n:") || (word.starts_with('p') && word[1..].parse::<u64>().is_ok()) {
        Target::Process(parse_address(word))
    } else {
        Target::Mailbox(text(word))
    }
}

/// `stage=received|acknowledged`, `key=K`, `ttl=MS`, then a WAIT.
fn parse_send_options(words: &[&str]) -> (SendOptions, Wait) {
    let mut options = SendOptions::default();
    let mut rest = Vec::new();
    for word in words {
        match word.split_once('=') {
            Some(("stage", "received")) => options.stage = Stage::Received,
            Some(("stage", "acknowledged")) => options.stage = Stage::Acknowledged,
            Some(("key", key)) => options.key = Some(key.to_owned()),
            Some(("ttl", n)) => options.ttl_millis = Some(number(n)),
            _ => rest.push(*word),
        }
    }
    (options, parse_wait(&rest))
}

fn settle(place: &str, sequence: &str, verdict: Verdict) -> Request {
    // `SEQ` settles whichever delivery is held, `SEQ/R` only redelivery R.
    let (sequence, redeliveries) = match sequence.split_once('/') {
        Some((sequence, r)) => (sequence, Some(number(r))),
        None => (sequence, None),
    };
    Request::Settle {
        mailbox: (place != "inbox").then(|| text(place)),
        sequence: number(sequence),
        verdict,
        redeliveries,
    }
}

fn send(mailbox: &str, payload: &str, wait: Wait) -> Request {
    Request::Send {
        mailbox: mailbox.to_owned(),
        payload: Bytes::copy_from_slice(payload.as_bytes()),
        wait,
    }
}

fn recv(mailbox: &str, wait: Wait) -> Request {
    Request::Receive {
        mailbox: mailbox.to_owned(),
        wait,
    }
}

fn send_many(mailbox: &str, payloads: &[&str], wait: Wait) -> Request {
    Request::SendMany {
        mailbox: mailbox.to_owned(),
        payloads: payloads
            .iter()
            .map(|payload| Bytes::copy_from_slice(payload.as_bytes()))
            .collect(),
        wait,
    }
}

fn recv_many(mailbox: &str, max: u32, wait: Wait) -> Request {
    Request::ReceiveMany {
        mailbox: mailbox.to_owned(),
        max,
        wait,
    }
}

fn show_payload(payload: &[u8]) -> String {
    if payload.is_empty() {
        "\"\"".to_owned()
    } else if payload.iter().all(|byte| *byte == b'x') {
        format!("@{}", payload.len())
    } else {
        String::from_utf8_lossy(payload).into_owned()
    }
}

/// What a message carries beyond the basics: ` r=N` (redeliveries), ` key=K`,
/// ` call=N`, ` dead=MAILBOX#SEQ:REASON`.
fn show_extras(message: &Message) -> String {
    let mut text = String::new();
    if message.metadata.redeliveries > 0 {
        text.push_str(&format!(" r={}", message.metadata.redeliveries));
    }
    if let Some(details) = &message.metadata.details {
        if let Some(key) = &details.key {
            text.push_str(&format!(" key={key}"));
        }
        if let Some(call) = details.call {
            text.push_str(&format!(" call={call}"));
        }
        if let Some(dead) = &details.dead_letter {
            text.push_str(&format!(
                " dead={}#{}:{}",
                dead.mailbox,
                dead.sequence,
                dead.reason.replace(' ', "-")
            ));
        }
    }
    text
}

/// One reply as a script writes it.
fn show(reply: &Reply) -> String {
    let what = match &reply.result {
        Err(error) => format!("{:?}", error.kind),
        Ok(Response::Created { created: true }) => "created".to_owned(),
        Ok(Response::Created { created: false }) => "exists".to_owned(),
        Ok(Response::Deleted) => "deleted".to_owned(),
        Ok(Response::Mailboxes(list)) => {
            let names: Vec<String> = list
                .iter()
                .map(|info| show_payload(info.name.as_bytes()))
                .collect();
            format!("list {}", names.join(" ")).trim_end().to_owned()
        }
        Ok(Response::Info(info)) => {
            let mut text = format!(
                "info queued={} bytes={} senders={} receivers={} subscribers={} accepted={} delivered={}",
                info.queued_messages,
                info.queued_bytes,
                info.waiting_senders,
                info.waiting_receivers,
                info.subscribers,
                info.messages_accepted,
                info.messages_delivered
            );
            let counters = [
                info.in_flight,
                info.messages_redelivered,
                info.messages_expired,
                info.messages_dead_lettered,
                info.messages_dropped,
            ];
            if counters.iter().any(|c| *c > 0) {
                text.push_str(&format!(
                    " inflight={} redelivered={} expired={} dead={} dropped={}",
                    counters[0], counters[1], counters[2], counters[3], counters[4]
                ));
            }
            if info.ack_timeouts > 0 {
                text.push_str(&format!(" acktimeouts={}", info.ack_timeouts));
            }
            if info.slow_subscribers_cut > 0 {
                text.push_str(&format!(" cut={}", info.slow_subscribers_cut));
            }
            text
        }
        Ok(Response::Sent {
            sequence,
            recipients,
        }) => format!("sent {sequence} to {recipients}"),
        Ok(Response::Received(message)) => format!(
            "got {} {} from c{}{}",
            message.metadata.sequence,
            show_payload(&message.payload),
            message.metadata.sender_connection,
            show_extras(message)
        ),
        Ok(Response::SentMany {
            first_sequence,
            admitted,
            recipients,
            stopped,
        }) => {
            let mut text = format!("sentmany {first_sequence}+{admitted} to {recipients}");
            if let Some(error) = stopped {
                text.push_str(&format!(" stopped {:?}", error.kind));
            }
            text
        }
        Ok(Response::ReceivedMany(messages)) => {
            // Runs of one sender: `1:a 2:b from c1, 3:c from c2`.
            let mut runs: Vec<(u64, Vec<String>)> = Vec::new();
            for message in messages {
                let item = format!(
                    "{}:{}",
                    message.metadata.sequence,
                    show_payload(&message.payload)
                );
                let sender = message.metadata.sender_connection;
                match runs.last_mut() {
                    Some((last, items)) if *last == sender => items.push(item),
                    _ => runs.push((sender, vec![item])),
                }
            }
            let runs: Vec<String> = runs
                .iter()
                .map(|(sender, items)| format!("{} from c{sender}", items.join(" ")))
                .collect();
            format!("gotmany {}", runs.join(", ")).trim_end().to_owned()
        }
        Ok(Response::Subscribed { created: true }) => "subscribed".to_owned(),
        Ok(Response::Subscribed { created: false }) => "subscribed already".to_owned(),
        Ok(Response::Unsubscribed) => "unsubscribed".to_owned(),
        Ok(Response::CancelResult { cancelled }) => format!("cancelled {cancelled}"),
        Ok(Response::Status(status)) => format!(
            "status connections={} mailboxes={} queued={} bytes={}",
            status.connections, status.mailboxes, status.queued_messages, status.queued_bytes
        ),
        Ok(Response::Settled) => "settled".to_owned(),
        Ok(Response::Replied) => "replied".to_owned(),
        Ok(Response::NameClaimed) => "claimed".to_owned(),
        Ok(Response::NameReleased) => "released".to_owned(),
        Ok(Response::InboxCapacitySet) => "inboxcap".to_owned(),
        Ok(Response::InboxPermissionsSet) => "inboxperm".to_owned(),
        Ok(Response::PermissionsSet) => "permissions".to_owned(),
        Ok(Response::Purged { discarded }) => format!("purged {discarded}"),
        Ok(Response::Names(names)) => {
            let names: Vec<String> = names
                .iter()
                .map(|n| format!("{}=c{}+{}", n.name, n.process, n.queued_claims))
                .collect();
            format!("names {}", names.join(" ")).trim_end().to_owned()
        }
        // Pages have their own tests (`tests/listing.rs`), not scripts.
        Ok(Response::MailboxPage { mailboxes, next }) => {
            format!("mailbox page of {} next {next:?}", mailboxes.len())
        }
        Ok(Response::NamePage { names, next }) => {
            format!("name page of {} next {next:?}", names.len())
        }
    };
    format!(
        "c{}#{} {what}",
        reply.ticket.connection.0, reply.ticket.request
    )
}

/// Runs `script` on a fresh core with default limits.
fn check(script: &str) {
    check_with(Limits::default(), script);
}

/// Runs `script` on a fresh core with `limits`.
fn check_with(limits: Limits, script: &str) {
    Harness::with_connections(limits).run(script);
}

fn limits(memory_budget: u64, max_waiting_per_connection: usize) -> Limits {
    Limits {
        memory_budget,
        max_waiting_per_connection,
        ..totals_only()
    }
}

/// The default limits without per-uid shares or a reserve: for the tests of
/// the broker's totals alone (`tests/fair_share.rs` has the shares).
fn totals_only() -> Limits {
    Limits {
        max_queued_bytes_per_uid: Some(u64::MAX),
        max_queued_messages_per_uid: Some(u64::MAX),
        admin_reserve_bytes: Some(0),
        admin_reserve_messages: Some(0),
        ..Limits::default()
    }
}

// ---------------------------------------------------------------------------
// 1. Mailboxes: names, settings, create, delete
// ---------------------------------------------------------------------------

#[test]
fn names_of_1_to_255_letters_digits_dots_underscores_slashes_dashes_are_valid() {
    check(
        "
        c1#1 create a                          => c1#1 created
        c1#2 create Jobs/high-priority_v2.0    => c1#2 created
        c1#3 create @255                       => c1#3 created
        c1#4 create @256                       => c1#4 InvalidName
        c1#5 create \"\"                       => c1#5 InvalidName
        c1#6 create a:b                        => c1#6 InvalidName
        c1#7 create a*b                        => c1#7 InvalidName
        c1#8 create caf\u{e9}                  => c1#8 InvalidName
        c1#9 list                              => c1#9 list Jobs/high-priority_v2.0 a @255
        ",
    );
    let mut harness = Harness::with_connections(Limits::default());
    for bad in ["a b", "tab\there", "line\nbreak", "nul\0", "a\\b", "~home"] {
        let replies = harness.req(
            ConnectionId(1),
            1,
            Request::CreateMailbox {
                name: bad.to_owned(),
                settings: Box::default(),
            },
        );
        assert_eq!(
            replies.iter().map(show).collect::<Vec<_>>(),
            ["c1#1 InvalidName"],
            "{bad:?}"
        );
    }
}

#[test]
fn requests_naming_a_missing_mailbox_answer_invalid_name_or_no_such_mailbox() {
    check(
        "
        c1#1 send bad!name hi never     => c1#1 InvalidName
        c1#2 recv bad!name never        => c1#2 InvalidName
        c1#3 info bad!name              => c1#3 InvalidName
        c1#4 delete bad!name            => c1#4 InvalidName
        c1#5 sub bad!name               => c1#5 InvalidName
        c1#6 unsub bad!name             => c1#6 InvalidName
        c1#7 send @256 hi               => c1#7 InvalidName
        c1#8 send good hi never         => c1#8 NoSuchMailbox
        c1#9 recv good                  => c1#9 NoSuchMailbox
        c1#10 info good                 => c1#10 NoSuchMailbox
        c1#11 delete good               => c1#11 NoSuchMailbox
        c1#12 sub good                  => c1#12 NoSuchMailbox
        c1#13 unsub good                => c1#13 NoSuchMailbox
        c1#14 status                    => c1#14 status connections=4 mailboxes=0 queued=0 bytes=0
        ",
    );
}

#[test]
fn create_again_with_the_same_settings_succeeds_without_change() {
    check(
        "
        c1#1 create q cap=2 broadcast max=64 fixed=8  => c1#1 created
        c1#2 send q @8                                => c1#2 sent 1 to 0
        c1#3 create q cap=2 broadcast max=64 fixed=8  => c1#3 exists
        c2#2 info q => c2#2 info queued=0 bytes=0 senders=0 receivers=0 subscribers=0 accepted=1 delivered=0
        ",
    );
}

#[test]
fn create_again_with_other_settings_is_mailbox_exists() {
    check(
        "
        c1#1 create q cap=2                  => c1#1 created
        c1#2 create q cap=3                  => c1#2 MailboxExists
        c1#3 create q zero                   => c1#3 MailboxExists
        c1#4 create q                        => c1#4 MailboxExists
        c1#5 create q cap=2 broadcast        => c1#5 MailboxExists
        c1#6 create q cap=2 max=10           => c1#6 MailboxExists
        c1#7 create q cap=2 fixed=8          => c1#7 MailboxExists
        c1#8 create q cap=2                  => c1#8 exists
        ",
    );
}

#[test]
fn contradictory_settings_are_invalid_settings() {
    check(
        "
        c1#1 create a cap=0                  => c1#1 InvalidSettings
        c1#2 create b max=0                  => c1#2 InvalidSettings
        c1#3 create c max=16777217           => c1#3 InvalidSettings
        c1#4 create d max=16777216           => c1#4 created
        c1#5 create e max=8 fixed=9          => c1#5 InvalidSettings
        c1#6 create f max=8 fixed=8          => c1#6 created
        c1#7 create f max=0                  => c1#7 InvalidSettings
        c1#8 list                            => c1#8 list d f
        ",
    );
}

#[test]
fn delete_wakes_every_waiting_sender_and_receiver_with_mailbox_deleted() {
    check(
        "
        c1#1 create q cap=1             => c1#1 created
        c1#2 send q aa                  => c1#2 sent 1 to 1
        c1#3 send q bb                  =>
        c2#1 send q cc t=100            =>
        c1#4 create z zero              => c1#4 created
        c3#1 recv z                     =>
        c3#2 recv z t=100               =>
        c4#1 status                     => c4#1 status connections=4 mailboxes=2 queued=1 bytes=6
        c4#2 delete q                   => c4#2 deleted; c1#3 MailboxDeleted; c2#1 MailboxDeleted
        c4#3 delete z                   => c4#3 deleted; c3#1 MailboxDeleted; c3#2 MailboxDeleted
        c4#4 status                     => c4#4 status connections=4 mailboxes=0 queued=0 bytes=0
        advance 100                     =>
        expire                          =>
        c4#5 delete q                   => c4#5 NoSuchMailbox
        ",
    );
}

#[test]
fn delete_wakes_waiting_subscribers_and_ends_their_subscriptions() {
    check(
        "
        c1#1 create b broadcast cap=1   => c1#1 created
        c2#1 sub b                      => c2#1 subscribed
        c3#1 sub b                      => c3#1 subscribed
        c1#2 send b aa                  => c1#2 sent 1 to 2
        c2#2 recv b                     => c2#2 got 1 aa from c1
        c2#3 recv b                     =>
        c1#3 send b bb                  =>
        c4#1 delete b                   => c4#1 deleted; c2#3 MailboxDeleted; c1#3 MailboxDeleted
        c4#2 status                     => c4#2 status connections=4 mailboxes=0 queued=0 bytes=0
        c2#4 recv b never               => c2#4 NoSuchMailbox
        c4#3 create b broadcast cap=1   => c4#3 created
        c2#5 recv b never               => c2#5 NotSubscribed
        c3#2 unsub b                    => c3#2 NotSubscribed
        disconnect c3                   =>
        c1#4 send b cc                  => c1#4 sent 1 to 0
        ",
    );
}

// ---------------------------------------------------------------------------
// 2. Send
// ---------------------------------------------------------------------------

#[test]
fn blocking_send_waits_while_full_and_is_admitted_when_a_receive_makes_room() {
    check(
        "
        c1#1 create q cap=2             => c1#1 created
        c1#2 send q a                   => c1#2 sent 1 to 1
        c1#3 send q b                   => c1#3 sent 2 to 1
        c1#4 send q c                   =>
        c2#1 info q => c2#1 info queued=2 bytes=2 senders=1 receivers=0 subscribers=0 accepted=2 delivered=0
        c2#2 recv q                     => c2#2 got 1 a from c1; c1#4 sent 3 to 1
        c2#3 recv q                     => c2#3 got 2 b from c1
        c2#4 recv q                     => c2#4 got 3 c from c1
        c2#5 info q => c2#5 info queued=0 bytes=0 senders=0 receivers=0 subscribers=0 accepted=3 delivered=3
        ",
    );
}

#[test]
fn blocking_send_on_zero_completes_together_with_the_receive_that_takes_it() {
    check(
        "
        c1#1 create z zero              => c1#1 created
        c1#2 send z a                   =>
        c3#1 info z => c3#1 info queued=0 bytes=0 senders=1 receivers=0 subscribers=0 accepted=0 delivered=0
        c2#1 recv z                     => c2#1 got 1 a from c1; c1#2 sent 1 to 1
        c2#2 recv z                     =>
        c1#3 send z b                   => c1#3 sent 2 to 1; c2#2 got 2 b from c1
        c3#2 info z => c3#2 info queued=0 bytes=0 senders=0 receivers=0 subscribers=0 accepted=2 delivered=2
        c3#3 status                     => c3#3 status connections=4 mailboxes=1 queued=0 bytes=0
        ",
    );
}

#[test]
fn non_blocking_send_to_a_full_mailbox_would_block_and_is_never_enqueued() {
    check(
        "
        c1#1 create q cap=1             => c1#1 created
        c1#2 send q a never             => c1#2 sent 1 to 1
        c1#3 send q b never             => c1#3 WouldBlock
        c1#4 info q => c1#4 info queued=1 bytes=1 senders=0 receivers=0 subscribers=0 accepted=1 delivered=0
        c2#1 recv q never               => c2#1 got 1 a from c1
        c2#2 recv q never               => c2#2 WouldBlock
        c1#5 send q c never             => c1#5 sent 2 to 1
        c2#3 recv q never               => c2#3 got 2 c from c1
        c2#4 recv q never               => c2#4 WouldBlock
        c2#5 status                     => c2#5 status connections=4 mailboxes=1 queued=0 bytes=0
        ",
    );
}

#[test]
fn non_blocking_send_on_zero_needs_a_waiting_receiver() {
    check(
        "
        c1#1 create z zero              => c1#1 created
        c1#2 send z a never             => c1#2 WouldBlock
        c2#1 recv z never               => c2#1 WouldBlock
        c2#2 recv z                     =>
        c1#3 send z b never             => c1#3 sent 1 to 1; c2#2 got 1 b from c1
        c1#4 send z c never             => c1#4 WouldBlock
        ",
    );
}

#[test]
fn timed_send_expires_with_timeout_and_is_never_delivered() {
    check(
        "
        c1#1 create q cap=1             => c1#1 created
        c1#2 send q a                   => c1#2 sent 1 to 1
        c1#3 send q b t=50              =>
        advance 49                      =>
        expire                          =>
        advance 1                       =>
        expire                          => c1#3 Timeout
        c2#1 recv q never               => c2#1 got 1 a from c1
        c2#2 recv q never               => c2#2 WouldBlock
        c1#4 send q c never             => c1#4 sent 2 to 1
        c2#3 status                     => c2#3 status connections=4 mailboxes=1 queued=1 bytes=1
        ",
    );
}

#[test]
fn timed_send_on_zero_is_withdrawn_so_a_later_receiver_waits() {
    check(
        "
        c1#1 create z zero              => c1#1 created
        c1#2 send z a t=10              =>
        advance 25                      =>
        expire                          => c1#2 Timeout
        c2#1 recv z                     =>
        c1#3 send z b                   => c1#3 sent 1 to 1; c2#1 got 1 b from c1
        ",
    );
}

#[test]
fn zero_timeout_send_fails_at_once_with_timeout() {
    check(
        "
        c1#1 create q cap=1             => c1#1 created
        c1#2 send q a t=0               => c1#2 sent 1 to 1
        c1#3 send q b t=0               => c1#3 Timeout
        c1#4 info q => c1#4 info queued=1 bytes=1 senders=0 receivers=0 subscribers=0 accepted=1 delivered=0
        c1#5 create z zero              => c1#5 created
        c1#6 send z c t=0               => c1#6 Timeout
        advance 1000                    =>
        expire                          =>
        ",
    );
}

#[test]
fn unbounded_send_never_waits() {
    let mut harness = Harness::with_connections(Limits::default());
    harness.run("c1#1 create q unbounded => c1#1 created");
    for id in 2..=201u64 {
        let replies = harness.req(ConnectionId(1), id, send("q", "m", Wait::Forever));
        assert_eq!(
            replies.iter().map(show).collect::<Vec<_>>(),
            [format!("c1#{id} sent {} to 1", id - 1)]
        );
    }
    harness.run(
        "c2#1 info q => c2#1 info queued=200 bytes=200 senders=0 receivers=0 subscribers=0 accepted=200 delivered=0",
    );
}

#[test]
fn the_message_limit_counts_empty_messages_and_turns_into_broker_full() {
    check_with(
        Limits {
            max_queued_messages: 2,
            ..totals_only()
        },
        "
        c1#1 create q                   => c1#1 created
        c1#2 send q \"\"                => c1#2 sent 1 to 1
        c1#3 send q \"\"                => c1#3 sent 2 to 1
        c1#4 send q \"\"                => c1#4 BrokerFull
        c1#5 sendmany q a,b             => c1#5 BrokerFull
        c2#1 recv q                     => c2#1 got 1 \"\" from c1
        c1#6 send q \"\"                => c1#6 sent 3 to 1
        c2#2 recvmany q 5               => c2#2 gotmany 2:\"\" 3:\"\" from c1
        c1#7 sendmany q a,b             => c1#7 sentmany 4+2 to 1
        ",
    );
}

#[test]
fn memory_budget_turns_into_broker_full_and_delivery_releases_it() {
    check_with(
        limits(4, 100),
        "
        c1#1 create q                   => c1#1 created
        c1#2 send q ab                  => c1#2 sent 1 to 1
        c1#3 send q cd                  => c1#3 sent 2 to 1
        c1#4 send q e                   => c1#4 BrokerFull
        c1#5 send q \"\"                => c1#5 sent 3 to 1
        c1#6 status                     => c1#6 status connections=4 mailboxes=1 queued=3 bytes=4
        c2#1 recv q                     => c2#1 got 1 ab from c1
        c1#7 send q e                   => c1#7 sent 4 to 1
        c1#8 send q f                   => c1#8 sent 5 to 1
        c1#9 send q g                   => c1#9 BrokerFull
        c2#2 recv q                     => c2#2 got 2 cd from c1
        c2#3 recv q                     => c2#3 got 3 \"\" from c1
        c2#4 recv q                     => c2#4 got 4 e from c1
        c2#5 recv q                     => c2#5 got 5 f from c1
        c1#10 status                    => c1#10 status connections=4 mailboxes=1 queued=0 bytes=0
        c1#11 send q abcd               => c1#11 sent 6 to 1
        ",
    );
}

#[test]
fn waiting_sends_hold_budget_until_admitted_or_withdrawn() {
    check_with(
        limits(4, 100),
        "
        c1#1 create q cap=1             => c1#1 created
        c1#2 send q ab                  => c1#2 sent 1 to 1
        c1#3 send q cd                  =>
        c2#1 send q e never             => c2#1 BrokerFull
        c2#2 status                     => c2#2 status connections=4 mailboxes=1 queued=1 bytes=4
        c1#4 cancel 3                   => c1#4 cancelled true; c1#3 Cancelled
        c2#3 status                     => c2#3 status connections=4 mailboxes=1 queued=1 bytes=2
        c2#4 send q e t=10              =>
        advance 10                      =>
        expire                          => c2#4 Timeout
        c2#5 send q fg                  =>
        disconnect c2                   =>
        c3#1 status                     => c3#1 status connections=3 mailboxes=1 queued=1 bytes=2
        c3#2 create b broadcast         => c3#2 created
        c3#3 send b abcd                => c3#3 BrokerFull
        c3#4 send b ab                  => c3#4 sent 1 to 0
        c3#5 status                     => c3#5 status connections=3 mailboxes=2 queued=1 bytes=2
        ",
    );
}

#[test]
fn payload_above_max_message_size_is_message_too_large() {
    check(
        "
        c1#1 create q max=4             => c1#1 created
        c1#2 send q @4 never            => c1#2 sent 1 to 1
        c1#3 send q @5 never            => c1#3 MessageTooLarge
        c1#4 send q @5                  => c1#4 MessageTooLarge
        c1#5 create d                   => c1#5 created
        c1#6 send d @1048576            => c1#6 sent 1 to 1
        c1#7 send d @1048577            => c1#7 MessageTooLarge
        c1#8 status                     => c1#8 status connections=4 mailboxes=2 queued=2 bytes=1048580
        ",
    );
}

#[test]
fn fixed_size_mailbox_refuses_payloads_of_other_sizes_with_wrong_message_size() {
    check(
        "
        c1#1 create f max=8 fixed=4     => c1#1 created
        c1#2 send f @4                  => c1#2 sent 1 to 1
        c1#3 send f @3                  => c1#3 WrongMessageSize
        c1#4 send f @5                  => c1#4 WrongMessageSize
        c1#5 send f \"\"                => c1#5 WrongMessageSize
        c1#6 send f @9                  => c1#6 MessageTooLarge
        c1#7 info f => c1#7 info queued=1 bytes=4 senders=0 receivers=0 subscribers=0 accepted=1 delivered=0
        ",
    );
}

// ---------------------------------------------------------------------------
// 3. Receive
// ---------------------------------------------------------------------------

#[test]
fn blocking_receive_waits_for_the_next_send() {
    check(
        "
        c1#1 create q                   => c1#1 created
        c2#1 recv q                     =>
        advance 100000                  =>
        expire                          =>
        c1#2 send q a                   => c1#2 sent 1 to 1; c2#1 got 1 a from c1
        ",
    );
}

#[test]
fn non_blocking_receive_from_an_empty_mailbox_would_block() {
    check(
        "
        c1#1 create q                   => c1#1 created
        c2#1 recv q never               => c2#1 WouldBlock
        c1#2 send q a                   => c1#2 sent 1 to 1
        c2#2 recv q never               => c2#2 got 1 a from c1
        c2#3 recv q never               => c2#3 WouldBlock
        c2#4 info q => c2#4 info queued=0 bytes=0 senders=0 receivers=0 subscribers=0 accepted=1 delivered=1
        ",
    );
}

#[test]
fn timed_receive_expires_with_timeout_and_takes_nothing_later() {
    check(
        "
        c1#1 create q                   => c1#1 created
        c2#1 recv q t=0                 => c2#1 Timeout
        c2#2 recv q t=20                =>
        advance 19                      =>
        expire                          =>
        advance 1                       =>
        expire                          => c2#2 Timeout
        c1#2 send q a                   => c1#2 sent 1 to 1
        c2#3 info q => c2#3 info queued=1 bytes=1 senders=0 receivers=0 subscribers=0 accepted=1 delivered=0
        c2#4 recv q t=5                 => c2#4 got 1 a from c1
        c2#5 recv q t=5                 =>
        c1#3 send q b                   => c1#3 sent 2 to 1; c2#5 got 2 b from c1
        advance 5                       =>
        expire                          =>
        ",
    );
}

#[test]
fn next_deadline_is_the_earliest_deadline_still_waiting() {
    let mut harness = Harness::with_connections(Limits::default());
    harness.run(
        "
        c1#1 create q                   => c1#1 created
        c1#2 recv q                     =>
        ",
    );
    assert_eq!(harness.core.next_deadline(), None);
    harness.run(
        "
        c1#3 recv q t=30                =>
        c2#1 recv q t=10                =>
        ",
    );
    let start = harness.clock().now;
    assert_eq!(
        harness.core.next_deadline(),
        Some(start + Duration::from_millis(10))
    );
    harness.run("c2#2 cancel 1 => c2#2 cancelled true; c2#1 Cancelled");
    assert_eq!(
        harness.core.next_deadline(),
        Some(start + Duration::from_millis(30))
    );
    harness.run("c2#3 send q a => c2#3 sent 1 to 1; c1#2 got 1 a from c2");
    assert_eq!(
        harness.core.next_deadline(),
        Some(start + Duration::from_millis(30))
    );
    harness.run("c2#4 send q b => c2#4 sent 2 to 1; c1#3 got 2 b from c2");
    assert_eq!(harness.core.next_deadline(), None);
}

#[test]
fn thousands_of_stale_deadlines_neither_fire_nor_hide_a_live_one() {
    let mut harness = Harness::with_connections(Limits::default());
    harness.run(
        "
        c1#1 create q                   => c1#1 created
        c1#2 create r                   => c1#2 created
        c3#1 recv r t=80                =>
        ",
    );
    let live = harness.clock().now + Duration::from_millis(80);
    // Each timed receive is answered at once by the send after it, which
    // leaves its deadline behind; the core drops such stale deadlines in
    // bulk once they dominate, and must keep the live one when it does.
    for round in 1..=3000u64 {
        let waiting = harness.req(ConnectionId(1), 2, recv("q", Wait::Timeout { millis: 50 }));
        assert!(waiting.is_empty(), "{waiting:?}");
        let replies = harness.req(ConnectionId(2), 1, send("q", "m", Wait::Never));
        assert_eq!(
            replies.iter().map(show).collect::<Vec<_>>(),
            [
                format!("c2#1 sent {round} to 1"),
                format!("c1#2 got {round} m from c2")
            ]
        );
    }
    assert_eq!(harness.core.next_deadline(), Some(live));
    harness.run(
        "
        advance 50                      =>
        expire                          =>
        advance 30                      =>
        expire                          => c3#1 Timeout
        ",
    );
    assert_eq!(harness.core.next_deadline(), None);
}

#[test]
fn a_timeout_too_far_to_represent_waits_without_a_deadline() {
    check(
        "
        c1#1 create q                   => c1#1 created
        c1#2 recv q t=18446744073709551615 =>
        advance 1000000                 =>
        expire                          =>
        c2#1 send q a                   => c2#1 sent 1 to 1; c1#2 got 1 a from c2
        ",
    );
}

// ---------------------------------------------------------------------------
// 4. FIFO and fairness
// ---------------------------------------------------------------------------

#[test]
fn messages_come_out_in_the_order_their_sends_were_admitted() {
    check(
        "
        c1#1 create q                   => c1#1 created
        c1#2 send q a                   => c1#2 sent 1 to 1
        c2#1 send q b                   => c2#1 sent 2 to 1
        c1#3 send q c                   => c1#3 sent 3 to 1
        c3#1 recv q                     => c3#1 got 1 a from c1
        c4#1 recv q                     => c4#1 got 2 b from c2
        c3#2 recv q                     => c3#2 got 3 c from c1
        ",
    );
}

#[test]
fn waiting_senders_are_admitted_first_come_first_served() {
    check(
        "
        c1#1 create q cap=1             => c1#1 created
        c1#2 send q a                   => c1#2 sent 1 to 1
        c2#1 send q b                   =>
        c3#1 send q c                   =>
        c1#3 send q d                   =>
        c4#1 recv q never               => c4#1 got 1 a from c1; c2#1 sent 2 to 1
        c4#2 recv q never               => c4#2 got 2 b from c2; c3#1 sent 3 to 1
        c4#3 recv q never               => c4#3 got 3 c from c3; c1#3 sent 4 to 1
        c4#4 recv q never               => c4#4 got 4 d from c1
        c1#4 create z zero              => c1#4 created
        c3#2 send z e                   =>
        c2#2 send z f                   =>
        c4#5 recv z                     => c4#5 got 1 e from c3; c3#2 sent 1 to 1
        c4#6 recv z                     => c4#6 got 2 f from c2; c2#2 sent 2 to 1
        ",
    );
}

#[test]
fn waiting_receivers_are_served_first_come_first_served() {
    check(
        "
        c1#1 create q cap=1             => c1#1 created
        c3#1 recv q                     =>
        c1#2 recv q                     =>
        c2#1 recv q                     =>
        c4#1 send q a                   => c4#1 sent 1 to 1; c3#1 got 1 a from c4
        c4#2 send q b                   => c4#2 sent 2 to 1; c1#2 got 2 b from c4
        c4#3 send q c                   => c4#3 sent 3 to 1; c2#1 got 3 c from c4
        c4#4 send q d                   => c4#4 sent 4 to 1
        ",
    );
}

// ---------------------------------------------------------------------------
// 5. Round-robin
// ---------------------------------------------------------------------------

#[test]
fn round_robin_gives_each_message_to_exactly_one_receiver() {
    check(
        "
        c1#1 create q                   => c1#1 created
        c2#1 recv q                     =>
        c3#1 recv q                     =>
        c1#2 send q a                   => c1#2 sent 1 to 1; c2#1 got 1 a from c1
        c1#3 info q => c1#3 info queued=0 bytes=0 senders=0 receivers=1 subscribers=0 accepted=1 delivered=1
        c1#4 send q b                   => c1#4 sent 2 to 1; c3#1 got 2 b from c1
        c1#5 send q c                   => c1#5 sent 3 to 1
        c2#2 recv q never               => c2#2 got 3 c from c1
        c3#2 recv q never               => c3#2 WouldBlock
        ",
    );
}

#[test]
fn round_robin_receivers_take_turns() {
    check(
        "
        c1#1 create q zero              => c1#1 created
        c1#2 recv q                     =>
        c2#1 recv q                     =>
        c3#1 recv q                     =>
        c4#1 send q a                   => c4#1 sent 1 to 1; c1#2 got 1 a from c4
        c1#3 recv q                     =>
        c4#2 send q b                   => c4#2 sent 2 to 1; c2#1 got 2 b from c4
        c4#3 send q c                   => c4#3 sent 3 to 1; c3#1 got 3 c from c4
        c4#4 send q d                   => c4#4 sent 4 to 1; c1#3 got 4 d from c4
        c4#5 send q e never             => c4#5 WouldBlock
        ",
    );
}

// ---------------------------------------------------------------------------
// 6. Broadcast
// ---------------------------------------------------------------------------

#[test]
fn broadcast_receive_without_subscription_is_not_subscribed() {
    check(
        "
        c1#1 create b broadcast         => c1#1 created
        c2#1 recv b                     => c2#1 NotSubscribed
        c2#2 recv b never               => c2#2 NotSubscribed
        c2#3 unsub b                    => c2#3 NotSubscribed
        c1#2 send b a                   => c1#2 sent 1 to 0
        ",
    );
}

#[test]
fn subscribe_to_round_robin_is_not_broadcast() {
    check(
        "
        c1#1 create q                   => c1#1 created
        c2#1 sub q                      => c2#1 NotBroadcast
        c2#2 unsub q                    => c2#2 NotBroadcast
        c1#2 send q a                   => c1#2 sent 1 to 1
        c2#3 recv q never               => c2#3 got 1 a from c1
        ",
    );
}

#[test]
fn every_subscriber_gets_every_message_sent_after_it_subscribed_in_order() {
    check(
        "
        c1#1 create b broadcast         => c1#1 created
        c1#2 sub b                      => c1#2 subscribed
        c3#1 send b m1                  => c3#1 sent 1 to 1
        c2#1 sub b                      => c2#1 subscribed
        c2#2 sub b                      => c2#2 subscribed already
        c3#2 send b m2                  => c3#2 sent 2 to 2
        c4#1 send b m3                  => c4#1 sent 3 to 2
        c2#3 recv b never               => c2#3 got 2 m2 from c3
        c1#3 recv b never               => c1#3 got 1 m1 from c3
        c1#4 recv b never               => c1#4 got 2 m2 from c3
        c1#5 recv b never               => c1#5 got 3 m3 from c4
        c1#6 recv b never               => c1#6 WouldBlock
        c1#7 recv b                     =>
        c2#4 recv b                     => c2#4 got 3 m3 from c4
        c2#5 recv b                     =>
        c3#3 send b m4                  => c3#3 sent 4 to 2; c1#7 got 4 m4 from c3; c2#5 got 4 m4 from c3
        c3#4 info b => c3#4 info queued=0 bytes=0 senders=0 receivers=0 subscribers=2 accepted=4 delivered=7
        ",
    );
}

#[test]
fn broadcast_capacity_applies_to_the_slowest_subscribers_backlog() {
    check(
        "
        c1#1 create b broadcast cap=2   => c1#1 created
        c1#2 sub b                      => c1#2 subscribed
        c2#1 sub b                      => c2#1 subscribed
        c3#1 send b m1                  => c3#1 sent 1 to 2
        c1#3 recv b                     => c1#3 got 1 m1 from c3
        c3#2 send b m2                  => c3#2 sent 2 to 2
        c1#4 recv b                     => c1#4 got 2 m2 from c3
        c3#3 send b m3                  =>
        c3#4 send b m4 never            => c3#4 WouldBlock
        c1#5 recv b                     =>
        c4#1 info b => c4#1 info queued=2 bytes=4 senders=1 receivers=1 subscribers=2 accepted=2 delivered=2
        c2#2 recv b never               => c2#2 got 1 m1 from c3; c3#3 sent 3 to 2; c1#5 got 3 m3 from c3
        c2#3 recv b never               => c2#3 got 2 m2 from c3
        c2#4 recv b never               => c2#4 got 3 m3 from c3
        c2#5 recv b never               => c2#5 WouldBlock
        c4#2 status                     => c4#2 status connections=4 mailboxes=1 queued=0 bytes=0
        ",
    );
}

#[test]
fn broadcast_without_subscribers_reports_zero_recipients_and_buffers_nothing() {
    check(
        "
        c1#1 create b broadcast cap=1   => c1#1 created
        c1#2 send b m1 never            => c1#2 sent 1 to 0
        c1#3 send b m2 never            => c1#3 sent 2 to 0
        c1#4 create z broadcast zero    => c1#4 created
        c1#5 send z m3 never            => c1#5 sent 1 to 0
        c1#6 status                     => c1#6 status connections=4 mailboxes=2 queued=0 bytes=0
        c2#1 sub b                      => c2#1 subscribed
        c2#2 recv b never               => c2#2 WouldBlock
        c1#7 send b m4                  => c1#7 sent 3 to 1
        c2#3 recv b never               => c2#3 got 3 m4 from c1
        ",
    );
}

#[test]
fn zero_broadcast_send_completes_when_every_subscriber_waits_and_all_get_it_at_once() {
    check(
        "
        c1#1 create b broadcast zero    => c1#1 created
        c1#2 sub b                      => c1#2 subscribed
        c2#1 sub b                      => c2#1 subscribed
        c3#1 send b m1                  =>
        c1#3 recv b                     =>
        c3#2 send b m2 never            => c3#2 WouldBlock
        c2#2 recv b                     => c1#3 got 1 m1 from c3; c2#2 got 1 m1 from c3; c3#1 sent 1 to 2
        c1#4 recv b                     =>
        c3#3 send b m3 never            => c3#3 WouldBlock
        c2#3 recv b t=0                 => c2#3 Timeout
        c3#4 send b m4                  =>
        c4#1 sub b                      => c4#1 subscribed
        c2#4 recv b                     =>
        c4#2 recv b                     => c1#4 got 2 m4 from c3; c2#4 got 2 m4 from c3; c4#2 got 2 m4 from c3; c3#4 sent 2 to 3
        c4#3 status                     => c4#3 status connections=4 mailboxes=1 queued=0 bytes=0
        ",
    );
}

#[test]
fn unsubscribe_releases_the_backlog_and_may_admit_a_waiting_sender() {
    check(
        "
        c1#1 create b broadcast cap=1   => c1#1 created
        c1#2 sub b                      => c1#2 subscribed
        c2#1 sub b                      => c2#1 subscribed
        c3#1 send b m1                  => c3#1 sent 1 to 2
        c1#3 recv b never               => c1#3 got 1 m1 from c3
        c3#2 send b m2                  =>
        c4#1 status                     => c4#1 status connections=4 mailboxes=1 queued=1 bytes=4
        c2#2 unsub b                    => c2#2 unsubscribed; c3#2 sent 2 to 1
        c4#2 status                     => c4#2 status connections=4 mailboxes=1 queued=1 bytes=2
        c1#4 recv b never               => c1#4 got 2 m2 from c3
        c4#3 status                     => c4#3 status connections=4 mailboxes=1 queued=0 bytes=0
        c2#3 recv b never               => c2#3 NotSubscribed
        ",
    );
}

#[test]
fn unsubscribe_answers_the_unsubscribers_waiting_receives_with_not_subscribed() {
    check(
        "
        c1#1 create b broadcast         => c1#1 created
        c1#2 sub b                      => c1#2 subscribed
        c1#3 recv b                     =>
        c1#4 recv b t=100               =>
        c2#1 sub b                      => c2#1 subscribed
        c2#2 recv b                     =>
        c1#5 unsub b                    => c1#5 unsubscribed; c1#3 NotSubscribed; c1#4 NotSubscribed
        c1#6 unsub b                    => c1#6 NotSubscribed
        advance 100                     =>
        expire                          =>
        c3#1 send b m                   => c3#1 sent 1 to 1; c2#2 got 1 m from c3
        c1#3 recv b never               => c1#3 NotSubscribed
        ",
    );
}

#[test]
fn unsubscribe_from_zero_broadcast_completes_the_send_the_leaver_held_back() {
    check(
        "
        c1#1 create b broadcast zero    => c1#1 created
        c1#2 sub b                      => c1#2 subscribed
        c2#1 sub b                      => c2#1 subscribed
        c1#3 recv b                     =>
        c3#1 send b m                   =>
        c2#2 unsub b                    => c2#2 unsubscribed; c3#1 sent 1 to 1; c1#3 got 1 m from c3
        ",
    );
}

// ---------------------------------------------------------------------------
// 7. Metadata
// ---------------------------------------------------------------------------

#[test]
fn sequence_numbers_start_at_one_and_skip_nothing_a_send_that_failed_never_took() {
    check(
        "
        c1#1 create q cap=1             => c1#1 created
        c1#2 send q a never             => c1#2 sent 1 to 1
        c1#3 send q b never             => c1#3 WouldBlock
        c1#4 send q c t=0               => c1#4 Timeout
        c1#5 send q d t=10              =>
        advance 10                      =>
        expire                          => c1#5 Timeout
        c1#6 send q e                   =>
        c1#7 cancel 6                   => c1#7 cancelled true; c1#6 Cancelled
        c2#1 send q f                   =>
        disconnect c2                   =>
        c1#8 send q g                   =>
        c3#1 recv q                     => c3#1 got 1 a from c1; c1#8 sent 2 to 1
        c3#2 recv q                     => c3#2 got 2 g from c1
        c1#9 create r                   => c1#9 created
        c1#10 send r h                  => c1#10 sent 1 to 1
        c1#11 delete q                  => c1#11 deleted
        c1#12 create q cap=1            => c1#12 created
        c1#13 send q i                  => c1#13 sent 1 to 1
        ",
    );
}

#[test]
fn metadata_carries_the_senders_credentials_connection_and_admission_time() {
    let mut harness = Harness::with_connections(Limits::default());
    harness.run(
        "
        c1#1 create q cap=1             => c1#1 created
        c1#2 create z zero              => c1#2 created
        c2#1 send q queued              => c2#1 sent 1 to 1
        advance 5                       =>
        c3#1 send q waited              =>
        advance 7                       =>
        c4#1 send z met                 =>
        advance 3                       =>
        ",
    );
    let received = |replies: Vec<Reply>| -> Vec<Message> {
        replies
            .into_iter()
            .filter_map(|reply| match reply.result {
                Ok(Response::Received(message)) => Some(message),
                _ => None,
            })
            .collect()
    };
    let message = |sequence, sender: u64, at_millis: u64, payload: &'static str| Message {
        metadata: Metadata {
            sequence,
            sender_pid: 1000 + sender as u32,
            sender_uid: 2000 + sender as u32,
            sender_gid: 3000 + sender as u32,
            sender_connection: sender,
            accepted_at_unix_nanos: UNIX_BASE + at_millis * 1_000_000,
            redeliveries: 0,
            details: None,
        },
        payload: Bytes::from_static(payload.as_bytes()),
    };
    // Admitted at 0 ms into the buffer.
    let first = received(harness.req(ConnectionId(1), 3, recv("q", Wait::Never)));
    assert_eq!(first, [message(1, 2, 0, "queued")]);
    // Sent at 5 ms, admitted at 15 ms when the receive above made room.
    harness.advance(5);
    let second = received(harness.req(ConnectionId(1), 4, recv("q", Wait::Never)));
    assert_eq!(second, [message(2, 3, 15, "waited")]);
    // Sent at 12 ms on zero, admitted at 20 ms when a receiver came.
    let third = received(harness.req(ConnectionId(1), 5, recv("z", Wait::Never)));
    assert_eq!(third, [message(1, 4, 20, "met")]);
}

// ---------------------------------------------------------------------------
// 8. Connections: many requests, ids, cancel, disconnect, shutdown, limits
// ---------------------------------------------------------------------------

#[test]
fn a_connection_may_have_many_requests_waiting_at_once() {
    check(
        "
        c1#1 create a zero              => c1#1 created
        c1#2 create b zero              => c1#2 created
        c1#3 create c cap=1             => c1#3 created
        c1#4 recv a                     =>
        c1#5 recv b                     =>
        c1#6 send c p                   => c1#6 sent 1 to 1
        c1#7 send c y                   =>
        c1#8 recv b                     =>
        c2#1 send b m                   => c2#1 sent 1 to 1; c1#5 got 1 m from c2
        c2#2 send a n                   => c2#2 sent 1 to 1; c1#4 got 1 n from c2
        c2#3 recv c                     => c2#3 got 1 p from c1; c1#7 sent 2 to 1
        c2#4 send b o                   => c2#4 sent 2 to 1; c1#8 got 2 o from c2
        ",
    );
}

#[test]
fn reusing_the_id_of_a_waiting_request_is_duplicate_request_id() {
    check(
        "
        c1#1 create q                   => c1#1 created
        c1#2 recv q                     =>
        c1#2 recv q never               => c1#2 DuplicateRequestId
        c1#2 send q a                   => c1#2 DuplicateRequestId
        c1#2 cancel 2                   => c1#2 DuplicateRequestId
        c1#3 info q => c1#3 info queued=0 bytes=0 senders=0 receivers=1 subscribers=0 accepted=0 delivered=0
        c2#2 recv q never               => c2#2 WouldBlock
        c2#3 send q b                   => c2#3 sent 1 to 1; c1#2 got 1 b from c2
        c1#2 recv q never               => c1#2 WouldBlock
        c1#2 send q c                   => c1#2 sent 2 to 1
        ",
    );
}

#[test]
fn a_stale_deadline_never_fires_on_a_newer_request_with_the_same_id() {
    check(
        "
        c1#1 create q                   => c1#1 created
        c1#2 recv q t=50                =>
        c2#1 send q a                   => c2#1 sent 1 to 1; c1#2 got 1 a from c2
        c1#2 recv q                     =>
        advance 50                      =>
        expire                          =>
        c2#2 send q b                   => c2#2 sent 2 to 1; c1#2 got 2 b from c2
        c1#2 recv q t=10                =>
        c1#3 cancel 2                   => c1#3 cancelled true; c1#2 Cancelled
        c1#2 recv q t=100               =>
        advance 10                      =>
        expire                          =>
        advance 90                      =>
        expire                          => c1#2 Timeout
        ",
    );
}

#[test]
fn cancel_withdraws_a_waiting_request_which_is_answered_cancelled() {
    check(
        "
        c1#1 create q cap=1             => c1#1 created
        c1#2 send q a                   => c1#2 sent 1 to 1
        c1#3 send q b                   =>
        c1#4 cancel 3                   => c1#4 cancelled true; c1#3 Cancelled
        c2#1 recv q never               => c2#1 got 1 a from c1
        c2#2 recv q never               => c2#2 WouldBlock
        c2#3 status                     => c2#3 status connections=4 mailboxes=1 queued=0 bytes=0
        c2#4 recv q t=100               =>
        c2#5 cancel 4                   => c2#5 cancelled true; c2#4 Cancelled
        c1#5 send q c                   => c1#5 sent 2 to 1
        advance 100                     =>
        expire                          =>
        ",
    );
}

#[test]
fn cancel_with_nothing_waiting_answers_false() {
    check(
        "
        c1#1 create q                   => c1#1 created
        c1#2 cancel 1                   => c1#2 cancelled false
        c1#3 cancel 99                  => c1#3 cancelled false
        c1#4 recv q                     =>
        c2#1 cancel 4                   => c2#1 cancelled false
        c1#5 cancel 4                   => c1#5 cancelled true; c1#4 Cancelled
        c1#6 cancel 4                   => c1#6 cancelled false
        ",
    );
}

#[test]
fn disconnect_withdraws_waiting_sends_which_are_never_delivered() {
    check(
        "
        c1#1 create q cap=1             => c1#1 created
        c1#2 create z zero              => c1#2 created
        c1#3 send q a                   => c1#3 sent 1 to 1
        c1#4 send q b                   =>
        c1#5 send z c                   =>
        disconnect c1                   =>
        c2#1 recv q never               => c2#1 got 1 a from c1
        c2#2 recv q never               => c2#2 WouldBlock
        c2#3 recv z never               => c2#3 WouldBlock
        c2#4 status                     => c2#4 status connections=3 mailboxes=2 queued=0 bytes=0
        ",
    );
}

#[test]
fn disconnect_withdraws_waiting_receives_so_later_sends_go_to_others() {
    check(
        "
        c1#1 create q                   => c1#1 created
        c1#2 create z zero              => c1#2 created
        c1#3 recv q                     =>
        c1#4 recv z                     =>
        c2#1 recv q                     =>
        disconnect c1                   =>
        c3#1 send q m                   => c3#1 sent 1 to 1; c2#1 got 1 m from c3
        c3#2 send q n                   => c3#2 sent 2 to 1
        c3#3 send z o never             => c3#3 WouldBlock
        c3#4 info q => c3#4 info queued=1 bytes=1 senders=0 receivers=0 subscribers=0 accepted=2 delivered=1
        ",
    );
}

#[test]
fn disconnect_ends_subscriptions_and_releases_their_backlog() {
    check(
        "
        c1#1 create b broadcast cap=1   => c1#1 created
        c1#2 sub b                      => c1#2 subscribed
        c2#1 sub b                      => c2#1 subscribed
        c3#1 send b m1                  => c3#1 sent 1 to 2
        c2#2 recv b never               => c2#2 got 1 m1 from c3
        c3#2 send b m2                  =>
        disconnect c1                   => c3#2 sent 2 to 1
        c2#3 recv b never               => c2#3 got 2 m2 from c3
        c4#1 info b => c4#1 info queued=0 bytes=0 senders=0 receivers=0 subscribers=1 accepted=2 delivered=2
        c4#2 create z broadcast zero    => c4#2 created
        c4#3 sub z                      => c4#3 subscribed
        c2#4 sub z                      => c2#4 subscribed
        c4#4 recv z                     =>
        c3#3 send z m3                  =>
        disconnect c2                   => c3#3 sent 1 to 1; c4#4 got 1 m3 from c3
        disconnect c4                   =>
        c3#4 send z m4 never            => c3#4 sent 2 to 0
        ",
    );
}

#[test]
fn disconnect_of_a_waiting_zero_broadcast_subscriber_holds_the_send_for_the_others() {
    check(
        "
        c1#1 create b broadcast zero    => c1#1 created
        c1#2 sub b                      => c1#2 subscribed
        c2#1 sub b                      => c2#1 subscribed
        c1#3 recv b                     =>
        c3#1 send b m                   =>
        disconnect c1                   =>
        c2#2 recv b                     => c2#2 got 1 m from c3; c3#1 sent 1 to 1
        ",
    );
}

#[test]
fn shut_down_answers_every_waiter_and_every_later_request_with_broker_shutting_down() {
    check(
        "
        c1#1 create q cap=1             => c1#1 created
        c1#2 create z zero              => c1#2 created
        c1#3 create b broadcast         => c1#3 created
        c1#4 send q a                   => c1#4 sent 1 to 1
        c1#5 send q b t=100             =>
        c2#1 recv z                     =>
        c3#1 sub b                      => c3#1 subscribed
        c3#2 recv b                     =>
        shutdown                        => c1#5 BrokerShuttingDown; c2#1 BrokerShuttingDown; c3#2 BrokerShuttingDown
        advance 100                     =>
        expire                          =>
        c1#6 recv q never               => c1#6 BrokerShuttingDown
        c4#1 create n                   => c4#1 BrokerShuttingDown
        c4#2 status                     => c4#2 BrokerShuttingDown
        c2#1 recv z                     => c2#1 BrokerShuttingDown
        c3#3 cancel 2                   => c3#3 BrokerShuttingDown
        disconnect c3                   =>
        ",
    );
}

#[test]
fn more_waiting_requests_than_the_limit_are_too_many_requests() {
    check_with(
        limits(1 << 20, 2),
        "
        c1#1 create q cap=1             => c1#1 created
        c1#2 create r                   => c1#2 created
        c1#3 send q a                   => c1#3 sent 1 to 1
        c1#4 send q b                   =>
        c1#5 recv r                     =>
        c1#6 send q c                   => c1#6 TooManyRequests
        c1#7 recv r t=10                => c1#7 TooManyRequests
        c1#8 recv q never               => c1#8 got 1 a from c1; c1#4 sent 2 to 1
        c1#9 send q d                   =>
        c1#10 send q e                  => c1#10 TooManyRequests
        c2#1 recv q never               => c2#1 got 2 b from c1; c1#9 sent 3 to 1
        c2#2 recv q never               => c2#2 got 3 d from c1
        c2#3 recv q never               => c2#3 WouldBlock
        c2#4 status                     => c2#4 status connections=4 mailboxes=2 queued=0 bytes=0
        c2#5 recv r                     =>
        c2#6 recv r                     =>
        c2#7 recv r                     => c2#7 TooManyRequests
        c1#11 send r p                  => c1#11 sent 1 to 1; c1#5 got 1 p from c1
        ",
    );
}

#[test]
fn list_and_info_describe_the_mailboxes() {
    check(
        "
        c1#1 list                       => c1#1 list
        c1#2 create b/two cap=3         => c1#2 created
        c1#3 create a.one broadcast     => c1#3 created
        c1#4 list                       => c1#4 list a.one b/two
        c1#5 sub a.one                  => c1#5 subscribed
        c2#1 sub a.one                  => c2#1 subscribed
        c3#1 send a.one hello           => c3#1 sent 1 to 2
        c1#6 recv a.one never           => c1#6 got 1 hello from c3
        c1#7 info a.one => c1#7 info queued=1 bytes=5 senders=0 receivers=0 subscribers=2 accepted=1 delivered=1
        c1#8 info b/two => c1#8 info queued=0 bytes=0 senders=0 receivers=0 subscribers=0 accepted=0 delivered=0
        ",
    );
}

// ---------------------------------------------------------------------------
// 9. Batches: send-many and receive-many
// ---------------------------------------------------------------------------

#[test]
fn a_batch_is_admitted_in_order_with_consecutive_sequence_numbers() {
    check(
        "
        c1#1 create q                   => c1#1 created
        c2#1 send q v                   => c2#1 sent 1 to 1
        c1#2 sendmany q a,b,c           => c1#2 sentmany 2+3 to 1
        c2#2 send q y                   => c2#2 sent 5 to 1
        c3#1 recv q                     => c3#1 got 1 v from c2
        c3#2 recv q                     => c3#2 got 2 a from c1
        c3#3 recv q                     => c3#3 got 3 b from c1
        c3#4 recv q                     => c3#4 got 4 c from c1
        c3#5 recv q                     => c3#5 got 5 y from c2
        c3#6 info q => c3#6 info queued=0 bytes=0 senders=0 receivers=0 subscribers=0 accepted=5 delivered=5
        ",
    );
}

#[test]
fn an_empty_batch_is_answered_at_once_with_nothing_admitted() {
    check(
        "
        c1#1 create q cap=1             => c1#1 created
        c1#2 send q a                   => c1#2 sent 1 to 1
        c1#3 sendmany q -               => c1#3 sentmany 2+0 to 0
        c1#4 sendmany q - never         => c1#4 sentmany 2+0 to 0
        c1#5 sendmany r -               => c1#5 NoSuchMailbox
        c1#6 info q => c1#6 info queued=1 bytes=1 senders=0 receivers=0 subscribers=0 accepted=1 delivered=0
        ",
    );
}

#[test]
fn a_waiting_batch_holds_the_head_of_the_line_so_no_other_message_interleaves() {
    check(
        "
        c1#1 create q cap=1             => c1#1 created
        c1#2 sendmany q a,b,c           =>
        c2#1 send q v                   =>
        c4#1 info q => c4#1 info queued=1 bytes=1 senders=2 receivers=0 subscribers=0 accepted=1 delivered=0
        c4#2 status                     => c4#2 status connections=4 mailboxes=1 queued=1 bytes=4
        c3#1 recv q                     => c3#1 got 1 a from c1
        c3#2 recv q                     => c3#2 got 2 b from c1; c1#2 sentmany 1+3 to 1
        c3#3 recv q                     => c3#3 got 3 c from c1; c2#1 sent 4 to 1
        c3#4 recv q                     => c3#4 got 4 v from c2
        c4#3 status                     => c4#3 status connections=4 mailboxes=1 queued=0 bytes=0
        ",
    );
}

#[test]
fn a_non_blocking_batch_admits_what_fits_and_stops_with_would_block() {
    check(
        "
        c1#1 create q cap=3             => c1#1 created
        c1#2 send q v                   => c1#2 sent 1 to 1
        c1#3 sendmany q a,b,c,d never   => c1#3 sentmany 2+2 to 1 stopped WouldBlock
        c1#4 sendmany q e never         => c1#4 sentmany 4+0 to 0 stopped WouldBlock
        c1#5 sendmany q f,g t=0         => c1#5 sentmany 4+0 to 0 stopped Timeout
        c1#6 status                     => c1#6 status connections=4 mailboxes=1 queued=3 bytes=3
        c2#1 recvmany q 10 never        => c2#1 gotmany 1:v 2:a 3:b from c1
        c2#2 recv q never               => c2#2 WouldBlock
        c1#7 sendmany q h,i t=0         => c1#7 sentmany 4+2 to 1
        c1#8 create z zero              => c1#8 created
        c2#3 recv z                     =>
        c1#9 sendmany z j,k never       => c1#9 sentmany 1+1 to 1 stopped WouldBlock; c2#3 got 1 j from c1
        c1#10 sendmany z l never        => c1#10 sentmany 2+0 to 0 stopped WouldBlock
        c1#11 status                    => c1#11 status connections=4 mailboxes=2 queued=2 bytes=2
        ",
    );
}

#[test]
fn a_timed_batch_admits_as_room_appears_then_times_out_with_what_it_admitted() {
    check(
        "
        c1#1 create q cap=1             => c1#1 created
        c1#2 send q v                   => c1#2 sent 1 to 1
        c1#3 sendmany q a,b,c t=50      =>
        advance 20                      =>
        c2#1 recv q                     => c2#1 got 1 v from c1
        c2#2 status                     => c2#2 status connections=4 mailboxes=1 queued=1 bytes=3
        advance 29                      =>
        expire                          =>
        advance 1                       =>
        expire                          => c1#3 sentmany 2+1 to 1 stopped Timeout
        c2#3 status                     => c2#3 status connections=4 mailboxes=1 queued=1 bytes=1
        c2#4 recv q never               => c2#4 got 2 a from c1
        c2#5 recv q never               => c2#5 WouldBlock
        c1#4 send q y                   => c1#4 sent 3 to 1
        c1#5 sendmany q m,n t=10        =>
        advance 10                      =>
        expire                          => c1#5 sentmany 4+0 to 0 stopped Timeout
        c2#6 recv q never               => c2#6 got 3 y from c1
        c2#7 recv q never               => c2#7 WouldBlock
        ",
    );
}

#[test]
fn deleting_the_mailbox_mid_batch_answers_it_with_what_was_admitted() {
    check(
        "
        c1#1 create q cap=2             => c1#1 created
        c1#2 sendmany q a,b,c,d         =>
        c2#1 recvmany q 1               => c2#1 gotmany 1:a from c1
        c2#2 delete q                   => c2#2 deleted; c1#2 sentmany 1+3 to 1 stopped MailboxDeleted
        c2#3 status                     => c2#3 status connections=4 mailboxes=0 queued=0 bytes=0
        c2#4 create q cap=2             => c2#4 created
        c2#5 sendmany q e,f,g           =>
        c2#6 sendmany q h               =>
        c3#1 delete q                   => c3#1 deleted; c2#5 sentmany 1+2 to 1 stopped MailboxDeleted; c2#6 sentmany 3+0 to 0 stopped MailboxDeleted
        ",
    );
}

#[test]
fn cancelling_a_batch_mid_way_answers_it_with_what_was_admitted_and_admits_no_more() {
    check(
        "
        c1#1 create q cap=1             => c1#1 created
        c1#2 sendmany q a,b,c           =>
        c1#3 cancel 2                   => c1#3 cancelled true; c1#2 sentmany 1+1 to 1 stopped Cancelled
        c1#4 cancel 2                   => c1#4 cancelled false
        c2#1 recv q never               => c2#1 got 1 a from c1
        c2#2 recv q never               => c2#2 WouldBlock
        c2#3 status                     => c2#3 status connections=4 mailboxes=1 queued=0 bytes=0
        c1#5 send q v                   => c1#5 sent 2 to 1
        c1#6 sendmany q y,z             =>
        c1#7 cancel 6                   => c1#7 cancelled true; c1#6 sentmany 3+0 to 0 stopped Cancelled
        c2#4 recv q never               => c2#4 got 2 v from c1
        c2#5 recv q never               => c2#5 WouldBlock
        ",
    );
}

#[test]
fn shut_down_mid_batch_answers_it_with_what_was_admitted() {
    check(
        "
        c1#1 create q cap=1             => c1#1 created
        c1#2 create b broadcast cap=1   => c1#2 created
        c2#1 sub b                      => c2#1 subscribed
        c1#3 sendmany q a,b             =>
        c1#4 sendmany b c,d,e           =>
        c3#1 sendmany q f               =>
        shutdown                        => c1#3 sentmany 1+1 to 1 stopped BrokerShuttingDown; c1#4 sentmany 1+1 to 1 stopped BrokerShuttingDown; c3#1 sentmany 2+0 to 0 stopped BrokerShuttingDown
        c1#5 sendmany q g               => c1#5 BrokerShuttingDown
        c2#2 recvmany b 2               => c2#2 BrokerShuttingDown
        ",
    );
}

#[test]
fn disconnect_mid_batch_withdraws_the_rest_silently_and_keeps_what_was_admitted() {
    check(
        "
        c1#1 create q cap=1             => c1#1 created
        c1#2 sendmany q a,b,c           =>
        c2#1 send q v                   =>
        disconnect c1                   =>
        c3#1 recv q never               => c3#1 got 1 a from c1; c2#1 sent 2 to 1
        c3#2 recv q never               => c3#2 got 2 v from c2
        c3#3 recv q never               => c3#3 WouldBlock
        c3#4 status                     => c3#4 status connections=3 mailboxes=1 queued=0 bytes=0
        ",
    );
}

#[test]
fn a_batch_over_the_memory_budget_is_refused_whole_with_broker_full() {
    check_with(
        limits(6, 100),
        "
        c1#1 create q                   => c1#1 created
        c1#2 send q ab                  => c1#2 sent 1 to 1
        c1#3 sendmany q cd,ef,g         => c1#3 BrokerFull
        c1#4 sendmany q cd,ef,g never   => c1#4 BrokerFull
        c1#5 status                     => c1#5 status connections=4 mailboxes=1 queued=1 bytes=2
        c1#6 sendmany q cd,ef           => c1#6 sentmany 2+2 to 1
        c1#7 sendmany q \"\",\"\"       => c1#7 sentmany 4+2 to 1
        c1#8 sendmany q g               => c1#8 BrokerFull
        c2#1 recvmany q 3               => c2#1 gotmany 1:ab 2:cd 3:ef from c1
        c1#9 sendmany q g               => c1#9 sentmany 6+1 to 1
        ",
    );
}

#[test]
fn a_waiting_batch_holds_only_its_unadmitted_bytes_and_releases_them_when_withdrawn() {
    check_with(
        limits(6, 100),
        "
        c1#1 create q cap=1             => c1#1 created
        c1#2 sendmany q ab,cd,ef        =>
        c2#1 status                     => c2#1 status connections=4 mailboxes=1 queued=1 bytes=6
        c2#2 send q g never             => c2#2 BrokerFull
        c2#3 recv q                     => c2#3 got 1 ab from c1
        c2#4 status                     => c2#4 status connections=4 mailboxes=1 queued=1 bytes=4
        c2#5 sendmany q gh,ij never     => c2#5 BrokerFull
        c2#6 sendmany q g never         => c2#6 sentmany 3+0 to 0 stopped WouldBlock
        c2#7 status                     => c2#7 status connections=4 mailboxes=1 queued=1 bytes=4
        c1#3 cancel 2                   => c1#3 cancelled true; c1#2 sentmany 1+2 to 1 stopped Cancelled
        c2#8 status                     => c2#8 status connections=4 mailboxes=1 queued=1 bytes=2
        c2#9 recv q                     => c2#9 got 2 cd from c1
        c2#10 status                    => c2#10 status connections=4 mailboxes=1 queued=0 bytes=0
        ",
    );
}

#[test]
fn one_payload_too_large_or_of_the_wrong_size_refuses_the_whole_batch() {
    check(
        "
        c1#1 create q max=4             => c1#1 created
        c1#2 sendmany q a,@5,b          => c1#2 MessageTooLarge
        c1#3 sendmany q a,b,@5 never    => c1#3 MessageTooLarge
        c1#4 create f max=8 fixed=2     => c1#4 created
        c1#5 sendmany f ab,cd,e         => c1#5 WrongMessageSize
        c1#6 sendmany f ab,@9           => c1#6 MessageTooLarge
        c1#7 status                     => c1#7 status connections=4 mailboxes=2 queued=0 bytes=0
        c1#8 sendmany f ab,cd           => c1#8 sentmany 1+2 to 1
        c1#9 sendmany q a,@4            => c1#9 sentmany 1+2 to 1
        c1#10 sendmany bad!name a       => c1#10 InvalidName
        c1#11 sendmany nope a           => c1#11 NoSuchMailbox
        c1#12 recvmany nope 2 never     => c1#12 NoSuchMailbox
        c1#13 status                    => c1#13 status connections=4 mailboxes=2 queued=4 bytes=9
        ",
    );
}

#[test]
fn receive_many_takes_up_to_max_in_order_and_leaves_the_rest() {
    check(
        "
        c1#1 create q                   => c1#1 created
        c1#2 sendmany q a,b,c,d,e       => c1#2 sentmany 1+5 to 1
        c2#1 recvmany q 2               => c2#1 gotmany 1:a 2:b from c1
        c2#2 recvmany q 2 never         => c2#2 gotmany 3:c 4:d from c1
        c2#3 recvmany q 9 t=0           => c2#3 gotmany 5:e from c1
        c2#4 recvmany q 9 never         => c2#4 WouldBlock
        c2#5 recvmany q 9 t=0           => c2#5 Timeout
        c2#6 info q => c2#6 info queued=0 bytes=0 senders=0 receivers=0 subscribers=0 accepted=5 delivered=5
        c3#1 send q f                   => c3#1 sent 6 to 1
        c1#3 sendmany q g,h             => c1#3 sentmany 7+2 to 1
        c2#7 recvmany q 9               => c2#7 gotmany 6:f from c3, 7:g 8:h from c1
        ",
    );
}

#[test]
fn receive_many_with_max_zero_takes_one() {
    check(
        "
        c1#1 create q                   => c1#1 created
        c1#2 sendmany q a,b             => c1#2 sentmany 1+2 to 1
        c2#1 recvmany q 0               => c2#1 gotmany 1:a from c1
        c2#2 recvmany q 0 never         => c2#2 gotmany 2:b from c1
        c2#3 recvmany q 0               =>
        c1#3 sendmany q c,d             => c1#3 sentmany 3+2 to 1; c2#3 gotmany 3:c from c1
        ",
    );
}

#[test]
fn receive_many_waits_for_the_first_message_then_takes_what_is_buffered() {
    check(
        "
        c1#1 create q                   => c1#1 created
        c2#1 recvmany q 3               =>
        c1#2 send q a                   => c1#2 sent 1 to 1; c2#1 gotmany 1:a from c1
        c2#2 recvmany q 3               =>
        c1#3 sendmany q b,c,d,e         => c1#3 sentmany 2+4 to 1; c2#2 gotmany 2:b 3:c 4:d from c1
        c2#3 recv q never               => c2#3 got 5 e from c1
        c2#4 recvmany q 3 t=10          =>
        advance 10                      =>
        expire                          => c2#4 Timeout
        c2#5 recvmany q 3 t=10          =>
        c2#6 cancel 5                   => c2#6 cancelled true; c2#5 Cancelled
        c1#4 create s cap=1             => c1#4 created
        c3#1 recvmany s 3               =>
        c1#5 sendmany s f,g,h           => c3#1 gotmany 1:f from c1
        c3#2 recvmany s 3 never         => c3#2 gotmany 2:g from c1; c1#5 sentmany 1+3 to 1
        c3#3 recv s never               => c3#3 got 3 h from c1
        ",
    );
}

#[test]
fn waiting_receive_many_and_receive_are_served_first_come_first_served() {
    check(
        "
        c1#1 create q                   => c1#1 created
        c2#1 recvmany q 2               =>
        c3#1 recv q                     =>
        c4#1 recvmany q 2               =>
        c1#2 sendmany q a,b,c,d,e,f     => c1#2 sentmany 1+6 to 1; c2#1 gotmany 1:a 2:b from c1; c3#1 got 3 c from c1; c4#1 gotmany 4:d 5:e from c1
        c2#2 recvmany q 2 never         => c2#2 gotmany 6:f from c1
        ",
    );
}

#[test]
fn zero_capacity_receive_many_takes_from_several_waiting_senders() {
    check(
        "
        c1#1 create z zero              => c1#1 created
        c1#2 send z a                   =>
        c2#1 sendmany z b,c             =>
        c3#1 send z d                   =>
        c4#1 recvmany z 3               => c4#1 gotmany 1:a from c1, 2:b 3:c from c2; c1#2 sent 1 to 1; c2#1 sentmany 2+2 to 1
        c4#2 recvmany z 3 never         => c4#2 gotmany 4:d from c3; c3#1 sent 4 to 1
        c4#3 recvmany z 3 never         => c4#3 WouldBlock
        c1#3 sendmany z e,f,g           =>
        c4#4 recvmany z 2               => c4#4 gotmany 5:e 6:f from c1
        c4#5 recv z                     => c4#5 got 7 g from c1; c1#3 sentmany 5+3 to 1
        c4#6 status                     => c4#6 status connections=4 mailboxes=1 queued=0 bytes=0
        ",
    );
}

#[test]
fn zero_capacity_batch_meets_waiting_receivers_one_after_another() {
    check(
        "
        c1#1 create z zero              => c1#1 created
        c2#1 recv z                     =>
        c3#1 recvmany z 2               =>
        c4#1 recv z                     =>
        c1#2 sendmany z a,b,c,d,e       => c2#1 got 1 a from c1; c3#1 gotmany 2:b 3:c from c1; c4#1 got 4 d from c1
        c1#3 info z => c1#3 info queued=0 bytes=0 senders=1 receivers=0 subscribers=0 accepted=4 delivered=4
        c2#2 recv z                     => c2#2 got 5 e from c1; c1#2 sentmany 1+5 to 1
        ",
    );
}

#[test]
fn broadcast_receive_many_reads_the_subscribers_backlog() {
    check(
        "
        c1#1 create b broadcast         => c1#1 created
        c1#2 sub b                      => c1#2 subscribed
        c2#1 sub b                      => c2#1 subscribed
        c3#1 sendmany b a,b,c           => c3#1 sentmany 1+3 to 2
        c1#3 recvmany b 2               => c1#3 gotmany 1:a 2:b from c3
        c2#2 recvmany b 5               => c2#2 gotmany 1:a 2:b 3:c from c3
        c1#4 recvmany b 5               => c1#4 gotmany 3:c from c3
        c1#5 recvmany b 5               =>
        c3#2 sendmany b d,e             => c3#2 sentmany 4+2 to 2; c1#5 gotmany 4:d 5:e from c3
        c2#3 recvmany b 1 never         => c2#3 gotmany 4:d from c3
        c4#1 recvmany b 3               => c4#1 NotSubscribed
        c4#2 info b => c4#2 info queued=1 bytes=1 senders=0 receivers=0 subscribers=2 accepted=5 delivered=9
        c2#4 unsub b                    => c2#4 unsubscribed
        c4#3 status                     => c4#3 status connections=4 mailboxes=1 queued=0 bytes=0
        ",
    );
}

#[test]
fn zero_broadcast_delivers_one_message_per_rendezvous_even_to_receive_many() {
    check(
        "
        c1#1 create b broadcast zero    => c1#1 created
        c1#2 sub b                      => c1#2 subscribed
        c2#1 sub b                      => c2#1 subscribed
        c1#3 recvmany b 3               =>
        c2#2 recvmany b 3               =>
        c3#1 sendmany b v,y             => c1#3 gotmany 1:v from c3; c2#2 gotmany 1:v from c3
        c1#4 recv b                     =>
        c2#3 recvmany b 2               => c1#4 got 2 y from c3; c2#3 gotmany 2:y from c3; c3#1 sentmany 1+2 to 2
        c4#1 sendmany b z never         => c4#1 sentmany 3+0 to 0 stopped WouldBlock
        c1#5 create n broadcast zero    => c1#5 created
        c4#2 sendmany n z1,z2 never     => c4#2 sentmany 1+2 to 0
        ",
    );
}

#[test]
fn a_broadcast_batch_reports_the_subscribers_when_its_last_message_was_admitted() {
    check(
        "
        c1#1 create b broadcast cap=1   => c1#1 created
        c3#1 sendmany b w               => c3#1 sentmany 1+1 to 0
        c1#2 sub b                      => c1#2 subscribed
        c3#2 sendmany b v,y             =>
        c2#1 sub b                      => c2#1 subscribed
        c1#3 recv b                     => c1#3 got 2 v from c3; c3#2 sentmany 2+2 to 2
        c2#2 recv b never               => c2#2 got 3 y from c3
        c1#4 recv b never               => c1#4 got 3 y from c3
        c2#3 recv b never               => c2#3 WouldBlock
        ",
    );
}

#[test]
fn unsubscribing_the_laggard_lets_a_waiting_broadcast_batch_go_on() {
    check(
        "
        c1#1 create b broadcast cap=1   => c1#1 created
        c1#2 sub b                      => c1#2 subscribed
        c2#1 sub b                      => c2#1 subscribed
        c3#1 sendmany b m1,m2,m3        =>
        c1#3 recv b never               => c1#3 got 1 m1 from c3
        c2#2 unsub b                    => c2#2 unsubscribed
        c4#1 info b => c4#1 info queued=1 bytes=2 senders=1 receivers=0 subscribers=1 accepted=2 delivered=1
        c1#4 recvmany b 5 never         => c1#4 gotmany 2:m2 from c3; c3#1 sentmany 1+3 to 1
        c1#5 recv b never               => c1#5 got 3 m3 from c3
        c4#2 status                     => c4#2 status connections=4 mailboxes=1 queued=0 bytes=0
        ",
    );
}

#[test]
fn too_many_waiting_requests_stop_a_batch_after_what_it_admitted() {
    check_with(
        limits(1 << 20, 1),
        "
        c1#1 create q cap=1             => c1#1 created
        c1#2 create r                   => c1#2 created
        c1#3 recv r                     =>
        c1#4 sendmany q a,b,c           => c1#4 sentmany 1+1 to 1 stopped TooManyRequests
        c1#5 recvmany r 2 t=10          => c1#5 TooManyRequests
        c2#1 recv q never               => c2#1 got 1 a from c1
        c2#2 recv q never               => c2#2 WouldBlock
        c2#3 status                     => c2#3 status connections=4 mailboxes=2 queued=0 bytes=0
        ",
    );
}

#[test]
fn a_receive_a_batch_just_fed_no_longer_counts_toward_the_waiting_limit() {
    check_with(
        limits(1 << 20, 1),
        "
        c1#1 create z zero              => c1#1 created
        c1#2 recv z                     =>
        c1#3 sendmany z a,b             => c1#2 got 1 a from c1
        c1#4 recvmany z 2 never         => c1#4 gotmany 2:b from c1; c1#3 sentmany 1+2 to 1
        ",
    );
}

#[test]
fn a_batch_answer_stops_before_it_would_outgrow_one_frame() {
    check(
        "
        c1#1 create q max=16777216              => c1#1 created
        c1#2 sendmany q @8388608,@8388608,a     => c1#2 sentmany 1+3 to 1
        c2#1 recvmany q 3                       => c2#1 gotmany 1:@8388608 from c1
        c2#2 recvmany q 3                       => c2#2 gotmany 2:@8388608 3:a from c1
        c1#3 send q @16777216                   => c1#3 sent 4 to 1
        c2#3 recvmany q 5 never                 => c2#3 gotmany 4:@16777216 from c1
        c1#4 create z zero max=16777216         => c1#4 created
        c1#5 sendmany z @8388608,@8388608       =>
        c2#4 recvmany z 2                       => c2#4 gotmany 1:@8388608 from c1
        c2#5 recvmany z 2                       => c2#5 gotmany 2:@8388608 from c1; c1#5 sentmany 1+2 to 1
        c1#6 create b broadcast max=16777216    => c1#6 created
        c2#6 sub b                              => c2#6 subscribed
        c1#7 sendmany b @8388608,@8388608       => c1#7 sentmany 1+2 to 1
        c2#7 recvmany b 2                       => c2#7 gotmany 1:@8388608 from c1
        c2#8 recvmany b 2                       => c2#8 gotmany 2:@8388608 from c1
        c2#9 status                             => c2#9 status connections=4 mailboxes=3 queued=0 bytes=0
        ",
    );
}

// ---------------------------------------------------------------------------
// The model: a naive simulation of the rules, for the property test
// ---------------------------------------------------------------------------

/// A receive waiting in the model; `max` is `None` for a single `Receive`.
#[derive(Debug, Clone, Copy)]
struct ModelReceive {
    ticket: Ticket,
    max: Option<u32>,
}

impl ModelReceive {
    /// How many messages it takes at once (a batch of `max` 0 takes one).
    fn limit(&self) -> usize {
        self.max.map_or(1, |max| max.max(1) as usize)
    }

    /// Its reply, carrying `messages` (at least one).
    fn answer(&self, mut messages: Vec<Message>) -> Reply {
        let response = match self.max {
            Some(_) => Response::ReceivedMany(messages),
            None => {
                assert_eq!(messages.len(), 1, "a single receive takes one message");
                Response::Received(messages.remove(0))
            }
        };
        reply(self.ticket, Ok(response))
    }
}

/// A send waiting in the model: the payloads it has not admitted yet and,
/// for a batch, what it admitted so far: (first sequence, admitted,
/// recipients of the last admitted one).
#[derive(Debug)]
struct ModelSend {
    ticket: Ticket,
    rest: VecDeque<Bytes>,
    batch: Option<(u64, u32, u32)>,
}

impl ModelSend {
    /// Its reply when it ends before all of it was admitted: the error for a
    /// single send; for a batch, what it admitted and why it stopped.
    fn stopped(&self, kind: ErrorKind, next_sequence: u64) -> Reply {
        match self.batch {
            None => fail(self.ticket, kind),
            Some((first_sequence, admitted, recipients)) => reply(
                self.ticket,
                Ok(Response::SentMany {
                    first_sequence: if admitted == 0 {
                        next_sequence
                    } else {
                        first_sequence
                    },
                    admitted,
                    recipients,
                    stopped: Some(mailbox_proto::BrokerError::new(kind, "model")),
                }),
            ),
        }
    }
}

/// One subscription in the model: its own inbox of unread messages.
#[derive(Debug, Default)]
struct ModelSubscriber {
    inbox: VecDeque<Message>,
    waiting: VecDeque<ModelReceive>,
}

/// A mailbox in the model. Unlike the core (one shared log and a cursor per
/// subscriber), every subscriber has its own inbox, and the pump is a plain
/// "move whatever may move" loop run to a fixpoint after every operation:
/// admit while there is room, then hand buffered messages to the receivers
/// waiting (a batch receive takes up to its `max` at once). The core also
/// ends a batch answer before it outgrows one frame; the generated payloads
/// are far too small for that, so the model leaves it out (a rule test
/// covers it).
#[derive(Debug)]
struct ModelMailbox {
    settings: MailboxSettings,
    /// Who created it (its owner).
    creator: Peer,
    next_sequence: u64,
    delivered: u64,
    senders: VecDeque<ModelSend>,
    queue: VecDeque<Message>,
    receivers: VecDeque<ModelReceive>,
    subscribers: BTreeMap<ConnectionId, ModelSubscriber>,
}

impl ModelMailbox {
    fn new(settings: MailboxSettings, creator: Peer) -> Self {
        Self {
            settings,
            creator,
            next_sequence: 1,
            delivered: 0,
            senders: VecDeque::new(),
            queue: VecDeque::new(),
            receivers: VecDeque::new(),
            subscribers: BTreeMap::new(),
        }
    }

    fn is_broadcast(&self) -> bool {
        self.settings.policy == DeliveryPolicy::Broadcast
    }

    /// Buffered messages by sequence: the queue, or every message that some
    /// subscriber has not read yet (held once however many have not).
    fn buffered(&self) -> BTreeMap<u64, u64> {
        let mut buffered = BTreeMap::new();
        let inboxes = self.subscribers.values().flat_map(|s| s.inbox.iter());
        for message in self.queue.iter().chain(inboxes) {
            buffered.insert(message.metadata.sequence, message.payload.len() as u64);
        }
        buffered
    }

    fn held_bytes(&self) -> u64 {
        let waiting: u64 = self
            .senders
            .iter()
            .flat_map(|s| s.rest.iter())
            .map(|p| p.len() as u64)
            .sum();
        waiting + self.buffered().values().sum::<u64>()
    }

    fn waiting_receivers(&self) -> usize {
        self.receivers.len()
            + self
                .subscribers
                .values()
                .map(|s| s.waiting.len())
                .sum::<usize>()
    }

    /// Whether `ticket` waits in one of the lines.
    fn is_waiting(&self, ticket: Ticket) -> bool {
        self.senders.iter().any(|s| s.ticket == ticket)
            || self.receivers.iter().any(|r| r.ticket == ticket)
            || self
                .subscribers
                .values()
                .any(|s| s.waiting.iter().any(|r| r.ticket == ticket))
    }

    /// Takes `ticket` out of its line; returns it when it was a send.
    fn withdraw(&mut self, ticket: Ticket) -> Option<ModelSend> {
        self.receivers.retain(|r| r.ticket != ticket);
        for subscriber in self.subscribers.values_mut() {
            subscriber.waiting.retain(|r| r.ticket != ticket);
        }
        let index = self.senders.iter().position(|s| s.ticket == ticket)?;
        self.senders.remove(index)
    }

    /// The reply to a waiting `ticket` that ends with `kind` (taking it out
    /// of its line), or `None` when it was not waiting here.
    fn end(&mut self, ticket: Ticket, kind: ErrorKind) -> Option<Reply> {
        if !self.is_waiting(ticket) {
            return None;
        }
        Some(match self.withdraw(ticket) {
            Some(send) => send.stopped(kind, self.next_sequence),
            None => fail(ticket, kind),
        })
    }

    /// Every waiting request, taken out of its line and answered with `kind`.
    fn end_all(&mut self, kind: ErrorKind) -> Vec<Reply> {
        let next_sequence = self.next_sequence;
        let mut out: Vec<Reply> = self
            .senders
            .drain(..)
            .map(|send| send.stopped(kind, next_sequence))
            .collect();
        let mut receives: Vec<ModelReceive> = self.receivers.drain(..).collect();
        for subscriber in self.subscribers.values_mut() {
            receives.extend(subscriber.waiting.drain(..));
        }
        out.extend(receives.iter().map(|r| fail(r.ticket, kind)));
        out
    }

    /// Whether the front sender may put a message in the buffer now.
    fn has_room(&self) -> bool {
        let slowest = self.subscribers.values().map(|s| s.inbox.len()).max();
        match (self.settings.policy, self.settings.capacity) {
            (_, Capacity::Zero) => false,
            (DeliveryPolicy::RoundRobin, Capacity::Bounded(n)) => self.queue.len() < n as usize,
            (DeliveryPolicy::Broadcast, Capacity::Bounded(n)) => slowest.unwrap_or(0) < n as usize,
            (_, Capacity::Unbounded) => true,
            (DeliveryPolicy::Hash | DeliveryPolicy::Priority, _) => {
                unreachable!("the model covers round-robin and broadcast")
            }
        }
    }

    /// Admits the next payload of the front sender, answering the sender when
    /// that was its last. The message is not put anywhere yet.
    fn admit(&mut self, unix_nanos: u64, out: &mut Vec<Reply>) -> Option<Message> {
        let recipients = if self.is_broadcast() {
            self.subscribers.len() as u32
        } else {
            1
        };
        let sequence = self.next_sequence;
        let send = self.senders.front_mut()?;
        let payload = send.rest.pop_front()?;
        self.next_sequence += 1;
        if let Some((first, admitted, last_recipients)) = &mut send.batch {
            if *admitted == 0 {
                *first = sequence;
            }
            *admitted += 1;
            *last_recipients = recipients;
        }
        let peer = peer_of(send.ticket.connection);
        let message = Message {
            metadata: Metadata {
                sequence,
                sender_pid: peer.pid,
                sender_uid: peer.uid,
                sender_gid: peer.gid,
                sender_connection: send.ticket.connection.0,
                accepted_at_unix_nanos: unix_nanos,
                redeliveries: 0,
                details: None,
            },
            payload,
        };
        if send.rest.is_empty() {
            let response = match send.batch {
                None => Response::Sent {
                    sequence,
                    recipients,
                },
                Some((first_sequence, admitted, recipients)) => Response::SentMany {
                    first_sequence,
                    admitted,
                    recipients,
                    stopped: None,
                },
            };
            out.push(reply(send.ticket, Ok(response)));
            self.senders.pop_front();
        }
        Some(message)
    }

    fn pump(&mut self, unix_nanos: u64) -> Vec<Reply> {
        let mut out = Vec::new();
        loop {
            let mut moved = false;
            match (self.settings.policy, self.settings.capacity) {
                (DeliveryPolicy::RoundRobin, Capacity::Zero) => {
                    // Straight from the senders to the front receiver.
                    while !self.senders.is_empty() && !self.receivers.is_empty() {
                        let Some(receive) = self.receivers.pop_front() else {
                            break;
                        };
                        let mut messages = Vec::new();
                        while messages.len() < receive.limit() {
                            match self.admit(unix_nanos, &mut out) {
                                Some(message) => messages.push(message),
                                None => break,
                            }
                        }
                        self.delivered += messages.len() as u64;
                        out.push(receive.answer(messages));
                        moved = true;
                    }
                }
                (DeliveryPolicy::Broadcast, Capacity::Zero) => {
                    // One message, to every subscriber at once.
                    if !self.senders.is_empty()
                        && self.subscribers.values().all(|s| !s.waiting.is_empty())
                    {
                        if let Some(message) = self.admit(unix_nanos, &mut out) {
                            for subscriber in self.subscribers.values_mut() {
                                if let Some(receive) = subscriber.waiting.pop_front() {
                                    out.push(receive.answer(vec![message.clone()]));
                                    self.delivered += 1;
                                }
                            }
                            moved = true;
                        }
                    }
                }
                _ => {
                    while !self.senders.is_empty() && self.has_room() {
                        let Some(message) = self.admit(unix_nanos, &mut out) else {
                            break;
                        };
                        if self.is_broadcast() {
                            for subscriber in self.subscribers.values_mut() {
                                subscriber.inbox.push_back(message.clone());
                            }
                        } else {
                            self.queue.push_back(message);
                        }
                        moved = true;
                    }
                    while !self.queue.is_empty() && !self.receivers.is_empty() {
                        let Some(receive) = self.receivers.pop_front() else {
                            break;
                        };
                        let take = receive.limit().min(self.queue.len());
                        let messages: Vec<Message> = self.queue.drain(..take).collect();
                        self.delivered += take as u64;
                        out.push(receive.answer(messages));
                        moved = true;
                    }
                    for subscriber in self.subscribers.values_mut() {
                        while !subscriber.inbox.is_empty() && !subscriber.waiting.is_empty() {
                            let Some(receive) = subscriber.waiting.pop_front() else {
                                break;
                            };
                            let take = receive.limit().min(subscriber.inbox.len());
                            let messages: Vec<Message> = subscriber.inbox.drain(..take).collect();
                            self.delivered += take as u64;
                            out.push(receive.answer(messages));
                            moved = true;
                        }
                    }
                }
            }
            if !moved {
                return out;
            }
        }
    }

    fn info(&self, name: &str) -> MailboxInfo {
        let buffered = self.buffered();
        MailboxInfo {
            name: name.to_owned(),
            settings: self.settings.clone(),
            queued_messages: buffered.len() as u64,
            queued_bytes: buffered.values().sum(),
            waiting_senders: self.senders.len() as u32,
            waiting_receivers: self.waiting_receivers() as u32,
            subscribers: self.subscribers.len() as u32,
            messages_accepted: self.next_sequence - 1,
            messages_delivered: self.delivered,
            owner_uid: self.creator.uid,
            group_gid: self.creator.gid,
            mode: 0o777,
            ..MailboxInfo::default()
        }
    }
}

/// The limits `status` reports, as the core names them.
fn status_limits(limits: &Limits) -> Vec<mailbox_proto::Limit> {
    [
        ("memory_budget", limits.memory_budget),
        ("max_queued_messages", limits.max_queued_messages),
        (
            "max_requests_in_flight",
            limits.max_waiting_per_connection as u64,
        ),
        ("max_connections", limits.max_connections as u64),
        (
            "max_connections_per_uid",
            limits.max_connections_per_uid as u64,
        ),
        ("reserved_connections", limits.reserved_connections as u64),
        ("max_mailboxes_per_uid", limits.max_mailboxes_per_uid as u64),
        (
            "max_queued_bytes_per_mailbox",
            limits.max_queued_bytes_per_mailbox,
        ),
        ("max_queued_bytes_per_uid", limits.budget().bytes_per_uid),
        (
            "max_queued_messages_per_uid",
            limits.budget().messages_per_uid,
        ),
        ("admin_reserve_bytes", limits.budget().reserved_bytes),
        ("admin_reserve_messages", limits.budget().reserved_messages),
        ("max_message_size", u64::from(limits.max_message_size)),
    ]
    .into_iter()
    .map(|(name, value)| mailbox_proto::Limit {
        name: name.to_owned(),
        value,
    })
    .collect()
}

fn reply(ticket: Ticket, result: Result<Response, mailbox_proto::BrokerError>) -> Reply {
    Reply { ticket, result }
}

fn fail(ticket: Ticket, kind: ErrorKind) -> Reply {
    reply(ticket, Err(mailbox_proto::BrokerError::new(kind, "model")))
}

/// The whole broker in the model.
#[derive(Debug)]
struct Model {
    limits: Limits,
    elapsed_millis: u64,
    shutting_down: bool,
    mailboxes: BTreeMap<String, ModelMailbox>,
    /// Per connection, its waiting requests: mailbox and deadline.
    waiting: BTreeMap<ConnectionId, BTreeMap<RequestId, (String, Option<u64>)>>,
}

impl Model {
    fn new(limits: Limits) -> Self {
        Self {
            limits,
            elapsed_millis: 0,
            shutting_down: false,
            mailboxes: BTreeMap::new(),
            waiting: BTreeMap::new(),
        }
    }

    fn held_bytes(&self) -> u64 {
        self.mailboxes.values().map(ModelMailbox::held_bytes).sum()
    }

    fn unix_nanos(&self) -> u64 {
        UNIX_BASE + self.elapsed_millis * 1_000_000
    }

    /// Pumps every mailbox until nothing moves; the waits those replies
    /// answer are forgotten.
    fn settle(&mut self, out: &mut Vec<Reply>) {
        let unix_nanos = self.unix_nanos();
        for mailbox in self.mailboxes.values_mut() {
            out.extend(mailbox.pump(unix_nanos));
        }
        for answered in out.iter() {
            self.forget(answered.ticket);
        }
    }

    fn forget(&mut self, ticket: Ticket) {
        if let Some(waits) = self.waiting.get_mut(&ticket.connection) {
            waits.remove(&ticket.request);
        }
    }

    fn connect(&mut self, connection: ConnectionId) {
        self.waiting.insert(connection, BTreeMap::new());
    }

    fn apply(&mut self, ticket: Ticket, request: Request) -> Vec<Reply> {
        if self.shutting_down {
            return vec![fail(ticket, ErrorKind::BrokerShuttingDown)];
        }
        let Some(waits) = self.waiting.get(&ticket.connection) else {
            return vec![fail(ticket, ErrorKind::Internal)];
        };
        if waits.contains_key(&ticket.request) {
            return vec![fail(ticket, ErrorKind::DuplicateRequestId)];
        }
        let mut out = Vec::new();
        let answer = self.dispatch(ticket, request, &mut out);
        for answered in out.iter() {
            self.forget(answered.ticket);
        }
        match answer {
            Some(Ok(response)) => out.push(reply(ticket, Ok(response))),
            Some(Err(kind)) => out.push(fail(ticket, kind)),
            None => {}
        }
        // Whatever the request changed (an unsubscribe, a withdrawn wait),
        // everything that may move now moves.
        self.settle(&mut out);
        out
    }

    /// The request's own answer, or `None` when it was answered by the pump,
    /// or in `out`, or now waits.
    fn dispatch(
        &mut self,
        ticket: Ticket,
        request: Request,
        out: &mut Vec<Reply>,
    ) -> Option<Result<Response, ErrorKind>> {
        let answer = match request {
            Request::CreateMailbox { name, settings } => match self.mailboxes.get(&name) {
                // Only its owner may find its own mailbox again.
                Some(existing)
                    if existing.settings == *settings
                        && existing.creator.uid == peer_of(ticket.connection).uid =>
                {
                    Ok(Response::Created { created: false })
                }
                Some(_) => Err(ErrorKind::MailboxExists),
                None => {
                    self.mailboxes.insert(
                        name,
                        ModelMailbox::new(*settings, peer_of(ticket.connection)),
                    );
                    Ok(Response::Created { created: true })
                }
            },
            Request::DeleteMailbox { name } => match self.mailboxes.remove(&name) {
                None => Err(ErrorKind::NoSuchMailbox),
                Some(mut mailbox) => {
                    out.extend(mailbox.end_all(ErrorKind::MailboxDeleted));
                    Ok(Response::Deleted)
                }
            },
            Request::MailboxInfo { name } => match self.mailboxes.get(&name) {
                None => Err(ErrorKind::NoSuchMailbox),
                Some(mailbox) => Ok(Response::Info(Box::new(mailbox.info(&name)))),
            },
            Request::ListMailboxes => Ok(Response::Mailboxes(
                self.mailboxes
                    .iter()
                    .map(|(name, mailbox)| mailbox.info(name))
                    .collect(),
            )),
            Request::Status => Ok(Response::Status(Box::new(BrokerStatus {
                broker_version: env!("CARGO_PKG_VERSION").to_owned(),
                protocol_version: PROTOCOL_VERSION,
                pid: std::process::id(),
                uptime_millis: self.elapsed_millis,
                connections: self.waiting.len() as u64,
                mailboxes: self.mailboxes.len() as u64,
                queued_messages: self
                    .mailboxes
                    .values()
                    .map(|m| m.buffered().len() as u64)
                    .sum(),
                queued_bytes: self.held_bytes(),
                memory_budget_bytes: self.limits.memory_budget,
                limits: status_limits(&self.limits),
            }))),
            Request::Send {
                mailbox: name,
                payload,
                wait,
            } => return self.send(ticket, name, vec![payload], false, wait, out),
            Request::SendMany {
                mailbox: name,
                payloads,
                wait,
            } => return self.send(ticket, name, payloads, true, wait, out),
            Request::Receive {
                mailbox: name,
                wait,
            } => return self.receive(ticket, name, None, wait, out),
            Request::ReceiveMany {
                mailbox: name,
                max,
                wait,
            } => return self.receive(ticket, name, Some(max), wait, out),
            Request::Subscribe { mailbox: name } => match self.mailboxes.get_mut(&name) {
                None => Err(ErrorKind::NoSuchMailbox),
                Some(mailbox) if !mailbox.is_broadcast() => Err(ErrorKind::NotBroadcast),
                Some(mailbox) => {
                    let created = !mailbox.subscribers.contains_key(&ticket.connection);
                    mailbox.subscribers.entry(ticket.connection).or_default();
                    Ok(Response::Subscribed { created })
                }
            },
            Request::Unsubscribe { mailbox: name } => match self.mailboxes.get_mut(&name) {
                None => Err(ErrorKind::NoSuchMailbox),
                Some(mailbox) if !mailbox.is_broadcast() => Err(ErrorKind::NotBroadcast),
                Some(mailbox) => match mailbox.subscribers.remove(&ticket.connection) {
                    None => Err(ErrorKind::NotSubscribed),
                    Some(subscriber) => {
                        for waiter in subscriber.waiting {
                            out.push(fail(waiter.ticket, ErrorKind::NotSubscribed));
                        }
                        Ok(Response::Unsubscribed)
                    }
                },
            },
            Request::Cancel { request } => {
                let target = Ticket {
                    connection: ticket.connection,
                    request,
                };
                let wait = self
                    .waiting
                    .get(&ticket.connection)
                    .and_then(|waits| waits.get(&request))
                    .cloned();
                if let Some((name, _)) = &wait {
                    let ended = self
                        .mailboxes
                        .get_mut(name)
                        .and_then(|mailbox| mailbox.end(target, ErrorKind::Cancelled));
                    out.push(ended.unwrap_or_else(|| fail(target, ErrorKind::Cancelled)));
                }
                Ok(Response::CancelResult {
                    cancelled: wait.is_some(),
                })
            }
            other => unreachable!("the model does not cover {other:?}"),
        };
        Some(answer)
    }

    /// A send (`batch`: a send-many) of `payloads`.
    fn send(
        &mut self,
        ticket: Ticket,
        name: String,
        payloads: Vec<Bytes>,
        batch: bool,
        wait: Wait,
        out: &mut Vec<Reply>,
    ) -> Option<Result<Response, ErrorKind>> {
        let held = self.held_bytes();
        let bytes: u64 = payloads.iter().map(|p| p.len() as u64).sum();
        let Some(mailbox) = self.mailboxes.get_mut(&name) else {
            return Some(Err(ErrorKind::NoSuchMailbox));
        };
        if payloads.is_empty() {
            return Some(Ok(Response::SentMany {
                first_sequence: mailbox.next_sequence,
                admitted: 0,
                recipients: 0,
                stopped: None,
            }));
        }
        if held + bytes > self.limits.memory_budget {
            return Some(Err(ErrorKind::BrokerFull));
        }
        mailbox.senders.push_back(ModelSend {
            ticket,
            rest: payloads.into(),
            batch: batch.then_some((0, 0, 0)),
        });
        self.wait_or_fail(ticket, &name, wait, out)
    }

    /// A receive (`max`: a receive-many).
    fn receive(
        &mut self,
        ticket: Ticket,
        name: String,
        max: Option<u32>,
        wait: Wait,
        out: &mut Vec<Reply>,
    ) -> Option<Result<Response, ErrorKind>> {
        let receive = ModelReceive { ticket, max };
        let Some(mailbox) = self.mailboxes.get_mut(&name) else {
            return Some(Err(ErrorKind::NoSuchMailbox));
        };
        if mailbox.is_broadcast() {
            match mailbox.subscribers.get_mut(&ticket.connection) {
                None => return Some(Err(ErrorKind::NotSubscribed)),
                Some(subscriber) => subscriber.waiting.push_back(receive),
            }
        } else {
            mailbox.receivers.push_back(receive);
        }
        self.wait_or_fail(ticket, &name, wait, out)
    }

    /// A send or receive was put at the back of its line: everything moves,
    /// then it is done (answered by the pump), waits, or is taken back (a
    /// batch send with what it admitted by then).
    fn wait_or_fail(
        &mut self,
        ticket: Ticket,
        name: &str,
        wait: Wait,
        out: &mut Vec<Reply>,
    ) -> Option<Result<Response, ErrorKind>> {
        self.settle(out);
        let mailbox = self.mailboxes.get_mut(name)?;
        let deadline = match wait {
            Wait::Forever => None,
            Wait::Never => {
                out.extend(mailbox.end(ticket, ErrorKind::WouldBlock));
                return None;
            }
            Wait::Timeout { millis: 0 } => {
                out.extend(mailbox.end(ticket, ErrorKind::Timeout));
                return None;
            }
            Wait::Timeout { millis } => Some(self.elapsed_millis + millis),
        };
        if !mailbox.is_waiting(ticket) {
            return None;
        }
        let waits = self.waiting.entry(ticket.connection).or_default();
        if waits.len() >= self.limits.max_waiting_per_connection {
            out.extend(mailbox.end(ticket, ErrorKind::TooManyRequests));
            return None;
        }
        waits.insert(ticket.request, (name.to_owned(), deadline));
        None
    }

    /// Moves the clock and fails every wait whose deadline has come.
    fn advance_and_expire(&mut self, millis: u64) -> Vec<Reply> {
        self.elapsed_millis += millis;
        let now = self.elapsed_millis;
        let mut out = Vec::new();
        let due: Vec<(Ticket, String)> = self
            .waiting
            .iter()
            .flat_map(|(connection, waits)| {
                waits.iter().filter_map(move |(request, (name, deadline))| {
                    deadline.filter(|at| *at <= now).map(|_| {
                        let ticket = Ticket {
                            connection: *connection,
                            request: *request,
                        };
                        (ticket, name.clone())
                    })
                })
            })
            .collect();
        for (ticket, name) in due {
            let ended = self
                .mailboxes
                .get_mut(&name)
                .and_then(|mailbox| mailbox.end(ticket, ErrorKind::Timeout));
            self.forget(ticket);
            out.push(ended.unwrap_or_else(|| fail(ticket, ErrorKind::Timeout)));
        }
        self.settle(&mut out);
        out
    }

    /// The connection is gone: its waits leave their lines unanswered (what
    /// a batch admitted stays admitted), its subscriptions end.
    fn disconnect(&mut self, connection: ConnectionId) -> Vec<Reply> {
        let waits = self.waiting.remove(&connection).unwrap_or_default();
        for (request, (name, _)) in waits {
            if let Some(mailbox) = self.mailboxes.get_mut(&name) {
                mailbox.withdraw(Ticket {
                    connection,
                    request,
                });
            }
        }
        for mailbox in self.mailboxes.values_mut() {
            mailbox.subscribers.remove(&connection);
        }
        let mut out = Vec::new();
        self.settle(&mut out);
        out
    }

    fn shut_down(&mut self) -> Vec<Reply> {
        self.shutting_down = true;
        let mut out = Vec::new();
        for mailbox in self.mailboxes.values_mut() {
            out.extend(mailbox.end_all(ErrorKind::BrokerShuttingDown));
        }
        for waits in self.waiting.values_mut() {
            waits.clear();
        }
        out
    }
}

// ---------------------------------------------------------------------------
// The property test: the core against the model
// ---------------------------------------------------------------------------

/// One random step. `slot` picks one of the live connections, `mailbox` one
/// of the mailbox names, `id` a request id from a small range (so ids are
/// reused, sometimes while still waiting).
#[derive(Debug, Clone)]
enum Op {
    Send {
        slot: usize,
        id: RequestId,
        mailbox: usize,
        wait: Wait,
    },
    Receive {
        slot: usize,
        id: RequestId,
        mailbox: usize,
        wait: Wait,
    },
    /// A send-many of `count` fresh payloads.
    SendMany {
        slot: usize,
        id: RequestId,
        mailbox: usize,
        count: usize,
        wait: Wait,
    },
    ReceiveMany {
        slot: usize,
        id: RequestId,
        mailbox: usize,
        max: u32,
        wait: Wait,
    },
    Subscribe {
        slot: usize,
        id: RequestId,
        mailbox: usize,
    },
    Unsubscribe {
        slot: usize,
        id: RequestId,
        mailbox: usize,
    },
    /// Cancels one of the connection's waiting requests when `pick` is even
    /// and it has some, else the id `pick % 6 + 1`.
    Cancel {
        slot: usize,
        id: RequestId,
        pick: usize,
    },
    Advance {
        millis: u64,
    },
    Disconnect {
        slot: usize,
    },
    Delete {
        slot: usize,
        id: RequestId,
        mailbox: usize,
    },
    /// Creates the mailbox with its first settings (`None`) or others.
    Create {
        slot: usize,
        id: RequestId,
        mailbox: usize,
        settings: Option<MailboxSettings>,
    },
    Info {
        slot: usize,
        id: RequestId,
        mailbox: usize,
    },
    Status {
        slot: usize,
        id: RequestId,
    },
}

#[derive(Debug, Clone)]
struct Scenario {
    limits: Limits,
    connections: usize,
    mailboxes: Vec<MailboxSettings>,
    /// Whether every connection subscribes to every broadcast mailbox first.
    subscribed: bool,
    ops: Vec<Op>,
}

fn settings_strategy() -> impl Strategy<Value = MailboxSettings> {
    let capacity = prop_oneof![
        Just(Capacity::Zero),
        (1u32..=3).prop_map(Capacity::Bounded),
        Just(Capacity::Unbounded),
    ];
    let policy = prop_oneof![
        Just(DeliveryPolicy::RoundRobin),
        Just(DeliveryPolicy::Broadcast)
    ];
    (capacity, policy).prop_map(|(capacity, policy)| MailboxSettings {
        capacity,
        policy,
        ..MailboxSettings::default()
    })
}

fn wait_strategy() -> impl Strategy<Value = Wait> {
    prop_oneof![
        3 => Just(Wait::Forever),
        2 => Just(Wait::Never),
        1 => Just(Wait::Timeout { millis: 0 }),
        2 => (1u64..=40).prop_map(|millis| Wait::Timeout { millis }),
    ]
}

fn op_strategy(connections: usize, mailboxes: usize) -> impl Strategy<Value = Op> {
    let slot = 0..connections;
    let mailbox = 0..mailboxes;
    let id = 1u64..=6;
    prop_oneof![
        6 => (slot.clone(), id.clone(), mailbox.clone(), wait_strategy())
            .prop_map(|(slot, id, mailbox, wait)| Op::Send { slot, id, mailbox, wait }),
        6 => (slot.clone(), id.clone(), mailbox.clone(), wait_strategy())
            .prop_map(|(slot, id, mailbox, wait)| Op::Receive { slot, id, mailbox, wait }),
        4 => (slot.clone(), id.clone(), mailbox.clone(), 0usize..=4, wait_strategy())
            .prop_map(|(slot, id, mailbox, count, wait)| {
                Op::SendMany { slot, id, mailbox, count, wait }
            }),
        4 => (slot.clone(), id.clone(), mailbox.clone(), 1u32..=4, wait_strategy())
            .prop_map(|(slot, id, mailbox, max, wait)| {
                Op::ReceiveMany { slot, id, mailbox, max, wait }
            }),
        4 => (slot.clone(), id.clone(), mailbox.clone())
            .prop_map(|(slot, id, mailbox)| Op::Subscribe { slot, id, mailbox }),
        1 => (slot.clone(), id.clone(), mailbox.clone())
            .prop_map(|(slot, id, mailbox)| Op::Unsubscribe { slot, id, mailbox }),
        2 => (slot.clone(), id.clone(), any::<usize>())
            .prop_map(|(slot, id, pick)| Op::Cancel { slot, id, pick }),
        2 => (1u64..=30).prop_map(|millis| Op::Advance { millis }),
        1 => slot.clone().prop_map(|slot| Op::Disconnect { slot }),
        1 => (slot.clone(), id.clone(), mailbox.clone())
            .prop_map(|(slot, id, mailbox)| Op::Delete { slot, id, mailbox }),
        2 => (slot.clone(), id.clone(), mailbox.clone(), prop::option::of(settings_strategy()))
            .prop_map(|(slot, id, mailbox, settings)| Op::Create { slot, id, mailbox, settings }),
        1 => (slot.clone(), id.clone(), mailbox)
            .prop_map(|(slot, id, mailbox)| Op::Info { slot, id, mailbox }),
        1 => (slot, id).prop_map(|(slot, id)| Op::Status { slot, id }),
    ]
}

fn scenario_strategy() -> impl Strategy<Value = Scenario> {
    let memory_budget = prop_oneof![Just(1u64 << 30), 4u64..=16];
    let max_waiting = prop_oneof![Just(65_536usize), 1usize..=3];
    (
        1usize..=4,
        prop::collection::vec(settings_strategy(), 1..=2),
        memory_budget,
        max_waiting,
        any::<bool>(),
    )
        .prop_flat_map(
            |(connections, mailboxes, memory_budget, max_waiting, subscribed)| {
                let ops = prop::collection::vec(op_strategy(connections, mailboxes.len()), 1..=40);
                (Just(connections), Just(mailboxes), ops).prop_map(
                    move |(connections, mailboxes, ops)| Scenario {
                        limits: limits(memory_budget, max_waiting),
                        connections,
                        mailboxes,
                        subscribed,
                        ops,
                    },
                )
            },
        )
}

/// Replies in a canonical order, errors by kind only (messages are for
/// humans and the model does not write them), also where a batch send says
/// why it stopped.
fn canonical(replies: &[Reply]) -> Vec<String> {
    let mut list: Vec<String> = replies
        .iter()
        .map(|reply| {
            let result = match &reply.result {
                Ok(Response::SentMany {
                    first_sequence,
                    admitted,
                    recipients,
                    stopped,
                }) => format!(
                    "Ok(SentMany {{ first_sequence: {first_sequence}, admitted: {admitted}, \
                     recipients: {recipients}, stopped: {:?} }})",
                    stopped.as_ref().map(|e| e.kind)
                ),
                Ok(response) => format!("Ok({response:?})"),
                Err(error) => format!("Err({:?})", error.kind),
            };
            format!("{:?} {result}", reply.ticket)
        })
        .collect();
    list.sort();
    list
}

/// What a request was, for checking the replies it gets.
#[derive(Debug, Clone)]
enum Asked {
    /// A send (`batch: None`) or a send-many (`batch: Some(id)`, ids unique
    /// over the run) of `payloads`.
    Send {
        mailbox: String,
        generation: u64,
        payloads: Vec<Bytes>,
        batch: Option<u64>,
    },
    /// A receive (`max: None`) or a receive-many.
    Receive {
        mailbox: String,
        generation: u64,
        broadcast: bool,
        max: Option<u32>,
    },
    Delete {
        mailbox: String,
    },
    Other,
}

/// A payload of a batch send not answered yet: its messages may be received
/// before the batch's answer, or never be answered (its connection left).
/// Payloads are unique over a run, so a received payload names its batch.
#[derive(Debug, Clone)]
struct Pending {
    batch: u64,
    index: usize,
    mailbox: String,
    generation: u64,
    connection: ConnectionId,
}

/// Facts gathered from the core's replies alone, for the global properties.
#[derive(Debug, Default)]
struct Book {
    /// Requests that got no reply yet.
    open: HashMap<Ticket, Asked>,
    /// How often each mailbox name was deleted: messages are told apart by
    /// (name, generation, sequence).
    generations: HashMap<String, u64>,
    /// Accepted messages and their payloads.
    sent: HashMap<(String, u64, u64), Bytes>,
    /// How often each accepted round-robin message was received.
    received: HashMap<(String, u64, u64), u32>,
    /// The last sequence each connection received from each mailbox.
    last_received: HashMap<(ConnectionId, String, u64), u64>,
    /// The next batch id.
    batches: u64,
    /// Payloads of batch sends not answered yet.
    pending: HashMap<Bytes, Pending>,
    /// Per batch not answered yet: the sequence each received payload (by
    /// index) had.
    claims: HashMap<u64, BTreeMap<usize, u64>>,
    /// Batches withdrawn unanswered (their connection left): mailbox,
    /// generation, batch id, number of payloads.
    withdrawn: Vec<(String, u64, u64, usize)>,
}

impl Book {
    /// What `request` is, given whether its mailbox is broadcast now.
    fn asked(&mut self, request: &Request, broadcast: bool) -> Asked {
        let generation = |name: &str| self.generations.get(name).copied().unwrap_or(0);
        match request {
            Request::Send {
                mailbox, payload, ..
            } => Asked::Send {
                mailbox: mailbox.clone(),
                generation: generation(mailbox),
                payloads: vec![payload.clone()],
                batch: None,
            },
            Request::SendMany {
                mailbox, payloads, ..
            } => {
                let asked = Asked::Send {
                    mailbox: mailbox.clone(),
                    generation: generation(mailbox),
                    payloads: payloads.clone(),
                    batch: Some(self.batches),
                };
                self.batches += 1;
                asked
            }
            Request::Receive { mailbox, .. } => Asked::Receive {
                mailbox: mailbox.clone(),
                generation: generation(mailbox),
                broadcast,
                max: None,
            },
            Request::ReceiveMany { mailbox, max, .. } => Asked::Receive {
                mailbox: mailbox.clone(),
                generation: generation(mailbox),
                broadcast,
                max: Some(*max),
            },
            Request::DeleteMailbox { name } => Asked::Delete {
                mailbox: name.clone(),
            },
            _ => Asked::Other,
        }
    }

    /// Files the replies of one step; `current` is the request that step
    /// made, if any. Every reply must answer that request or one that was
    /// waiting, and answers it exactly once.
    fn file(&mut self, current: Option<(Ticket, Asked)>, replies: &[Reply]) {
        // A batch's messages may be received in the very step it is made.
        if let Some((
            ticket,
            Asked::Send {
                mailbox,
                generation,
                payloads,
                batch: Some(batch),
            },
        )) = &current
        {
            for (index, payload) in payloads.iter().enumerate() {
                let pending = Pending {
                    batch: *batch,
                    index,
                    mailbox: mailbox.clone(),
                    generation: *generation,
                    connection: ticket.connection,
                };
                let previous = self.pending.insert(payload.clone(), pending);
                assert!(previous.is_none(), "payloads are unique");
            }
        }
        let mut current = current;
        let mut answered = Vec::new();
        for reply in replies {
            let asked = match current.take() {
                Some((ticket, asked)) if ticket == reply.ticket => asked,
                other => {
                    current = other;
                    match self.open.remove(&reply.ticket) {
                        Some(asked) => asked,
                        None => panic!("reply to a request that is not waiting: {reply:?}"),
                    }
                }
            };
            answered.push((reply, asked));
        }
        if let Some((ticket, asked)) = current {
            let previous = self.open.insert(ticket, asked);
            assert!(previous.is_none(), "{ticket:?} waits twice");
        }
        // Sent replies first: on a zero broadcast mailbox the receivers'
        // replies may come before the sender's in one outcome.
        for (reply, asked) in &answered {
            match (asked, &reply.result) {
                (
                    Asked::Send {
                        mailbox,
                        generation,
                        payloads,
                        batch: None,
                    },
                    Ok(Response::Sent { sequence, .. }),
                ) => {
                    let key = (mailbox.clone(), *generation, *sequence);
                    assert!(
                        self.sent.insert(key, payloads[0].clone()).is_none(),
                        "sequence {sequence} of {mailbox} given twice"
                    );
                }
                (
                    Asked::Send {
                        mailbox,
                        generation,
                        payloads,
                        batch: Some(batch),
                    },
                    Ok(Response::SentMany {
                        first_sequence,
                        admitted,
                        stopped,
                        ..
                    }),
                ) => {
                    let admitted = *admitted as usize;
                    assert!(
                        admitted <= payloads.len(),
                        "admitted more than sent: {reply:?}"
                    );
                    assert_eq!(
                        stopped.is_none(),
                        admitted == payloads.len(),
                        "a batch stops exactly when not all was admitted: {reply:?}"
                    );
                    let claims = self.claims.remove(batch).unwrap_or_default();
                    for (index, sequence) in &claims {
                        assert!(
                            *index < admitted && *sequence == first_sequence + *index as u64,
                            "payload {index} was received as {sequence}, but {reply:?}"
                        );
                    }
                    for (index, payload) in payloads.iter().enumerate() {
                        self.pending.remove(payload);
                        if index >= admitted {
                            continue;
                        }
                        let sequence = first_sequence + index as u64;
                        let key = (mailbox.clone(), *generation, sequence);
                        let previous = self.sent.insert(key, payload.clone());
                        assert!(
                            previous.is_none() || claims.contains_key(&index),
                            "sequence {sequence} of {mailbox} given twice"
                        );
                    }
                }
                (Asked::Send { .. }, Ok(response)) => {
                    panic!("a send answered {response:?}: {reply:?}")
                }
                (Asked::Delete { mailbox }, Ok(Response::Deleted)) => {
                    *self.generations.entry(mailbox.clone()).or_default() += 1;
                }
                _ => {}
            }
        }
        for (reply, asked) in &answered {
            let Asked::Receive {
                mailbox,
                generation,
                broadcast,
                max,
            } = asked
            else {
                continue;
            };
            let messages = match (&reply.result, max) {
                (Ok(Response::Received(message)), None) => std::slice::from_ref(message),
                (Ok(Response::ReceivedMany(messages)), Some(max)) => {
                    assert!(
                        !messages.is_empty() && messages.len() <= (*max).max(1) as usize,
                        "a receive-many of {max} got {} messages",
                        messages.len()
                    );
                    for pair in messages.windows(2) {
                        assert_eq!(
                            pair[0].metadata.sequence + 1,
                            pair[1].metadata.sequence,
                            "a receive-many got messages that are not consecutive: {reply:?}"
                        );
                    }
                    messages.as_slice()
                }
                (Ok(response), _) => panic!("a receive answered {response:?}: {reply:?}"),
                (Err(_), _) => continue,
            };
            for message in messages {
                let sequence = message.metadata.sequence;
                let key = (mailbox.clone(), *generation, sequence);
                if !self.sent.contains_key(&key) {
                    self.claim(&key, message);
                }
                assert_eq!(
                    self.sent.get(&key),
                    Some(&message.payload),
                    "received a message that was not sent: {reply:?}"
                );
                if !broadcast {
                    let count = self.received.entry(key).or_default();
                    *count += 1;
                    assert_eq!(*count, 1, "received twice: {reply:?}");
                }
                let last = self
                    .last_received
                    .entry((reply.ticket.connection, mailbox.clone(), *generation))
                    .or_default();
                assert!(*last < sequence, "out of order: {sequence} after {last}");
                *last = sequence;
            }
        }
    }

    /// A message received before its send was answered: it must be a payload
    /// of a batch not answered yet, of that mailbox and sender, and the
    /// payloads of one batch get consecutive sequences.
    fn claim(&mut self, key: &(String, u64, u64), message: &Message) {
        let Some(pending) = self.pending.get(&message.payload) else {
            panic!("received a message that was not sent: {message:?}");
        };
        let (mailbox, generation, sequence) = key;
        assert!(
            pending.mailbox == *mailbox
                && pending.generation == *generation
                && pending.connection.0 == message.metadata.sender_connection,
            "received {message:?} from {mailbox}, but it was sent as {pending:?}"
        );
        let claims = self.claims.entry(pending.batch).or_default();
        if let Some((index, first)) = claims.iter().next() {
            assert_eq!(
                sequence - pending.index as u64,
                first - *index as u64,
                "a batch's messages are not consecutive"
            );
        }
        claims.insert(pending.index, *sequence);
        self.sent.insert(key.clone(), message.payload.clone());
    }

    /// The connection is gone: its waiting requests are never answered, but
    /// what its batches admitted may still be received.
    fn forget_connection(&mut self, connection: ConnectionId) {
        let gone: Vec<Ticket> = self
            .open
            .keys()
            .filter(|ticket| ticket.connection == connection)
            .copied()
            .collect();
        for ticket in gone {
            if let Some(Asked::Send {
                mailbox,
                generation,
                payloads,
                batch: Some(batch),
            }) = self.open.remove(&ticket)
            {
                self.withdrawn
                    .push((mailbox, generation, batch, payloads.len()));
            }
        }
    }

    /// Every mailbox (of every generation) numbered the messages it accepted
    /// 1, 2, 3... without gaps, as far as the replies show: a batch withdrawn
    /// by a disconnect may have admitted messages nobody ever reported.
    fn check_sequences(&self) {
        let mut numbers: BTreeMap<(&str, u64), Vec<u64>> = BTreeMap::new();
        for (mailbox, generation, sequence) in self.sent.keys() {
            numbers
                .entry((mailbox.as_str(), *generation))
                .or_default()
                .push(*sequence);
        }
        for ((mailbox, generation), mut sequences) in numbers {
            sequences.sort_unstable();
            let last = sequences.last().copied().unwrap_or(0);
            let missing = last as usize - sequences.len();
            let unreported: usize = self
                .withdrawn
                .iter()
                .filter(|(name, g, _, _)| name == mailbox && *g == generation)
                .map(|(_, _, batch, count)| count - self.claims.get(batch).map_or(0, BTreeMap::len))
                .sum();
            assert!(
                missing <= unreported,
                "gaps in {mailbox} (generation {generation}): {sequences:?}"
            );
        }
    }

    /// Every message accepted by the current round-robin mailbox `name` was
    /// received exactly once (call it once the mailbox is drained).
    fn check_drained(&self, name: &str) {
        let generation = self.generations.get(name).copied().unwrap_or(0);
        for (mailbox, message_generation, sequence) in self.sent.keys() {
            if mailbox == name && *message_generation == generation {
                let key = (name.to_owned(), generation, *sequence);
                assert_eq!(
                    self.received.get(&key),
                    Some(&1),
                    "message {sequence} of {name} was accepted but never received"
                );
            }
        }
    }
}

/// Runs one scenario on the core and on the model side by side.
struct Driver {
    harness: Harness,
    model: Model,
    book: Book,
    /// The live connection behind each slot; a disconnected slot gets a new
    /// connection, as a client that reconnects would.
    slots: Vec<ConnectionId>,
    next_connection: u64,
    settings: Vec<MailboxSettings>,
    payloads: u64,
    steps: Vec<String>,
}

impl Driver {
    fn new(scenario: &Scenario) -> Self {
        let mut driver = Self {
            harness: Harness::new(scenario.limits),
            model: Model::new(scenario.limits),
            book: Book::default(),
            slots: Vec::new(),
            next_connection: 1,
            settings: scenario.mailboxes.clone(),
            payloads: 0,
            steps: Vec::new(),
        };
        for _ in 0..scenario.connections {
            let connection = driver.connect_new();
            driver.slots.push(connection);
        }
        for (index, settings) in scenario.mailboxes.iter().enumerate() {
            let request = Request::CreateMailbox {
                name: mailbox_name(index),
                settings: Box::new(settings.clone()),
            };
            driver.request(driver.slots[0], 100 + index as u64, request);
            if scenario.subscribed && settings.policy == DeliveryPolicy::Broadcast {
                for slot in 0..scenario.connections {
                    let request = Request::Subscribe {
                        mailbox: mailbox_name(index),
                    };
                    driver.request(driver.slots[slot], 200 + index as u64, request);
                }
            }
        }
        driver
    }

    fn connect_new(&mut self) -> ConnectionId {
        let connection = ConnectionId(self.next_connection);
        self.next_connection += 1;
        self.harness.connect(connection);
        self.model.connect(connection);
        connection
    }

    /// Both replies of one step must be equal as multisets.
    fn compare(&mut self, step: String, actual: &[Reply], expected: &[Reply]) {
        self.steps.push(step);
        assert_eq!(
            canonical(actual),
            canonical(expected),
            "the core and the model disagree after these steps:\n{}",
            self.steps.join("\n")
        );
    }

    fn request(&mut self, connection: ConnectionId, id: RequestId, request: Request) -> Vec<Reply> {
        let ticket = Ticket {
            connection,
            request: id,
        };
        let mailbox = match &request {
            Request::Send { mailbox, .. }
            | Request::SendMany { mailbox, .. }
            | Request::Receive { mailbox, .. }
            | Request::ReceiveMany { mailbox, .. } => Some(mailbox),
            _ => None,
        };
        let broadcast = mailbox
            .and_then(|name| self.model.mailboxes.get(name))
            .is_some_and(ModelMailbox::is_broadcast);
        let asked = self.book.asked(&request, broadcast);
        let step = format!("c{}#{id} {request:?}", connection.0);
        let actual = self.harness.req(connection, id, request.clone());
        let expected = self.model.apply(ticket, request);
        self.compare(step, &actual, &expected);
        self.book.file(Some((ticket, asked)), &actual);
        actual
    }

    fn run(&mut self, op: &Op) {
        match op.clone() {
            Op::Send {
                slot,
                id,
                mailbox,
                wait,
            } => {
                self.payloads += 1;
                let payload = format!("p{}", self.payloads);
                self.request(
                    self.slots[slot],
                    id,
                    send(&mailbox_name(mailbox), &payload, wait),
                );
            }
            Op::Receive {
                slot,
                id,
                mailbox,
                wait,
            } => {
                self.request(self.slots[slot], id, recv(&mailbox_name(mailbox), wait));
            }
            Op::SendMany {
                slot,
                id,
                mailbox,
                count,
                wait,
            } => {
                let payloads: Vec<String> = (0..count)
                    .map(|_| {
                        self.payloads += 1;
                        format!("p{}", self.payloads)
                    })
                    .collect();
                let payloads: Vec<&str> = payloads.iter().map(String::as_str).collect();
                let request = send_many(&mailbox_name(mailbox), &payloads, wait);
                self.request(self.slots[slot], id, request);
            }
            Op::ReceiveMany {
                slot,
                id,
                mailbox,
                max,
                wait,
            } => {
                let request = recv_many(&mailbox_name(mailbox), max, wait);
                self.request(self.slots[slot], id, request);
            }
            Op::Subscribe { slot, id, mailbox } => {
                let request = Request::Subscribe {
                    mailbox: mailbox_name(mailbox),
                };
                self.request(self.slots[slot], id, request);
            }
            Op::Unsubscribe { slot, id, mailbox } => {
                let request = Request::Unsubscribe {
                    mailbox: mailbox_name(mailbox),
                };
                self.request(self.slots[slot], id, request);
            }
            Op::Cancel { slot, id, pick } => {
                let connection = self.slots[slot];
                let waiting: Vec<RequestId> = self
                    .model
                    .waiting
                    .get(&connection)
                    .map(|waits| waits.keys().copied().collect())
                    .unwrap_or_default();
                let target = if pick % 2 == 0 && !waiting.is_empty() {
                    waiting[pick / 2 % waiting.len()]
                } else {
                    pick as u64 % 6 + 1
                };
                self.request(connection, id, Request::Cancel { request: target });
            }
            Op::Advance { millis } => {
                self.harness.advance(millis);
                let actual = self.harness.expire();
                let expected = self.model.advance_and_expire(millis);
                self.compare(format!("advance {millis}; expire"), &actual, &expected);
                self.book.file(None, &actual);
            }
            Op::Disconnect { slot } => {
                let connection = self.slots[slot];
                let actual = self.harness.disconnect(connection);
                let expected = self.model.disconnect(connection);
                self.compare(format!("disconnect c{}", connection.0), &actual, &expected);
                // Its waiting requests are withdrawn and never answered.
                self.book.forget_connection(connection);
                self.book.file(None, &actual);
                self.slots[slot] = self.connect_new();
            }
            Op::Delete { slot, id, mailbox } => {
                let request = Request::DeleteMailbox {
                    name: mailbox_name(mailbox),
                };
                self.request(self.slots[slot], id, request);
            }
            Op::Create {
                slot,
                id,
                mailbox,
                settings,
            } => {
                let request = Request::CreateMailbox {
                    name: mailbox_name(mailbox),
                    settings: Box::new(settings.clone().unwrap_or(self.settings[mailbox].clone())),
                };
                self.request(self.slots[slot], id, request);
            }
            Op::Info { slot, id, mailbox } => {
                let request = Request::MailboxInfo {
                    name: mailbox_name(mailbox),
                };
                self.request(self.slots[slot], id, request);
            }
            Op::Status { slot, id } => {
                self.request(self.slots[slot], id, Request::Status);
            }
        }
    }

    /// Drains every round-robin mailbox, checks that each message it ever
    /// accepted was received exactly once, then shuts down and checks that
    /// every request of a live connection got its reply.
    fn finish(&mut self) {
        let drainer = self.connect_new();
        let names: Vec<String> = self.model.mailboxes.keys().cloned().collect();
        let mut id = 0;
        for name in names {
            if self
                .model
                .mailboxes
                .get(&name)
                .is_some_and(ModelMailbox::is_broadcast)
            {
                continue;
            }
            loop {
                id += 1;
                let replies = self.request(drainer, id, recv(&name, Wait::Never));
                let empty = replies.iter().any(|reply| {
                    reply.ticket.connection == drainer
                        && matches!(&reply.result, Err(e) if e.kind == ErrorKind::WouldBlock)
                });
                if empty {
                    break;
                }
                assert!(id < 1000, "mailbox {name} never drains");
            }
            self.book.check_drained(&name);
        }
        let actual = self.harness.shut_down();
        let expected = self.model.shut_down();
        self.compare("shutdown".to_owned(), &actual, &expected);
        self.book.file(None, &actual);
        // Only now is every batch of a live connection answered.
        self.book.check_sequences();
        for slot in 0..self.slots.len() {
            let replies = self.request(self.slots[slot], 1000, Request::Status);
            assert_eq!(canonical(&replies).len(), 1);
        }
        assert!(
            self.book.open.is_empty(),
            "requests never answered: {:?}",
            self.book.open
        );
    }
}

fn mailbox_name(index: usize) -> String {
    format!("m{index}")
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 256,
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    /// Random operations (batches included) on the core answer exactly as
    /// the model does, and the replies alone show: every accepted round-robin
    /// message reaches exactly one receiver (or is lost by a delete), nothing
    /// is received that was not sent, sequences have no gaps, a batch's
    /// messages and a receive-many's messages are consecutive, each receiver
    /// sees increasing sequences, and every request of a live connection gets
    /// exactly one reply.
    #[test]
    fn the_core_answers_like_the_model(scenario in scenario_strategy()) {
        let mut driver = Driver::new(&scenario);
        for op in &scenario.ops {
            driver.run(op);
        }
        driver.finish();
    }
}
