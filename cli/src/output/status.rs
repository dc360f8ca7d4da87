//! The broker's status shown (`status`, and the first line of `top`): its
//! version, uptime, connections, what it holds and every limit in force
//! (the core's and the server's), sizes and durations for people in text,
//! exact numbers in JSON. The mailboxes' rates beside it are
//! [`crate::top`]'s.

use mailbox_client::BrokerStatus;
use mailbox_proto::{Limit, LimitUnit};
use serde_json::json;

use super::text::{human_limit, human_size, human_uptime, key_values};

/// A limit's key in `status --json`: its configuration name, with
/// `_millis` after a duration's (like `ttl_millis` of `info --json`).
fn json_key(limit: &Limit) -> String {
    match limit.unit() {
        LimitUnit::Millis => format!("{}_millis", limit.name),
        LimitUnit::Bytes | LimitUnit::Count => limit.name.clone(),
    }
}

/// `status --json` (without the rates): every figure and limit as an exact
/// number (bytes, counts, milliseconds), `null` for no limit.
pub(crate) fn json(status: &BrokerStatus) -> serde_json::Value {
    json!({
        "broker_version": status.broker_version,
        "protocol_version": status.protocol_version,
        "pid": status.pid,
        "uptime_millis": status.uptime_millis,
        "connections": status.connections,
        "mailboxes": status.mailboxes,
        "queued_messages": status.queued_messages,
        "queued_bytes": status.queued_bytes,
        "memory_budget_bytes": status.memory_budget_bytes,
        "limits": status
            .limits
            .iter()
            .map(|limit| (json_key(limit), json!(limit.bounded())))
            .collect::<serde_json::Map<_, _>>(),
    })
}

/// `status` (without the rates): one `key: value` line per figure, then
/// the limits in force, indented, by their configuration names.
pub(crate) fn text(status: &BrokerStatus) -> String {
    let used = if status.memory_budget_bytes == 0 {
        String::new()
    } else {
        format!(
            " ({:.1}% of the budget)",
            status.queued_bytes as f64 * 100.0 / status.memory_budget_bytes as f64
        )
    };
    let rows = [
        ("broker version", status.broker_version.clone()),
        ("protocol version", status.protocol_version.to_string()),
        ("pid", status.pid.to_string()),
        ("uptime", human_uptime(status.uptime_millis)),
        ("connections", status.connections.to_string()),
        ("mailboxes", status.mailboxes.to_string()),
        ("queued messages", status.queued_messages.to_string()),
        (
            "queued bytes",
            format!("{}{used}", human_size(status.queued_bytes)),
        ),
        ("memory budget", human_size(status.memory_budget_bytes)),
    ];
    let mut text = key_values(&rows);
    if !status.limits.is_empty() {
        text.push_str("limits in force ([limits] of mailboxd.toml):\n");
        let width = status
            .limits
            .iter()
            .map(|limit| limit.name.len())
            .max()
            .unwrap_or(0);
        for limit in &status.limits {
            text.push_str(&format!(
                "  {:width$}  {}\n",
                limit.name,
                human_limit(limit)
            ));
        }
    }
    text
}

/// `top`'s first line: the broker and what it holds, in one line.
pub(crate) fn summary_line(status: &BrokerStatus) -> String {
    format!(
        "mailboxd {} pid {}: {} connections, {} mailboxes, {} queued ({})\n",
        status.broker_version,
        status.pid,
        status.connections,
        status.mailboxes,
        status.queued_messages,
        human_size(status.queued_bytes)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(limits: &[(&str, u64)]) -> BrokerStatus {
        BrokerStatus {
            broker_version: "0.1.0".into(),
            protocol_version: 3,
            pid: 7,
            uptime_millis: 61_000,
            connections: 1,
            mailboxes: 0,
            queued_messages: 0,
            queued_bytes: 0,
            memory_budget_bytes: 1 << 30,
            limits: limits
                .iter()
                .map(|&(name, value)| Limit {
                    name: name.to_owned(),
                    value,
                })
                .collect(),
        }
    }

    #[test]
    fn limits_are_shown_for_people_in_text_and_exact_in_json() {
        let status = status(&[
            ("memory_budget", 1 << 30),
            ("max_connections", 16_384),
            ("max_queued_bytes_per_uid", Limit::NONE),
            ("max_frame_size", 16_842_752),
            ("handshake_timeout", 10_000),
        ]);
        let text = text(&status);
        for line in [
            "memory budget: 1 GiB",
            "limits in force ([limits] of mailboxd.toml):",
            "  memory_budget             1 GiB",
            "  max_connections           16384",
            "  max_queued_bytes_per_uid  none",
            "  max_frame_size            16.1 MiB (16842752 bytes)",
            "  handshake_timeout         10s",
        ] {
            assert!(text.lines().any(|l| l == line), "{line:?} in\n{text}");
        }
        assert!(!text.contains("18446744073709551615"), "{text}");
        let value = json(&status);
        let limits = &value["limits"];
        assert_eq!(limits["memory_budget"], 1 << 30);
        assert_eq!(limits["max_queued_bytes_per_uid"], serde_json::Value::Null);
        assert_eq!(limits["max_frame_size"], 16_842_752);
        assert_eq!(limits["handshake_timeout_millis"], 10_000);
    }
}
