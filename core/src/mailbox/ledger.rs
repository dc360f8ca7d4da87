//! A mailbox's ledger: its sequence numbers and counters, the admission of
//! a waiting send's payload as a stamped message, the hand-over of messages
//! to a receiver, the messages in flight (held by a receiver that settles
//! them itself) with their acknowledgement deadlines, the watches of sends
//! that wait for a later stage, and the retirement of messages to the
//! dead-letter mailbox.
//!
//! It is apart from the lines (the delivery policy's state) so that a pump
//! can borrow both at once. What it deliberately does not do: decide where
//! a message goes or who is served next (the delivery policies do).

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use bytes::Bytes;
use mailbox_proto::{
    BrokerError, DeadLetter, Details, ErrorKind, MailboxSettings, Message, Metadata, Response,
};

use super::queue::TakeFront;
use super::waiters::{Context, Load, SendExtra, Until, WaitingReceive, WaitingSend};
use crate::budget::Budget;
use crate::line::Line;
use crate::types::{ConnectionId, Effect, Peer, Place, Ticket};

#[derive(Debug, Clone, Copy)]
pub(super) struct Watch {
    pub(super) ticket: Ticket,
    pub(super) until: Until,
}

/// A message a manually acknowledging receiver holds.
#[derive(Debug)]
pub(super) struct InFlight {
    pub(super) message: Message,
    pub(super) holder: ConnectionId,
    /// When it goes back unless settled (the mailbox's acknowledgement
    /// timeout); its entry in `More::ack_deadlines`.
    pub(super) deadline: Option<Instant>,
}

/// Counters, the sequence, watches and messages in flight: apart from the
/// lines so both can be borrowed.
#[derive(Debug)]
pub(super) struct Ledger {
    pub(super) place: Place,
    pub(super) next_sequence: u64,
    pub(super) accepted: u64,
    pub(super) delivered: u64,
    pub(super) queued_bytes: u64,
    /// What only mailboxes that use step-3 features need (a time-to-live,
    /// dead letters, senders waiting for a stage, manual acknowledgement);
    /// allocated on first use, so a plain or idle mailbox stays small.
    pub(super) more: Option<Box<More>>,
}

/// What [`Ledger::view`] shows of a mailbox that never needed [`More`].
static NOTHING_MORE: More = More {
    redelivered: 0,
    expired: 0,
    dead_lettered: 0,
    dropped: 0,
    ttl: None,
    max_deliveries: None,
    dead_letter: None,
    watches: BTreeMap::new(),
    watchers: BTreeMap::new(),
    in_flight: BTreeMap::new(),
    in_flight_bytes: 0,
    ack_timeout: None,
    ack_deadlines: BTreeSet::new(),
    armed: None,
    ack_timeouts: 0,
    slow_subscribers_cut: 0,
};

/// The part of a [`Ledger`] that plain mailboxes never need.
#[derive(Debug, Default)]
pub(super) struct More {
    pub(super) redelivered: u64,
    pub(super) expired: u64,
    pub(super) dead_lettered: u64,
    pub(super) dropped: u64,
    pub(super) ttl: Option<Duration>,
    pub(super) max_deliveries: Option<u32>,
    pub(super) dead_letter: Option<String>,
    pub(super) watches: BTreeMap<u64, Watch>,
    /// The sequence number each watching send waits on (so a cancel, a
    /// timeout or a disconnect finds its watch without a search).
    pub(super) watchers: BTreeMap<Ticket, u64>,
    pub(super) in_flight: BTreeMap<u64, InFlight>,
    /// Payload bytes of the messages in flight.
    pub(super) in_flight_bytes: u64,
    /// How long a receiver may hold a message unsettled.
    pub(super) ack_timeout: Option<Duration>,
    /// The deadlines of the messages in flight, earliest first (deadline,
    /// sequence): what `wake` returns is found in O(log n), and a settled
    /// message leaves no trace.
    pub(super) ack_deadlines: BTreeSet<(Instant, u64)>,
    /// The time of the one `Effect::Wake` the core keeps for this mailbox,
    /// if any; it is never later than the earliest acknowledgement
    /// deadline or backlog-full deadline. A wake at another time is stale.
    pub(super) armed: Option<Instant>,
    /// Messages that went back on their acknowledgement deadline.
    pub(super) ack_timeouts: u64,
    /// Subscribers cut off as slow consumers.
    pub(super) slow_subscribers_cut: u64,
}

impl More {
    pub(super) fn watch(&mut self, sequence: u64, watch: Watch) {
        self.watchers.insert(watch.ticket, sequence);
        self.watches.insert(sequence, watch);
    }

    pub(super) fn unwatch(&mut self, sequence: u64) -> Option<Watch> {
        let watch = self.watches.remove(&sequence)?;
        self.watchers.remove(&watch.ticket);
        Some(watch)
    }

    pub(super) fn take_watches(&mut self) -> BTreeMap<u64, Watch> {
        self.watchers.clear();
        std::mem::take(&mut self.watches)
    }
}

impl Ledger {
    /// The ledger of a new mailbox at `place`; [`More`] is allocated at
    /// once when its settings need it.
    pub(super) fn new(place: Place, settings: &MailboxSettings) -> Self {
        Self {
            place,
            next_sequence: 1,
            accepted: 0,
            delivered: 0,
            queued_bytes: 0,
            more: (settings.ttl_millis.is_some()
                || settings.max_deliveries.is_some()
                || settings.dead_letter.is_some()
                || settings.ack_timeout_millis.is_some())
            .then(|| {
                Box::new(More {
                    ttl: settings.ttl_millis.map(Duration::from_millis),
                    max_deliveries: settings.max_deliveries,
                    dead_letter: settings.dead_letter.clone(),
                    ack_timeout: settings.ack_timeout_millis.map(Duration::from_millis),
                    ..More::default()
                })
            }),
        }
    }

    /// The rarely needed part, allocated on first use.
    pub(super) fn more(&mut self) -> &mut More {
        self.more.get_or_insert_with(Box::default)
    }

    /// The rarely needed part, read-only, without allocating it.
    pub(super) fn view(&self) -> &More {
        self.more.as_deref().unwrap_or(&NOTHING_MORE)
    }

    /// Ends the watch on `sequence`, if there is one, without allocating.
    pub(super) fn take_watch(&mut self, sequence: u64) -> Option<Watch> {
        self.more.as_mut()?.unwatch(sequence)
    }

    /// Whether any sender waits for a stage of a message here.
    pub(super) fn has_watches(&self) -> bool {
        self.more
            .as_ref()
            .is_some_and(|more| !more.watches.is_empty())
    }

    /// The mailbox's name, for messages (an inbox says whose it is).
    pub(super) fn name(&self) -> &str {
        match &self.place {
            Place::Mailbox(name) | Place::Name(name) | Place::Opening(name) => name,
            Place::Inbox(_) => "the inbox",
        }
    }

    pub(super) fn hold(&mut self, message: Message, holder: ConnectionId, ctx: &mut Context<'_>) {
        let sequence = message.metadata.sequence;
        let more = self.more();
        more.in_flight_bytes += message.payload.len() as u64;
        let deadline = more
            .ack_timeout
            .and_then(|timeout| ctx.clock.now.checked_add(timeout));
        more.in_flight.insert(
            sequence,
            InFlight {
                message,
                holder,
                deadline,
            },
        );
        if let Some(at) = deadline {
            self.more().ack_deadlines.insert((at, sequence));
            self.arm(at, ctx);
        }
    }

    pub(super) fn unhold(&mut self, sequence: u64) -> Option<InFlight> {
        let more = self.more();
        let held = more.in_flight.remove(&sequence)?;
        more.in_flight_bytes -= held.message.payload.len() as u64;
        if let Some(at) = held.deadline {
            more.ack_deadlines.remove(&(at, sequence));
        }
        Some(held)
    }

    /// Makes sure the mailbox is woken at `at` or before: asks the core for
    /// a wake unless one at or before `at` is pending. Deadlines are set at
    /// `now` plus a fixed time, so they come in order and a mailbox has one
    /// pending wake, not one per message.
    pub(super) fn arm(&mut self, at: Instant, ctx: &mut Context<'_>) {
        let more = self.more();
        if more.armed.is_some_and(|armed| armed <= at) {
            return;
        }
        more.armed = Some(at);
        ctx.out.effects.push(Effect::Wake {
            at,
            place: self.place.clone(),
        });
    }

    /// Admits the payload at the front of the send of `which` (`None`: the
    /// front of the senders' line), answering that send when it is now fully
    /// admitted (or watching it when it waits for a later stage). Returns
    /// the stamped message.
    pub(super) fn admit(
        &mut self,
        senders: &mut Line<WaitingSend>,
        which: Option<Ticket>,
        recipients: u32,
        ctx: &mut Context<'_>,
    ) -> Option<Message> {
        let send = match which {
            None => senders.front_mut()?,
            Some(ticket) => senders.get_mut(ticket)?,
        };
        let sequence = self.next_sequence;
        let payload = match &mut send.load {
            Load::One(_) => {
                let send = match which {
                    None => senders.pop_front()?,
                    Some(ticket) => senders.remove(ticket)?,
                };
                let Load::One(payload) = send.load else {
                    return None;
                };
                match send.extra {
                    None => {
                        ctx.out.reply(
                            send.ticket,
                            Ok(Response::Sent {
                                sequence,
                                recipients,
                            }),
                        );
                        return Some(self.stamp(send.ticket, send.sender, payload, None, ctx));
                    }
                    Some(extra) => {
                        if extra.until == Until::Queued {
                            ctx.out.reply(
                                send.ticket,
                                Ok(Response::Sent {
                                    sequence,
                                    recipients,
                                }),
                            );
                        } else {
                            self.more().watch(
                                sequence,
                                Watch {
                                    ticket: send.ticket,
                                    until: extra.until,
                                },
                            );
                        }
                        return Some(self.stamp(
                            send.ticket,
                            send.sender,
                            payload,
                            Some(&extra),
                            ctx,
                        ));
                    }
                }
            }
            Load::Many(batch) => {
                let payload = batch.rest.pop_front()?;
                if batch.admitted == 0 {
                    batch.first_sequence = sequence;
                }
                batch.admitted += 1;
                batch.recipients = recipients;
                send.held -= payload.len() as u64;
                payload
            }
        };
        let (ticket, sender) = (send.ticket, send.sender);
        if let Load::Many(batch) = &send.load {
            if batch.rest.is_empty() {
                ctx.out.reply(
                    ticket,
                    Ok(Response::SentMany {
                        first_sequence: batch.first_sequence,
                        admitted: batch.admitted,
                        recipients,
                        stopped: None,
                    }),
                );
                match which {
                    None => senders.pop_front(),
                    Some(ticket) => senders.remove(ticket),
                };
            }
        }
        Some(self.stamp(ticket, sender, payload, None, ctx))
    }

    #[inline]
    fn stamp(
        &mut self,
        ticket: Ticket,
        sender: Peer,
        payload: Bytes,
        extra: Option<&SendExtra>,
        ctx: &mut Context<'_>,
    ) -> Message {
        let sequence = self.next_sequence;
        self.next_sequence += 1;
        self.accepted += 1;
        // Plain messages (the hot path) carry no details.
        let details = if extra.is_none() && self.view().ttl.is_none() {
            None
        } else {
            self.details(sequence, extra, ctx)
        };
        Message {
            metadata: Metadata {
                sequence,
                sender_pid: sender.pid,
                sender_uid: sender.uid,
                sender_gid: sender.gid,
                sender_connection: ticket.connection.0,
                accepted_at_unix_nanos: ctx.clock.unix_nanos,
                redeliveries: 0,
                details,
            },
            payload,
        }
    }

    /// The details of message `sequence` sent with `extra`, scheduling its
    /// expiry when it has a time-to-live.
    #[inline(never)]
    fn details(
        &mut self,
        sequence: u64,
        extra: Option<&SendExtra>,
        ctx: &mut Context<'_>,
    ) -> Option<Box<Details>> {
        let ttl = match (self.view().ttl, extra.and_then(|e| e.ttl)) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        let call = match extra.map(|e| e.until) {
            Some(Until::Reply(call)) => Some(call),
            _ => None,
        };
        let key = extra.and_then(|e| e.key.clone());
        let expires_at_unix_nanos = ttl.map(|ttl| {
            ctx.clock
                .unix_nanos
                .saturating_add(ttl.as_nanos().min(u128::from(u64::MAX)) as u64)
        });
        if let Some(at) = ttl.and_then(|ttl| ctx.clock.now.checked_add(ttl)) {
            ctx.out.effects.push(Effect::Expiry {
                at,
                place: self.place.clone(),
                sequence,
            });
        }
        (key.is_some() || call.is_some() || expires_at_unix_nanos.is_some()).then(|| {
            Box::new(Details {
                key,
                call,
                expires_at_unix_nanos,
                dead_letter: None,
            })
        })
    }

    /// Admits up to `room` messages of the waiting senders into the
    /// mailbox's buffer (`keep` puts each where it belongs), counting their
    /// bytes as queued; whether any was admitted.
    #[inline]
    pub(super) fn admit_queued(
        &mut self,
        senders: &mut Line<WaitingSend>,
        room: usize,
        ctx: &mut Context<'_>,
        mut keep: impl FnMut(Message),
    ) -> bool {
        let mut admitted = false;
        for _ in 0..room {
            let Some(message) = self.admit(senders, None, 1, ctx) else {
                break;
            };
            self.queued_bytes += message.payload.len() as u64;
            keep(message);
            admitted = true;
        }
        admitted
    }

    /// Hands the first `take` queued messages of `queue` to `receiver`
    /// (see [`Ledger::hand_over`]); they are no longer counted as queued.
    /// `take` is 0 only when the first message is longer than the
    /// receiver takes inline ([`WaitingReceive::inline_limit`]): the
    /// receive is refused and the message stays first in line.
    #[inline]
    pub(super) fn hand_over_front(
        &mut self,
        receiver: WaitingReceive,
        queue: &mut impl TakeFront,
        take: usize,
        ctx: &mut Context<'_>,
    ) {
        if take == 0 {
            let (sequence, len) = queue.front_sequence_and_len().unwrap_or_default();
            receiver.refuse(Some(sequence), len, ctx.out);
            return;
        }
        let messages = queue.take_front(take);
        let bytes = messages.iter().map(|m| m.payload.len() as u64).sum();
        self.queued_bytes -= bytes;
        self.hand_over(receiver, messages, bytes, ctx);
    }

    /// Gives `messages` (of `bytes` payload bytes) to `receiver`: answers
    /// the senders that waited for it, and either keeps the messages in
    /// flight (manual acknowledgement) or lets them go from the budget.
    pub(super) fn hand_over(
        &mut self,
        receiver: WaitingReceive,
        messages: Vec<Message>,
        bytes: u64,
        ctx: &mut Context<'_>,
    ) {
        let count = messages.len() as u64;
        self.delivered += count;
        let redelivered = messages
            .iter()
            .filter(|m| m.metadata.redeliveries > 0)
            .count() as u64;
        if redelivered > 0 {
            self.more().redelivered += redelivered;
        }
        if self.has_watches() {
            for message in &messages {
                self.on_delivered(message.metadata.sequence, &receiver, ctx);
            }
        }
        if receiver.manual {
            for message in &messages {
                self.hold(message.clone(), receiver.ticket.connection, ctx);
            }
        } else {
            release_all(ctx.budget, &messages, bytes);
        }
        receiver.deliver(messages, ctx.out);
    }

    fn on_delivered(&mut self, sequence: u64, receiver: &WaitingReceive, ctx: &mut Context<'_>) {
        let Some(watch) = self.view().watches.get(&sequence).copied() else {
            return;
        };
        match watch.until {
            Until::Queued => {
                self.more().unwatch(sequence);
            }
            Until::Received => {
                self.more().unwatch(sequence);
                ctx.out.reply(watch.ticket, Ok(sent(sequence)));
            }
            Until::Acknowledged => {
                if !receiver.manual {
                    self.more().unwatch(sequence);
                    ctx.out.reply(watch.ticket, Ok(sent(sequence)));
                }
            }
            Until::Reply(call) => {
                if !receiver.manual {
                    self.more().unwatch(sequence);
                }
                ctx.out.effects.push(Effect::CallDelivered {
                    call,
                    holder: receiver.ticket.connection,
                });
            }
        }
    }

    /// Ends the watch on `sequence`, if any, because the message is gone
    /// without reaching its stage.
    pub(super) fn drop_watch(&mut self, sequence: u64, why: BrokerError, ctx: &mut Context<'_>) {
        if !self.has_watches() {
            return;
        }
        let Some(watch) = self.more().unwatch(sequence) else {
            return;
        };
        match watch.until {
            Until::Reply(call) => ctx.out.effects.push(Effect::CallDropped {
                call,
                why: BrokerError::new(
                    ErrorKind::NoReply,
                    format!("the request was dropped unanswered: {}", why.message),
                ),
            }),
            _ => ctx.out.reply(watch.ticket, Err(why)),
        }
    }

    /// Makes `message`, retired from mailbox `from` for `reason`, one of
    /// this mailbox's: the next sequence number, no redelivery, and in its
    /// details where it comes from (its time-to-live and call are left
    /// behind).
    pub(super) fn adopt_dead_letter(
        &mut self,
        mut message: Message,
        from: &str,
        reason: &'static str,
    ) -> Message {
        let sequence = self.next_sequence;
        self.next_sequence += 1;
        self.accepted += 1;
        let details = message.metadata.details.get_or_insert_with(Box::default);
        details.expires_at_unix_nanos = None;
        details.call = None;
        details.dead_letter = Some(DeadLetter {
            mailbox: from.to_owned(),
            sequence: message.metadata.sequence,
            reason: reason.to_owned(),
        });
        message.metadata.sequence = sequence;
        message.metadata.redeliveries = 0;
        message
    }

    /// Ends every watch with `error` (the mailbox is deleted or the broker
    /// stops): the senders learn it, a call is dropped.
    pub(super) fn fail_watches(&mut self, error: &BrokerError, ctx: &mut Context<'_>) {
        let watches: Vec<(u64, Watch)> = match self.more.as_mut() {
            Some(more) => more.take_watches().into_iter().collect(),
            None => Vec::new(),
        };
        for (_, watch) in watches {
            match watch.until {
                Until::Reply(call) => ctx.out.effects.push(Effect::CallDropped {
                    call,
                    why: error.clone(),
                }),
                _ => ctx.out.reply(watch.ticket, Err(error.clone())),
            }
        }
    }

    /// Lets every message in flight go from the budget and forgets it (the
    /// mailbox is deleted).
    pub(super) fn release_in_flight(&mut self, budget: &mut Budget) {
        let in_flight = match self.more.as_mut() {
            Some(more) => {
                more.in_flight_bytes = 0;
                more.ack_deadlines.clear();
                std::mem::take(&mut more.in_flight)
            }
            None => BTreeMap::new(),
        };
        for held in in_flight.values() {
            release(budget, &held.message);
        }
    }

    /// A message taken out of circulation for `reason`: to the dead-letter
    /// mailbox when there is one (its budget goes with it), else dropped.
    pub(super) fn retire(&mut self, message: Message, reason: &'static str, ctx: &mut Context<'_>) {
        let kind = if reason == EXPIRED {
            ErrorKind::Expired
        } else {
            ErrorKind::DeadLettered
        };
        self.drop_watch(
            message.metadata.sequence,
            BrokerError::new(
                kind,
                format!(
                    "message {} of {} was retired ({reason}) before reaching the stage waited for",
                    message.metadata.sequence,
                    self.name()
                ),
            ),
            ctx,
        );
        match self.view().dead_letter.clone() {
            Some(to) if to != self.name() => {
                self.more().dead_lettered += 1;
                ctx.out.effects.push(Effect::DeadLetter {
                    to,
                    from: self.place.clone(),
                    message,
                    reason,
                });
            }
            _ => {
                self.more().dropped += 1;
                release(ctx.budget, &message);
            }
        }
    }

    /// A message coming back from a receiver: one more redelivery, or
    /// retired when it has had its maximum of deliveries.
    pub(super) fn comes_back(
        &mut self,
        mut message: Message,
        ctx: &mut Context<'_>,
    ) -> Option<Message> {
        message.metadata.redeliveries = message.metadata.redeliveries.saturating_add(1);
        if let Some(Watch {
            until: Until::Reply(call),
            ..
        }) = self.view().watches.get(&message.metadata.sequence)
        {
            ctx.out.effects.push(Effect::CallReturned { call: *call });
        }
        if self
            .view()
            .max_deliveries
            .is_some_and(|max| message.metadata.redeliveries >= max)
        {
            self.retire(message, MAX_DELIVERIES, ctx);
            return None;
        }
        Some(message)
    }
}

pub(super) const EXPIRED: &str = "expired";
pub(super) const MAX_DELIVERIES: &str = "max deliveries";

/// Lets `message` go from the budget, from its sender's share.
pub(super) fn release(budget: &mut Budget, message: &Message) {
    budget.release(message.metadata.sender_uid, message.payload.len() as u64, 1);
}

/// Lets `messages` (of `bytes` payload bytes in all) go from the budget,
/// one release per run of messages of one sender (usually one in all).
pub(super) fn release_all(budget: &mut Budget, messages: &[Message], bytes: u64) {
    let Some(first) = messages.first() else {
        return;
    };
    let uid = first.metadata.sender_uid;
    if messages.iter().all(|m| m.metadata.sender_uid == uid) {
        budget.release(uid, bytes, messages.len() as u64);
        return;
    }
    for message in messages {
        release(budget, message);
    }
}

pub(super) fn sent(sequence: u64) -> Response {
    Response::Sent {
        sequence,
        recipients: 1,
    }
}
