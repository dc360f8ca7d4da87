//! The broker as a whole: its status and the limits in force.

use mailbox_proto::{BrokerError, BrokerStatus, Response, PROTOCOL_VERSION};

use crate::{Clock, Core};

impl Core {
    /// `Status`.
    pub(crate) fn status_request(&self, clock: &Clock) -> Result<Option<Response>, BrokerError> {
        Ok(Some(Response::Status(Box::new(self.status(clock)))))
    }

    /// Broker-wide figures.
    pub fn status(&self, clock: &Clock) -> BrokerStatus {
        let queued_messages = self
            .places
            .all()
            .map(|mailbox| mailbox.info().queued_messages)
            .sum();
        BrokerStatus {
            broker_version: env!("CARGO_PKG_VERSION").to_owned(),
            protocol_version: PROTOCOL_VERSION,
            pid: std::process::id(),
            uptime_millis: clock
                .now
                .saturating_duration_since(self.started)
                .as_millis() as u64,
            connections: self.connections.len() as u64,
            mailboxes: self.places.mailboxes.len() as u64,
            queued_messages,
            queued_bytes: self.budget.held(),
            memory_budget_bytes: self.budget.limit(),
            limits: self.limit_list(),
        }
    }

    /// The limits in force, by their configuration names: the core's, then
    /// the server's ([`Core::set_server_limits`]).
    pub(crate) fn limit_list(&self) -> Vec<mailbox_proto::Limit> {
        let l = &self.limits;
        let budget = l.budget();
        [
            ("memory_budget", l.memory_budget),
            ("max_queued_messages", l.max_queued_messages),
            ("max_requests_in_flight", l.max_requests_in_flight as u64),
            ("max_connections", l.max_connections as u64),
            ("max_connections_per_uid", l.max_connections_per_uid as u64),
            ("reserved_connections", l.reserved_connections as u64),
            ("max_mailboxes_per_uid", l.max_mailboxes_per_uid as u64),
            (
                "max_queued_bytes_per_mailbox",
                l.max_queued_bytes_per_mailbox,
            ),
            ("max_queued_bytes_per_uid", budget.bytes_per_uid),
            ("max_queued_messages_per_uid", budget.messages_per_uid),
            ("admin_reserve_bytes", budget.reserved_bytes),
            ("admin_reserve_messages", budget.reserved_messages),
            ("max_message_size", u64::from(l.max_message_size)),
            ("max_region_size", l.max_region_size),
            ("max_regions_per_uid", l.max_regions_per_uid as u64),
            ("max_file_size", l.max_file_size),
        ]
        .into_iter()
        .map(|(name, value)| mailbox_proto::Limit {
            name: name.to_owned(),
            value,
        })
        .chain(self.server_limits.iter().cloned())
        .collect()
    }
}
