//! The three syntaxes: what each accepts (the union of what the
//! configuration file, `mailboxd`'s flags, `mailboxctl` and the client
//! library accepted before they shared this module), what each refuses, and
//! formatting read back exactly.

use super::*;
use proptest::prelude::*;

fn duration(input: &str) -> Option<Duration> {
    parse_duration(input).ok()
}

#[test]
fn sizes_take_binary_units_in_every_spelling() {
    for (input, expected) in [
        ("0", 0),
        ("512", 512),
        ("1024", 1024),
        ("10B", 10),
        ("10 b", 10),
        ("512K", 512 << 10),
        ("64k", 64 << 10),
        ("64KB", 64 << 10),
        ("64KiB", 64 << 10),
        ("64 KiB", 64 << 10),
        ("1M", 1 << 20),
        ("64M", 64 << 20),
        ("1MiB", 1 << 20),
        ("64mb", 64 << 20),
        ("1G", 1 << 30),
        ("1GiB", 1 << 30),
        ("  2g  ", 2 << 30),
        ("16448K", 16_842_752),
    ] {
        assert_eq!(parse_size(input), Ok(expected), "{input:?}");
    }
}

#[test]
fn sizes_refuse_what_is_not_a_byte_count() {
    for input in [
        "", "K", "lots", "-1", "+5", "1.5M", "1T", "64Q", "1KK", "0x10",
    ] {
        assert!(parse_size(input).is_err(), "{input:?}");
    }
}

#[test]
fn sizes_refuse_overflow() {
    assert_eq!(parse_size("18446744073709551615"), Ok(u64::MAX));
    for input in ["18446744073709551616", "99999999999G", "17179869184G"] {
        assert!(
            matches!(parse_size(input), Err(ParseError::SizeTooLarge { .. })),
            "{input:?}"
        );
    }
    assert_eq!(parse_size_at_most("4G", 4 << 30), Ok(4 << 30));
    assert_eq!(
        parse_size_at_most("4096MiB", u32::MAX.into()),
        Err(ParseError::SizeTooLarge {
            input: "4096MiB".into(),
            max: u32::MAX.into()
        })
    );
    assert!(matches!(
        parse_size_at_most("lots", 10),
        Err(ParseError::NotASize { .. })
    ));
}

#[test]
fn size_errors_say_what_was_expected() {
    assert_eq!(
        parse_size("64Q").unwrap_err().to_string(),
        "unknown unit \"Q\" in \"64Q\"; use K, M or G"
    );
    assert_eq!(
        parse_size("lots").unwrap_err().to_string(),
        "\"lots\" is not a size like 1048576, \"512K\", \"64M\" or \"1G\""
    );
}

#[test]
fn durations_take_whole_and_fractional_amounts_of_each_unit() {
    for (input, expected) in [
        ("500ms", Duration::from_millis(500)),
        ("0ms", Duration::ZERO),
        ("0s", Duration::ZERO),
        ("0", Duration::ZERO),
        ("0.0", Duration::ZERO),
        ("5s", Duration::from_secs(5)),
        ("200ms", Duration::from_millis(200)),
        ("1.5s", Duration::from_millis(1500)),
        (".5s", Duration::from_millis(500)),
        ("3.s", Duration::from_secs(3)),
        ("0.25ms", Duration::from_micros(250)),
        ("1m", Duration::from_secs(60)),
        ("2m", Duration::from_secs(120)),
        ("10min", Duration::from_secs(600)),
        ("1.5h", Duration::from_secs(5400)),
        ("1h", Duration::from_secs(3600)),
        (" 2s ", Duration::from_secs(2)),
        ("2 s", Duration::from_secs(2)),
        ("0.1234567891s", Duration::from_nanos(123_456_789)),
        // Exact decimals: no float would give 0.3 s from 0.1 + 0.2 rounding.
        ("0.3s", Duration::from_millis(300)),
        ("0.000000001s", Duration::from_nanos(1)),
        ("0.1ms", Duration::from_micros(100)),
    ] {
        assert_eq!(duration(input), Some(expected), "{input:?}");
    }
}

#[test]
fn durations_refuse_what_is_not_a_duration() {
    for input in [
        "", "s", ".s", "5", "10", "1.5", "2sec", "2S", "-1s", "1..5s", "1.2.3s", "ms5", "1e3ms",
        "5us", "5d",
    ] {
        assert_eq!(duration(input), None, "{input:?}");
    }
}

#[test]
fn durations_refuse_overflow() {
    let max = "18446744073709551615.999999999s";
    assert_eq!(duration(max), Some(Duration::MAX));
    for input in [
        "18446744073709551616s",
        "99999999999999999999999999999999999999999s",
        "5124095576030432h",
    ] {
        assert!(
            matches!(
                parse_duration(input),
                Err(ParseError::DurationTooLong { .. })
            ),
            "{input:?}"
        );
    }
}

#[test]
fn duration_errors_say_how_to_write_one() {
    let error = parse_duration("5").unwrap_err().to_string();
    assert!(error.starts_with("\"5\" needs a unit"), "{error}");
    assert!(error.contains("like 500ms, 2s"), "{error}");
    let error = parse_duration("2sec").unwrap_err().to_string();
    assert!(error.contains("like 500ms, 2s"), "{error}");
}

#[test]
fn modes_are_octal_up_to_0777() {
    assert_eq!(parse_mode("0660"), Ok(0o660));
    assert_eq!(parse_mode("660"), Ok(0o660));
    assert_eq!(parse_mode("0o600"), Ok(0o600));
    assert_eq!(parse_mode(" 0760 "), Ok(0o760));
    assert_eq!(parse_mode("0"), Ok(0));
    assert_eq!(parse_mode("0777"), Ok(MAX_MODE));
    for input in ["", "0o", "0800", "1777", "01777", "rw-", "-1", "0x1ff"] {
        assert!(parse_mode(input).is_err(), "{input:?}");
    }
    let error = parse_mode("0988").unwrap_err().to_string();
    assert!(
        error.starts_with("\"0988\" is not an octal mode"),
        "{error}"
    );
}

#[test]
fn formatting_picks_the_largest_exact_unit() {
    assert_eq!(format_size(0), "0");
    assert_eq!(format_size(1536), "1536");
    assert_eq!(format_size(16_842_752), "16448K");
    assert_eq!(format_size(64 << 20), "64M");
    assert_eq!(format_size(1 << 30), "1G");
    assert_eq!(format_size(u64::MAX), "18446744073709551615");
    assert_eq!(format_duration(Duration::from_secs(7200)), "2h");
    assert_eq!(format_duration(Duration::from_secs(90)), "90s");
    assert_eq!(format_duration(Duration::from_secs(600)), "10min");
    assert_eq!(format_duration(Duration::from_nanos(1)), "0.000000001s");
    assert_eq!(format_duration(Duration::new(1, 500)), "1.0000005s");
    assert_eq!(format_mode(0o760), "0760");
    assert_eq!(format_mode(0o7), "0007");
}

proptest! {
    #[test]
    fn a_formatted_size_reads_back(bytes in any::<u64>(), shift in 0u32..40) {
        // Low bits cleared, so that K, M and G come up too.
        let bytes = (bytes >> shift) << shift;
        prop_assert_eq!(parse_size(&format_size(bytes)), Ok(bytes));
    }

    #[test]
    fn a_formatted_duration_reads_back(secs in any::<u64>(), nanos in 0u32..1_000_000_000, coarse in any::<bool>()) {
        // Half the cases whole seconds, so that min and h come up too.
        let duration = if coarse {
            Duration::from_secs(secs % (1 << 40))
        } else {
            Duration::new(secs, nanos)
        };
        prop_assert_eq!(parse_duration(&format_duration(duration)), Ok(duration));
    }

    #[test]
    fn a_formatted_mode_reads_back(mode in 0u32..=MAX_MODE) {
        prop_assert_eq!(parse_mode(&format_mode(mode)), Ok(mode));
    }

    #[test]
    fn any_text_parses_or_is_refused_without_panic(text in "\\PC{0,24}") {
        let _ = parse_size(&text);
        let _ = parse_duration(&text);
        let _ = parse_mode(&text);
    }
}
