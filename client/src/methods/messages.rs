//! The public methods that send and receive messages on a mailbox, and
//! the general send and receive.

use std::time::Duration;

use bytes::Bytes;
use mailbox_proto::{Message, ReceiveOptions, SendOptions, Source, Target, Wait};

use crate::error::Error;
use crate::methods::client_methods;
use crate::ops::messages::{
    BatchReceipt, Fetch, Peek, Peeked, Post, Receive, ReceiveMany, SendMany, SendMessage,
    SendReceipt,
};
use crate::ops::{wait_at_most, Optional, OrEmpty};

client_methods! {
    /// Sends a message, waiting as long as it takes for room.
    pub fn send(mailbox: &str, payload: impl Into<Bytes>) -> Result<SendReceipt, Error> {
        run(SendMessage { mailbox, payload: payload.into(), wait: Wait::Forever })
    }

    /// Sends a message only if there is room now; otherwise fails with kind
    /// `WouldBlock` and nothing was sent.
    pub fn try_send(mailbox: &str, payload: impl Into<Bytes>) -> Result<SendReceipt, Error> {
        run(SendMessage { mailbox, payload: payload.into(), wait: Wait::Never })
    }

    /// Sends a message, waiting at most `timeout` for room; on kind `Timeout`
    /// the message was withdrawn and will never be delivered.
    pub fn send_timeout(
        mailbox: &str,
        payload: impl Into<Bytes>,
        timeout: Duration,
    ) -> Result<SendReceipt, Error> {
        run(SendMessage { mailbox, payload: payload.into(), wait: wait_at_most(timeout) })
    }

    /// Sends a message, waiting as `wait` says.
    pub fn send_with(mailbox: &str, payload: Bytes, wait: Wait) -> Result<SendReceipt, Error> {
        run(SendMessage { mailbox, payload, wait })
    }

    /// Takes the next message, waiting as long as it takes.
    pub fn receive(mailbox: &str) -> Result<Message, Error> {
        run(Receive { mailbox, wait: Wait::Forever })
    }

    /// Takes the next message if there is one now.
    pub fn try_receive(mailbox: &str) -> Result<Option<Message>, Error> {
        run(Optional(Receive { mailbox, wait: Wait::Never }))
    }

    /// Takes the next message, waiting at most `timeout` (then kind `Timeout`).
    pub fn receive_timeout(mailbox: &str, timeout: Duration) -> Result<Message, Error> {
        run(Receive { mailbox, wait: wait_at_most(timeout) })
    }

    /// Takes the next message, waiting as `wait` says.
    pub fn receive_with(mailbox: &str, wait: Wait) -> Result<Message, Error> {
        run(Receive { mailbox, wait })
    }

    /// Sends several messages at once, in order, waiting as long as it takes
    /// for room for all of them. They get consecutive sequence numbers.
    ///
    /// `Ok` means all were accepted. [`Error::Partial`] means only the first
    /// [`admitted`](Error::admitted) were (the rest never will be), an
    /// [`Error::Broker`] that none was: for example kind `MessageTooLarge`
    /// when any payload is above the mailbox's limit, or when the whole
    /// batch would be above the broker's frame limit, which is refused
    /// without sending anything. For more than fits one frame, use
    /// [`send_stream`](Self::send_stream).
    ///
    async {
        /// Dropping the future cancels the batch's wait; what the broker had
        /// admitted by then stays sent.
        ///
        /// ```no_run
        /// use mailbox_client::{Client, Error};
        ///
        /// # async fn demo() -> Result<(), Error> {
        /// let client = Client::connect_default().await?;
        /// let receipt = client.send_many("jobs", ["a", "b", "c"]).await?;
        /// println!("sent as #{:?}", receipt.sequences());
        /// match client.try_send_many("jobs", ["d", "e"]).await {
        ///     Ok(_) => println!("all sent"),
        ///     Err(Error::Partial { admitted, .. }) => println!("only {admitted} sent"),
        ///     Err(error) => return Err(error), // none sent (or connection lost)
        /// }
        /// # Ok(())
        /// # }
        /// ```
    }
    blocking {
        /// ```no_run
        /// use mailbox_client::{blocking::Client, Error};
        ///
        /// let mut client = Client::connect_default()?;
        /// let receipt = client.send_many("jobs", ["a", "b", "c"])?;
        /// assert_eq!(receipt.admitted, 3);
        /// println!("sent as #{:?}", receipt.sequences());
        ///
        /// // Without waiting: on a full mailbox only a front part may be sent.
        /// let payloads = vec!["d", "e", "f"];
        /// match client.try_send_many("jobs", payloads.clone()) {
        ///     Ok(_) => println!("all sent"),
        ///     Err(Error::Partial { admitted, .. }) => {
        ///         println!("{:?} still to send", &payloads[admitted as usize..])
        ///     }
        ///     Err(error) => return Err(error), // none sent (or connection lost)
        /// }
        /// # Ok::<(), mailbox_client::Error>(())
        /// ```
    }
    pub fn send_many(
        mailbox: &str,
        payloads: impl IntoIterator<Item = impl Into<Bytes>>,
    ) -> Result<BatchReceipt, Error> {
        run(SendMany::new(mailbox, payloads, Wait::Forever))
    }

    /// Sends several messages as far as there is room now: those that do not
    /// fit at once are not sent ([`Error::Partial`] of kind `WouldBlock`, or
    /// [`Error::Broker`] of kind `WouldBlock` when none fitted).
    pub fn try_send_many(
        mailbox: &str,
        payloads: impl IntoIterator<Item = impl Into<Bytes>>,
    ) -> Result<BatchReceipt, Error> {
        run(SendMany::new(mailbox, payloads, Wait::Never))
    }

    /// Sends several messages, waiting at most `timeout` for room for all of
    /// them; those not admitted by then are withdrawn ([`Error::Partial`] or
    /// [`Error::Broker`] of kind `Timeout`).
    pub fn send_many_timeout(
        mailbox: &str,
        payloads: impl IntoIterator<Item = impl Into<Bytes>>,
        timeout: Duration,
    ) -> Result<BatchReceipt, Error> {
        run(SendMany::new(mailbox, payloads, wait_at_most(timeout)))
    }

    /// Sends several messages, waiting as `wait` says (see
    /// [`send_many`](Self::send_many)).
    pub fn send_many_with(
        mailbox: &str,
        payloads: impl IntoIterator<Item = impl Into<Bytes>>,
        wait: Wait,
    ) -> Result<BatchReceipt, Error> {
        run(SendMany::new(mailbox, payloads, wait))
    }

    /// Takes up to `max` messages (at least 1; 0 counts as 1): waits as long
    /// as it takes for the first, then takes every one available up to
    /// `max`, in order.
    ///
    /// The answer comes in one frame, which this client accepts up to
    /// 16 MiB + 64 KiB; a larger one ends the connection and its messages
    /// are lost, so keep `max` times the mailbox's message size below that.
    ///
    async {
        /// Messages kept from cancelled receives on `mailbox` (see
        /// [Cancellation](Self#cancellation)) come first, without asking the
        /// broker.
        ///
        /// ```no_run
        /// # async fn demo(client: mailbox_client::Client) -> Result<(), mailbox_client::Error> {
        /// for message in client.receive_many("jobs", 64).await? {
        ///     println!("#{}: {:?}", message.metadata.sequence, message.payload);
        /// }
        /// # Ok(())
        /// # }
        /// ```
    }
    blocking {
        /// ```no_run
        /// use mailbox_client::blocking::Client;
        ///
        /// let mut client = Client::connect_default()?;
        /// for message in client.receive_many("jobs", 64)? {
        ///     println!("#{}: {:?}", message.metadata.sequence, message.payload);
        /// }
        /// # Ok::<(), mailbox_client::Error>(())
        /// ```
    }
    pub fn receive_many(mailbox: &str, max: u32) -> Result<Vec<Message>, Error> {
        run(ReceiveMany { mailbox, max, wait: Wait::Forever })
    }

    /// Takes up to `max` of the messages available now; none (an empty
    /// vector) when the mailbox is empty.
    pub fn try_receive_many(mailbox: &str, max: u32) -> Result<Vec<Message>, Error> {
        run(OrEmpty(ReceiveMany { mailbox, max, wait: Wait::Never }))
    }

    /// Takes up to `max` messages, waiting at most `timeout` for the first
    /// (then kind `Timeout`).
    pub fn receive_many_timeout(
        mailbox: &str,
        max: u32,
        timeout: Duration,
    ) -> Result<Vec<Message>, Error> {
        run(ReceiveMany { mailbox, max, wait: wait_at_most(timeout) })
    }

    /// Takes up to `max` messages, waiting for the first as `wait` says.
    pub fn receive_many_with(mailbox: &str, max: u32, wait: Wait) -> Result<Vec<Message>, Error> {
        run(ReceiveMany { mailbox, max, wait })
    }

    /// The general send: to a mailbox or a process ([`Target`]), with a
    /// routing key, a time-to-live and the [`Stage`](crate::Stage) to wait
    /// for ([`SendOptions`]), waiting as `wait` says for all of it.
    ///
    /// With [`Stage::Queued`](crate::Stage::Queued) it is answered when the
    /// broker holds the message, with [`Stage::Received`](crate::Stage::Received)
    /// when a receiver took it, with
    /// [`Stage::Acknowledged`](crate::Stage::Acknowledged) when a receiver
    /// acknowledged it. A wait that ends before anyone took the message
    /// fails with kind `Timeout` (or `WouldBlock`) and the message is
    /// withdrawn; one that ends after a receiver took it but before it
    /// acknowledged fails with kind `TimeoutInFlight`, and the message was
    /// **not** withdrawn.
    ///
    async {
        /// Dropping the future cancels the wait, with the same two outcomes.
        ///
        /// ```no_run
        /// use mailbox_client::{Client, SendOptions, Stage, Target, Wait};
        ///
        /// # async fn demo() -> Result<(), mailbox_client::Error> {
        /// let client = Client::connect_default().await?;
        /// let options = SendOptions {
        ///     stage: Stage::Acknowledged,
        ///     key: Some("customer-17".into()),
        ///     ttl_millis: Some(30_000),
        /// };
        /// let receipt = client
        ///     .post(Target::mailbox("orders"), "ship it", options, Wait::Forever)
        ///     .await?;
        /// println!("order #{} processed", receipt.sequence);
        /// # Ok(()) }
        /// ```
    }
    blocking {
        /// ```no_run
        /// use mailbox_client::{blocking::Client, SendOptions, Stage, Target, Wait};
        ///
        /// let mut client = Client::connect_default()?;
        /// let options = SendOptions {
        ///     stage: Stage::Acknowledged,
        ///     key: Some("customer-17".into()),
        ///     ttl_millis: Some(30_000),
        /// };
        /// let receipt = client.post(Target::mailbox("orders"), "ship it", options, Wait::Forever)?;
        /// println!("order #{} processed", receipt.sequence);
        /// # Ok::<(), mailbox_client::Error>(())
        /// ```
    }
    pub fn post(
        to: Target,
        payload: impl Into<Bytes>,
        options: SendOptions,
        wait: Wait,
    ) -> Result<SendReceipt, Error> {
        run(Post { to, payload: payload.into(), options, wait })
    }

    /// The general receive: from a mailbox or this connection's inbox
    /// ([`Source`]), one message (`options.max` of `None`) or a batch of up
    /// to `max` (0 counts as 1), with manual acknowledgement and a receiver
    /// priority ([`ReceiveOptions`]), waiting for the first message as
    /// `wait` says. With `Wait::Never` and nothing to take it fails with
    /// kind `WouldBlock`.
    ///
    /// Messages taken with `manual_ack` are held until settled: wrap each
    /// with [`Held::from_source`](crate::Held::from_source) and
    /// [`ack`](Self::ack) or [`nack`](Self::nack) it.
    ///
    async {
        /// Messages kept from cancelled receives from the same source (see
        /// [Cancellation](Self#cancellation)) come first.
        ///
        /// ```no_run
        /// use mailbox_client::{Client, Held, ReceiveOptions, Source, Wait};
        ///
        /// # async fn demo() -> Result<(), mailbox_client::Error> {
        /// let client = Client::connect_default().await?;
        /// let source = Source::Mailbox("jobs".into());
        /// let options = ReceiveOptions { max: Some(16), manual_ack: true, priority: 10 };
        /// for message in client.fetch(source.clone(), options, Wait::Forever).await? {
        ///     let held = Held::from_source(&source, message);
        ///     // ... process it, then:
        ///     client.ack(&held).await?;
        /// }
        /// # Ok(()) }
        /// ```
    }
    blocking {
        /// ```no_run
        /// use mailbox_client::{blocking::Client, Held, ReceiveOptions, Source, Wait};
        ///
        /// let mut client = Client::connect_default()?;
        /// let source = Source::Mailbox("jobs".into());
        /// let options = ReceiveOptions { max: Some(16), manual_ack: true, priority: 10 };
        /// for message in client.fetch(source.clone(), options, Wait::Forever)? {
        ///     let held = Held::from_source(&source, message);
        ///     // ... process it, then:
        ///     client.ack(&held)?;
        /// }
        /// # Ok::<(), mailbox_client::Error>(())
        /// ```
    }
    pub fn fetch(
        source: Source,
        options: ReceiveOptions,
        wait: Wait,
    ) -> Result<Vec<Message>, Error> {
        run(Fetch::new(source, options, wait))
    }

    /// Shows up to `max` of the messages queued in `mailbox` (0 counts as
    /// 1; the broker gives at most 1024, and no more than fit one frame),
    /// without taking them: nothing changes, as for `LRANGE` or a stream
    /// view. They come in the order receivers would get them (on `hash`
    /// mailboxes by sequence number; on `broadcast` ones, a subscriber sees
    /// its own unread messages, anyone else all that some subscriber has
    /// not read). Needs the right to receive from the mailbox, else kind
    /// `PermissionDenied`. [`Peeked::next`] says where the next page starts
    /// ([`peek_page`](Self::peek_page)); messages in flight (held by a
    /// receiver, not acknowledged) are not shown but counted.
    ///
    async {
        /// ```no_run
        /// # async fn demo(client: mailbox_client::Client) -> Result<(), mailbox_client::Error> {
        /// let page = client.peek("jobs", 10).await?;
        /// for message in &page.messages {
        ///     println!("#{}: {:?}", message.metadata.sequence, message.payload);
        /// }
        /// println!("{} more held by receivers", page.in_flight);
        /// # Ok(())
        /// # }
        /// ```
    }
    blocking {
        /// ```no_run
        /// use mailbox_client::blocking::Client;
        ///
        /// let mut client = Client::connect_default()?;
        /// let page = client.peek("jobs", 10)?;
        /// for message in &page.messages {
        ///     println!("#{}: {:?}", message.metadata.sequence, message.payload);
        /// }
        /// # Ok::<(), mailbox_client::Error>(())
        /// ```
    }
    pub fn peek(mailbox: &str, max: u32) -> Result<Peeked, Error> {
        run(Peek::new(Source::Mailbox(mailbox.to_owned()), None, max))
    }

    /// One page of a peek ([`peek`](Self::peek)) at a mailbox or at this
    /// connection's own inbox (`Source::Inbox { from: None }`): at most
    /// `max` messages after the one with sequence number `after` (`None`:
    /// from the first; else the `next` of the page before).
    pub fn peek_page(from: Source, after: Option<u64>, max: u32) -> Result<Peeked, Error> {
        run(Peek::new(from, after, max))
    }

    /// Every message queued in `mailbox`, shown without taking any, read
    /// page after page ([`peek_page`](Self::peek_page)). Each is a copy:
    /// a long queue takes as much memory here as in the broker. Messages
    /// taken or sent meanwhile are left out or shown as they come: a view,
    /// not a snapshot.
    pub fn peek_all(mailbox: &str) -> Result<Vec<Message>, Error> {
        all_pages(|after| Peek::page(mailbox, after))
    }
}
