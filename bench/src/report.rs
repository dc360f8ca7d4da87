//! What the benchmark prints: one JSON object per workload and system (the
//! field names of `WORKLOADS.md`, in a fixed order), then a human table with
//! the ratios `mailboxd / baseline`.
//!
//! Formatting only: the figures arrive computed.

use std::fmt::Write as _;

use serde_json::Value;

use crate::spec::{System, Workload};
use crate::stats;

/// One named figure of a run.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Figure {
    /// Its field name in the JSON (`msgs_per_s`, `p99_us`, ...).
    pub name: &'static str,
    /// Its value.
    pub value: f64,
}

/// The outcome of one workload on one system.
#[derive(Debug, Clone, PartialEq)]
pub struct Record {
    /// Which workload.
    pub workload: Workload,
    /// Which system.
    pub system: System,
    /// Messages counted by the figure (none when skipped or failed).
    pub messages: Option<u64>,
    /// Payload size in bytes.
    pub bytes: Option<usize>,
    /// The measured interval.
    pub seconds: Option<f64>,
    /// The workload's figures.
    pub figures: Vec<Figure>,
    /// Whatever explains the figure (queue sizes used, a skipped baseline).
    pub notes: Vec<String>,
    /// Why the run failed; a failed run has no figures.
    pub error: Option<String>,
}

impl Record {
    /// A record without figures yet.
    pub fn new(workload: Workload, system: System) -> Record {
        Record {
            workload,
            system,
            messages: None,
            bytes: None,
            seconds: None,
            figures: Vec::new(),
            notes: Vec::new(),
            error: None,
        }
    }

    /// A skipped run, with the reason.
    pub fn skipped(workload: Workload, system: System, why: impl Into<String>) -> Record {
        let mut record = Record::new(workload, system);
        record.notes.push(format!("skipped: {}", why.into()));
        record
    }

    /// A failed run: its figures are dropped, only the reason remains.
    pub fn failed(workload: Workload, system: System, why: impl Into<String>) -> Record {
        let mut record = Record::new(workload, system);
        record.error = Some(why.into());
        record
    }

    /// Adds a figure.
    pub fn figure(&mut self, name: &'static str, value: f64) {
        self.figures.push(Figure { name, value });
    }

    /// The value of figure `name`, if measured.
    pub fn get(&self, name: &str) -> Option<f64> {
        self.figures
            .iter()
            .find(|figure| figure.name == name)
            .map(|figure| figure.value)
    }

    /// The record as one line of JSON.
    pub fn to_json_line(&self) -> String {
        let mut fields: Vec<(&str, Value)> = vec![
            ("workload", Value::from(self.workload.id())),
            ("system", Value::from(self.system.id())),
        ];
        if let Some(messages) = self.messages {
            fields.push(("messages", Value::from(messages)));
        }
        if let Some(bytes) = self.bytes {
            fields.push(("bytes", Value::from(bytes)));
        }
        if let Some(seconds) = self.seconds {
            fields.push(("seconds", rounded(seconds, 4)));
        }
        for figure in &self.figures {
            fields.push((figure.name, rounded(figure.value, decimals(figure.name))));
        }
        if !self.notes.is_empty() {
            fields.push(("note", Value::from(self.notes.join("; "))));
        }
        if let Some(error) = &self.error {
            fields.push(("error", Value::from(error.as_str())));
        }
        let body: Vec<String> = fields
            .into_iter()
            .map(|(name, value)| format!("{}:{value}", Value::from(name)))
            .collect();
        format!("{{{}}}", body.join(","))
    }
}

/// Decimals kept in the JSON for a figure.
fn decimals(name: &str) -> i32 {
    match name {
        "msgs_per_s" | "deliveries_per_s" => 0,
        "p50_us" | "p99_us" | "p999_us" | "rss_mib" | "bytes_per_message" | "bytes_per_mailbox" => {
            1
        }
        "fairness" | "gib_per_s" => 3,
        _ => 4,
    }
}

fn rounded(value: f64, decimals: i32) -> Value {
    if decimals == 0 && value.is_finite() && value.abs() < 9e15 {
        return Value::from(value.round() as i64);
    }
    let factor = 10f64.powi(decimals);
    Value::from((value * factor).round() / factor)
}

/// Which way a figure is better.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Better {
    Higher,
    Lower,
}

/// The rows of the table: workload, figure, which way is better.
const ROWS: [(Workload, &str, Better); 15] = [
    (Workload::Stream, "msgs_per_s", Better::Higher),
    (Workload::Rtt, "p50_us", Better::Lower),
    (Workload::Rtt, "p99_us", Better::Lower),
    (Workload::Rtt, "p999_us", Better::Lower),
    (Workload::Fanout, "deliveries_per_s", Better::Higher),
    (Workload::Workq, "msgs_per_s", Better::Higher),
    (Workload::Workq, "fairness", Better::Lower),
    (Workload::Rendezvous, "msgs_per_s", Better::Higher),
    (Workload::Large, "gib_per_s", Better::Higher),
    (Workload::Conns, "rss_mib", Better::Lower),
    (Workload::Conns, "deliver_s", Better::Lower),
    (Workload::Memory, "rss_mib", Better::Lower),
    (Workload::Memory, "bytes_per_message", Better::Lower),
    (Workload::IdleMailboxes, "rss_mib", Better::Lower),
    (Workload::IdleMailboxes, "bytes_per_mailbox", Better::Lower),
];

/// The human table: each figure per system, then `mailboxd / baseline`.
pub fn table(records: &[Record]) -> String {
    let find = |workload: Workload, system: System, name: &str| {
        records
            .iter()
            .find(|r| r.workload == workload && r.system == system)
            .and_then(|r| r.get(name))
    };
    let baselines = &System::ALL[1..];
    let mut out = String::new();
    let _ = write!(out, "{:<14} {:<17} {:<7}", "workload", "figure", "better");
    for system in System::ALL {
        let _ = write!(out, " {:>10}", system.id());
    }
    out.push_str("  |");
    for system in baselines {
        let _ = write!(out, " {:>11}", format!("/{}", system.id()));
    }
    out.push('\n');
    for (workload, name, better) in ROWS {
        if !records.iter().any(|r| r.workload == workload) {
            continue;
        }
        let better_text = match better {
            Better::Higher => "higher",
            Better::Lower => "lower",
        };
        let _ = write!(out, "{:<14} {:<17} {:<7}", workload.id(), name, better_text);
        for system in System::ALL {
            let cell = find(workload, system, name).map_or_else(|| "-".to_owned(), human);
            let _ = write!(out, " {cell:>10}");
        }
        out.push_str("  |");
        let ours = find(workload, System::Mailboxd, name);
        for &system in baselines {
            let cell = stats::ratio(ours, find(workload, system, name))
                .map_or_else(|| "-".to_owned(), |r| format!("{r:.2}x"));
            let _ = write!(out, " {cell:>11}");
        }
        out.push('\n');
    }
    out.push_str(
        "ratios are mailboxd / baseline: above 1x is better for `higher` figures \
         (throughput), below 1x is better for `lower` ones (latency, memory, time, \
         fairness max/min)\n",
    );
    out
}

/// A figure for people: 1.23M, 456k, 12.3.
fn human(value: f64) -> String {
    let magnitude = value.abs();
    if magnitude >= 1e9 {
        format!("{:.2}G", value / 1e9)
    } else if magnitude >= 1e6 {
        format!("{:.2}M", value / 1e6)
    } else if magnitude >= 1e4 {
        format!("{:.1}k", value / 1e3)
    } else if magnitude >= 100.0 {
        format!("{value:.0}")
    } else {
        format!("{value:.3}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_lines_use_the_spec_field_names_in_order() {
        let mut record = Record::new(Workload::Stream, System::Mailboxd);
        record.messages = Some(1_000_000);
        record.bytes = Some(64);
        record.seconds = Some(0.61);
        record.figure("msgs_per_s", 1_639_344.26);
        assert_eq!(
            record.to_json_line(),
            r#"{"workload":"stream","system":"mailboxd","messages":1000000,"bytes":64,"seconds":0.61,"msgs_per_s":1639344}"#
        );
        let mut rtt = Record::new(Workload::Rtt, System::UdsDirect);
        rtt.figure("p50_us", 9.14);
        rtt.notes.push("queue depth 1".into());
        let line = rtt.to_json_line();
        assert!(line.contains(r#""p50_us":9.1"#), "{line}");
        assert!(line.ends_with(r#""note":"queue depth 1"}"#), "{line}");
        let parsed: Value = serde_json::from_str(&line).unwrap();
        assert_eq!(parsed["system"], "uds-direct");
    }

    #[test]
    fn skipped_and_failed_runs_carry_no_figures() {
        let skipped = Record::skipped(Workload::Conns, System::PosixMq, "no broker");
        assert_eq!(
            skipped.to_json_line(),
            r#"{"workload":"conns","system":"posix-mq","note":"skipped: no broker"}"#
        );
        let failed = Record::failed(Workload::Stream, System::Redis, "lost \"3\"");
        let parsed: Value = serde_json::from_str(&failed.to_json_line()).unwrap();
        assert_eq!(parsed["error"], "lost \"3\"");
    }

    #[test]
    fn the_table_shows_ratios_against_each_baseline() {
        let record = |system, value| {
            let mut r = Record::new(Workload::Stream, system);
            r.figure("msgs_per_s", value);
            r
        };
        let records = [
            record(System::Mailboxd, 2_000_000.0),
            record(System::UdsDirect, 8_000_000.0),
            record(System::PosixMq, 1_000_000.0),
        ];
        let table = table(&records);
        let row = table.lines().find(|l| l.starts_with("stream")).unwrap();
        assert!(row.contains("2.00M"), "{row}");
        assert!(row.contains("0.25x"), "{row}");
        assert!(row.contains("2.00x"), "{row}");
        assert!(row.trim_end().ends_with('-'), "no redis figure: {row}");
        assert!(!table.contains("rtt"), "only workloads that ran");
    }

    #[test]
    fn memory_figures_have_rows_and_one_decimal() {
        let mut memory = Record::new(Workload::Memory, System::Mailboxd);
        memory.figure("rss_mib", 134.74);
        memory.figure("bytes_per_message", 137.26);
        let mut idle = Record::new(Workload::IdleMailboxes, System::Mailboxd);
        idle.figure("bytes_per_mailbox", 618.47);
        let line = memory.to_json_line();
        assert!(
            line.contains(r#""rss_mib":134.7,"bytes_per_message":137.3"#),
            "{line}"
        );
        assert!(idle.to_json_line().contains(r#""bytes_per_mailbox":618.5"#));
        let table = table(&[memory, idle]);
        assert!(table
            .lines()
            .any(|l| l.starts_with("memory         bytes_per_message")));
        assert!(table
            .lines()
            .any(|l| l.starts_with("idle-mailboxes bytes_per_mailbox")));
    }

    #[test]
    fn human_numbers() {
        assert_eq!(human(37_000_000.0), "37.00M");
        assert_eq!(human(590_000.0), "590.0k");
        assert_eq!(human(1234.4), "1234");
        assert_eq!(human(9.1), "9.100");
    }
}
