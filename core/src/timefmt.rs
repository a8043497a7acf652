//! RFC 3339 times without a date-time dependency: formatting UTC seconds and checking text.

use std::sync::OnceLock;
use std::time::{SystemTime, UNIX_EPOCH};

/// Formats seconds since the Unix epoch as `YYYY-MM-DDTHH:MM:SSZ`.
pub fn format_utc(unix_secs: u64) -> String {
    let days = (unix_secs / 86_400) as i64;
    let rem = unix_secs % 86_400;
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// Gregorian date from days since 1970-01-01 (Howard Hinnant's algorithm).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

/// Whether `text` is an RFC 3339 date-time: `YYYY-MM-DDTHH:MM:SS[.frac](Z|±HH:MM)`.
pub fn is_rfc3339(text: &str) -> bool {
    let b = text.as_bytes();
    let digits = |range: std::ops::Range<usize>| {
        b.get(range.clone())
            .is_some_and(|s| s.iter().all(u8::is_ascii_digit))
    };
    let num = |range: std::ops::Range<usize>| -> u32 { text[range].parse().unwrap_or(u32::MAX) };
    if b.len() < 20
        || !digits(0..4)
        || b[4] != b'-'
        || !digits(5..7)
        || b[7] != b'-'
        || !digits(8..10)
        || !matches!(b[10], b'T' | b't' | b' ')
        || !digits(11..13)
        || b[13] != b':'
        || !digits(14..16)
        || b[16] != b':'
        || !digits(17..19)
    {
        return false;
    }
    if !(1..=12).contains(&num(5..7))
        || !(1..=31).contains(&num(8..10))
        || num(11..13) > 23
        || num(14..16) > 59
        || num(17..19) > 60
    {
        return false;
    }
    let mut i = 19;
    if b[i] == b'.' {
        i += 1;
        let start = i;
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
        if i == start {
            return false;
        }
    }
    match &b[i..] {
        [b'Z' | b'z'] => true,
        [b'+' | b'-', ..] if b.len() == i + 6 => {
            digits(i + 1..i + 3) && b[i + 3] == b':' && digits(i + 4..i + 6)
        }
        _ => false,
    }
}

/// When this process started, as RFC 3339 UTC; computed once.
pub fn process_start_time() -> &'static str {
    static START: OnceLock<String> = OnceLock::new();
    START.get_or_init(|| {
        let secs = proc_start_secs().unwrap_or_else(|| {
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or(0)
        });
        format_utc(secs)
    })
}

/// Linux: boot time (`btime` in /proc/stat) plus the process's start tick (/proc/self/stat field 22).
fn proc_start_secs() -> Option<u64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // The command name (field 2) may contain spaces; fields resume after its closing ')'.
    let after_comm = &stat[stat.rfind(')')? + 2..];
    let start_ticks: u64 = after_comm.split(' ').nth(19)?.parse().ok()?;
    let boot: u64 = std::fs::read_to_string("/proc/stat")
        .ok()?
        .lines()
        .find_map(|l| l.strip_prefix("btime "))?
        .trim()
        .parse()
        .ok()?;
    // USER_HZ is 100 on every Linux ABI we build for.
    Some(boot + start_ticks / 100)
}

/// A duration as a person reads it: `0 s`, `250 µs`, `10 ms`, `1.5 s`, `12 s`.
pub fn human_duration(d: &std::time::Duration) -> String {
    let micros = d.as_micros();
    if micros == 0 {
        "0 s".into()
    } else if micros < 1_000 {
        format!("{micros} µs")
    } else if micros < 1_000_000 {
        trimmed(d.as_secs_f64() * 1_000.0, "ms")
    } else {
        trimmed(d.as_secs_f64(), "s")
    }
}

/// `value` with at most one decimal, none when it is whole.
fn trimmed(value: f64, unit: &str) -> String {
    let tenths = (value * 10.0).round() / 10.0;
    if tenths.fract() == 0.0 {
        format!("{tenths:.0} {unit}")
    } else {
        format!("{tenths:.1} {unit}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_as_a_person_writes_them() {
        use std::time::Duration;
        assert_eq!(human_duration(&Duration::ZERO), "0 s");
        assert_eq!(human_duration(&Duration::from_micros(250)), "250 µs");
        assert_eq!(human_duration(&Duration::from_millis(10)), "10 ms");
        assert_eq!(human_duration(&Duration::from_micros(1_500)), "1.5 ms");
        assert_eq!(human_duration(&Duration::from_millis(1_500)), "1.5 s");
        assert_eq!(human_duration(&Duration::from_secs(12)), "12 s");
    }

    #[test]
    fn formats_known_instants() {
        assert_eq!(format_utc(0), "1970-01-01T00:00:00Z");
        assert_eq!(format_utc(1_602_669_600), "2020-10-14T10:00:00Z");
        assert_eq!(format_utc(951_782_400), "2000-02-29T00:00:00Z");
    }

    #[test]
    fn recognises_rfc3339() {
        for good in [
            "2020-10-14T10:00:00Z",
            "2020-10-14T10:00:00.123+08:00",
            "2020-10-14 10:00:00-05:30",
        ] {
            assert!(is_rfc3339(good), "{good}");
        }
        for bad in [
            "2020-10-14",
            "2020-13-14T10:00:00Z",
            "2020-10-14T10:00:00",
            "2020-10-14T10:00:00+0800",
            "x020-10-14T10:00:00Z",
        ] {
            assert!(!is_rfc3339(bad), "{bad}");
        }
    }

    #[test]
    fn start_time_is_in_the_past_and_well_formed() {
        let start = process_start_time();
        assert!(is_rfc3339(start), "{start}");
        assert!(
            start
                <= format_utc(
                    SystemTime::now()
                        .duration_since(UNIX_EPOCH)
                        .unwrap()
                        .as_secs()
                )
                .as_str()
        );
    }
}
