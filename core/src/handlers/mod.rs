//! One handler per request: [`Core::dispatch`] checks that a request may be
//! handled at all and hands it to the handler of its kind. Handlers are
//! grouped by topic: `mailboxes.rs` (create, delete, info, list,
//! permissions, purge), `messages.rs` (send, receive, settle, peek),
//! `subscriptions.rs`, `inbox.rs`, `names.rs`, `calls.rs`, `regions.rs` (shared-memory regions) and `admin.rs`
//! (status, limits); a cancel ends a wait (`waits.rs`).
//!
//! A handler answers `Ok(Some(response))` at once, `Ok(None)` when the
//! request waits (or was answered in `out` already), or `Err` with the
//! error to answer.

mod admin;
mod calls;
mod inbox;
mod mailboxes;
mod messages;
mod names;
mod regions;
mod subscriptions;

use mailbox_proto::{BrokerError, ErrorKind, Request, Response, Wait};

use crate::{error, Clock, Core, Outcome, Ticket};

impl Core {
    /// Handles one request, once the due expiries and wakes are done.
    // Not formatted: one line per request kind reads as the table it is.
    #[rustfmt::skip]
    pub(crate) fn dispatch(
        &mut self,
        ticket: Ticket,
        request: Request,
        clock: &Clock,
        out: &mut Outcome,
    ) -> Result<Option<Response>, BrokerError> {
        if self.shutting_down {
            return Err(error(
                ErrorKind::BrokerShuttingDown,
                "it takes no more requests",
            ));
        }
        let Some(state) = self.connections.get(&ticket.connection) else {
            return Err(error(
                ErrorKind::Internal,
                "request from an unknown connection",
            ));
        };
        if state.waiting.contains_key(&ticket.request) {
            return Err(error(
                ErrorKind::DuplicateRequestId,
                format!(
                    "request id {} is already waiting on this connection; ids must be unique among waiting requests",
                    ticket.request
                ),
            ));
        }
        let peer = state.peer;
        let connection = ticket.connection;
        match request {
            Request::CreateMailbox { name, settings } => self.create(connection, name, *settings, None, None, out),
            Request::CreateMailboxWith { name, settings, mode, group } => self.create(connection, name, *settings, mode, group, out),
            Request::DeleteMailbox { name } => self.delete_mailbox(connection, &name, clock, out),
            Request::ListMailboxes => self.list_mailboxes(connection),
            Request::ListMailboxPage { after, max } => self.list_mailbox_page(connection, after.as_deref(), max),
            Request::MailboxInfo { name } => self.mailbox_info(connection, &name),
            Request::OpenMailbox { name, wait } => self.open_mailbox(ticket, name, wait, clock, out),
            Request::SetPermissions { name, owner, group, mode } => self.set_permissions(connection, peer, &name, owner, group, mode),
            Request::Purge { name } => self.purge(connection, &name, clock, out),
            Request::Send { mailbox, payload, wait } => self.send_one(ticket, peer, mailbox, payload, wait, clock, out),
            Request::SendQuietly { mailbox, payload } => self.send_one(ticket, peer, mailbox, payload, Wait::Never, clock, out),
            Request::SendMany { mailbox, payloads, wait } => self.send_many(ticket, peer, mailbox, payloads, wait, clock, out),
            Request::SendWith { to, payload, options, wait } => self.send_with(ticket, peer, &to, payload, *options, wait, clock, out),
            Request::Receive { mailbox, wait } => self.receive_from_mailbox(ticket, peer, mailbox, None, wait, clock, out),
            Request::ReceiveMany { mailbox, max, wait } => self.receive_from_mailbox(ticket, peer, mailbox, Some(max), wait, clock, out),
            Request::ReceiveWith { from, options, wait } => self.receive_with(ticket, peer, from, options, wait, clock, out),
            Request::Settle { mailbox, sequence, verdict, redeliveries } => self.settle_message(connection, mailbox, sequence, verdict, redeliveries, clock, out),
            Request::Subscribe { mailbox } => self.subscribe(connection, mailbox),
            Request::Unsubscribe { mailbox } => self.unsubscribe(connection, mailbox, clock, out),
            Request::Call { to, payload, options, wait } => self.call(ticket, peer, to, payload, *options, wait, clock, out),
            Request::Reply { call, payload } => self.reply(ticket, peer, call, payload, clock, out),
            Request::ClaimName { name, wait } => self.claim_name(ticket, name, wait, clock, out),
            Request::ReleaseName { name } => self.release_name(connection, &name, out),
            Request::ListNames => self.list_names(),
            Request::ListNamePage { after, max } => self.list_name_page(after.as_deref(), max),
            Request::SetInboxPermissions { mode, group } => self.set_inbox_permissions(connection, mode, group),
            Request::SetInboxCapacity { capacity } => self.set_inbox_capacity(connection, capacity, clock, out),
            Request::Cancel { request } => self.cancel(connection, request, clock, out),
            Request::Status => self.status_request(clock),
            Request::Peek { from, after, max } => self.peek(connection, peer, from, after, max),
            Request::CreateRegion { name, size, mode, group } => self.create_region(ticket, name, size, mode, group, out),
            Request::DeleteRegion { name } => self.delete_region(connection, &name, out),
            Request::RegionInfo { name } => self.region_info(connection, &name),
            Request::ListRegionPage { after, max } => self.list_region_page(connection, after.as_deref(), max),
            Request::OpenRegion { name, access } => self.open_region(connection, &name, access),
            Request::SendFile { to, len, options, wait, payload } => self.send_file(ticket, peer, &to, len, payload, *options, wait, clock, out),
            Request::AcceptFiles => self.accept_files(connection),
        }
    }
}
