//! Rates for `mailboxctl status` and the live view of `mailboxctl top`: two
//! snapshots of every mailbox a moment apart give its rates, since the
//! broker counts what each mailbox accepted and delivered.

use std::collections::HashMap;
use std::time::Duration;

use mailbox_client::MailboxInfo;
use serde_json::json;

/// One mailbox between two snapshots.
#[derive(Debug, Clone, PartialEq)]
pub struct MailboxRates {
    pub name: String,
    pub policy: String,
    pub depth: u64,
    pub in_flight: u64,
    pub waiting_senders: u32,
    pub waiting_receivers: u32,
    /// Messages accepted per second.
    pub accepted_per_s: f64,
    /// Deliveries per second.
    pub delivered_per_s: f64,
}

/// The rates of every mailbox in `after`; a mailbox missing from `before`
/// (created in between) counts from zero.
pub fn rates(
    before: &[MailboxInfo],
    after: &[MailboxInfo],
    elapsed: Duration,
) -> Vec<MailboxRates> {
    let seconds = elapsed.as_secs_f64().max(1e-3);
    let earlier: HashMap<&str, &MailboxInfo> = before
        .iter()
        .map(|info| (info.name.as_str(), info))
        .collect();
    after
        .iter()
        .map(|info| {
            let (accepted, delivered) = earlier.get(info.name.as_str()).map_or((0, 0), |old| {
                (old.messages_accepted, old.messages_delivered)
            });
            MailboxRates {
                name: info.name.clone(),
                policy: info.settings.policy.to_string(),
                depth: info.queued_messages,
                in_flight: info.in_flight,
                waiting_senders: info.waiting_senders,
                waiting_receivers: info.waiting_receivers,
                accepted_per_s: info.messages_accepted.saturating_sub(accepted) as f64 / seconds,
                delivered_per_s: info.messages_delivered.saturating_sub(delivered) as f64 / seconds,
            }
        })
        .collect()
}

/// A table with one line per mailbox, busiest first.
pub fn table(rates: &[MailboxRates]) -> String {
    let mut sorted: Vec<&MailboxRates> = rates.iter().collect();
    sorted.sort_by(|a, b| {
        (b.accepted_per_s + b.delivered_per_s)
            .total_cmp(&(a.accepted_per_s + a.delivered_per_s))
            .then_with(|| a.name.cmp(&b.name))
    });
    let header = [
        "MAILBOX",
        "POLICY",
        "DEPTH",
        "IN-FLIGHT",
        "IN/S",
        "OUT/S",
        "SENDERS",
        "RECEIVERS",
    ];
    let rows: Vec<[String; 8]> = sorted
        .iter()
        .map(|r| {
            [
                r.name.clone(),
                r.policy.clone(),
                r.depth.to_string(),
                r.in_flight.to_string(),
                format!("{:.1}", r.accepted_per_s),
                format!("{:.1}", r.delivered_per_s),
                r.waiting_senders.to_string(),
                r.waiting_receivers.to_string(),
            ]
        })
        .collect();
    crate::output::text::table(header, &rows, 2)
}

/// The rates as JSON objects, for `--json`.
pub fn json(rates: &[MailboxRates]) -> serde_json::Value {
    rates
        .iter()
        .map(|r| {
            json!({
                "name": r.name,
                "policy": r.policy,
                "depth": r.depth,
                "in_flight": r.in_flight,
                "waiting_senders": r.waiting_senders,
                "waiting_receivers": r.waiting_receivers,
                "accepted_per_s": r.accepted_per_s,
                "delivered_per_s": r.delivered_per_s,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(name: &str, accepted: u64, delivered: u64) -> MailboxInfo {
        MailboxInfo {
            name: name.into(),
            queued_messages: accepted - delivered,
            waiting_receivers: 1,
            messages_accepted: accepted,
            messages_delivered: delivered,
            mode: 0o760,
            ..MailboxInfo::default()
        }
    }

    #[test]
    fn rates_are_the_differences_over_the_interval() {
        let before = [info("a", 10, 5)];
        let after = [info("a", 30, 25), info("new", 4, 0)];
        let rates = rates(&before, &after, Duration::from_secs(2));
        assert_eq!(rates[0].accepted_per_s, 10.0);
        assert_eq!(rates[0].delivered_per_s, 10.0);
        assert_eq!(rates[1].accepted_per_s, 2.0);
        let text = table(&rates);
        let lines: Vec<&str> = text.lines().collect();
        assert!(lines[0].starts_with("MAILBOX"), "{text}");
        assert!(lines[1].starts_with("a "), "busiest first: {text}");
        assert!(lines[1].contains("10.0"), "{text}");
        assert_eq!(
            text,
            "MAILBOX  POLICY       DEPTH  IN-FLIGHT  IN/S  OUT/S  SENDERS  RECEIVERS\n\
             a        round-robin      5          0  10.0   10.0        0          1\n\
             new      round-robin      4          0   2.0    0.0        0          1\n",
            "names and policies to the left, figures to the right"
        );
    }
}
