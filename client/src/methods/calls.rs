//! The public methods of request/reply: calls and their replies.

use std::time::Duration;

use bytes::Bytes;
use mailbox_proto::{Message, SendOptions, Target, Wait};

use crate::error::Error;
use crate::methods::client_methods;
use crate::ops::calls::{Call, Reply};
use crate::ops::wait_at_most;

client_methods! {
    /// Sends `payload` as a call's request to `to` (a mailbox or a process)
    /// and waits at most `timeout` for the reply, which it returns (its
    /// [`Metadata::call`](crate::Metadata::call) is the call's id). Kind
    /// `NoReply` when the process that took the request left (or the
    /// request was dropped) without replying, `Timeout` when the time ran
    /// out (the handler's late reply then fails with `CallEnded`).
    ///
    async {
        /// Dropping the future cancels the call the same way.
        ///
        /// Many calls may be in flight on one connection at once, from clones
        /// of this client.
        ///
        /// ```no_run
        /// use mailbox_client::{Client, Target};
        /// use std::time::Duration;
        ///
        /// # async fn demo() -> Result<(), mailbox_client::Error> {
        /// let client = Client::connect_default().await?;
        /// let reply = client
        ///     .call(Target::process("resolver"), "example.org", Duration::from_secs(2))
        ///     .await?;
        /// println!("{:?}", reply.payload);
        /// # Ok(()) }
        /// ```
    }
    blocking {
        /// ```no_run
        /// use mailbox_client::{blocking::Client, Target};
        /// use std::time::Duration;
        ///
        /// let mut client = Client::connect_default()?;
        /// let reply = client.call(Target::process("resolver"), "example.org", Duration::from_secs(2))?;
        /// println!("{:?}", reply.payload);
        /// # Ok::<(), mailbox_client::Error>(())
        /// ```
    }
    pub fn call(
        to: Target,
        payload: impl Into<Bytes>,
        timeout: Duration,
    ) -> Result<Message, Error> {
        run(Call {
            to,
            payload: payload.into(),
            options: SendOptions::default(),
            wait: wait_at_most(timeout),
        })
    }

    /// A call with a routing key and a time-to-live for its request
    /// (`options.stage` is ignored), waiting for the reply as `wait` says.
    pub fn call_with(
        to: Target,
        payload: impl Into<Bytes>,
        options: SendOptions,
        wait: Wait,
    ) -> Result<Message, Error> {
        run(Call { to, payload: payload.into(), options, wait })
    }

    /// Answers a call whose request this connection received: `request` is
    /// that message, whose [`Metadata::call`](crate::Metadata::call) names
    /// the call. A message that is no call's request is refused here,
    /// without asking the broker, as kind `NotHeld`; the broker answers
    /// `NotHeld` too for a call this connection does not hold (answered
    /// already), and `CallEnded` when the caller stopped waiting.
    ///
    async {
        /// ```no_run
        /// # async fn demo() -> Result<(), mailbox_client::Error> {
        /// let client = mailbox_client::Client::connect_default().await?;
        /// client.claim_name("upper").await?;
        /// loop {
        ///     let request = client.receive_inbox().await?;
        ///     if request.metadata.call().is_some() {
        ///         let answer = request.payload.to_ascii_uppercase();
        ///         client.reply(&request, answer).await?;
        ///     }
        /// }
        /// # }
        /// ```
    }
    blocking {
        /// ```no_run
        /// use mailbox_client::blocking::Client;
        ///
        /// let mut client = Client::connect_default()?;
        /// client.claim_name("upper")?;
        /// loop {
        ///     let request = client.receive_inbox()?;
        ///     if request.metadata.call().is_some() {
        ///         let answer = request.payload.to_ascii_uppercase();
        ///         client.reply(&request, answer)?;
        ///     }
        /// }
        /// # Ok::<(), mailbox_client::Error>(())
        /// ```
    }
    pub fn reply(request: &Message, payload: impl Into<Bytes>) -> Result<(), Error> {
        run(Reply::to(request, payload)?)
    }
}
