//! The public methods on mailboxes themselves: create, delete, describe,
//! list, subscribe.

use mailbox_proto::{MailboxInfo, MailboxSettings};

use crate::error::Error;
use crate::methods::client_methods;
use crate::ops::mailboxes::{Create, Delete, Info, MailboxPage, Subscribe, Unsubscribe};
use crate::ops::pages::{Listing, Page};

client_methods! {
    /// Creates a mailbox owned by this process's uid, with the broker's
    /// default mode; `Ok(false)` when this uid owns it already with the same
    /// settings. Kind `MailboxExists` when its settings differ or another
    /// uid owns it.
    pub fn create(name: &str, settings: MailboxSettings) -> Result<bool, Error> {
        run(Create { name, settings, mode: None, group: None })
    }

    /// Like [`create`](Self::create), with the mode (`0o[owner][group][others]`,
    /// each receive 4, send 2, manage 1) and group given in the same
    /// request: the mailbox never exists with other rights. When this uid
    /// owns it already with the same settings, `mode` and `group` are
    /// applied to it.
    pub fn create_with(
        name: &str,
        settings: MailboxSettings,
        mode: Option<u32>,
        group: Option<u32>,
    ) -> Result<bool, Error> {
        run(Create { name, settings, mode, group })
    }

    /// Deletes a mailbox; operations waiting on it fail with `MailboxDeleted`.
    pub fn delete(name: &str) -> Result<(), Error> {
        run(Delete(name))
    }

    /// Describes every mailbox (that this user has some right on), sorted
    /// by name, fetching page after page ([`list_page`](Self::list_page)),
    /// so that it works however many there are.
    pub fn list() -> Result<Vec<MailboxInfo>, Error> {
        all_pages(MailboxPage::page)
    }

    /// One page of [`list`](Self::list): at most `max` mailboxes whose
    /// names sort after `after` (`None`: from the first), and where the
    /// next page starts.
    pub fn list_page(after: Option<&str>, max: u32) -> Result<Page<MailboxInfo>, Error> {
        run(MailboxPage::new(after, max))
    }

    /// Describes one mailbox.
    pub fn info(name: &str) -> Result<MailboxInfo, Error> {
        run(Info(name))
    }

    /// Subscribes this connection to a broadcast mailbox; `Ok(false)` when it
    /// was subscribed already. The subscription ends with the connection.
    pub fn subscribe(mailbox: &str) -> Result<bool, Error> {
        run(Subscribe(mailbox))
    }

    /// Ends this connection's subscription; its unread backlog is released.
    pub fn unsubscribe(mailbox: &str) -> Result<(), Error> {
        run(Unsubscribe(mailbox))
    }
}
