//! The public methods of a mailbox's manager and of whoever watches the
//! broker.

use mailbox_proto::BrokerStatus;

use crate::error::Error;
use crate::methods::client_methods;
use crate::ops::admin::{Purge, SetPermissions, Status};

client_methods! {
    /// The broker's figures.
    pub fn status() -> Result<BrokerStatus, Error> {
        run(Status)
    }

    /// Changes a mailbox's owner (root only), group or mode; `None` keeps
    /// what it is. Needs the manage right.
    pub fn set_permissions(
        mailbox: &str,
        owner: Option<u32>,
        group: Option<u32>,
        mode: Option<u32>,
    ) -> Result<(), Error> {
        run(SetPermissions { mailbox, owner, group, mode })
    }

    /// Discards every queued message of `mailbox` (not those in flight);
    /// returns how many. Needs the manage right.
    pub fn purge(mailbox: &str) -> Result<u64, Error> {
        run(Purge(mailbox))
    }
}
