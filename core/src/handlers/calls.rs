//! Calls: `Call` sends a request that waits for its reply, `Reply` routes
//! the reply straight to the waiting caller (the registry of open calls is
//! `calls.rs`).

use bytes::Bytes;
use mailbox_proto::{
    BrokerError, Details, ErrorKind, Message, Metadata, Response, SendOptions, Target, Wait,
};

use crate::calls::CallEnded;
use crate::mailbox::{Context, Load};
use crate::{error, Clock, ConnectionId, Core, Outcome, Peer, Ticket};

impl Core {
    /// `Call`: a send whose request carries a new call id and waits for the
    /// reply.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn call(
        &mut self,
        ticket: Ticket,
        peer: Peer,
        to: Target,
        payload: Bytes,
        options: SendOptions,
        wait: Wait,
        clock: &Clock,
        out: &mut Outcome,
    ) -> Result<Option<Response>, BrokerError> {
        let call = self.calls.next_id();
        let plan = self.plan_send(&to, options, wait, Some(call))?;
        self.calls.take_id();
        self.send(ticket, peer, plan, Load::One(payload), wait, clock, out)
    }

    /// `Reply`: the holder of a call's request answers it.
    pub(crate) fn reply(
        &mut self,
        ticket: Ticket,
        peer: Peer,
        call: u64,
        payload: Bytes,
        clock: &Clock,
        out: &mut Outcome,
    ) -> Result<Option<Response>, BrokerError> {
        let state = self.calls.answer(call, ticket.connection)?;
        // A request held with manual acknowledgement still has its watch.
        if let Some(mailbox) = self.places.get_mut(&state.place) {
            let mut ctx = Context {
                out,
                budget: &mut self.budget,
                clock,
                names: &self.names,
            };
            mailbox.unwatch(state.caller, false, &mut ctx);
        }
        let reply = Message {
            metadata: Metadata {
                sequence: 0,
                sender_pid: peer.pid,
                sender_uid: peer.uid,
                sender_gid: peer.gid,
                sender_connection: ticket.connection.0,
                accepted_at_unix_nanos: clock.unix_nanos,
                redeliveries: 0,
                details: Some(Box::new(Details {
                    call: Some(call),
                    ..Details::default()
                })),
            },
            payload,
        };
        out.reply(state.caller, Ok(Response::Received(reply)));
        Ok(Some(Response::Replied))
    }

    /// Ends with `NoReply` every call whose request `holder` held when it
    /// left (requests it held unacknowledged went back to their mailboxes
    /// before this, and are no longer its).
    pub(crate) fn calls_lost_with(&mut self, holder: ConnectionId, out: &mut Outcome) {
        for CallEnded { call, caller } in self.calls.lost_with(holder) {
            out.reply(
                caller,
                Err(error(
                    ErrorKind::NoReply,
                    format!(
                        "process {} took the request of call {call} and left without replying",
                        holder.0
                    ),
                )),
            );
        }
    }
}
