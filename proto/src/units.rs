//! Sizes, durations and modes as people write them, parsed one way for the
//! configuration file, `mailboxd`'s flags, `mailboxctl` and the client
//! library, so that a value accepted in one place is accepted everywhere.
//!
//! - **Sizes**: a number of bytes, optionally followed by a unit: `B`, `K`,
//!   `M` or `G`, also spelled `KB`/`KiB`, `MB`/`MiB`, `GB`/`GiB`, in any case.
//!   Every unit is a power of 1024 (`1K` = 1024, `1M` = 1024 K), as the
//!   configuration file has always meant them; `KB` is 1024 bytes too. Whole
//!   numbers only: a size is counted in bytes.
//! - **Durations**: a number, with an optional decimal fraction, and a unit:
//!   `ms`, `s`, `min` (or `m`) or `h`. `1.5s` is exactly 1500 ms: the
//!   fraction is read as decimal digits, never through a float, and is exact
//!   to the nanosecond (digits below a nanosecond are dropped). The unit is
//!   required, except for zero (`0` is `0s`).
//! - **Modes**: permission bits in octal, `0660`, `660` or `0o660`, at most
//!   `0777`.
//!
//! Surrounding whitespace is ignored, and so is whitespace between a number
//! and its unit (`64 K`, `5 s`). Anything too large for the result is
//! refused, never wrapped or saturated.
//!
//! ```
//! use std::time::Duration;
//! use mailbox_proto::units::{format_duration, format_size, parse_duration, parse_mode, parse_size};
//!
//! assert_eq!(parse_size("64K"), Ok(64 * 1024));
//! assert_eq!(parse_size("1GiB"), Ok(1 << 30));
//! assert_eq!(parse_duration("1.5s"), Ok(Duration::from_millis(1500)));
//! assert_eq!(parse_duration("10min"), Ok(Duration::from_secs(600)));
//! assert_eq!(parse_mode("0760"), Ok(0o760));
//! assert_eq!(format_size(16_842_752), "16448K");
//! assert_eq!(format_duration(Duration::from_millis(1500)), "1500ms");
//! ```
//!
//! No I/O here: callers bring the text and decide what the value means.

use std::time::Duration;

/// What is wrong with a size, duration or mode, and what was expected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    /// Not a number of bytes with an optional unit.
    #[error("{input:?} is not a size like 1048576, \"512K\", \"64M\" or \"1G\"")]
    NotASize {
        /// The text given.
        input: String,
    },
    /// A number followed by something that is not a size unit.
    #[error("unknown unit {unit:?} in {input:?}; use K, M or G")]
    UnknownSizeUnit {
        /// The text given.
        input: String,
        /// The unit as written.
        unit: String,
    },
    /// A size above what the caller can hold.
    #[error("{input:?} is too large (at most {max} bytes)")]
    SizeTooLarge {
        /// The text given.
        input: String,
        /// The largest size allowed.
        max: u64,
    },
    /// A bare number where a duration was expected.
    #[error("{input:?} needs a unit: ms, s, min (or m) or h, like 500ms, 2s, 1.5s or 10min")]
    DurationWithoutUnit {
        /// The text given.
        input: String,
    },
    /// Not a number followed by a duration unit.
    #[error(
        "{input:?} is not a duration: {reason}; write a number with a unit, \
         like 500ms, 2s, 1.5s or 10min"
    )]
    NotADuration {
        /// The text given.
        input: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// A duration longer than a [`Duration`] can hold.
    #[error("{input:?} is too long a duration")]
    DurationTooLong {
        /// The text given.
        input: String,
    },
    /// Not permission bits in octal.
    #[error(
        "{input:?} is not an octal mode like \"0660\" (digits 0 to 7, at most 0777: \
         owner, group, others; receive 4, send 2, manage 1)"
    )]
    NotAMode {
        /// The text given.
        input: String,
    },
}

/// The largest mode [`parse_mode`] accepts: read, write and execute
/// (receive, send, manage) for owner, group and others; no setuid, setgid
/// or sticky bits.
pub const MAX_MODE: u32 = 0o777;

/// Size units, by their power of 1024. The shortest spelling comes first:
/// it is the one [`format_size`] writes.
const SIZE_UNITS: [(&str, u32); 4] = [("G", 30), ("M", 20), ("K", 10), ("", 0)];

/// A byte count: digits with an optional unit, `B`, `K`, `M` or `G` (powers
/// of 1024; `KB` and `KiB` spellings too, in any case).
///
/// ```
/// use mailbox_proto::units::parse_size;
/// assert_eq!(parse_size("512"), Ok(512));
/// assert_eq!(parse_size("64K"), Ok(65_536));
/// assert_eq!(parse_size("1 MiB"), Ok(1 << 20));
/// assert!(parse_size("1T").is_err());
/// ```
pub fn parse_size(input: &str) -> Result<u64, ParseError> {
    let text = input.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (digits, unit) = text.split_at(split);
    let not_a_size = || ParseError::NotASize {
        input: text.to_owned(),
    };
    if digits.is_empty() {
        return Err(not_a_size());
    }
    let shift = match unit.trim_start().to_ascii_uppercase().as_str() {
        "" | "B" => 0,
        "K" | "KB" | "KIB" => 10,
        "M" | "MB" | "MIB" => 20,
        "G" | "GB" | "GIB" => 30,
        _ => {
            return Err(ParseError::UnknownSizeUnit {
                input: text.to_owned(),
                unit: unit.trim_start().to_owned(),
            })
        }
    };
    let too_large = || ParseError::SizeTooLarge {
        input: text.to_owned(),
        max: u64::MAX,
    };
    // Only digits, so the one way to fail is to be too large.
    let value: u64 = digits.parse().map_err(|_| too_large())?;
    value.checked_mul(1 << shift).ok_or_else(too_large)
}

/// [`parse_size`], refusing anything above `max` (for a size held in a
/// `u32`, say).
///
/// ```
/// use mailbox_proto::units::parse_size_at_most;
/// assert_eq!(parse_size_at_most("64KiB", u32::MAX.into()), Ok(65_536));
/// assert!(parse_size_at_most("4096M", u32::MAX.into()).is_err());
/// ```
pub fn parse_size_at_most(input: &str, max: u64) -> Result<u64, ParseError> {
    match parse_size(input) {
        Ok(size) if size <= max => Ok(size),
        Ok(_) | Err(ParseError::SizeTooLarge { .. }) => Err(ParseError::SizeTooLarge {
            input: input.trim().to_owned(),
            max,
        }),
        Err(error) => Err(error),
    }
}

/// A size as [`parse_size`] reads it back: in the largest unit that divides
/// it exactly (`16448K`, `1G`, `1000`).
///
/// ```
/// use mailbox_proto::units::format_size;
/// assert_eq!(format_size(64 << 20), "64M");
/// assert_eq!(format_size(1000), "1000");
/// assert_eq!(format_size(0), "0");
/// ```
pub fn format_size(bytes: u64) -> String {
    let (unit, shift) = SIZE_UNITS
        .into_iter()
        .find(|&(_, shift)| bytes != 0 && bytes.trailing_zeros() >= shift)
        .unwrap_or(("", 0));
    format!("{}{unit}", bytes >> shift)
}

/// Nanoseconds in each duration unit. The unit [`format_duration`] writes
/// comes before its other spellings.
const DURATION_UNITS: [(&str, u128); 5] = [
    ("h", 3_600_000_000_000),
    ("min", 60_000_000_000),
    ("m", 60_000_000_000),
    ("s", 1_000_000_000),
    ("ms", 1_000_000),
];

/// A duration: a number (optionally with a decimal fraction) and a unit,
/// `ms`, `s`, `min` (or `m`) or `h`. The result is exact to the nanosecond.
///
/// ```
/// use std::time::Duration;
/// use mailbox_proto::units::parse_duration;
/// assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
/// assert_eq!(parse_duration("1.5s"), Ok(Duration::from_millis(1500)));
/// assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
/// assert_eq!(parse_duration("10min"), Ok(Duration::from_secs(600)));
/// assert_eq!(parse_duration("0s"), Ok(Duration::ZERO));
/// assert_eq!(parse_duration("0"), Ok(Duration::ZERO)); // zero needs no unit
/// assert!(parse_duration("10").is_err()); // any other number does
/// ```
pub fn parse_duration(input: &str) -> Result<Duration, ParseError> {
    let text = input.trim();
    let fail = |reason| ParseError::NotADuration {
        input: text.to_owned(),
        reason,
    };
    let too_long = || ParseError::DurationTooLong {
        input: text.to_owned(),
    };
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let (whole, fraction) = number.split_once('.').unwrap_or((number, ""));
    if whole.is_empty() && fraction.is_empty() {
        return Err(fail("the number is missing"));
    }
    if fraction.contains('.') {
        return Err(fail("the number has more than one decimal point"));
    }
    let unit = unit.trim_start();
    // Zero is zero in every unit, so `--interval 0` needs none.
    if unit.is_empty() && number.bytes().all(|b| b == b'0' || b == b'.') {
        return Ok(Duration::ZERO);
    }
    if unit.is_empty() {
        return Err(ParseError::DurationWithoutUnit {
            input: text.to_owned(),
        });
    }
    let Some(&(_, unit_nanos)) = DURATION_UNITS.iter().find(|(name, _)| *name == unit) else {
        return Err(fail("the unit must be ms, s, min (or m) or h"));
    };
    // Only digits, so the one way to fail is to be too large.
    let value = |digits: &str| -> Result<u128, ParseError> {
        if digits.is_empty() {
            return Ok(0);
        }
        digits.parse::<u128>().map_err(|_| too_long())
    };
    // Fraction digits beyond nanosecond precision cannot matter, and 18 of
    // them times the longest unit still fit a u128.
    let fraction = &fraction[..fraction.len().min(18)];
    let scale = 10u128.pow(fraction.len() as u32);
    let nanos = value(whole)?
        .checked_mul(unit_nanos)
        .and_then(|whole| whole.checked_add(value(fraction).ok()? * unit_nanos / scale))
        .ok_or_else(too_long)?;
    let secs = u64::try_from(nanos / 1_000_000_000).map_err(|_| too_long())?;
    // The remainder is below 10^9, so it fits.
    let subsec = (nanos % 1_000_000_000) as u32;
    Ok(Duration::new(secs, subsec))
}

/// A duration as [`parse_duration`] reads it back: in the largest unit
/// that divides it exactly (`2h`, `10min`, `5s`, `200ms`), else in seconds
/// with as many decimals as it needs.
///
/// ```
/// use std::time::Duration;
/// use mailbox_proto::units::format_duration;
/// assert_eq!(format_duration(Duration::from_secs(600)), "10min");
/// assert_eq!(format_duration(Duration::from_millis(200)), "200ms");
/// assert_eq!(format_duration(Duration::from_micros(1500)), "0.0015s");
/// assert_eq!(format_duration(Duration::ZERO), "0s");
/// ```
pub fn format_duration(duration: Duration) -> String {
    let nanos = duration.as_nanos();
    if nanos == 0 {
        return "0s".to_owned();
    }
    if let Some((unit, per)) = DURATION_UNITS
        .into_iter()
        .filter(|&(unit, _)| unit != "m")
        .find(|&(_, per)| nanos % per == 0)
    {
        return format!("{}{unit}", nanos / per);
    }
    let fraction = format!("{:09}", duration.subsec_nanos());
    format!("{}.{}s", duration.as_secs(), fraction.trim_end_matches('0'))
}

/// Permission bits in octal: `0660`, `660` or `0o660`, at most `0777`.
///
/// ```
/// use mailbox_proto::units::parse_mode;
/// assert_eq!(parse_mode("0760"), Ok(0o760));
/// assert_eq!(parse_mode("0o600"), Ok(0o600));
/// assert!(parse_mode("0800").is_err());
/// assert!(parse_mode("01777").is_err());
/// ```
pub fn parse_mode(input: &str) -> Result<u32, ParseError> {
    let text = input.trim();
    let digits = text.strip_prefix("0o").unwrap_or(text);
    let not_a_mode = || ParseError::NotAMode {
        input: text.to_owned(),
    };
    if digits.is_empty() || !digits.bytes().all(|b| (b'0'..=b'7').contains(&b)) {
        return Err(not_a_mode());
    }
    match u32::from_str_radix(digits, 8) {
        Ok(mode) if mode <= MAX_MODE => Ok(mode),
        _ => Err(not_a_mode()),
    }
}

/// A mode as [`parse_mode`] reads it back and as `ls` shows it: `0760`.
pub fn format_mode(mode: u32) -> String {
    format!("{mode:04o}")
}

#[cfg(test)]
mod tests;
