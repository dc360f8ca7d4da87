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

/// Entries of the broker's limit list that are figures of now, not
/// limits (the list carries them so that the wire does not change): shown
/// with the figures, not under "limits in force".
const FIGURES: [&str; 2] = ["open_files", "held_files"];

/// The entry `name` of the limit list, if the broker reported it.
fn entry(status: &BrokerStatus, name: &str) -> Option<u64> {
    status
        .limits
        .iter()
        .find(|limit| limit.name == name)
        .map(|limit| limit.value)
}

/// The limits in force, without the figures of [`FIGURES`].
fn limits(status: &BrokerStatus) -> impl Iterator<Item = &Limit> {
    status
        .limits
        .iter()
        .filter(|limit| !FIGURES.contains(&limit.name.as_str()))
}

/// `status --json` (without the rates): every figure and limit as an exact
/// number (bytes, counts, milliseconds), `null` for no limit (and for a
/// figure an older broker does not report).
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
        "open_files": entry(status, "open_files"),
        "held_files": entry(status, "held_files"),
        "limits": limits(status)
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
    let mut rows = rows.to_vec();
    if let Some(open) = entry(status, "open_files") {
        let of = match entry(status, "open_files_limit") {
            Some(limit) if limit != Limit::NONE => format!(" of {limit} (open_files_limit)"),
            _ => String::new(),
        };
        rows.push(("open files", format!("{open}{of}")));
    }
    if let Some(held) = entry(status, "held_files") {
        let of = entry(status, "max_held_files")
            .map_or_else(String::new, |max| format!(" of {max} (max_held_files)"));
        rows.push(("memory files held", format!("{held}{of}")));
    }
    let mut text = key_values(&rows);
    if limits(status).next().is_some() {
        text.push_str("limits in force ([limits] of mailboxd.toml):\n");
        let width = limits(status)
            .map(|limit| limit.name.len())
            .max()
            .unwrap_or(0);
        for limit in limits(status) {
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
        assert_eq!(value["open_files"], serde_json::Value::Null);
    }

    #[test]
    fn descriptor_figures_are_shown_with_the_figures_and_their_limits() {
        let status = status(&[
            ("max_held_files", 4096),
            ("open_files_limit", 65_536),
            ("open_files", 37),
            ("held_files", 2),
        ]);
        let text = text(&status);
        for line in [
            "open files: 37 of 65536 (open_files_limit)",
            "memory files held: 2 of 4096 (max_held_files)",
            "  open_files_limit  65536",
            "  max_held_files    4096",
        ] {
            assert!(
                text.lines()
                    .any(|l| l.split_whitespace().eq(line.split_whitespace())),
                "{line:?} in\n{text}"
            );
        }
        let in_force = text.split("limits in force").nth(1).expect("limits");
        assert!(
            !in_force.lines().any(|line| {
                let name = line.split_whitespace().next().unwrap_or_default();
                name == "open_files" || name == "held_files"
            }),
            "{text}"
        );
        let value = json(&status);
        assert_eq!(value["open_files"], 37);
        assert_eq!(value["held_files"], 2);
        assert_eq!(value["limits"]["open_files_limit"], 65_536);
        assert_eq!(value["limits"].get("open_files"), None);
    }
}
