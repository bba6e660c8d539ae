//! Synthetic newsrooms for benchmarks: a config.yaml shaped like the sample
//! newsroom's and `items` Smart Brevity items of about 2 KB, `per_day` of them
//! in every 24 hours back from [`ANCHOR`]. Deterministic: the same spec writes
//! the same bytes. Shared by `benches/pipeline.rs` and
//! `examples/gen_newsroom.rs` (both include this file with `#[path]`).

#![allow(dead_code)] // Each includer uses a different part.

use std::fmt::Write as _;
use std::fs;
use std::io;
use std::path::Path;

use chrono::{DateTime, Datelike, Duration, TimeZone, Utc};
use chrono_tz::America::New_York;

/// Bump when the output changes, so cached newsrooms are regenerated.
pub const VERSION: u32 = 1;

/// The newest slot, as a local time in the site's zone (America/New_York): a
/// Wednesday 06:00, when every generated newsletter has an edition. Its 24-hour
/// window holds exactly `per_day` items. Pass it to `--at`.
pub const ANCHOR: &str = "2026-11-25T06:00";

/// The file at the newsroom's root that records what was generated.
pub const STAMP: &str = ".synth-newsroom";

/// What to generate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Spec {
    pub items: usize,
    /// Items dated in every 24-hour window: the size of the `daily` edition.
    pub per_day: usize,
    pub seed: u64,
}

impl Spec {
    pub fn new(items: usize, per_day: usize) -> Spec {
        Spec {
            items,
            per_day,
            seed: 0x5eed_b71e_f100,
        }
    }

    fn stamp(&self) -> String {
        format!(
            "version={VERSION}\nitems={}\nper_day={}\nseed={}\nat={ANCHOR}\n",
            self.items, self.per_day, self.seed
        )
    }
}

/// The anchor as an instant.
pub fn anchor() -> DateTime<Utc> {
    let local = chrono::NaiveDateTime::parse_from_str(ANCHOR, "%Y-%m-%dT%H:%M")
        .expect("ANCHOR is a valid local time");
    New_York
        .from_local_datetime(&local)
        .single()
        .expect("ANCHOR is not in a DST change")
        .with_timezone(&Utc)
}

/// Generates `spec` into `dir` unless `dir` already holds exactly that
/// newsroom. Returns whether it wrote anything.
pub fn ensure(spec: &Spec, dir: &Path) -> io::Result<bool> {
    if fs::read_to_string(dir.join(STAMP)).is_ok_and(|s| s == spec.stamp()) {
        return Ok(false);
    }
    generate(spec, dir)?;
    Ok(true)
}

/// Writes the newsroom into `dir`, replacing an earlier generated one. Refuses
/// a folder that has other files but no stamp: it may be a real newsroom.
pub fn generate(spec: &Spec, dir: &Path) -> io::Result<()> {
    assert!(spec.per_day > 0, "per_day must be at least 1");
    if dir.exists() {
        let empty = fs::read_dir(dir)?.next().is_none();
        if !empty && !dir.join(STAMP).exists() {
            return Err(io::Error::other(format!(
                "{} is not empty and was not made by this generator; pick another folder",
                dir.display()
            )));
        }
        // Stamp first, so an interrupted run is regenerated next time.
        let _ = fs::remove_file(dir.join(STAMP));
        for sub in ["content", "config.yaml"] {
            let p = dir.join(sub);
            if p.is_dir() {
                fs::remove_dir_all(&p)?;
            } else if p.exists() {
                fs::remove_file(&p)?;
            }
        }
    }
    fs::create_dir_all(dir)?;
    fs::write(dir.join("config.yaml"), CONFIG)?;

    let anchor = anchor();
    let mut rng = Rng::new(spec.seed);
    let mut made_dirs = std::collections::HashSet::new();
    for k in 0..spec.items {
        let date = item_date(anchor, k, spec.per_day);
        let item = item(&mut rng, k, date);
        let local = date.with_timezone(&New_York);
        let folder = dir
            .join("content")
            .join(item.region)
            .join(format!("{:04}", local.year()))
            .join(format!("{:02}", local.month()));
        if made_dirs.insert(folder.clone()) {
            fs::create_dir_all(&folder)?;
        }
        fs::write(folder.join(format!("{}.md", item.slug)), item.text)?;
    }
    fs::write(dir.join(STAMP), spec.stamp())
}

/// Item `k` (0 is the newest) lies `(k + 1/2) / per_day` days before the
/// anchor, so items `k` and `k + per_day` are exactly 24 hours apart and
/// every 24-hour window holds exactly `per_day` items, none on its edge.
pub fn item_date(anchor: DateTime<Utc>, k: usize, per_day: usize) -> DateTime<Utc> {
    let secs = ((2 * k as u64 + 1) * 86_400) / (2 * per_day as u64);
    anchor - Duration::seconds(secs as i64)
}

/// One generated item file.
pub struct GenItem {
    pub region: &'static str,
    pub slug: String,
    pub text: String,
}

/// The text of item `k` dated `date`.
pub fn item(rng: &mut Rng, k: usize, date: DateTime<Utc>) -> GenItem {
    let region = *rng.weighted(&[
        ("national", 35),
        ("world", 35),
        ("denver", 15),
        ("tampa-bay", 15),
    ]);
    let topic = match region {
        "denver" | "tampa-bay" => *rng.weighted(&[
            ("local", 30),
            ("sports", 20),
            ("politics", 15),
            ("climate", 10),
            ("economy", 10),
            ("health", 10),
            ("tech", 5),
        ]),
        _ => *rng.weighted(&[
            ("politics", 20),
            ("economy", 15),
            ("markets", 15),
            ("trade", 10),
            ("tech", 15),
            ("climate", 10),
            ("health", 10),
            ("sports", 5),
        ]),
    };
    let place = match region {
        "denver" => rng.pick(DENVER_PLACES),
        "tampa-bay" => rng.pick(TAMPA_PLACES),
        "world" => rng.pick(WORLD_PLACES),
        _ => rng.pick(NATIONAL_PLACES),
    };
    let org = rng.pick(ORGS);
    let noun = rng.pick(NOUNS);
    let title = format!(
        "{} {} {} {} in {place}",
        capitalise(org),
        rng.pick(HEADLINE_VERBS),
        rng.pick(ADJECTIVES),
        noun
    );
    let slug = format!("{}-{k}", slugify(&format!("{org} {noun} {place}")));
    let local = date.with_timezone(&New_York);

    let mut t = String::with_capacity(2300);
    t.push_str("---\n");
    writeln!(t, "title: {title}").unwrap();
    // Mostly RFC 3339 like a CMS writes it; some quoted, some local, as
    // editors type them.
    // A local time is written only where it names one instant (not in the
    // hour repeated when DST ends).
    let stamp = local.to_rfc3339();
    let unambiguous = New_York
        .from_local_datetime(&local.naive_local())
        .single()
        .is_some();
    match rng.below(10) {
        0 => writeln!(t, "date: \"{stamp}\"").unwrap(),
        1 if unambiguous => writeln!(t, "date: {}", local.format("%Y-%m-%d %H:%M:%S")).unwrap(),
        _ => writeln!(t, "date: {stamp}").unwrap(),
    }
    if rng.below(20) == 0 {
        let other = if region == "world" {
            "national"
        } else {
            "world"
        };
        writeln!(t, "regions: [{region}, {other}]").unwrap();
    } else {
        writeln!(t, "region: {region}").unwrap();
    }
    writeln!(t, "topic: {topic}").unwrap();
    writeln!(t, "priority: {}", 1 + rng.below(5)).unwrap();
    writeln!(t, "summary: {}", sentence(rng, place)).unwrap();
    if rng.below(8) == 0 {
        writeln!(t, "authors: [{}, {}]", rng.pick(AUTHORS), rng.pick(AUTHORS)).unwrap();
    } else {
        writeln!(t, "author: {}", rng.pick(AUTHORS)).unwrap();
    }
    let path = format!(
        "{:04}/{:02}/{:02}/{}",
        local.year(),
        local.month(),
        local.day(),
        slug
    );
    if rng.below(5) == 0 {
        writeln!(
            t,
            "image: {{ src: images/{path}.jpg, alt: \"{} at the {} in {place}\", credit: \"Photo: {}\" }}",
            capitalise(rng.pick(PEOPLE)),
            rng.pick(VENUES),
            rng.pick(AUTHORS)
        )
        .unwrap();
    }
    if rng.below(2) == 0 {
        writeln!(t, "link: https://news.example.com/{path}").unwrap();
    }
    let tags: Vec<&str> = (0..1 + rng.below(3)).map(|_| rng.pick(TAGS)).collect();
    writeln!(t, "tags: [{topic}, {}]", tags.join(", ")).unwrap();
    t.push_str("---\n");

    // The body: lede, "Why it matters", bullets, a closing lead-in with a link.
    for _ in 0..3 {
        t.push_str(&sentence(rng, place));
        t.push(' ');
    }
    t.pop();
    t.push_str("\n\n**Why it matters:** ");
    t.push_str(&sentence(rng, place));
    t.push(' ');
    t.push_str(&sentence(rng, place));
    t.push_str("\n\n");
    for _ in 0..3 + rng.below(2) {
        writeln!(t, "- {}", sentence(rng, place)).unwrap();
    }
    // Fill up to about 2 KB with the paragraphs editors add.
    let lead_ins = [
        "The big picture:",
        "Between the lines:",
        "By the numbers:",
        "Yes, but:",
    ];
    let mut li = rng.below(lead_ins.len());
    while t.len() < 1750 {
        write!(t, "\n**{}** ", lead_ins[li % lead_ins.len()]).unwrap();
        t.push_str(&sentence(rng, place));
        t.push(' ');
        t.push_str(&sentence(rng, place));
        t.push('\n');
        li += 1;
    }
    write!(
        t,
        "\n**Go deeper:** [{} on the {}](https://news.example.com/{path}/more).\n",
        capitalise(rng.pick(ADJECTIVES)),
        noun
    )
    .unwrap();
    GenItem {
        region,
        slug,
        text: t,
    }
}

fn sentence(rng: &mut Rng, place: &str) -> String {
    let s = match rng.below(4) {
        0 => format!(
            "{} {} the {} {} in {place} on {}, {}",
            capitalise(rng.pick(ORGS)),
            rng.pick(VERBS),
            rng.pick(ADJECTIVES),
            rng.pick(NOUNS),
            rng.pick(DAYS),
            rng.pick(CLAUSES)
        ),
        1 => format!(
            "{} said the {} would {} {} by {}",
            capitalise(rng.pick(PEOPLE)),
            rng.pick(NOUNS),
            rng.pick(EFFECTS),
            rng.pick(AMOUNTS),
            rng.pick(WHENS)
        ),
        2 => format!(
            "The {} {} has {} {} since {}, according to {}",
            rng.pick(ADJECTIVES),
            rng.pick(NOUNS),
            rng.pick(CHANGES),
            rng.pick(AMOUNTS),
            rng.pick(WHENS),
            rng.pick(ORGS)
        ),
        _ => format!(
            "{} in {place} {} the {} {}",
            capitalise(rng.pick(PEOPLE)),
            rng.pick(VERBS),
            rng.pick(NOUNS),
            rng.pick(CLAUSES)
        ),
    };
    s + "."
}

fn capitalise(s: &str) -> String {
    let mut c = s.chars();
    match c.next() {
        Some(f) => f.to_uppercase().chain(c).collect(),
        None => String::new(),
    }
}

fn slugify(s: &str) -> String {
    let mut out = String::new();
    for c in s.chars() {
        if c.is_ascii_alphanumeric() {
            out.push(c.to_ascii_lowercase());
        } else if !out.ends_with('-') && !out.is_empty() {
            out.push('-');
        }
    }
    out.trim_end_matches('-').to_string()
}

/// SplitMix64: small, fast, and good enough to vary text.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }
    pub fn pick<'a>(&mut self, xs: &[&'a str]) -> &'a str {
        xs[self.below(xs.len())]
    }
    fn weighted<'a, T>(&mut self, xs: &'a [(T, u32)]) -> &'a T {
        let total: u32 = xs.iter().map(|(_, w)| w).sum();
        let mut r = self.below(total as usize) as u32;
        for (x, w) in xs {
            if r < *w {
                return x;
            }
            r -= w;
        }
        &xs[xs.len() - 1].0
    }
}

/// The sample newsroom's regions and topics, with newsletters that all send
/// at 06:00 so one `--at` gives every one an edition over the same 24 hours:
/// `daily` carries everything (`per_day` items), the others a share of it.
pub const CONFIG: &str = r#"# A synthetic newsroom written by examples/gen_newsroom.rs for benchmarks.
site:
  name: The Synthetic Brief
  base_url: https://news.example.com
  timezone: America/New_York
  language: en

regions:
  - { id: national, name: National }
  - { id: world, name: World }
  - { id: denver, name: Denver }
  - { id: tampa-bay, name: Tampa Bay }

topics:
  - { id: politics, name: Politics }
  - { id: economy, name: Economy }
  - { id: markets, name: Markets }
  - { id: trade, name: Trade }
  - { id: tech, name: Technology }
  - { id: climate, name: Climate }
  - { id: health, name: Health }
  - { id: local, name: Local news }
  - { id: sports, name: Sports }

newsletters:
  daily:
    name: The Daily Brief
    from: "The Daily Brief <daily@news.example.com>"
    subject: "{{ newsletter.name }}: {{ edition.lead.title }}"
    schedule: "0 6 * * *"
    group_by: [region, topic]

  am:
    name: Morning Brief
    from: "Morning Brief <am@news.example.com>"
    reply_to: editors@news.example.com
    schedule: "0 6 * * *"
    regions: [national, world]
    group_by: [region, topic]
    min_items: 3

  markets:
    name: Markets
    from: "Markets <markets@news.example.com>"
    subject: "Markets: {{ edition.lead.title }}"
    schedule: "0 6 * * MON-FRI"
    lookback: 24h
    topics: [markets, economy, trade]
    group_by: [topic]

  local:
    name: Local
    from: "Briefing Local <local@news.example.com>"
    schedule: "0 6 * * *"
    regions: [denver, tampa-bay]
    group_by: [region, topic]
"#;

const ORGS: &[&str] = &[
    "the city council",
    "the transit board",
    "the state legislature",
    "the central bank",
    "the health department",
    "the school district",
    "the port authority",
    "the trade ministry",
    "the utility commission",
    "the chamber of commerce",
    "the county commission",
    "the weather service",
    "the labor department",
    "the energy regulator",
    "the hospital association",
    "the parks department",
];
const NOUNS: &[&str] = &[
    "budget",
    "fare increase",
    "rate decision",
    "housing plan",
    "tariff schedule",
    "vaccine drive",
    "bond measure",
    "water restrictions",
    "zoning overhaul",
    "wage deal",
    "emissions target",
    "stadium lease",
    "broadband rollout",
    "storm response",
    "tax credit",
    "chip plant",
    "shipping surcharge",
    "hiring freeze",
];
const ADJECTIVES: &[&str] = &[
    "long-delayed",
    "contested",
    "sweeping",
    "modest",
    "bipartisan",
    "record",
    "temporary",
    "revised",
    "emergency",
    "first-ever",
    "scaled-back",
    "quarterly",
];
const HEADLINE_VERBS: &[&str] = &[
    "approves", "delays", "rejects", "unveils", "weighs", "expands", "pauses", "revives",
];
const VERBS: &[&str] = &[
    "approved",
    "postponed",
    "announced",
    "questioned",
    "defended",
    "outlined",
    "expanded",
    "scaled back",
    "reviewed",
];
const CLAUSES: &[&str] = &[
    "ending months of negotiations",
    "despite objections from neighbors",
    "after a four-hour hearing",
    "citing higher costs than expected",
    "in a vote that split along party lines",
    "as turnout and demand kept rising",
    "ahead of a deadline at the end of the month",
    "with little public debate",
];
const PEOPLE: &[&str] = &[
    "the mayor",
    "a spokesperson",
    "the finance director",
    "the governor",
    "union leaders",
    "analysts",
    "the commissioner",
    "local business owners",
    "the agency's director",
    "residents",
];
const EFFECTS: &[&str] = &["cost", "save", "raise", "cut spending by", "add", "free up"];
const AMOUNTS: &[&str] = &[
    "$12 million",
    "$240 million",
    "about 3%",
    "1,200 jobs",
    "nearly a third",
    "$1.4 billion",
    "40 basis points",
    "8,500 households",
    "two percentage points",
];
const CHANGES: &[&str] = &[
    "grown by",
    "fallen by",
    "shifted by",
    "climbed by",
    "slipped by",
];
const WHENS: &[&str] = &[
    "the spring",
    "2024",
    "last year",
    "the end of the quarter",
    "March",
    "the next fiscal year",
    "January",
];
const DAYS: &[&str] = &[
    "Monday",
    "Tuesday",
    "Wednesday",
    "Thursday",
    "Friday",
    "Saturday",
    "Sunday",
];
const VENUES: &[&str] = &[
    "hearing",
    "rally",
    "briefing",
    "site visit",
    "vote",
    "opening",
];
const NATIONAL_PLACES: &[&str] = &[
    "Washington",
    "Chicago",
    "Atlanta",
    "Phoenix",
    "Philadelphia",
    "Houston",
    "Detroit",
];
const WORLD_PLACES: &[&str] = &[
    "Geneva",
    "Brussels",
    "Nairobi",
    "Seoul",
    "Sao Paulo",
    "Jakarta",
    "Warsaw",
    "Lagos",
];
const DENVER_PLACES: &[&str] = &["Denver", "Aurora", "Lakewood", "Boulder", "Englewood"];
const TAMPA_PLACES: &[&str] = &["Tampa", "St. Petersburg", "Clearwater", "Brandon", "Largo"];
const AUTHORS: &[&str] = &[
    "Dre Halvorsen",
    "Miguel Ortega",
    "Priya Natarajan",
    "Hannah Ode",
    "Tomasz Wierzbicki",
    "Grace Mbeki",
    "Lena Fischer",
    "Sam Okafor",
    "Jordan Reyes",
];
const TAGS: &[&str] = &[
    "budget",
    "transit",
    "housing",
    "schools",
    "energy",
    "jobs",
    "weather",
    "elections",
    "courts",
    "trade-talks",
    "inflation",
    "water",
];
