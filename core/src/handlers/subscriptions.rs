//! Subscriptions to broadcast mailboxes: subscribe and unsubscribe. A
//! connection's list of them (with the hash pools it is in) is what a
//! disconnect ends.

use mailbox_proto::{BrokerError, Response};

use crate::mailbox::Context;
use crate::places::missing_mailbox;
use crate::{Clock, ConnectionId, Core, Outcome, Right};

impl Core {
    /// `Subscribe`: for who may receive from the mailbox; a subscription
    /// cut as a slow consumer is forgotten.
    pub(crate) fn subscribe(
        &mut self,
        connection: ConnectionId,
        mailbox: String,
    ) -> Result<Option<Response>, BrokerError> {
        self.check(connection, &mailbox, Right::Receive)?;
        let created = self.mailbox_mut(&mailbox)?.subscribe(connection)?;
        if let Some(state) = self.connections.get_mut(&connection) {
            if !state.cut_from.is_empty() {
                state.cut_from.retain(|name| *name != mailbox);
            }
            if created {
                state.subscriptions.push(mailbox);
            }
        }
        Ok(Some(Response::Subscribed { created }))
    }

    /// `Unsubscribe`: its backlog goes, its waiting receives learn
    /// `NotSubscribed`.
    pub(crate) fn unsubscribe(
        &mut self,
        connection: ConnectionId,
        mailbox: String,
        clock: &Clock,
        out: &mut Outcome,
    ) -> Result<Option<Response>, BrokerError> {
        let Some(target) = self.places.mailboxes.get_mut(&mailbox) else {
            return Err(missing_mailbox(&mailbox));
        };
        let mut ctx = Context {
            out,
            budget: &mut self.budget,
            clock,
            names: &self.names,
        };
        if let Some(state) = self.connections.get_mut(&connection) {
            if !state.cut_from.is_empty() {
                state.cut_from.retain(|name| *name != mailbox);
            }
        }
        target.unsubscribe(connection, true, &mut ctx)?;
        if let Some(state) = self.connections.get_mut(&connection) {
            state.subscriptions.retain(|name| *name != mailbox);
        }
        Ok(Some(Response::Unsubscribed))
    }
}
