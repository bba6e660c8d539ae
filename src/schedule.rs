//! Newsletter send schedules: parses 5-field (Vixie) cron expressions and the
//! `@daily`-style shorthands, and evaluates them in a newsletter's time zone,
//! turning local slot times into exact UTC instants across DST gaps and overlaps.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Datelike, Days, LocalResult, NaiveDate, NaiveDateTime, TimeZone, Utc};
use chrono_tz::Tz;

/// How far `prev_slot`/`next_slot` look: one whole Gregorian cycle (400 years
/// repeat exactly every 146,097 days) plus slack for the day on either side
/// of the starting instant. Every (month, day, weekday) combination occurs in
/// any window that long, so a schedule that can fire at all is always found;
/// one that cannot is rejected before any search.
const SEARCH_DAYS: u64 = 146_097 + 3;

/// A parsed cron expression. Each field is a bit set of the values it allows.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Schedule {
    expr: String,
    /// Bit `m` for minute `m` (0-59).
    minutes: u64,
    /// Bit `h` for hour `h` (0-23).
    hours: u64,
    /// Bit `d` for day of month `d` (1-31).
    days: u64,
    /// Bit `m` for month `m` (1-12).
    months: u64,
    /// Bit `w` for weekday `w`, 0 = Sunday .. 6 = Saturday (7 is folded into 0).
    weekdays: u64,
    /// The day-of-month field starts with `*` (Vixie's `DOM_STAR`).
    days_star: bool,
    /// The day-of-week field starts with `*` (Vixie's `DOW_STAR`).
    weekdays_star: bool,
}

/// Why an expression was rejected, and the 1-based column (in characters) in
/// the expression where the offending field starts.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message} (column {column})")]
pub struct ScheduleError {
    pub message: String,
    pub column: usize,
}

const FIELD_COUNT_MESSAGE: &str = "expected 5 fields: minute hour day-of-month month day-of-week";

const MONTH_NAMES: [&str; 12] = [
    "JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC",
];
const WEEKDAY_NAMES: [&str; 7] = ["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Field {
    Minute,
    Hour,
    DayOfMonth,
    Month,
    DayOfWeek,
}

impl Field {
    const ALL: [Field; 5] = [
        Field::Minute,
        Field::Hour,
        Field::DayOfMonth,
        Field::Month,
        Field::DayOfWeek,
    ];

    fn name(self) -> &'static str {
        match self {
            Field::Minute => "minute",
            Field::Hour => "hour",
            Field::DayOfMonth => "day-of-month",
            Field::Month => "month",
            Field::DayOfWeek => "day-of-week",
        }
    }

    /// Smallest and largest value that may be written.
    fn bounds(self) -> (u32, u32) {
        match self {
            Field::Minute => (0, 59),
            Field::Hour => (0, 23),
            Field::DayOfMonth => (1, 31),
            Field::Month => (1, 12),
            Field::DayOfWeek => (0, 7),
        }
    }

    /// The values `*` stands for (day-of-week: 0-6, 7 being a second Sunday).
    fn star(self) -> (u32, u32) {
        match self {
            Field::DayOfWeek => (0, 6),
            other => other.bounds(),
        }
    }

    /// Names accepted in place of numbers, and the value of the first name.
    fn names(self) -> Option<(&'static [&'static str], u32)> {
        match self {
            Field::Month => Some((&MONTH_NAMES, 1)),
            Field::DayOfWeek => Some((&WEEKDAY_NAMES, 0)),
            _ => None,
        }
    }
}

impl Schedule {
    /// Parses a 5-field cron expression or one of `@yearly`, `@annually`,
    /// `@monthly`, `@weekly`, `@daily`, `@midnight`, `@hourly`.
    pub fn parse(expr: &str) -> Result<Schedule, ScheduleError> {
        let tokens = tokenize(expr);
        let Some(&(first_col, first)) = tokens.first() else {
            return Err(ScheduleError {
                message: format!("{FIELD_COUNT_MESSAGE}, found 0"),
                column: 1,
            });
        };

        if first.starts_with('@') {
            let fields = match first.to_ascii_lowercase().as_str() {
                "@yearly" | "@annually" => ["0", "0", "1", "1", "*"],
                "@monthly" => ["0", "0", "1", "*", "*"],
                "@weekly" => ["0", "0", "*", "*", "0"],
                "@daily" | "@midnight" => ["0", "0", "*", "*", "*"],
                "@hourly" => ["0", "*", "*", "*", "*"],
                _ => {
                    return Err(ScheduleError {
                        message: format!(
                            "unknown shorthand \"{first}\" (expected @yearly, @annually, \
                             @monthly, @weekly, @daily, @midnight or @hourly)"
                        ),
                        column: first_col,
                    });
                }
            };
            if let Some(&(col, _)) = tokens.get(1) {
                return Err(ScheduleError {
                    message: format!("shorthand \"{first}\" must be the whole expression"),
                    column: col,
                });
            }
            let fields = fields.map(|text| (first_col, text));
            return Schedule::from_fields(expr, &fields);
        }

        if tokens.len() != 5 {
            let column = match tokens.get(5) {
                Some(&(col, _)) => col,
                // Too few: point just past the last field, where the next one belongs.
                None => expr.trim_end().chars().count() + 1,
            };
            return Err(ScheduleError {
                message: format!("{FIELD_COUNT_MESSAGE}, found {}", tokens.len()),
                column,
            });
        }
        Schedule::from_fields(expr, &tokens)
    }

    fn from_fields(expr: &str, fields: &[(usize, &str)]) -> Result<Schedule, ScheduleError> {
        let mut masks = [0u64; 5];
        for ((&(column, text), field), mask) in fields.iter().zip(Field::ALL).zip(&mut masks) {
            *mask = parse_field(text, field).map_err(|detail| ScheduleError {
                message: format!("{} field \"{text}\": {detail}", field.name()),
                column,
            })?;
        }
        let [minutes, hours, days, months, weekdays] = masks;
        Ok(Schedule {
            expr: expr.to_string(),
            minutes,
            hours,
            days,
            months,
            weekdays,
            days_star: fields[2].1.starts_with('*'),
            weekdays_star: fields[4].1.starts_with('*'),
        })
    }

    /// The expression exactly as it was given to [`Schedule::parse`].
    pub fn expr(&self) -> &str {
        &self.expr
    }

    /// Latest slot instant <= at, None if the schedule never fires.
    ///
    /// The search covers a whole 400-year Gregorian cycle, so `None` means the
    /// schedule can never fire (e.g. `0 0 30 2 *`), not merely "not recently"
    /// (short of the edges of chrono's date range).
    pub fn prev_slot(&self, tz: Tz, at: DateTime<Utc>) -> Option<DateTime<Utc>> {
        if !self.can_fire() {
            return None;
        }
        // Start one local day late: cheap insurance for clocks that go back
        // across midnight, where a later local day's slot can precede `at`.
        let local = at.with_timezone(&tz).date_naive();
        let mut day = local.succ_opt().unwrap_or(local);
        let limit = day
            .checked_sub_days(Days::new(SEARCH_DAYS))
            .unwrap_or(NaiveDate::MIN);
        loop {
            day = self.prev_day(day, limit)?;
            if let Some(slot) = self.last_slot_at_or_before(tz, day, at) {
                return Some(slot);
            }
            day = day.pred_opt()?;
        }
    }

    /// Earliest slot instant > after, None if the schedule never fires.
    pub fn next_slot(&self, tz: Tz, after: DateTime<Utc>) -> Option<DateTime<Utc>> {
        if !self.can_fire() {
            return None;
        }
        // Start one local day early, the mirror image of `prev_slot`.
        let local = after.with_timezone(&tz).date_naive();
        let mut day = local.pred_opt().unwrap_or(local);
        let limit = day
            .checked_add_days(Days::new(SEARCH_DAYS))
            .unwrap_or(NaiveDate::MAX);
        loop {
            day = self.next_day(day, limit)?;
            if let Some(slot) = self.first_slot_after(tz, day, after) {
                return Some(slot);
            }
            day = day.succ_opt()?;
        }
    }

    /// The slots in (from, to], ascending, each instant once.
    pub fn slots_between(
        &self,
        tz: Tz,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Vec<DateTime<Utc>> {
        let mut slots = Vec::new();
        if to <= from || !self.can_fire() {
            return slots;
        }
        let first = from.with_timezone(&tz).date_naive();
        let last = to.with_timezone(&tz).date_naive();
        let mut day = first.pred_opt().unwrap_or(first);
        let last = last.succ_opt().unwrap_or(last);
        while let Some(d) = self.next_day(day, last) {
            for hour in bits(self.hours) {
                for minute in bits(self.minutes) {
                    if let Some(slot) = slot_instant(tz, d, hour, minute) {
                        if slot > from && slot <= to {
                            slots.push(slot);
                        }
                    }
                }
            }
            match d.succ_opt() {
                Some(next) => day = next,
                None => break,
            }
        }
        // Local times in one DST gap share an instant, even across midnight.
        slots.sort_unstable();
        slots.dedup();
        slots
    }

    /// Whether some date matches the day fields. Every (month, day, weekday)
    /// combination with day <= the month's length (29 for February) occurs in
    /// every 400-year cycle, and every field has at least one value.
    fn can_fire(&self) -> bool {
        if !(self.days_star || self.weekdays_star) {
            // Either field may match; every month has every weekday.
            return true;
        }
        (1..=12u32).any(|month| {
            let longest = match month {
                2 => 29,
                4 | 6 | 9 | 11 => 30,
                _ => 31,
            };
            self.months & (1 << month) != 0 && self.days & ((1u64 << (longest + 1)) - 2) != 0
        })
    }

    /// Whether local date `date` is a day the schedule fires on.
    fn day_matches(&self, date: NaiveDate) -> bool {
        if self.months & (1 << date.month()) == 0 {
            return false;
        }
        let dom = self.days & (1 << date.day()) != 0;
        let dow = self.weekdays & (1 << date.weekday().num_days_from_sunday()) != 0;
        if self.days_star || self.weekdays_star {
            dom && dow
        } else {
            dom || dow
        }
    }

    /// First matching date in [from, limit], skipping unlisted months whole.
    fn next_day(&self, mut date: NaiveDate, limit: NaiveDate) -> Option<NaiveDate> {
        while date <= limit {
            if self.months & (1 << date.month()) == 0 {
                let (year, month) = match date.month() {
                    12 => (date.year().checked_add(1)?, 1),
                    m => (date.year(), m + 1),
                };
                date = NaiveDate::from_ymd_opt(year, month, 1)?;
                continue;
            }
            if self.day_matches(date) {
                return Some(date);
            }
            date = date.succ_opt()?;
        }
        None
    }

    /// Last matching date in [limit, from], skipping unlisted months whole.
    fn prev_day(&self, mut date: NaiveDate, limit: NaiveDate) -> Option<NaiveDate> {
        while date >= limit {
            if self.months & (1 << date.month()) == 0 {
                date = date.with_day(1)?.pred_opt()?;
                continue;
            }
            if self.day_matches(date) {
                return Some(date);
            }
            date = date.pred_opt()?;
        }
        None
    }

    /// The first of `date`'s slots that is later than `after`. Relies on a
    /// day's slot instants never decreasing as the local time increases.
    fn first_slot_after(
        &self,
        tz: Tz,
        date: NaiveDate,
        after: DateTime<Utc>,
    ) -> Option<DateTime<Utc>> {
        let last_minute = bits(self.minutes).next_back()?;
        for hour in bits(self.hours) {
            // Skip the hour whole when even its last slot is too early.
            match slot_instant(tz, date, hour, last_minute) {
                Some(last) if last > after => {}
                _ => continue,
            }
            for minute in bits(self.minutes) {
                match slot_instant(tz, date, hour, minute) {
                    Some(slot) if slot > after => return Some(slot),
                    _ => {}
                }
            }
        }
        None
    }

    /// The last of `date`'s slots that is not later than `at`.
    fn last_slot_at_or_before(
        &self,
        tz: Tz,
        date: NaiveDate,
        at: DateTime<Utc>,
    ) -> Option<DateTime<Utc>> {
        let first_minute = bits(self.minutes).next()?;
        for hour in bits(self.hours).rev() {
            // Skip the hour whole when even its first slot is too late.
            match slot_instant(tz, date, hour, first_minute) {
                Some(first) if first <= at => {}
                _ => continue,
            }
            for minute in bits(self.minutes).rev() {
                match slot_instant(tz, date, hour, minute) {
                    Some(slot) if slot <= at => return Some(slot),
                    _ => {}
                }
            }
        }
        None
    }
}

impl FromStr for Schedule {
    type Err = ScheduleError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Schedule::parse(s)
    }
}

/// The parts of the day a cadence names, by the hour a slot starts.
fn part_of_day(hour: u32) -> &'static str {
    match hour {
        4..=10 => "morning",
        11..=13 => "midday",
        14..=16 => "afternoon",
        17..=21 => "evening",
        _ => "night",
    }
}

const WEEKDAY_WORDS: [&str; 7] = [
    "Sunday",
    "Monday",
    "Tuesday",
    "Wednesday",
    "Thursday",
    "Friday",
    "Saturday",
];

/// `a`, `a and b`, `a, b and c`.
fn and_list(words: &[String]) -> String {
    match words {
        [] => String::new(),
        [one] => one.clone(),
        [rest @ .., last] => format!("{} and {last}", rest.join(", ")),
    }
}

impl Schedule {
    /// The schedule in a reader's words, for a sign-up page: "Weekday
    /// mornings", "Every evening", "Tuesday and Friday middays" ("at
    /// midday" when the days are plural). `None` for a schedule that does
    /// not read as one of these (several times a day on some days, days of
    /// the month, some months only); such a newsletter says its cadence in
    /// config.
    pub fn cadence(&self) -> Option<String> {
        let all_months = self.months == 0b1_1111_1111_1110;
        let every_date = self.days == 0xFFFF_FFFE;
        let once_an_hour = self.minutes.count_ones() == 1;
        let hours = self.hours.count_ones();
        // Both day fields restricted: cron fires on either, which reads as
        // neither.
        if !all_months || !once_an_hour || (!self.days_star && !self.weekdays_star) {
            return None;
        }
        if !every_date {
            // One day of the month that every month has, on any weekday.
            let day = self.days.trailing_zeros();
            let any_weekday = self.weekdays & 0x7f == 0x7f;
            let monthly = self.days.count_ones() == 1 && day <= 28 && any_weekday;
            return (monthly && hours == 1).then(|| "Monthly".into());
        }
        let every_day = self.weekdays & 0x7f == 0x7f;
        if hours == 24 && every_day {
            return Some("Every hour".into());
        }
        if hours == 2 && every_day {
            return Some("Twice a day".into());
        }
        if hours != 1 {
            return None;
        }
        let part = part_of_day(self.hours.trailing_zeros());
        let days = self.weekdays & 0x7f;
        let at_midday = part == "midday";
        Some(match days {
            0x7f if at_midday => "Every day at midday".into(),
            0x7f => format!("Every {part}"),
            0b011_1110 if at_midday => "Weekdays at midday".into(),
            0b011_1110 => format!("Weekday {part}s"),
            0b100_0001 if at_midday => "Weekends at midday".into(),
            0b100_0001 => format!("Weekend {part}s"),
            _ => {
                let names: Vec<String> = (0..7)
                    .filter(|d| days & (1 << d) != 0)
                    // Monday first, the way a week is read.
                    .map(|d: usize| (d + 6) % 7)
                    .collect::<std::collections::BTreeSet<_>>()
                    .into_iter()
                    .map(|i| WEEKDAY_WORDS[(i + 1) % 7].to_string())
                    .collect();
                if at_midday {
                    let plural: Vec<String> = names.iter().map(|n| format!("{n}s")).collect();
                    format!("{} at midday", and_list(&plural))
                } else {
                    format!("{} {part}s", and_list(&names))
                }
            }
        })
    }
}

impl fmt::Display for Schedule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.expr)
    }
}

/// The whitespace-separated fields of `expr`, each with its 1-based column.
fn tokenize(expr: &str) -> Vec<(usize, &str)> {
    let mut tokens = Vec::new();
    let mut start: Option<(usize, usize)> = None; // (byte offset, column)
    for (column, (offset, ch)) in expr.char_indices().enumerate() {
        match (ch.is_whitespace(), start) {
            (true, Some((begin, col))) => {
                tokens.push((col, &expr[begin..offset]));
                start = None;
            }
            (false, None) => start = Some((offset, column + 1)),
            _ => {}
        }
    }
    if let Some((begin, col)) = start {
        tokens.push((col, &expr[begin..]));
    }
    tokens
}

/// One field (a comma-separated list) as a bit set; the error is the detail
/// that follows "<field> field \"<text>\": ".
fn parse_field(text: &str, field: Field) -> Result<u64, String> {
    let mut mask = 0;
    for item in text.split(',') {
        if item.is_empty() {
            return Err("empty item in list".to_string());
        }
        mask |= parse_item(item, field)?;
    }
    Ok(mask)
}

/// `*`, `a`, `a-b`, each optionally followed by `/step`.
fn parse_item(item: &str, field: Field) -> Result<u64, String> {
    let (base, step) = match item.split_once('/') {
        Some((base, step)) => (base, Some(parse_step(step, field)?)),
        None => (item, None),
    };
    let (first, last) = if base == "*" {
        field.star()
    } else if let Some((a, b)) = base.split_once('-') {
        let (a, b) = (parse_value(a, field)?, parse_value(b, field)?);
        if a > b {
            let hint = if field == Field::DayOfWeek && b == 0 {
                " (Sunday at the end of a range is 7, e.g. FRI-7)"
            } else {
                ""
            };
            return Err(format!("range {base} is reversed: {a} is after {b}{hint}"));
        }
        (a, b)
    } else {
        let a = parse_value(base, field)?;
        match step {
            // `a/n` runs from a to the end of the field's `*` range.
            Some(_) => (a, a.max(field.star().1)),
            None => (a, a),
        }
    };
    let mut mask = 0;
    for value in (first..=last).step_by(step.unwrap_or(1) as usize) {
        // Day-of-week 7 is Sunday, like 0.
        let bit = if field == Field::DayOfWeek && value == 7 {
            0
        } else {
            value
        };
        mask |= 1 << bit;
    }
    Ok(mask)
}

fn parse_step(text: &str, field: Field) -> Result<u32, String> {
    let (low, high) = field.star();
    let span = high - low + 1;
    if text.is_empty() {
        return Err("missing step after \"/\"".to_string());
    }
    if !text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!("step \"{text}\" is not a number"));
    }
    match text.parse::<u32>() {
        Ok(0) => Err("step must be at least 1".to_string()),
        Ok(step) if step <= span => Ok(step),
        _ => Err(format!(
            "step {text} is larger than the field's range ({low}-{high})"
        )),
    }
}

fn parse_value(text: &str, field: Field) -> Result<u32, String> {
    let (low, high) = field.bounds();
    if text.is_empty() {
        return Err("missing value (a range needs a start and an end)".to_string());
    }
    if text.bytes().all(|b| b.is_ascii_digit()) {
        return match text.parse::<u32>() {
            Ok(value) if (low..=high).contains(&value) => Ok(value),
            _ => Err(format!("{text} is out of range ({low}-{high})")),
        };
    }
    let Some((names, first)) = field.names() else {
        return Err(format!("\"{text}\" is not a number ({low}-{high})"));
    };
    names
        .iter()
        .position(|name| name.eq_ignore_ascii_case(text))
        .map(|index| first + index as u32)
        .ok_or_else(|| {
            let what = match field {
                Field::Month => "month",
                _ => "weekday",
            };
            format!(
                "unknown {what} name \"{text}\" (expected {}-{} or {low}-{high})",
                names[0],
                names[names.len() - 1]
            )
        })
}

/// The set bits of `mask`, lowest first.
fn bits(mask: u64) -> impl DoubleEndedIterator<Item = u32> {
    (0..64u32).filter(move |bit| mask & (1 << bit) != 0)
}

/// The instant a local slot time fires at: the time itself when it exists
/// once, its first occurrence when the clocks went back over it, and the
/// instant the clocks jump to when it falls in a gap.
fn slot_instant(tz: Tz, date: NaiveDate, hour: u32, minute: u32) -> Option<DateTime<Utc>> {
    let local = date.and_hms_opt(hour, minute, 0)?;
    match tz.from_local_datetime(&local) {
        LocalResult::Single(t) => Some(t.with_timezone(&Utc)),
        LocalResult::Ambiguous(a, b) => Some(a.min(b).with_timezone(&Utc)),
        LocalResult::None => gap_end(tz, local),
    }
}

/// The earliest instant whose wall-clock time in `tz` is >= `local`; for a
/// `local` inside a gap that is the instant the clocks jump forward.
fn gap_end(tz: Tz, local: NaiveDateTime) -> Option<DateTime<Utc>> {
    let wall = |secs: i64| -> Option<NaiveDateTime> {
        Some(
            DateTime::from_timestamp(secs, 0)?
                .with_timezone(&tz)
                .naive_local(),
        )
    };
    // UTC offsets stay well within ±26 hours, so the wall clock reads before
    // `local` at `lo` and after it at `hi`.
    let base = local.and_utc().timestamp();
    let (mut lo, mut hi) = (base - 26 * 3600, base + 26 * 3600);
    if wall(lo)? >= local || wall(hi)? < local {
        return None;
    }
    while hi - lo > 1 {
        let mid = lo + (hi - lo) / 2;
        if wall(mid)? >= local {
            hi = mid;
        } else {
            lo = mid;
        }
    }
    DateTime::from_timestamp(hi, 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sched(expr: &str) -> Schedule {
        Schedule::parse(expr).unwrap_or_else(|e| panic!("{expr:?}: {e}"))
    }

    fn utc(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s)
            .unwrap_or_else(|e| panic!("{s}: {e}"))
            .with_timezone(&Utc)
    }

    fn err(expr: &str) -> ScheduleError {
        match Schedule::parse(expr) {
            Ok(s) => panic!("{expr:?} parsed as {s:?}"),
            Err(e) => e,
        }
    }

    fn set(values: &[u32]) -> u64 {
        values.iter().fold(0, |mask, v| mask | 1 << v)
    }

    const NY: Tz = chrono_tz::America::New_York;
    const LONDON: Tz = chrono_tz::Europe::London;
    const SYDNEY: Tz = chrono_tz::Australia::Sydney;
    const ADELAIDE: Tz = chrono_tz::Australia::Adelaide;
    const KOLKATA: Tz = chrono_tz::Asia::Kolkata;
    const KATHMANDU: Tz = chrono_tz::Asia::Kathmandu;
    const LORD_HOWE: Tz = chrono_tz::Australia::Lord_Howe;
    const SAO_PAULO: Tz = chrono_tz::America::Sao_Paulo;
    const UTC_TZ: Tz = chrono_tz::UTC;

    // ---- parsing ---------------------------------------------------------

    #[test]
    fn cadences_read_as_a_reader_would_say_them() {
        let words = |e: &str| Schedule::parse(e).unwrap().cadence();
        for (expr, want) in [
            ("0 6 * * MON-FRI", Some("Weekday mornings")),
            ("0 17 * * *", Some("Every evening")),
            ("30 7 * * *", Some("Every morning")),
            ("0 12 * * TUE,FRI", Some("Tuesdays and Fridays at midday")),
            ("0 8 * * SAT,SUN", Some("Weekend mornings")),
            (
                "0 9 * * 1,3,5",
                Some("Monday, Wednesday and Friday mornings"),
            ),
            ("0 18 * * SUN", Some("Sunday evenings")),
            ("0 12 * * *", Some("Every day at midday")),
            ("0 7,17 * * *", Some("Twice a day")),
            ("@hourly", Some("Every hour")),
            ("@monthly", Some("Monthly")),
            ("0 15 * * MON-FRI", Some("Weekday afternoons")),
            ("0 23 * * *", Some("Every night")),
            ("0 7,17 * * MON", None),
            ("*/15 * * * *", None),
            ("0,30 7 * * *", None),
            ("0 7 */2 * *", None),
            ("0 7 31 * *", None),
            ("0 7 28 * *", Some("Monthly")),
            ("0 7 1 * MON", None),
            ("0 7 1-31 * MON", None),
            ("0 7 15 * */2", None),
            ("0 7 1 JAN *", None),
            ("0 7 1,15 * *", None),
        ] {
            assert_eq!(words(expr).as_deref(), want, "{expr}");
        }
    }

    #[test]
    fn parses_numbers_ranges_steps_and_lists() {
        let s = sched("*/15 9-17/4 1,15,31 * *");
        assert_eq!(s.minutes, set(&[0, 15, 30, 45]));
        assert_eq!(s.hours, set(&[9, 13, 17]));
        assert_eq!(s.days, set(&[1, 15, 31]));
        assert_eq!(s.months, set(&[1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12]));
        assert_eq!(s.weekdays, set(&[0, 1, 2, 3, 4, 5, 6]));
        assert!(!s.days_star && s.weekdays_star);

        // `a/n` runs to the end of the field.
        assert_eq!(sched("10/20 * * * *").minutes, set(&[10, 30, 50]));
        assert_eq!(sched("0 20/2 * * *").hours, set(&[20, 22]));
        // Lists mixing values and ranges.
        assert_eq!(
            sched("1,5-7,58-59 * * * *").minutes,
            set(&[1, 5, 6, 7, 58, 59])
        );
        // A step larger than the range keeps just its start.
        assert_eq!(sched("0 3-5/10 * * *").hours, set(&[3]));
        // A tab and repeated spaces separate fields too.
        assert_eq!(sched("0\t6  * *   * ").hours, set(&[6]));
    }

    #[test]
    fn parses_names_case_insensitively() {
        let s = sched("0 6 * jan-Mar MON-FRI");
        assert_eq!(s.months, set(&[1, 2, 3]));
        assert_eq!(s.weekdays, set(&[1, 2, 3, 4, 5]));
        assert_eq!(sched("0 12 * * TUE,fri").weekdays, set(&[2, 5]));
        assert_eq!(sched("0 0 1 JAN,jul,Dec *").months, set(&[1, 7, 12]));
        assert_eq!(sched("0 0 * * MON-FRI/2").weekdays, set(&[1, 3, 5]));
        assert_eq!(sched("0 0 * * SUN").weekdays, set(&[0]));
    }

    #[test]
    fn weekday_seven_is_sunday() {
        assert_eq!(sched("0 6 * * 7").weekdays, set(&[0]));
        assert_eq!(sched("0 6 * * 0").weekdays, set(&[0]));
        // Fri, Sat, Sun.
        assert_eq!(sched("0 6 * * 5-7").weekdays, set(&[0, 5, 6]));
        assert_eq!(sched("0 6 * * FRI-7").weekdays, set(&[0, 5, 6]));
        assert_eq!(sched("0 6 * * 0-7").weekdays, set(&[0, 1, 2, 3, 4, 5, 6]));
        assert_eq!(sched("0 6 * * */2").weekdays, set(&[0, 2, 4, 6]));
    }

    #[test]
    fn shorthands() {
        let same = |short: &str, long: &str| {
            let (a, b) = (sched(short), sched(long));
            assert_eq!(
                (
                    a.minutes,
                    a.hours,
                    a.days,
                    a.months,
                    a.weekdays,
                    a.days_star,
                    a.weekdays_star
                ),
                (
                    b.minutes,
                    b.hours,
                    b.days,
                    b.months,
                    b.weekdays,
                    b.days_star,
                    b.weekdays_star
                ),
                "{short} vs {long}"
            );
            assert_eq!(a.expr(), short);
        };
        same("@yearly", "0 0 1 1 *");
        same("@annually", "0 0 1 1 *");
        same("@monthly", "0 0 1 * *");
        same("@weekly", "0 0 * * 0");
        same("@daily", "0 0 * * *");
        same("@midnight", "0 0 * * *");
        same("@hourly", "0 * * * *");
        same("@DAILY", "0 0 * * *");
        same("  @Hourly ", "0 * * * *");

        // 2026-01-01 is a Thursday; the first Sunday after is 2026-01-04.
        let t = utc("2026-01-01T00:00:00Z");
        assert_eq!(
            sched("@weekly").next_slot(UTC_TZ, t),
            Some(utc("2026-01-04T00:00:00Z"))
        );
        assert_eq!(
            sched("@yearly").next_slot(UTC_TZ, t),
            Some(utc("2027-01-01T00:00:00Z"))
        );
        assert_eq!(sched("@yearly").prev_slot(UTC_TZ, t), Some(t));
        assert_eq!(
            sched("@monthly").next_slot(UTC_TZ, t),
            Some(utc("2026-02-01T00:00:00Z"))
        );
        assert_eq!(
            sched("@hourly").next_slot(UTC_TZ, t),
            Some(utc("2026-01-01T01:00:00Z"))
        );
        // Midnight in New York on 2026-01-01 is 05:00 UTC (EST, -05:00).
        assert_eq!(
            sched("@daily").next_slot(NY, t),
            Some(utc("2026-01-01T05:00:00Z"))
        );
    }

    #[test]
    fn expr_display_and_from_str() {
        let s: Schedule = "0 6 * * MON-FRI".parse().unwrap();
        assert_eq!(s.expr(), "0 6 * * MON-FRI");
        assert_eq!(s.to_string(), "0 6 * * MON-FRI");
        let e = "0 6 * * MON-FRY".parse::<Schedule>().unwrap_err();
        assert_eq!(e.column, 9);
        assert_eq!(
            e.to_string(),
            "day-of-week field \"MON-FRY\": unknown weekday name \"FRY\" \
             (expected SUN-SAT or 0-7) (column 9)"
        );
    }

    #[test]
    fn rejects_bad_expressions_with_columns() {
        let cases: &[(&str, usize, &str)] = &[
            (
                "60 6 * * *",
                1,
                "minute field \"60\": 60 is out of range (0-59)",
            ),
            (
                "0 24 * * *",
                3,
                "hour field \"24\": 24 is out of range (0-23)",
            ),
            (
                "0 6 0 * *",
                5,
                "day-of-month field \"0\": 0 is out of range (1-31)",
            ),
            (
                "0 6 32 * *",
                5,
                "day-of-month field \"32\": 32 is out of range (1-31)",
            ),
            (
                "0 6 * 13 *",
                7,
                "month field \"13\": 13 is out of range (1-12)",
            ),
            (
                "0 6 * * 8",
                9,
                "day-of-week field \"8\": 8 is out of range (0-7)",
            ),
            (
                "0 6 * JANX *",
                7,
                "month field \"JANX\": unknown month name \"JANX\" (expected JAN-DEC or 1-12)",
            ),
            (
                "0 6 * * FUNDAY",
                9,
                "day-of-week field \"FUNDAY\": unknown weekday name \"FUNDAY\" (expected SUN-SAT or 0-7)",
            ),
            // Weekday names are not months and vice versa.
            (
                "0 6 * MON *",
                7,
                "month field \"MON\": unknown month name \"MON\" (expected JAN-DEC or 1-12)",
            ),
            (
                "0 MON * * *",
                3,
                "hour field \"MON\": \"MON\" is not a number (0-23)",
            ),
            (
                "0 6 * * * *",
                11,
                "expected 5 fields: minute hour day-of-month month day-of-week, found 6",
            ),
            // Too few: the column is just past the last field.
            (
                "0 6 * *",
                8,
                "expected 5 fields: minute hour day-of-month month day-of-week, found 4",
            ),
            (
                "",
                1,
                "expected 5 fields: minute hour day-of-month month day-of-week, found 0",
            ),
            (
                "   ",
                1,
                "expected 5 fields: minute hour day-of-month month day-of-week, found 0",
            ),
            (
                "*/0 * * * *",
                1,
                "minute field \"*/0\": step must be at least 1",
            ),
            (
                "0 0-23/0 * * *",
                3,
                "hour field \"0-23/0\": step must be at least 1",
            ),
            (
                "*/90 * * * *",
                1,
                "minute field \"*/90\": step 90 is larger than the field's range (0-59)",
            ),
            (
                "*/ * * * *",
                1,
                "minute field \"*/\": missing step after \"/\"",
            ),
            (
                "*/x * * * *",
                1,
                "minute field \"*/x\": step \"x\" is not a number",
            ),
            (
                "1/2/3 * * * *",
                1,
                "minute field \"1/2/3\": step \"2/3\" is not a number",
            ),
            (
                "0 6 20-10 * *",
                5,
                "day-of-month field \"20-10\": range 20-10 is reversed: 20 is after 10",
            ),
            (
                "0 6 * * FRI-SUN",
                9,
                "day-of-week field \"FRI-SUN\": range FRI-SUN is reversed: 5 is after 0 \
                 (Sunday at the end of a range is 7, e.g. FRI-7)",
            ),
            (
                "0 6 * * 5-1",
                9,
                "day-of-week field \"5-1\": range 5-1 is reversed: 5 is after 1",
            ),
            // Columns count characters, including repeated separators.
            (
                "0  6 10-5 * *",
                6,
                "day-of-month field \"10-5\": range 10-5 is reversed: 10 is after 5",
            ),
            (
                "1,,2 * * * *",
                1,
                "minute field \"1,,2\": empty item in list",
            ),
            ("0 6, * * *", 3, "hour field \"6,\": empty item in list"),
            (
                "5- * * * *",
                1,
                "minute field \"5-\": missing value (a range needs a start and an end)",
            ),
            (
                "-5 * * * *",
                1,
                "minute field \"-5\": missing value (a range needs a start and an end)",
            ),
            (
                "99999999999 * * * *",
                1,
                "minute field \"99999999999\": 99999999999 is out of range (0-59)",
            ),
            (
                "0 6 * * 1-2-3",
                9,
                "day-of-week field \"1-2-3\": unknown weekday name \"2-3\" (expected SUN-SAT or 0-7)",
            ),
            (
                "@reboot",
                1,
                "unknown shorthand \"@reboot\" (expected @yearly, @annually, @monthly, @weekly, \
                 @daily, @midnight or @hourly)",
            ),
            (
                "@daily 0",
                8,
                "shorthand \"@daily\" must be the whole expression",
            ),
            (
                "0 @daily * * *",
                3,
                "hour field \"@daily\": \"@daily\" is not a number (0-23)",
            ),
        ];
        for &(expr, column, message) in cases {
            let e = err(expr);
            assert_eq!(
                (e.message.as_str(), e.column),
                (message, column),
                "{expr:?}"
            );
        }
    }

    // ---- plain schedules -------------------------------------------------

    #[test]
    fn weekdays_across_a_weekend() {
        let s = sched("0 6 * * MON-FRI");
        // January 2026: Fri 9th, Sat 10th, Sun 11th, Mon 12th. 06:00 EST = 11:00 UTC.
        let fri = utc("2026-01-09T11:00:00Z");
        let mon = utc("2026-01-12T11:00:00Z");
        assert_eq!(s.next_slot(NY, fri), Some(mon));
        assert_eq!(s.next_slot(NY, utc("2026-01-10T12:00:00Z")), Some(mon));
        assert_eq!(s.prev_slot(NY, utc("2026-01-11T12:00:00Z")), Some(fri));
        assert_eq!(s.prev_slot(NY, utc("2026-01-12T10:59:59Z")), Some(fri));
        assert_eq!(s.prev_slot(NY, mon), Some(mon));
        // Thu 8th 06:00 EST is before Fri.
        assert_eq!(
            s.prev_slot(NY, utc("2026-01-09T10:59:59Z")),
            Some(utc("2026-01-08T11:00:00Z"))
        );
    }

    #[test]
    fn tuesdays_and_fridays() {
        let s = sched("0 12 * * TUE,FRI");
        // Tue 2026-01-06, Fri 01-09, Tue 01-13. 12:00 EST = 17:00 UTC.
        let tue = utc("2026-01-06T17:00:00Z");
        let fri = utc("2026-01-09T17:00:00Z");
        let next_tue = utc("2026-01-13T17:00:00Z");
        assert_eq!(s.next_slot(NY, tue), Some(fri));
        assert_eq!(s.next_slot(NY, fri), Some(next_tue));
        assert_eq!(s.prev_slot(NY, utc("2026-01-12T00:00:00Z")), Some(fri));
        assert_eq!(s.prev_slot(NY, utc("2026-01-09T16:59:59Z")), Some(tue));
        // In July (EDT, -04:00) the same slot is 16:00 UTC: Tue 2026-07-07.
        assert_eq!(
            s.next_slot(NY, utc("2026-07-04T00:00:00Z")),
            Some(utc("2026-07-07T16:00:00Z"))
        );
    }

    #[test]
    fn exactly_at_a_slot() {
        let s = sched("0 6 * * MON-FRI");
        let slot = utc("2026-01-12T11:00:00Z"); // Mon 06:00 EST
        assert_eq!(s.prev_slot(NY, slot), Some(slot));
        assert_eq!(s.next_slot(NY, slot), Some(utc("2026-01-13T11:00:00Z")));
        // One nanosecond either side.
        let before = slot - chrono::Duration::nanoseconds(1);
        let after = slot + chrono::Duration::nanoseconds(1);
        assert_eq!(s.prev_slot(NY, before), Some(utc("2026-01-09T11:00:00Z")));
        assert_eq!(s.next_slot(NY, before), Some(slot));
        assert_eq!(s.prev_slot(NY, after), Some(slot));
        // (from, to]: a slot at `from` is out, a slot at `to` is in.
        assert_eq!(s.slots_between(NY, slot, slot), Vec::<DateTime<Utc>>::new());
        assert_eq!(s.slots_between(NY, before, slot), vec![slot]);
        assert_eq!(
            s.slots_between(NY, slot, after),
            Vec::<DateTime<Utc>>::new()
        );
    }

    #[test]
    fn every_minute_and_hour_boundaries() {
        let s = sched("* * * * *");
        let t = utc("2026-05-05T10:20:30Z");
        assert_eq!(s.prev_slot(NY, t), Some(utc("2026-05-05T10:20:00Z")));
        assert_eq!(s.next_slot(NY, t), Some(utc("2026-05-05T10:21:00Z")));
        // 23:59 local is followed by 00:00 of the next local day.
        let s = sched("59 23 * * *");
        // 23:59 EDT on 2026-05-05 = 03:59 UTC on 05-06.
        assert_eq!(s.next_slot(NY, t), Some(utc("2026-05-06T03:59:00Z")));
    }

    #[test]
    fn vixie_or_when_both_day_fields_are_restricted() {
        // January 2026: Fridays are 2, 9, 16, 23, 30; the 13th is a Tuesday.
        let from = utc("2026-01-01T00:00:00Z");
        let to = utc("2026-02-01T00:00:00Z");
        let days = |expr: &str| -> Vec<u32> {
            sched(expr)
                .slots_between(UTC_TZ, from, to)
                .iter()
                .map(|t| t.day())
                .collect()
        };
        // Both restricted: the 13th OR any Friday.
        assert_eq!(days("0 0 13 * FRI"), vec![2, 9, 13, 16, 23, 30]);
        // Day-of-week `*`: only the 13th.
        assert_eq!(days("0 0 13 * *"), vec![13]);
        // Day-of-month `*`: only Fridays.
        assert_eq!(days("0 0 * * FRI"), vec![2, 9, 16, 23, 30]);
        // A field starting with `*` counts as unrestricted (Vixie's DOM_STAR),
        // even with a step: odd days AND Fridays.
        assert_eq!(days("0 0 */2 * FRI"), vec![9, 23]);
        // An explicit full range is a restriction, so OR: every day.
        assert_eq!(days("0 0 1-31 * FRI").len(), 31);
        // OR also across months: the 1st or a Monday, only in February 2026
        // (Mondays: 2, 9, 16, 23); `from` itself is excluded.
        let s = sched("0 0 1 FEB MON");
        let feb: Vec<u32> = s
            .slots_between(
                UTC_TZ,
                utc("2026-01-01T00:00:00Z"),
                utc("2026-03-31T00:00:00Z"),
            )
            .iter()
            .map(|t| t.day())
            .collect();
        assert_eq!(feb, vec![1, 2, 9, 16, 23]);
    }

    #[test]
    fn never_firing_and_rare_schedules() {
        let t = utc("2026-06-01T00:00:00Z");
        // (`*/7` on day-of-week is Sunday and, starting with `*`, AND-ed.)
        for expr in [
            "0 0 30 2 *",
            "0 0 31 4,6,9,11 *",
            "0 0 31 FEB */7",
            "0 0 30,31 2 */3",
        ] {
            let s = sched(expr);
            assert_eq!(s.next_slot(NY, t), None, "{expr}");
            assert_eq!(s.prev_slot(NY, t), None, "{expr}");
            assert_eq!(
                s.slots_between(NY, t, utc("2030-01-01T00:00:00Z")),
                Vec::<DateTime<Utc>>::new(),
                "{expr}"
            );
        }
        // `0 0 30 2 MON` is OR: every Monday in February fires.
        // 2027-02-01 is a Monday.
        assert_eq!(
            sched("0 0 30 2 MON").next_slot(UTC_TZ, t),
            Some(utc("2027-02-01T00:00:00Z"))
        );

        // The 31st: after Feb 1st comes March 31st (Feb has 28 days in 2026).
        let s = sched("0 0 31 * *");
        assert_eq!(
            s.next_slot(UTC_TZ, utc("2026-02-01T00:00:00Z")),
            Some(utc("2026-03-31T00:00:00Z"))
        );
        assert_eq!(
            s.prev_slot(UTC_TZ, utc("2026-05-15T00:00:00Z")),
            Some(utc("2026-03-31T00:00:00Z"))
        );

        // Leap day: 2024 and 2028 are leap years.
        let s = sched("0 0 29 2 *");
        assert_eq!(s.next_slot(UTC_TZ, t), Some(utc("2028-02-29T00:00:00Z")));
        assert_eq!(s.prev_slot(UTC_TZ, t), Some(utc("2024-02-29T00:00:00Z")));
        // Midnight in Kolkata (+05:30) is 18:30 UTC the day before.
        assert_eq!(s.next_slot(KOLKATA, t), Some(utc("2028-02-28T18:30:00Z")));

        // Feb 29 AND a Sunday (`*/7` on day-of-week is {Sunday} and, starting
        // with `*`, makes the day fields AND-ed): 2004, 2032, 2060, 2088, then
        // 2128 (2100 is not a leap year; 2088-02-29 + 14609 days, 14609 = 7 *
        // 2087). Found even though that is 40 years apart.
        let s = sched("0 12 29 2 */7");
        assert_eq!(s.next_slot(UTC_TZ, t), Some(utc("2032-02-29T12:00:00Z")));
        assert_eq!(s.prev_slot(UTC_TZ, t), Some(utc("2004-02-29T12:00:00Z")));
        assert_eq!(
            s.next_slot(UTC_TZ, utc("2088-03-01T00:00:00Z")),
            Some(utc("2128-02-29T12:00:00Z"))
        );
        assert_eq!(
            s.prev_slot(UTC_TZ, utc("2128-02-29T11:59:59Z")),
            Some(utc("2088-02-29T12:00:00Z"))
        );
    }

    #[test]
    fn leap_day_falls_on_every_weekday_within_400_years() {
        // `can_fire` relies on this: every (month, day, weekday) combination
        // occurs in a 400-year cycle, Feb 29 included.
        let mut seen = 0u8;
        for year in 2000..2400 {
            if let Some(d) = NaiveDate::from_ymd_opt(year, 2, 29) {
                seen |= 1 << d.weekday().num_days_from_sunday();
            }
        }
        assert_eq!(seen, 0x7f);
    }

    #[test]
    fn slots_between_counts() {
        let s = sched("0 6 * * MON-FRI");
        // Two weeks from Sun 2026-01-04 to Sun 2026-01-18: 10 weekdays.
        let got = s.slots_between(NY, utc("2026-01-04T00:00:00Z"), utc("2026-01-18T00:00:00Z"));
        assert_eq!(got.len(), 10);
        assert_eq!(got[0], utc("2026-01-05T11:00:00Z"));
        assert_eq!(got[9], utc("2026-01-16T11:00:00Z"));
        // Across the US spring-forward: 06:00 EST = 11:00Z on Fri 03-06,
        // 06:00 EDT = 10:00Z from Mon 03-09.
        let got = s.slots_between(NY, utc("2026-03-05T12:00:00Z"), utc("2026-03-10T12:00:00Z"));
        assert_eq!(
            got,
            vec![
                utc("2026-03-06T11:00:00Z"),
                utc("2026-03-09T10:00:00Z"),
                utc("2026-03-10T10:00:00Z"),
            ]
        );
        // Hourly over one ordinary UTC day: 24.
        let got = sched("@hourly").slots_between(
            KOLKATA,
            utc("2026-01-01T00:00:00Z"),
            utc("2026-01-02T00:00:00Z"),
        );
        assert_eq!(got.len(), 24);
        // In Kolkata the hours are at :30 UTC.
        assert_eq!(got[0], utc("2026-01-01T00:30:00Z"));
        // Empty and reversed intervals.
        assert_eq!(
            s.slots_between(NY, utc("2026-01-18T00:00:00Z"), utc("2026-01-04T00:00:00Z")),
            Vec::<DateTime<Utc>>::new()
        );
        // A whole year of weekdays in 2026 (Jan 1 Thu .. Dec 31 Thu): 365 days =
        // 52 weeks + 1 day (a Thursday), so 52 * 5 + 1 = 261.
        let got = s.slots_between(NY, utc("2026-01-01T00:00:00Z"), utc("2027-01-01T00:00:00Z"));
        assert_eq!(got.len(), 261);
    }

    // ---- time zones --------------------------------------------------------

    #[test]
    fn new_york_spring_forward() {
        // 2026-03-08: at 02:00 EST (07:00 UTC) clocks jump to 03:00 EDT.
        let gap = utc("2026-03-08T07:00:00Z");

        // 02:30 does not exist: fires once at 03:00 EDT = 07:00 UTC.
        let s = sched("30 2 * * *");
        let sat = utc("2026-03-07T07:30:00Z"); // 02:30 EST
        let mon = utc("2026-03-09T06:30:00Z"); // 02:30 EDT
        assert_eq!(s.next_slot(NY, sat), Some(gap));
        assert_eq!(s.next_slot(NY, gap), Some(mon));
        assert_eq!(s.prev_slot(NY, utc("2026-03-08T12:00:00Z")), Some(gap));
        assert_eq!(
            s.prev_slot(NY, gap - chrono::Duration::seconds(1)),
            Some(sat)
        );
        assert_eq!(
            s.slots_between(NY, utc("2026-03-07T00:00:00Z"), utc("2026-03-10T00:00:00Z")),
            vec![sat, gap, mon]
        );

        // 01:30 is before the gap: 01:30 EST = 06:30 UTC.
        let s = sched("30 1 * * *");
        assert_eq!(s.next_slot(NY, sat), Some(utc("2026-03-08T06:30:00Z")));
        assert_eq!(
            s.next_slot(NY, utc("2026-03-08T06:30:00Z")),
            Some(utc("2026-03-09T05:30:00Z"))
        );

        // 02:00, 02:15, 02:30 and 02:45 all become 03:00 EDT: one slot.
        let s = sched("*/15 2 * * *");
        let got = s.slots_between(NY, utc("2026-03-07T00:00:00Z"), utc("2026-03-10T00:00:00Z"));
        assert_eq!(
            got,
            vec![
                // Saturday, EST (+5h)
                utc("2026-03-07T07:00:00Z"),
                utc("2026-03-07T07:15:00Z"),
                utc("2026-03-07T07:30:00Z"),
                utc("2026-03-07T07:45:00Z"),
                // Sunday: the gap
                gap,
                // Monday, EDT (+4h)
                utc("2026-03-09T06:00:00Z"),
                utc("2026-03-09T06:15:00Z"),
                utc("2026-03-09T06:30:00Z"),
                utc("2026-03-09T06:45:00Z"),
            ]
        );
        assert_eq!(s.next_slot(NY, utc("2026-03-07T07:45:00Z")), Some(gap));
        assert_eq!(s.next_slot(NY, gap), Some(utc("2026-03-09T06:00:00Z")));
        assert_eq!(s.prev_slot(NY, utc("2026-03-09T05:59:00Z")), Some(gap));

        // 03:00 EDT exists (the clocks land on it) and is the same instant as
        // the gap slots: `0,30 2,3` fires at 07:00 UTC once, then 03:30 EDT.
        assert_eq!(
            sched("0 3 * * *").next_slot(NY, utc("2026-03-07T12:00:00Z")),
            Some(gap)
        );
        let s = sched("0,30 2,3 * * *");
        assert_eq!(
            s.slots_between(NY, utc("2026-03-08T00:00:00Z"), utc("2026-03-08T12:00:00Z")),
            vec![gap, utc("2026-03-08T07:30:00Z")]
        );
    }

    #[test]
    fn new_york_fall_back() {
        // 2026-11-01: at 02:00 EDT (06:00 UTC) clocks go back to 01:00 EST.
        // 01:30 happens at 05:30 UTC (EDT) and again at 06:30 UTC (EST).
        let s = sched("30 1 * * *");
        let first = utc("2026-11-01T05:30:00Z");
        assert_eq!(s.next_slot(NY, utc("2026-10-31T12:00:00Z")), Some(first));
        // Only the first occurrence: the next slot is Monday 01:30 EST.
        assert_eq!(s.next_slot(NY, first), Some(utc("2026-11-02T06:30:00Z")));
        assert_eq!(s.prev_slot(NY, utc("2026-11-01T06:30:00Z")), Some(first));
        assert_eq!(s.prev_slot(NY, utc("2026-11-02T06:29:59Z")), Some(first));
        assert_eq!(
            s.slots_between(NY, utc("2026-10-31T00:00:00Z"), utc("2026-11-03T00:00:00Z")),
            vec![
                utc("2026-10-31T05:30:00Z"),
                first,
                utc("2026-11-02T06:30:00Z")
            ]
        );

        // 02:30 exists once, in EST: 07:30 UTC.
        let s = sched("30 2 * * *");
        assert_eq!(
            s.next_slot(NY, utc("2026-10-31T12:00:00Z")),
            Some(utc("2026-11-01T07:30:00Z"))
        );

        // Every 15 minutes in hour 2: 02:00-02:45 EST, 07:00-07:45 UTC.
        let s = sched("*/15 2 * * *");
        assert_eq!(
            s.slots_between(NY, utc("2026-11-01T00:00:00Z"), utc("2026-11-01T12:00:00Z")),
            vec![
                utc("2026-11-01T07:00:00Z"),
                utc("2026-11-01T07:15:00Z"),
                utc("2026-11-01T07:30:00Z"),
                utc("2026-11-01T07:45:00Z"),
            ]
        );
        // Every 15 minutes in hour 1: only the first pass (EDT), 05:00-05:45 UTC.
        let s = sched("*/15 1 * * *");
        assert_eq!(
            s.slots_between(NY, utc("2026-11-01T00:00:00Z"), utc("2026-11-01T12:00:00Z")),
            vec![
                utc("2026-11-01T05:00:00Z"),
                utc("2026-11-01T05:15:00Z"),
                utc("2026-11-01T05:30:00Z"),
                utc("2026-11-01T05:45:00Z"),
            ]
        );
        // During the second pass (06:10 UTC = 01:10 EST), the previous slot
        // is 01:45 EDT and the next is 01:00 EST on Monday (06:00 UTC).
        assert_eq!(
            s.prev_slot(NY, utc("2026-11-01T06:10:00Z")),
            Some(utc("2026-11-01T05:45:00Z"))
        );
        assert_eq!(
            s.next_slot(NY, utc("2026-11-01T06:10:00Z")),
            Some(utc("2026-11-02T06:00:00Z"))
        );
    }

    #[test]
    fn london() {
        // 2026-03-29: at 01:00 GMT (01:00 UTC) clocks jump to 02:00 BST.
        let jump = utc("2026-03-29T01:00:00Z");
        assert_eq!(
            sched("30 1 * * *").next_slot(LONDON, utc("2026-03-28T12:00:00Z")),
            Some(jump)
        );
        assert_eq!(
            sched("0 1 * * *").next_slot(LONDON, utc("2026-03-28T12:00:00Z")),
            Some(jump)
        );
        // 01:xx (gap) and 02:00 BST are the same instant: one slot.
        let s = sched("0 1,2 * * *");
        assert_eq!(
            s.slots_between(
                LONDON,
                utc("2026-03-28T12:00:00Z"),
                utc("2026-03-30T12:00:00Z")
            ),
            vec![
                jump,
                utc("2026-03-30T00:00:00Z"), // 01:00 BST
                utc("2026-03-30T01:00:00Z"), // 02:00 BST
            ]
        );
        // Day before: 01:30 GMT = 01:30 UTC; day after: 01:30 BST = 00:30 UTC.
        let s = sched("30 1 * * *");
        assert_eq!(
            s.prev_slot(LONDON, jump - chrono::Duration::seconds(1)),
            Some(utc("2026-03-28T01:30:00Z"))
        );
        assert_eq!(s.next_slot(LONDON, jump), Some(utc("2026-03-30T00:30:00Z")));

        // 2026-10-25: at 02:00 BST (01:00 UTC) clocks go back to 01:00 GMT.
        // 01:30 happens at 00:30 UTC (BST) and 01:30 UTC (GMT); first wins.
        let first = utc("2026-10-25T00:30:00Z");
        assert_eq!(
            s.next_slot(LONDON, utc("2026-10-24T12:00:00Z")),
            Some(first)
        );
        assert_eq!(
            s.next_slot(LONDON, first),
            Some(utc("2026-10-26T01:30:00Z"))
        );
        assert_eq!(
            s.prev_slot(LONDON, utc("2026-10-25T01:30:00Z")),
            Some(first)
        );
        // Midnight is unaffected: 00:00 BST = 23:00 UTC the day before.
        assert_eq!(
            sched("@daily").next_slot(LONDON, utc("2026-10-24T12:00:00Z")),
            Some(utc("2026-10-24T23:00:00Z"))
        );
    }

    #[test]
    fn sydney() {
        // 2026-10-04: at 02:00 AEST (+10, 16:00 UTC on 10-03) clocks jump
        // to 03:00 AEDT (+11).
        let s = sched("30 2 * * *");
        let jump = utc("2026-10-03T16:00:00Z");
        let before = utc("2026-10-02T16:30:00Z"); // Sat 10-03 02:30 AEST
        let after = utc("2026-10-04T15:30:00Z"); // Mon 10-05 02:30 AEDT
        assert_eq!(s.next_slot(SYDNEY, before), Some(jump));
        assert_eq!(s.next_slot(SYDNEY, jump), Some(after));
        assert_eq!(
            s.prev_slot(SYDNEY, after - chrono::Duration::seconds(1)),
            Some(jump)
        );
        assert_eq!(
            s.slots_between(
                SYDNEY,
                utc("2026-10-02T00:00:00Z"),
                utc("2026-10-05T00:00:00Z")
            ),
            vec![before, jump, after]
        );

        // 2026-04-05: at 03:00 AEDT (16:00 UTC on 04-04) clocks go back to
        // 02:00 AEST. 02:30 is 15:30 UTC (AEDT) and 16:30 UTC (AEST).
        let first = utc("2026-04-04T15:30:00Z");
        assert_eq!(
            s.next_slot(SYDNEY, utc("2026-04-04T00:00:00Z")),
            Some(first)
        );
        // Next: Mon 04-06 02:30 AEST = 16:30 UTC on 04-05.
        assert_eq!(
            s.next_slot(SYDNEY, first),
            Some(utc("2026-04-05T16:30:00Z"))
        );
        assert_eq!(
            s.prev_slot(SYDNEY, utc("2026-04-04T16:30:00Z")),
            Some(first)
        );

        // Local Monday 09:00 is Sunday 22:00/23:00 UTC.
        // Mon 2026-03-02 09:00 AEDT = Sun 03-01 22:00 UTC.
        let s = sched("0 9 * * MON");
        assert_eq!(
            s.next_slot(SYDNEY, utc("2026-03-01T20:00:00Z")),
            Some(utc("2026-03-01T22:00:00Z"))
        );
        // Mon 2026-06-01 09:00 AEST = Sun 05-31 23:00 UTC; from Sunday 23:30
        // UTC (already Monday 09:30) the previous slot is that one.
        assert_eq!(
            s.prev_slot(SYDNEY, utc("2026-05-31T23:30:00Z")),
            Some(utc("2026-05-31T23:00:00Z"))
        );
        assert_eq!(
            s.next_slot(SYDNEY, utc("2026-05-31T23:30:00Z")),
            Some(utc("2026-06-07T23:00:00Z"))
        );
    }

    #[test]
    fn adelaide() {
        // ACST +09:30, ACDT +10:30; changes on the same days as Sydney.
        // 2026-10-04: 02:00 ACST (16:30 UTC on 10-03) jumps to 03:00 ACDT.
        let s = sched("30 2 * * *");
        assert_eq!(
            s.next_slot(ADELAIDE, utc("2026-10-03T00:00:00Z")),
            Some(utc("2026-10-03T16:30:00Z"))
        );
        // Mon 10-05 02:30 ACDT = 16:00 UTC on 10-04.
        assert_eq!(
            s.next_slot(ADELAIDE, utc("2026-10-03T16:30:00Z")),
            Some(utc("2026-10-04T16:00:00Z"))
        );
        // 2026-04-05: 03:00 ACDT (16:30 UTC on 04-04) goes back to 02:00 ACST.
        // 02:30 happens at 16:00 UTC (ACDT) and 17:00 UTC (ACST); first wins.
        assert_eq!(
            s.next_slot(ADELAIDE, utc("2026-04-04T00:00:00Z")),
            Some(utc("2026-04-04T16:00:00Z"))
        );
        assert_eq!(
            s.next_slot(ADELAIDE, utc("2026-04-04T16:00:00Z")),
            Some(utc("2026-04-05T17:00:00Z"))
        );
        // An ordinary winter day: 06:00 ACST = 20:30 UTC the day before.
        assert_eq!(
            sched("0 6 * * *").next_slot(ADELAIDE, utc("2026-07-01T00:00:00Z")),
            Some(utc("2026-07-01T20:30:00Z"))
        );
    }

    #[test]
    fn half_and_quarter_hour_offsets() {
        // Kolkata +05:30, no DST. 06:00 IST = 00:30 UTC.
        let s = sched("0 6 * * *");
        let at = utc("2026-06-15T00:00:00Z"); // 05:30 IST
        assert_eq!(s.prev_slot(KOLKATA, at), Some(utc("2026-06-14T00:30:00Z")));
        assert_eq!(s.next_slot(KOLKATA, at), Some(utc("2026-06-15T00:30:00Z")));
        // Midnight IST = 18:30 UTC the previous day.
        assert_eq!(
            sched("@daily").next_slot(KOLKATA, at),
            Some(utc("2026-06-15T18:30:00Z"))
        );
        // Same in winter (no DST): 2026-01-15.
        assert_eq!(
            s.next_slot(KOLKATA, utc("2026-01-15T00:00:00Z")),
            Some(utc("2026-01-15T00:30:00Z"))
        );
        // Kathmandu +05:45: 06:00 NPT = 00:15 UTC.
        assert_eq!(
            s.next_slot(KATHMANDU, at),
            Some(utc("2026-06-15T00:15:00Z"))
        );
        // Lord Howe moves its clocks by 30 minutes: on 2026-10-04 02:00
        // (+10:30, 15:30 UTC on 10-03) becomes 02:30 (+11).
        let s = sched("15 2 * * *");
        assert_eq!(
            s.next_slot(LORD_HOWE, utc("2026-10-03T00:00:00Z")),
            Some(utc("2026-10-03T15:30:00Z"))
        );
        // On 2026-04-05 02:00 (+11, 15:00 UTC on 04-04) becomes 01:30
        // (+10:30); 01:45 first happens at 14:45 UTC.
        let s = sched("45 1 * * *");
        assert_eq!(
            s.next_slot(LORD_HOWE, utc("2026-04-04T00:00:00Z")),
            Some(utc("2026-04-04T14:45:00Z"))
        );
        assert_eq!(
            s.next_slot(LORD_HOWE, utc("2026-04-04T14:45:00Z")),
            Some(utc("2026-04-05T15:15:00Z"))
        );
    }

    #[test]
    fn midnight_gap_and_fall_back_to_the_previous_day() {
        // 2018-11-04 in Sao Paulo: at 00:00 BRT (-03, 03:00 UTC) clocks jump
        // to 01:00 BRST (-02); that day has no midnight.
        let s = sched("@daily");
        let jump = utc("2018-11-04T03:00:00Z");
        assert_eq!(
            s.next_slot(SAO_PAULO, utc("2018-11-03T03:00:00Z")),
            Some(jump)
        );
        // The next midnight is BRST: 02:00 UTC.
        assert_eq!(
            s.next_slot(SAO_PAULO, jump),
            Some(utc("2018-11-05T02:00:00Z"))
        );
        // 00:30 (gap) and 01:00 BRST are the same instant: one slot.
        assert_eq!(
            sched("0,30 0-1 * * *").slots_between(
                SAO_PAULO,
                utc("2018-11-04T00:00:00Z"),
                utc("2018-11-04T06:00:00Z")
            ),
            vec![jump, utc("2018-11-04T03:30:00Z")]
        );

        // 2018-02-18: at 00:00 BRST (-02, 02:00 UTC) clocks go back to 23:00
        // BRT (-03) on Saturday 02-17. Saturday 23:30 happens at 01:30 UTC
        // and 02:30 UTC; the first counts.
        let s = sched("30 23 * * *");
        let first = utc("2018-02-18T01:30:00Z");
        assert_eq!(
            s.next_slot(SAO_PAULO, utc("2018-02-17T12:00:00Z")),
            Some(first)
        );
        // Sunday 23:30 BRT = Monday 02:30 UTC.
        assert_eq!(
            s.next_slot(SAO_PAULO, first),
            Some(utc("2018-02-19T02:30:00Z"))
        );
        assert_eq!(
            s.prev_slot(SAO_PAULO, utc("2018-02-18T02:45:00Z")),
            Some(first)
        );
        // Sunday's midnight is 00:00 BRT = 03:00 UTC, after the repeated hour.
        let s = sched("@daily");
        assert_eq!(
            s.next_slot(SAO_PAULO, utc("2018-02-18T02:30:00Z")),
            Some(utc("2018-02-18T03:00:00Z"))
        );
        assert_eq!(
            s.prev_slot(SAO_PAULO, utc("2018-02-18T02:59:59Z")),
            Some(utc("2018-02-17T02:00:00Z"))
        );
    }

    // ---- properties ----------------------------------------------------------

    /// SplitMix64: a tiny deterministic generator for the property tests.
    struct Rng(u64);
    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = self.0;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            z ^ (z >> 31)
        }
    }

    const ZONES: [Tz; 8] = [
        NY, LONDON, SYDNEY, ADELAIDE, KOLKATA, KATHMANDU, LORD_HOWE, UTC_TZ,
    ];
    const EXPRS: [&str; 9] = [
        "0 6 * * MON-FRI",
        "0 12 * * TUE,FRI",
        "30 2 * * *",
        "30 1 * * *",
        "*/15 2 * * *",
        "0,30 0-3 * * *",
        "0 0 13 * FRI",
        "0 0 29 2 *",
        "45 23 31 * *",
    ];

    #[test]
    fn prev_and_next_bracket_random_instants() {
        let mut rng = Rng(0x5EED);
        let year_start = utc("2026-01-01T00:00:00Z").timestamp();
        for tz in ZONES {
            for expr in EXPRS {
                let s = sched(expr);
                for _ in 0..40 {
                    let secs = year_start + (rng.next() % (366 * 86_400)) as i64;
                    let t = DateTime::from_timestamp(secs, (rng.next() % 2) as u32 * 500_000_000)
                        .unwrap();
                    let p = s.prev_slot(tz, t).unwrap();
                    let n = s.next_slot(tz, t).unwrap();
                    assert!(p <= t && t < n, "{expr} {tz}: {p} <= {t} < {n}");
                    let after_p = s.next_slot(tz, p).unwrap();
                    assert!(after_p > p, "{expr} {tz}: next({p}) = {after_p}");
                    // Nothing strictly between p and n: (p, n] holds only n.
                    assert_eq!(s.slots_between(tz, p, n), vec![n], "{expr} {tz} at {t}");
                    assert_eq!(after_p, n, "{expr} {tz} at {t}");
                    assert_eq!(s.prev_slot(tz, n), Some(n), "{expr} {tz}");
                    assert_eq!(
                        s.prev_slot(tz, n - chrono::Duration::nanoseconds(1)),
                        Some(p)
                    );
                }
            }
        }
    }

    /// Independent check around every 2026 transition in each zone: walk UTC
    /// minute by minute and derive the slots from the wall clock alone.
    #[test]
    fn matches_minute_by_minute_walk_around_transitions() {
        let exprs = [
            "*/15 * * * *",
            "30 2 * * *",
            "0 1,2 * * *",
            "45 1 * * *",
            "*/10 0-3 * * SUN",
            "@daily",
            "30 23 * * *",
            "0,30 22-23 * * SAT",
        ];
        let matches = |s: &Schedule, wall: NaiveDateTime| {
            s.day_matches(wall.date())
                && s.hours & (1 << chrono::Timelike::hour(&wall)) != 0
                && s.minutes & (1 << chrono::Timelike::minute(&wall)) != 0
        };
        // Sao Paulo in 2018 had a gap at midnight (00:00 -> 01:00 on 11-04)
        // and went back from midnight to 23:00 (on 02-18).
        let zones = [
            (NY, 2026),
            (LONDON, 2026),
            (SYDNEY, 2026),
            (ADELAIDE, 2026),
            (LORD_HOWE, 2026),
            (SAO_PAULO, 2018),
        ];
        for (tz, year) in zones {
            // Find the year's transitions hour by hour.
            let start = NaiveDate::from_ymd_opt(year, 1, 1)
                .unwrap()
                .and_hms_opt(0, 0, 0)
                .unwrap()
                .and_utc()
                .timestamp();
            let offset = |secs: i64| {
                let t = DateTime::from_timestamp(secs, 0)
                    .unwrap()
                    .with_timezone(&tz);
                t.naive_local() - t.naive_utc()
            };
            let transitions: Vec<i64> = (0..365 * 24)
                .map(|h| start + h * 3600)
                .filter(|&secs| offset(secs) != offset(secs + 3600))
                .collect();
            assert_eq!(transitions.len(), 2, "{tz} {year}");
            for expr in exprs {
                let s = sched(expr);
                for &transition in &transitions {
                    let (from, to) = (transition - 3 * 86_400, transition + 3 * 86_400);
                    let mut expected = Vec::new();
                    let wall = |secs: i64| {
                        DateTime::from_timestamp(secs, 0)
                            .unwrap()
                            .with_timezone(&tz)
                            .naive_local()
                    };
                    let mut latest_wall = wall(from - 86_400);
                    let mut secs = from - 86_400;
                    while secs <= to {
                        secs += 60;
                        let now = wall(secs);
                        let prev = wall(secs - 60);
                        let fires = if now <= latest_wall {
                            false // a repeated wall time: only its first pass fires
                        } else if now - prev > chrono::Duration::minutes(1) {
                            // A jump: fires if any skipped minute or `now` matches.
                            let mut m = prev + chrono::Duration::minutes(1);
                            let mut any = false;
                            while m <= now {
                                any |= matches(&s, m);
                                m += chrono::Duration::minutes(1);
                            }
                            any
                        } else {
                            matches(&s, now)
                        };
                        latest_wall = latest_wall.max(now);
                        if fires && secs > from && secs <= to {
                            expected.push(DateTime::from_timestamp(secs, 0).unwrap());
                        }
                    }
                    let from = DateTime::from_timestamp(from, 0).unwrap();
                    let to = DateTime::from_timestamp(to, 0).unwrap();
                    assert_eq!(s.slots_between(tz, from, to), expected, "{expr} {tz}");
                    // Walking with next_slot gives the same list.
                    let mut walked = Vec::new();
                    let mut t = from;
                    while let Some(n) = s.next_slot(tz, t).filter(|&n| n <= to) {
                        walked.push(n);
                        t = n;
                    }
                    assert_eq!(walked, expected, "{expr} {tz} (next_slot)");
                    // And backwards with prev_slot.
                    let mut walked = Vec::new();
                    let mut t = to;
                    while let Some(p) = s.prev_slot(tz, t).filter(|&p| p > from) {
                        walked.push(p);
                        t = p - chrono::Duration::nanoseconds(1);
                    }
                    walked.reverse();
                    assert_eq!(walked, expected, "{expr} {tz} (prev_slot)");
                }
            }
        }
    }
}
