//! Request/reply: a call is a send that waits for a reply. Its request
//! carries a call id; whoever receives it answers with `Reply`, which the
//! core routes straight to the waiting caller. The core tracks who holds
//! each request, so that a holder leaving without replying ends the call
//! with `NoReply` at once instead of at its timeout.

use bytes::Bytes;
use mailbox_proto::{Details, ErrorKind, Message, Metadata, Response, SendOptions, Target, Wait};

use super::mailbox::Context;
use super::{error, BrokerError, Clock, ConnectionId, Core, Load, Outcome, Peer, Place, Ticket};

/// A call waiting for its reply.
#[derive(Debug)]
pub(super) struct CallState {
    /// The caller's waiting request.
    pub caller: Ticket,
    /// The connection that received the request and owes the reply.
    pub holder: Option<ConnectionId>,
    /// Where the request was sent.
    pub place: Place,
}

impl Core {
    #[allow(clippy::too_many_arguments)]
    pub(super) fn call(
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
        let call = self.next_call;
        let plan = self.plan_send(ticket, &to, options, wait, Some(call))?;
        self.next_call += 1;
        self.send(ticket, peer, plan, Load::One(payload), wait, clock, out)
    }

    pub(super) fn reply(
        &mut self,
        ticket: Ticket,
        peer: Peer,
        call: u64,
        payload: Bytes,
        clock: &Clock,
        out: &mut Outcome,
    ) -> Result<Option<Response>, BrokerError> {
        let Some(state) = self.calls.get(&call) else {
            return Err(if call < self.next_call {
                error(
                    ErrorKind::CallEnded,
                    format!("call {call} ended: its caller stopped waiting (timeout, cancel, or it left)"),
                )
            } else {
                error(ErrorKind::NotHeld, format!("there is no call {call}"))
            });
        };
        if state.holder != Some(ticket.connection) {
            return Err(error(
                ErrorKind::NotHeld,
                format!("this connection does not hold the request of call {call}"),
            ));
        }
        let Some(state) = self.calls.remove(&call) else {
            return Ok(None);
        };
        // A request held with manual acknowledgement still has its watch.
        if let Some(mailbox) = self.places.get_mut(&state.place) {
            let mut ctx = Context {
                out,
                budget: &mut self.budget,
                clock,
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
    pub(super) fn calls_lost_with(&mut self, holder: ConnectionId, out: &mut Outcome) {
        let lost: Vec<u64> = self
            .calls
            .iter()
            .filter(|(_, state)| state.holder == Some(holder))
            .map(|(call, _)| *call)
            .collect();
        for call in lost {
            if let Some(state) = self.calls.remove(&call) {
                out.reply(
                    state.caller,
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
}
