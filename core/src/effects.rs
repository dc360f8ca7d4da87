//! What an operation decided beyond the mailbox it ran in (`Effect`s:
//! expiries, dead letters, wakes, cut subscribers, calls delivered), carried
//! out before it ends; and settling, which forgets the waits its replies
//! answered.

use crate::mailbox::Context;
use crate::types::{Effect, Place};
use crate::{Clock, Core, Outcome, Ticket};

impl Core {
    /// Carries out what mailboxes decided beyond themselves, until nothing
    /// is left (a dead letter may cause more).
    pub(crate) fn carry_out(&mut self, clock: &Clock, out: &mut Outcome) {
        while !out.effects.is_empty() {
            let effects = std::mem::take(&mut out.effects);
            for effect in effects {
                match effect {
                    Effect::Expiry {
                        at,
                        place,
                        sequence,
                    } => self.timers.add_expiry(at, place, sequence),
                    Effect::DeadLetter {
                        to,
                        from,
                        message,
                        reason,
                    } => {
                        let from_name = match &from {
                            Place::Mailbox(name) => name.clone(),
                            Place::Inbox(owner) => format!("inbox of process {}", owner.0),
                            Place::Name(name) | Place::Opening(name) => name.clone(),
                        };
                        // The same owner's mailbox, or one the administrator
                        // opened to all: a stranger's mailbox of that name may
                        // have been created after the source was set up.
                        let source_owner = self.places.get(&from).map(|m| m.permissions().owner);
                        let target_owner = self
                            .places
                            .mailboxes
                            .get(&to)
                            .map(|m| m.permissions().owner);
                        let permitted = self.policy.dead_letter_targets.contains(&to)
                            || (source_owner.is_some() && source_owner == target_owner);
                        let mut ctx = Context {
                            out,
                            budget: &mut self.budget,
                            clock,
                            names: &self.names,
                        };
                        let refused = match self.places.mailboxes.get_mut(&to) {
                            Some(target) if permitted => target
                                .take_dead_letter(message, &from_name, reason, &mut ctx)
                                .err(),
                            _ => Some(message),
                        };
                        if let Some(message) = refused {
                            self.budget.release(
                                message.metadata.sender_uid,
                                message.payload.len() as u64,
                                1,
                            );
                            if let Some(source) = self.places.get_mut(&from) {
                                source.dead_letter_refused();
                            }
                            if target_owner.is_some()
                                && !permitted
                                && self.dead_letter_refusals_reported.insert(from_name.clone())
                            {
                                out.warnings.push(format!(
                                    "dead letter refused: mailbox {from_name} (owner uid {}) may not retire messages into {to} (owner uid {}); dropping them (counted as dropped; reported once per mailbox)",
                                    source_owner.map_or_else(|| "?".to_owned(), |uid| uid.to_string()),
                                    target_owner.map_or_else(|| "?".to_owned(), |uid| uid.to_string()),
                                ));
                            }
                        }
                    }
                    Effect::Wake { at, place } => self.timers.add_wake(at, place),
                    Effect::SubscriberCut {
                        connection,
                        mailbox,
                        tell,
                    } => {
                        if let Some(state) = self.connections.get_mut(&connection) {
                            state.subscriptions.retain(|name| *name != mailbox);
                            if tell && !state.cut_from.contains(&mailbox) {
                                state.cut_from.push(mailbox);
                            }
                        }
                    }
                    Effect::CallDelivered { call, holder } => self.calls.delivered(call, holder),
                    Effect::CallReturned { call } => self.calls.returned(call),
                    Effect::CallDropped { call, why } => {
                        if let Some(state) = self.calls.close(call) {
                            out.reply(state.caller, Err(why));
                        }
                    }
                }
            }
        }
    }

    /// Forgets the waits answered by the replies from `mark` on (other than
    /// `keep`, a duplicate id whose earlier request still waits).
    pub(crate) fn settle(&mut self, out: &Outcome, mark: usize, keep: Option<Ticket>) {
        for reply in &out.replies[mark..] {
            if Some(reply.ticket) == keep {
                continue;
            }
            if let Some(state) = self.connections.get_mut(&reply.ticket.connection) {
                if let Some(waiting) = state.waiting.remove(&reply.ticket.request) {
                    if let Some(call) = waiting.call {
                        self.calls.close(call);
                    }
                }
            }
        }
        self.compact_deadlines();
    }
}
