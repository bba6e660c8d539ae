//! `newsletters:`: each newsletter's sender, schedule, filters, grouping and
//! subscriber list.

use std::path::{Path, PathBuf};

use chrono::Duration;
use chrono_tz::Tz;
use serde::Serialize;

use super::site::Site;
use super::taxonomy::{self, Term};
use super::{check_header_value, duration, parse_tz, path, valid_id};
use crate::schedule::Schedule;
use crate::yaml::{Fields, Node, Source};

/// Default for a newsletter's `max_delay`.
pub const DEFAULT_MAX_DELAY_HOURS: i64 = 2;

const DEFAULT_SUBJECT: &str = "{{ newsletter.name }}: {{ edition.lead.title }}";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum GroupBy {
    Region,
    Topic,
}

/// Where the edition's lead goes: `top` opens the digest with it, before
/// the sections (so that the subject, the preheader and the first story are
/// the same story); `in_section` leaves it first in its own section.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum LeadPlacement {
    #[default]
    Top,
    InSection,
}

/// What the digest calls its count of words and minutes.
pub const DEFAULT_COUNT_LABEL: &str = "Reading time";

/// One newsletter, validated.
#[derive(Debug, Clone)]
pub struct Newsletter {
    pub id: String,
    pub name: String,
    pub from: String,
    pub reply_to: Option<String>,
    pub subject: String,
    pub preheader: Option<String>,
    pub schedule: Option<Schedule>,
    pub timezone: Tz,
    pub regions: Option<Vec<String>>,
    pub topics: Option<Vec<String>>,
    pub group_by: Vec<GroupBy>,
    pub lookback: Option<Duration>,
    pub min_items: usize,
    pub template: String,
    /// The subscriber list (CSV), resolved against the newsroom root.
    pub subscribers: Option<PathBuf>,
    /// An edition whose slot is older than this is never started.
    pub max_delay: Duration,
    /// A list with no valid subscriber may be sent to (nobody): otherwise
    /// such a list stops the edition before it is frozen, since it is far
    /// more often a broken export than a newsletter without readers.
    pub allow_empty: bool,
    pub lead: LeadPlacement,
    /// The name of the word count and reading time in the digest.
    pub count_label: String,
    /// Its sent editions go into the public web archive (`archive: false`
    /// for a members-only letter).
    pub archive: bool,
    /// The pitch on the sign-up page: what it is and why read it, in one or
    /// two sentences.
    pub description: Option<String>,
    /// How often it comes, in a reader's words ("Weekday mornings"): as
    /// configured, else read from the schedule; `None` when neither says.
    pub cadence: Option<String>,
    /// Listed on the sign-up page (`signup: false` hides it).
    pub signup: bool,
}

impl Newsletter {
    /// Whether the newsletter's region/topic filters let an item in.
    pub fn carries(&self, regions: &[String], topics: &[String]) -> bool {
        let ok = |filter: &Option<Vec<String>>, have: &[String]| match filter {
            None => true,
            Some(f) => have.iter().any(|h| f.contains(h)),
        };
        ok(&self.regions, regions) && ok(&self.topics, topics)
    }
}

/// What a newsletter is checked against.
struct Ctx<'a> {
    site: &'a Site,
    regions: &'a [Term],
    topics: &'a [Term],
    root: &'a Path,
}

/// Reads `newsletters:`, in the order written.
pub(super) fn read_all(
    f: &mut Fields,
    site: &Site,
    regions: &[Term],
    topics: &[Term],
    root: &Path,
) -> Vec<Newsletter> {
    let Some(mut all) = f.fields("newsletters", true) else {
        return Vec::new();
    };
    let entries = all.node().entries();
    if entries.is_empty() && all.diags.is_empty() {
        all.missing("no newsletters are configured");
    }
    let cx = Ctx {
        site,
        regions,
        topics,
        root,
    };
    let mut out = Vec::with_capacity(entries.len());
    for (key, value) in entries {
        let id = key.as_str().unwrap_or_default();
        all.allow(&[id]);
        if !valid_id(id) {
            all.error_at(
                Some(key.pos),
                format!(
                    "invalid newsletter id `{id}`: use lowercase letters, digits, `-` and `_` (it names folders and mail headers)"
                ),
            );
        }
        let mut n = Fields::new(
            all.source(),
            value,
            Some(key.pos),
            &format!("newsletter `{id}`"),
        );
        out.push(read_one(&mut n, id, &cx));
        all.absorb(n);
    }
    f.absorb(all);
    out
}

fn read_one(n: &mut Fields, id: &str, cx: &Ctx) -> Newsletter {
    let (name, from, reply_to) = addresses(n);
    let subject = n
        .text("subject", "a subject line template")
        .unwrap_or(DEFAULT_SUBJECT);
    let preheader = n
        .text("preheader", "a preheader template")
        .map(str::to_string);
    let schedule = schedule(n);
    let timezone = match n.text("timezone", "an IANA zone name like America/Denver") {
        None => cx.site.timezone,
        Some(name) => parse_tz(name).unwrap_or_else(|m| {
            n.error("timezone", m);
            cx.site.timezone
        }),
    };
    let regions = taxonomy::filter(n, "regions", cx.regions);
    let topics = taxonomy::filter(n, "topics", cx.topics);
    let group_by = group_by(n);
    // Ten years of archive; far from where `slot - lookback` could overflow.
    let lookback = duration(n, "lookback", Duration::minutes(1), Duration::days(3660));
    let min_items = n.count("min_items", 0, 10_000).unwrap_or(1) as usize;
    let template = template(n);
    let subscribers = path(n, "subscribers", cx.root);
    let max_delay = duration(n, "max_delay", Duration::zero(), Duration::days(366))
        .unwrap_or(Duration::hours(DEFAULT_MAX_DELAY_HOURS));
    let allow_empty = n.bool("allow_empty").unwrap_or(false);
    let lead = lead(n);
    let count_label = count_label(n);
    let archive = n.bool("archive").unwrap_or(true);
    let description = words(n, "description", MAX_DESCRIPTION, "a sentence or two");
    let cadence = words(
        n,
        "cadence",
        MAX_CADENCE,
        "a few words like \"Weekday mornings\"",
    )
    .or_else(|| schedule.as_ref().and_then(Schedule::cadence));
    let signup = n.bool("signup").unwrap_or(true);
    Newsletter {
        id: id.to_string(),
        name,
        from,
        reply_to,
        subject: subject.to_string(),
        preheader,
        schedule,
        timezone,
        regions,
        topics,
        group_by,
        lookback,
        min_items,
        template,
        subscribers,
        max_delay,
        allow_empty,
        lead,
        count_label,
        archive,
        description,
        cadence,
        signup,
    }
}

/// Longest pitch: two sentences fit in well under this.
const MAX_DESCRIPTION: usize = 300;
const MAX_CADENCE: usize = 60;

/// A short text for readers' pages (`description`, `cadence`): one line,
/// no markup, at most `max` characters. Pages escape it; the limits keep
/// the sign-up page a list rather than an essay.
fn words(n: &mut Fields, key: &'static str, max: usize, expected: &str) -> Option<String> {
    let v = n.text(key, expected)?;
    let v = v.split_whitespace().collect::<Vec<_>>().join(" ");
    let len = v.chars().count();
    let problem = if v.is_empty() {
        Some(format!(
            "`{key}` is empty: write {expected}, or leave the key out"
        ))
    } else if len > max {
        Some(format!(
            "`{key}` is {len} characters; keep it to {max} (it is {expected} on the sign-up page)"
        ))
    } else if v.chars().any(|c| c.is_control() || c == '<' || c == '>') {
        Some(format!(
            "`{key}` must be plain text without `<`, `>` or control characters"
        ))
    } else {
        None
    };
    match problem {
        Some(m) => {
            n.error(key, m);
            None
        }
        None => Some(v),
    }
}

fn lead(n: &mut Fields) -> LeadPlacement {
    match n.text("lead", "top or in_section") {
        None => LeadPlacement::default(),
        Some("top") => LeadPlacement::Top,
        Some("in_section") => LeadPlacement::InSection,
        Some(other) => {
            let d = n.error(
                "lead",
                format!("unknown lead placement `{other}`: expected top or in_section"),
            );
            if let Some(s) = crate::diag::did_you_mean(other, ["top", "in_section"]) {
                d.help = Some(format!("did you mean `{s}`?"));
            }
            LeadPlacement::default()
        }
    }
}

fn count_label(n: &mut Fields) -> String {
    match n.text("count_label", "a label like \"Reading time\"") {
        None => DEFAULT_COUNT_LABEL.to_string(),
        Some(l) if l.trim().is_empty() || l.contains(['\n', '\r']) => {
            n.error(
                "count_label",
                "`count_label` must be a short label on one line, like \"Reading time\"",
            );
            DEFAULT_COUNT_LABEL.to_string()
        }
        Some(l) => l.trim().to_string(),
    }
}

/// `name`, `from` and `reply_to`: all go into mail headers.
fn addresses(n: &mut Fields) -> (String, String, Option<String>) {
    let name = n.required_text("name", "the newsletter's display name");
    let from = n.required_text("from", "an address like \"Name <name@example.com>\"");
    let reply_to = n.text("reply_to", "an address like editors@example.com");
    for (key, v) in [("name", name), ("from", from), ("reply_to", reply_to)] {
        let Some(v) = v else { continue };
        if let Err(m) = check_header_value(v) {
            n.error(key, format!("`{key}` {m}"));
        } else if key != "name" && !v.contains('@') {
            n.error(
                key,
                format!("`{key}` must be an address like \"Name <name@example.com>\", found `{v}`"),
            );
        }
    }
    let own = |v: Option<&str>| v.unwrap_or_default().to_string();
    (own(name), own(from), reply_to.map(str::to_string))
}

fn schedule(n: &mut Fields) -> Option<Schedule> {
    let (expr, node) = n.text_node("schedule", "a cron expression like \"0 6 * * MON-FRI\"")?;
    let e = match Schedule::parse(expr) {
        Ok(s) => return Some(s),
        Err(e) => e,
    };
    // Point at the offending field inside the expression; a quoted value
    // starts one column later.
    let quote = usize::from(quoted(n.source(), node));
    let pos = node.pos;
    let d = n.error_at(
        Some(crate::yaml::Pos::new(
            pos.line,
            pos.col + quote + e.column.saturating_sub(1),
            1,
        )),
        format!("invalid schedule: {}", e.message),
    );
    d.help = Some(
        "5 fields: minute hour day-of-month month day-of-week, e.g. \"0 6 * * MON-FRI\"".into(),
    );
    None
}

fn quoted(src: Source, node: &Node) -> bool {
    src.text
        .lines()
        .nth(node.pos.line - 1)
        .and_then(|l| l.chars().nth(node.pos.col - 1))
        .is_some_and(|c| c == '"' || c == '\'')
}

fn group_by(n: &mut Fields) -> Vec<GroupBy> {
    let Some(items) = n.texts("group_by", "a list like [region, topic]") else {
        return vec![GroupBy::Region, GroupBy::Topic];
    };
    let mut out = Vec::with_capacity(items.len());
    for (g, node) in items {
        let g = match g {
            "region" => GroupBy::Region,
            "topic" => GroupBy::Topic,
            other => {
                n.error_at(
                    Some(node.pos),
                    format!("unknown grouping `{other}`: expected region or topic"),
                );
                continue;
            }
        };
        if out.contains(&g) {
            n.error("group_by", "`group_by` names the same grouping twice");
        }
        out.push(g);
    }
    out
}

fn template(n: &mut Fields) -> String {
    let Some(t) = n.text("template", "a template name like digest") else {
        return "digest".into();
    };
    if t.is_empty()
        || !t
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    {
        n.error(
            "template",
            format!("invalid template name `{t}`: a file name without extension, like `digest`"),
        );
    }
    t.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Newsroom;

    fn newsletter(lines: &str) -> Result<Newsletter, Vec<String>> {
        let text = format!(
            "site: {{ name: T, base_url: https://news.example.com, timezone: UTC, postal_address: none }}\nregions: [{{ id: w, name: W }}]\ntopics: [{{ id: t, name: T }}]\nnewsletters:\n  am:\n    name: AM\n    from: a@news.example.com\n{lines}"
        );
        Newsroom::from_text(std::path::Path::new("config.yaml"), text)
            .map(|n| n.config.newsletters[0].clone())
            .map_err(|ds| ds.iter().map(|d| d.headline()).collect())
    }

    #[test]
    fn the_lead_goes_on_top_unless_the_newsletter_says_otherwise() {
        assert_eq!(newsletter("").unwrap().lead, LeadPlacement::Top);
        assert_eq!(
            newsletter("    lead: in_section\n").unwrap().lead,
            LeadPlacement::InSection
        );
        let e = newsletter("    lead: in-section\n").unwrap_err();
        assert_eq!(
            e,
            [
                "config.yaml:8:11: error: unknown lead placement `in-section`: expected top or in_section"
            ]
        );
    }

    #[test]
    fn the_count_can_be_named() {
        assert_eq!(newsletter("").unwrap().count_label, "Reading time");
        assert_eq!(
            newsletter("    count_label: Smart Brevity count\n")
                .unwrap()
                .count_label,
            "Smart Brevity count"
        );
        assert!(newsletter("    count_label: \" \"\n").is_err());
    }

    #[test]
    fn a_pitch_and_a_cadence_are_short_plain_text_and_the_cadence_defaults_to_the_schedule() {
        let n = newsletter(
            "    schedule: \"0 6 * * MON-FRI\"\n    description: \"  What moved overnight,\n      in five minutes.\"\n",
        )
        .unwrap();
        assert_eq!(
            n.description.as_deref(),
            Some("What moved overnight, in five minutes.")
        );
        assert_eq!(n.cadence.as_deref(), Some("Weekday mornings"));
        assert!(n.signup);
        let n = newsletter(
            "    schedule: \"0 6 * * MON-FRI\"\n    cadence: Before breakfast\n    signup: false\n",
        )
        .unwrap();
        assert_eq!(n.cadence.as_deref(), Some("Before breakfast"));
        assert!(!n.signup);
        assert_eq!(newsletter("").unwrap().cadence, None);
        for (bad, want) in [
            ("    description: \"<b>Big</b> news\"\n", "plain text"),
            ("    cadence: \"\"\n", "is empty"),
            (
                &*format!("    description: {}\n", "word ".repeat(70)),
                "keep it to 300",
            ),
        ] {
            let e = newsletter(bad).unwrap_err();
            assert!(e.iter().any(|m| m.contains(want)), "{bad}: {e:?}");
        }
    }
}
