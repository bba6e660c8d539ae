//! Editions: one newsletter at one slot. Finds the slot for a time, picks the
//! items dated in the slot's window, and groups them into sections in the
//! taxonomy order of config.yaml.

use std::cmp::Ordering;

use chrono::{DateTime, Duration, Utc};

use crate::config::{Config, GroupBy, LeadPlacement, Newsletter, Term};
use crate::content::Item;
use crate::time::slot_stamp;

/// The window a newsletter without `schedule` or `lookback` looks back over.
pub const DEFAULT_WINDOW: i64 = 24;

/// A slot and the window of item dates it carries: (start, at].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Slot {
    pub at: DateTime<Utc>,
    pub start: DateTime<Utc>,
}

/// The slot a newsletter's edition for time `t` belongs to: its latest
/// scheduled time at or before `t` (or `t` itself without a schedule).
/// `None` when the schedule has never fired before `t`.
pub fn slot_for(n: &Newsletter, t: DateTime<Utc>) -> Option<Slot> {
    let at = match &n.schedule {
        Some(s) => s.prev_slot(n.timezone, t)?,
        None => t,
    };
    Some(Slot {
        at,
        start: window_start(n, at),
    })
}

/// Where the window of the slot at `at` starts: `lookback` before it, else the
/// previous scheduled slot, else 24 hours before.
pub fn window_start(n: &Newsletter, at: DateTime<Utc>) -> DateTime<Utc> {
    if let Some(lb) = n.lookback {
        return at - lb;
    }
    n.schedule
        .as_ref()
        .and_then(|s| s.prev_slot(n.timezone, at - Duration::seconds(1)))
        .unwrap_or(at - Duration::hours(DEFAULT_WINDOW))
}

/// An item as placed in one edition: under which region and topic.
#[derive(Debug, Clone)]
pub struct Placed<'a> {
    pub item: &'a Item,
    pub region: &'a Term,
    pub topic: &'a Term,
}

#[derive(Debug, Clone)]
pub struct Section<'a> {
    pub region: Option<&'a Term>,
    pub topic: Option<&'a Term>,
    pub items: Vec<Placed<'a>>,
}

impl Section<'_> {
    /// `world/trade`, `world`, `trade`, or `all` when not grouped.
    pub fn id(&self) -> String {
        let parts: Vec<&str> = [self.region, self.topic]
            .iter()
            .flatten()
            .map(|t| t.id.as_str())
            .collect();
        if parts.is_empty() {
            "all".into()
        } else {
            parts.join("/")
        }
    }
    /// `World · Trade`, or empty when not grouped.
    pub fn title(&self) -> String {
        let parts: Vec<&str> = [self.region, self.topic]
            .iter()
            .flatten()
            .map(|t| t.name.as_str())
            .collect();
        parts.join(" · ")
    }
}

/// One newsletter's edition for one slot.
#[derive(Debug, Clone)]
pub struct Edition<'a> {
    /// `<newsletter>-<local slot as YYYY-MM-DDTHHMM>`.
    pub id: String,
    pub newsletter: &'a Newsletter,
    pub slot: Slot,
    pub sections: Vec<Section<'a>>,
}

/// The order inside a section and for the lead: priority, newest first, title.
pub fn item_order(a: &Item, b: &Item) -> Ordering {
    a.priority
        .cmp(&b.priority)
        .then(b.date.cmp(&a.date))
        .then_with(|| a.title.cmp(&b.title))
        .then_with(|| a.id.cmp(&b.id))
}

impl<'a> Edition<'a> {
    pub fn items(&self) -> impl Iterator<Item = &Placed<'a>> {
        self.sections.iter().flat_map(|s| s.items.iter())
    }
    pub fn item_count(&self) -> usize {
        self.sections.iter().map(|s| s.items.len()).sum()
    }
    /// The first item of the edition by priority, newest, title.
    pub fn lead(&self) -> Option<&Placed<'a>> {
        self.items().min_by(|a, b| item_order(a.item, b.item))
    }
    /// The story that opens the digest above the sections: the lead, unless
    /// the newsletter keeps it in its section (`lead: in_section`).
    pub fn top_story(&self) -> Option<&Placed<'a>> {
        match self.newsletter.lead {
            LeadPlacement::Top => self.lead(),
            LeadPlacement::InSection => None,
        }
    }
    /// The sections as the digest shows them below the top story: without
    /// it, and without a section it leaves empty.
    pub fn sections_below(&self) -> Vec<Section<'a>> {
        let Some(top) = self.top_story() else {
            return self.sections.clone();
        };
        let top = &top.item.id;
        self.sections
            .iter()
            .filter_map(|s| {
                let items: Vec<Placed<'a>> = s
                    .items
                    .iter()
                    .filter(|p| &p.item.id != top)
                    .cloned()
                    .collect();
                (!items.is_empty()).then(|| Section { items, ..s.clone() })
            })
            .collect()
    }
    /// Whether the edition carries enough items to be sent.
    pub fn is_sendable(&self) -> bool {
        self.item_count() >= self.newsletter.min_items.max(1)
    }

    /// The edition a subscriber with these preferences gets: only items with
    /// one of `regions` (when not empty) and one of `topics` (when not empty).
    pub fn personalise(
        &self,
        config: &'a Config,
        regions: &[String],
        topics: &[String],
    ) -> Edition<'a> {
        let keep = |p: &&Placed| {
            (regions.is_empty() || p.item.regions.iter().any(|r| regions.contains(r)))
                && (topics.is_empty() || p.item.topics.iter().any(|t| topics.contains(t)))
        };
        let placed: Vec<Placed<'a>> = self.items().filter(keep).cloned().collect();
        Edition {
            sections: group(config, self.newsletter, placed),
            ..self.clone()
        }
    }
}

/// Whether `item` belongs in newsletter `n`'s edition for `slot`.
pub fn qualifies(n: &Newsletter, slot: &Slot, item: &Item) -> bool {
    if item.draft || item.date <= slot.start || item.date > slot.at {
        return false;
    }
    if item.expires.is_some_and(|e| e <= slot.at) {
        return false;
    }
    match &item.newsletters {
        Some(list) => list.iter().any(|id| id == &n.id),
        None => n.carries(&item.regions, &item.topics),
    }
}

/// The one name of an edition: `<newsletter>-<slot in its zone as
/// YYYY-MM-DDTHHMM>`, e.g. `am-2026-11-30T0600`. The ledger, the outbox,
/// Message-IDs and `status` all use it.
pub fn edition_id(n: &Newsletter, slot_at: DateTime<Utc>) -> String {
    format!("{}-{}", n.id, slot_stamp(slot_at, n.timezone))
}

/// The time nearest to `at` whose edition of `n` would carry enough items
/// (searching the 200 item dates closest to `at`): what `build` suggests as
/// `--at` when an edition comes out short.
pub fn nearest_sendable(
    config: &Config,
    n: &Newsletter,
    at: DateTime<Utc>,
    items: &[Item],
) -> Option<DateTime<Utc>> {
    let mut dates: Vec<DateTime<Utc>> = items
        .iter()
        .filter(|i| {
            !i.draft
                && i.newsletters
                    .as_ref()
                    .map_or_else(|| n.carries(&i.regions, &i.topics), |l| l.contains(&n.id))
        })
        .map(|i| i.date)
        .collect();
    dates.sort_by_key(|d| (*d - at).abs());
    dates.into_iter().take(200).find_map(|d| {
        // The slot that carries an item dated `d` is the first one at or after it.
        let t = match &n.schedule {
            Some(s) => s.next_slot(n.timezone, d - Duration::seconds(1))?,
            None => d,
        };
        let slot = slot_for(n, t)?;
        select(config, n, slot, items).is_sendable().then_some(t)
    })
}

/// Builds the edition of newsletter `n` for `slot` from `items`.
pub fn select<'a>(
    config: &'a Config,
    n: &'a Newsletter,
    slot: Slot,
    items: &'a [Item],
) -> Edition<'a> {
    let placed = items
        .iter()
        .filter(|i| qualifies(n, &slot, i))
        .map(|item| Placed {
            item,
            region: place(&item.regions, n.regions.as_deref(), |id| config.region(id)),
            topic: place(&item.topics, n.topics.as_deref(), |id| config.topic(id)),
        })
        .collect();
    Edition {
        id: edition_id(n, slot.at),
        newsletter: n,
        slot,
        sections: group(config, n, placed),
    }
}

/// The first of the item's terms that the newsletter carries, else its primary one.
fn place<'a>(
    ids: &[String],
    carried: Option<&[String]>,
    term: impl Fn(&str) -> Option<&'a Term>,
) -> &'a Term {
    let chosen = match carried {
        Some(c) => ids.iter().find(|id| c.contains(id)).unwrap_or(&ids[0]),
        None => &ids[0],
    };
    // Items are validated against config, so the term exists.
    term(chosen)
        .or_else(|| term(&ids[0]))
        .expect("item terms are validated against config")
}

fn group<'a>(config: &Config, n: &Newsletter, mut placed: Vec<Placed<'a>>) -> Vec<Section<'a>> {
    let by_region = n.group_by.contains(&GroupBy::Region);
    let by_topic = n.group_by.contains(&GroupBy::Topic);
    let key = |p: &Placed| -> Vec<usize> {
        n.group_by
            .iter()
            .map(|g| match g {
                GroupBy::Region => config.region_index(&p.region.id),
                GroupBy::Topic => config.topic_index(&p.topic.id),
            })
            .collect()
    };
    placed.sort_by(|a, b| key(a).cmp(&key(b)).then_with(|| item_order(a.item, b.item)));
    let mut sections: Vec<Section<'a>> = Vec::new();
    for p in placed {
        let region = by_region.then_some(p.region);
        let topic = by_topic.then_some(p.topic);
        match sections.last_mut() {
            Some(s)
                if s.region.map(|t| &t.id) == region.map(|t| &t.id)
                    && s.topic.map(|t| &t.id) == topic.map(|t| &t.id) =>
            {
                s.items.push(p)
            }
            _ => sections.push(Section {
                region,
                topic,
                items: vec![p],
            }),
        }
    }
    sections
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schedule::Schedule;

    fn utc(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    fn newsletter(schedule: Option<&str>, lookback: Option<i64>) -> Newsletter {
        Newsletter {
            id: "am".into(),
            name: "AM".into(),
            from: "a@example.com".into(),
            reply_to: None,
            subject: String::new(),
            preheader: None,
            schedule: schedule.map(|s| Schedule::parse(s).unwrap()),
            timezone: chrono_tz::America::New_York,
            regions: None,
            topics: None,
            group_by: vec![GroupBy::Region, GroupBy::Topic],
            lookback: lookback.map(Duration::hours),
            min_items: 1,
            template: "digest".into(),
            subscribers: None,
            max_delay: Duration::hours(2),
            allow_empty: false,
            lead: crate::config::LeadPlacement::Top,
            count_label: crate::config::DEFAULT_COUNT_LABEL.into(),
            archive: true,
            description: None,
            cadence: None,
            signup: true,
        }
    }

    #[test]
    fn slot_is_latest_scheduled_time_and_window_reaches_previous_slot() {
        let n = newsletter(Some("0 6 * * MON-FRI"), None);
        // Monday 08:00 New York -> Monday 06:00; previous slot Friday 06:00.
        let s = slot_for(&n, utc("2026-11-30T13:00:00Z")).unwrap();
        assert_eq!(s.at, utc("2026-11-30T11:00:00Z"));
        assert_eq!(s.start, utc("2026-11-27T11:00:00Z"));
        // Exactly at a slot, that slot is the one.
        assert_eq!(slot_for(&n, s.at).unwrap().at, s.at);
    }

    fn item(id: &str, region: &str, topic: &str, priority: i64) -> Item {
        Item {
            id: id.into(),
            source: format!("content/{id}.md").into(),
            title: id.into(),
            date: utc("2026-11-30T10:00:00Z"),
            regions: vec![region.into()],
            topics: vec![topic.into()],
            priority,
            summary: String::new(),
            authors: Vec::new(),
            image: None,
            link: None,
            newsletters: None,
            draft: false,
            expires: None,
            tags: Vec::new(),
            extra: serde_json::Value::Null,
            body: String::new(),
            body_line: 1,
            warnings: Vec::new(),
        }
    }

    fn config() -> Config {
        let text = "site: { name: S, base_url: https://x.example, timezone: UTC, postal_address: none }\nregions: [{ id: a, name: A }, { id: b, name: B }]\ntopics: [{ id: t, name: T }, { id: u, name: U }]\nnewsletters:\n  am: { name: AM, from: a@x.example }\n";
        crate::config::Newsroom::from_text(std::path::Path::new("config.yaml"), text.into())
            .unwrap()
            .config
    }

    #[test]
    fn the_lead_opens_the_digest_and_leaves_its_section() {
        let cfg = config();
        let items = vec![
            item("a-first", "a", "t", 3),
            item("a-second", "a", "u", 2),
            item("b-lead", "b", "t", 1),
        ];
        let mut n = newsletter(None, None);
        n.regions = None;
        let slot = slot_for(&n, utc("2026-11-30T12:00:00Z")).unwrap();
        let ed = select(&cfg, &n, slot, &items);
        assert_eq!(ed.lead().unwrap().item.id, "b-lead");
        assert_eq!(ed.top_story().unwrap().item.id, "b-lead");
        let below: Vec<(String, Vec<&str>)> = ed
            .sections_below()
            .iter()
            .map(|s| (s.id(), s.items.iter().map(|p| p.item.id.as_str()).collect()))
            .collect();
        // The lead's section held only the lead: it is gone, not empty.
        assert_eq!(
            below,
            vec![
                ("a/t".to_string(), vec!["a-first"]),
                ("a/u".to_string(), vec!["a-second"])
            ]
        );
        // A reader of region `a` only gets a lead of their own.
        let mine = ed.personalise(&cfg, &["a".into()], &[]);
        assert_eq!(mine.top_story().unwrap().item.id, "a-second");
        assert_eq!(mine.sections_below().len(), 1);

        n.lead = LeadPlacement::InSection;
        let ed = select(&cfg, &n, slot, &items);
        assert!(ed.top_story().is_none());
        assert_eq!(ed.sections_below().len(), 3);
    }

    #[test]
    fn lookback_and_unscheduled_windows() {
        let n = newsletter(Some("0 7 * * *"), Some(36));
        let s = slot_for(&n, utc("2026-11-30T13:00:00Z")).unwrap();
        assert_eq!(s.start, s.at - Duration::hours(36));
        let n = newsletter(None, None);
        let t = utc("2026-11-30T13:00:00Z");
        assert_eq!(
            slot_for(&n, t).unwrap(),
            Slot {
                at: t,
                start: t - Duration::hours(24)
            }
        );
    }
}
