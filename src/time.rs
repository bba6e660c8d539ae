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
/// midnight), local forms read in `tz`.
pub fn parse_when(s: &str, tz: Tz) -> Result<DateTime<Utc>, String> {
    let s = s.trim();
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Ok(t.with_timezone(&Utc));
    }
    let (date_part, time_part) = match s.find(['T', 't', ' ']) {
        Some(i) => (&s[..i], Some(s[i + 1..].trim())),
        None => (s, None),
    };
    let date = parse_date(date_part)?;
    let time = match time_part {
        None => NaiveTime::MIN,
        Some(t) => {
            if t.ends_with('Z') || t.contains('+') || t[1..].contains('-') {
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

/// Parses a duration: a number and a unit (`s`, `m`, `h`, `d`, `w`), several
/// of them concatenated (`1h30m`).
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let err = || {
        format!("invalid duration `{s}`: expected a number and a unit, like 90m, 36h, 2d or 1h30m")
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
        let n: i64 = num.parse().map_err(|_| err())?;
        num.clear();
        total += match c {
            's' => Duration::seconds(n),
            'm' => Duration::minutes(n),
            'h' => Duration::hours(n),
            'd' => Duration::days(n),
            'w' => Duration::weeks(n),
            _ => return Err(err()),
        };
    }
    if !num.is_empty() {
        return Err(err());
    }
    Ok(total)
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
        assert!(parse_duration("36").is_err());
        assert!(parse_duration("h").is_err());
        assert!(parse_duration("3x").is_err());
    }
}
