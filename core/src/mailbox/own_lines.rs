//! What the policies where each connection has its own line of waiting
//! receives (a broadcast subscriber, a member of a hash pool) do alike with
//! those lines: find a receive, count them, take them all out.
//!
//! What it deliberately does not do: keep each policy's indexes of who
//! waits (`listening`, `waiting_turns`, `ready`); the callers clear or
//! update those themselves.

use std::collections::BTreeMap;

use super::waiters::WaitingReceive;
use crate::line::Line;
use crate::types::{ConnectionId, Ticket};

/// Whether the receive of `ticket` waits in its connection's line (`line`
/// finds the line of a connection's state `M`).
pub(super) fn has_receive<M>(
    lines: &BTreeMap<ConnectionId, M>,
    line: impl Fn(&M) -> &Line<WaitingReceive>,
    ticket: Ticket,
) -> bool {
    lines
        .get(&ticket.connection)
        .is_some_and(|owner| line(owner).contains(ticket))
}

/// How many receives wait, in every line.
pub(super) fn waiting_count<M>(
    lines: &BTreeMap<ConnectionId, M>,
    line: impl Fn(&M) -> &Line<WaitingReceive>,
) -> usize {
    lines.values().map(|owner| line(owner).len()).sum()
}

/// Takes every waiting receive out of every line, line by line in
/// connection order.
pub(super) fn drain_all<M>(
    lines: &mut BTreeMap<ConnectionId, M>,
    mut line: impl FnMut(&mut M) -> &mut Line<WaitingReceive>,
) -> Vec<WaitingReceive> {
    lines
        .values_mut()
        .flat_map(|owner| line(owner).drain())
        .collect()
}
