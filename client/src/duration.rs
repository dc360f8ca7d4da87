//! Human durations as `mailboxctl --timeout` takes them: `500ms`, `2s`,
//! `1.5s`, `1m`, `1h`.
//!
//! Only parsing; formatting durations for display is the caller's business.

use std::time::Duration;

/// Why a string is not a duration.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "invalid duration {input:?}: {reason}; write a number with a unit, like 500ms, 2s, 1.5s or 1m"
)]
pub struct ParseDurationError {
    input: String,
    reason: &'static str,
}

/// Parses a number (optionally with a decimal fraction) followed by a unit:
/// `ms`, `s`, `m` or `h`. The result is exact to the nanosecond.
///
/// ```
/// use std::time::Duration;
/// use mailbox_client::parse_duration;
/// assert_eq!(parse_duration("500ms").unwrap(), Duration::from_millis(500));
/// assert_eq!(parse_duration("1.5s").unwrap(), Duration::from_millis(1500));
/// assert_eq!(parse_duration("2m").unwrap(), Duration::from_secs(120));
/// assert!(parse_duration("10").is_err()); // the unit is required
/// ```
pub fn parse_duration(input: &str) -> Result<Duration, ParseDurationError> {
    let fail = |reason| ParseDurationError {
        input: input.to_owned(),
        reason,
    };
    let text = input.trim();
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .ok_or_else(|| fail("the unit is missing"))?;
    let (number, unit) = text.split_at(split);
    let unit_nanos: u128 = match unit {
        "ms" => 1_000_000,
        "s" => 1_000_000_000,
        "m" => 60 * 1_000_000_000,
        "h" => 60 * 60 * 1_000_000_000,
        _ => return Err(fail("the unit must be ms, s, m or h")),
    };
    let (whole, fraction) = number.split_once('.').unwrap_or((number, ""));
    if whole.is_empty() && fraction.is_empty() {
        return Err(fail("the number is missing"));
    }
    if fraction.contains('.') {
        return Err(fail("the number has more than one decimal point"));
    }
    let digits_value = |digits: &str| -> Result<u128, ParseDurationError> {
        if digits.is_empty() {
            return Ok(0);
        }
        digits
            .parse::<u128>()
            .map_err(|_| fail("the number is too large"))
    };
    // Fraction digits beyond nanosecond precision cannot matter.
    let fraction = &fraction[..fraction.len().min(18)];
    let scale = 10u128.pow(fraction.len() as u32);
    let nanos = digits_value(whole)?
        .checked_mul(unit_nanos)
        .and_then(|whole| whole.checked_add(digits_value(fraction).ok()? * unit_nanos / scale))
        .ok_or_else(|| fail("the duration is too long"))?;
    let secs =
        u64::try_from(nanos / 1_000_000_000).map_err(|_| fail("the duration is too long"))?;
    // The remainder is below 10^9, so it fits.
    let subsec = (nanos % 1_000_000_000) as u32;
    Ok(Duration::new(secs, subsec))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(input: &str, expected: Option<Duration>) {
        assert_eq!(parse_duration(input).ok(), expected, "{input:?}");
    }

    #[test]
    fn accepts_whole_and_fractional_amounts_of_each_unit() {
        check("500ms", Some(Duration::from_millis(500)));
        check("0ms", Some(Duration::ZERO));
        check("2s", Some(Duration::from_secs(2)));
        check("1.5s", Some(Duration::from_millis(1500)));
        check(".5s", Some(Duration::from_millis(500)));
        check("3.s", Some(Duration::from_secs(3)));
        check("0.25ms", Some(Duration::from_micros(250)));
        check("1m", Some(Duration::from_secs(60)));
        check("1.5h", Some(Duration::from_secs(5400)));
        check(" 2s ", Some(Duration::from_secs(2)));
        check("0.1234567891s", Some(Duration::from_nanos(123_456_789)));
    }

    #[test]
    fn refuses_what_is_not_a_duration() {
        for input in [
            "",
            "s",
            ".s",
            "10",
            "1.5",
            "2 s",
            "2sec",
            "-1s",
            "1..5s",
            "1.2.3s",
            "ms5",
            "1e3ms",
            "99999999999999999999999999999999999999999s",
        ] {
            check(input, None);
        }
    }

    #[test]
    fn the_error_says_how_to_write_one() {
        let error = parse_duration("10").expect_err("should fail").to_string();
        assert!(error.contains("like 500ms, 2s"), "{error}");
    }
}
