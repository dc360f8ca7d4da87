//! Messages: send, receive and settle. `Send` and `Receive` are the
//! broker's hot path: their handlers add no allocation, clone or lookup to
//! what `send` and `receive` do.

use std::time::Duration;

use bytes::Bytes;
use mailbox_proto::{
    validate_key, Address, BrokerError, DeliveryPolicy, ErrorKind, ReceiveOptions, Response,
    SendOptions, Source, Stage, Target, Verdict, Wait,
};

use crate::budget::{Budget, Exhausted};
use crate::mailbox::{
    Batch, Context, Load, Progress, SendExtra, Sender, Until, WaitingReceive, WaitingSend,
};
use crate::places::missing_mailbox;
use crate::rights::allowed;
use crate::types::Place;
use crate::waits::{may_wait, not_now, WaitPlan};
use crate::{check_name, error, Clock, ConnectionId, Core, Outcome, Peer, Right, Ticket};

/// A send's target, resolved.
pub(crate) struct SendPlan {
    pub(crate) place: Place,
    pub(crate) extra: Option<Box<SendExtra>>,
    pub(crate) call: Option<u64>,
    /// A memory-file payload: its limit is `MAX_FILE_PAYLOAD`, not the
    /// mailbox's `max_message_size`.
    pub(crate) file: bool,
}

impl Core {
    /// `Send`: one message to a mailbox.
    #[inline]
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn send_one(
        &mut self,
        ticket: Ticket,
        peer: Peer,
        mailbox: String,
        payload: Bytes,
        wait: Wait,
        clock: &Clock,
        out: &mut Outcome,
    ) -> Result<Option<Response>, BrokerError> {
        let plan = SendPlan {
            place: Place::Mailbox(mailbox),
            extra: None,
            call: None,
            file: false,
        };
        self.send(ticket, peer, plan, Load::One(payload), wait, clock, out)
    }

    /// `SendMany`: a batch of messages to a mailbox, admitted in order.
    #[inline]
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn send_many(
        &mut self,
        ticket: Ticket,
        peer: Peer,
        mailbox: String,
        payloads: Vec<Bytes>,
        wait: Wait,
        clock: &Clock,
        out: &mut Outcome,
    ) -> Result<Option<Response>, BrokerError> {
        let batch = Batch {
            rest: payloads.into(),
            ..Batch::default()
        };
        let plan = SendPlan {
            place: Place::Mailbox(mailbox),
            extra: None,
            call: None,
            file: false,
        };
        self.send(ticket, peer, plan, Load::Many(batch), wait, clock, out)
    }

    /// `SendWith`: one message to a mailbox or a process, with options.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn send_with(
        &mut self,
        ticket: Ticket,
        peer: Peer,
        to: &Target,
        payload: Bytes,
        options: SendOptions,
        wait: Wait,
        clock: &Clock,
        out: &mut Outcome,
    ) -> Result<Option<Response>, BrokerError> {
        let plan = self.plan_send(to, options, wait, None)?;
        self.send(ticket, peer, plan, Load::One(payload), wait, clock, out)
    }

    /// `SendFile`: `SendWith` of a memory-file payload, which the server
    /// checked (seals, size) and mapped as `payload` before this.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn send_file(
        &mut self,
        ticket: Ticket,
        peer: Peer,
        to: &Target,
        len: u64,
        payload: Bytes,
        options: SendOptions,
        wait: Wait,
        clock: &Clock,
        out: &mut Outcome,
    ) -> Result<Option<Response>, BrokerError> {
        if payload.len() as u64 != len {
            // Only a server that skipped the check gets here.
            return Err(error(
                ErrorKind::InvalidRequest,
                format!(
                    "the memory file of this send has {} bytes, the request claims {len}",
                    payload.len()
                ),
            ));
        }
        let mut plan = self.plan_send(to, options, wait, None)?;
        plan.file = true;
        self.send(ticket, peer, plan, Load::One(payload), wait, clock, out)
    }

    /// `AcceptFiles`: from now on this connection gets memory-file
    /// payloads as files (the server's business; the core only keeps the
    /// flag for it).
    pub(crate) fn accept_files(
        &mut self,
        connection: ConnectionId,
    ) -> Result<Option<Response>, BrokerError> {
        if let Some(state) = self.connections.get_mut(&connection) {
            state.accepts_files = true;
        }
        Ok(Some(Response::FilesAccepted))
    }

    /// `Receive` (`max: None`) and `ReceiveMany` from a mailbox.
    #[inline]
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn receive_from_mailbox(
        &mut self,
        ticket: Ticket,
        peer: Peer,
        mailbox: String,
        max: Option<u32>,
        wait: Wait,
        clock: &Clock,
        out: &mut Outcome,
    ) -> Result<Option<Response>, BrokerError> {
        self.receive(
            peer,
            Place::Mailbox(mailbox),
            WaitingReceive::plain(ticket, max),
            wait,
            clock,
            out,
        )
    }

    /// `ReceiveWith`: from a mailbox or the caller's inbox, with options.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn receive_with(
        &mut self,
        ticket: Ticket,
        peer: Peer,
        from: Source,
        options: ReceiveOptions,
        wait: Wait,
        clock: &Clock,
        out: &mut Outcome,
    ) -> Result<Option<Response>, BrokerError> {
        let (place, receive) = self.plan_receive(ticket, from, options)?;
        self.receive(peer, place, receive, wait, clock, out)
    }

    /// `Settle`: acknowledges (or returns) a message the caller holds, in a
    /// mailbox or (`mailbox: None`) its inbox.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn settle_message(
        &mut self,
        connection: ConnectionId,
        mailbox: Option<String>,
        sequence: u64,
        verdict: Verdict,
        redeliveries: Option<u32>,
        clock: &Clock,
        out: &mut Outcome,
    ) -> Result<Option<Response>, BrokerError> {
        let place = match mailbox {
            Some(name) => Place::Mailbox(name),
            None => Place::Inbox(connection),
        };
        let mut ctx = Context {
            out,
            budget: &mut self.budget,
            clock,
            names: &self.names,
        };
        match self.places.get_mut(&place) {
            Some(mailbox) => mailbox.settle(connection, sequence, redeliveries, verdict, &mut ctx)?,
            None => {
                return Err(error(
                    ErrorKind::NotHeld,
                    format!(
                        "this connection holds no message {sequence} there: the mailbox is gone or was never received from"
                    ),
                ))
            }
        }
        Ok(Some(Response::Settled))
    }

    /// `Peek`: a page of the queued messages of a mailbox (for a caller
    /// with the receive right: anyone else learns nothing of them) or of
    /// the caller's own inbox, left where they are.
    pub(crate) fn peek(
        &self,
        connection: ConnectionId,
        peer: Peer,
        from: Source,
        after: Option<u64>,
        max: u32,
    ) -> Result<Option<Response>, BrokerError> {
        let mailbox = match from {
            Source::Mailbox(name) => {
                let mailbox = self.mailbox(&name)?;
                allowed(
                    mailbox.permissions(),
                    &self.connections,
                    peer,
                    connection,
                    Right::Receive,
                    &self.policy,
                    &name,
                )?;
                mailbox
            }
            Source::Inbox { from: None } => match self.places.inboxes.get(&connection) {
                Some(inbox) => inbox,
                // Never received or sent to: nothing queued.
                None => {
                    return Ok(Some(Response::Peeked {
                        messages: Vec::new(),
                        next: None,
                        in_flight: 0,
                    }))
                }
            },
            Source::Inbox { from: Some(_) } => {
                return Err(error(
                    ErrorKind::InvalidRequest,
                    "a peek shows the whole inbox, from every sender; leave `from` out",
                ))
            }
        };
        let mut page = mailbox.peek(connection, after, max);
        let inline_limit = self.limits.inline_limit(self.accepts_files(connection)) as usize;
        if let Response::Peeked { messages, next, .. } = &mut page {
            // A viewer that takes bytes inline sees the page up to the
            // first memory file too long for its frames; that one alone is
            // refused, naming it (a peek after it shows the rest).
            if let Some(at) = messages.iter().position(|m| m.payload.len() > inline_limit) {
                if at == 0 {
                    let message = &messages[0];
                    return Err(error(
                        ErrorKind::MessageTooLarge,
                        format!(
                            "message {} is a memory file of {} bytes; this client does not \
                             accept files (AcceptFiles) and takes at most {inline_limit} bytes \
                             inline; peek after it for the messages behind it",
                            message.metadata.sequence,
                            message.payload.len()
                        ),
                    ));
                }
                messages.truncate(at);
                *next = messages.last().map(|m| m.metadata.sequence);
            }
        }
        Ok(Some(page))
    }

    /// Checks a `SendWith` or `Call` and finds where it goes.
    pub(crate) fn plan_send(
        &mut self,
        to: &Target,
        options: SendOptions,
        wait: Wait,
        call: Option<u64>,
    ) -> Result<SendPlan, BrokerError> {
        if let Some(key) = &options.key {
            validate_key(key).map_err(|why| error(ErrorKind::InvalidRequest, why))?;
        }
        if options.ttl_millis == Some(0) {
            return Err(error(
                ErrorKind::InvalidRequest,
                "a time-to-live must be at least 1 ms",
            ));
        }
        let until = match (call, options.stage) {
            (Some(call), _) => Until::Reply(call),
            (None, Stage::Queued) => Until::Queued,
            (None, Stage::Received) => Until::Received,
            (None, Stage::Acknowledged) => Until::Acknowledged,
        };
        let waits_past_queued = until != Until::Queued;
        if waits_past_queued && !may_wait(wait) {
            return Err(error(
                ErrorKind::InvalidRequest,
                "a send that waits for a receiver (or a reply) cannot be non-blocking; give it a timeout",
            ));
        }
        let place = match to {
            Target::Mailbox(name) => {
                let mailbox = self.mailbox(name)?;
                if mailbox.is_broadcast() && matches!(until, Until::Acknowledged | Until::Reply(_))
                {
                    return Err(error(
                        ErrorKind::InvalidRequest,
                        format!(
                            "mailbox {name} is broadcast: its receivers do not acknowledge or reply; wait for `received` at most"
                        ),
                    ));
                }
                Place::Mailbox(name.clone())
            }
            Target::Process(address) => {
                let owner = self.resolve(address)?;
                self.open_inbox(owner)
            }
        };
        let extra = (until != Until::Queued
            || options.key.is_some()
            || options.ttl_millis.is_some())
        .then(|| {
            Box::new(SendExtra {
                until,
                key: options.key,
                ttl: options.ttl_millis.map(Duration::from_millis),
            })
        });
        Ok(SendPlan {
            place,
            extra,
            call,
            file: false,
        })
    }

    /// Checks a `ReceiveWith` and finds where it takes from.
    pub(crate) fn plan_receive(
        &mut self,
        ticket: Ticket,
        from: Source,
        options: ReceiveOptions,
    ) -> Result<(Place, WaitingReceive), BrokerError> {
        let mut receive = WaitingReceive {
            ticket,
            max: options.max,
            manual: options.manual_ack,
            priority: options.priority,
            from: None,
            inline_limit: u32::MAX,
        };
        let place = match from {
            Source::Mailbox(name) => {
                if options.manual_ack && self.mailbox(&name)?.is_broadcast() {
                    return Err(error(
                        ErrorKind::InvalidRequest,
                        format!("mailbox {name} is broadcast: subscribers do not acknowledge"),
                    ));
                }
                Place::Mailbox(name)
            }
            Source::Inbox { from } => {
                receive.from = match from {
                    None => None,
                    // A name is resolved per message (the holder when the
                    // inbox accepts it), so one nobody holds yet is no
                    // error: the receive waits, times out or finds the
                    // inbox empty, like any other.
                    Some(Address::Name(name)) => {
                        check_name(&name)?;
                        Some(Sender::Name(name.into()))
                    }
                    Some(Address::Process(id)) => {
                        Some(Sender::Process(match self.resolve(&Address::Process(id)) {
                            Ok(sender) => sender,
                            // A sender that left may still have messages
                            // waiting; one that never existed or left
                            // without them never will.
                            Err(_)
                                if self.places.inboxes.get(&ticket.connection).is_some_and(
                                    |inbox| inbox.has_message_from(ConnectionId(id)),
                                ) =>
                            {
                                ConnectionId(id)
                            }
                            Err(gone) => return Err(gone),
                        }))
                    }
                };
                self.open_inbox(ticket.connection)
            }
        };
        if options.manual_ack {
            if let Some(state) = self.connections.get_mut(&ticket.connection) {
                state.holds.insert(place.clone());
            }
        }
        Ok((place, receive))
    }

    /// A send of `load` to where `plan` says, within the mailbox's, the
    /// uid's and the broker's limits.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn send(
        &mut self,
        ticket: Ticket,
        peer: Peer,
        plan: SendPlan,
        load: Load,
        wait: Wait,
        clock: &Clock,
        out: &mut Outcome,
    ) -> Result<Option<Response>, BrokerError> {
        let mark = out.replies.len();
        let privileged = self.privileged(ticket.connection, peer);
        let Some(mailbox) = self.places.get_mut(&plan.place) else {
            return Err(match &plan.place {
                Place::Mailbox(name) => missing_mailbox(name),
                _ => error(ErrorKind::NoSuchProcess, "the process left"),
            });
        };
        let may_send = |what: &str| {
            allowed(
                mailbox.permissions(),
                &self.connections,
                peer,
                ticket.connection,
                Right::Send,
                &self.policy,
                what,
            )
        };
        match &plan.place {
            Place::Mailbox(name) => may_send(name)?,
            // A process's own sends to itself are always its business.
            Place::Inbox(owner) if *owner != ticket.connection => {
                may_send(&format!("the inbox of process {}", owner.0))?
            }
            _ => {}
        }
        let held = match &load {
            Load::One(payload) if plan.file => {
                mailbox.check_file_payload(payload.len(), self.limits.max_file_size)?;
                if let Place::Inbox(owner) = &plan.place {
                    // Only its owner takes from an inbox: a file it could
                    // never take would block the inbox for good.
                    let accepts = self
                        .connections
                        .get(owner)
                        .is_some_and(|state| state.accepts_files);
                    let limit = self.limits.inline_limit(accepts);
                    if payload.len() > limit as usize {
                        return Err(error(
                            ErrorKind::MessageTooLarge,
                            format!(
                                "a memory file of {} bytes for process {}, which does not accept \
                                 files (AcceptFiles) and takes at most {limit} bytes inline",
                                payload.len(),
                                owner.0
                            ),
                        ));
                    }
                }
                payload.len() as u64
            }
            Load::One(payload) => {
                mailbox.check_payload(payload.len())?;
                payload.len() as u64
            }
            Load::Many(batch) => {
                if batch.rest.is_empty() {
                    return Ok(Some(Response::SentMany {
                        first_sequence: mailbox.next_sequence(),
                        admitted: 0,
                        recipients: 0,
                        stopped: None,
                    }));
                }
                let mut total = 0;
                for (index, payload) in batch.rest.iter().enumerate() {
                    mailbox
                        .check_payload(payload.len())
                        .map_err(|mut refused| {
                            refused.message = format!(
                                "message {index} of the batch: {}; nothing was sent",
                                refused.message
                            );
                            refused
                        })?;
                    total += payload.len() as u64;
                }
                total
            }
        };
        let count = match &load {
            Load::One(_) => 1,
            Load::Many(batch) => batch.rest.len() as u64,
        };
        if mailbox.held_bytes().saturating_add(held) > self.limits.max_queued_bytes_per_mailbox {
            return Err(error(
                ErrorKind::BrokerFull,
                format!(
                    "{} holds {} payload bytes, its limit (limits.max_queued_bytes_per_mailbox) is {}",
                    mailbox.name(),
                    mailbox.held_bytes(),
                    self.limits.max_queued_bytes_per_mailbox
                ),
            ));
        }
        if let Err(exhausted) = self.budget.try_reserve(peer.uid, privileged, held, count) {
            return Err(error(
                ErrorKind::BrokerFull,
                budget_refusal(&self.budget, exhausted, peer.uid),
            ));
        }
        if let Some(call) = plan.call {
            self.calls.open(call, ticket, plan.place.clone());
        }
        let send = WaitingSend {
            ticket,
            sender: peer,
            load,
            held,
            extra: plan.extra,
        };
        let wait_plan = WaitPlan::new(wait, clock.now);
        let mut ctx = Context {
            out,
            budget: &mut self.budget,
            clock,
            names: &self.names,
        };
        match mailbox.send(send, wait_plan.may_wait, &mut ctx) {
            Ok(Progress::Done) => Ok(None),
            Ok(Progress::Waiting) => {
                self.start_wait(ticket, plan.place, wait_plan, plan.call, mark, clock, out)
            }
            Err(send) => {
                self.budget
                    .release(send.sender.uid, send.held, send.waiting_count());
                if let Some(call) = plan.call {
                    self.calls.close(call);
                }
                let refused = not_now(wait, mailbox.name(), "full");
                send.failed(refused, mailbox.next_sequence()).map(Some)
            }
        }
    }

    /// A receive from `place`, for a caller that may.
    pub(crate) fn receive(
        &mut self,
        peer: Peer,
        place: Place,
        mut receive: WaitingReceive,
        wait: Wait,
        clock: &Clock,
        out: &mut Outcome,
    ) -> Result<Option<Response>, BrokerError> {
        let ticket = receive.ticket;
        // Every receive passes here: the one place that says how long a
        // payload its connection may be handed (files or inline).
        receive.inline_limit = self
            .limits
            .inline_limit(self.accepts_files(ticket.connection));
        let Some(mailbox) = self.places.get_mut(&place) else {
            return Err(match &place {
                Place::Mailbox(name) => missing_mailbox(name),
                _ => error(ErrorKind::Internal, "inbox missing"),
            });
        };
        if let Place::Mailbox(name) = &place {
            allowed(
                mailbox.permissions(),
                &self.connections,
                peer,
                ticket.connection,
                Right::Receive,
                &self.policy,
                name,
            )?;
        }
        if mailbox.settings().policy == DeliveryPolicy::Hash {
            if let (Place::Mailbox(name), Some(state)) =
                (&place, self.connections.get_mut(&ticket.connection))
            {
                if !state.subscriptions.contains(name) {
                    state.subscriptions.push(name.clone());
                }
            }
        }
        // Only broadcast mailboxes cut subscribers: other receives skip the
        // connection lookup.
        if mailbox.is_broadcast() {
            if let (Place::Mailbox(name), Some(state)) =
                (&place, self.connections.get_mut(&ticket.connection))
            {
                if let Some(at) = state.cut_from.iter().position(|cut| cut == name) {
                    state.cut_from.swap_remove(at);
                    return Err(mailbox.slow_consumer_error());
                }
            }
        }
        let plan = WaitPlan::new(wait, clock.now);
        let mark = out.replies.len();
        let mut ctx = Context {
            out,
            budget: &mut self.budget,
            clock,
            names: &self.names,
        };
        let name = mailbox.name().to_owned();
        // Only a receive from one connection ends when it leaves; one from
        // a name waits for whoever holds it next.
        let from = match receive.from {
            Some(Sender::Process(sender)) => Some(sender),
            _ => None,
        };
        match mailbox.receive(receive, plan.may_wait, &mut ctx)? {
            Some(Progress::Done) => Ok(None),
            Some(Progress::Waiting) => {
                if let (Place::Inbox(owner), Some(sender)) = (&place, from) {
                    self.await_sender(*owner, sender);
                }
                self.start_wait(ticket, place, plan, None, mark, clock, out)
            }
            None => Err(not_now(wait, &name, "empty")),
        }
    }
}

/// Why the budget refused a send of `uid`, and what to do about it.
pub(crate) fn budget_refusal(budget: &Budget, exhausted: Exhausted, uid: u32) -> String {
    let limits = budget.limits();
    let usage = budget.usage(uid);
    match exhausted {
        Exhausted::Bytes => format!(
            "the broker holds {} of its {} byte budget ({} of which only root, the admin group and the uid mailboxd runs as may fill, limits.admin_reserve_bytes); receive from some mailboxes or raise limits.memory_budget",
            budget.held(),
            limits.bytes,
            limits.reserved_bytes
        ),
        Exhausted::Messages => format!(
            "the broker holds {} of its {} message limit ({} of which only root, the admin group and the uid mailboxd runs as may fill, limits.admin_reserve_messages); receive from some mailboxes or raise limits.max_queued_messages",
            budget.messages(),
            limits.messages,
            limits.reserved_messages
        ),
        Exhausted::UidBytes => format!(
            "messages sent by uid {uid} hold {} payload bytes in the broker, its share (limits.max_queued_bytes_per_uid) is {}; let receivers take some first",
            usage.bytes, limits.bytes_per_uid
        ),
        Exhausted::UidMessages => format!(
            "uid {uid} has {} messages in the broker, its share (limits.max_queued_messages_per_uid) is {}; let receivers take some first",
            usage.messages, limits.messages_per_uid
        ),
    }
}
