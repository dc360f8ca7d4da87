//! The public methods of manual acknowledgement: held receives and their
//! settling.

use mailbox_proto::{Verdict, Wait};

use crate::error::Error;
use crate::methods::client_methods;
use crate::ops::acknowledgements::{Held, ReceiveHeld, Settle};

client_methods! {
    /// Takes the next message from `mailbox` with manual acknowledgement,
    /// waiting for it as `wait` says: the broker holds it for this
    /// connection until it is settled with [`ack`](Self::ack) or
    /// [`nack`](Self::nack), and puts it back at the head of the mailbox if
    /// the connection ends first. Kind `InvalidRequest` on a broadcast
    /// mailbox.
    ///
    async {
        /// A held message that crossed the cancel of a dropped call is kept,
        /// still held, for this connection's next held receive from
        /// `mailbox`.
        ///
        /// ```no_run
        /// use mailbox_client::{Client, Wait};
        ///
        /// # async fn demo() -> Result<(), mailbox_client::Error> {
        /// let client = Client::connect_default().await?;
        /// let held = client.receive_held("jobs", Wait::Forever).await?;
        /// match std::str::from_utf8(&held.message.payload) {
        ///     Ok(job) => {
        ///         println!("doing {job}");
        ///         client.ack(&held).await?;
        ///     }
        ///     // Back to the tail, for someone else (or later).
        ///     Err(_) => client.nack(&held, true).await?,
        /// }
        /// # Ok(()) }
        /// ```
    }
    blocking {
        /// ```no_run
        /// use mailbox_client::{blocking::Client, Wait};
        ///
        /// let mut client = Client::connect_default()?;
        /// let held = client.receive_held("jobs", Wait::Forever)?;
        /// match std::str::from_utf8(&held.message.payload) {
        ///     Ok(job) => {
        ///         println!("doing {job}");
        ///         client.ack(&held)?;
        ///     }
        ///     // Back to the tail, for someone else (or later).
        ///     Err(_) => client.nack(&held, true)?,
        /// }
        /// # Ok::<(), mailbox_client::Error>(())
        /// ```
    }
    pub fn receive_held(mailbox: &str, wait: Wait) -> Result<Held, Error> {
        run(ReceiveHeld::mailbox(mailbox, wait))
    }

    /// Takes the next message from this connection's inbox with manual
    /// acknowledgement, as [`receive_held`](Self::receive_held) does for a
    /// mailbox.
    pub fn receive_inbox_held(wait: Wait) -> Result<Held, Error> {
        run(ReceiveHeld::inbox(wait))
    }

    /// Acknowledges a held message: done with it, it leaves the broker (and
    /// a sender waiting for [`Stage::Acknowledged`](crate::Stage::Acknowledged)
    /// is answered). Kind `NotHeld` when this connection does not hold it
    /// (any more): e.g. the mailbox's acknowledgement timeout
    /// ([`MailboxSettings::ack_timeout_millis`](crate::MailboxSettings::ack_timeout_millis))
    /// passed and it went back, even if it was delivered to this connection
    /// again (that delivery is another [`Held`]).
    pub fn ack(held: &Held) -> Result<(), Error> {
        run(Settle { held, verdict: Verdict::Ack })
    }

    /// Gives a held message back: it returns to its mailbox (or inbox), to
    /// the head or, with `to_tail`, to the tail, and its redelivery count
    /// goes up (past the mailbox's maximum deliveries it is dead-lettered).
    pub fn nack(held: &Held, to_tail: bool) -> Result<(), Error> {
        run(Settle { held, verdict: Verdict::Nack { to_tail } })
    }

    /// Settles a held message with `verdict` ([`ack`](Self::ack) and
    /// [`nack`](Self::nack) are the two verdicts).
    pub fn settle(held: &Held, verdict: Verdict) -> Result<(), Error> {
        run(Settle { held, verdict })
    }
}
