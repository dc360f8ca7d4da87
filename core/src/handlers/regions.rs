//! Shared-memory regions: create, delete, info, list, open. The rules
//! (names, rights, sizes, the budget) are decided here; the memory files
//! are the broker's (see `regions.rs`).

use mailbox_proto::{BrokerError, ErrorKind, RegionAccess, Response};

use crate::handlers::messages::budget_refusal;
use crate::listing;
use crate::regions::{Region, RegionChange};
use crate::rights::check_mode;
use crate::{check_name, error, ConnectionId, Core, Outcome, Permissions, Right, Ticket};

impl Core {
    /// `CreateRegion`: a region of `size` bytes owned by the caller, its
    /// bytes reserved in the budget (charged to the caller). An existing
    /// region of the caller with the same size is accepted (`created:
    /// false`), `mode` and `group` applied to it; anything else is
    /// `RegionExists`.
    pub(crate) fn create_region(
        &mut self,
        ticket: Ticket,
        name: String,
        size: u64,
        mode: Option<u32>,
        group: Option<u32>,
        out: &mut Outcome,
    ) -> Result<Option<Response>, BrokerError> {
        let connection = ticket.connection;
        let Some(caller) = self.caller(connection) else {
            return Err(error(
                ErrorKind::Internal,
                "request from an unknown connection",
            ));
        };
        let creator = caller.peer;
        check_name(&name)?;
        check_mode(mode)?;
        self.policy.check_prefix(&caller, &name)?;
        if let Some(gid) = group {
            self.check_group_member(connection, gid, &name)?;
        }
        if size == 0 || size > self.limits.max_region_size {
            return Err(error(
                ErrorKind::InvalidSettings,
                format!(
                    "a region of {size} bytes cannot be made: the size must be at least 1 byte \
                     and at most {} (limits.max_region_size)",
                    self.limits.max_region_size
                ),
            ));
        }
        if let Some(existing) = self.regions.get_mut(&name) {
            let old = existing.permissions;
            if old.owner != creator.uid {
                return Err(error(
                    ErrorKind::RegionExists,
                    format!(
                        "region {name} exists and belongs to uid {}; uid {} cannot create it",
                        old.owner, creator.uid
                    ),
                ));
            }
            if existing.size != size {
                return Err(error(
                    ErrorKind::RegionExists,
                    format!(
                        "region {name} exists with {} bytes, not {size}; delete it first or use its size",
                        existing.size
                    ),
                ));
            }
            existing.permissions = Permissions {
                owner: old.owner,
                group: group.unwrap_or(old.group),
                mode: mode.unwrap_or(old.mode),
            };
            return Ok(Some(Response::Created { created: false }));
        }
        let owned = self.regions.owned_by(creator.uid);
        if owned >= self.limits.max_regions_per_uid && creator.uid != 0 {
            return Err(error(
                ErrorKind::TooManyRequests,
                format!(
                    "uid {} owns {owned} regions, its limit (limits.max_regions_per_uid); delete some first",
                    creator.uid
                ),
            ));
        }
        let privileged = self.privileged(connection, creator);
        if let Err(exhausted) = self.budget.try_reserve(creator.uid, privileged, size, 0) {
            return Err(error(
                ErrorKind::BrokerFull,
                format!(
                    "a region of {size} bytes does not fit: {}",
                    budget_refusal(&self.budget, exhausted, creator.uid)
                ),
            ));
        }
        let permissions = Permissions {
            owner: creator.uid,
            group: group.unwrap_or(creator.gid),
            mode: mode.unwrap_or(self.policy.default_mode),
        };
        self.regions.insert(
            name.clone(),
            Region {
                size,
                permissions,
                opens: 0,
            },
        );
        out.regions
            .push(RegionChange::Created { ticket, name, size });
        Ok(Some(Response::Created { created: true }))
    }

    /// Forgets region `name` whose memory file the broker could not make,
    /// and gives its bytes back to the budget (see
    /// [`RegionChange::Created`]).
    pub fn abandon_region(&mut self, name: &str) {
        if let Some(region) = self.regions.remove(name) {
            self.budget
                .release(region.permissions.owner, region.size, 0);
        }
    }

    /// `DeleteRegion`: for who may manage it. Its bytes go back to the
    /// budget at once, even while clients still map it: the broker no
    /// longer holds it, the kernel frees it with the last mapping.
    pub(crate) fn delete_region(
        &mut self,
        connection: ConnectionId,
        name: &str,
        out: &mut Outcome,
    ) -> Result<Option<Response>, BrokerError> {
        self.check_region(connection, name, Right::Manage)?;
        let Some(region) = self.regions.remove(name) else {
            return Err(missing_region(name));
        };
        self.budget
            .release(region.permissions.owner, region.size, 0);
        out.regions.push(RegionChange::Deleted {
            name: name.to_owned(),
        });
        Ok(Some(Response::Deleted))
    }

    /// `RegionInfo`: for a caller with any right on it.
    pub(crate) fn region_info(
        &self,
        connection: ConnectionId,
        name: &str,
    ) -> Result<Option<Response>, BrokerError> {
        let region = self.regions.get(name).ok_or_else(|| missing_region(name))?;
        if let Some(caller) = self.caller(connection) {
            if !region.permissions.visible_to(&caller, &self.policy) {
                region
                    .permissions
                    .check_region(&caller, Right::Receive, &self.policy, name)?;
            }
        }
        Ok(Some(Response::RegionInfo(Box::new(region.info(name)))))
    }

    /// `ListRegionPage`: the regions the caller has some right on, a page
    /// at a time (`listing::page`).
    pub(crate) fn list_region_page(
        &self,
        connection: ConnectionId,
        after: Option<&str>,
        max: u32,
    ) -> Result<Option<Response>, BrokerError> {
        let caller = self.caller(connection);
        let (regions, next) = listing::page(self.regions.by_name(), after, max, |name, region| {
            caller
                .as_ref()
                .is_none_or(|caller| region.permissions.visible_to(caller, &self.policy))
                .then(|| region.info(name))
        });
        Ok(Some(Response::RegionPage { regions, next }))
    }

    /// `OpenRegion`: the read right, and the write right to write. The
    /// answer names the region and the access; the broker attaches the
    /// descriptor.
    pub(crate) fn open_region(
        &mut self,
        connection: ConnectionId,
        name: &str,
        access: RegionAccess,
    ) -> Result<Option<Response>, BrokerError> {
        self.check_region(connection, name, Right::Receive)?;
        if access.writes() {
            self.check_region(connection, name, Right::Send)?;
        }
        let region = self
            .regions
            .get_mut(name)
            .ok_or_else(|| missing_region(name))?;
        region.opens += 1;
        Ok(Some(Response::RegionOpened {
            region: Box::new(region.info(name)),
            access,
        }))
    }

    /// `Ok` when `connection` has `right` on region `name`, or when it does
    /// not exist (the operation then says so).
    fn check_region(
        &self,
        connection: ConnectionId,
        name: &str,
        right: Right,
    ) -> Result<(), BrokerError> {
        match (self.regions.get(name), self.caller(connection)) {
            (Some(region), Some(caller)) => {
                region
                    .permissions
                    .check_region(&caller, right, &self.policy, name)
            }
            _ => Ok(()),
        }
    }

    /// Number of regions.
    pub fn region_count(&self) -> usize {
        self.regions.len()
    }
}

/// `NoSuchRegion` for `name`.
fn missing_region(name: &str) -> BrokerError {
    error(
        ErrorKind::NoSuchRegion,
        format!("no region is called {name}"),
    )
}
