//! The public methods on this connection's inbox: sending to a process,
//! receiving from the inbox, the inbox's capacity and rights.

use std::time::Duration;

use bytes::Bytes;
use mailbox_proto::{Address, Capacity, Message, Wait};

use crate::error::Error;
use crate::methods::client_methods;
use crate::ops::inbox::{ReceiveInbox, SetInboxCapacity, SetInboxPermissions};
use crate::ops::messages::{Post, SendReceipt};
use crate::ops::{wait_at_most, Optional};

client_methods! {
    /// Sends a message straight to a process's inbox (by address or by a
    /// well-known name it holds), waiting as long as it takes for room in
    /// it. Kind `NoSuchProcess` when no connected process has that address
    /// or name.
    ///
    async {
        /// ```no_run
        /// # async fn demo() -> Result<(), mailbox_client::Error> {
        /// let client = mailbox_client::Client::connect_default().await?;
        /// client.send_to("logger", "started").await?; // a well-known name
        /// client.send_to(42, "hello").await?; // a process address
        /// # Ok(()) }
        /// ```
    }
    blocking {
        /// ```no_run
        /// use mailbox_client::blocking::Client;
        ///
        /// let mut client = Client::connect_default()?;
        /// client.send_to("logger", "started")?; // a well-known name
        /// client.send_to(42, "hello")?; // a process address
        /// # Ok::<(), mailbox_client::Error>(())
        /// ```
    }
    pub fn send_to(
        process: impl Into<Address>,
        payload: impl Into<Bytes>,
    ) -> Result<SendReceipt, Error> {
        run(Post::to_process(process, payload, Wait::Forever))
    }

    /// Sends a message to a process's inbox only if there is room now;
    /// otherwise fails with kind `WouldBlock` and nothing was sent.
    pub fn try_send_to(
        process: impl Into<Address>,
        payload: impl Into<Bytes>,
    ) -> Result<SendReceipt, Error> {
        run(Post::to_process(process, payload, Wait::Never))
    }

    /// Sends a message to a process's inbox, waiting at most `timeout` for
    /// room; on kind `Timeout` it was withdrawn and will never be delivered.
    pub fn send_to_timeout(
        process: impl Into<Address>,
        payload: impl Into<Bytes>,
        timeout: Duration,
    ) -> Result<SendReceipt, Error> {
        run(Post::to_process(process, payload, wait_at_most(timeout)))
    }

    /// Takes the next message from this connection's inbox, from any
    /// sender, waiting as long as it takes.
    ///
    async {
        /// ```no_run
        /// # async fn demo() -> Result<(), mailbox_client::Error> {
        /// let client = mailbox_client::Client::connect_default().await?;
        /// let message = client.receive_inbox().await?;
        /// println!("{:?} from process {}", message.payload, message.metadata.sender_connection);
        /// # Ok(()) }
        /// ```
    }
    blocking {
        /// ```no_run
        /// use mailbox_client::blocking::Client;
        ///
        /// let mut client = Client::connect_default()?;
        /// let message = client.receive_inbox()?;
        /// println!("{:?} from process {}", message.payload, message.metadata.sender_connection);
        /// # Ok::<(), mailbox_client::Error>(())
        /// ```
    }
    pub fn receive_inbox() -> Result<Message, Error> {
        run(ReceiveInbox { from: None, wait: Wait::Forever })
    }

    /// Takes the next message from this connection's inbox if there is one
    /// now.
    pub fn try_receive_inbox() -> Result<Option<Message>, Error> {
        run(Optional(ReceiveInbox { from: None, wait: Wait::Never }))
    }

    /// Takes the next message from this connection's inbox, waiting at most
    /// `timeout` (then kind `Timeout`).
    pub fn receive_inbox_timeout(timeout: Duration) -> Result<Message, Error> {
        run(ReceiveInbox { from: None, wait: wait_at_most(timeout) })
    }

    /// Takes the next message that `process` sent to this connection's
    /// inbox, waiting as long as it takes; messages from others stay there,
    /// in order, for other receives.
    ///
    /// `process` is a well-known name or a process address. A name is
    /// resolved per message: the receive takes what was sent by whoever
    /// held the name when the broker accepted the message (even if it has
    /// let the name go or left since), and waits while nobody holds it, so
    /// two processes that receive from each other's names may start in
    /// either order. An address is one connection: the receive fails with
    /// kind `NoSuchProcess` when no connection has it and nothing it sent
    /// waits in the inbox, or when it leaves without sending more.
    ///
    async {
        /// ```no_run
        /// # async fn demo() -> Result<(), mailbox_client::Error> {
        /// let client = mailbox_client::Client::connect_default().await?;
        /// client.send_to("calculator", "2 + 2").await?;
        /// let answer = client.receive_from("calculator").await?;
        /// # Ok(()) }
        /// ```
    }
    blocking {
        /// ```no_run
        /// use mailbox_client::blocking::Client;
        ///
        /// let mut client = Client::connect_default()?;
        /// client.send_to("calculator", "2 + 2")?;
        /// let answer = client.receive_from("calculator")?;
        /// # Ok::<(), mailbox_client::Error>(())
        /// ```
    }
    pub fn receive_from(process: impl Into<Address>) -> Result<Message, Error> {
        run(ReceiveInbox { from: Some(process.into()), wait: Wait::Forever })
    }

    /// Takes the next message from `process` in this connection's inbox if
    /// there is one now (`None` also for a name nobody holds; an address
    /// no connection has, with nothing from it there, is `NoSuchProcess`).
    /// See [`receive_from`](Self::receive_from) for how a name is matched.
    pub fn try_receive_from(process: impl Into<Address>) -> Result<Option<Message>, Error> {
        run(Optional(ReceiveInbox { from: Some(process.into()), wait: Wait::Never }))
    }

    /// Takes the next message from `process` in this connection's inbox,
    /// waiting at most `timeout` (then kind `Timeout`, also while nobody
    /// holds a name). See [`receive_from`](Self::receive_from) for how a
    /// name is matched.
    pub fn receive_from_timeout(
        process: impl Into<Address>,
        timeout: Duration,
    ) -> Result<Message, Error> {
        run(ReceiveInbox { from: Some(process.into()), wait: wait_at_most(timeout) })
    }

    /// Sets the capacity of this connection's inbox (default
    /// [`DEFAULT_INBOX_CAPACITY`](crate::DEFAULT_INBOX_CAPACITY)); messages
    /// already in it stay.
    pub fn set_inbox_capacity(capacity: Capacity) -> Result<(), Error> {
        run(SetInboxCapacity(capacity))
    }

    /// Sets who may send to this connection's inbox: `mode` (only the send
    /// bits count; the broker's default, `0o600`, admits this uid and root
    /// alone, so `0o622` opens it to everyone) and `group` (this process
    /// must be a member, unless root).
    pub fn set_inbox_permissions(mode: Option<u32>, group: Option<u32>) -> Result<(), Error> {
        run(SetInboxPermissions { mode, group })
    }
}
