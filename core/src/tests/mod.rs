//! Tests of the core: every rule of the product as a script of requests and
//! the replies they must produce ([`check`]), then a property test that runs
//! random operations against the core and against a naive model
//! (`model.rs`, `model/property.rs`) and compares every reply.
//!
//! One file per topic: `mailboxes.rs`, `send.rs`, `receive.rs`, `order.rs`
//! (FIFO, fairness, round-robin), `broadcast.rs`, `metadata.rs`,
//! `connections.rs` (ids, cancel, disconnect, shutdown), `batches.rs`,
//! `inboxes.rs`, `names.rs`, `receive_from_names.rs`, `opening.rs`, `send_stages.rs`, `acknowledgements.rs`,
//! `ack_timeouts.rs`, `time_to_live.rs`, `calls.rs`, `hash_and_priority.rs`,
//! `slow_subscribers.rs`, `many_waiters.rs`, `listing.rs`, `peek.rs`, and who may do
//! what: `access_and_limits.rs`, `fair_share.rs`, `strangers.rs`. This file
//! is the harness and the script language; `invariants.rs` what every step
//! checks.
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
//!   `delete NAME`, `info NAME`, `open NAME [WAIT]`, `list`, `status`, `send NAME PAYLOAD [WAIT]`,
//!   `sendmany NAME P1,P2,... [WAIT]` (`-` for no payloads), `recv NAME
//!   [WAIT]`, `recvmany NAME MAX [WAIT]`, `sub NAME`, `unsub NAME`, `cancel
//!   ID`. WAIT is `forever` (the default), `never` or `t=MILLIS`. A NAME or
//!   PAYLOAD written `@N` is N bytes of `x`; `""` is empty.
//!   Beyond plain mailboxes: `sendw TARGET PAYLOAD
//!   [stage=received|acknowledged] [key=K] [ttl=MS] [WAIT]` and `call TARGET
//!   PAYLOAD [key=K] [ttl=MS] [WAIT]`, where TARGET is a mailbox, `pN`
//!   (process N) or `n:NAME` (a well-known name); `recvw SOURCE [ack]
//!   [prio=N] [max=N] [from=pN|n:NAME] [WAIT]` with SOURCE a mailbox or
//!   `inbox`; `ack PLACE SEQ`, `nack PLACE SEQ [tail]` (PLACE a mailbox or
//!   `inbox`; `SEQ/R` settles only the delivery with R redeliveries); `reply CALL PAYLOAD`; `claim NAME [WAIT]` (default `never`),
//!   `release NAME`, `names`, `inboxcap CAPACITY`, `peek SOURCE [after=SEQ]
//!   [max=N]` (SOURCE a mailbox or `inbox`; `max` 100 unless given); and the settings `hash`,
//!   `priority`, `deliveries=N`, `dlq=NAME`, `ttl=MS`; the settings `ack=MS`
//!   (acknowledgement timeout, tests in `ack_timeouts.rs`) and `cut=MS`
//!   (cut slow subscribers after, `slow_subscribers.rs`). Permissions
//!   (`access_and_limits.rs`): `chmod NAME OCTAL`, `chown NAME UID`, `chgrp NAME GID` and `purge NAME` (answered
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
//! ` acktimeouts=N` and ` cut=N` when not zero. Beyond plain mailboxes,
//! replies read `settled`, `replied`, `claimed`, `released`, `inboxcap`, `names
//! NAME=cN+QUEUED...`, `peeked SEQ:PAYLOAD... [next=SEQ] [inflight=N]`.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::time::{Duration, Instant};

use bytes::Bytes;
use mailbox_proto::{
    Address, BrokerStatus, Capacity, DeliveryPolicy, ErrorKind, MailboxInfo, MailboxSettings,
    Message, ReceiveOptions, Request, RequestId, Response, SendOptions, Source, Stage, Target,
    Verdict, Wait, PROTOCOL_VERSION,
};
use proptest::prelude::*;

use super::{Clock, ConnectionId, Core, Limits, Outcome, Peer, Reply, Ticket};

mod access_and_limits;
mod ack_timeouts;
mod acknowledgements;
mod batches;
mod broadcast;
mod calls;
mod connections;
mod fair_share;
mod files;
mod hash_and_priority;
mod inboxes;
mod invariants;
mod listing;
mod mailboxes;
mod many_waiters;
mod metadata;
mod model;
mod names;
mod opening;
mod order;
mod peek;
mod quiet_sends;
mod receive;
mod receive_from_names;
mod regions;
mod send;
mod send_stages;
mod slow_subscribers;
mod strangers;
mod time_to_live;

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

/// Request `request` of connection `connection`.
pub(crate) fn ticket(connection: u64, request: u64) -> Ticket {
    Ticket {
        connection: ConnectionId(connection),
        request,
    }
}

/// A plain message as the core stamps it: `sequence` and `payload`, sent
/// by `sender` (with the credentials of [`peer_of`]) and admitted at
/// `unix_nanos`. Built on the workspace's one message fixture.
fn message_from(
    sender: ConnectionId,
    sequence: u64,
    payload: impl Into<Bytes>,
    unix_nanos: u64,
) -> Message {
    let peer = peer_of(sender);
    let mut message = mailbox_proto::fixtures::message(sequence, payload);
    let metadata = &mut message.metadata;
    metadata.sender_pid = peer.pid;
    metadata.sender_uid = peer.uid;
    metadata.sender_gid = peer.gid;
    metadata.sender_connection = sender.0;
    metadata.accepted_at_unix_nanos = unix_nanos;
    message
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
        ["open", name, wait @ ..] => Request::OpenMailbox {
            name: text(name),
            wait: parse_wait(wait),
        },
        ["list"] => Request::ListMailboxes,
        ["status"] => Request::Status,
        ["send", name, payload, wait @ ..] => send(&text(name), &text(payload), parse_wait(wait)),
        ["sendq", name, payload] => Request::SendQuietly {
            mailbox: text(name),
            payload: Bytes::from(text(payload)),
        },
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
        ["sendfile", target, payload, rest @ ..] => {
            let payload = Bytes::from(text(payload));
            let (len, wait) = match rest {
                ["claims", len, wait @ ..] => (number(len), parse_wait(wait)),
                wait => (payload.len() as u64, parse_wait(wait)),
            };
            Request::SendFile {
                to: parse_target(target),
                len,
                options: Box::default(),
                wait,
                payload,
            }
        }
        ["acceptfiles"] => Request::AcceptFiles,
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
        ["peek", source, options @ ..] => {
            let mut after = None;
            let mut max = 100;
            for word in options {
                match word.split_once('=') {
                    Some(("after", n)) => after = Some(number(n)),
                    Some(("max", n)) => max = number(n),
                    _ => panic!("bad peek option {word:?}"),
                }
            }
            let from = match *source {
                "inbox" => Source::Inbox { from: None },
                name => Source::Mailbox(text(name)),
            };
            Request::Peek { from, after, max }
        }
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
        Ok(Response::RegionInfo(region)) => format!("region {} {}", region.name, region.size),
        Ok(Response::RegionPage { regions, .. }) => format!("regions {}", regions.len()),
        Ok(Response::RegionOpened { region, access }) => {
            format!("opened {} {access:?}", region.name)
        }
        Ok(Response::ReceivedFile { len, .. }) => format!("file {len}"),
        Ok(Response::WithFiles { files, .. }) => format!("with {} files", files.len()),
        Ok(Response::FilesAccepted) => "files accepted".to_owned(),
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
        Ok(Response::Peeked {
            messages,
            next,
            in_flight,
        }) => {
            let mut text = "peeked".to_owned();
            for message in messages {
                text.push_str(&format!(
                    " {}:{}{}",
                    message.metadata.sequence,
                    show_payload(&message.payload),
                    show_extras(message)
                ));
            }
            if let Some(next) = next {
                text.push_str(&format!(" next={next}"));
            }
            if *in_flight > 0 {
                text.push_str(&format!(" inflight={in_flight}"));
            }
            text
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

fn limits(memory_budget: u64, max_requests_in_flight: usize) -> Limits {
    Limits {
        memory_budget,
        max_requests_in_flight,
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
