//! The newsroom's `config.yaml`: typed, loaded and validated once. Every
//! problem is reported as a diagnostic pointing into the file; nothing
//! downstream re-checks what is validated here. Each section has its own
//! module (site, taxonomy, newsletter, delivery, archive, signup); this one loads the file,
//! reads the small top-level keys and holds the helpers they share.

mod archive;
mod delivery;
mod newsletter;
mod signup;
mod site;
mod taxonomy;
#[cfg(test)]
mod tests;

use std::path::{Path, PathBuf};

use chrono::Duration;
use chrono_tz::Tz;

use crate::diag::{Diagnostic, Diagnostics, did_you_mean};
use crate::ledger::{Location, PgTarget};
use crate::time::{DurationError, format_duration, parse_duration};
use crate::yaml::{self, Fields, Source};

pub use archive::Archive;
pub use delivery::{DeliverySettings, PreferencesPage, TransportKind, Unsubscribe};
pub use newsletter::{
    DEFAULT_COUNT_LABEL, DEFAULT_MAX_DELAY_HOURS, GroupBy, LeadPlacement, Newsletter,
};
pub use signup::Signup;
pub use site::{PostalAddress, Site};
pub use taxonomy::Term;

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

/// Where the send ledger lives unless `ledger:` says otherwise.
const DEFAULT_LEDGER: &str = ".briefing/ledger.sqlite";

/// How item bodies are turned into HTML.
#[derive(Debug, Clone)]
pub struct MarkdownConfig {
    /// Let raw HTML in items through instead of escaping it.
    pub allow_html: bool,
    /// Paragraph openers styled as Smart Brevity lead-ins.
    pub lead_ins: Vec<String>,
}

impl Default for MarkdownConfig {
    fn default() -> Self {
        MarkdownConfig {
            allow_html: false,
            lead_ins: DEFAULT_LEAD_INS.iter().map(|s| s.to_string()).collect(),
        }
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
    pub delivery: DeliverySettings,
    /// The send ledger: a file (its path resolved against the newsroom
    /// root) or a PostgreSQL server.
    pub ledger: Location,
    /// The public web archive of sent editions; `None` without `archive:`.
    pub archive: Option<Archive>,
    /// The sign-up page and its confirmation messages.
    pub signup: Signup,
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
    /// What is wrong with a config that still loads (a deprecated key):
    /// `check` reports these with its own.
    pub warnings: Vec<Diagnostic>,
    /// The parsed file, to point later diagnostics at a key.
    tree: yaml::Node,
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
        Newsroom::from_text(config_path, text)
    }

    /// Validates `text` as the config file at `config_path` (not read).
    pub fn from_text(config_path: &Path, text: String) -> Result<Newsroom, Diagnostics> {
        let root = config_path
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."))
            .to_path_buf();
        let shown = PathBuf::from(config_path.file_name().unwrap_or(config_path.as_os_str()));
        let parsed = parse_config(&text, &shown, &root)?;
        Ok(Newsroom {
            content_dir: parsed.content,
            templates_dir: parsed.templates,
            root,
            config_path: config_path.to_path_buf(),
            config_text: text,
            config: parsed.config,
            warnings: parsed.warnings,
            tree: parsed.tree,
        })
    }

    /// A diagnostic pointing at the key `path` of config.yaml.
    pub fn config_diag(&self, path: &[&str], message: impl Into<String>) -> Diagnostic {
        let shown = PathBuf::from(self.config_path.file_name().unwrap_or_default());
        let src = Source {
            path: &shown,
            text: &self.config_text,
        };
        src.error(self.tree.locate(path), message)
    }
}

/// What reading config.yaml gives besides the config itself.
struct Parsed {
    config: Config,
    content: PathBuf,
    templates: PathBuf,
    warnings: Vec<Diagnostic>,
    tree: yaml::Node,
}

fn parse_config(text: &str, shown: &Path, root: &Path) -> Result<Parsed, Diagnostics> {
    let src = Source { path: shown, text };
    let tree = yaml::parse(text, 1, &yaml::CONFIG).map_err(|p| {
        let mut d = src.problem(p);
        d.message = format!("invalid YAML: {}", d.message);
        Diagnostics(vec![d])
    })?;
    let mut f = Fields::new(src, &tree, None, "config.yaml");
    let site = site::read(&mut f);
    let (regions, topics) = taxonomy::read(&mut f);
    let newsletters = newsletter::read_all(&mut f, &site, &regions, &topics, root);
    let markdown = markdown(&mut f);
    let (content, templates) = paths(&mut f, root);
    let ledger = ledger(&mut f, root);
    let delivery = delivery::read(&mut f, &site, root);
    let archive = archive::read(&mut f, root);
    let signup = signup::read(&mut f, &site);
    if f.has("signup") {
        // A newsroom that set up its sign-up page hears of a letter the
        // page would list without saying what it is.
        for n in newsletters.iter().filter(|n| n.signup) {
            let pos = f.node().locate(&["newsletters", &n.id]);
            if n.description.is_none() {
                f.warn_at(
                    pos,
                    format!("newsletter `{}` is on the sign-up page without a `description`: add a sentence or two saying what it is and why read it, or `signup: false`", n.id),
                );
            }
            if n.cadence.is_none() {
                f.warn_at(
                    pos,
                    format!("newsletter `{}` is on the sign-up page, and its schedule does not say how often it comes: add a `cadence` like \"Weekday mornings\"", n.id),
                );
            }
        }
    }
    let diags = Diagnostics(f.finish());
    if diags.errors() > 0 {
        return Err(diags);
    }
    Ok(Parsed {
        config: Config {
            site,
            regions,
            topics,
            newsletters,
            markdown,
            delivery,
            ledger,
            archive,
            signup,
        },
        content,
        templates,
        warnings: diags.0,
        tree,
    })
}

fn markdown(f: &mut Fields) -> MarkdownConfig {
    let mut md = MarkdownConfig::default();
    let Some(mut m) = f.fields("markdown", false) else {
        return md;
    };
    md.allow_html = m.bool("allow_html").unwrap_or(false);
    if let Some(lead_ins) = m.texts("lead_ins", "a list of lead-ins like [\"Why it matters:\"]") {
        for (i, (l, node)) in lead_ins.iter().enumerate() {
            if l.trim().is_empty() {
                m.error_at(Some(node.pos), format!("lead-in #{} is empty", i + 1));
            }
        }
        md.lead_ins = lead_ins.iter().map(|(l, _)| l.to_string()).collect();
    }
    f.absorb(m);
    md
}

/// `ledger:`, once called `state:` (still read, with a warning naming the
/// new key): a path, or a `postgres://` URL whose password comes from the
/// environment variable `ledger_password_env` names.
fn ledger(f: &mut Fields, root: &Path) -> Location {
    let key = match (f.has("ledger"), f.has("state")) {
        (_, false) => "ledger",
        (true, true) => {
            f.error(
                "state",
                "`state` is the old name of `ledger`: keep only `ledger`",
            );
            "ledger"
        }
        (false, true) => {
            let pos = f.node().entry("state").map(|(k, _)| k.pos);
            f.warn_at(
                pos,
                "`state` is now called `ledger`: rename the key (`state` still works for now)",
            );
            "state"
        }
    };
    f.allow(&["ledger", "state", "ledger_password_env"]);
    let given = f.text(
        key,
        "a path like .briefing/ledger.sqlite, or a URL like postgres://briefing@db.example/briefing",
    );
    let password_env = f
        .text("ledger_password_env", "the name of an environment variable")
        .map(str::to_owned);
    let given = given.unwrap_or(DEFAULT_LEDGER);
    if Location::is_postgres_url(given) {
        let target = PgTarget {
            url: given.to_owned(),
            password_env: password_env.clone(),
        };
        if let Err(e) = target.check() {
            f.error(key, e);
        }
        if let Some(var) = &password_env
            && (var.is_empty() || !var.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_'))
        {
            f.error(
                "ledger_password_env",
                "expected the name of an environment variable (letters, digits and _)",
            );
        }
        return Location::Postgres(target);
    }
    if password_env.is_some() {
        f.error(
            "ledger_password_env",
            "only a PostgreSQL ledger (ledger: postgres://…) has a password",
        );
    }
    match inside(root, Path::new(given)) {
        Ok(p) => Location::Sqlite(p),
        Err(m) => {
            f.error(key, m);
            Location::Sqlite(PathBuf::new())
        }
    }
}

/// `paths.content` and `paths.templates`, confined like every other path.
fn paths(f: &mut Fields, root: &Path) -> (PathBuf, PathBuf) {
    let (mut content, mut templates) = (root.join("content"), root.join("templates"));
    if let Some(mut p) = f.fields("paths", false) {
        content = path(&mut p, "content", root).unwrap_or(content);
        templates = path(&mut p, "templates", root).unwrap_or(templates);
        f.absorb(p);
    }
    (content, templates)
}

/// A path from config, confined to the newsroom folder.
fn path(f: &mut Fields, key: &'static str, root: &Path) -> Option<PathBuf> {
    let given = f.text(key, "a path inside the newsroom folder")?;
    match inside(root, Path::new(given)) {
        Ok(p) => Some(p),
        Err(m) => {
            f.error(key, m);
            None
        }
    }
}

/// A duration written like `36h` within `min..=max`, or `None` (reported)
/// when it is absent, unreadable or out of range. The range keeps all clock
/// arithmetic on it far from overflow.
fn duration(f: &mut Fields, key: &'static str, min: Duration, max: Duration) -> Option<Duration> {
    let given = f.text(key, "a duration like 90m, 36h or 2d")?;
    let out_of_range = || {
        format!(
            "`{key}` must be from {} to {}; found `{given}`",
            format_duration(min),
            format_duration(max)
        )
    };
    match parse_duration(given) {
        Ok(d) if d >= min && d <= max => Some(d),
        Ok(_) | Err(DurationError::TooLong) => {
            f.error(key, out_of_range());
            None
        }
        Err(DurationError::Invalid(m)) => {
            f.error(key, m);
            None
        }
    }
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
