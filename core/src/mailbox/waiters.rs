//! The operations that wait in a mailbox's lines: a waiting send (one
//! payload or a batch, and how far it waits before it is answered), a
//! waiting receive, and what an operation needs from the world around the
//! mailbox ([`Context`]).
//!
//! What it deliberately does not do: decide who is served (each delivery
//! policy's pump does) or keep any count (the ledger does).

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use mailbox_proto::{BrokerError, Message, Response};

use crate::budget::Budget;
use crate::line::Ticketed;
use crate::names::NameRegistry;
use crate::types::{Clock, ConnectionId, Outcome, Peer, Ticket};

/// What an operation needs from the world around the mailbox.
pub(crate) struct Context<'a> {
    pub out: &'a mut Outcome,
    pub budget: &'a mut Budget,
    pub clock: &'a Clock,
    /// Who holds which well-known names (an inbox stamps what it accepts
    /// with its sender's names).
    pub names: &'a NameRegistry,
}

/// The payloads of a waiting send: one message, or a batch admitted one by
/// one from the front.
#[derive(Debug)]
pub(crate) enum Load {
    One(Bytes),
    Many(Batch),
}

/// A batch send's payloads still waiting, and what was admitted so far.
#[derive(Debug, Default)]
pub(crate) struct Batch {
    pub rest: VecDeque<Bytes>,
    pub admitted: u32,
    pub first_sequence: u64,
    pub recipients: u32,
}

/// How far a send waits before it is answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Until {
    /// Answered at admission.
    Queued,
    /// Answered when a receiver takes it.
    Received,
    /// Answered when a receiver acknowledges it.
    Acknowledged,
    /// A call: answered by a reply, which the core routes.
    Reply(u64),
}

/// What only some sends carry (boxed, so plain sends stay small).
#[derive(Debug, Clone)]
pub(crate) struct SendExtra {
    pub until: Until,
    pub key: Option<String>,
    pub ttl: Option<Duration>,
}

/// A send that has not been (completely) admitted yet. The bytes of its
/// waiting payloads are reserved in the budget.
#[derive(Debug)]
pub(crate) struct WaitingSend {
    pub ticket: Ticket,
    pub sender: Peer,
    pub load: Load,
    /// Payload bytes not admitted yet (what withdrawing it releases).
    pub held: u64,
    pub extra: Option<Box<SendExtra>>,
}

impl Ticketed for WaitingSend {
    fn ticket(&self) -> Ticket {
        self.ticket
    }
}

impl Ticketed for WaitingReceive {
    fn ticket(&self) -> Ticket {
        self.ticket
    }
}

impl WaitingSend {
    /// How many of its payloads still wait for admission.
    pub fn waiting_count(&self) -> u64 {
        match &self.load {
            Load::One(_) => 1,
            Load::Many(batch) => batch.rest.len() as u64,
        }
    }

    #[inline]
    pub(super) fn until(&self) -> Until {
        self.extra
            .as_ref()
            .map_or(Until::Queued, |extra| extra.until)
    }

    /// The answer to this send when it ends without all of it admitted.
    pub fn failed(&self, error: BrokerError, next_sequence: u64) -> Result<Response, BrokerError> {
        match &self.load {
            Load::One(_) => Err(error),
            Load::Many(batch) => Ok(Response::SentMany {
                first_sequence: if batch.admitted == 0 {
                    next_sequence
                } else {
                    batch.first_sequence
                },
                admitted: batch.admitted,
                recipients: batch.recipients,
                stopped: Some(error),
            }),
        }
    }
}

/// Whose messages a receive on an inbox takes.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) enum Sender {
    /// Those one connection sent.
    Process(ConnectionId),
    /// Those sent by whoever held this well-known name when the inbox
    /// accepted them (resolved per message, not once).
    Name(Arc<str>),
}

/// A receive waiting for a message: a single one, or a batch of up to `max`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct WaitingReceive {
    pub ticket: Ticket,
    /// Up to how many messages it takes; `None` for a single `Receive`.
    pub max: Option<u32>,
    /// The receiver settles each message itself.
    pub manual: bool,
    /// Its rank on a priority mailbox (higher first).
    pub priority: i32,
    /// On an inbox: take only messages of this sender.
    pub from: Option<Sender>,
    /// The longest payload it may be handed: `u32::MAX` when its
    /// connection takes files, else what fits its frames inline
    /// ([`crate::Limits::inline_limit`]). Every policy sizes its batches
    /// through [`super::batch::BatchSize`], which holds to it, so a
    /// message it cannot take is never taken for it.
    pub inline_limit: u32,
}

impl WaitingReceive {
    /// A plain receive of `max` messages (`None`: one).
    pub fn plain(ticket: Ticket, max: Option<u32>) -> Self {
        Self {
            ticket,
            max,
            manual: false,
            priority: 0,
            from: None,
            inline_limit: u32::MAX,
        }
    }

    /// Whether a payload of `len` bytes may be handed to it.
    #[inline]
    pub(super) fn takes(&self, len: usize) -> bool {
        len <= self.inline_limit as usize
    }

    /// Answers it with the error that says why the next message (number
    /// `sequence`, when admitted already) is not for it: a memory file
    /// too long for its frames, on a connection that did not accept files.
    /// The message stays where it is, for other receivers.
    pub(super) fn refuse(self, sequence: Option<u64>, len: usize, out: &mut Outcome) {
        let which =
            sequence.map_or_else(|| "the next message".to_owned(), |n| format!("message {n}"));
        out.reply(
            self.ticket,
            Err(BrokerError::new(
                mailbox_proto::ErrorKind::MessageTooLarge,
                format!(
                    "{which} is a memory file of {len} bytes; this client does not accept files \
                     (AcceptFiles) and takes at most {} bytes inline; the message stays for \
                     other receivers",
                    self.inline_limit
                ),
            )),
        );
    }

    #[inline]
    pub(super) fn limit(&self) -> usize {
        self.max.map_or(1, |max| max.max(1) as usize)
    }

    /// Answers it with `messages` (one or more).
    #[inline]
    pub(super) fn deliver(self, mut messages: Vec<Message>, out: &mut Outcome) {
        let response = match self.max {
            Some(_) => Response::ReceivedMany(messages),
            None => match messages.pop() {
                Some(message) => Response::Received(message),
                None => return,
            },
        };
        out.reply(self.ticket, Ok(response));
    }
}

/// What [`super::Mailbox::withdraw`] took out of a line.
#[derive(Debug)]
pub(crate) enum Withdrawn {
    /// A send that was not (completely) admitted.
    Send(WaitingSend),
    /// A waiting receive.
    Receive,
    /// A watched send whose message was queued: the message is gone too.
    Queued,
    /// A watched send whose message a receiver holds: the message stays.
    InFlight,
}

/// Whether an operation finished inside the call or now waits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Progress {
    /// It was answered (its reply is in the outcome).
    Done,
    /// It waits in the mailbox's line (or, admitted, for its stage).
    Waiting,
}
