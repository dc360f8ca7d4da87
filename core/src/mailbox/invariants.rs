//! What the core's tests check of a mailbox: its invariants (see the
//! module docs of `mailbox.rs` and of each delivery policy), and what it
//! holds and is charged, read without changing anything. Tests only.

use std::collections::{BTreeSet, HashMap};
use std::time::Instant;

use super::policy::DeliveryRules;
use super::waiters::{Load, WaitingSend};
use super::Mailbox;
use crate::types::Ticket;
use crate::Usage;

impl Mailbox {
    /// Panics when an invariant of the module doc does not hold (tests only).
    pub fn check_invariants(&self) {
        let bytes = self
            .lines
            .check_invariants(&self.settings, &self.ledger, &self.senders);
        assert_eq!(bytes, self.ledger.queued_bytes);
        // A pending wake comes no later than anything it must act on.
        let more = self.ledger.view();
        let earliest = more
            .ack_deadlines
            .first()
            .map(|(at, _)| *at)
            .into_iter()
            .chain(self.lines.next_wake(&self.settings))
            .min();
        if let Some(earliest) = earliest {
            assert!(
                more.armed.is_some_and(|armed| armed <= earliest),
                "a deadline without a wake"
            );
        }
        let deadlines: BTreeSet<(Instant, u64)> = more
            .in_flight
            .iter()
            .filter_map(|(sequence, held)| Some((held.deadline?, *sequence)))
            .collect();
        assert!(
            deadlines == more.ack_deadlines,
            "acknowledgement deadlines out of step with the messages in flight"
        );
    }

    pub fn waiting_payload_bytes(&self) -> u64 {
        self.senders
            .iter()
            .map(|s| {
                let held = match &s.load {
                    Load::One(payload) => payload.len() as u64,
                    Load::Many(batch) => batch.rest.iter().map(|p| p.len() as u64).sum(),
                };
                assert_eq!(
                    held, s.held,
                    "a waiting send's held bytes are its payloads'"
                );
                held
            })
            .sum()
    }

    /// What this mailbox holds, by the uid it is charged to (its sender).
    pub fn charges(&self, into: &mut HashMap<u32, Usage>) {
        let mut charge = |uid: u32, bytes: u64, messages: u64| {
            let usage = into.entry(uid).or_default();
            usage.bytes += bytes;
            usage.messages += messages;
        };
        for queued in self.lines.queued_charges() {
            charge(queued.uid, queued.bytes, queued.messages);
        }
        for held in self.ledger.view().in_flight.values() {
            let message = &held.message;
            charge(message.metadata.sender_uid, message.payload.len() as u64, 1);
        }
        for send in self.senders.iter() {
            charge(send.sender.uid, send.held, send.waiting_count());
        }
    }

    pub fn waiting_message_count(&self) -> u64 {
        self.senders.iter().map(WaitingSend::waiting_count).sum()
    }

    pub fn queued_bytes(&self) -> u64 {
        self.ledger.queued_bytes
    }

    pub fn watched_tickets(&self) -> Vec<Ticket> {
        self.ledger
            .view()
            .watches
            .values()
            .map(|w| w.ticket)
            .collect()
    }

    pub fn sender_tickets(&self) -> Vec<Ticket> {
        self.senders.iter().map(|send| send.ticket).collect()
    }

    pub fn in_flight_bytes(&self) -> (u64, u64) {
        (
            self.ledger
                .view()
                .in_flight
                .values()
                .map(|h| h.message.payload.len() as u64)
                .sum(),
            self.ledger.view().in_flight.len() as u64,
        )
    }
}
