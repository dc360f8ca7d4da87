//! The public methods on shared-memory regions: create, delete, describe,
//! list, open.

use mailbox_proto::{RegionAccess, RegionInfo};

use crate::error::Error;
use crate::methods::client_methods;
use crate::ops::pages::{Listing, Page};
use crate::ops::regions::{CreateRegion, DeleteRegion, DescribeRegion, OpenRegion, RegionPage};
use crate::region::Region;

client_methods! {
    /// Creates a shared-memory region of `size` zero bytes, owned by this
    /// process's uid, with the broker's default mode; `Ok(false)` when this
    /// uid has it already with the same size. The region lives until it
    /// is deleted or the broker stops, whoever maps it; its bytes count
    /// against the broker's memory budget and this uid's share of it
    /// (kind `BrokerFull`). Kind `RegionExists` when another uid owns it
    /// or its size differs; `InvalidSettings` for a size of 0 or above the
    /// broker's `limits.max_region_size`; `TooManyRequests` past
    /// `limits.max_regions_per_uid`.
    pub fn create_region(name: &str, size: u64) -> Result<bool, Error> {
        run(CreateRegion { name, size, mode: None, group: None })
    }

    /// Like [`create_region`](Self::create_region), with the mode
    /// (`0o[owner][group][others]`, each read 4, write 2, manage 1) and
    /// group given in the same request.
    ///
    async {
        /// ```no_run
        /// # async fn demo() -> Result<(), mailbox_client::Error> {
        /// let client = mailbox_client::Client::connect_default().await?;
        /// // The owner reads, writes and manages; the group reads.
        /// client.create_region_with("frames", 64 << 20, Some(0o640), None).await?;
        /// # Ok(()) }
        /// ```
    }
    blocking {
        /// ```no_run
        /// let mut client = mailbox_client::blocking::Client::connect_default()?;
        /// // The owner reads, writes and manages; the group reads.
        /// client.create_region_with("frames", 64 << 20, Some(0o640), None)?;
        /// # Ok::<(), mailbox_client::Error>(())
        /// ```
    }
    pub fn create_region_with(
        name: &str,
        size: u64,
        mode: Option<u32>,
        group: Option<u32>,
    ) -> Result<bool, Error> {
        run(CreateRegion { name, size, mode, group })
    }

    /// Deletes a region (the manage right). Processes that mapped it keep
    /// their mappings, which stay valid; its memory is freed when the last
    /// of them is gone. Kind `NoSuchRegion` when there is none.
    pub fn delete_region(name: &str) -> Result<(), Error> {
        run(DeleteRegion(name))
    }

    /// Describes one region (any right on it).
    pub fn region_info(name: &str) -> Result<RegionInfo, Error> {
        run(DescribeRegion(name))
    }

    /// Describes every region this user has some right on, sorted by name,
    /// page after page.
    pub fn regions() -> Result<Vec<RegionInfo>, Error> {
        all_pages(RegionPage::page)
    }

    /// One page of [`regions`](Self::regions): at most `max` regions whose
    /// names sort after `after`, and where the next page starts.
    pub fn regions_page(after: Option<&str>, max: u32) -> Result<Page<RegionInfo>, Error> {
        run(RegionPage::new(after, max))
    }

    /// Opens a region: the broker checks this process's rights (read; and
    /// write for [`RegionAccess::ReadWrite`]) and passes a descriptor that
    /// allows exactly that. Map it with [`Region::map`]. Kind
    /// `PermissionDenied` (and no descriptor) without the rights,
    /// `NoSuchRegion` when there is none.
    ///
    async {
        /// ```no_run
        /// use mailbox_client::{Client, RegionAccess};
        ///
        /// # async fn demo() -> Result<(), mailbox_client::Error> {
        /// let client = Client::connect_default().await?;
        /// let region = client.open_region("frames", RegionAccess::ReadWrite).await?;
        /// let memory = region.map()?;
        /// memory.write_at(0, b"frame 1")?;
        /// # Ok(()) }
        /// ```
    }
    blocking {
        /// ```no_run
        /// use mailbox_client::{blocking::Client, RegionAccess};
        ///
        /// let mut client = Client::connect_default()?;
        /// let region = client.open_region("frames", RegionAccess::Read)?;
        /// let memory = region.map()?;
        /// let mut first = [0u8; 7];
        /// memory.read_at(0, &mut first)?;
        /// # Ok::<(), mailbox_client::Error>(())
        /// ```
    }
    pub fn open_region(name: &str, access: RegionAccess) -> Result<Region, Error> {
        run(OpenRegion { name, access })
    }
}
