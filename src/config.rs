//! The newsroom's `config.yaml`: typed, loaded and validated once. Every
//! problem is reported as a diagnostic pointing into the file; nothing
//! downstream re-checks what is validated here.

use std::path::{Path, PathBuf};

use chrono::Duration;
use chrono_tz::Tz;
use indexmap::IndexMap;
use serde::{Deserialize, Serialize};

use crate::diag::{Diagnostic, Diagnostics, did_you_mean};
use crate::mail::message::{DkimAlgorithm, DkimSettings};
use crate::schedule::Schedule;
use crate::time::parse_duration;
use crate::yaml::{self, Pos};

/// The lead-ins a newsroom gets unless it configures its own.
pub const DEFAULT_LEAD_INS: &[&str] = &[
    "Why it matters:",
    "The big picture:",
    "The bottom line:",
    "Between the lines:",
    "Yes, but:",
    "By the numbers:",
    "Driving the news:",
    "Go deeper:",
    "What to watch:",
    "What's next:",
];

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    site: RawSite,
    regions: Vec<Term>,
    topics: Vec<Term>,
    newsletters: IndexMap<String, RawNewsletter>,
    #[serde(default)]
    markdown: MarkdownConfig,
    #[serde(default)]
    paths: RawPaths,
    /// The send ledger (SQLite).
    state: Option<PathBuf>,
    #[serde(default)]
    delivery: RawDelivery,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDelivery {
    #[serde(default)]
    transport: TransportKind,
    outbox: Option<PathBuf>,
    suppressions: Option<PathBuf>,
    unsubscribe: Option<RawUnsubscribe>,
    feedback_id: Option<String>,
    dkim: Option<RawDkim>,
    smtp: Option<RawSmtp>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawUnsubscribe {
    url: String,
    mailto: Option<String>,
    #[serde(default = "default_secret_env")]
    secret_env: String,
}

fn default_secret_env() -> String {
    "BRIEFING_UNSUBSCRIBE_SECRET".into()
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDkim {
    domain: String,
    selector: String,
    key_file: PathBuf,
    algorithm: DkimAlgorithm,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSmtp {
    url: String,
    username: Option<String>,
    password_env: Option<String>,
    #[serde(default = "default_connections")]
    connections: usize,
    rate: Option<f64>,
    #[serde(default = "default_retries")]
    retries: u32,
    timeout: Option<String>,
    #[serde(default)]
    allow_insecure: bool,
}

fn default_connections() -> usize {
    4
}
fn default_retries() -> u32 {
    3
}

/// Where messages go.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TransportKind {
    /// `.eml` files in a folder: the default, needs no server.
    #[default]
    Outbox,
    Smtp,
}

/// How and where editions are delivered.
#[derive(Debug, Clone)]
pub struct Delivery {
    pub transport: TransportKind,
    /// Root of the outbox; messages land in `<outbox>/<newsletter>/<slot>/`.
    pub outbox: PathBuf,
    pub suppressions: Option<PathBuf>,
    pub unsubscribe: Unsubscribe,
    /// Sender id for Gmail's `Feedback-ID` header.
    pub feedback_id: Option<String>,
    pub dkim: Option<DkimSettings>,
    pub smtp: Option<Smtp>,
}

#[derive(Debug, Clone)]
pub struct Unsubscribe {
    pub url: String,
    pub mailto: Option<String>,
    /// Name of the environment variable holding the HMAC secret.
    pub secret_env: String,
}

#[derive(Debug, Clone)]
pub struct Smtp {
    pub url: String,
    pub username: Option<String>,
    pub password_env: Option<String>,
    pub connections: usize,
    pub rate: Option<f64>,
    pub retries: u32,
    pub timeout: Duration,
    pub allow_insecure: bool,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSite {
    name: String,
    base_url: String,
    timezone: String,
    #[serde(default = "default_language")]
    language: String,
}

fn default_language() -> String {
    "en".into()
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPaths {
    content: Option<PathBuf>,
    templates: Option<PathBuf>,
}

/// A region or a topic: an id used in front-matter and a display name.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Term {
    pub id: String,
    pub name: String,
}

/// How item bodies are turned into HTML.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MarkdownConfig {
    /// Let raw HTML in items through instead of escaping it.
    #[serde(default)]
    pub allow_html: bool,
    /// Paragraph openers styled as Smart Brevity lead-ins.
    #[serde(default = "default_lead_ins")]
    pub lead_ins: Vec<String>,
}

impl Default for MarkdownConfig {
    fn default() -> Self {
        MarkdownConfig {
            allow_html: false,
            lead_ins: default_lead_ins(),
        }
    }
}

fn default_lead_ins() -> Vec<String> {
    DEFAULT_LEAD_INS.iter().map(|s| s.to_string()).collect()
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawNewsletter {
    name: String,
    from: String,
    reply_to: Option<String>,
    #[serde(default = "default_subject")]
    subject: String,
    preheader: Option<String>,
    schedule: Option<String>,
    timezone: Option<String>,
    regions: Option<Vec<String>>,
    topics: Option<Vec<String>>,
    #[serde(default = "default_group_by")]
    group_by: Vec<GroupBy>,
    lookback: Option<String>,
    #[serde(default = "default_min_items")]
    min_items: usize,
    #[serde(default = "default_template")]
    template: String,
    subscribers: Option<PathBuf>,
    max_delay: Option<String>,
}

fn default_subject() -> String {
    "{{ newsletter.name }}: {{ edition.lead.title }}".into()
}
fn default_group_by() -> Vec<GroupBy> {
    vec![GroupBy::Region, GroupBy::Topic]
}
fn default_min_items() -> usize {
    1
}
fn default_template() -> String {
    "digest".into()
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum GroupBy {
    Region,
    Topic,
}

#[derive(Debug, Clone, Serialize)]
pub struct Site {
    pub name: String,
    pub base_url: String,
    #[serde(serialize_with = "ser_tz")]
    pub timezone: Tz,
    pub language: String,
}

fn ser_tz<S: serde::Serializer>(tz: &Tz, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(tz.name())
}

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
}

/// Default for a newsletter's `max_delay`.
pub const DEFAULT_MAX_DELAY_HOURS: i64 = 2;

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

/// The whole validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    pub site: Site,
    pub regions: Vec<Term>,
    pub topics: Vec<Term>,
    pub newsletters: Vec<Newsletter>,
    pub markdown: MarkdownConfig,
    pub delivery: Delivery,
    /// The send ledger's path, resolved against the newsroom root.
    pub state: PathBuf,
}

impl Config {
    pub fn newsletter(&self, id: &str) -> Option<&Newsletter> {
        self.newsletters.iter().find(|n| n.id == id)
    }
    pub fn region(&self, id: &str) -> Option<&Term> {
        self.regions.iter().find(|t| t.id == id)
    }
    pub fn topic(&self, id: &str) -> Option<&Term> {
        self.topics.iter().find(|t| t.id == id)
    }
    pub fn region_index(&self, id: &str) -> usize {
        self.regions
            .iter()
            .position(|t| t.id == id)
            .unwrap_or(usize::MAX)
    }
    pub fn topic_index(&self, id: &str) -> usize {
        self.topics
            .iter()
            .position(|t| t.id == id)
            .unwrap_or(usize::MAX)
    }
}

/// A newsroom on disk: where it lives and its configuration.
#[derive(Debug, Clone)]
pub struct Newsroom {
    /// The folder holding config.yaml; relative paths resolve against it.
    pub root: PathBuf,
    pub config_path: PathBuf,
    /// The config file's text, kept to point diagnostics into it.
    pub config_text: String,
    pub content_dir: PathBuf,
    pub templates_dir: PathBuf,
    pub config: Config,
}

impl Newsroom {
    /// Reads and validates `config.yaml`. All problems come back at once.
    pub fn load(config_path: &Path) -> Result<Newsroom, Diagnostics> {
        let text = std::fs::read_to_string(config_path).map_err(|e| {
            let mut d = Diagnostics::default();
            d.push(Diagnostic::error(
                config_path,
                format!("cannot read the config file: {e}"),
            ));
            d
        })?;
        let root = config_path
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."))
            .to_path_buf();
        let shown = PathBuf::from(config_path.file_name().unwrap_or(config_path.as_os_str()));
        let (config, paths) = parse_config(&text, &shown, &root)?;
        let content_dir = root.join(paths.content.unwrap_or_else(|| "content".into()));
        let templates_dir = root.join(paths.templates.unwrap_or_else(|| "templates".into()));
        Ok(Newsroom {
            root,
            config_path: config_path.to_path_buf(),
            config_text: text,
            content_dir,
            templates_dir,
            config,
        })
    }

    /// A diagnostic pointing at the key `path` of config.yaml.
    pub fn config_diag(&self, path: &[&str], message: impl Into<String>) -> Diagnostic {
        let shown = PathBuf::from(self.config_path.file_name().unwrap_or_default());
        point(Diagnostic::error(shown, message), &self.config_text, path)
    }
}

fn point(d: Diagnostic, text: &str, path: &[&str]) -> Diagnostic {
    match yaml::locate(text, path) {
        Some(p) => d.at(text, p.line, p.col).span(p.width),
        None => d,
    }
}

fn point_at(d: Diagnostic, text: &str, p: Pos) -> Diagnostic {
    d.at(text, p.line, p.col).span(p.width)
}

/// True for ids safe to use in paths, URLs and header values.
pub fn valid_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 64
        && id
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_')
        && id.starts_with(|c: char| c.is_ascii_alphanumeric())
}

/// Rejects CR, LF and other control characters in values bound for mail headers.
pub fn check_header_value(value: &str) -> Result<(), String> {
    // The Unicode line and paragraph separators are not control characters,
    // but the message composer refuses them in headers all the same (some
    // clients break lines there): refuse them here, where an editor sees it.
    match value
        .chars()
        .find(|c| c.is_control() || matches!(c, '\u{2028}' | '\u{2029}'))
    {
        Some('\r' | '\n' | '\u{2028}' | '\u{2029}') => {
            Err("contains a line break, which would inject a mail header".into())
        }
        Some(c) => Err(format!("contains the control character {c:?}")),
        None => Ok(()),
    }
}

fn parse_tz(name: &str) -> Result<Tz, String> {
    name.parse::<Tz>().map_err(|_| {
        let names = chrono_tz::TZ_VARIANTS.iter().map(|t| t.name());
        match did_you_mean(name, names) {
            Some(s) => format!("unknown time zone `{name}` (did you mean `{s}`?)"),
            None => {
                format!("unknown time zone `{name}`: expected an IANA name like America/New_York")
            }
        }
    })
}

/// Resolves a path from config against the newsroom root, refusing anything
/// that would point outside it (absolute paths, `..`).
pub fn inside(root: &Path, p: &Path) -> Result<PathBuf, String> {
    use std::path::Component;
    let ok = p
        .components()
        .all(|c| matches!(c, Component::Normal(_) | Component::CurDir));
    if !ok || p.as_os_str().is_empty() {
        return Err(format!(
            "`{}` must be a relative path inside the newsroom folder (no `..`, not absolute)",
            p.display()
        ));
    }
    Ok(root.join(p))
}

fn delivery(
    raw: RawDelivery,
    base_url: &str,
    root: &Path,
    text: &str,
    shown: &Path,
    diags: &mut Diagnostics,
) -> Delivery {
    let mut err =
        |path: &[&str], msg: String| diags.push(point(Diagnostic::error(shown, msg), text, path));
    let mut resolve = |key: &'static str, p: &Path| match inside(root, p) {
        Ok(p) => p,
        Err(m) => {
            err(&["delivery", key], m);
            PathBuf::new()
        }
    };
    let outbox = resolve(
        "outbox",
        raw.outbox.as_deref().unwrap_or(Path::new("out/outbox")),
    );
    let suppressions = raw
        .suppressions
        .as_deref()
        .map(|p| resolve("suppressions", p));
    let dkim = raw.dkim.map(|d| DkimSettings {
        key_file: resolve("dkim", &d.key_file),
        domain: d.domain,
        selector: d.selector,
        algorithm: d.algorithm,
    });
    let unsubscribe = match raw.unsubscribe {
        Some(u) => {
            if !u.url.starts_with("https://") && !u.url.starts_with("http://") {
                err(
                    &["delivery", "unsubscribe", "url"],
                    format!("`{}` is not an absolute http(s) URL", u.url),
                );
            }
            for (key, v) in [("url", Some(&u.url)), ("mailto", u.mailto.as_ref())] {
                if let Some(Err(m)) = v.map(|v| check_header_value(v)) {
                    err(&["delivery", "unsubscribe", key], format!("`{key}` {m}"));
                }
            }
            if let Some(m) = &u.mailto {
                if !m.contains('@') || m.contains(['<', '>', ' ']) {
                    err(
                        &["delivery", "unsubscribe", "mailto"],
                        format!(
                            "`mailto` must be a bare address like unsubscribe@news.example.com, found `{m}`"
                        ),
                    );
                }
            }
            Unsubscribe {
                url: u.url,
                mailto: u.mailto,
                secret_env: u.secret_env,
            }
        }
        None => Unsubscribe {
            url: format!("{base_url}/unsubscribe"),
            mailto: None,
            secret_env: default_secret_env(),
        },
    };
    if let Some(f) = &raw.feedback_id {
        if f.is_empty() || f.contains(|c: char| c.is_control() || c == ':' || c.is_whitespace()) {
            err(
                &["delivery", "feedback_id"],
                format!(
                    "`feedback_id` must be a short sender id without spaces or `:`, found `{}`",
                    f.escape_debug()
                ),
            );
        }
    }
    let smtp = raw.smtp.map(|s| {
        let timeout = match s.timeout.as_deref().map(parse_duration) {
            None => Duration::seconds(30),
            Some(Ok(d)) => d,
            Some(Err(m)) => {
                err(&["delivery", "smtp", "timeout"], m);
                Duration::seconds(30)
            }
        };
        if s.connections == 0 {
            err(
                &["delivery", "smtp", "connections"],
                "`connections` must be at least 1".into(),
            );
        }
        if s.rate.is_some_and(|r| r.is_nan() || r <= 0.0) {
            err(
                &["delivery", "smtp", "rate"],
                "`rate` must be a positive number of messages per second".into(),
            );
        }
        Smtp {
            url: s.url,
            username: s.username,
            password_env: s.password_env,
            connections: s.connections.max(1),
            rate: s.rate,
            retries: s.retries,
            timeout,
            allow_insecure: s.allow_insecure,
        }
    });
    if raw.transport == TransportKind::Smtp && smtp.is_none() {
        err(
            &["delivery", "transport"],
            "`transport: smtp` needs a `delivery.smtp` section with at least `url`".into(),
        );
    }
    Delivery {
        transport: raw.transport,
        outbox,
        suppressions,
        unsubscribe,
        feedback_id: raw.feedback_id,
        dkim,
        smtp,
    }
}

fn parse_config(text: &str, shown: &Path, root: &Path) -> Result<(Config, RawPaths), Diagnostics> {
    let mut diags = Diagnostics::default();
    let raw: RawConfig = match serde_yaml_ng::from_str(text) {
        Ok(r) => r,
        Err(e) => {
            diags.push(yaml_error(shown, text, &e));
            return Err(diags);
        }
    };
    let err = |path: &[&str], msg: String| point(Diagnostic::error(shown, msg), text, path);

    let site_tz = match parse_tz(&raw.site.timezone) {
        Ok(tz) => tz,
        Err(m) => {
            diags.push(err(&["site", "timezone"], m));
            Tz::UTC
        }
    };
    let base_url = raw.site.base_url.trim_end_matches('/').to_string();
    if !(base_url.starts_with("https://") || base_url.starts_with("http://"))
        || base_url.contains(char::is_whitespace)
    {
        diags.push(err(
            &["site", "base_url"],
            format!("`{}` is not an absolute http(s) URL", raw.site.base_url),
        ));
    }
    for (kind, terms) in [("regions", &raw.regions), ("topics", &raw.topics)] {
        let mut seen = std::collections::HashSet::new();
        for t in terms {
            if !valid_id(&t.id) {
                let p = yaml::locate(text, &[kind]).map(|p| yaml::narrow(text, p, &t.id));
                let d = Diagnostic::error(
                    shown,
                    format!(
                        "invalid id `{}` in {kind}: use lowercase letters, digits, `-` and `_`",
                        t.id
                    ),
                );
                diags.push(match p {
                    Some(p) => point_at(d, text, p),
                    None => d,
                });
            }
            if !seen.insert(t.id.as_str()) {
                diags.push(err(&[kind], format!("{kind} lists `{}` twice", t.id)));
            }
        }
    }
    if raw.newsletters.is_empty() {
        diags.push(err(
            &["newsletters"],
            "no newsletters are configured".into(),
        ));
    }

    let mut newsletters = Vec::new();
    for (id, n) in raw.newsletters {
        let at = |key: &'static str| -> [&str; 3] { ["newsletters", id.as_str(), key] };
        macro_rules! bad {
            ($path:expr, $msg:expr) => {
                diags.push(err(&$path, $msg))
            };
        }
        if !valid_id(&id) {
            bad!(
                ["newsletters", id.as_str()],
                format!(
                    "invalid newsletter id `{id}`: use lowercase letters, digits, `-` and `_` (it names folders and mail headers)"
                )
            );
        }
        for (key, v) in [
            ("name", Some(&n.name)),
            ("from", Some(&n.from)),
            ("reply_to", n.reply_to.as_ref()),
        ] {
            if let Some(v) = v {
                if let Err(m) = check_header_value(v) {
                    bad!(at(key), format!("`{key}` {m}"));
                }
            }
        }
        for (key, v) in [("from", Some(&n.from)), ("reply_to", n.reply_to.as_ref())] {
            if let Some(v) = v {
                if !v.contains('@') {
                    bad!(
                        at(key),
                        format!(
                            "`{key}` must be an address like \"Name <name@example.com>\", found `{v}`"
                        )
                    );
                }
            }
        }
        let timezone = match &n.timezone {
            None => site_tz,
            Some(name) => match parse_tz(name) {
                Ok(tz) => tz,
                Err(m) => {
                    bad!(at("timezone"), m);
                    site_tz
                }
            },
        };
        let schedule = n.schedule.as_deref().and_then(|s| match Schedule::parse(s) {
            Ok(s) => Some(s),
            Err(e) => {
                let mut d = Diagnostic::error(shown, format!("invalid schedule: {}", e.message));
                if let Some(p) = yaml::locate(text, &at("schedule")) {
                    // Point at the offending field inside the expression; a
                    // quoted value starts one column later.
                    let quote = usize::from(text.lines().nth(p.line - 1).and_then(|l| l.chars().nth(p.col - 1)).is_some_and(|c| c == '"' || c == '\''));
                    d = d.at(text, p.line, p.col + quote + e.column.saturating_sub(1));
                }
                diags.push(d.help("5 fields: minute hour day-of-month month day-of-week, e.g. \"0 6 * * MON-FRI\""));
                None
            }
        });
        for (key, list, terms) in [
            ("regions", &n.regions, &raw.regions),
            ("topics", &n.topics, &raw.topics),
        ] {
            for v in list.iter().flatten() {
                if !terms.iter().any(|t| &t.id == v) {
                    let allowed: Vec<&str> = terms.iter().map(|t| t.id.as_str()).collect();
                    let mut d = Diagnostic::error(
                        shown,
                        format!(
                            "unknown {} `{v}`; expected one of: {}",
                            &key[..key.len() - 1],
                            allowed.join(", ")
                        ),
                    );
                    if let Some(p) = yaml::locate(text, &at(key)) {
                        d = point_at(d, text, yaml::narrow(text, p, v));
                    }
                    if let Some(s) = did_you_mean(v, allowed.iter().copied()) {
                        d = d.help(format!("did you mean `{s}`?"));
                    }
                    diags.push(d);
                }
            }
        }
        let mut gb = n.group_by.clone();
        gb.dedup();
        if gb.len() != n.group_by.len() {
            bad!(
                at("group_by"),
                "`group_by` names the same grouping twice".into()
            );
        }
        let lookback = n.lookback.as_deref().and_then(|s| match parse_duration(s) {
            Ok(d) if d > Duration::zero() => Some(d),
            Ok(_) => {
                bad!(at("lookback"), "`lookback` must be longer than zero".into());
                None
            }
            Err(m) => {
                bad!(at("lookback"), m);
                None
            }
        });
        if !n
            .template
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
            || n.template.is_empty()
        {
            bad!(
                at("template"),
                format!(
                    "invalid template name `{}`: a file name without extension, like `digest`",
                    n.template
                )
            );
        }
        let subscribers = n
            .subscribers
            .as_deref()
            .and_then(|p| match inside(root, p) {
                Ok(p) => Some(p),
                Err(m) => {
                    bad!(at("subscribers"), m);
                    None
                }
            });
        let max_delay = match n.max_delay.as_deref().map(parse_duration) {
            None => Duration::hours(DEFAULT_MAX_DELAY_HOURS),
            Some(Ok(d)) => d,
            Some(Err(m)) => {
                bad!(at("max_delay"), m);
                Duration::hours(DEFAULT_MAX_DELAY_HOURS)
            }
        };
        newsletters.push(Newsletter {
            id: id.clone(),
            name: n.name,
            from: n.from,
            reply_to: n.reply_to,
            subject: n.subject,
            preheader: n.preheader,
            schedule,
            timezone,
            regions: n.regions,
            topics: n.topics,
            group_by: n.group_by,
            lookback,
            min_items: n.min_items,
            template: n.template,
            subscribers,
            max_delay,
        });
    }
    for (i, l) in raw.markdown.lead_ins.iter().enumerate() {
        if l.trim().is_empty() {
            diags.push(err(
                &["markdown", "lead_ins"],
                format!("lead-in #{} is empty", i + 1),
            ));
        }
    }
    let delivery = delivery(raw.delivery, &base_url, root, text, shown, &mut diags);
    let state = match inside(
        root,
        raw.state
            .as_deref()
            .unwrap_or(Path::new(".briefing/ledger.sqlite")),
    ) {
        Ok(p) => p,
        Err(m) => {
            diags.push(err(&["state"], m));
            PathBuf::new()
        }
    };
    if diags.errors() > 0 {
        return Err(diags);
    }
    Ok((
        Config {
            site: Site {
                name: raw.site.name,
                base_url,
                timezone: site_tz,
                language: raw.site.language,
            },
            regions: raw.regions,
            topics: raw.topics,
            newsletters,
            markdown: raw.markdown,
            delivery,
            state,
        },
        raw.paths,
    ))
}

/// A serde_yaml_ng error as a diagnostic, with "did you mean" for unknown keys.
pub fn yaml_error(shown: &Path, text: &str, e: &serde_yaml_ng::Error) -> Diagnostic {
    yaml_error_at(shown, text, e, 0)
}

/// Same, for YAML that starts `line_offset` lines into `text` (front-matter).
pub fn yaml_error_at(
    shown: &Path,
    text: &str,
    e: &serde_yaml_ng::Error,
    line_offset: usize,
) -> Diagnostic {
    let full = e.to_string();
    let (problem, hint) = yaml::explain(&full, line_offset);
    let msg = problem.as_str();
    let mut d = Diagnostic::error(shown, msg.to_string());
    d.help = hint;
    if let Some(p) = yaml::error_pos(e) {
        d = d.at(text, p.line + line_offset, p.col);
    }
    if let Some((field, expected)) = yaml::unknown_field(msg) {
        d.message = format!("unknown key `{field}`");
        if let Some(s) = did_you_mean(&field, expected.iter().map(String::as_str)) {
            d = d.help(format!(
                "did you mean `{s}`? (allowed here: {})",
                expected.join(", ")
            ));
        } else {
            d = d.help(format!("allowed here: {}", expected.join(", ")));
        }
        d = d.span(field.chars().count());
    }
    d
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = "site:\n  name: T\n  base_url: https://news.example.com/\n  timezone: America/New_York\nregions:\n  - { id: world, name: World }\ntopics:\n  - { id: trade, name: Trade }\nnewsletters:\n  am:\n    name: AM\n    from: \"AM <am@news.example.com>\"\n    schedule: \"0 6 * * MON-FRI\"\n    lookback: 36h\n";

    fn parse(t: &str) -> Result<Config, Diagnostics> {
        parse_config(t, Path::new("config.yaml"), Path::new(".")).map(|(c, _)| c)
    }

    #[test]
    fn loads_a_good_config_with_defaults() {
        let c = parse(GOOD).unwrap();
        assert_eq!(c.site.base_url, "https://news.example.com");
        let am = c.newsletter("am").unwrap();
        assert_eq!(am.lookback, Some(Duration::hours(36)));
        assert_eq!(am.group_by, vec![GroupBy::Region, GroupBy::Topic]);
        assert_eq!(am.template, "digest");
        assert_eq!(am.min_items, 1);
        assert_eq!(am.timezone, chrono_tz::America::New_York);
    }

    #[test]
    fn unknown_keys_get_a_suggestion_and_position() {
        let bad = GOOD.replace("    lookback: 36h", "    lokback: 36h");
        let d = parse(&bad).unwrap_err();
        let d = &d.0[0];
        assert_eq!(d.message, "unknown key `lokback`");
        assert_eq!((d.line, d.col), (14, 5));
        assert!(
            d.help
                .as_deref()
                .unwrap()
                .contains("did you mean `lookback`")
        );
    }

    #[test]
    fn reports_every_semantic_problem_at_its_place() {
        let bad = GOOD
            .replace("America/New_York", "America/New_Yrok")
            .replace(
                "    lookback: 36h",
                "    lookback: 36\n    regions: [world, wrld]\n    template: ../etc",
            );
        let ds = parse(&bad).unwrap_err();
        let msgs: Vec<String> = ds.iter().map(|d| d.headline()).collect();
        assert!(msgs.iter().any(|m| m.starts_with("config.yaml:4:13: error: unknown time zone `America/New_Yrok` (did you mean `America/New_York`?)")), "{msgs:#?}");
        assert!(
            msgs.iter()
                .any(|m| m.starts_with("config.yaml:14:15: error: invalid duration `36`")),
            "{msgs:#?}"
        );
        assert!(
            msgs.iter().any(|m| m.starts_with(
                "config.yaml:15:22: error: unknown region `wrld`; expected one of: world"
            )),
            "{msgs:#?}"
        );
        assert!(
            msgs.iter()
                .any(|m| m.contains("invalid template name `../etc`")),
            "{msgs:#?}"
        );
    }

    #[test]
    fn header_values_with_line_breaks_are_rejected() {
        let bad = GOOD.replace("name: AM", "name: \"AM\\r\\nBcc: victim@example.com\"");
        let ds = parse(&bad).unwrap_err();
        assert!(
            ds.iter()
                .any(|d| d.message.contains("would inject a mail header"))
        );
        for sep in ["\u{2028}", "\u{2029}"] {
            assert!(
                check_header_value(&format!("AM{sep}Bcc: victim@example.com"))
                    .unwrap_err()
                    .contains("line break"),
                "{sep:?}"
            );
        }
        assert!(check_header_value("Morning Brief · Café").is_ok());
    }
}
