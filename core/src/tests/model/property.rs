//! The property test: random operations against the core and against the
//! model, every reply compared.

use super::*;

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
    /// A `SendQuietly`: checked against the model's non-blocking send, with
    /// the success answer left out.
    SendQuietly {
        slot: usize,
        id: RequestId,
        mailbox: usize,
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
    Peek {
        slot: usize,
        id: RequestId,
        mailbox: usize,
        after: Option<u64>,
        max: u32,
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
        2 => (slot.clone(), id.clone(), mailbox.clone())
            .prop_map(|(slot, id, mailbox)| Op::SendQuietly { slot, id, mailbox }),
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
        1 => (slot.clone(), id.clone(), mailbox.clone())
            .prop_map(|(slot, id, mailbox)| Op::Info { slot, id, mailbox }),
        1 => (slot.clone(), id.clone()).prop_map(|(slot, id)| Op::Status { slot, id }),
        2 => (slot, id, mailbox, prop::option::of(0u64..=8), 1u32..=3)
            .prop_map(|(slot, id, mailbox, after, max)| Op::Peek { slot, id, mailbox, after, max }),
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

    /// A quiet send: the core must answer as the model answers the same
    /// send with `Wait::Never`, less its success answer; the book files
    /// the model's answers, success included, so that the message it
    /// admitted is accounted for like any other.
    fn request_quietly(
        &mut self,
        connection: ConnectionId,
        id: RequestId,
        mailbox: &str,
        payload: &str,
    ) {
        let ticket = Ticket {
            connection,
            request: id,
        };
        let as_send = send(mailbox, payload, Wait::Never);
        let broadcast = self
            .model
            .mailboxes
            .get(mailbox)
            .is_some_and(ModelMailbox::is_broadcast);
        let asked = self.book.asked(&as_send, broadcast);
        let quiet = Request::SendQuietly {
            mailbox: mailbox.to_owned(),
            payload: Bytes::from(payload.to_owned()),
        };
        let step = format!("c{}#{id} {quiet:?}", connection.0);
        let actual = self.harness.req(connection, id, quiet);
        let answered = self.model.apply(ticket, as_send);
        let expected: Vec<Reply> = answered
            .iter()
            .filter(|reply| !(reply.ticket == ticket && reply.result.is_ok()))
            .cloned()
            .collect();
        self.compare(step, &actual, &expected);
        self.book.file(Some((ticket, asked)), &answered);
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
            Op::SendQuietly { slot, id, mailbox } => {
                self.payloads += 1;
                let payload = format!("p{}", self.payloads);
                self.request_quietly(self.slots[slot], id, &mailbox_name(mailbox), &payload);
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
            Op::Peek {
                slot,
                id,
                mailbox,
                after,
                max,
            } => {
                let request = Request::Peek {
                    from: Source::Mailbox(mailbox_name(mailbox)),
                    after,
                    max,
                };
                self.request(self.slots[slot], id, request);
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
