//! The async client against a fake broker, by topic.

mod cancellation;
mod connection;
mod descriptors;
mod pipelines;

use super::*;
use crate::test_support::{fake_broker, message, messages, sent_many, FakeBroker};
use crate::*;

use mailbox_proto::{ClientFrame, Request, RequestId, Response, ServerFrame};
use std::future::Future;
use std::time::Duration;

// The tests run on a multi-threaded runtime because they block a thread
// joining the fake broker, which only ends once the client's aborted
// tasks have released the socket (on another worker).

async fn within<T>(future: impl Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(10), future)
        .await
        .expect("test timed out")
}

async fn connected(
    handler: impl FnMut(&ClientFrame) -> Vec<ServerFrame> + Send + 'static,
) -> (Client, FakeBroker) {
    let (ours, theirs) = std::os::unix::net::UnixStream::pair().expect("socket pair");
    let broker = fake_broker(theirs, handler);
    ours.set_nonblocking(true).expect("nonblocking");
    let stream = UnixStream::from_std(ours).expect("tokio stream");
    let client = Client::from_stream(stream).await.expect("handshake");
    (client, broker)
}

fn answer(id: RequestId, result: Result<Response, BrokerError>) -> ServerFrame {
    ServerFrame::Response { id, result }
}

fn cancelled(request: RequestId) -> ServerFrame {
    answer(
        request,
        Err(BrokerError::new(ErrorKind::Cancelled, "cancelled")),
    )
}

fn sequences(messages: &[Message]) -> Vec<u64> {
    messages.iter().map(|m| m.metadata.sequence).collect()
}

/// A message with a call id and a sender of its own.
fn from_sender(sequence: u64, sender: u64) -> Message {
    let mut message = message(sequence, "m");
    message.metadata.sender_connection = sender;
    message
}
