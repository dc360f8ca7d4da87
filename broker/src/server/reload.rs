//! Configuration applied to a running server: at start and on every reload
//! (SIGHUP in `mailboxd`), under the lock, between two batches of requests.
//!
//! A reload changes the core's limits and access rules and (re)declares the
//! configured mailboxes: new ones appear, permissions change, settings of an
//! existing mailbox are kept (changing them could drop queued messages) and
//! a mailbox no longer in the file stays. Nothing queued is ever dropped.

use std::sync::{Arc, OnceLock, Weak};

use tracing::{info, warn};

use mailbox_proto::MailboxSettings;

use super::Shared;
use crate::core::{AccessPolicy, Core, Declared, Limits, Outcome, Permissions};

/// A mailbox the configuration declares (`[[mailbox]]`): created at start
/// and at every reload if it does not exist.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Declaration {
    /// Its name.
    pub name: String,
    /// Its settings.
    pub settings: MailboxSettings,
    /// Its owner, group and mode.
    pub permissions: Permissions,
}

/// What a reload changes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reload {
    /// The core's limits.
    pub limits: Limits,
    /// The access rules.
    pub access: AccessPolicy,
    /// The declared mailboxes.
    pub mailboxes: Vec<Declaration>,
}

/// A handle on a running server, to reload its configuration. Put a clone in
/// [`Config::control`](super::Config::control) before [`run`](super::run);
/// [`Control::reload`] then reaches that server while it runs.
#[derive(Debug, Clone, Default)]
pub struct Control {
    shared: Arc<OnceLock<Weak<Shared>>>,
}

impl Control {
    /// Applies `reload` to the running server; `false` when none runs (yet,
    /// or any more).
    pub fn reload(&self, reload: &Reload) -> bool {
        let Some(shared) = self.shared.get().and_then(Weak::upgrade) else {
            return false;
        };
        let mut state = shared.lock();
        let mut out = Outcome::new();
        apply(
            &mut state.core,
            reload,
            shared.connection_ceiling,
            shared.config.max_frame_size,
            &mut out,
        );
        // Opens that waited for a mailbox the configuration now declares.
        state.route(&mut out);
        true
    }
}

/// Attaches the server's [`Control`] and applies the configured access
/// rules and mailboxes (the limits are the core's from the start), before
/// the first connection is accepted.
pub(crate) fn start(shared: &Arc<Shared>) {
    let _ = shared.config.control.shared.set(Arc::downgrade(shared));
    let initial = Reload {
        limits: shared.config.limits,
        access: shared.config.access.clone(),
        mailboxes: shared.config.mailboxes.clone(),
    };
    let mut state = shared.lock();
    // SAFETY: geteuid has no preconditions and cannot fail.
    state.core.set_service_uid(unsafe { libc::geteuid() });
    // They are the server's from the start and do not change on a reload.
    state.refresh_server_limits();
    let mut out = Outcome::new();
    apply(
        &mut state.core,
        &initial,
        shared.connection_ceiling,
        shared.config.max_frame_size,
        &mut out,
    );
    state.route(&mut out);
}

/// Applies `reload` to `core`, logging what changed for each mailbox; the
/// answers to opens that waited for a declared mailbox go into `out`.
/// `max_connections` is held to `connection_ceiling`, what the descriptor
/// limit leaves room for; what receivers that take bytes inline may be
/// handed follows from the frame limit `max_frame_size` (the server's,
/// fixed at start).
pub(crate) fn apply(
    core: &mut Core,
    reload: &Reload,
    connection_ceiling: usize,
    max_frame_size: u32,
    out: &mut Outcome,
) {
    let mut limits = reload.limits;
    limits.max_inline_payload = Limits::inline_payload_for_frames(max_frame_size);
    if limits.max_connections > connection_ceiling {
        warn!(
            configured = limits.max_connections,
            ceiling = connection_ceiling,
            "limits.max_connections is above what the descriptor limit (RLIMIT_NOFILE) leaves \
             room for; using the ceiling (raise LimitNOFILE= or ulimit -n for more)"
        );
        limits.max_connections = connection_ceiling;
    }
    if core.limits() != limits {
        info!(?limits, "limits changed");
        core.set_limits(limits);
    }
    core.set_access_policy(reload.access.clone());
    for declaration in &reload.mailboxes {
        let name = &declaration.name;
        let permissions = declaration.permissions;
        let owner = permissions.owner;
        let group = permissions.group;
        let mode = format!("{:03o}", permissions.mode);
        match core.declare(name, declaration.settings.clone(), permissions, out) {
            Ok(Declared::Created) => {
                info!(mailbox = %name, owner, group, %mode, "declared mailbox created");
            }
            Ok(Declared::Unchanged) => {}
            Ok(Declared::PermissionsChanged) => {
                info!(mailbox = %name, owner, group, %mode, "declared mailbox: permissions changed");
            }
            Ok(Declared::SettingsDiffer) => warn!(
                mailbox = %name,
                "mailbox exists with other settings than the configuration declares; \
                 kept its settings and queued messages (its permissions were applied); \
                 delete it to have it recreated as declared at the next reload"
            ),
            Err(error) => warn!(mailbox = %name, %error, "cannot declare mailbox"),
        }
    }
}
