//! A mailbox shown: `info`'s settings and counters (text and JSON), and
//! `list`'s table of every mailbox (or its JSON lines).

use std::time::Duration;

use mailbox_client::MailboxInfo;
use serde_json::json;

use super::text::{group, human_duration, human_size, key_values, user};

/// `info --json`, and one line of `list --json`: every setting and counter.
pub(crate) fn json(info: &MailboxInfo) -> serde_json::Value {
    let settings = &info.settings;
    json!({
        "name": info.name,
        "capacity": settings.capacity.to_string(),
        "policy": settings.policy.to_string(),
        "max_message_size": settings.max_message_size,
        "fixed_size": settings.fixed_size,
        "max_deliveries": settings.max_deliveries,
        "dead_letter": settings.dead_letter,
        "ttl_millis": settings.ttl_millis,
        "ack_timeout_millis": settings.ack_timeout_millis,
        "cut_slow_subscribers_after_millis": settings.cut_slow_subscribers_after_millis,
        "queued_messages": info.queued_messages,
        "queued_bytes": info.queued_bytes,
        "in_flight": info.in_flight,
        "waiting_senders": info.waiting_senders,
        "waiting_receivers": info.waiting_receivers,
        "subscribers": info.subscribers,
        "messages_accepted": info.messages_accepted,
        "messages_delivered": info.messages_delivered,
        "messages_redelivered": info.messages_redelivered,
        "messages_expired": info.messages_expired,
        "messages_dead_lettered": info.messages_dead_lettered,
        "messages_dropped": info.messages_dropped,
        "ack_timeouts": info.ack_timeouts,
        "slow_subscribers_cut": info.slow_subscribers_cut,
        "owner_uid": info.owner_uid,
        "group_gid": info.group_gid,
        "owner": mailbox_proto::accounts::user_name(info.owner_uid).ok().flatten(),
        "group": mailbox_proto::accounts::group_name(info.group_gid).ok().flatten(),
        "mode": format!("{:04o}", info.mode),
    })
}

/// `info`: one `key: value` line per setting and counter.
pub(crate) fn text(info: &MailboxInfo) -> String {
    let settings = &info.settings;
    let none = || "none".to_owned();
    let duration = |millis: Option<u64>| {
        millis.map_or_else(none, |millis| human_duration(Duration::from_millis(millis)))
    };
    let rows = [
        ("name", info.name.clone()),
        ("capacity", settings.capacity.to_string()),
        ("policy", settings.policy.to_string()),
        (
            "max message size",
            human_size(u64::from(settings.max_message_size)),
        ),
        (
            "fixed size",
            settings
                .fixed_size
                .map_or_else(none, |size| human_size(u64::from(size))),
        ),
        (
            "max deliveries",
            settings.max_deliveries.map_or_else(none, |n| n.to_string()),
        ),
        (
            "dead letter",
            settings.dead_letter.clone().unwrap_or_else(none),
        ),
        ("time to live", duration(settings.ttl_millis)),
        ("ack timeout", duration(settings.ack_timeout_millis)),
        (
            "cut slow subscribers after",
            duration(settings.cut_slow_subscribers_after_millis),
        ),
        ("queued messages", info.queued_messages.to_string()),
        ("queued bytes", human_size(info.queued_bytes)),
        ("in flight", info.in_flight.to_string()),
        ("waiting senders", info.waiting_senders.to_string()),
        ("waiting receivers", info.waiting_receivers.to_string()),
        ("subscribers", info.subscribers.to_string()),
        ("messages accepted", info.messages_accepted.to_string()),
        ("messages delivered", info.messages_delivered.to_string()),
        (
            "messages redelivered",
            info.messages_redelivered.to_string(),
        ),
        ("messages expired", info.messages_expired.to_string()),
        (
            "messages dead-lettered",
            info.messages_dead_lettered.to_string(),
        ),
        ("messages dropped", info.messages_dropped.to_string()),
        ("ack timeouts", info.ack_timeouts.to_string()),
        (
            "slow subscribers cut",
            info.slow_subscribers_cut.to_string(),
        ),
        ("owner", user(info.owner_uid)),
        ("group", group(info.group_gid)),
        ("mode", format!("{:04o}", info.mode)),
    ];
    key_values(&rows)
}

/// `list`: one line per mailbox, with its depth and who waits on it.
pub(crate) fn table(mailboxes: &[MailboxInfo]) -> String {
    let header = [
        "NAME",
        "CAPACITY",
        "POLICY",
        "QUEUED",
        "WAITING SENDERS",
        "WAITING RECEIVERS",
        "SUBSCRIBERS",
    ];
    let rows: Vec<[String; 7]> = mailboxes
        .iter()
        .map(|info| {
            [
                info.name.clone(),
                info.settings.capacity.to_string(),
                info.settings.policy.to_string(),
                info.queued_messages.to_string(),
                info.waiting_senders.to_string(),
                info.waiting_receivers.to_string(),
                info.subscribers.to_string(),
            ]
        })
        .collect();
    super::text::table(header, &rows, 3)
}

/// `list --json`: one line per mailbox ([`json()`]), all in one string.
pub(crate) fn json_lines(mailboxes: &[MailboxInfo]) -> String {
    let mut lines = String::new();
    for info in mailboxes {
        lines.push_str(&json(info).to_string());
        lines.push('\n');
    }
    lines
}

#[cfg(test)]
mod tests {
    use mailbox_client::MailboxSettings;

    use super::*;

    #[test]
    fn the_list_table_lines_up() {
        let info = MailboxInfo {
            name: "jobs".into(),
            queued_messages: 12,
            queued_bytes: 100,
            waiting_receivers: 3,
            messages_accepted: 12,
            owner_uid: 1000,
            group_gid: 1000,
            mode: 0o760,
            ..MailboxInfo::default()
        };
        let table = table(&[info]);
        let lines: Vec<&str> = table.lines().collect();
        assert_eq!(lines.len(), 2);
        assert!(lines[0].starts_with("NAME  CAPACITY   POLICY"), "{table}");
        assert!(
            lines[1].starts_with("jobs  unbounded  round-robin"),
            "{table}"
        );
    }

    #[test]
    fn info_shows_every_setting_and_counter() {
        let info = MailboxInfo {
            name: "jobs".into(),
            settings: MailboxSettings {
                max_deliveries: Some(3),
                dead_letter: Some("jobs.dead".into()),
                ttl_millis: Some(1500),
                ack_timeout_millis: Some(30_000),
                ..MailboxSettings::default()
            },
            queued_messages: 0,
            queued_bytes: 0,
            waiting_senders: 0,
            waiting_receivers: 0,
            subscribers: 0,
            messages_accepted: 10,
            messages_delivered: 9,
            in_flight: 2,
            messages_redelivered: 3,
            messages_expired: 4,
            messages_dead_lettered: 5,
            messages_dropped: 6,
            owner_uid: 1000,
            group_gid: 1000,
            mode: 0o760,
            ack_timeouts: 7,
            slow_subscribers_cut: 0,
        };
        let text = text(&info);
        for line in [
            "max deliveries: 3",
            "dead letter: jobs.dead",
            "time to live: 1.5s",
            "in flight: 2",
            "messages redelivered: 3",
            "messages expired: 4",
            "messages dead-lettered: 5",
            "messages dropped: 6",
            "ack timeout: 30s",
            "cut slow subscribers after: none",
            "ack timeouts: 7",
            "max message size: 1 MiB",
            "fixed size: none",
        ] {
            assert!(text.lines().any(|l| l == line), "{line} in {text}");
        }
        let value = json(&info);
        assert_eq!(value["in_flight"], 2);
        assert_eq!(value["dead_letter"], "jobs.dead");
        assert_eq!(value["messages_dropped"], 6);
        assert_eq!(value["ack_timeout_millis"], 30_000);
        assert_eq!(value["ack_timeouts"], 7);
    }
}
