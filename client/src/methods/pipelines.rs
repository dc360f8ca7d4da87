//! The public methods that keep a window of requests in flight: pipelined
//! and streamed sends and receives (the loop is [`crate::pipeline`]).

use bytes::Bytes;
use mailbox_proto::{Message, Wait};

use crate::error::Error;
use crate::methods::client_methods;
use crate::pipeline::{
    PipelineError, ReceivePipeline, ReceiveStream, SendPipeline, SendStream, StreamError,
    StreamReceipt,
};
use crate::SendReceipt;

client_methods! {
    /// Sends every payload to `mailbox` with up to `window` sends in flight,
    /// writing many requests per `write` and reading many answers per `read`.
    ///
    /// Returns the receipts in input order. At the first failure no further
    /// payload is sent, the answers of those in flight are still collected,
    /// and the [`PipelineError`] says exactly which positions were accepted.
    blocking {
        ///
        /// The answers of one window must fit in the socket's buffers while this
        /// method writes (a send's answer is about 20 bytes, so windows of
        /// thousands are fine).
    }
    pub fn send_pipelined<I>(
        mailbox: &str,
        payloads: I,
        window: usize,
        wait: Wait,
    ) -> Result<Vec<SendReceipt>, PipelineError>
    where [I: IntoIterator, I::Item: Into<Bytes>] {
        run_window(SendPipeline::new(mailbox, payloads, window, wait))
    }

    /// Receives `count` messages from `mailbox` with up to `window` receives
    /// in flight, handing each to `each` in the order the broker gave them.
    ///
    /// Never asks for more than `count` messages. At the first failure the
    /// outstanding receives are cancelled, but a message the broker handed
    /// over before the cancel still reaches `each`, so nothing is lost; then
    /// the failure is returned. Returns how many messages `each` got.
    pub fn receive_pipelined(
        mailbox: &str,
        count: usize,
        window: usize,
        wait: Wait,
        each: impl FnMut(Message),
    ) -> Result<usize, Error> {
        run_window(ReceivePipeline::new(mailbox, count, window, wait, each))
    }

    /// Sends every payload to `mailbox` in batches (`SendMany`) of up to
    /// `batch` payloads, with up to `window` batches in flight: many frames
    /// per `write`, many answers per `read`. A batch is also cut short where
    /// it would not fit the broker's frame limit, so any payloads a single
    /// send would take can be streamed.
    ///
    /// Returns how many were accepted (all of them) with each batch's
    /// receipt. When a batch stops early or fails, no further batch is sent,
    /// the answers of those in flight are still collected, and the
    /// [`StreamError`] says exactly which positions were accepted.
    async {
        /// Dropping the future cancels the batches in flight; what the broker
        /// admitted of them stays sent.
    }
    blocking {
        ///
        /// ```no_run
        /// use mailbox_client::{blocking::Client, Bytes, Wait};
        ///
        /// let mut client = Client::connect_default()?;
        /// let payloads = (0..100_000u32).map(|i| Bytes::from(i.to_le_bytes().to_vec()));
        /// match client.send_stream("jobs", payloads, 256, 4, Wait::Forever) {
        ///     Ok(receipt) => println!("{} sent", receipt.accepted),
        ///     Err(error) => eprintln!("{error}; accepted: {:?}", error.accepted),
        /// }
        /// # Ok::<(), mailbox_client::Error>(())
        /// ```
    }
    pub fn send_stream<I>(
        mailbox: &str,
        payloads: I,
        batch: usize,
        window: usize,
        wait: Wait,
    ) -> Result<StreamReceipt, StreamError>
    where [I: IntoIterator<Item = Bytes>] {
        run_window(SendStream::new(mailbox, payloads, batch, window, wait))
    }

    /// Receives `count` messages from `mailbox` by batches (`ReceiveMany`) of
    /// up to `max`, with up to `window` of them in flight, handing each
    /// message to `each` in the order the broker gave them. Returns how many
    /// messages `each` got.
    ///
    /// Never asks for more than it still needs: the `max`s of the receives
    /// in flight never add up to more than `count` minus what was received,
    /// so no message beyond the `count`th is taken from the mailbox. At the
    /// first failure the outstanding receives are cancelled, but messages
    /// the broker handed over before the cancel still reach `each`; then the
    /// failure is returned.
    blocking {
        ///
        /// ```no_run
        /// use mailbox_client::{blocking::Client, Wait};
        ///
        /// let mut client = Client::connect_default()?;
        /// let mut bytes = 0;
        /// let got = client.receive_stream("jobs", 100_000, 1024, 2, Wait::Forever, |message| {
        ///     bytes += message.payload.len();
        /// })?;
        /// println!("{got} messages, {bytes} bytes");
        /// # Ok::<(), mailbox_client::Error>(())
        /// ```
    }
    pub fn receive_stream(
        mailbox: &str,
        count: usize,
        max: u32,
        window: usize,
        wait: Wait,
        each: impl FnMut(Message),
    ) -> Result<usize, Error> {
        run_window(ReceiveStream::new(mailbox, count, max, window, wait, each))
    }
}
