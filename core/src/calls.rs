//! Request/reply: a call is a send that waits for a reply. Its request
//! carries a call id; whoever receives it answers with `Reply`, which the
//! core routes straight to the waiting caller. The core tracks who holds
//! each request, so that a holder leaving without replying ends the call
//! with `NoReply` at once instead of at its timeout.
//!
//! [`CallRegistry`] owns the open calls and the numbering of call ids, and
//! nothing else: it answers no request. What ends calls comes back as
//! [`CallEnded`] records (or the [`CallState`] of the call answered), which
//! the core acts on.

use std::collections::HashMap;

use mailbox_proto::{BrokerError, ErrorKind};

use crate::types::Place;
use crate::{error, ConnectionId, Ticket};

/// A call waiting for its reply.
#[derive(Debug)]
pub(crate) struct CallState {
    /// The caller's waiting request.
    pub caller: Ticket,
    /// The connection that received the request and owes the reply.
    pub holder: Option<ConnectionId>,
    /// Where the request was sent.
    pub place: Place,
}

/// A call that ended without its reply: its caller must be answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct CallEnded {
    /// The call's id.
    pub call: u64,
    /// The caller's waiting request.
    pub caller: Ticket,
}

/// Every open call, by id.
#[derive(Debug)]
pub(crate) struct CallRegistry {
    calls: HashMap<u64, CallState>,
    /// The id the next call gets; every id below it was given once.
    next: u64,
}

impl Default for CallRegistry {
    fn default() -> Self {
        Self {
            calls: HashMap::new(),
            next: 1,
        }
    }
}

impl CallRegistry {
    /// The id the next call will get (see [`CallRegistry::take_id`]).
    pub fn next_id(&self) -> u64 {
        self.next
    }

    /// Gives the next id out: a call whose request was checked takes it,
    /// even if the send is refused later.
    pub fn take_id(&mut self) -> u64 {
        let call = self.next;
        self.next += 1;
        call
    }

    /// A call whose request is being sent to `place` and whose `caller`
    /// waits for the reply.
    pub fn open(&mut self, call: u64, caller: Ticket, place: Place) {
        self.calls.insert(
            call,
            CallState {
                caller,
                holder: None,
                place,
            },
        );
    }

    /// Forgets a call whose caller no longer waits (it was answered, timed
    /// out, cancelled, or left); its state if it was open.
    pub fn close(&mut self, call: u64) -> Option<CallState> {
        self.calls.remove(&call)
    }

    /// `holder` received the call's request and owes the reply.
    pub fn delivered(&mut self, call: u64, holder: ConnectionId) {
        if let Some(state) = self.calls.get_mut(&call) {
            state.holder = Some(holder);
        }
    }

    /// The call's request went back to its mailbox: no one holds it.
    pub fn returned(&mut self, call: u64) {
        if let Some(state) = self.calls.get_mut(&call) {
            state.holder = None;
        }
    }

    /// `from` replies to `call`: the call ends, and its state says whom to
    /// answer. Refused when the call ended or `from` does not hold its
    /// request.
    pub fn answer(&mut self, call: u64, from: ConnectionId) -> Result<CallState, BrokerError> {
        let Some(state) = self.calls.get(&call) else {
            return Err(if call < self.next {
                error(
                    ErrorKind::CallEnded,
                    format!("call {call} ended: its caller stopped waiting (timeout, cancel, or it left)"),
                )
            } else {
                error(ErrorKind::NotHeld, format!("there is no call {call}"))
            });
        };
        if state.holder != Some(from) {
            return Err(error(
                ErrorKind::NotHeld,
                format!("this connection does not hold the request of call {call}"),
            ));
        }
        self.calls
            .remove(&call)
            .ok_or_else(|| error(ErrorKind::Internal, "a call vanished"))
    }

    /// Ends every call whose request `holder` held (it left).
    pub fn lost_with(&mut self, holder: ConnectionId) -> Vec<CallEnded> {
        let lost: Vec<u64> = self
            .calls
            .iter()
            .filter(|(_, state)| state.holder == Some(holder))
            .map(|(call, _)| *call)
            .collect();
        lost.into_iter()
            .filter_map(|call| {
                let state = self.calls.remove(&call)?;
                Some(CallEnded {
                    call,
                    caller: state.caller,
                })
            })
            .collect()
    }

    /// Ends every open call (shutdown).
    pub fn drain(&mut self) -> impl Iterator<Item = CallEnded> + '_ {
        self.calls.drain().map(|(call, state)| CallEnded {
            call,
            caller: state.caller,
        })
    }

    /// Every open call.
    #[cfg(test)]
    pub fn open_calls(&self) -> impl Iterator<Item = &CallState> {
        self.calls.values()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tests::ticket;

    fn place() -> Place {
        Place::Mailbox("jobs".to_owned())
    }

    #[test]
    fn call_ids_start_at_one_and_are_never_given_twice() {
        let mut calls = CallRegistry::default();
        assert_eq!(calls.next_id(), 1);
        assert_eq!(calls.take_id(), 1);
        assert_eq!(calls.take_id(), 2);
        assert_eq!(calls.next_id(), 3);
    }

    #[test]
    fn only_the_holder_of_the_request_may_answer_and_only_once() {
        let mut calls = CallRegistry::default();
        let call = calls.take_id();
        calls.open(call, ticket(1, 5), place());
        // Not delivered yet: no one holds it.
        let refused = calls.answer(call, ConnectionId(2)).unwrap_err();
        assert_eq!(refused.kind, ErrorKind::NotHeld);
        calls.delivered(call, ConnectionId(2));
        let refused = calls.answer(call, ConnectionId(3)).unwrap_err();
        assert_eq!(refused.kind, ErrorKind::NotHeld);
        let answered = calls.answer(call, ConnectionId(2)).unwrap();
        assert_eq!(answered.caller, ticket(1, 5));
        assert_eq!(answered.place, place());
        // Ended now; an id never given is no call at all.
        let again = calls.answer(call, ConnectionId(2)).unwrap_err();
        assert_eq!(again.kind, ErrorKind::CallEnded);
        let unknown = calls.answer(99, ConnectionId(2)).unwrap_err();
        assert_eq!(unknown.kind, ErrorKind::NotHeld);
    }

    #[test]
    fn a_returned_request_is_held_by_no_one() {
        let mut calls = CallRegistry::default();
        let call = calls.take_id();
        calls.open(call, ticket(1, 5), place());
        calls.delivered(call, ConnectionId(2));
        calls.returned(call);
        assert!(calls.lost_with(ConnectionId(2)).is_empty());
        assert_eq!(
            calls.answer(call, ConnectionId(2)).unwrap_err().kind,
            ErrorKind::NotHeld
        );
    }

    #[test]
    fn a_holder_leaving_ends_exactly_the_calls_it_held() {
        let mut calls = CallRegistry::default();
        for (caller, holder) in [(1, Some(7)), (2, Some(8)), (3, Some(7)), (4, None)] {
            let call = calls.take_id();
            calls.open(call, ticket(caller, 1), place());
            if let Some(holder) = holder {
                calls.delivered(call, ConnectionId(holder));
            }
        }
        let mut lost = calls.lost_with(ConnectionId(7));
        lost.sort_by_key(|ended| ended.call);
        assert_eq!(
            lost,
            [
                CallEnded {
                    call: 1,
                    caller: ticket(1, 1)
                },
                CallEnded {
                    call: 3,
                    caller: ticket(3, 1)
                },
            ]
        );
        assert!(calls.close(1).is_none());
        assert!(calls.close(2).is_some());
        assert_eq!(calls.drain().count(), 1);
        assert_eq!(calls.open_calls().count(), 0);
    }
}
