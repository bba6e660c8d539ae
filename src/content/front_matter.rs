//! Front-matter: the typed fields of an item and their validation. Each field
//! is read on its own so that one run reports every problem of an item, each
//! at the line and column of the offending value in the file.

use std::path::Path;

use chrono::{DateTime, Utc};
use chrono_tz::Tz;

use super::split::{SplitError, split};
use super::{Image, Item};
use crate::config::{Term, check_header_value};
use crate::diag::{Diagnostic, did_you_mean};
use crate::time::{parse_when, suggest_iso};
use crate::yaml::{self, Fields, Node, Source, Value};

/// The keys an item's front-matter may hold.
pub const KEYS: &[&str] = &[
    "title",
    "date",
    "region",
    "regions",
    "topic",
    "topics",
    "priority",
    "summary",
    "author",
    "authors",
    "image",
    "link",
    "newsletters",
    "draft",
    "expires",
    "tags",
    "extra",
];

/// What validating an item needs to know about the newsroom.
pub struct ParseCtx<'a> {
    pub timezone: Tz,
    pub regions: &'a [Term],
    pub topics: &'a [Term],
    pub newsletters: Vec<&'a str>,
    /// `markdown.lead_ins`, to warn about near misses.
    pub lead_ins: &'a [String],
    /// `site.base_url`, to compare a body's links with `link:`.
    pub base_url: &'a str,
}

/// The `date:` of an item read without parsing its YAML: a top-level
/// `date:` line with a plain or quoted scalar. `None` when it is written in
/// any other way; callers then parse the item fully.
pub fn prescan_date(text: &str, tz: Tz) -> Option<DateTime<Utc>> {
    let s = split(text).ok()?;
    let line = s.yaml.lines().find(|l| l.starts_with("date:"))?;
    let v = line["date:".len()..].trim();
    let v = match v.find(" #") {
        Some(i) => v[..i].trim_end(),
        None => v,
    };
    let v = v
        .strip_prefix('"')
        .and_then(|v| v.strip_suffix('"'))
        .or_else(|| v.strip_prefix('\'').and_then(|v| v.strip_suffix('\'')))
        .unwrap_or(v);
    parse_when(v, tz).ok()
}

/// Parses and validates one item. `path` is how the file is shown in
/// diagnostics; `id` its id. Returns every problem found; warnings about an
/// item that still loads ride along in `Item::warnings`.
pub fn parse_item(
    id: &str,
    path: &Path,
    text: &str,
    ctx: &ParseCtx,
) -> Result<Item, Vec<Diagnostic>> {
    // YAML counts a lone CR (old Mac files) as a line break; so do editors.
    // Normalising first keeps every reported line number the editor's.
    let normalised;
    let text = if text.contains('\r') {
        normalised = text.replace("\r\n", "\n").replace('\r', "\n");
        normalised.as_str()
    } else {
        text
    };
    let s = match split(text) {
        Ok(s) => s,
        Err(SplitError::Missing) => {
            return Err(vec![Diagnostic::error(path, "missing front-matter: an item must start with a `---` line, then YAML (title, date, region, topic), then `---`").at(text, 1, 1)]);
        }
        Err(SplitError::Unclosed) => {
            return Err(vec![
                Diagnostic::error(
                    path,
                    "unclosed front-matter: the `---` on line 1 has no closing `---` line",
                )
                .at(text, 1, 1)
                .span(3),
            ]);
        }
    };
    let src = Source { path, text };
    let root = match yaml::parse(s.yaml, s.yaml_line, &yaml::FRONT_MATTER) {
        Ok(n) => n,
        Err(p) => {
            let mut d = src.problem(p);
            d.message = format!("invalid YAML in front-matter: {}", d.message);
            return Err(vec![d]);
        }
    };
    let root = match root.value {
        Value::Map(_) => root,
        Value::Null => Node::empty_map(),
        _ => {
            return Err(vec![
                Diagnostic::error(
                    path,
                    "front-matter must be a mapping of keys to values (title: …, date: …)",
                )
                .at(text, s.yaml_line, 1),
            ]);
        }
    };
    let mut f = Fields::new(src, &root, None, "front-matter").empty_is_error();
    let fields = read_fields(&mut f, ctx);
    let mut diags = f.finish();
    let Some(mut item) = fields.filter(|_| diags.is_empty()) else {
        if diags.is_empty() {
            // Every missing field is reported where it is read.
            diags.push(Diagnostic::error(path, "incomplete front-matter"));
        }
        return Err(diags);
    };
    item.id = id.to_string();
    item.source = path.to_path_buf();
    item.body = s.body.to_string();
    item.body_line = s.body_line;
    item.warnings = expiry_warning(&src, &root, &item, ctx.timezone);
    let link_line = root.entry("link").map(|(k, _)| k.pos.line);
    item.warnings
        .extend(super::lead_ins::check(&super::lead_ins::BodyCtx {
            path,
            file_text: text,
            body: &item.body,
            body_line: item.body_line,
            link: item.link.as_deref().zip(link_line),
            lead_ins: ctx.lead_ins,
            base_url: ctx.base_url,
        }));
    Ok(item)
}

/// Reads every field, reporting each problem; `None` when a required one
/// is missing or bad. Unknown keys are reported first, as an editor reads.
fn read_fields(f: &mut Fields, ctx: &ParseCtx) -> Option<Item> {
    for (k, _) in f.node().entries() {
        let key = k.as_str().unwrap_or_default();
        if !KEYS.contains(&key) {
            let help = match did_you_mean(key, KEYS.iter().copied()) {
                Some(s) => format!("did you mean `{s}`?"),
                None => format!("allowed keys: {}", KEYS.join(", ")),
            };
            f.error_at(Some(k.pos), format!("unknown key `{key}`")).help = Some(help);
        }
    }
    // Reported above; known or not, no key is left for `finish`.
    let keys: Vec<&str> = f
        .node()
        .entries()
        .iter()
        .filter_map(|(k, _)| k.as_str())
        .collect();
    f.allow(&keys);
    let title = title(f);
    let date = read_date(f, "date", ctx.timezone);
    if !f.has("date") {
        f.missing("missing `date`: when the item was published, e.g. 2026-11-28T05:30:00-05:00")
            .width = 3;
    }
    let region_ids: Vec<&str> = ctx.regions.iter().map(|t| t.id.as_str()).collect();
    let topic_ids: Vec<&str> = ctx.topics.iter().map(|t| t.id.as_str()).collect();
    let regions = terms(f, ("region", "regions"), &region_ids);
    let topics = terms(f, ("topic", "topics"), &topic_ids);
    let priority = f
        .int("priority", "a whole number (1 is the lead)")
        .unwrap_or(5);
    let summary = f
        .text("summary", "one sentence")
        .unwrap_or_default()
        .to_string();
    let authors = authors(f);
    let image = image(f);
    let link = f.text("link", "a URL").map(str::to_string);
    if let Some(l) = &link {
        if !is_safe_url(l) {
            f.error(
                "link",
                format!("`link` must be an http(s) URL or a path on the site, found `{l}`"),
            );
        }
    }
    let newsletters = f.texts("newsletters", "a list of newsletter ids");
    if let Some(n) = &newsletters {
        check_ids(f, n, &ctx.newsletters, "newsletter");
    }
    let draft = f.bool("draft").unwrap_or(false);
    let expires = read_date(f, "expires", ctx.timezone);
    let tags = f.texts("tags", "a list like [a, b]").unwrap_or_default();
    let extra = f
        .node()
        .get("extra")
        .map_or(serde_json::Value::Null, |v| v.to_json());
    Some(Item {
        id: String::new(),
        source: Default::default(),
        title: title?,
        date: date?,
        regions: regions?,
        topics: topics?,
        priority,
        summary,
        authors,
        image,
        link,
        newsletters: newsletters.map(|n| n.iter().map(|(s, _)| s.to_string()).collect()),
        draft,
        expires,
        tags: tags.iter().map(|(s, _)| s.to_string()).collect(),
        extra,
        body: String::new(),
        body_line: 0,
        warnings: Vec::new(),
    })
}

fn title(f: &mut Fields) -> Option<String> {
    if !f.has("title") {
        f.missing("missing `title`").width = 3;
        return None;
    }
    let t = f.text("title", "the headline as text")?;
    if t.trim().is_empty() {
        f.error("title", "`title` is empty");
        return None;
    }
    if let Err(m) = check_header_value(t) {
        let block = f
            .pos("title")
            .is_some_and(|p| starts_block(f.source().text, p));
        let d = f.error(
            "title",
            format!("`title` {m} (titles go into the subject line)"),
        );
        if block {
            d.help = Some(
                "a `|` or `>` block keeps its line breaks (`>` its last one): write the headline on one line, or fold it with `>-`".into(),
            );
        }
        return None;
    }
    Some(t.to_string())
}

fn read_date(f: &mut Fields, key: &'static str, tz: Tz) -> Option<DateTime<Utc>> {
    const EXPECTED: &str = "a date like 2026-11-28T05:30:00-05:00, 2026-11-28 05:30 or 2026-11-28";
    let s = f.text(key, EXPECTED)?;
    match parse_when(s, tz) {
        Ok(t) => Some(t),
        Err(m) => {
            let d = f.error(key, m);
            d.help = suggest_iso(s).map(|iso| format!("write it as {key}: {iso}"));
            None
        }
    }
}

/// Whether a block scalar's `|` or `>` is written at `p`.
fn starts_block(text: &str, p: yaml::Pos) -> bool {
    text.lines()
        .nth(p.line.saturating_sub(1))
        .and_then(|l| l.chars().nth(p.col.saturating_sub(1)))
        .is_some_and(|c| c == '|' || c == '>')
}

/// `region: x` or `regions: [x, y]` (and the same for topics), checked
/// against the ids config declares.
fn terms(
    f: &mut Fields,
    (one, many): (&'static str, &'static str),
    allowed: &[&str],
) -> Option<Vec<String>> {
    let what = one;
    let ids = match (f.has(one), f.has(many)) {
        (true, true) => {
            f.error(many, format!("use either `{one}` or `{many}`, not both"));
            return None;
        }
        (false, false) => {
            f.missing(format!(
                "missing `{one}`; expected one of: {}",
                allowed.join(", ")
            ))
            .width = 3;
            return None;
        }
        (true, false) => {
            if let Some(Value::Seq(items)) = f.node().get(one).map(|n| &n.value) {
                let list: Vec<&str> = items.iter().filter_map(|n| n.as_text()).collect();
                let d = f.error(one, format!("`{one}` must be a single id; found a list"));
                d.help = Some(format!(
                    "use `{many}:` for several: {many}: [{}]",
                    list.join(", ")
                ));
                return None;
            }
            let (id, node) = f.text_node(one, "a single id")?;
            vec![(id, node)]
        }
        (false, true) => {
            let ids = f.texts(many, "a list of ids like [a, b]")?;
            if ids.is_empty() {
                f.error(many, format!("`{many}` is empty; list at least one"));
                return None;
            }
            ids
        }
    };
    check_ids(f, &ids, allowed, what).then(|| ids.iter().map(|(s, _)| s.to_string()).collect())
}

fn check_ids(f: &mut Fields, ids: &[(&str, &Node)], allowed: &[&str], what: &str) -> bool {
    let mut ok = true;
    for (id, node) in ids {
        if !allowed.contains(id) {
            ok = false;
            let suggestion = did_you_mean(id, allowed.iter().copied());
            let d = f.error_at(
                Some(node.pos),
                format!(
                    "unknown {what} `{id}`; expected one of: {}",
                    allowed.join(", ")
                ),
            );
            d.help = match (suggestion, node.alias_note()) {
                (Some(s), Some(n)) => Some(format!("did you mean `{s}`? ({n})")),
                (Some(s), None) => Some(format!("did you mean `{s}`?")),
                (None, n) => n,
            };
        }
    }
    ok
}

fn authors(f: &mut Fields) -> Vec<String> {
    match (f.has("author"), f.has("authors")) {
        (true, true) => {
            f.error("authors", "use either `author` or `authors`, not both");
            Vec::new()
        }
        (true, false) => {
            if let Some(Value::Seq(items)) = f.node().get("author").map(|n| &n.value) {
                let list: Vec<&str> = items.iter().filter_map(|n| n.as_text()).collect();
                let d = f.error("author", "`author` must be a name; found a list");
                d.help = Some(format!(
                    "use `authors:` for several: authors: [{}]",
                    list.join(", ")
                ));
                return Vec::new();
            }
            f.text("author", "a name")
                .map(str::to_string)
                .into_iter()
                .collect()
        }
        (false, true) => f
            .texts("authors", "a list of names")
            .map(|v| v.iter().map(|(s, _)| s.to_string()).collect())
            .unwrap_or_default(),
        _ => Vec::new(),
    }
}

/// An item that expires at or before its own date can never be in an
/// edition: editions carry items dated before their slot and not expired at it.
fn expiry_warning(src: &Source, root: &Node, item: &Item, tz: Tz) -> Vec<Diagnostic> {
    let Some(expires) = item.expires.filter(|e| *e <= item.date) else {
        return Vec::new();
    };
    let local = |t: DateTime<Utc>| t.with_timezone(&tz).format("%Y-%m-%d %H:%M").to_string();
    let pos = root.entry("expires").map(|(k, v)| Node::entry_pos(k, v));
    let d = src
        .error(
            pos,
            format!(
                "`expires` ({}) is not after `date` ({}): the item can never appear in an edition",
                local(expires),
                local(item.date)
            ),
        )
        .into_warning()
        .help("an item is carried by editions after its date and before it expires; fix one of the two");
    vec![d]
}

/// http(s) URLs, site-relative paths, and relative paths; never `javascript:`
/// or other schemes that could run something in a reader's client.
pub fn is_safe_url(url: &str) -> bool {
    let u = url.trim();
    if u.is_empty() || u.chars().any(|c| c.is_control() || c.is_whitespace()) {
        return false;
    }
    let lower = u.to_ascii_lowercase();
    match lower.find(':') {
        Some(i) if !lower[..i].contains('/') => {
            lower.starts_with("http://")
                || lower.starts_with("https://")
                || lower.starts_with("mailto:")
        }
        _ => true,
    }
}

fn image(f: &mut Fields) -> Option<Image> {
    let node = f.node().get("image")?;
    if !matches!(node.value, Value::Map(_)) {
        f.allow(&["image"]);
        f.error("image", "`image` must be a mapping like { src: images/x.jpg, alt: \"what it shows\", credit: \"Photo: Staff\" }");
        return None;
    }
    let mut m = f.fields("image", false)?;
    let src = m.text("src", "a URL or a path");
    let alt = m.text("alt", "text");
    let credit = m.text("credit", "text").filter(|c| !c.trim().is_empty());
    let before = m.diags.len();
    match src {
        None if !m.has("src") => {
            f.error("image", "`image` needs `src`");
        }
        Some(s) if !is_safe_url(s) => {
            m.error(
                "src",
                format!("`image.src` must be an http(s) URL or a path, found `{s}`"),
            );
        }
        _ => {}
    }
    if alt.is_none_or(|a| a.trim().is_empty()) && m.diags.len() == before {
        let d = f.error(
            "image",
            "`image` needs `alt` text: readers with images off or a screen reader get only that",
        );
        d.help = Some("add alt: \"what the picture shows\"".into());
    }
    let image = Image {
        src: src.unwrap_or_default().to_string(),
        alt: alt.unwrap_or_default().to_string(),
        credit: credit.map(str::to_string),
    };
    let ok = image_ok(&image) && m.diags.is_empty();
    f.absorb(m);
    ok.then_some(image)
}

fn image_ok(i: &Image) -> bool {
    !i.src.is_empty() && is_safe_url(&i.src) && !i.alt.trim().is_empty()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn terms(ids: &[&str]) -> Vec<Term> {
        ids.iter()
            .map(|i| Term {
                id: i.to_string(),
                name: i.to_uppercase(),
            })
            .collect()
    }

    fn parse(text: &str) -> Result<Item, Vec<Diagnostic>> {
        let regions = terms(&["national", "world"]);
        let topics = terms(&["trade", "tech"]);
        let lead_ins = vec!["Why it matters:".to_string()];
        let ctx = ParseCtx {
            timezone: chrono_tz::America::New_York,
            regions: &regions,
            topics: &topics,
            newsletters: vec!["am"],
            lead_ins: &lead_ins,
            base_url: "https://news.example.com",
        };
        parse_item("world/x", Path::new("content/world/x.md"), text, &ctx)
    }

    fn headlines(r: Result<Item, Vec<Diagnostic>>) -> Vec<String> {
        r.unwrap_err().iter().map(|d| d.headline()).collect()
    }

    #[test]
    fn parses_a_full_item() {
        let it = parse("---\ntitle: Talks\ndate: 2026-11-28 05:30\nregions: [world, national]\ntopic: trade\npriority: 1\nauthors: [A, B]\nimage: { src: images/a.jpg, alt: Delegates }\nextra: { desk: world }\n---\nBody\n").unwrap();
        assert_eq!(it.title, "Talks");
        assert_eq!(it.date.to_rfc3339(), "2026-11-28T10:30:00+00:00");
        assert_eq!(it.regions, vec!["world", "national"]);
        assert_eq!(it.topics, vec!["trade"]);
        assert_eq!(it.priority, 1);
        assert_eq!(it.authors, vec!["A", "B"]);
        assert_eq!(it.image.unwrap().alt, "Delegates");
        assert_eq!(it.extra["desk"], "world");
        assert_eq!(it.body, "Body\n");
        assert_eq!(it.body_line, 11);
    }

    #[test]
    fn reports_every_problem_with_file_positions() {
        let h = headlines(parse(
            "---\ntitel: Talks\ndate: 2026-02-30\nregion: wrld\ntopic: trade\nimage: { src: a.jpg }\n---\n",
        ));
        assert_eq!(h[0], "content/world/x.md:2:1: error: unknown key `titel`");
        assert!(
            h.iter()
                .any(|m| m == "content/world/x.md:1:1: error: missing `title`"),
            "{h:#?}"
        );
        assert!(h.iter().any(|m| m == "content/world/x.md:3:7: error: impossible date `2026-02-30`: February has no day 30"), "{h:#?}");
        assert!(h.iter().any(|m| m == "content/world/x.md:4:9: error: unknown region `wrld`; expected one of: national, world"), "{h:#?}");
        assert!(
            h.iter()
                .any(|m| m.starts_with("content/world/x.md:6:8: error: `image` needs `alt` text")),
            "{h:#?}"
        );
    }

    #[test]
    fn wrong_types_and_yaml_errors_point_into_the_file() {
        let h = headlines(parse(
            "---\ntitle: T\ndate: 2026-11-28\nregion: world\ntopic: trade\npriority: high\n---\n",
        ));
        assert_eq!(h.len(), 1);
        assert!(
            h[0] == "content/world/x.md:6:11: error: `priority` must be a whole number (1 is the lead); found string \"high\"",
            "{h:#?}"
        );
        let h = headlines(parse("---\ntitle: T\ndate: [2026\n---\n"));
        assert!(
            h[0].starts_with("content/world/x.md:4:1: error: invalid YAML in front-matter")
                || h[0].starts_with("content/world/x.md:3:"),
            "{h:#?}"
        );
    }

    #[test]
    fn flow_style_front_matter_is_accepted() {
        let it = parse("---\n{title: Flow, date: 2026-11-28, region: world, topic: trade}\n---\n")
            .unwrap();
        assert_eq!(it.title, "Flow");
        let h = headlines(parse(
            "---\n{titel: Flow, date: 2026-11-28, region: world, topic: trade}\n---\n",
        ));
        assert!(
            h.iter().any(|m| m.contains("unknown key `titel`")),
            "{h:#?}"
        );
    }

    #[test]
    fn header_injection_in_title_is_an_error() {
        let h = headlines(parse(
            "---\ntitle: \"Hi\\r\\nBcc: x@example.com\"\ndate: 2026-11-28\nregion: world\ntopic: trade\n---\n",
        ));
        assert!(h[0].contains("would inject a mail header"), "{h:#?}");
    }

    #[test]
    fn unsafe_links_are_rejected() {
        assert!(is_safe_url("https://x.example/a"));
        assert!(is_safe_url("/reports/a"));
        assert!(is_safe_url("images/a.jpg"));
        assert!(!is_safe_url("javascript:alert(1)"));
        assert!(!is_safe_url("JaVaScRiPt:alert(1)"));
        assert!(!is_safe_url("data:text/html,x"));
    }

    #[test]
    fn anchors_block_scalars_and_comments_keep_file_positions() {
        let it = parse("---\n# desk: world\ntitle: 1984 # a number, read as text\ndate: &d 2026-11-28\nexpires: 2026-12-01\nregion: world\ntopic: trade\nsummary: >-\n  Folded\n  summary.\nextra: { published: *d }\n---\nBody\n").unwrap();
        assert_eq!(it.title, "1984");
        assert_eq!(it.summary, "Folded summary.");
        assert_eq!(it.extra["published"], "2026-11-28");
        assert!(it.warnings.is_empty());
        let h = headlines(parse(
            "---\ntitle: T # c\ndate: 2026-11-28\nregion: &r wrld\ntopics: [trade]\nnewsletters: [*r]\n---\n",
        ));
        assert_eq!(
            h,
            [
                "content/world/x.md:4:12: error: unknown region `wrld`; expected one of: national, world",
                "content/world/x.md:6:15: error: unknown newsletter `wrld`; expected one of: am",
            ]
        );
    }

    #[test]
    fn an_item_that_expires_before_its_date_loads_with_a_warning() {
        let it = parse("---\ntitle: T\ndate: 2026-11-28 06:00\nexpires: 2026-11-28 06:00\nregion: world\ntopic: trade\n---\n").unwrap();
        let w: Vec<String> = it.warnings.iter().map(|d| d.headline()).collect();
        assert_eq!(
            w,
            [
                "content/world/x.md:4:10: warning: `expires` (2026-11-28 06:00) is not after `date` (2026-11-28 06:00): the item can never appear in an edition"
            ]
        );
    }

    #[test]
    fn prescan_reads_plain_dates_only() {
        let tz = chrono_tz::America::New_York;
        assert!(prescan_date("---\ntitle: a\ndate: 2026-11-28 05:30 # c\n---\n", tz).is_some());
        assert!(prescan_date("---\ndate: \"2026-11-28\"\n---\n", tz).is_some());
        assert!(prescan_date("---\n{date: 2026-11-28}\n---\n", tz).is_none());
    }
}
