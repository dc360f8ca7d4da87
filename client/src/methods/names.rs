//! The public methods on well-known names.

use mailbox_proto::{NameInfo, Wait};

use crate::error::Error;
use crate::methods::client_methods;
use crate::ops::names::{ClaimName, NamePage, ReleaseName};
use crate::ops::pages::{Listing, Page};

client_methods! {
    /// Claims the well-known name `name` for this connection, failing at
    /// once with kind `NameTaken` when another process holds it. Others can
    /// then reach this connection's inbox by that name. It is released by
    /// [`release_name`](Self::release_name) or when the connection ends.
    /// A connection holds or waits for at most 32 names (kind
    /// `TooManyRequests` past that).
    ///
    async {
        /// ```no_run
        /// use mailbox_client::{Client, ErrorKind, Wait};
        ///
        /// # async fn demo() -> Result<(), mailbox_client::Error> {
        /// let client = Client::connect_default().await?;
        /// if let Err(error) = client.claim_name("scheduler").await {
        ///     if error.kind() != Some(ErrorKind::NameTaken) {
        ///         return Err(error);
        ///     }
        ///     // Stand by until the active scheduler goes away.
        ///     client.claim_name_with("scheduler", Wait::Forever).await?;
        /// }
        /// # Ok(()) }
        /// ```
    }
    blocking {
        /// ```no_run
        /// use mailbox_client::{blocking::Client, ErrorKind, Wait};
        ///
        /// let mut client = Client::connect_default()?;
        /// if let Err(error) = client.claim_name("scheduler") {
        ///     if error.kind() != Some(ErrorKind::NameTaken) {
        ///         return Err(error);
        ///     }
        ///     // Stand by until the active scheduler goes away.
        ///     client.claim_name_with("scheduler", Wait::Forever)?;
        /// }
        /// # Ok::<(), mailbox_client::Error>(())
        /// ```
    }
    pub fn claim_name(name: &str) -> Result<(), Error> {
        run(ClaimName { name, wait: Wait::Never })
    }

    /// Claims a well-known name, queueing for it while another process
    /// holds it as `wait` says (`Wait::Never`: fail at once with
    /// `NameTaken`; a timeout: `Timeout`).
    async {
        /// Dropping the future withdraws the claim; if the name was granted
        /// just then, it is released again.
    }
    pub fn claim_name_with(name: &str, wait: Wait) -> Result<(), Error> {
        run(ClaimName { name, wait })
    }

    /// Gives up a name this connection holds; the next queued claimer gets
    /// it.
    pub fn release_name(name: &str) -> Result<(), Error> {
        run(ReleaseName(name))
    }

    /// Every claimed name with its owner, sorted by name.
    pub fn names() -> Result<Vec<NameInfo>, Error> {
        all_pages(NamePage::page)
    }

    /// One page of [`names`](Self::names): at most `max` names sorting
    /// after `after`, and where the next page starts.
    pub fn names_page(after: Option<&str>, max: u32) -> Result<Page<NameInfo>, Error> {
        run(NamePage::new(after, max))
    }
}
