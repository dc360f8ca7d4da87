//! Arbitrary bytes as a socket stream, through every decoder of the codec.
//!
//! The first byte picks the frame limit and the size of the pieces the
//! stream arrives in; the rest is the stream. Each decoder takes frames off
//! the buffer as a connection's reader does, until it needs more bytes or
//! fails (after a failure the stream is out of step, as on a connection).
//!
//! Checked, besides "never panics":
//! - the direct decoders (`decode_client_frame`, `decode_server_frame`) give
//!   exactly what bincode (`decode_frame`) gives, frame by frame;
//! - `Ok(None)` consumes nothing;
//! - every decoded frame re-encodes and decodes to the same value, and the
//!   broker's direct and detached encoders write the same bytes as bincode.

#![no_main]

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use mailbox_proto::{
    codec, decode_client_frame, decode_frame, decode_server_frame, encode_frame,
    encode_server_frame, encode_server_frame_detached, ClientFrame, DecodeError, Detached, Hello,
    ServerFrame,
};
use serde::{de::DeserializeOwned, Serialize};
use std::fmt::Debug;

const LIMITS: [u32; 4] = [64, 4096, 1 << 16, codec::DEFAULT_MAX_FRAME_LEN];

fuzz_target!(|data: &[u8]| {
    let Some((&control, stream)) = data.split_first() else {
        return;
    };
    let max_len = LIMITS[usize::from(control & 3)];
    // Pieces of 1 to 64 bytes, or the whole stream at once.
    let piece = match control >> 2 {
        0 => stream.len().max(1),
        n => usize::from(n),
    };

    let clients = frames(stream, piece, |buf| decode_client_frame(buf, max_len));
    let clients_bincode = frames(stream, piece, |buf| {
        decode_frame::<ClientFrame>(buf, max_len)
    });
    assert_eq!(
        clients, clients_bincode,
        "decode_client_frame differs from bincode"
    );
    for frame in &clients.0 {
        round_trip(frame);
    }

    let servers = frames(stream, piece, |buf| decode_server_frame(buf, max_len));
    let servers_bincode = frames(stream, piece, |buf| {
        decode_frame::<ServerFrame>(buf, max_len)
    });
    assert_eq!(
        servers, servers_bincode,
        "decode_server_frame differs from bincode"
    );
    for frame in &servers.0 {
        round_trip(frame);
        same_bytes_from_every_server_encoder(frame);
    }

    let hellos = frames(stream, piece, |buf| decode_frame::<Hello>(buf, max_len));
    for hello in &hellos.0 {
        round_trip(hello);
    }
});

/// Everything `decode` takes off `stream` arriving `piece` bytes at a time,
/// and how it stopped (`None`: it wanted more bytes at the end).
fn frames<T>(
    stream: &[u8],
    piece: usize,
    mut decode: impl FnMut(&mut BytesMut) -> Result<Option<T>, DecodeError>,
) -> (Vec<T>, Option<DecodeError>) {
    let mut buf = BytesMut::new();
    let mut decoded = Vec::new();
    for chunk in stream.chunks(piece) {
        buf.extend_from_slice(chunk);
        loop {
            let before = buf.clone();
            match decode(&mut buf) {
                Ok(Some(frame)) => decoded.push(frame),
                Ok(None) => {
                    assert_eq!(buf, before, "a partial frame must not be consumed");
                    break;
                }
                Err(error) => return (decoded, Some(error)),
            }
        }
    }
    (decoded, None)
}

fn round_trip<T: Serialize + DeserializeOwned + PartialEq + Debug>(value: &T) {
    let mut buf = BytesMut::new();
    encode_frame(value, &mut buf, u32::MAX).expect("a decoded value encodes");
    let back: T = decode_frame(&mut buf, u32::MAX)
        .expect("a re-encoded value decodes")
        .expect("a whole frame");
    assert_eq!(&back, value, "round trip changed the value");
    assert!(buf.is_empty(), "the re-encoded frame is consumed exactly");
}

fn same_bytes_from_every_server_encoder(frame: &ServerFrame) {
    let mut slow = Vec::new();
    encode_frame(frame, &mut slow, u32::MAX).expect("encodes");
    let mut fast = Vec::new();
    encode_server_frame(frame, &mut fast, u32::MAX).expect("encodes directly");
    assert_eq!(fast, slow, "direct encoder differs from bincode");

    let mut buffer = Vec::new();
    let mut detached = Detached::new(8);
    encode_server_frame_detached(frame, &mut buffer, &mut detached, u32::MAX)
        .expect("encodes detached");
    let mut segments = detached.interleave(&buffer);
    let mut joined = Vec::new();
    while !segments.is_done() {
        let slices = segments.io_slices();
        let written: usize = slices.iter().map(|slice| slice.len()).sum();
        for slice in &slices {
            joined.extend_from_slice(slice);
        }
        segments.advance(written);
    }
    assert_eq!(joined, slow, "detached encoding differs from bincode");
}
