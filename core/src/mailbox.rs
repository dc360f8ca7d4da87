//! One mailbox: its buffer, its waiting senders and receivers, and the rules
//! of its delivery policy. A connection's inbox is a mailbox too.
//!
//! Every operation follows the same shape: put the new sender or receiver at
//! the back of its waiting line, then [`Mailbox::pump`] moves messages as far
//! as the rules allow. Because only the pump moves messages, and it always
//! serves the fronts of the lines, FIFO order and first-come-first-served
//! fairness hold by construction; a non-blocking operation that the pump did
//! not complete is simply taken back off the back of its line.
//!
//! Where each rule lives:
//! - `policy.rs`: the one shape of a delivery policy ([`DeliveryRules`]) and
//!   the enum of their states ([`Lines`]); one file per policy beside it:
//!   `round_robin.rs` (one queue, one line of receivers; also `zero`, the
//!   rendezvous), `priority.rs` (the same queue, receivers ranked),
//!   `broadcast.rs` (a log every subscriber reads with its own cursor; slow
//!   subscribers), `hash.rs` (a shared queue for keyless messages and one
//!   queue per member of the pool for the keys bound to it), `inbox.rs`
//!   (one queue; a receive may ask for one sender only). Each states its
//!   own invariants.
//! - `ledger.rs`: sequence numbers and counters, admission and hand-over,
//!   messages in flight and their deadlines, watches, retirement.
//! - `waiters.rs`: waiting sends and receives, and [`Context`].
//! - `batch.rs`: how many messages one batch answer carries.
//! - `invariants.rs`: `check_invariants` and what the core's tests read.
//!
//! Invariants of every mailbox (checked by `check_invariants` in tests):
//! - sequence numbers are assigned at admission, so they increase along
//!   every queue; a message that comes back (nack, holder left) keeps its
//!   number, and one withdrawn or expired leaves a gap.
//! - a message handed to a receiver that acknowledges manually stays in
//!   `in_flight` (and in the budget) until it is settled or comes back; with
//!   an acknowledgement timeout its deadline is in `ack_deadlines` exactly
//!   as long.
//! - a mailbox with a deadline (acknowledgement, backlog full) has a wake
//!   pending no later than the earliest one (`More::armed`).

use std::time::Instant;

use mailbox_proto::{
    BrokerError, Capacity, ErrorKind, MailboxInfo, MailboxSettings, Message, Response, Verdict,
    MAX_PEEK_MESSAGES,
};

use crate::access::Permissions;
use crate::line::Line;
use crate::types::{ConnectionId, Place, Ticket};

mod batch;
mod broadcast;
mod hash;
mod inbox;
#[cfg(test)]
mod invariants;
mod ledger;
mod own_lines;
mod policy;
mod priority;
mod queue;
mod round_robin;
mod turns;
mod waiters;

use ledger::{release, release_all, sent, Ledger};
use policy::{room, DeliveryRules, Lines, Unsubscribed};
pub(crate) use waiters::{
    Batch, Context, Load, Progress, SendExtra, Sender, Until, WaitingReceive, WaitingSend,
    Withdrawn,
};

/// A named mailbox, or a connection's inbox.
#[derive(Debug)]
pub(crate) struct Mailbox {
    settings: MailboxSettings,
    permissions: Permissions,
    ledger: Ledger,
    senders: Line<WaitingSend>,
    lines: Lines,
}

fn deleted(name: &str) -> BrokerError {
    BrokerError::new(
        ErrorKind::MailboxDeleted,
        format!("mailbox {name} was deleted while this operation waited"),
    )
}

impl Mailbox {
    /// A named mailbox.
    pub fn new(name: String, settings: MailboxSettings, permissions: Permissions) -> Self {
        let lines = Lines::new(settings.policy);
        Self::with_lines(Place::Mailbox(name), settings, permissions, lines)
    }

    /// The inbox of `owner`; `permissions` say who may send to it (its
    /// owner alone receives from it).
    pub fn inbox(owner: ConnectionId, capacity: Capacity, permissions: Permissions) -> Self {
        let settings = MailboxSettings {
            capacity,
            max_message_size: mailbox_proto::MAX_MESSAGE_SIZE_LIMIT,
            ..MailboxSettings::default()
        };
        let lines = Lines::Inbox(Box::default());
        Self::with_lines(Place::Inbox(owner), settings, permissions, lines)
    }

    fn with_lines(
        place: Place,
        settings: MailboxSettings,
        permissions: Permissions,
        lines: Lines,
    ) -> Self {
        Self {
            permissions,
            ledger: Ledger::new(place, &settings),
            settings,
            senders: Line::default(),
            lines,
        }
    }

    pub fn settings(&self) -> &MailboxSettings {
        &self.settings
    }

    pub fn permissions(&self) -> &Permissions {
        &self.permissions
    }

    pub fn set_permissions(&mut self, permissions: Permissions) {
        self.permissions = permissions;
    }

    /// Payload bytes held in the mailbox: queued and in flight.
    pub fn held_bytes(&self) -> u64 {
        self.ledger.queued_bytes + self.ledger.view().in_flight_bytes
    }

    pub fn name(&self) -> &str {
        self.ledger.name()
    }

    pub fn is_broadcast(&self) -> bool {
        matches!(self.lines, Lines::Broadcast(_))
    }

    /// Changes an inbox's capacity; what it holds stays.
    pub fn set_capacity(&mut self, capacity: Capacity, ctx: &mut Context<'_>) {
        self.settings.capacity = capacity;
        self.pump(ctx);
    }

    /// The sequence number the next admitted message will get.
    pub fn next_sequence(&self) -> u64 {
        self.ledger.next_sequence
    }

    /// Checks a memory-file payload against the size rules: the broker's
    /// `limits.max_file_size` (`max_file_size`, never above
    /// [`mailbox_proto::memfile::MAX_FILE_PAYLOAD`]) in place of the
    /// mailbox's `max_message_size` (whose ceiling is the frame limit,
    /// which files do not pass through), and the fixed size if any.
    /// Receivers that take bytes inline are protected where messages are
    /// handed over (`WaitingReceive::inline_limit`), not here.
    pub fn check_file_payload(&self, len: usize, max_file_size: u64) -> Result<(), BrokerError> {
        let limit = mailbox_proto::memfile::MAX_FILE_PAYLOAD.min(max_file_size);
        if len as u64 > limit {
            return Err(BrokerError::new(
                ErrorKind::MessageTooLarge,
                format!(
                    "memory file of {len} bytes is above the limit of {limit} bytes \
                     (the broker's limits.max_file_size)"
                ),
            ));
        }
        self.check_fixed_size(len)
    }

    /// Checks a payload against the size rules; nothing changes.
    pub fn check_payload(&self, len: usize) -> Result<(), BrokerError> {
        if len > self.settings.max_message_size as usize {
            return Err(BrokerError::new(
                ErrorKind::MessageTooLarge,
                format!(
                    "message of {len} bytes is above {}'s limit of {} bytes",
                    self.ledger.name(),
                    self.settings.max_message_size
                ),
            ));
        }
        self.check_fixed_size(len)
    }

    /// A fixed-size mailbox takes payloads of exactly that size.
    fn check_fixed_size(&self, len: usize) -> Result<(), BrokerError> {
        match self.settings.fixed_size {
            Some(fixed) if len != fixed as usize => Err(BrokerError::new(
                ErrorKind::WrongMessageSize,
                format!(
                    "message of {len} bytes, but mailbox {} takes exactly {fixed} bytes",
                    self.ledger.name()
                ),
            )),
            _ => Ok(()),
        }
    }

    /// Adds a send at the back of the senders' line and pumps. When `may_wait`
    /// is false and it was not (completely) admitted, it is taken back and
    /// returned; the caller answers it and releases what it still holds.
    /// A send that waits for a later stage than `queued` counts as waiting
    /// until it is answered.
    pub fn send(
        &mut self,
        send: WaitingSend,
        may_wait: bool,
        ctx: &mut Context<'_>,
    ) -> Result<Progress, WaitingSend> {
        let ticket = send.ticket;
        let watched = send.until() != Until::Queued;
        let mark = ctx.out.replies.len();
        self.senders.push_back(send);
        self.pump(ctx);
        if self.senders.back().map(|s| s.ticket) != Some(ticket) {
            let answered = ctx.out.replies[mark..].iter().any(|r| r.ticket == ticket);
            if watched && !answered {
                return Ok(Progress::Waiting);
            }
            return Ok(Progress::Done);
        }
        if may_wait {
            return Ok(Progress::Waiting);
        }
        match self.senders.pop_back() {
            Some(send) => Err(send),
            None => Ok(Progress::Done),
        }
    }

    /// Adds a receive at the back of the receivers' line (for broadcast: the
    /// subscriber's line; for priority: behind those of equal or higher
    /// priority) and pumps. When `may_wait` is false and it was not served,
    /// it is taken back and `Ok(None)` is returned.
    pub fn receive(
        &mut self,
        receive: WaitingReceive,
        may_wait: bool,
        ctx: &mut Context<'_>,
    ) -> Result<Option<Progress>, BrokerError> {
        let ticket = receive.ticket;
        self.lines.add_receive(receive, &self.ledger)?;
        self.pump(ctx);
        if !self.lines.has_receive(ticket) {
            return Ok(Some(Progress::Done));
        }
        if may_wait {
            return Ok(Some(Progress::Waiting));
        }
        self.lines.remove_receive(ticket);
        Ok(None)
    }

    /// Takes a waiting send or receive out of its line without answering it;
    /// a send's unadmitted payloads are released from the budget. A send
    /// admitted but waiting for its stage loses its watch, and its message
    /// when that is still queued.
    pub fn withdraw(
        &mut self,
        ticket: Ticket,
        drop_queued: bool,
        ctx: &mut Context<'_>,
    ) -> Option<Withdrawn> {
        let withdrawn = if let Some(send) = self.senders.remove(ticket) {
            ctx.budget
                .release(send.sender.uid, send.held, send.waiting_count());
            Some(Withdrawn::Send(send))
        } else if self.lines.remove_receive(ticket) {
            // A receive that leaves makes nothing deliverable (every rule
            // serves waiting receives; none waits for another to go), so
            // there is nothing to pump: a cancel costs what its line does.
            return Some(Withdrawn::Receive);
        } else {
            self.unwatch(ticket, drop_queued, ctx)
        };
        // A withdrawn sender at the head may have been what held others back.
        self.pump(ctx);
        withdrawn
    }

    /// Forgets the watch of `ticket`; its message goes too when still queued
    /// and `drop_queued`.
    pub fn unwatch(
        &mut self,
        ticket: Ticket,
        drop_queued: bool,
        ctx: &mut Context<'_>,
    ) -> Option<Withdrawn> {
        let sequence = *self.ledger.view().watchers.get(&ticket)?;
        self.ledger.more().unwatch(sequence);
        if self.ledger.view().in_flight.contains_key(&sequence) || !drop_queued {
            return Some(Withdrawn::InFlight);
        }
        match self.lines.dequeue(sequence, &mut self.ledger) {
            Some(message) => {
                self.ledger.more().dropped += 1;
                release(ctx.budget, &message);
                Some(Withdrawn::Queued)
            }
            None => Some(Withdrawn::InFlight),
        }
    }

    /// Retires the message `sequence` when its time-to-live has run out and
    /// it is still queued; a message in flight or delivered is left alone.
    pub fn expire(&mut self, sequence: u64, ctx: &mut Context<'_>) {
        if self.lines.expire(sequence, &mut self.ledger, ctx) {
            self.pump(ctx);
        }
    }

    /// Settles a message `holder` received with manual acknowledgement
    /// (when `redeliveries` is given: only that delivery of it).
    pub fn settle(
        &mut self,
        holder: ConnectionId,
        sequence: u64,
        redeliveries: Option<u32>,
        verdict: Verdict,
        ctx: &mut Context<'_>,
    ) -> Result<(), BrokerError> {
        match self.ledger.view().in_flight.get(&sequence) {
            Some(held)
                if held.holder == holder
                    && redeliveries.is_some_and(|r| r != held.message.metadata.redeliveries) =>
            {
                return Err(BrokerError::new(
                    ErrorKind::NotHeld,
                    format!(
                        "the delivery of message {sequence} of {} being settled (redelivery {}) came back (its acknowledgement timeout passed); this connection holds it again as redelivery {}, settle that one",
                        self.ledger.name(),
                        redeliveries.unwrap_or_default(),
                        held.message.metadata.redeliveries
                    ),
                ))
            }
            Some(held) if held.holder == holder => {}
            _ => {
                return Err(BrokerError::new(
                    ErrorKind::NotHeld,
                    format!(
                        "this connection holds no message {sequence} of {}; it was settled already, came back (nacked, its holder left, or its acknowledgement timeout passed), or was never received with manual acknowledgement",
                        self.ledger.name()
                    ),
                ))
            }
        }
        let Some(held) = self.ledger.unhold(sequence) else {
            return Ok(());
        };
        match verdict {
            Verdict::Ack => {
                release(ctx.budget, &held.message);
                if let Some(watch) = self.ledger.more().unwatch(sequence) {
                    if watch.until == Until::Acknowledged {
                        ctx.out.reply(watch.ticket, Ok(sent(sequence)));
                    }
                }
            }
            Verdict::Nack { to_tail } => {
                if let Some(message) = self.ledger.comes_back(held.message, ctx) {
                    self.lines.requeue(message, to_tail, &mut self.ledger);
                }
                self.pump(ctx);
            }
        }
        Ok(())
    }

    /// Every message `holder` held goes back to the head of the mailbox, in
    /// order (the holder left).
    pub fn return_held(&mut self, holder: ConnectionId, ctx: &mut Context<'_>) {
        let held: Vec<u64> = self
            .ledger
            .view()
            .in_flight
            .iter()
            .filter(|(_, held)| held.holder == holder)
            .map(|(sequence, _)| *sequence)
            .collect();
        if held.is_empty() {
            return;
        }
        // Newest first onto the head, so the oldest ends up in front.
        for sequence in held.into_iter().rev() {
            if let Some(held) = self.ledger.unhold(sequence) {
                if let Some(message) = self.ledger.comes_back(held.message, ctx) {
                    self.lines.requeue(message, false, &mut self.ledger);
                }
            }
        }
        self.pump(ctx);
    }

    /// Takes a message retired from another mailbox, restamped with this
    /// mailbox's next sequence number, when there is room (or a receiver
    /// waiting on `zero`). Gives it back otherwise.
    pub fn take_dead_letter(
        &mut self,
        message: Message,
        from: &str,
        reason: &'static str,
        ctx: &mut Context<'_>,
    ) -> Result<(), Message> {
        let queued = self.lines.queued_count();
        let has_room = match self.settings.capacity {
            Capacity::Zero => self.lines.waiting_receivers() > 0,
            capacity => room(capacity, queued) > 0,
        };
        if !has_room || self.check_payload(message.payload.len()).is_err() {
            return Err(message);
        }
        let message = self.ledger.adopt_dead_letter(message, from, reason);
        self.lines.take_dead_letter(message, &mut self.ledger, ctx);
        self.pump(ctx);
        Ok(())
    }

    /// Counts a dead letter this mailbox sent that could not be taken.
    pub fn dead_letter_refused(&mut self) {
        self.ledger.more().dead_lettered -= 1;
        self.ledger.more().dropped += 1;
    }

    /// Subscribes `connection` from the next message on (broadcast), or adds
    /// it to the pool (hash). Returns false when it was there already.
    pub fn subscribe(&mut self, connection: ConnectionId) -> Result<bool, BrokerError> {
        match self.lines.subscribe(connection, self.ledger.next_sequence) {
            Some(new) => Ok(new),
            None => Err(BrokerError::new(
                ErrorKind::NotBroadcast,
                format!(
                    "mailbox {} is {}; receive from it without subscribing",
                    self.ledger.name(),
                    self.settings.policy
                ),
            )),
        }
    }

    /// Ends the subscription (broadcast) or pool membership (hash) of
    /// `connection`, releasing its unread backlog (broadcast) or moving its
    /// keys and messages to the other members (hash). Its waiting receives
    /// are answered with `NotSubscribed` when `answer_waiters` (an explicit
    /// unsubscribe), or dropped silently (the connection is gone).
    pub fn unsubscribe(
        &mut self,
        connection: ConnectionId,
        answer_waiters: bool,
        ctx: &mut Context<'_>,
    ) -> Result<(), BrokerError> {
        let not_subscribed = || {
            BrokerError::new(
                ErrorKind::NotSubscribed,
                format!(
                    "this connection is not subscribed to {}",
                    self.ledger.name()
                ),
            )
        };
        let mut waiting = match self
            .lines
            .unsubscribe(connection, self.ledger.next_sequence)
        {
            Unsubscribed::Left(waiting) => waiting,
            Unsubscribed::NotSubscribed => return Err(not_subscribed()),
            Unsubscribed::NoSubscribers => {
                return Err(BrokerError::new(
                    ErrorKind::NotBroadcast,
                    format!(
                        "mailbox {} is {}; it has no subscribers",
                        self.ledger.name(),
                        self.settings.policy
                    ),
                ))
            }
        };
        if answer_waiters {
            for receive in waiting.drain() {
                ctx.out.reply(
                    receive.ticket,
                    Err(BrokerError::new(
                        ErrorKind::NotSubscribed,
                        format!(
                            "the subscription to {} ended while waiting",
                            self.ledger.name()
                        ),
                    )),
                );
            }
        }
        self.pump(ctx);
        Ok(())
    }

    /// Answers every waiting operation with `MailboxDeleted` (or `error`)
    /// and releases everything the mailbox held.
    pub fn delete(mut self, error: Option<BrokerError>, ctx: &mut Context<'_>) {
        let error = error.unwrap_or_else(|| deleted(self.ledger.name()));
        self.fail_all_waiters(&error, ctx);
        let watched: Vec<u64> = self.ledger.view().watches.keys().copied().collect();
        for sequence in watched {
            self.ledger.drop_watch(sequence, error.clone(), ctx);
        }
        self.ledger.release_in_flight(ctx.budget);
        for charge in self.lines.queued_charges() {
            ctx.budget
                .release(charge.uid, charge.bytes, charge.messages);
        }
    }

    /// Answers every waiting operation with `error` and forgets them.
    pub fn fail_all_waiters(&mut self, error: &BrokerError, ctx: &mut Context<'_>) {
        let next_sequence = self.ledger.next_sequence;
        for send in self.senders.drain() {
            ctx.budget
                .release(send.sender.uid, send.held, send.waiting_count());
            ctx.out
                .reply(send.ticket, send.failed(error.clone(), next_sequence));
        }
        let waiting = self.lines.drain_receives();
        for receive in waiting {
            ctx.out.reply(receive.ticket, Err(error.clone()));
        }
        self.ledger.fail_watches(error, ctx);
    }

    /// Fails the waiting receives on this inbox that take only from
    /// `sender`, who is gone and can send nothing more.
    pub fn sender_left(&mut self, sender: ConnectionId, ctx: &mut Context<'_>) {
        let Lines::Inbox(inbox) = &mut self.lines else {
            return;
        };
        let process = Sender::Process(sender);
        if inbox.has_from(&process) {
            // What it sent is still queued: its receives take that first.
            return;
        }
        for receive in inbox.take_receives_from(&process) {
            ctx.out.reply(
                receive.ticket,
                Err(BrokerError::new(
                    ErrorKind::NoSuchProcess,
                    format!("process {} left without sending more", sender.0),
                )),
            );
        }
    }

    /// How many messages an inbox keeps the names of their senders for.
    #[cfg(test)]
    pub fn names_kept(&self) -> usize {
        match &self.lines {
            Lines::Inbox(inbox) => inbox.names_kept(),
            _ => 0,
        }
    }

    /// Whether a message from `sender` is queued here (inboxes).
    pub fn has_message_from(&self, sender: ConnectionId) -> bool {
        match &self.lines {
            Lines::Inbox(inbox) => inbox.has_from(&Sender::Process(sender)),
            _ => false,
        }
    }

    /// A snapshot for `info` and `list`.
    pub fn info(&self) -> MailboxInfo {
        let subscribers = self.lines.subscriber_count();
        MailboxInfo {
            name: self.ledger.name().to_owned(),
            settings: self.settings.clone(),
            queued_messages: self.lines.queued_count() as u64,
            queued_bytes: self.ledger.queued_bytes,
            waiting_senders: self.senders.len() as u32,
            waiting_receivers: self.lines.waiting_receivers() as u32,
            subscribers: subscribers as u32,
            messages_accepted: self.ledger.accepted,
            messages_delivered: self.ledger.delivered,
            in_flight: self.ledger.view().in_flight.len() as u64,
            messages_redelivered: self.ledger.view().redelivered,
            messages_expired: self.ledger.view().expired,
            messages_dead_lettered: self.ledger.view().dead_lettered,
            messages_dropped: self.ledger.view().dropped,
            owner_uid: self.permissions.owner,
            group_gid: self.permissions.group,
            mode: self.permissions.mode,
            ack_timeouts: self.ledger.view().ack_timeouts,
            slow_subscribers_cut: self.ledger.view().slow_subscribers_cut,
        }
    }

    /// A page of `Peek` for `viewer`: the queued messages after `after` in
    /// the order receivers would get them, at most `max` (capped at
    /// `MAX_PEEK_MESSAGES`) and what fits a frame. Changes nothing.
    pub fn peek(&self, viewer: ConnectionId, after: Option<u64>, max: u32) -> Response {
        let limit = max.clamp(1, MAX_PEEK_MESSAGES) as usize;
        let (messages, more) = self.lines.peek(viewer, after, limit, &self.ledger);
        let next = messages
            .last()
            .filter(|_| more)
            .map(|m| m.metadata.sequence);
        Response::Peeked {
            messages,
            next,
            in_flight: self.ledger.view().in_flight.len() as u64,
        }
    }

    /// Discards every queued message (not those in flight); senders waiting
    /// for their stage learn `Purged`. Returns how many were discarded.
    pub fn purge(&mut self, ctx: &mut Context<'_>) -> u64 {
        let next = self.ledger.next_sequence;
        let discarded = self.lines.drain_queued(next);
        let count = discarded.len() as u64;
        let bytes: u64 = discarded.iter().map(|m| m.payload.len() as u64).sum();
        self.ledger.queued_bytes -= bytes;
        if count > 0 {
            self.ledger.more().dropped += count;
        }
        release_all(ctx.budget, &discarded, bytes);
        if self.ledger.has_watches() {
            for message in &discarded {
                self.ledger.drop_watch(
                    message.metadata.sequence,
                    BrokerError::new(
                        ErrorKind::Purged,
                        format!(
                            "{} was purged before the message reached its stage",
                            self.ledger.name()
                        ),
                    ),
                    ctx,
                );
            }
        }
        self.pump(ctx);
        count
    }

    /// Moves messages as far as the rules of the mailbox's delivery policy
    /// allow, until nothing moves (see [`DeliveryRules::pump`]).
    fn pump(&mut self, ctx: &mut Context<'_>) {
        self.lines
            .pump(&self.settings, &mut self.ledger, &mut self.senders, ctx);
    }

    /// The time this mailbox asked to be woken at (see `Ledger::arm`) has
    /// come: messages held past their acknowledgement deadline go back,
    /// subscribers whose backlog stayed full too long are cut off, and the
    /// next wake is asked for. A wake at another time than the one pending
    /// is stale (what it was for was settled, or an earlier mailbox of the
    /// same name asked for it) and does nothing.
    pub fn wake(&mut self, at: Instant, ctx: &mut Context<'_>) {
        if self.ledger.view().armed != Some(at) {
            return;
        }
        self.ledger.more().armed = None;
        self.return_overdue(ctx);
        self.lines.on_wake(&self.settings, &mut self.ledger, ctx);
        self.pump(ctx);
        let next_ack = self.ledger.view().ack_deadlines.first().map(|(at, _)| *at);
        let next = match (next_ack, self.lines.next_wake(&self.settings)) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        if let Some(at) = next {
            self.ledger.arm(at, ctx);
        }
    }

    /// Every message held past its acknowledgement deadline goes back to
    /// the head, in order, with one redelivery more (or is retired at its
    /// maximum of deliveries), as if its holder had left. The holder's late
    /// settle then fails with `NotHeld`; a sender waiting for the
    /// `acknowledged` stage keeps waiting for the redelivered copy.
    fn return_overdue(&mut self, ctx: &mut Context<'_>) {
        let now = ctx.clock.now;
        let mut due: Vec<u64> = self
            .ledger
            .view()
            .ack_deadlines
            .iter()
            .take_while(|(at, _)| *at <= now)
            .map(|(_, sequence)| *sequence)
            .collect();
        if due.is_empty() {
            return;
        }
        due.sort_unstable();
        // Newest first onto the head, so the oldest ends up in front.
        for sequence in due.into_iter().rev() {
            if let Some(held) = self.ledger.unhold(sequence) {
                self.ledger.more().ack_timeouts += 1;
                if let Some(message) = self.ledger.comes_back(held.message, ctx) {
                    self.lines.requeue(message, false, &mut self.ledger);
                }
            }
        }
    }

    /// What a subscriber cut off as a slow consumer learns.
    pub fn slow_consumer_error(&self) -> BrokerError {
        broadcast::slow_consumer_error(self.ledger.name(), &self.settings)
    }
}
