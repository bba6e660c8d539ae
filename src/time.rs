//! Reading times the way a newsroom writes them: RFC 3339 instants, local
//! date-times in the site's zone, bare dates, and durations like `36h`.
//! Local times that a DST change skips or repeats resolve by one rule used
//! everywhere: a skipped time is the first valid instant after the gap, a
//! repeated time is its first occurrence.

use chrono::{
    DateTime, Duration, LocalResult, NaiveDate, NaiveDateTime, NaiveTime, TimeZone, Timelike, Utc,
};
use chrono_tz::Tz;

/// The instant a local wall-clock time in `tz` stands for.
pub fn local_to_utc(tz: Tz, local: NaiveDateTime) -> DateTime<Utc> {
    match tz.from_local_datetime(&local) {
        LocalResult::Single(t) => t.with_timezone(&Utc),
        LocalResult::Ambiguous(first, _) => first.with_timezone(&Utc),
        LocalResult::None => {
            // Inside a gap: the first wall-clock minute that exists again is
            // the instant the clocks jumped to. Gaps start and end on whole
            // minutes and last at most a few hours in the tz database.
            let mut probe = local
                .with_second(0)
                .unwrap_or(local)
                .with_nanosecond(0)
                .unwrap_or(local);
            for _ in 0..(24 * 60) {
                probe += Duration::minutes(1);
                if let Some(t) = tz.from_local_datetime(&probe).earliest() {
                    return t.with_timezone(&Utc);
                }
            }
            // Unreachable with real zone data; fall back to reading it as UTC.
            Utc.from_utc_datetime(&local)
        }
    }
}

/// Parses `T` as given to `--at`/`--now` or in front-matter: RFC 3339
/// (`2026-11-28T05:30:00-05:00`), a local date-time (`2026-11-28T05:30`,
/// `2026-11-28 05:30`, with optional seconds) or a date (`2026-11-28`, local
/// midnight), local forms read in `tz`. Any text gives an answer, never a
/// panic: these come from editors' typos and URL query strings.
pub fn parse_when(s: &str, tz: Tz) -> Result<DateTime<Utc>, String> {
    let s = s.trim();
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Ok(t.with_timezone(&Utc));
    }
    // The separator is ASCII, so slicing around it stays on char boundaries.
    let (date_part, time_part) = match s.find(['T', 't', ' ']) {
        Some(i) => (&s[..i], Some(s[i + 1..].trim())),
        None => (s, None),
    };
    if !looks_like_a_date(date_part) {
        // "Nov 28, 2026" is wrong as a whole, not at "Nov".
        return Err(invalid_date(s));
    }
    let date = parse_date(date_part)?;
    let time = match time_part {
        None => NaiveTime::MIN,
        Some("") => {
            return Err(format!(
                "invalid date-time `{s}`: the time after the date is missing; \
                 expected HH:MM or HH:MM:SS (24-hour clock), or the date alone"
            ));
        }
        Some(t) => {
            if t.ends_with(['Z', 'z']) || t.contains('+') || t.chars().skip(1).any(|c| c == '-') {
                // Looked like RFC 3339 but did not parse as such.
                DateTime::parse_from_rfc3339(&s.replace(' ', "T"))
                    .map_err(|e| format!("invalid date-time `{s}`: {e}"))?;
            }
            NaiveTime::parse_from_str(t, "%H:%M:%S")
                .or_else(|_| NaiveTime::parse_from_str(t, "%H:%M"))
                .map_err(|_| {
                    format!("invalid time `{t}`: expected HH:MM or HH:MM:SS (24-hour clock)")
                })?
        }
    };
    Ok(local_to_utc(tz, date.and_time(time)))
}

/// Digits and dashes only: a date written the ISO way, maybe impossible.
fn looks_like_a_date(s: &str) -> bool {
    !s.is_empty() && s.chars().all(|c| c.is_ascii_digit() || c == '-')
}

fn invalid_date(s: &str) -> String {
    format!(
        "invalid date `{s}`: expected RFC 3339 (2026-11-28T05:30:00-05:00), \
         a local date-time (2026-11-28 05:30) or a date (2026-11-28)"
    )
}

/// The ISO form of a date written the way people write them ("Nov 28,
/// 2026", "November 28, 2026 5:30 AM", "28 Nov 2026"), to suggest it.
pub fn suggest_iso(s: &str) -> Option<String> {
    // "Nov. 28" as AP style writes it; a weekday in front says nothing more.
    let cleaned = s.trim().replace(". ", " ").replace('.', "");
    let cleaned = match cleaned.split_once(", ") {
        Some((first, rest)) if first.parse::<chrono::Weekday>().is_ok() => rest.to_string(),
        _ => cleaned,
    };
    const DATES: &[&str] = &[
        "%b %d, %Y",
        "%B %d, %Y",
        "%b %d %Y",
        "%B %d %Y",
        "%d %b %Y",
        "%d %B %Y",
    ];
    const TIMES: &[&str] = &["%I:%M %p", "%I:%M%p", "%I %p", "%I%p", "%H:%M"];
    for d in DATES {
        if let Ok(date) = NaiveDate::parse_from_str(&cleaned, d) {
            return Some(date.format("%Y-%m-%d").to_string());
        }
        for t in TIMES {
            for sep in [" ", ", ", " at "] {
                let f = format!("{d}{sep}{t}");
                if let Ok(dt) = NaiveDateTime::parse_from_str(&cleaned, &f) {
                    return Some(dt.format("%Y-%m-%d %H:%M").to_string());
                }
            }
        }
    }
    None
}

fn parse_date(s: &str) -> Result<NaiveDate, String> {
    let parts: Vec<&str> = s.split('-').collect();
    let nums: Option<Vec<u32>> = match parts.as_slice() {
        [y, m, d] if y.len() == 4 && (1..=2).contains(&m.len()) && (1..=2).contains(&d.len()) => {
            parts.iter().map(|p| p.parse().ok()).collect()
        }
        _ => None,
    };
    let Some(n) = nums else {
        return Err(format!(
            "invalid date `{s}`: expected RFC 3339 (2026-11-28T05:30:00-05:00), \
             a local date-time (2026-11-28 05:30) or a date (2026-11-28)"
        ));
    };
    NaiveDate::from_ymd_opt(n[0] as i32, n[1], n[2]).ok_or_else(|| {
        if !(1..=12).contains(&n[1]) {
            format!("impossible date `{s}`: there is no month {}", n[1])
        } else {
            format!(
                "impossible date `{s}`: {} has no day {}",
                month_name(n[1]),
                n[2]
            )
        }
    })
}

fn month_name(m: u32) -> String {
    NaiveDate::from_ymd_opt(2000, m, 1)
        .map(|d| d.format("%B").to_string())
        .unwrap_or_else(|| format!("month {m}"))
}

/// Why a duration could not be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DurationError {
    /// Not a duration at all; the message says what one looks like.
    Invalid(String),
    /// Written well, but beyond what any clock arithmetic can hold.
    TooLong,
}

impl std::fmt::Display for DurationError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DurationError::Invalid(m) => f.write_str(m),
            DurationError::TooLong => f.write_str("the duration is too long"),
        }
    }
}

/// Parses a duration: a number and a unit (`s`, `m`, `h`, `d`, `w`), several
/// of them concatenated (`1h30m`). Checked arithmetic throughout: an
/// overflowing one is `TooLong`, never a panic.
pub fn parse_duration(s: &str) -> Result<Duration, DurationError> {
    let err = || {
        DurationError::Invalid(format!(
            "invalid duration `{s}`: expected a number and a unit, like 90m, 36h, 2d or 1h30m"
        ))
    };
    let s = s.trim();
    if s.is_empty() {
        return Err(err());
    }
    let mut total = Duration::zero();
    let mut num = String::new();
    for c in s.chars() {
        if c.is_ascii_digit() {
            num.push(c);
            continue;
        }
        if num.is_empty() {
            return Err(err());
        }
        let n: i64 = num.parse().map_err(|_| DurationError::TooLong)?;
        num.clear();
        let part = match c {
            's' => Duration::try_seconds(n),
            'm' => Duration::try_minutes(n),
            'h' => Duration::try_hours(n),
            'd' => Duration::try_days(n),
            'w' => Duration::try_weeks(n),
            _ => return Err(err()),
        };
        total = part
            .and_then(|p| total.checked_add(&p))
            .ok_or(DurationError::TooLong)?;
    }
    if !num.is_empty() {
        return Err(err());
    }
    Ok(total)
}

/// A duration the way config writes it: `2h`, `36h`, `1h30m`, `90s`.
pub fn format_duration(d: Duration) -> String {
    let secs = d.num_seconds();
    if secs == 0 {
        return "0s".into();
    }
    let mut out = String::new();
    let mut rest = secs;
    for (unit, len) in [("d", 86_400), ("h", 3_600), ("m", 60), ("s", 1)] {
        if rest >= len {
            out.push_str(&format!("{}{unit}", rest / len));
            rest %= len;
        }
    }
    out
}

/// `2026-11-30T0600`: how a slot appears in edition ids and folder names.
pub fn slot_stamp(slot: DateTime<Utc>, tz: Tz) -> String {
    slot.with_timezone(&tz).format("%Y-%m-%dT%H%M").to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono_tz::America::New_York;

    fn utc(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    #[test]
    fn parses_all_forms() {
        assert_eq!(
            parse_when("2026-11-28T05:30:00-05:00", New_York).unwrap(),
            utc("2026-11-28T10:30:00Z")
        );
        assert_eq!(
            parse_when("2026-11-28 05:30", New_York).unwrap(),
            utc("2026-11-28T10:30:00Z")
        );
        assert_eq!(
            parse_when("2026-11-30T08:00", New_York).unwrap(),
            utc("2026-11-30T13:00:00Z")
        );
        assert_eq!(
            parse_when("2026-11-28", New_York).unwrap(),
            utc("2026-11-28T05:00:00Z")
        );
        assert_eq!(
            parse_when("2026-07-01 12:00:30", New_York).unwrap(),
            utc("2026-07-01T16:00:30Z")
        );
    }

    #[test]
    fn rejects_impossible_dates_with_a_reason() {
        let e = parse_when("2026-02-30", New_York).unwrap_err();
        assert!(e.contains("February has no day 30"), "{e}");
        assert!(
            parse_when("2026-13-01", New_York)
                .unwrap_err()
                .contains("no month 13")
        );
        assert!(
            parse_when("yesterday", New_York)
                .unwrap_err()
                .contains("expected RFC 3339")
        );
        assert!(
            parse_when("2026-11-28 25:00", New_York)
                .unwrap_err()
                .contains("invalid time")
        );
    }

    #[test]
    fn dst_gaps_and_overlaps_follow_one_rule() {
        // 02:30 does not exist on 2026-03-08 in New York: clocks jump 02:00 -> 03:00 EDT.
        assert_eq!(
            parse_when("2026-03-08 02:30", New_York).unwrap(),
            utc("2026-03-08T07:00:00Z")
        );
        // 01:30 happens twice on 2026-11-01: the first (EDT, -04:00) wins.
        assert_eq!(
            parse_when("2026-11-01 01:30", New_York).unwrap(),
            utc("2026-11-01T05:30:00Z")
        );
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("36h").unwrap(), Duration::hours(36));
        assert_eq!(parse_duration("90m").unwrap(), Duration::minutes(90));
        assert_eq!(parse_duration("2d").unwrap(), Duration::days(2));
        assert_eq!(parse_duration("1h30m").unwrap(), Duration::minutes(90));
        assert!(matches!(
            parse_duration("36"),
            Err(DurationError::Invalid(_))
        ));
        assert!(matches!(
            parse_duration("h"),
            Err(DurationError::Invalid(_))
        ));
        assert!(matches!(
            parse_duration("3x"),
            Err(DurationError::Invalid(_))
        ));
        assert!(matches!(
            parse_duration("1hh"),
            Err(DurationError::Invalid(_))
        ));
    }

    #[test]
    fn overflowing_durations_are_errors_not_panics() {
        // Each of these panicked in chrono's Duration constructors or `+=`.
        for s in [
            "9999999999999999w",
            "999999999999999d",
            "15250284452w15250284452w",
            "99999999999999999999999s",
            "9223372036854775807s",
        ] {
            assert_eq!(parse_duration(s), Err(DurationError::TooLong), "{s}");
        }
        // Long but representable: the caller bounds it (see config).
        assert_eq!(
            parse_duration("100000000d").unwrap(),
            Duration::days(100_000_000)
        );
    }

    #[test]
    fn formats_durations_as_config_writes_them() {
        assert_eq!(format_duration(Duration::hours(2)), "2h");
        assert_eq!(format_duration(Duration::minutes(90)), "1h30m");
        assert_eq!(format_duration(Duration::days(366)), "366d");
        assert_eq!(format_duration(Duration::zero()), "0s");
    }

    #[test]
    fn empty_or_non_ascii_time_parts_are_errors_not_panics() {
        // `2026-11-29T` sliced an empty string at 1; `é` is two bytes.
        for s in [
            "2026-11-29T",
            "2026-11-29t",
            "2026-11-29T\u{e9}",
            "2026-11-29 \u{e9}:00",
            "2026-11-29T\u{1F600}-",
            "2026-11-29T-",
            "\u{e9}2026-11-29",
            "T",
            " ",
            "2026-11-29\u{2009}05:30",
        ] {
            let r = parse_when(s, New_York);
            assert!(r.is_err(), "{s:?} gave {r:?}");
        }
        let e = parse_when("2026-11-29T", New_York).unwrap_err();
        assert!(e.contains("the time after the date is missing"), "{e}");
    }

    #[test]
    fn free_form_dates_are_quoted_in_full_with_the_iso_form() {
        let e = parse_when("Nov 28, 2026", New_York).unwrap_err();
        assert!(e.starts_with("invalid date `Nov 28, 2026`:"), "{e}");
        assert_eq!(suggest_iso("Nov 28, 2026").as_deref(), Some("2026-11-28"));
        assert_eq!(suggest_iso("Nov. 28, 2026").as_deref(), Some("2026-11-28"));
        assert_eq!(
            suggest_iso("November 28, 2026 5:30 AM").as_deref(),
            Some("2026-11-28 05:30")
        );
        assert_eq!(
            suggest_iso("Saturday, Nov 28, 2026 at 5:30 pm").as_deref(),
            Some("2026-11-28 17:30")
        );
        assert_eq!(suggest_iso("28 Nov 2026").as_deref(), Some("2026-11-28"));
        assert_eq!(suggest_iso("yesterday"), None);
    }
}
