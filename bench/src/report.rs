//! What the benchmark prints: one JSON object per workload and system (the
//! field names of `WORKLOADS.md`, in a fixed order), then a human table with
//! the ratios `mailboxd / baseline`.
//!
//! Formatting only: the figures arrive computed.

use std::fmt::Write as _;

use serde_json::Value;

use crate::spec::{System, Workload};
use crate::stats::{self, Spread};

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
    /// Which round of `--repeat` (1-based); `None` without `--repeat`.
    pub round: Option<u32>,
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
            round: None,
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
        if let Some(round) = self.round {
            fields.push(("round", Value::from(round)));
        }
        if let Some(messages) = self.messages {
            fields.push(("messages", Value::from(messages)));
        }
        if let Some(bytes) = self.bytes {
            fields.push(("bytes", Value::from(bytes)));
        }
        if let Some(form) = self.system.form() {
            fields.push(("form", Value::from(form)));
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
        "broker_cpu_us_per_msg" => 2,
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
pub enum Better {
    /// Throughput.
    Higher,
    /// Latency, memory, time, fairness.
    Lower,
}

impl Better {
    /// As the table writes it.
    pub fn text(self) -> &'static str {
        match self {
            Better::Higher => "higher",
            Better::Lower => "lower",
        }
    }
}

/// The rows of the table: workload, figure, which way is better.
pub const ROWS: [(Workload, &str, Better); 18] = [
    (Workload::Stream, "msgs_per_s", Better::Higher),
    (Workload::Rtt, "p50_us", Better::Lower),
    (Workload::Rtt, "p99_us", Better::Lower),
    (Workload::Rtt, "p999_us", Better::Lower),
    (Workload::Fanout, "deliveries_per_s", Better::Higher),
    (Workload::Workq, "msgs_per_s", Better::Higher),
    (Workload::Workq, "fairness", Better::Lower),
    (Workload::Rendezvous, "msgs_per_s", Better::Higher),
    (Workload::Large, "gib_per_s", Better::Higher),
    (Workload::Large, "broker_cpu_us_per_msg", Better::Lower),
    (Workload::FanoutLarge, "deliveries_per_s", Better::Higher),
    (
        Workload::FanoutLarge,
        "broker_cpu_us_per_msg",
        Better::Lower,
    ),
    (Workload::Conns, "rss_mib", Better::Lower),
    (Workload::Conns, "deliver_s", Better::Lower),
    (Workload::Memory, "rss_mib", Better::Lower),
    (Workload::Memory, "bytes_per_message", Better::Lower),
    (Workload::IdleMailboxes, "rss_mib", Better::Lower),
    (Workload::IdleMailboxes, "bytes_per_mailbox", Better::Lower),
];

/// Figure `name` of every run of `workload` on `system` that measured it,
/// with its round, in the order of `records`.
fn samples(
    records: &[Record],
    workload: Workload,
    system: System,
    name: &str,
) -> Vec<(Option<u32>, f64)> {
    records
        .iter()
        .filter(|r| r.workload == workload && r.system == system)
        .filter_map(|r| Some((r.round, r.get(name)?)))
        .collect()
}

/// Min, median and max of figure `name` over the rounds of one cell.
pub fn spread(
    records: &[Record],
    workload: Workload,
    system: System,
    name: &str,
) -> Option<Spread> {
    let values: Vec<f64> = samples(records, workload, system, name)
        .into_iter()
        .map(|(_, value)| value)
        .collect();
    stats::spread(&values)
}

/// `ours / baseline` for figure `name` (`ours` one of [`System::OURS`]):
/// the median is the ratio of the medians; min and max are the lowest and
/// highest ratio of one round's run of ours to the same round's baseline
/// run (widened to include the median). `count` is the rounds paired.
pub fn ratio_spread(
    records: &[Record],
    workload: Workload,
    ours_system: System,
    baseline: System,
    name: &str,
) -> Option<Spread> {
    let ours = spread(records, workload, ours_system, name)?;
    let theirs = spread(records, workload, baseline, name)?;
    let median = stats::ratio(Some(ours.median), Some(theirs.median))?;
    let their_samples = samples(records, workload, baseline, name);
    let paired: Vec<f64> = samples(records, workload, ours_system, name)
        .into_iter()
        .filter_map(|(round, value)| {
            let (_, base) = their_samples.iter().find(|(r, _)| *r == round)?;
            stats::ratio(Some(value), Some(*base))
        })
        .collect();
    let rounds = stats::spread(&paired);
    Some(Spread {
        min: rounds.map_or(median, |r| r.min.min(median)),
        median,
        max: rounds.map_or(median, |r| r.max.max(median)),
        count: paired.len(),
    })
}

/// The summary of the rounds of one cell as a JSON line: how many rounds
/// measured (`samples`), failed and were skipped, then per figure its min,
/// median and max over the measured ones, in the order the runs reported
/// them.
pub fn summary_line(records: &[Record], workload: Workload, system: System) -> String {
    let cell: Vec<&Record> = records
        .iter()
        .filter(|r| r.workload == workload && r.system == system)
        .collect();
    let failed = cell.iter().filter(|r| r.error.is_some()).count();
    let measured = cell.iter().filter(|r| !r.figures.is_empty()).count();
    let skipped = cell.len() - failed - measured;
    let mut names: Vec<&'static str> = Vec::new();
    for figure in cell.iter().flat_map(|r| &r.figures) {
        if !names.contains(&figure.name) {
            names.push(figure.name);
        }
    }
    let mut fields = vec![
        format!("\"samples\":{measured}"),
        format!("\"failed\":{failed}"),
        format!("\"skipped\":{skipped}"),
    ];
    for name in names {
        if let Some(spread) = spread(records, workload, system, name) {
            let places = decimals(name);
            fields.push(format!(
                "{}:{{\"min\":{},\"median\":{},\"max\":{}}}",
                Value::from(name),
                rounded(spread.min, places),
                rounded(spread.median, places),
                rounded(spread.max, places)
            ));
        }
    }
    format!(
        "{{\"workload\":{},\"system\":{},\"summary\":{{{}}}}}",
        Value::from(workload.id()),
        Value::from(system.id()),
        fields.join(",")
    )
}

/// The rows of a table: each row of [`ROWS`] whose workload ran, once per
/// form of ours that measured it (`mailboxd` always, `mailboxd-files`
/// where it has the figure), with the figure's label.
fn table_rows(records: &[Record]) -> Vec<(Workload, &'static str, Better, System, String)> {
    let mut rows = Vec::new();
    for (workload, name, better) in ROWS {
        if !records.iter().any(|r| r.workload == workload) {
            continue;
        }
        for ours in System::OURS {
            if ours != System::Mailboxd && spread(records, workload, ours, name).is_none() {
                continue;
            }
            let label = match ours {
                System::Mailboxd => name.to_owned(),
                _ => format!("{name} [files]"),
            };
            rows.push((workload, name, better, ours, label));
        }
    }
    rows
}

/// The human table: each figure per system, then `mailboxd / baseline`
/// (`mailboxd-files / baseline` on the rows marked `[files]`).
/// With several rounds a cell is `median (min-max)` and a ratio is the
/// ratio of the medians, with the range of the per-round ratios.
pub fn table(records: &[Record]) -> String {
    let baselines = &System::BASELINES;
    let repeated = records.iter().any(|r| r.round.is_some_and(|n| n > 1));
    let (value_width, ratio_width) = if repeated { (22, 18) } else { (10, 11) };
    let mut out = String::new();
    let _ = write!(out, "{:<14} {:<29} {:<7}", "workload", "figure", "better");
    for system in System::ALL {
        let _ = write!(out, " {:>value_width$}", system.id());
    }
    out.push_str("  |");
    for system in baselines {
        let _ = write!(out, " {:>ratio_width$}", format!("/{}", system.id()));
    }
    out.push('\n');
    for (workload, name, better, ours, label) in table_rows(records) {
        let _ = write!(
            out,
            "{:<14} {:<29} {:<7}",
            workload.id(),
            label,
            better.text()
        );
        for system in System::ALL {
            let cell = value_cell(records, workload, system, name);
            let _ = write!(out, " {cell:>value_width$}");
        }
        out.push_str("  |");
        for &system in baselines {
            let cell = ratio_cell(records, workload, ours, system, name);
            let _ = write!(out, " {cell:>ratio_width$}");
        }
        out.push('\n');
    }
    out.push_str(
        "ratios are mailboxd / baseline (mailboxd-files / baseline on rows marked \
         [files]): above 1x is better for `higher` figures (throughput), below 1x is \
         better for `lower` ones (latency, memory, time, fairness max/min)\n",
    );
    if repeated {
        out.push_str(
            "with --repeat: median (min-max) of the rounds; a ratio is the ratio of \
             the medians, (min-max) of the ratios of the same round\n",
        );
    }
    out
}

/// One system's figure as the tables show it: `median (min-max)` over
/// several rounds, the value alone for one, `-` when not measured.
fn value_cell(records: &[Record], workload: Workload, system: System, name: &str) -> String {
    spread(records, workload, system, name).map_or_else(
        || "-".to_owned(),
        |s| {
            if s.count > 1 {
                format!("{} ({}-{})", human(s.median), human(s.min), human(s.max))
            } else {
                human(s.median)
            }
        },
    )
}

/// `ours / system` as the tables show it: the ratio of the medians and
/// the range of the per-round ratios, `-` when either is missing.
fn ratio_cell(
    records: &[Record],
    workload: Workload,
    ours: System,
    system: System,
    name: &str,
) -> String {
    ratio_spread(records, workload, ours, system, name).map_or_else(
        || "-".to_owned(),
        |r| {
            if r.count > 1 {
                format!("{:.2}x ({:.2}-{:.2})", r.median, r.min, r.max)
            } else {
                format!("{:.2}x", r.median)
            }
        },
    )
}

/// The table of [`table`] as Markdown (`--markdown FILE.md`), for a README:
/// the same cells, the systems that ran only, and the rows of the
/// workloads that ran.
pub fn markdown_table(records: &[Record]) -> String {
    let ran = |system: &System| records.iter().any(|r| r.system == *system);
    let systems: Vec<System> = System::ALL.into_iter().filter(ran).collect();
    let files_ran = systems.contains(&System::MailboxdFiles);
    // With both forms, a `[files]` row is also divided by inline mailboxd.
    let baselines: Vec<System> = systems
        .iter()
        .copied()
        .filter(|&s| !s.is_mailboxd() || (files_ran && s == System::Mailboxd))
        .collect();
    let ours = if files_ran { "ours" } else { "mailboxd" };
    let mut out = String::from("| workload | figure | better |");
    for system in &systems {
        let _ = write!(out, " {} |", system.id());
    }
    for system in &baselines {
        let _ = write!(out, " {ours} / {} |", system.id());
    }
    out.push_str("\n|---|---|---|");
    out.push_str(&"---|".repeat(systems.len() + baselines.len()));
    out.push('\n');
    for (workload, name, better, row_ours, label) in table_rows(records) {
        let _ = write!(out, "| {} | {} | {} |", workload.id(), label, better.text());
        for &system in &systems {
            let _ = write!(out, " {} |", value_cell(records, workload, system, name));
        }
        for &system in &baselines {
            let cell = if system == row_ours {
                "-".to_owned()
            } else {
                ratio_cell(records, workload, row_ours, system, name)
            };
            let _ = write!(out, " {cell} |");
        }
        out.push('\n');
    }
    if files_ran {
        out.push_str(
            "\nRatios are mailboxd / baseline, and mailboxd-files / baseline on the rows \
             marked [files].\n",
        );
    }
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
            r#"{"workload":"stream","system":"mailboxd","messages":1000000,"bytes":64,"form":"inline","seconds":0.61,"msgs_per_s":1639344}"#
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
    fn memory_files_get_rows_of_their_own() {
        let record = |system, gib, cpu: Option<f64>| {
            let mut r = Record::new(Workload::Large, system);
            r.figure("gib_per_s", gib);
            if let Some(cpu) = cpu {
                r.figure("broker_cpu_us_per_msg", cpu);
            }
            r
        };
        let records = [
            record(System::Mailboxd, 1.0, Some(300.0)),
            record(System::MailboxdFiles, 6.0, Some(20.0)),
            record(System::UdsDirect, 2.0, None),
        ];
        let files = records[1].to_json_line();
        assert!(
            files.contains(r#""system":"mailboxd-files","form":"file""#),
            "{files}"
        );
        assert!(files.contains(r#""broker_cpu_us_per_msg":20.0"#), "{files}");
        let table = table(&records);
        let inline = table
            .lines()
            .find(|l| l.starts_with("large") && l.contains("gib_per_s "))
            .unwrap();
        assert!(inline.contains("0.50x"), "{inline}");
        let shared = table
            .lines()
            .find(|l| l.contains("gib_per_s [files]"))
            .unwrap();
        assert!(shared.contains("3.00x"), "{shared}");
        assert!(table.contains("broker_cpu_us_per_msg [files]"), "{table}");
        let markdown = markdown_table(&records);
        assert!(markdown.contains("| ours / uds-direct |"), "{markdown}");
        let shared = markdown
            .lines()
            .find(|l| l.contains("| gib_per_s [files] |"))
            .unwrap();
        // Against inline mailboxd (6x), then against uds-direct (3x).
        assert!(shared.contains("| 6.00x |"), "{shared}");
        assert!(shared.contains("| 3.00x |"), "{shared}");
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
    fn repeated_rounds_show_median_and_spread() {
        let mut records = Vec::new();
        for (round, ours, theirs) in [(1, 3.0e6, 1.0e6), (2, 2.0e6, 1.0e6), (3, 4.0e6, 2.0e6)] {
            for (system, value) in [(System::Mailboxd, ours), (System::PosixMq, theirs)] {
                let mut record = Record::new(Workload::Stream, system);
                record.round = Some(round);
                record.figure("msgs_per_s", value);
                records.push(record);
            }
        }
        let mut failed = Record::failed(Workload::Stream, System::PosixMq, "lost");
        failed.round = Some(4);
        records.push(failed);
        let table = table(&records);
        let row = table.lines().find(|l| l.starts_with("stream")).unwrap();
        assert!(row.contains("3.00M (2.00M-4.00M)"), "{row}");
        assert!(row.contains("1.00M (1.00M-2.00M)"), "{row}");
        // 3M / 1M of the medians; the rounds' ratios are 3, 2 and 2.
        assert!(row.contains("3.00x (2.00-3.00)"), "{row}");
        assert!(table.contains("median (min-max)"));
        let summary = summary_line(&records, Workload::Stream, System::PosixMq);
        assert_eq!(
            summary,
            r#"{"workload":"stream","system":"posix-mq","summary":{"samples":3,"failed":1,"skipped":0,"msgs_per_s":{"min":1000000,"median":1000000,"max":2000000}}}"#
        );
        let parsed: Value = serde_json::from_str(&summary).unwrap();
        assert_eq!(parsed["summary"]["samples"], 3);
        assert!(records[0]
            .to_json_line()
            .contains(r#""system":"mailboxd","round":1,"#));
    }

    #[test]
    fn the_markdown_table_has_the_cells_of_the_text_table() {
        let mut records = Vec::new();
        for round in 1..=2u32 {
            for (system, rate) in [(System::Mailboxd, 300.0), (System::PosixMq, 100.0)] {
                let mut record = Record::new(Workload::Stream, system);
                record.round = Some(round);
                record.figure("msgs_per_s", rate * f64::from(round));
                records.push(record);
            }
        }
        let markdown = markdown_table(&records);
        let lines: Vec<&str> = markdown.lines().collect();
        assert_eq!(
            lines[0],
            "| workload | figure | better | mailboxd | posix-mq | mailboxd / posix-mq |"
        );
        assert_eq!(lines[1], "|---|---|---|---|---|---|");
        assert_eq!(
            lines[2],
            "| stream | msgs_per_s | higher | 450 (300-600) | 150 (100-200) | 3.00x (3.00-3.00) |"
        );
        assert_eq!(lines.len(), 3, "only the workloads that ran: {markdown}");
    }

    #[test]
    fn human_numbers() {
        assert_eq!(human(37_000_000.0), "37.00M");
        assert_eq!(human(590_000.0), "590.0k");
        assert_eq!(human(1234.4), "1234");
        assert_eq!(human(9.1), "9.100");
    }
}
