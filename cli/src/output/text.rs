//! The text layout every listing and report shares: aligned tables,
//! `key: value` lines, and sizes, durations, uptimes, limits, users and
//! groups for humans (`--json` has the exact numbers).

use std::fmt::Write as _;
use std::time::Duration;

use mailbox_proto::units::format_duration;
use mailbox_proto::{accounts, Limit, LimitUnit};

/// `key: value` lines, in the order given.
pub(crate) fn key_values(rows: &[(&str, String)]) -> String {
    let mut text = String::new();
    for (key, value) in rows {
        let _ = writeln!(text, "{key}: {value}");
    }
    text
}

/// A table with a header; the first `left` columns (names and words) are
/// aligned to the left, the others (counts) to the right.
pub(crate) fn table<const N: usize>(
    header: [&str; N],
    rows: &[[String; N]],
    left: usize,
) -> String {
    let mut widths = header.map(str::len);
    for row in rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.len());
        }
    }
    let mut text = String::new();
    let mut line = |cells: [&str; N]| {
        let mut row = String::new();
        for (column, (cell, width)) in cells.iter().zip(widths).enumerate() {
            let _ = if column < left {
                write!(row, "{cell:<width$}  ")
            } else {
                write!(row, "{cell:>width$}  ")
            };
        }
        text.push_str(row.trim_end());
        text.push('\n');
    };
    line(header);
    for row in rows {
        line(row.each_ref().map(String::as_str));
    }
    text
}

/// A duration as people read it and `--timeout` takes it back: `500ms`,
/// `2s`, `1.5s`, `10min`, `2h` (exact: `1.25s` is not rounded).
pub(crate) fn human_duration(duration: Duration) -> String {
    let text = format_duration(duration);
    // 1500ms reads better as 1.5s.
    if text.ends_with("ms") && duration >= Duration::from_secs(1) {
        let fraction = format!("{:09}", duration.subsec_nanos());
        return format!("{}.{}s", duration.as_secs(), fraction.trim_end_matches('0'));
    }
    text
}

/// A size as people read it, exact: `12 B`, `1 GiB`, `256 MiB`, and
/// `16.1 MiB (16842752 bytes)` when no unit divides it.
pub(crate) fn human_size(bytes: u64) -> String {
    const UNITS: [(&str, u32); 4] = [("TiB", 40), ("GiB", 30), ("MiB", 20), ("KiB", 10)];
    for (unit, shift) in UNITS {
        let per = 1u64 << shift;
        if bytes >= per {
            return match bytes % per {
                0 => format!("{} {unit}", bytes >> shift),
                _ => format!("{:.1} {unit} ({bytes} bytes)", bytes as f64 / per as f64),
            };
        }
    }
    format!("{bytes} B")
}

/// A limit's value as people read it: a size, a duration or a count, or
/// `none` for no limit.
pub(crate) fn human_limit(limit: &Limit) -> String {
    match (limit.bounded(), limit.unit()) {
        (None, _) => "none".to_owned(),
        (Some(bytes), LimitUnit::Bytes) => human_size(bytes),
        (Some(millis), LimitUnit::Millis) => human_duration(Duration::from_millis(millis)),
        (Some(count), LimitUnit::Count) => count.to_string(),
    }
}

/// A uid as `alice`, or `1000` when it has no name (a table's cell).
pub(crate) fn user_name_or_id(uid: u32) -> String {
    match accounts::user_name(uid) {
        Ok(Some(name)) => name,
        _ => uid.to_string(),
    }
}

/// A uid as `alice (1000)`, or `uid 1000` when it has no name.
pub(crate) fn user(uid: u32) -> String {
    match accounts::user_name(uid) {
        Ok(Some(name)) => format!("{name} ({uid})"),
        _ => format!("uid {uid}"),
    }
}

/// A gid as `staff (50)`, or `gid 50` when it has no name.
pub(crate) fn group(gid: u32) -> String {
    match accounts::group_name(gid) {
        Ok(Some(name)) => format!("{name} ({gid})"),
        _ => format!("gid {gid}"),
    }
}

/// `3d 4h 5m 6s`, leading zero units left out.
pub(crate) fn human_uptime(millis: u64) -> String {
    let seconds = millis / 1000;
    let parts = [
        (seconds / 86_400, "d"),
        (seconds / 3600 % 24, "h"),
        (seconds / 60 % 60, "m"),
    ];
    let mut text = String::new();
    for (amount, unit) in parts {
        if amount > 0 || !text.is_empty() {
            let _ = write!(text, "{amount}{unit} ");
        }
    }
    let _ = write!(text, "{}s", seconds % 60);
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn humans_get_readable_figures() {
        assert_eq!(human_size(12), "12 B");
        assert_eq!(human_size(1536), "1.5 KiB (1536 bytes)");
        assert_eq!(human_size(1 << 30), "1 GiB");
        assert_eq!(human_size(16_842_752), "16.1 MiB (16842752 bytes)");
        assert_eq!(human_duration(Duration::from_millis(1500)), "1.5s");
        assert_eq!(human_duration(Duration::from_millis(500)), "500ms");
        assert_eq!(human_duration(Duration::from_secs(600)), "10min");
        assert_eq!(user(0), "root (0)");
        assert_eq!(group(0), "root (0)");
        assert_eq!(user(4_000_000_000), "uid 4000000000");
        let limit = |name: &str, value| {
            human_limit(&Limit {
                name: name.to_owned(),
                value,
            })
        };
        assert_eq!(limit("max_queued_bytes_per_uid", Limit::NONE), "none");
        assert_eq!(limit("handshake_timeout", 10_000), "10s");
        assert_eq!(
            limit("max_frame_size", 16_842_752),
            "16.1 MiB (16842752 bytes)"
        );
        assert_eq!(limit("max_connections", 16_384), "16384");
        assert_eq!(human_uptime(999), "0s");
        assert_eq!(human_uptime(3_723_000), "1h 2m 3s");
        assert_eq!(human_uptime(90_061_000), "1d 1h 1m 1s");
    }
}
