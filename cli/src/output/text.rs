//! The text layout every listing and report shares: aligned tables,
//! `key: value` lines, and sizes, durations and uptimes for humans.

use std::fmt::Write as _;
use std::time::Duration;

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

/// `500ms`, `2s`: how an interval is shown.
pub(crate) fn humantime_like(interval: Duration) -> String {
    if interval.subsec_millis() == 0 {
        format!("{}s", interval.as_secs())
    } else {
        format!("{}ms", interval.as_millis())
    }
}

/// `1048576 (1.0 MiB)`; small sizes as plain bytes.
pub(crate) fn human_bytes(bytes: u64) -> String {
    const UNITS: [&str; 4] = ["KiB", "MiB", "GiB", "TiB"];
    if bytes < 1024 {
        return format!("{bytes} B");
    }
    let mut value = bytes as f64 / 1024.0;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    format!("{bytes} B ({value:.1} {})", UNITS[unit])
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
        assert_eq!(human_bytes(12), "12 B");
        assert_eq!(human_bytes(1536), "1536 B (1.5 KiB)");
        assert_eq!(human_uptime(999), "0s");
        assert_eq!(human_uptime(3_723_000), "1h 2m 3s");
        assert_eq!(human_uptime(90_061_000), "1d 1h 1m 1s");
    }
}
