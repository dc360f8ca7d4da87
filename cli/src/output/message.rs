//! A message shown with `--json` (by `recv`, `call` and `peek`): its
//! metadata and its payload, both as text when it is UTF-8 and always as
//! base64, so that no byte is lost. Without `--json` the payload is written
//! as it is, after a [`header`] line for `peek`.

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
        "form": if mailbox_client::is_memory_file(&message.payload) { "file" } else { "inline" },
        "payload": std::str::from_utf8(&message.payload).ok(),
        "payload_base64": base64(&message.payload),
    })
}

/// The line `peek` prints before a message's bytes: `#SEQ`, its size,
/// who sent it and when (UTC), and what else it carries (redeliveries,
/// key, call, expiry, where a dead letter came from).
pub(crate) fn header(message: &Message) -> String {
    let metadata = &message.metadata;
    let mut line = format!(
        "#{} ({} bytes) from pid {} uid {} gid {} (process {}) at {}",
        metadata.sequence,
        message.payload.len(),
        metadata.sender_pid,
        metadata.sender_uid,
        metadata.sender_gid,
        metadata.sender_connection,
        utc(metadata.accepted_at_unix_nanos)
    );
    if metadata.redeliveries > 0 {
        line.push_str(&format!(
            ", delivered {} times before",
            metadata.redeliveries
        ));
    }
    if let Some(key) = metadata.key() {
        line.push_str(&format!(", key {key}"));
    }
    if let Some(call) = metadata.call() {
        line.push_str(&format!(", call {call}"));
    }
    let details = metadata.details.as_deref();
    if let Some(expires) = details.and_then(|d| d.expires_at_unix_nanos) {
        line.push_str(&format!(", expires at {}", utc(expires)));
    }
    if let Some(dead) = details.and_then(|d| d.dead_letter.as_ref()) {
        line.push_str(&format!(
            ", dead letter of {} #{} ({})",
            dead.mailbox, dead.sequence, dead.reason
        ));
    }
    line.push('\n');
    line
}

/// `2026-12-03 13:40:01.250 UTC`, from nanoseconds since the epoch.
fn utc(unix_nanos: u64) -> String {
    let seconds = unix_nanos / 1_000_000_000;
    let millis = unix_nanos / 1_000_000 % 1000;
    let (year, month, day) = civil_from_days((seconds / 86_400) as i64);
    let time = seconds % 86_400;
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02}.{millis:03} UTC",
        time / 3600,
        time / 60 % 60,
        time % 60
    )
}

/// The proleptic Gregorian date of a day counted from 1970-01-01 (Howard
/// Hinnant's `civil_from_days`).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let day_of_era = z.rem_euclid(146_097);
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let shifted_month = (5 * day_of_year + 2) / 153;
    let day = (day_of_year - (153 * shifted_month + 2) / 5 + 1) as u32;
    let month = if shifted_month < 10 {
        shifted_month + 3
    } else {
        shifted_month - 9
    } as u32;
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    (year, month, day)
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
    fn headers_say_who_sent_what_when() {
        let details = Details {
            key: Some("k1".to_owned()),
            ..Default::default()
        };
        let mut message = fixtures::message_with(9, "ping", details);
        message.metadata.accepted_at_unix_nanos = 1_764_769_201_250_000_000;
        message.metadata.redeliveries = 2;
        assert_eq!(
            header(&message),
            "#9 (4 bytes) from pid 1 uid 2 gid 3 (process 4) at 2025-12-03 13:40:01.250 UTC, \
             delivered 2 times before, key k1\n"
        );
        assert_eq!(utc(0), "1970-01-01 00:00:00.000 UTC");
        assert_eq!(utc(951_782_400_000_000_000), "2000-02-29 00:00:00.000 UTC");
    }

    #[test]
    fn json_messages_keep_every_byte() {
        let message = fixtures::message(1, Bytes::from_static(&[0xff, b'a']));
        let value = json(Some("jobs"), &message);
        assert_eq!(value["payload"], serde_json::Value::Null);
        assert_eq!(value["payload_base64"], "/2E=");
        assert_eq!(value["form"], "inline");
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
