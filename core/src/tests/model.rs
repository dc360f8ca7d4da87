//! The model: a naive simulation of the rules, which the property test
//! (`model/property.rs`) runs against the core.

use super::*;

mod property;

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
    /// Round-robin turns: each connection with a receive waiting, once, in
    /// the order it started waiting; its receives are served oldest first.
    turns: VecDeque<ConnectionId>,
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
            turns: VecDeque::new(),
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

    /// A page of `Peek` for `viewer`: the queue, or for broadcast the
    /// viewer's unread messages if it subscribed, else every message some
    /// subscriber has not read; from after `after`, by sequence (the model
    /// never takes a message back, so its queues stay in that order).
    fn peek(&self, viewer: ConnectionId, after: Option<u64>, max: u32) -> Response {
        let shown: Vec<&Message> = match self.subscribers.get(&viewer) {
            Some(subscriber) if self.is_broadcast() => subscriber.inbox.iter().collect(),
            _ if self.is_broadcast() => {
                let mut unread: BTreeMap<u64, &Message> = BTreeMap::new();
                for message in self.subscribers.values().flat_map(|s| s.inbox.iter()) {
                    unread.insert(message.metadata.sequence, message);
                }
                unread.into_values().collect()
            }
            _ => self.queue.iter().collect(),
        };
        let mut messages: Vec<Message> = shown
            .into_iter()
            .filter(|m| after.is_none_or(|after| m.metadata.sequence > after))
            .cloned()
            .collect();
        let limit = max.clamp(1, mailbox_proto::MAX_PEEK_MESSAGES) as usize;
        let next = (messages.len() > limit).then(|| messages[limit - 1].metadata.sequence);
        messages.truncate(limit);
        Response::Peeked {
            messages,
            next,
            in_flight: 0,
        }
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

    /// Whether `connection` has a receive waiting (not as a subscriber).
    fn receives_of(&self, connection: ConnectionId) -> bool {
        self.receivers
            .iter()
            .any(|r| r.ticket.connection == connection)
    }

    /// A receive joins the line; its connection takes a turn at the back
    /// unless it has one.
    fn add_receive(&mut self, receive: ModelReceive) {
        let connection = receive.ticket.connection;
        if !self.receives_of(connection) {
            self.turns.push_back(connection);
        }
        self.receivers.push_back(receive);
    }

    /// The receive whose turn it is: the oldest of the connection at the
    /// front of the turns, which then goes to the back if it still waits.
    fn next_receive(&mut self) -> Option<ModelReceive> {
        let connection = self.turns.pop_front()?;
        let at = self
            .receivers
            .iter()
            .position(|r| r.ticket.connection == connection)?;
        let receive = self.receivers.remove(at)?;
        if self.receives_of(connection) {
            self.turns.push_back(connection);
        }
        Some(receive)
    }

    /// Takes `ticket` out of its line; returns it when it was a send.
    fn withdraw(&mut self, ticket: Ticket) -> Option<ModelSend> {
        self.receivers.retain(|r| r.ticket != ticket);
        if !self.receives_of(ticket.connection) {
            self.turns.retain(|c| *c != ticket.connection);
        }
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
        // In turn order, each connection's receives oldest first.
        let mut receives: Vec<ModelReceive> = Vec::new();
        for connection in std::mem::take(&mut self.turns) {
            receives.extend(
                self.receivers
                    .iter()
                    .filter(|r| r.ticket.connection == connection)
                    .cloned(),
            );
        }
        self.receivers.clear();
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
        let message = message_from(send.ticket.connection, sequence, payload, unix_nanos);
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
                        let Some(receive) = self.next_receive() else {
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
                        let Some(receive) = self.next_receive() else {
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
            limits.max_requests_in_flight as u64,
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
        ("max_region_size", limits.max_region_size),
        ("max_regions_per_uid", limits.max_regions_per_uid as u64),
        ("max_file_size", limits.max_file_size),
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
            Request::Peek {
                from: Source::Mailbox(name),
                after,
                max,
            } => match self.mailboxes.get(&name) {
                None => Err(ErrorKind::NoSuchMailbox),
                Some(mailbox) => Ok(mailbox.peek(ticket.connection, after, max)),
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
            mailbox.add_receive(receive);
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
        if waits.len() >= self.limits.max_requests_in_flight {
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
