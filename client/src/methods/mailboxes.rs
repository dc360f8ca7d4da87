//! The public methods on mailboxes themselves: create, open, delete,
//! describe, list, subscribe.

use std::time::Duration;

use mailbox_proto::{MailboxInfo, MailboxSettings, Wait};

use crate::error::Error;
use crate::methods::client_methods;
use crate::ops::mailboxes::{Create, Delete, Info, MailboxPage, Open, Subscribe, Unsubscribe};
use crate::ops::pages::{Listing, Page};
use crate::ops::wait_at_most;

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

    /// Opens a mailbox that another party created, by name alone, without
    /// restating its settings: its description (settings, owner, group,
    /// mode, counters) when it exists and this uid has some right on it.
    /// Nothing is created or changed, and nothing waits: kind
    /// `NoSuchMailbox` when it does not exist (yet; see
    /// [`open_timeout`](Self::open_timeout)), `PermissionDenied` when this
    /// uid has no right on it, as [`info`](Self::info) answers.
    ///
    /// The pattern: the party that owns a mailbox's settings creates it
    /// ([`create`](Self::create) or [`create_with`](Self::create_with),
    /// whose mode gives others their rights), every other party opens it
    /// and checks what it relies on. `create` stays strict: with other
    /// settings, or a mailbox of another owner, it fails with
    /// `MailboxExists`. A mailbox needs no opening before a send or a
    /// receive; `open` is how a party learns, before its first message,
    /// that the mailbox is there, that it may use it and how it is set.
    ///
    async {
        /// ```no_run
        /// use mailbox_client::{Client, DeliveryPolicy};
        ///
        /// # async fn demo() -> Result<(), mailbox_client::Error> {
        /// let client = Client::connect_default().await?;
        /// let jobs = client.open("jobs").await?; // created by the producer
        /// if jobs.settings.policy == DeliveryPolicy::Broadcast {
        ///     client.subscribe("jobs").await?;
        /// }
        /// let message = client.receive("jobs").await?;
        /// # Ok(()) }
        /// ```
    }
    blocking {
        /// ```no_run
        /// use mailbox_client::{blocking::Client, DeliveryPolicy};
        ///
        /// let mut client = Client::connect_default()?;
        /// let jobs = client.open("jobs")?; // created by the producer
        /// if jobs.settings.policy == DeliveryPolicy::Broadcast {
        ///     client.subscribe("jobs")?;
        /// }
        /// let message = client.receive("jobs")?;
        /// # Ok::<(), mailbox_client::Error>(())
        /// ```
    }
    pub fn open(name: &str) -> Result<MailboxInfo, Error> {
        run(Open { name, wait: Wait::Never })
    }

    /// Like [`open`](Self::open), and when the mailbox does not exist yet,
    /// waits at most `timeout` for its owner to create it (or for the
    /// broker's configuration to declare it), so that the two sides may
    /// start in either order. Answered in the step that creates it, with
    /// the rights of that moment (`PermissionDenied` if the new mailbox
    /// gives this uid none); kind `Timeout` when it was not created in
    /// time.
    ///
    blocking {
        /// ```no_run
        /// use mailbox_client::blocking::Client;
        /// use std::time::Duration;
        ///
        /// let mut client = Client::connect_default()?;
        /// // Whichever side starts first, the consumer finds the producer's mailbox.
        /// client.open_timeout("jobs", Duration::from_secs(30))?;
        /// let message = client.receive("jobs")?;
        /// # Ok::<(), mailbox_client::Error>(())
        /// ```
    }
    pub fn open_timeout(name: &str, timeout: Duration) -> Result<MailboxInfo, Error> {
        run(Open { name, wait: wait_at_most(timeout) })
    }

    /// Opens a mailbox, waiting for its creation as `wait` says
    /// (`Wait::Forever`: as long as it takes; dropping the async future
    /// cancels the wait).
    pub fn open_with(name: &str, wait: Wait) -> Result<MailboxInfo, Error> {
        run(Open { name, wait })
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
