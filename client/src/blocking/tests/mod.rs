//! The blocking client against a fake broker, by topic.

mod batches;
mod connection;
mod pipelines;
mod requests;

use super::*;

use crate::test_support::{
    fake_broker, fake_broker_limited, message, messages, sent_many, FakeBroker,
};
use mailbox_proto::{
    Address, Capacity, ClientFrame, ErrorKind, MailboxInfo, MailboxSettings, NameInfo,
    ReceiveOptions, SendOptions, ServerFrame, Source, Target, Verdict,
};

fn connected(
    handler: impl FnMut(&ClientFrame) -> Vec<ServerFrame> + Send + 'static,
) -> (Client, FakeBroker) {
    let (ours, theirs) = UnixStream::pair().expect("socket pair");
    let broker = fake_broker(theirs, handler);
    let client = Client::from_stream(ours).expect("handshake");
    (client, broker)
}

fn answer(frame: &ClientFrame, result: Result<Response, BrokerError>) -> Vec<ServerFrame> {
    vec![ServerFrame::Response {
        id: frame.id,
        result,
    }]
}

fn refusal(kind: ErrorKind) -> BrokerError {
    BrokerError::new(kind, "test")
}

/// The payloads of every `SendMany` the broker saw, batch by batch.
fn batches_seen(frames: &[ClientFrame]) -> Vec<Vec<Bytes>> {
    frames
        .iter()
        .filter_map(|frame| match &frame.request {
            Request::SendMany { payloads, .. } => Some(payloads.clone()),
            _ => None,
        })
        .collect()
}
