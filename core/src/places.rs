//! Where messages wait: the named mailboxes and the connections' inboxes,
//! and the lookups of a mailbox by name that every request makes.

use std::collections::BTreeMap;

use mailbox_proto::{BrokerError, ErrorKind};

use crate::mailbox::Mailbox;
use crate::types::Place;
use crate::{check_name, error, ConnectionMap, Core};

/// Every place messages wait: named mailboxes and connections' inboxes.
#[derive(Debug, Default)]
pub(crate) struct Places {
    // Boxed: a mailbox is a few hundred bytes, and a map keeps spare slots.
    // Ordered, so that a listing's page starts where the last one ended
    // without building the whole list (`listing.rs`).
    pub(crate) mailboxes: BTreeMap<String, Box<Mailbox>>,
    pub(crate) inboxes: ConnectionMap<Box<Mailbox>>,
}

impl Places {
    #[inline]
    pub(crate) fn get(&self, place: &Place) -> Option<&Mailbox> {
        match place {
            Place::Mailbox(name) => self.mailboxes.get(name).map(|m| &**m),
            Place::Inbox(owner) => self.inboxes.get(owner).map(|m| &**m),
            Place::Name(_) | Place::Opening(_) => None,
        }
    }

    #[inline]
    pub(crate) fn get_mut(&mut self, place: &Place) -> Option<&mut Mailbox> {
        match place {
            Place::Mailbox(name) => self.mailboxes.get_mut(name).map(|m| &mut **m),
            Place::Inbox(owner) => self.inboxes.get_mut(owner).map(|m| &mut **m),
            Place::Name(_) | Place::Opening(_) => None,
        }
    }

    #[inline]
    pub(crate) fn all(&self) -> impl Iterator<Item = &Mailbox> {
        self.mailboxes
            .values()
            .chain(self.inboxes.values())
            .map(|mailbox| &**mailbox)
    }

    #[inline]
    pub(crate) fn all_mut(&mut self) -> impl Iterator<Item = &mut Mailbox> {
        self.mailboxes
            .values_mut()
            .chain(self.inboxes.values_mut())
            .map(|mailbox| &mut **mailbox)
    }
}

impl Core {
    pub(crate) fn mailbox(&self, name: &str) -> Result<&Mailbox, BrokerError> {
        match self.places.mailboxes.get(name) {
            Some(mailbox) => Ok(mailbox),
            None => Err(missing_mailbox(name)),
        }
    }

    pub(crate) fn mailbox_mut(&mut self, name: &str) -> Result<&mut Mailbox, BrokerError> {
        match self.places.mailboxes.get_mut(name) {
            Some(mailbox) => Ok(mailbox),
            None => Err(missing_mailbox(name)),
        }
    }
}

/// What a request naming a mailbox that does not exist learns:
/// `InvalidName` when no mailbox could have that name, else
/// `NoSuchMailbox`.
pub(crate) fn missing_mailbox(name: &str) -> BrokerError {
    match check_name(name) {
        Err(invalid) => invalid,
        Ok(()) => error(
            ErrorKind::NoSuchMailbox,
            format!("no mailbox named {name}; create it first"),
        ),
    }
}
