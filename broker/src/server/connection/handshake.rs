//! The handshake: the client's `Hello` read within the handshake timeout
//! (and a small frame limit) and checked (magic, protocol version).

use bytes::BytesMut;
use mailbox_proto::{
    decode_frame, speaks, BrokerError, ErrorKind, Hello, HELLO_MAGIC, OLDEST_PROTOCOL_VERSION,
    PROTOCOL_VERSION,
};
use tokio::io::AsyncReadExt;
use tokio::net::unix::OwnedReadHalf;
use tokio::sync::watch;
use tracing::debug;

use super::CloseReason;

/// Reads the hello within the handshake timeout and checks it; returns the
/// protocol version the client speaks, which this connection then speaks.
///
/// A broker that starts stopping meanwhile ends it at once (with a goodbye
/// saying so) rather than wait out the handshake timeout.
pub(super) async fn accept_hello(
    reader: &mut OwnedReadHalf,
    buffer: &mut BytesMut,
    config: &crate::server::Config,
    stop: &watch::Receiver<bool>,
) -> Result<u32, CloseReason> {
    // The hello is small; a larger limit before it would let anyone who can
    // connect make the broker allocate a full frame for free.
    let hello_limit = 4096;
    let mut stop = stop.clone();
    let read = tokio::select! {
        read = tokio::time::timeout(
            config.handshake_timeout,
            handshake(reader, buffer, hello_limit),
        ) => read,
        _ = stop.wait_for(|stopping| *stopping) => return Err(CloseReason::Shutdown),
    };
    let hello = match read {
        Ok(Ok(hello)) => hello,
        Ok(Err(reason)) => return Err(reason),
        Err(_) => {
            return Err(CloseReason::ProtocolViolation(BrokerError::new(
                ErrorKind::ProtocolViolation,
                format!(
                    "no hello within {:?} of connecting",
                    config.handshake_timeout
                ),
            )))
        }
    };
    if hello.magic != HELLO_MAGIC {
        return Err(CloseReason::ProtocolViolation(BrokerError::new(
            ErrorKind::ProtocolViolation,
            "the first frame is not a mailbox hello (wrong magic)",
        )));
    }
    if !speaks(hello.protocol_version) {
        return Err(CloseReason::ProtocolViolation(BrokerError::new(
            ErrorKind::UnsupportedVersion,
            format!(
                "client speaks protocol version {}, this broker speaks {} to {}; use a matching client",
                hello.protocol_version, OLDEST_PROTOCOL_VERSION, PROTOCOL_VERSION
            ),
        )));
    }
    debug!(client = %hello.client_name, version = hello.protocol_version, "handshake done");
    Ok(hello.protocol_version)
}

/// Reads the hello; returns the error to send in a goodbye when it is bad.
async fn handshake(
    reader: &mut OwnedReadHalf,
    buffer: &mut BytesMut,
    max_frame_len: u32,
) -> Result<Hello, CloseReason> {
    loop {
        match decode_frame::<Hello>(buffer, max_frame_len) {
            Ok(Some(hello)) => return Ok(hello),
            Ok(None) => {}
            Err(error) => {
                return Err(CloseReason::ProtocolViolation(BrokerError::new(
                    ErrorKind::ProtocolViolation,
                    format!("expected a hello frame: {error}"),
                )))
            }
        }
        match reader.read_buf(buffer).await {
            Ok(0) => return Err(CloseReason::ClientClosed),
            Ok(_) => {}
            Err(error) => return Err(CloseReason::Io(error)),
        }
    }
}
