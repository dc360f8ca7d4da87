//! Named shared-memory regions, as the core knows them: a name, a size, an
//! owner, group and mode, and how often each was opened. The memory itself
//! is not here: the broker owns one memory file per region and the core,
//! which does no I/O, only decides. What it decided reaches the broker as
//! [`RegionChange`] records in the [`Outcome`](crate::Outcome) (create the
//! file, drop it) and as the `RegionOpened` answer, which names the region
//! and the access the broker passes a descriptor for.
//!
//! A region lives until it is deleted or the broker stops; its size counts
//! against the budget (charged to its owner) from its creation to its
//! deletion, whoever maps it meanwhile.

use std::collections::{BTreeMap, HashMap};

use mailbox_proto::RegionInfo;

use crate::{Permissions, Ticket};

/// One region.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Region {
    /// Its size in bytes, fixed for its life.
    pub(crate) size: u64,
    /// Owner, group, mode (read 4, write 2, manage 1).
    pub(crate) permissions: Permissions,
    /// Descriptors handed out since its creation.
    pub(crate) opens: u64,
}

impl Region {
    /// What `info` and listings show of it.
    pub(crate) fn info(&self, name: &str) -> RegionInfo {
        RegionInfo {
            name: name.to_owned(),
            size: self.size,
            owner_uid: self.permissions.owner,
            group_gid: self.permissions.group,
            mode: self.permissions.mode,
            opens: self.opens,
        }
    }
}

/// What the broker must do for a region the core created or deleted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RegionChange {
    /// Make the memory file of region `name`, `size` bytes. The request
    /// `ticket` was answered `Created` in the same outcome: if the file
    /// cannot be made, the broker calls [`Core::abandon_region`] and
    /// answers that request with the error instead.
    ///
    /// [`Core::abandon_region`]: crate::Core::abandon_region
    Created {
        /// The request that created it.
        ticket: Ticket,
        /// Its name.
        name: String,
        /// Its size in bytes.
        size: u64,
    },
    /// Drop the broker's descriptors of region `name` (mappings and
    /// descriptors clients hold stay valid).
    Deleted {
        /// Its name.
        name: String,
    },
}

/// Every region, by name, and how many each uid owns.
#[derive(Debug, Default)]
pub(crate) struct RegionRegistry {
    by_name: BTreeMap<String, Region>,
    owned: HashMap<u32, usize>,
}

impl RegionRegistry {
    /// The region called `name`.
    pub(crate) fn get(&self, name: &str) -> Option<&Region> {
        self.by_name.get(name)
    }

    /// The region called `name`, to change it.
    pub(crate) fn get_mut(&mut self, name: &str) -> Option<&mut Region> {
        self.by_name.get_mut(name)
    }

    /// Every region in name order, for listings.
    pub(crate) fn by_name(&self) -> &BTreeMap<String, Region> {
        &self.by_name
    }

    /// How many regions `uid` owns.
    pub(crate) fn owned_by(&self, uid: u32) -> usize {
        self.owned.get(&uid).copied().unwrap_or(0)
    }

    /// How many regions exist.
    pub(crate) fn len(&self) -> usize {
        self.by_name.len()
    }

    /// Adds region `name` (which must not exist).
    pub(crate) fn insert(&mut self, name: String, region: Region) {
        *self.owned.entry(region.permissions.owner).or_default() += 1;
        let replaced = self.by_name.insert(name, region);
        debug_assert!(replaced.is_none(), "a region was created twice");
    }

    /// Removes region `name`, returning it.
    pub(crate) fn remove(&mut self, name: &str) -> Option<Region> {
        let region = self.by_name.remove(name)?;
        let owner = region.permissions.owner;
        if let Some(count) = self.owned.get_mut(&owner) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                self.owned.remove(&owner);
            }
        }
        Some(region)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn region(owner: u32, size: u64) -> Region {
        Region {
            size,
            permissions: Permissions {
                owner,
                group: owner,
                mode: 0o640,
            },
            opens: 0,
        }
    }

    #[test]
    fn owners_are_counted_in_and_out() {
        let mut registry = RegionRegistry::default();
        registry.insert("a".into(), region(1000, 10));
        registry.insert("b".into(), region(1000, 20));
        registry.insert("c".into(), region(1001, 30));
        assert_eq!(registry.owned_by(1000), 2);
        assert_eq!(registry.owned_by(1001), 1);
        assert_eq!(registry.remove("a").map(|r| r.size), Some(10));
        assert_eq!(registry.remove("a"), None);
        assert_eq!(registry.owned_by(1000), 1);
        registry.remove("b");
        assert_eq!(registry.owned_by(1000), 0);
        assert_eq!(registry.len(), 1);
        let names: Vec<&String> = registry.by_name().keys().collect();
        assert_eq!(names, ["c"]);
    }

    #[test]
    fn info_shows_what_the_region_is() {
        let mut made = region(7, 4096);
        made.opens = 2;
        let info = made.info("frames");
        assert_eq!(
            (
                info.name.as_str(),
                info.size,
                info.owner_uid,
                info.mode,
                info.opens
            ),
            ("frames", 4096, 7, 0o640, 2)
        );
    }
}
