//! A message shown with `--json` (by `recv` and `call`): its metadata and
//! its payload, both as text when it is UTF-8 and always as base64, so that
//! no byte is lost. Without `--json` the payload is written as it is.

use mailbox_client::Message;
use serde_json::json;

/// A message as one JSON object; `mailbox` is `None` for the inbox (and
/// for a call's reply).
pub(crate) fn json(mailbox: Option<&str>, message: &Message) -> serde_json::Value {
    let metadata = &message.metadata;
    let details = metadata.details.as_deref();
    json!({
        "mailbox": mailbox,
        "sequence": metadata.sequence,
        "sender_pid": metadata.sender_pid,
        "sender_uid": metadata.sender_uid,
        "sender_gid": metadata.sender_gid,
        "sender_connection": metadata.sender_connection,
        "accepted_at_unix_nanos": metadata.accepted_at_unix_nanos,
        "redeliveries": metadata.redeliveries,
        "key": metadata.key(),
        "call": metadata.call(),
        "expires_at_unix_nanos": details.and_then(|d| d.expires_at_unix_nanos),
        "dead_letter": details.and_then(|d| d.dead_letter.as_ref()).map(|dead| json!({
            "mailbox": dead.mailbox,
            "sequence": dead.sequence,
            "reason": dead.reason,
        })),
        "payload": std::str::from_utf8(&message.payload).ok(),
        "payload_base64": base64(&message.payload),
    })
}

/// Standard base64 with padding (RFC 4648 §4).
fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut text = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = u32::from(b[0]) << 16 | u32::from(b[1]) << 8 | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                text.push(char::from(ALPHABET[(n >> (18 - 6 * i) & 63) as usize]));
            } else {
                text.push('=');
            }
        }
    }
    text
}

#[cfg(test)]
mod tests {
    use mailbox_client::{Bytes, Details};
    use mailbox_proto::fixtures;

    use super::*;

    #[test]
    fn base64_matches_rfc_4648() {
        let cases = [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ];
        for (input, expected) in cases {
            assert_eq!(base64(input.as_bytes()), expected);
        }
        assert_eq!(base64(&[0xff, 0xfe, 0x00]), "//4A");
    }

    #[test]
    fn json_messages_keep_every_byte() {
        let message = fixtures::message(1, Bytes::from_static(&[0xff, b'a']));
        let value = json(Some("jobs"), &message);
        assert_eq!(value["payload"], serde_json::Value::Null);
        assert_eq!(value["payload_base64"], "/2E=");
        assert_eq!(value["sequence"], 1);
    }

    #[test]
    fn json_messages_carry_the_key_the_call_and_redeliveries() {
        let details = Details {
            key: Some("k1".to_owned()),
            call: Some(5),
            ..Default::default()
        };
        let mut message = fixtures::message_with(9, "ping", details);
        message.metadata.redeliveries = 2;
        let value = json(None, &message);
        assert_eq!(value["mailbox"], serde_json::Value::Null);
        assert_eq!(value["call"], 5);
        assert_eq!(value["key"], "k1");
        assert_eq!(value["redeliveries"], 2);
        assert_eq!(value["dead_letter"], serde_json::Value::Null);
        assert_eq!(value["payload"], "ping");
    }
}
