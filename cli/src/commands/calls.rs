//! `call`: send a request and print its reply, like `recv` prints a
//! message. Answering calls is `recv --exec`'s ([`super::messages`]).

use std::time::Duration;

use mailbox_client::{wait_at_most, Bytes, SendOptions, Wait};

use super::Invocation;
use crate::args::Addressing;
use crate::failure::Failure;
use crate::output;

/// `call`: `payload` to `to`, waiting for the reply at most `timeout`.
pub(super) fn call(
    invocation: &mut Invocation,
    to: &Addressing,
    payload: Bytes,
    timeout: Option<Duration>,
    key: Option<&str>,
) -> Result<(), Failure> {
    let options = SendOptions {
        key: key.map(str::to_owned),
        ..SendOptions::default()
    };
    let wait = timeout.map_or(Wait::Forever, wait_at_most);
    let reply = invocation
        .client
        .call_with(to.target(), payload, options, wait)
        .map_err(invocation.fail())?;
    if invocation.out.json() {
        invocation
            .out
            .emit(|| output::message::json(None, &reply), String::new)
    } else {
        invocation.out.payload(&reply.payload)
    }
}
