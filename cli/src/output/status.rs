//! The broker's status shown (`status`, and the first line of `top`): its
//! version, uptime, connections, what it holds and the limits in force.
//! The mailboxes' rates beside it are [`crate::top`]'s.

use mailbox_client::BrokerStatus;
use serde_json::json;

use super::text::{human_bytes, human_uptime, key_values};

/// `status --json` (without the rates).
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
            .map(|limit| (limit.name.clone(), json!(limit.value)))
            .collect::<serde_json::Map<_, _>>(),
    })
}

/// `status` (without the rates): one `key: value` line per figure, then
/// the limits.
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
            format!("{}{used}", human_bytes(status.queued_bytes)),
        ),
        ("memory budget", human_bytes(status.memory_budget_bytes)),
    ];
    let mut text = key_values(&rows);
    let limits: Vec<(&str, String)> = status
        .limits
        .iter()
        .map(|limit| (limit.name.as_str(), limit.value.to_string()))
        .collect();
    if !limits.is_empty() {
        text.push_str("limits:\n");
        text.push_str(&key_values(&limits));
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
        human_bytes(status.queued_bytes)
    )
}
