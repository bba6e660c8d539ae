//! Tera setup in one place: the newsroom's templates with the built-in ones
//! as fallback, the filters templates may use, and turning Tera's errors into
//! diagnostics that point at the template file and line.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use chrono::DateTime;
use tera::{ErrorKind, Kwargs, State, Tera, TeraResult};

use super::text::wrap;
use crate::diag::Diagnostic;
use crate::mail::variant::has_placeholders;

/// The built-in templates, compiled in: a newsroom without a `templates/`
/// folder still gets good digests.
pub const BUILTIN: &[(&str, &str)] = &[
    ("digest.html", include_str!("../../templates/digest.html")),
    ("digest.txt", include_str!("../../templates/digest.txt")),
    (
        "signup/confirm.html",
        include_str!("../../templates/signup/confirm.html"),
    ),
    (
        "signup/confirm.txt",
        include_str!("../../templates/signup/confirm.txt"),
    ),
    (
        "signup/confirm_subject.txt",
        include_str!("../../templates/signup/confirm_subject.txt"),
    ),
];

/// Where each template came from, to point diagnostics at it.
#[derive(Debug, Default, Clone)]
pub struct Sources {
    files: HashMap<String, (PathBuf, String)>,
}

impl Sources {
    pub fn add(&mut self, name: &str, shown: PathBuf, text: String) {
        self.files.insert(name.to_string(), (shown, text));
    }
    pub fn path(&self, name: &str) -> PathBuf {
        self.files
            .get(name)
            .map(|(p, _)| p.clone())
            .unwrap_or_else(|| PathBuf::from(name))
    }

    /// A Tera error as a diagnostic at the template's file and line, with
    /// the whole cause chain in the message.
    pub fn diagnostic(&self, fallback: &str, e: &tera::Error) -> Diagnostic {
        let report = match e.kind() {
            ErrorKind::SyntaxError(r) | ErrorKind::RenderingError(r) => Some(r),
            _ => None,
        };
        let name = report
            .map(|r| r.filename())
            .filter(|n| !n.is_empty())
            .unwrap_or(fallback);
        let mut message = report
            .map(|r| r.message().to_string())
            .unwrap_or_else(|| e.to_string());
        let mut cause = std::error::Error::source(e);
        while let Some(c) = cause {
            message.push_str(": ");
            message.push_str(&c.to_string());
            cause = c.source();
        }
        let mut d = Diagnostic::error(self.path(name), format!("template: {message}"));
        if let (Some(r), Some((_, text))) = (report, self.files.get(name)) {
            let span = r.span();
            d = d.at(text, span.start_line, span.start_col + 1);
            if span.end_line == span.start_line && span.end_col > span.start_col {
                d = d.span(span.end_col - span.start_col);
            }
        }
        d
    }
}

/// Registers briefing's filters on a Tera instance.
pub fn register_filters(tera: &mut Tera) {
    tera.register_filter("date", date);
    tera.register_filter("wrap", wrap_filter);
    tera.register_filter("underline", underline);
}

/// `{{ edition.slot | date(format="%A, %B %-d") }}`: formats an RFC 3339
/// value in its own offset (slots and item dates are given in local time).
fn date(value: &str, kwargs: Kwargs, _: &State) -> TeraResult<String> {
    let format = kwargs.get::<&str>("format")?.unwrap_or("%Y-%m-%d %H:%M");
    let t = DateTime::parse_from_rfc3339(value).map_err(|e| {
        tera::Error::message(format!(
            "date filter: `{value}` is not an RFC 3339 date-time: {e}"
        ))
    })?;
    let mut out = String::new();
    use std::fmt::Write;
    write!(out, "{}", t.format(format))
        .map_err(|_| tera::Error::message(format!("date filter: invalid format `{format}`")))?;
    Ok(out)
}

/// `{{ item.summary | wrap(width=78, indent="  ") }}`: re-wraps a text.
/// A paragraph holding a subscriber placeholder (an edition rendered for
/// sending) stays on one line: its length is only known once the reader's
/// value is in, and each message wraps it then (`text::fill_and_wrap`).
fn wrap_filter(value: &str, kwargs: Kwargs, _: &State) -> TeraResult<String> {
    let width = kwargs.get::<usize>("width")?.unwrap_or(78);
    let indent = kwargs.get::<&str>("indent")?.unwrap_or("");
    let paras: Vec<String> = value
        .split("\n\n")
        .map(|p| {
            let p = p.split_whitespace().collect::<Vec<_>>().join(" ");
            if has_placeholders(&p) {
                format!("{indent}{p}")
            } else {
                wrap(&p, width, indent, indent)
            }
        })
        .collect();
    Ok(paras.join("\n\n"))
}

/// `{{ title | underline(char="=") }}`: a line as long as the value.
fn underline(value: &str, kwargs: Kwargs, _: &State) -> TeraResult<String> {
    let ch = kwargs.get::<&str>("char")?.unwrap_or("=");
    let width = value.lines().map(|l| l.chars().count()).max().unwrap_or(0);
    Ok(ch.repeat(width))
}

/// Loads `templates_dir`'s `*.html` and `*.txt` files (any depth) over the
/// built-ins. Returns the template sources for diagnostics.
pub fn load(tera: &mut Tera, root: &Path, templates_dir: &Path) -> Result<Sources, Diagnostic> {
    let mut sources = Sources::default();
    let mut all: Vec<(String, String)> = Vec::new();
    for (name, text) in BUILTIN {
        sources.add(
            name,
            PathBuf::from(format!("<built-in>/{name}")),
            text.to_string(),
        );
        all.push((name.to_string(), text.to_string()));
    }
    if templates_dir.is_dir() {
        for e in walkdir::WalkDir::new(templates_dir)
            .sort_by_file_name()
            .into_iter()
            .filter_map(Result::ok)
        {
            let p = e.path();
            let ok =
                e.file_type().is_file() && p.extension().is_some_and(|x| x == "html" || x == "txt");
            if !ok {
                continue;
            }
            let name = p
                .strip_prefix(templates_dir)
                .unwrap_or(p)
                .to_string_lossy()
                .replace('\\', "/");
            let shown = crate::diag::display_path(root, p);
            let text = std::fs::read_to_string(p)
                .map_err(|e| Diagnostic::error(&shown, format!("cannot read template: {e}")))?;
            sources.add(&name, shown, text.clone());
            all.retain(|(n, _)| n != &name);
            all.push((name, text));
        }
    }
    tera.add_raw_templates(all)
        .map_err(|e| sources.diagnostic("digest.html", &e))?;
    Ok(sources)
}

/// The `subscriber` fields whose emptiness a template can test: those named
/// inside a `{% … %}` tag (`{% if subscriber.name %}`), or in a `{{ … }}`
/// with a filter or an inline `if`. `None` when a template uses
/// `subscriber` in a way this cannot follow (a loop over it, a copy into a
/// variable, `subscriber[...]`): then every field counts as tested.
///
/// Delivery renders an edition once per distinct combination of tested
/// fields that are filled in; a field that is only printed is a placeholder
/// in every rendering, so 20,000 subscribers with sparse extra columns make
/// a few renderings, not thousands.
pub fn tested_subscriber_fields<'a>(
    texts: impl IntoIterator<Item = &'a str>,
) -> Option<std::collections::BTreeSet<String>> {
    let mut out = std::collections::BTreeSet::new();
    for text in texts {
        for (open, close) in [("{%", "%}"), ("{{", "}}")] {
            let mut rest = text;
            while let Some(i) = rest.find(open) {
                let after = &rest[i + open.len()..];
                let Some(j) = after.find(close) else { break };
                let tag = &after[..j];
                rest = &after[j + close.len()..];
                if !tag.contains("subscriber") {
                    continue;
                }
                let conditional = open == "{%" || tag.contains('|') || tag.contains(" if ");
                for (k, _) in tag.match_indices("subscriber") {
                    let before = tag[..k].chars().next_back();
                    if before.is_some_and(|c| c.is_alphanumeric() || c == '_' || c == '.') {
                        continue;
                    }
                    let field = tag[k + "subscriber".len()..].strip_prefix('.')?;
                    let name: String = field
                        .chars()
                        .take_while(|c| c.is_alphanumeric() || *c == '_')
                        .collect();
                    if name.is_empty() {
                        return None;
                    }
                    if conditional {
                        out.insert(name);
                    }
                }
            }
        }
    }
    Some(out)
}

impl Sources {
    /// Every template's text (the newsroom's and the built-in ones).
    pub fn texts(&self) -> impl Iterator<Item = &str> {
        self.files.values().map(|(_, t)| t.as_str())
    }
}

#[cfg(test)]
mod tested_fields_tests {
    use super::tested_subscriber_fields as tested;

    #[test]
    fn conditions_count_printing_does_not() {
        let t = tested([
            "{% if subscriber.name %}Hi {{ subscriber.name }}{% endif %} {{ subscriber.city }}",
            "{{ subscriber.email | upper }} {% elif subscriber.zip %}",
        ])
        .unwrap();
        assert_eq!(t.into_iter().collect::<Vec<_>>(), ["email", "name", "zip"]);
        assert!(
            tested(["{{ subscriber.city }} {{ subscriber.email }}"])
                .unwrap()
                .is_empty()
        );
    }

    #[test]
    fn what_cannot_be_followed_means_every_field() {
        assert!(tested(["{% for k in subscriber %}{% endfor %}"]).is_none());
        assert!(tested(["{% set s = subscriber %}"]).is_none());
        assert!(tested(["{% if subscriber[\"city\"] %}"]).is_none());
        assert!(
            tested(["{{ my_subscriber.x }} {% if not_subscriber %}"])
                .unwrap()
                .is_empty()
        );
    }
}
