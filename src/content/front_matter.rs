//! Front-matter: the typed fields of an item and their validation. Each field
//! is read on its own so that one run reports every problem of an item, each
//! at the line and column of the offending value in the file.

use std::path::Path;

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use serde::de::DeserializeOwned;
use serde_yaml_ng::{Mapping, Value};

use super::split::{SplitError, split};
use super::{Image, Item};
use crate::config::{Term, check_header_value, yaml_error_at};
use crate::diag::{Diagnostic, did_you_mean};
use crate::time::parse_when;
use crate::yaml::{self, Pos};

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

struct Fields<'a> {
    path: &'a Path,
    text: &'a str,
    yaml: &'a str,
    offset: usize,
    map: Mapping,
    diags: Vec<Diagnostic>,
}

impl Fields<'_> {
    /// Position of `key`'s value in the file.
    fn pos(&self, path: &[&str]) -> Option<Pos> {
        yaml::locate(self.yaml, path).map(|p| Pos::new(p.line + self.offset, p.col, p.width))
    }

    fn error(&mut self, path: &[&str], message: impl Into<String>) -> &mut Diagnostic {
        let mut d = Diagnostic::error(self.path, message);
        if let Some(p) = self.pos(path) {
            d = d.at(self.text, p.line, p.col).span(p.width);
        }
        self.diags.push(d);
        self.diags.last_mut().expect("just pushed")
    }

    /// An element inside a list value, e.g. one region of `regions: [a, b]`.
    fn error_in(
        &mut self,
        key: &str,
        element: &str,
        message: impl Into<String>,
    ) -> &mut Diagnostic {
        let mut d = Diagnostic::error(self.path, message);
        if let Some(p) = yaml::locate(self.yaml, &[key]) {
            let p = yaml::narrow(self.yaml, p, element);
            d = d.at(self.text, p.line + self.offset, p.col).span(p.width);
        }
        self.diags.push(d);
        self.diags.last_mut().expect("just pushed")
    }

    fn get<T: DeserializeOwned>(&mut self, key: &str, expected: &str) -> Option<T> {
        let v = self.map.get(key)?.clone();
        if v.is_null() {
            self.error(&[key], format!("`{key}` is empty; expected {expected}"));
            return None;
        }
        match serde_yaml_ng::from_value::<T>(v) {
            Ok(t) => Some(t),
            Err(e) => {
                let msg = e.to_string();
                let msg = yaml::strip_location(&msg);
                // "invalid type: string \"high\", expected i64" -> "found string \"high\""
                let found = msg
                    .strip_prefix("invalid type: ")
                    .and_then(|m| m.split(", expected").next())
                    .map(|f| format!("found {f}"))
                    .unwrap_or_else(|| msg.to_string());
                self.error(&[key], format!("`{key}` must be {expected}; {found}"));
                None
            }
        }
    }

    /// A key that may be written singular (`region: x`) or plural (`regions: [x, y]`).
    fn one_or_many(&mut self, one: &str, many: &str) -> Option<Vec<String>> {
        match (self.map.contains_key(one), self.map.contains_key(many)) {
            (true, true) => {
                self.error(&[many], format!("use either `{one}` or `{many}`, not both"));
                None
            }
            (true, false) => self.get::<String>(one, "a single id").map(|s| vec![s]),
            (false, true) => {
                let v = self.get::<Vec<String>>(many, "a list of ids like [a, b]")?;
                if v.is_empty() {
                    self.error(&[many], format!("`{many}` is empty; list at least one"));
                    return None;
                }
                Some(v)
            }
            (false, false) => None,
        }
    }

    fn date(&mut self, key: &str, tz: Tz) -> Option<DateTime<Utc>> {
        let v = self.map.get(key)?.clone();
        let s = match v {
            Value::String(s) => s,
            Value::Number(n) => n.to_string(),
            _ => {
                self.error(&[key], format!("`{key}` must be a date like 2026-11-28T05:30:00-05:00, 2026-11-28 05:30 or 2026-11-28"));
                return None;
            }
        };
        match parse_when(&s, tz) {
            Ok(t) => Some(t),
            Err(m) => {
                self.error(&[key], m);
                None
            }
        }
    }

    fn check_ids(&mut self, key: &str, ids: &[String], allowed: &[&str], what: &str) -> bool {
        let mut ok = true;
        for id in ids {
            if !allowed.contains(&id.as_str()) {
                ok = false;
                let suggestion = did_you_mean(id, allowed.iter().copied());
                let d = self.error_in(
                    key,
                    id,
                    format!(
                        "unknown {what} `{id}`; expected one of: {}",
                        allowed.join(", ")
                    ),
                );
                if let Some(s) = suggestion {
                    d.help = Some(format!("did you mean `{s}`?"));
                }
            }
        }
        ok
    }
}

/// Parses and validates one item. `path` is how the file is shown in
/// diagnostics; `id` its id. Returns every problem found.
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
    let offset = s.yaml_line - 1;
    let map = match serde_yaml_ng::from_str::<Value>(s.yaml) {
        Ok(Value::Mapping(m)) => m,
        Ok(Value::Null) => Mapping::new(),
        Ok(_) => {
            return Err(vec![
                Diagnostic::error(
                    path,
                    "front-matter must be a mapping of keys to values (title: …, date: …)",
                )
                .at(text, s.yaml_line, 1),
            ]);
        }
        Err(e) => {
            let mut d = yaml_error_at(path, text, &e, offset);
            d.message = format!("invalid YAML in front-matter: {}", d.message);
            return Err(vec![d]);
        }
    };
    let mut f = Fields {
        path,
        text,
        yaml: s.yaml,
        offset,
        map,
        diags: Vec::new(),
    };

    for (key, pos) in yaml::top_level_keys(s.yaml) {
        if !KEYS.contains(&key.as_str()) {
            let mut d = Diagnostic::error(path, format!("unknown key `{key}`"))
                .at(text, pos.line + offset, pos.col)
                .span(pos.width);
            d = match did_you_mean(&key, KEYS.iter().copied()) {
                Some(s) => d.help(format!("did you mean `{s}`?")),
                None => d.help(format!("allowed keys: {}", KEYS.join(", "))),
            };
            f.diags.push(d);
        }
    }
    // Keys hidden from the line scanner (flow style, quoted oddly) still count.
    let unknown: Vec<String> = f
        .map
        .keys()
        .filter_map(|k| k.as_str())
        .filter(|k| !KEYS.contains(k))
        .map(str::to_string)
        .collect();
    if !unknown.is_empty() && f.diags.is_empty() {
        f.diags.push(
            Diagnostic::error(path, format!("unknown key `{}`", unknown[0])).at(
                text,
                s.yaml_line,
                1,
            ),
        );
    }

    let title = f.get::<String>("title", "the headline as text");
    if let Some(t) = &title {
        if t.trim().is_empty() {
            f.error(&["title"], "`title` is empty");
        } else if let Err(m) = check_header_value(t) {
            f.error(
                &["title"],
                format!("`title` {m} (titles go into the subject line)"),
            );
        }
    } else if !f.map.contains_key("title") {
        f.diags.push(
            Diagnostic::error(path, "missing `title`")
                .at(text, 1, 1)
                .span(3),
        );
    }
    let date = f.date("date", ctx.timezone);
    if !f.map.contains_key("date") {
        f.diags.push(
            Diagnostic::error(
                path,
                "missing `date`: when the item was published, e.g. 2026-11-28T05:30:00-05:00",
            )
            .at(text, 1, 1)
            .span(3),
        );
    }
    let region_ids: Vec<&str> = ctx.regions.iter().map(|t| t.id.as_str()).collect();
    let topic_ids: Vec<&str> = ctx.topics.iter().map(|t| t.id.as_str()).collect();
    let regions = f.one_or_many("region", "regions");
    if regions.is_none() && !f.map.contains_key("region") && !f.map.contains_key("regions") {
        f.diags.push(
            Diagnostic::error(
                path,
                format!(
                    "missing `region`; expected one of: {}",
                    region_ids.join(", ")
                ),
            )
            .at(text, 1, 1)
            .span(3),
        );
    }
    if let Some(r) = &regions {
        let key = if f.map.contains_key("region") {
            "region"
        } else {
            "regions"
        };
        f.check_ids(key, r, &region_ids, "region");
    }
    let topics = f.one_or_many("topic", "topics");
    if topics.is_none() && !f.map.contains_key("topic") && !f.map.contains_key("topics") {
        f.diags.push(
            Diagnostic::error(
                path,
                format!("missing `topic`; expected one of: {}", topic_ids.join(", ")),
            )
            .at(text, 1, 1)
            .span(3),
        );
    }
    if let Some(t) = &topics {
        let key = if f.map.contains_key("topic") {
            "topic"
        } else {
            "topics"
        };
        f.check_ids(key, t, &topic_ids, "topic");
    }
    let priority = f
        .get::<i64>("priority", "a whole number (1 is the lead)")
        .unwrap_or(5);
    let summary = f
        .get::<String>("summary", "one sentence")
        .unwrap_or_default();
    let authors = match (f.map.contains_key("author"), f.map.contains_key("authors")) {
        (true, true) => {
            f.error(&["authors"], "use either `author` or `authors`, not both");
            Vec::new()
        }
        (true, false) => f.get::<String>("author", "a name").into_iter().collect(),
        (false, true) => f
            .get::<Vec<String>>("authors", "a list of names")
            .unwrap_or_default(),
        _ => Vec::new(),
    };
    let image = image(&mut f);
    let link = f.get::<String>("link", "a URL");
    if let Some(l) = &link {
        if !is_safe_url(l) {
            f.error(
                &["link"],
                format!("`link` must be an http(s) URL or a path on the site, found `{l}`"),
            );
        }
    }
    let newsletters = f.get::<Vec<String>>("newsletters", "a list of newsletter ids");
    if let Some(n) = &newsletters {
        f.check_ids("newsletters", n, &ctx.newsletters, "newsletter");
    }
    let draft = f.get::<bool>("draft", "true or false").unwrap_or(false);
    let expires = f.date("expires", ctx.timezone);
    let tags = f
        .get::<Vec<String>>("tags", "a list like [a, b]")
        .unwrap_or_default();
    let extra = f
        .map
        .get("extra")
        .map(|v| serde_json::to_value(v).unwrap_or(serde_json::Value::Null))
        .unwrap_or(serde_json::Value::Null);

    if !f.diags.is_empty() {
        return Err(f.diags);
    }
    match (title, date, regions, topics) {
        (Some(title), Some(date), Some(regions), Some(topics)) => Ok(Item {
            id: id.to_string(),
            source: path.to_path_buf(),
            title,
            date,
            regions,
            topics,
            priority,
            summary,
            authors,
            image,
            link,
            newsletters,
            draft,
            expires,
            tags,
            extra,
            body: s.body.to_string(),
            body_line: s.body_line,
        }),
        // Every missing field was reported above.
        _ => Err(vec![Diagnostic::error(path, "incomplete front-matter")]),
    }
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
    let v = f.map.get("image")?.clone();
    let Value::Mapping(m) = v else {
        f.error(&["image"], "`image` must be a mapping like { src: images/x.jpg, alt: \"what it shows\", credit: \"Photo: Staff\" }");
        return None;
    };
    let mut ok = true;
    for k in m.keys() {
        let k = k.as_str().unwrap_or("?");
        if !["src", "alt", "credit"].contains(&k) {
            ok = false;
            let d = f.error(&["image", k], format!("unknown key `{k}` in `image`"));
            d.help = Some("allowed: src, alt, credit".into());
        }
    }
    let text = |key: &str| m.get(key).and_then(|v| v.as_str()).map(str::to_string);
    let src = text("src");
    let alt = text("alt");
    match &src {
        None => {
            ok = false;
            f.error(&["image"], "`image` needs `src`");
        }
        Some(s) if !is_safe_url(s) => {
            ok = false;
            f.error(
                &["image", "src"],
                format!("`image.src` must be an http(s) URL or a path, found `{s}`"),
            );
        }
        _ => {}
    }
    if alt.as_deref().is_none_or(|a| a.trim().is_empty()) {
        ok = false;
        let d = f.error(
            &["image"],
            "`image` needs `alt` text: readers with images off or a screen reader get only that",
        );
        d.help = Some("add alt: \"what the picture shows\"".into());
    }
    ok.then(|| Image {
        src: src.unwrap_or_default(),
        alt: alt.unwrap_or_default(),
        credit: text("credit").filter(|c| !c.trim().is_empty()),
    })
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
        let ctx = ParseCtx {
            timezone: chrono_tz::America::New_York,
            regions: &regions,
            topics: &topics,
            newsletters: vec!["am"],
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
    fn prescan_reads_plain_dates_only() {
        let tz = chrono_tz::America::New_York;
        assert!(prescan_date("---\ntitle: a\ndate: 2026-11-28 05:30 # c\n---\n", tz).is_some());
        assert!(prescan_date("---\ndate: \"2026-11-28\"\n---\n", tz).is_some());
        assert!(prescan_date("---\n{date: 2026-11-28}\n---\n", tz).is_none());
    }
}
