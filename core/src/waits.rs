//! Requests that wait: registering a wait (within the per-connection
//! limit), ending one (a cancel, a timeout, a deadline), and the plan of
//! whether and until when a request may wait.

use std::time::{Duration, Instant};

use mailbox_proto::{BrokerError, ErrorKind, RequestId, Response, Wait};

use crate::mailbox::{Context, Withdrawn};
use crate::types::Place;
use crate::{error, Clock, ConnectionId, Core, Outcome, Ticket};

/// A request that waits: where, and until when.
#[derive(Debug)]
pub(crate) struct Waiting {
    pub(crate) place: Place,
    /// Distinguishes this wait from an earlier one that used the same request
    /// id, so a stale deadline never fires on a newer request.
    pub(crate) serial: u64,
    /// Set when the request is a call waiting for its reply.
    pub(crate) call: Option<u64>,
}

impl Core {
    /// `Cancel`: ends the caller's waiting request `request`, if it waits,
    /// with `Cancelled`.
    pub(crate) fn cancel(
        &mut self,
        connection: ConnectionId,
        request: RequestId,
        clock: &Clock,
        out: &mut Outcome,
    ) -> Result<Option<Response>, BrokerError> {
        let target = Ticket {
            connection,
            request,
        };
        let cancelled = self.end_wait(
            target,
            error(ErrorKind::Cancelled, "withdrawn at the client's request"),
            clock,
            out,
        );
        Ok(Some(Response::CancelResult { cancelled }))
    }

    /// Records a request that now waits in `place`, or takes it back with
    /// `TooManyRequests` when its connection has too many waiting already.
    /// Waits answered since `mark` (a batch send may have fed a receive of
    /// the same connection before waiting) no longer count.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn start_wait(
        &mut self,
        ticket: Ticket,
        place: Place,
        plan: WaitPlan,
        call: Option<u64>,
        mark: usize,
        clock: &Clock,
        out: &mut Outcome,
    ) -> Result<Option<Response>, BrokerError> {
        self.settle(out, mark, Some(ticket));
        let waiting_now = self
            .connections
            .get(&ticket.connection)
            .map_or(0, |c| c.waiting.len());
        if waiting_now >= self.limits.max_requests_in_flight {
            let refused = too_many_waiting(self.limits.max_requests_in_flight);
            if let Some(call) = call {
                self.calls.close(call);
            }
            match &place {
                Place::Name(name) => {
                    self.names.leave_queue(name, ticket);
                    return Err(refused);
                }
                Place::Opening(name) => {
                    self.openings.leave(name, ticket);
                    return Err(refused);
                }
                Place::Mailbox(_) | Place::Inbox(_) => {}
            }
            let mut ctx = Context {
                out,
                budget: &mut self.budget,
                clock,
                names: &self.names,
            };
            let withdrawn = self
                .places
                .get_mut(&place)
                .and_then(|m| Some((m.withdraw(ticket, true, &mut ctx)?, m.next_sequence())));
            return match withdrawn {
                Some((Withdrawn::Send(send), next)) => send.failed(refused, next).map(Some),
                _ => Err(refused),
            };
        }
        self.register_wait(ticket, place, plan.deadline, call);
        Ok(None)
    }

    pub(crate) fn register_wait(
        &mut self,
        ticket: Ticket,
        place: Place,
        deadline: Option<Instant>,
        call: Option<u64>,
    ) {
        let serial = self.timers.add_wait(ticket, deadline);
        if let Some(state) = self.connections.get_mut(&ticket.connection) {
            state.waiting.insert(
                ticket.request,
                Waiting {
                    place,
                    serial,
                    call,
                },
            );
        }
    }

    /// Ends a waiting request with `why`: withdraws it and answers it (a
    /// batch send that got partly admitted is answered with what was; a send
    /// whose message a receiver holds is told so). Returns whether it was
    /// waiting.
    pub(crate) fn end_wait(
        &mut self,
        target: Ticket,
        why: BrokerError,
        clock: &Clock,
        out: &mut Outcome,
    ) -> bool {
        let Some(waiting) = self
            .connections
            .get_mut(&target.connection)
            .and_then(|state| state.waiting.remove(&target.request))
        else {
            return false;
        };
        let timed_out = why.kind == ErrorKind::Timeout;
        // A timeout is told what it means for what waited (the kind says
        // "timed out" already; the text says what became of the request).
        let told = |what: &str| match timed_out {
            true => error(ErrorKind::Timeout, what),
            false => why.clone(),
        };
        match &waiting.place {
            Place::Name(name) => {
                self.names.leave_queue(name, target);
                out.reply(
                    target,
                    Err(told(&format!(
                        "the name {name} is still held by another process; the claim was withdrawn"
                    ))),
                );
                return true;
            }
            Place::Opening(name) => {
                self.openings.leave(name, target);
                out.reply(
                    target,
                    Err(told(&format!(
                        "no mailbox {name} was created in time; nothing was opened"
                    ))),
                );
                return true;
            }
            Place::Mailbox(_) | Place::Inbox(_) => {}
        }
        if let Some(call) = waiting.call {
            self.calls.close(call);
        }
        let mut ctx = Context {
            out,
            budget: &mut self.budget,
            clock,
            names: &self.names,
        };
        let withdrawn = self.places.get_mut(&waiting.place).and_then(|mailbox| {
            let next = mailbox.next_sequence();
            mailbox
                .withdraw(target, true, &mut ctx)
                .map(|withdrawn| (withdrawn, next))
        });
        let late_reply = "no reply came in time; a receiver holds the request, and its late \
                          reply will be refused";
        let result = match withdrawn {
            Some((Withdrawn::Send(send), next)) => send.failed(
                told(
                    "there was no room (or, with capacity zero, no receiver) in time; what was \
                     not sent by now never will be",
                ),
                next,
            ),
            Some((Withdrawn::Receive, _)) => Err(told("no message came in time; none was taken")),
            Some((Withdrawn::Queued, _)) => Err(told(
                "no receiver took the message in time; it was withdrawn from the queue and \
                 will never be delivered",
            )),
            Some((Withdrawn::InFlight, _)) if timed_out => Err(if waiting.call.is_some() {
                told(late_reply)
            } else {
                error(
                    ErrorKind::TimeoutInFlight,
                    "a receiver took the message (stage received reached) but did not \
                     acknowledge it in time; it was not withdrawn",
                )
            }),
            Some((Withdrawn::InFlight, _)) => Err(why.clone()),
            // A call whose request was handed over waits for nothing but
            // its reply.
            None if waiting.call.is_some() => Err(told(late_reply)),
            None => return false,
        };
        out.reply(target, result);
        true
    }

    #[cfg(test)]
    pub(crate) fn waiting_count(&self) -> usize {
        self.connections.values().map(|c| c.waiting.len()).sum()
    }
}

pub(crate) fn too_many_waiting(limit: usize) -> BrokerError {
    error(
        ErrorKind::TooManyRequests,
        format!(
            "this connection already has {limit} requests waiting (limits.max_requests_in_flight)"
        ),
    )
}

/// The answer to an operation that could not complete at once: `WouldBlock`
/// for a non-blocking one, `Timeout` for a zero timeout.
pub(crate) fn not_now(wait: Wait, mailbox: &str, state: &str) -> BrokerError {
    match wait {
        Wait::Timeout { .. } => error(
            ErrorKind::Timeout,
            format!("mailbox {mailbox} is {state} and the timeout is zero"),
        ),
        _ => error(
            ErrorKind::WouldBlock,
            format!(
                "mailbox {mailbox} is {state} (or has no partner waiting); what could not be done at once was not done"
            ),
        ),
    }
}

/// Whether an operation may wait, and until when.
#[derive(Debug, Clone, Copy)]
pub(crate) struct WaitPlan {
    pub(crate) may_wait: bool,
    pub(crate) deadline: Option<Instant>,
}

/// Whether a request with this `wait` may wait at all: a question of the
/// request alone, so it needs no time.
pub(crate) fn may_wait(wait: Wait) -> bool {
    !matches!(wait, Wait::Never | Wait::Timeout { millis: 0 })
}

impl WaitPlan {
    pub(crate) fn new(wait: Wait, now: Instant) -> Self {
        let deadline = match wait {
            Wait::Timeout { millis } if may_wait(wait) => {
                // A deadline too far to represent is no deadline at all.
                now.checked_add(Duration::from_millis(millis))
            }
            _ => None,
        };
        Self {
            may_wait: may_wait(wait),
            deadline,
        }
    }
}
