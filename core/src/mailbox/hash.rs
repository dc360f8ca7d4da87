//! Hash: messages with the same key go to the same member of the pool, in
//! order; keyless messages go to the waiting members in turn. A new key is
//! bound to the member with the fewest keys; when a member leaves, its keys
//! and queued messages move to the others, in order.
//!
//! Invariants: a member waits only while its own queue is empty; a key is
//! bound to at most one member, and its queued messages are all in that
//! member's queue (or in the shared queue while there are no members).

use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet, BinaryHeap, HashMap, VecDeque};

use mailbox_proto::{BrokerError, Capacity, MailboxSettings, Message};

use super::batch::{batch_len, page};
use super::ledger::Ledger;
use super::own_lines;
use super::policy::{room, Charge, DeliveryRules, Unsubscribed};
use super::waiters::{Context, WaitingReceive, WaitingSend};
use crate::line::{step, Line};
use crate::types::{ConnectionId, Ticket};

/// A member of a hash mailbox's pool.
#[derive(Debug, Default)]
struct Member {
    /// Messages whose keys are bound to it.
    queue: VecDeque<Message>,
    waiting: Line<WaitingReceive>,
    /// How many keys are bound to it.
    keys: u64,
    /// Its turn for the next shared message (lower first).
    turn: u64,
}

/// The lines of a hash mailbox. Besides the members, three ordered sets say
/// who is next for what, so that no operation passes over every member:
/// `waiting_turns` (who gets the next shared message), `ready` (who has
/// both messages of its own and a receive waiting: the only members the
/// pump serves their own queue) and `by_load` (who gets the next new key).
#[derive(Debug, Default)]
pub(super) struct HashLines {
    /// Keyless messages (and keyed ones while the pool is empty).
    shared: VecDeque<Message>,
    /// How many of `shared` have a key (they wait for a member).
    keyed_shared: usize,
    members: BTreeMap<ConnectionId, Member>,
    /// Members with a receive waiting, by turn.
    waiting_turns: BTreeSet<(u64, ConnectionId)>,
    /// Members with a receive waiting and messages of their own queued.
    ready: BTreeSet<ConnectionId>,
    /// Members by how many keys are bound to them, then address.
    by_load: BTreeSet<(u64, ConnectionId)>,
    /// The turn a member gets when it joins or has just been served.
    next_turn: u64,
    keys: HashMap<String, ConnectionId>,
    /// Messages in all queues.
    queued: usize,
    /// Some queue is out of sequence order (a message came back out of
    /// order, or a leaving member's messages moved behind another's): until
    /// every queue empties, a peek takes a pass instead of a merge.
    unsorted: bool,
}

impl HashLines {
    /// Adds a receive of member `id` (who joins first if need be).
    fn add_waiting(&mut self, id: ConnectionId, receive: WaitingReceive) {
        self.join(id);
        let Some(member) = self.members.get_mut(&id) else {
            return;
        };
        member.waiting.push_back(receive);
        self.waiting_turns.insert((member.turn, id));
        if !member.queue.is_empty() {
            self.ready.insert(id);
        }
    }

    /// Takes the receive of `ticket` out of its member's line.
    fn remove_waiting(&mut self, ticket: Ticket) -> bool {
        let id = ticket.connection;
        let Some(member) = self.members.get_mut(&id) else {
            return false;
        };
        let removed = member.waiting.remove(ticket).is_some();
        if member.waiting.is_empty() {
            self.waiting_turns.remove(&(member.turn, id));
            self.ready.remove(&id);
        }
        removed
    }

    /// The next receive of member `id`; `rotate` sends it to the back of
    /// the turns (it takes a shared message).
    fn pop_waiting(&mut self, id: ConnectionId, rotate: bool) -> Option<WaitingReceive> {
        let member = self.members.get_mut(&id)?;
        let receive = member.waiting.pop_front()?;
        self.waiting_turns.remove(&(member.turn, id));
        if rotate {
            member.turn = self.next_turn;
            self.next_turn += 1;
        }
        if member.waiting.is_empty() {
            self.ready.remove(&id);
        } else {
            self.waiting_turns.insert((member.turn, id));
        }
        Some(receive)
    }

    /// Puts a message where its key says: the queue of the member the key
    /// is bound to (binding it to the member with the fewest keys, then the
    /// lowest address, when it is new), or the shared queue.
    fn route(&mut self, message: Message, front: bool) {
        if self.queued == 0 {
            self.unsorted = false;
        }
        self.queued += 1;
        let owner = match message.metadata.key() {
            None => None,
            Some(key) => match self.keys.get(key) {
                Some(owner) => Some(*owner),
                None => {
                    let chosen = self.by_load.pop_first();
                    if let Some((keys, owner)) = chosen {
                        self.keys.insert(key.to_owned(), owner);
                        self.by_load.insert((keys + 1, owner));
                        if let Some(member) = self.members.get_mut(&owner) {
                            member.keys += 1;
                        }
                    }
                    chosen.map(|(_, owner)| owner)
                }
            },
        };
        let queue = match owner.and_then(|owner| Some((owner, self.members.get_mut(&owner)?))) {
            Some((owner, member)) => {
                if !member.waiting.is_empty() {
                    self.ready.insert(owner);
                }
                &mut member.queue
            }
            None => {
                if message.metadata.key().is_some() {
                    self.keyed_shared += 1;
                }
                &mut self.shared
            }
        };
        let sequence = message.metadata.sequence;
        if front {
            self.unsorted |= queue
                .front()
                .is_some_and(|m| m.metadata.sequence < sequence);
            queue.push_front(message);
        } else {
            self.unsorted |= queue.back().is_some_and(|m| m.metadata.sequence > sequence);
            queue.push_back(message);
        }
    }

    /// Every queued message: the shared queue's, then each member's.
    fn queued_messages(&self) -> impl Iterator<Item = &Message> {
        self.shared
            .iter()
            .chain(self.members.values().flat_map(|m| m.queue.iter()))
    }

    /// Every queue (the shared one first), for a peek.
    fn queues(&self) -> impl Iterator<Item = &VecDeque<Message>> {
        std::iter::once(&self.shared).chain(self.members.values().map(|m| &m.queue))
    }

    /// Whether a message with `key` would go to a member that waits now.
    fn ready_for(&self, key: Option<&str>) -> bool {
        let waits = |id: &ConnectionId| {
            self.members
                .get(id)
                .is_some_and(|member| !member.waiting.is_empty())
        };
        match key {
            None => !self.waiting_turns.is_empty(),
            Some(key) => match self.keys.get(key) {
                Some(owner) => waits(owner),
                None => self.by_load.first().is_some_and(|(_, id)| waits(id)),
            },
        }
    }

    /// Adds `connection` to the pool; keyed messages that waited for a pool
    /// get their keys bound now, in order.
    fn join(&mut self, connection: ConnectionId) {
        if self.members.contains_key(&connection) {
            return;
        }
        self.members.insert(
            connection,
            Member {
                turn: self.next_turn,
                ..Member::default()
            },
        );
        self.next_turn += 1;
        self.by_load.insert((0, connection));
        if self.keyed_shared > 0 {
            let shared = std::mem::take(&mut self.shared);
            self.keyed_shared = 0;
            self.queued -= shared.len();
            for message in shared {
                self.route(message, false);
            }
        }
    }

    /// Removes `connection` from the pool: its keys move to the others with
    /// its queued messages, in order. Returns its waiting receives.
    fn leave(&mut self, connection: ConnectionId) -> Option<Line<WaitingReceive>> {
        let member = self.members.remove(&connection)?;
        self.waiting_turns.remove(&(member.turn, connection));
        self.ready.remove(&connection);
        self.by_load.remove(&(member.keys, connection));
        if member.keys > 0 {
            self.keys.retain(|_, owner| *owner != connection);
        }
        self.queued -= member.queue.len();
        for message in member.queue {
            self.route(message, false);
        }
        Some(member.waiting)
    }
}

impl DeliveryRules for HashLines {
    fn add_receive(&mut self, receive: WaitingReceive, _: &Ledger) -> Result<(), BrokerError> {
        self.add_waiting(receive.ticket.connection, receive);
        Ok(())
    }

    fn has_receive(&self, ticket: Ticket) -> bool {
        own_lines::has_receive(&self.members, |member| &member.waiting, ticket)
    }

    fn remove_receive(&mut self, ticket: Ticket) -> bool {
        self.remove_waiting(ticket)
    }

    fn pump(
        &mut self,
        settings: &MailboxSettings,
        ledger: &mut Ledger,
        senders: &mut Line<WaitingSend>,
        ctx: &mut Context<'_>,
    ) {
        let capacity = settings.capacity;
        loop {
            let space = room(capacity, self.queued);
            let mut moved = ledger.admit_queued(senders, space, ctx, |m| self.route(m, false));
            // Members first take what is bound to them (only the ready ones
            // have both a receive and messages).
            while let Some(id) = self.ready.pop_first() {
                step(1);
                while self.members.get(&id).is_some_and(|m| !m.queue.is_empty()) {
                    let Some(receiver) = self.pop_waiting(id, false) else {
                        break;
                    };
                    let Some(member) = self.members.get_mut(&id) else {
                        break;
                    };
                    let lens = member.queue.iter().map(|m| m.payload.len());
                    let take = batch_len(&receiver, lens);
                    ledger.hand_over_front(receiver, &mut member.queue, take, ctx);
                    self.queued -= take;
                    moved = true;
                }
                self.ready.remove(&id);
            }
            // Shared messages go to waiting members in turn.
            while !self.shared.is_empty() {
                if self
                    .shared
                    .front()
                    .is_some_and(|m| m.metadata.key().is_some())
                {
                    // Keyed messages are shared only while the pool is
                    // empty, and a waiting member means it is not.
                    break;
                }
                let Some(&(_, id)) = self.waiting_turns.first() else {
                    break;
                };
                step(1);
                let Some(receiver) = self.pop_waiting(id, true) else {
                    break;
                };
                let keyless = self
                    .shared
                    .iter()
                    .take_while(|m| m.metadata.key().is_none())
                    .map(|m| m.payload.len());
                let take = batch_len(&receiver, keyless);
                ledger.hand_over_front(receiver, &mut self.shared, take, ctx);
                self.queued -= take;
                moved = true;
            }
            if capacity == Capacity::Zero {
                // Rendezvous: the front send is admitted only when the
                // member it would go to waits, and the next round hands it
                // over.
                let key = senders
                    .front()
                    .map(|send| send.extra.as_ref().and_then(|e| e.key.as_deref()));
                if key.is_some_and(|key| self.ready_for(key)) {
                    if let Some(message) = ledger.admit(senders, None, 1, ctx) {
                        ledger.queued_bytes += message.payload.len() as u64;
                        self.route(message, false);
                        moved = true;
                    }
                }
            }
            if !moved {
                break;
            }
        }
    }

    fn take_queued(&mut self, sequence: u64) -> Option<Message> {
        let found = |queue: &mut VecDeque<Message>| {
            let index = queue.iter().position(|m| m.metadata.sequence == sequence)?;
            queue.remove(index)
        };
        let message = match found(&mut self.shared) {
            Some(message) => {
                if message.metadata.key().is_some() {
                    self.keyed_shared -= 1;
                }
                Some(message)
            }
            None => self
                .members
                .values_mut()
                .find_map(|member| found(&mut member.queue)),
        };
        if message.is_some() {
            self.queued -= 1;
        }
        message
    }

    fn put_back(&mut self, message: Message, to_tail: bool) -> bool {
        self.route(message, !to_tail);
        true
    }

    fn queued_charges(&self) -> Box<dyn Iterator<Item = Charge> + '_> {
        Box::new(self.queued_messages().map(Charge::of))
    }

    fn queued_count(&self) -> usize {
        self.queued
    }

    /// Every queue (the shared one and each member's), merged by sequence
    /// number. Which member gets a keyless message depends on who waits
    /// when it is served, so there is no one delivery order to show;
    /// sequence order is the order of the sends. While every queue is in
    /// sequence order (the rule), each finds `after` by a binary search
    /// and the page is a merge of their heads; else the page costs a pass
    /// over the queued messages (a partial selection, not a sort of all).
    fn peek(
        &self,
        _viewer: ConnectionId,
        after: Option<u64>,
        limit: usize,
        _ledger: &Ledger,
    ) -> (Vec<Message>, bool) {
        if !self.unsorted {
            return page(BySequence::after(self.queues(), after), limit);
        }
        let mut later: Vec<&Message> = self
            .queued_messages()
            .filter(|m| {
                step(1);
                after.is_none_or(|after| m.metadata.sequence > after)
            })
            .collect();
        // The `limit` lowest and one more (to tell whether more follow).
        if later.len() > limit + 1 {
            later.select_nth_unstable_by_key(limit, |m| m.metadata.sequence);
            later.truncate(limit + 1);
        }
        later.sort_unstable_by_key(|m| m.metadata.sequence);
        page(later.into_iter(), limit)
    }

    fn waiting_receivers(&self) -> usize {
        own_lines::waiting_count(&self.members, |member| &member.waiting)
    }

    fn drain_receives(&mut self) -> Vec<WaitingReceive> {
        self.waiting_turns.clear();
        self.ready.clear();
        own_lines::drain_all(&mut self.members, |member| &mut member.waiting)
    }

    fn drain_queued(&mut self, _next_sequence: u64) -> Vec<Message> {
        let mut all: Vec<Message> = self.shared.drain(..).collect();
        self.keyed_shared = 0;
        for member in self.members.values_mut() {
            all.extend(member.queue.drain(..));
        }
        self.ready.clear();
        self.queued = 0;
        self.unsorted = false;
        all
    }

    fn subscribe(&mut self, connection: ConnectionId, _next_sequence: u64) -> Option<bool> {
        let new = !self.members.contains_key(&connection);
        self.join(connection);
        Some(new)
    }

    fn unsubscribe(&mut self, connection: ConnectionId, _next_sequence: u64) -> Unsubscribed {
        Unsubscribed::from(self.leave(connection))
    }

    fn subscriber_count(&self) -> usize {
        self.members.len()
    }

    #[cfg(test)]
    fn check_invariants(&self, _: &MailboxSettings, _: &Ledger, _: &Line<WaitingSend>) -> u64 {
        let mut count = self.shared.len();
        for (id, member) in &self.members {
            assert!(
                member.queue.is_empty() || member.waiting.is_empty(),
                "member waits beside its own messages"
            );
            for message in &member.queue {
                if let Some(key) = message.metadata.key() {
                    assert_eq!(self.keys.get(key), Some(id), "key bound elsewhere");
                }
            }
            let bound = self.keys.values().filter(|owner| *owner == id).count();
            assert_eq!(bound as u64, member.keys, "member key count");
            assert!(self.by_load.contains(&(member.keys, *id)), "by load");
            assert_eq!(
                self.waiting_turns.contains(&(member.turn, *id)),
                !member.waiting.is_empty(),
                "waiting turns"
            );
            assert!(
                !self.ready.contains(id),
                "ready members left after the pump"
            );
            count += member.queue.len();
        }
        assert_eq!(count, self.queued, "hash queued count");
        assert_eq!(self.by_load.len(), self.members.len(), "by load");
        let keyed = self.shared.iter().filter(|m| m.metadata.key().is_some());
        assert_eq!(keyed.count(), self.keyed_shared, "keyed shared messages");
        let waiting = self.members.values().filter(|m| !m.waiting.is_empty());
        assert_eq!(self.waiting_turns.len(), waiting.count(), "waiting turns");
        assert!(self.ready.is_empty(), "ready members left after the pump");
        assert!(self.keys.values().all(|o| self.members.contains_key(o)));
        if !self.unsorted {
            for queue in self.queues() {
                assert!(
                    queue
                        .iter()
                        .zip(queue.iter().skip(1))
                        .all(|(a, b)| a.metadata.sequence < b.metadata.sequence),
                    "a hash mailbox not marked unsorted has its queues in sequence order"
                );
            }
        }
        let shared: u64 = self.shared.iter().map(|m| m.payload.len() as u64).sum();
        shared
            + self
                .members
                .values()
                .flat_map(|m| m.queue.iter())
                .map(|m| m.payload.len() as u64)
                .sum::<u64>()
    }
}

/// Queues in sequence order, merged: the messages after a sequence number,
/// lowest first. Each queue finds its start by a binary search; the heap
/// holds one head per queue.
struct BySequence<'a> {
    queues: Vec<&'a VecDeque<Message>>,
    /// (sequence, queue, position) of each queue's next message.
    heads: BinaryHeap<Reverse<(u64, usize, usize)>>,
}

impl<'a> BySequence<'a> {
    fn after(queues: impl Iterator<Item = &'a VecDeque<Message>>, after: Option<u64>) -> Self {
        let queues: Vec<&VecDeque<Message>> = queues.filter(|q| !q.is_empty()).collect();
        let mut heads = BinaryHeap::with_capacity(queues.len());
        for (index, queue) in queues.iter().enumerate() {
            let start = after.map_or(0, |after| {
                queue.partition_point(|m| {
                    step(1);
                    m.metadata.sequence <= after
                })
            });
            if let Some(message) = queue.get(start) {
                heads.push(Reverse((message.metadata.sequence, index, start)));
            }
        }
        Self { queues, heads }
    }
}

impl<'a> Iterator for BySequence<'a> {
    type Item = &'a Message;

    fn next(&mut self) -> Option<&'a Message> {
        let Reverse((_, index, position)) = self.heads.pop()?;
        step(1);
        let queue = self.queues[index];
        if let Some(next) = queue.get(position + 1) {
            self.heads
                .push(Reverse((next.metadata.sequence, index, position + 1)));
        }
        queue.get(position)
    }
}
