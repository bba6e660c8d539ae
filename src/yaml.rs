//! YAML read into a tree whose every node knows where it is written: line,
//! column and width in the *file* (front-matter starts below its `---`).
//! config.yaml and front-matter are both read through it, field by field, so
//! every problem points at its key, value or list element, and the mistakes
//! editors make most (an unquoted colon, a `#`, a stray quote, a tab) get a hint.

use std::fmt;
use std::path::Path;

use serde::de::{Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_saphyr::budget::BudgetBreach;
use serde_saphyr::{Location, MessageFormatter, Spanned};

use crate::diag::{Diagnostic, did_you_mean};

/// A 1-based line and column inside a file, plus the width to underline.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pos {
    pub line: usize,
    pub col: usize,
    pub width: usize,
}

impl Pos {
    pub fn new(line: usize, col: usize, width: usize) -> Self {
        Pos { line, col, width }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
    Seq(Vec<Node>),
    /// Entries in the order written; keys are always `Str`.
    Map(Vec<(Node, Node)>),
}

/// One YAML node and where it is written.
#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    pub value: Value,
    /// For an alias (`*name`), where the alias is written.
    pub pos: Pos,
    /// How a plain scalar was written (`1984`, `yes`, `~`), to read it back as text.
    pub raw: Option<String>,
    /// For a node reached through an alias: the line of its anchor.
    pub anchor_line: Option<usize>,
    /// Nothing was written (`title:` alone, or only a comment after it).
    pub empty: bool,
}

/// How much YAML one file may hold, checked before and while parsing so a
/// hostile or broken file is refused at once.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub max_bytes: usize,
    pub max_depth: usize,
    /// What the YAML is, in messages: "front-matter", "config.yaml".
    pub what: &'static str,
}

/// Front-matter holds a dozen keys; 64 KB is hundreds of times that.
pub const FRONT_MATTER: Limits = Limits {
    max_bytes: 64 * 1024,
    max_depth: 32,
    what: "front-matter",
};

pub const CONFIG: Limits = Limits {
    max_bytes: 1024 * 1024,
    max_depth: 32,
    what: "config.yaml",
};

/// Why some text is not YAML we can read, with a hint when the mistake is a
/// common one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub message: String,
    pub pos: Pos,
    pub help: Option<String>,
}

/// Parses `text` (YAML whose first line is line `first_line` of its file).
/// An empty document is `Null`.
pub fn parse(text: &str, first_line: usize, limits: &Limits) -> Result<Node, Problem> {
    let at = |line: usize, col: usize| Pos::new(line + first_line - 1, col, 1);
    if text.len() > limits.max_bytes {
        return Err(Problem {
            message: format!(
                "{} is {} KB; at most {} KB is allowed",
                limits.what,
                text.len().div_ceil(1024),
                limits.max_bytes / 1024
            ),
            pos: at(1, 1),
            help: None,
        });
    }
    if let Some((line, col)) = too_deep(text, limits.max_depth) {
        return Err(nesting(limits, at(line, col)));
    }
    let mut budget = serde_saphyr::Budget::default();
    budget.max_depth = limits.max_depth;
    let options = serde_saphyr::options! {
        budget: Some(budget),
        with_snippet: false,
    };
    match serde_saphyr::from_str_with_options::<Spanned<Raw>>(text, options) {
        Ok(raw) => Ok(convert(raw, &Ctx { text, first_line })),
        Err(e) => Err(problem(&e, text, first_line, limits)),
    }
}

fn nesting(limits: &Limits, pos: Pos) -> Problem {
    Problem {
        message: format!(
            "{} nests lists and mappings more than {} levels deep",
            limits.what, limits.max_depth
        ),
        pos,
        help: None,
    }
}

/// The first flow bracket (`[`, `{`) past `max` levels of nesting, outside
/// quotes and comments. Counted before parsing: a document of 100,000 `[`
/// is refused in one pass over its bytes. Block nesting is bounded by the
/// parser's budget instead (it is cheap to reach and cheap to check).
fn too_deep(text: &str, max: usize) -> Option<(usize, usize)> {
    let mut depth = 0usize;
    for (n, line) in text.split('\n').enumerate() {
        let mut quote = None;
        let mut prev = ' ';
        for (col, c) in line.chars().enumerate() {
            match (quote, c) {
                (Some('\''), '\'') | (Some('"'), '"') if prev != '\\' => quote = None,
                (Some(_), _) => {}
                (None, '#') if prev == ' ' || prev == '\t' => break,
                (None, '"' | '\'') if depth > 0 || matches!(prev, ' ' | ':') => quote = Some(c),
                (None, '[' | '{') => {
                    depth += 1;
                    if depth > max {
                        return Some((n + 1, col + 1));
                    }
                }
                (None, ']' | '}') => depth = depth.saturating_sub(1),
                _ => {}
            }
            prev = c;
        }
    }
    None
}

/// A node as serde-saphyr hands it over, before positions are made file-relative.
enum Raw {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
    Seq(Vec<Spanned<Raw>>),
    Map(Vec<(Spanned<Raw>, Spanned<Raw>)>),
}

impl<'de> Deserialize<'de> for Raw {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Raw;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("any YAML value")
            }
            fn visit_bool<E>(self, v: bool) -> Result<Raw, E> {
                Ok(Raw::Bool(v))
            }
            fn visit_i64<E>(self, v: i64) -> Result<Raw, E> {
                Ok(Raw::Int(v))
            }
            fn visit_u64<E>(self, v: u64) -> Result<Raw, E> {
                Ok(i64::try_from(v).map_or(Raw::Float(v as f64), Raw::Int))
            }
            fn visit_i128<E>(self, v: i128) -> Result<Raw, E> {
                Ok(i64::try_from(v).map_or(Raw::Float(v as f64), Raw::Int))
            }
            fn visit_u128<E>(self, v: u128) -> Result<Raw, E> {
                Ok(i64::try_from(v).map_or(Raw::Float(v as f64), Raw::Int))
            }
            fn visit_f64<E>(self, v: f64) -> Result<Raw, E> {
                Ok(Raw::Float(v))
            }
            fn visit_str<E>(self, v: &str) -> Result<Raw, E> {
                Ok(Raw::Str(v.to_string()))
            }
            fn visit_string<E>(self, v: String) -> Result<Raw, E> {
                Ok(Raw::Str(v))
            }
            fn visit_bytes<E>(self, v: &[u8]) -> Result<Raw, E> {
                Ok(Raw::Str(String::from_utf8_lossy(v).into_owned()))
            }
            fn visit_unit<E>(self) -> Result<Raw, E> {
                Ok(Raw::Null)
            }
            fn visit_none<E>(self) -> Result<Raw, E> {
                Ok(Raw::Null)
            }
            fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Raw, D::Error> {
                Raw::deserialize(d)
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut s: A) -> Result<Raw, A::Error> {
                let mut v = Vec::new();
                while let Some(e) = s.next_element()? {
                    v.push(e);
                }
                Ok(Raw::Seq(v))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut m: A) -> Result<Raw, A::Error> {
                let mut v = Vec::new();
                while let Some(k) = m.next_key()? {
                    v.push((k, m.next_value()?));
                }
                Ok(Raw::Map(v))
            }
        }
        d.deserialize_any(V)
    }
}

struct Ctx<'a> {
    text: &'a str,
    first_line: usize,
}

impl Ctx<'_> {
    /// The source text a location covers (empty when unknown).
    fn slice(&self, l: &Location) -> &str {
        let span = l.span();
        let (Some(off), Some(len)) = (span.byte_offset(), span.byte_len()) else {
            return "";
        };
        let (off, len) = (off as usize, len as usize);
        self.text.get(off..off.saturating_add(len)).unwrap_or("")
    }

    /// The rest of the location's line, from the location on.
    fn rest_of_line(&self, l: &Location) -> &str {
        let off = l.span().byte_offset().unwrap_or(0) as usize;
        let rest = self.text.get(off..).unwrap_or("");
        rest.split(['\n', '\r']).next().unwrap_or("")
    }

    fn pos(&self, l: &Location, flow: bool) -> Pos {
        let line = (l.line() as usize).max(1) + self.first_line - 1;
        let col = (l.column() as usize).max(1);
        let rest = self.rest_of_line(l);
        let width = if flow {
            flow_width(rest)
        } else {
            (l.span().len() as usize).min(rest.chars().count())
        };
        Pos::new(line, col, width)
    }
}

/// The width of a flow collection starting at `[` or `{`, to its matching
/// close on the same line (the rest of the line when it closes later).
fn flow_width(line: &str) -> usize {
    let mut depth = 0usize;
    let mut quote = None;
    let mut prev = ' ';
    for (i, c) in line.chars().enumerate() {
        match (quote, c) {
            (Some(q), c) if c == q && prev != '\\' => quote = None,
            (Some(_), _) => {}
            (None, '"' | '\'') => quote = Some(c),
            (None, '[' | '{') => depth += 1,
            (None, ']' | '}') => {
                depth = depth.saturating_sub(1);
                if depth == 0 {
                    return i + 1;
                }
            }
            _ => {}
        }
        prev = c;
    }
    line.chars().count().max(1)
}

fn convert(s: Spanned<Raw>, cx: &Ctx) -> Node {
    let anchor_line = (s.defined.line() != s.referenced.line()
        || s.defined.column() != s.referenced.column())
    .then(|| s.defined.line() as usize + cx.first_line - 1);
    let flow = cx.rest_of_line(&s.referenced).starts_with(['[', '{'])
        && matches!(s.value, Raw::Seq(_) | Raw::Map(_));
    let pos = cx.pos(&s.referenced, flow);
    let written = cx.slice(&s.defined);
    let raw = match &s.value {
        Raw::Str(_) | Raw::Seq(_) | Raw::Map(_) => None,
        _ => Some(written.to_string()),
    };
    let empty = matches!(s.value, Raw::Null) && written.trim().is_empty();
    let value = match s.value {
        Raw::Null => Value::Null,
        Raw::Bool(b) => Value::Bool(b),
        Raw::Int(i) => Value::Int(i),
        Raw::Float(f) => Value::Float(f),
        Raw::Str(s) => Value::Str(s),
        Raw::Seq(v) => Value::Seq(v.into_iter().map(|e| convert(e, cx)).collect()),
        Raw::Map(v) => Value::Map(
            v.into_iter()
                .map(|(k, v)| {
                    let mut k = convert(k, cx);
                    // Keys are looked up as text, however they were written.
                    if !matches!(k.value, Value::Str(_)) {
                        k.value = Value::Str(k.raw.take().unwrap_or_default());
                    }
                    let mut v = convert(v, cx);
                    if let Some(p) = block_indicator(cx, &k) {
                        v.pos = p;
                    }
                    (k, v)
                })
                .collect(),
        ),
    };
    Node {
        value,
        pos,
        raw,
        anchor_line,
        empty,
    }
}

/// A block scalar's `|` or `>` (with its modifiers) after `key:`: where its
/// value is written, though its text starts on the next line.
fn block_indicator(cx: &Ctx, key: &Node) -> Option<Pos> {
    let line = cx
        .text
        .split('\n')
        .nth(key.pos.line.checked_sub(cx.first_line)?)?;
    let after: String = line.chars().skip(key.pos.col - 1 + key.pos.width).collect();
    let value = after.trim_start().strip_prefix(':')?;
    let token = value.trim_start();
    if !token.starts_with(['|', '>']) {
        return None;
    }
    let width = token.find([' ', '\t', '#', '\r']).unwrap_or(token.len());
    let col = key.pos.col + key.pos.width + (after.chars().count() - token.chars().count());
    Some(Pos::new(key.pos.line, col, width))
}

fn problem(e: &serde_saphyr::Error, text: &str, first_line: usize, limits: &Limits) -> Problem {
    use serde_saphyr::Error as E;
    let loc = e.location();
    let (line, col, width) = loc.map_or((1, 1, 1), |l| {
        (
            (l.line() as usize).max(1),
            (l.column() as usize).max(1),
            (l.span().len() as usize).max(1),
        )
    });
    let file_pos =
        |line: usize, col: usize, width: usize| Pos::new(line + first_line - 1, col, width.max(1));
    let inner = e.without_snippet();
    let message = match inner {
        E::Budget {
            breach: BudgetBreach::Depth { .. },
            ..
        } => return nesting(limits, file_pos(line, col, 1)),
        E::Budget { .. } => format!("{} is too large or too complex", limits.what),
        E::DuplicateMappingKey { key: Some(k), .. } => format!("`{k}` appears twice"),
        _ => serde_saphyr::UserMessageFormatter
            .format_message(inner)
            .into_owned(),
    };
    let mut p = Problem {
        message,
        pos: file_pos(line, col, width.min(1)),
        help: None,
    };
    if let Some(h) = hint::syntax(text, line, col, first_line) {
        if let Some((l, c)) = h.at {
            p.pos = file_pos(l, c, 1);
        }
        if let Some(m) = h.message {
            p.message = m;
        }
        p.help = Some(h.help);
    }
    p
}

/// Hints for the syntax mistakes editors make most, read from the text
/// around the parser's error (never from its wording, which may change).
mod hint {
    pub struct Hint {
        /// A better place to point at (YAML-relative line, column).
        pub at: Option<(usize, usize)>,
        pub message: Option<String>,
        pub help: String,
    }

    /// `line` and `col` are in `text`; `first_line` is `text`'s line in its
    /// file, for line numbers quoted in a hint.
    pub fn syntax(text: &str, line: usize, col: usize, first_line: usize) -> Option<Hint> {
        let lines: Vec<&str> = text.split('\n').map(|l| l.trim_end_matches('\r')).collect();
        tab(&lines, line)
            .or_else(|| unclosed_flow(&lines, line, col, first_line))
            .or_else(|| stray_quote(&lines, line, col))
            .or_else(|| colon(&lines, line, col))
    }

    /// `key: value` split at the first `: ` (or a `key:` at the end of the line).
    fn key_value(line: &str) -> Option<(&str, &str)> {
        let body = line.trim_start().trim_start_matches("- ");
        let i = body.find(": ")?;
        let key = &body[..i];
        (!key.is_empty() && !key.starts_with(['"', '\'', '[', '{', '#']))
            .then(|| (key, body[i + 2..].trim_start()))
    }

    /// `"value"` in the quotes that do not clash with it.
    fn quoted(value: &str) -> String {
        if value.contains('"') {
            format!("'{}'", value.replace('\'', "''"))
        } else {
            format!("\"{}\"", value.replace('\\', "\\\\"))
        }
    }

    /// Everything before a ` #` comment.
    fn strip_comment(v: &str) -> &str {
        v.find(" #").map_or(v, |i| &v[..i]).trim_end()
    }

    fn tab(lines: &[&str], line: usize) -> Option<Hint> {
        // A tab in the indentation of the error's line or one before it.
        let (n, l) = lines.iter().enumerate().take(line + 1).find(|(_, l)| {
            l.chars()
                .take_while(|c| c.is_whitespace())
                .any(|c| c == '\t')
        })?;
        let col = l.chars().position(|c| c == '\t').unwrap_or(0) + 1;
        Some(Hint {
            at: Some((n + 1, col)),
            message: Some("a tab in the indentation".into()),
            help: "YAML does not allow tabs for indentation: indent with spaces".into(),
        })
    }

    /// `title: [unclosed` read as a list that never closes.
    fn unclosed_flow(lines: &[&str], line: usize, col: usize, first_line: usize) -> Option<Hint> {
        for (n, l) in lines.iter().enumerate().take(line).rev() {
            let Some((key, value)) = key_value(l) else {
                continue;
            };
            let open = value.chars().next()?;
            if !matches!(open, '[' | '{') {
                continue;
            }
            // Still open at the error?
            let upto: String = lines[n..line]
                .iter()
                .enumerate()
                .map(|(i, l)| {
                    if n + i + 1 == line {
                        l.chars().take(col.saturating_sub(1)).collect()
                    } else {
                        l.to_string()
                    }
                })
                .collect::<Vec<_>>()
                .join("\n");
            let start = upto.find(value).unwrap_or(0);
            let rest = &upto[start..];
            let opens = rest.matches(['[', '{']).count();
            let closes = rest.matches([']', '}']).count();
            if opens <= closes {
                return None;
            }
            let (what, close) = if open == '[' {
                ("a list", ']')
            } else {
                ("a mapping", '}')
            };
            return Some(Hint {
                at: None,
                message: None,
                help: format!(
                    "the `{open}` on line {} starts {what} that is never closed with `{close}`; \
                     to write text that starts with `{open}`, quote it: {key}: {}",
                    n + first_line,
                    quoted(strip_comment(value))
                ),
            });
        }
        None
    }

    /// `summary: 'It's here'`, `title: "Senate" passes`: the value's quote
    /// closes before the value ends.
    fn stray_quote(lines: &[&str], line: usize, col: usize) -> Option<Hint> {
        let l = lines.get(line.checked_sub(1)?)?;
        let (key, value) = key_value(l)?;
        let q = value.chars().next().filter(|c| matches!(c, '"' | '\''))?;
        let vcol = l.chars().count() - value.chars().count() + 1;
        if col <= vcol {
            return None;
        }
        let inner = strip_comment(&value[1..]);
        let whole = strip_comment(value);
        let help = if q == '\'' {
            let fixed = inner.strip_suffix('\'').unwrap_or(inner);
            format!(
                "inside single quotes an apostrophe ends the value: write it twice \
                 (`''`), or use double quotes: {key}: {}",
                quoted(fixed)
            )
        } else if inner.contains('"') {
            format!(
                "the value starts with a quote, so it ends at the next `\"`: put the whole \
                 value in single quotes: {key}: '{}'",
                whole.replace('\'', "''")
            )
        } else {
            format!("the quote that starts the value is never closed: end it with `{q}`")
        };
        Some(Hint {
            at: None,
            message: None,
            help,
        })
    }

    /// `title: Breaking: Winter storm` (a second `: ` in a plain value).
    fn colon(lines: &[&str], line: usize, col: usize) -> Option<Hint> {
        let l = lines.get(line.checked_sub(1)?)?;
        if l.chars().nth(col.checked_sub(1)?) != Some(':') {
            return None;
        }
        let (key, value) = key_value(l)?;
        let vcol = l.chars().count() - value.chars().count() + 1;
        (col > vcol && !value.starts_with(['"', '\'', '[', '{'])).then(|| Hint {
            at: None,
            message: None,
            help: format!(
                "a `: ` inside a value reads as a new key: quote the value: {key}: {}",
                quoted(strip_comment(value))
            ),
        })
    }
}

impl Node {
    /// A mapping with nothing in it (for an empty document).
    pub fn empty_map() -> Node {
        EMPTY.clone()
    }

    /// The same, borrowed: reading a section that is not there gives its defaults.
    pub fn empty() -> &'static Node {
        &EMPTY
    }

    pub fn as_str(&self) -> Option<&str> {
        match &self.value {
            Value::Str(s) => Some(s),
            _ => None,
        }
    }

    /// A scalar as text: a string, or a number or boolean as it was written.
    pub fn as_text(&self) -> Option<&str> {
        match &self.value {
            Value::Str(s) => Some(s),
            Value::Bool(_) | Value::Int(_) | Value::Float(_) => self.raw.as_deref(),
            _ => None,
        }
    }

    pub fn is_null(&self) -> bool {
        matches!(self.value, Value::Null)
    }

    /// The entries of a mapping (none for anything else).
    pub fn entries(&self) -> &[(Node, Node)] {
        match &self.value {
            Value::Map(m) => m,
            _ => &[],
        }
    }

    pub fn entry(&self, key: &str) -> Option<(&Node, &Node)> {
        self.entries()
            .iter()
            .find(|(k, _)| k.as_str() == Some(key))
            .map(|(k, v)| (k, v))
    }

    pub fn get(&self, key: &str) -> Option<&Node> {
        self.entry(key).map(|(_, v)| v)
    }

    /// Where to point for the value of an entry: the value, or the key when
    /// nothing is written after it or the value starts on a later line (a
    /// block list or mapping, a `|` scalar).
    pub fn entry_pos(key: &Node, value: &Node) -> Pos {
        if value.empty || value.pos.line != key.pos.line {
            key.pos
        } else {
            value.pos
        }
    }

    /// The position of the value at `path` (keys, or indices into lists),
    /// e.g. `["newsletters", "am", "schedule"]` or `["regions", "2", "id"]`.
    pub fn locate(&self, path: &[&str]) -> Option<Pos> {
        let mut node = self;
        let mut pos = None;
        for step in path {
            match &node.value {
                Value::Seq(items) => {
                    let item = items.get(step.parse::<usize>().ok()?)?;
                    pos = Some(item.pos);
                    node = item;
                }
                _ => {
                    let (k, v) = node.entry(step)?;
                    pos = Some(Node::entry_pos(k, v));
                    node = v;
                }
            }
        }
        pos
    }

    /// For a value reached through an alias, where it is really written.
    pub fn alias_note(&self) -> Option<String> {
        self.anchor_line
            .map(|line| format!("the value comes from the anchor on line {line}"))
    }

    /// What the node is, for "found …" in messages.
    pub fn describe(&self) -> String {
        match &self.value {
            Value::Null => "nothing".into(),
            Value::Bool(b) => format!("boolean `{b}`"),
            Value::Int(i) => format!("integer `{i}`"),
            Value::Float(_) => format!("number `{}`", self.raw.as_deref().unwrap_or("?")),
            Value::Str(s) => {
                let short: String = s.chars().take(60).collect();
                let more = if short.len() < s.len() { "…" } else { "" };
                format!("string \"{}{more}\"", short.escape_debug())
            }
            Value::Seq(_) => "a list".into(),
            Value::Map(_) => "a mapping".into(),
        }
    }

    /// The node as JSON, for values passed through to templates.
    pub fn to_json(&self) -> serde_json::Value {
        use serde_json::Value as J;
        match &self.value {
            Value::Null => J::Null,
            Value::Bool(b) => J::Bool(*b),
            Value::Int(i) => J::from(*i),
            Value::Float(f) => serde_json::Number::from_f64(*f).map_or(J::Null, J::Number),
            Value::Str(s) => J::String(s.clone()),
            Value::Seq(v) => J::Array(v.iter().map(Node::to_json).collect()),
            Value::Map(m) => J::Object(
                m.iter()
                    .map(|(k, v)| (k.as_str().unwrap_or_default().to_string(), v.to_json()))
                    .collect(),
            ),
        }
    }
}

/// The file a tree came from: how to name it and its whole text, for
/// diagnostics that quote the offending line.
#[derive(Clone, Copy)]
pub struct Source<'a> {
    pub path: &'a Path,
    pub text: &'a str,
}

impl Source<'_> {
    pub fn error(&self, pos: Option<Pos>, message: impl Into<String>) -> Diagnostic {
        let d = Diagnostic::error(self.path, message);
        match pos {
            Some(p) => d.at(self.text, p.line, p.col).span(p.width),
            None => d,
        }
    }

    pub fn problem(&self, p: Problem) -> Diagnostic {
        let mut d = self.error(Some(p.pos), p.message);
        d.help = p.help;
        d
    }

    /// Why a value that looks written is empty: `title: #1 story` starts a comment.
    pub fn comment_hint(&self, key: &Node) -> Option<String> {
        let line = self.text.lines().nth(key.pos.line.checked_sub(1)?)?;
        let after = line
            .chars()
            .skip(key.pos.col - 1 + key.pos.width)
            .collect::<String>();
        let value = after.trim_start().strip_prefix(':')?.trim();
        value.starts_with('#').then(|| {
            format!(
                "`#` after a space starts a comment, so YAML read nothing after `{0}:`; \
                 quote the value: {0}: {1}",
                key.as_str().unwrap_or_default(),
                hint_quote(value)
            )
        })
    }
}

fn hint_quote(v: &str) -> String {
    if v.contains('"') {
        format!("'{}'", v.replace('\'', "''"))
    } else {
        format!("\"{v}\"")
    }
}

/// The fields of one YAML mapping, read one at a time. Every problem becomes
/// a diagnostic at its place; keys never read are reported as unknown.
pub struct Fields<'a> {
    src: Source<'a>,
    node: &'a Node,
    /// Where the mapping is named (its key), for "missing" errors.
    at: Option<Pos>,
    /// Whether `key:` with nothing after it is an error (front-matter) or
    /// the same as leaving the key out (config).
    empty_is_error: bool,
    read: Vec<&'a str>,
    pub diags: Vec<Diagnostic>,
}

static EMPTY: Node = Node {
    value: Value::Map(Vec::new()),
    pos: Pos {
        line: 1,
        col: 1,
        width: 1,
    },
    raw: None,
    anchor_line: None,
    empty: true,
};

impl<'a> Fields<'a> {
    /// Reads `node`, which should be a mapping; anything else is reported
    /// once and read as an empty one.
    pub fn new(src: Source<'a>, node: &'a Node, at: Option<Pos>, what: &str) -> Self {
        let mut f = Fields {
            src,
            node,
            at,
            empty_is_error: false,
            read: Vec::new(),
            diags: Vec::new(),
        };
        if !matches!(node.value, Value::Map(_)) {
            let pos = at.or(Some(node.pos));
            let d = src.error(
                pos,
                format!(
                    "{what} must be a mapping of keys to values; found {}",
                    node.describe()
                ),
            );
            f.diags.push(d);
            f.node = &EMPTY;
        }
        f
    }

    pub fn empty_is_error(mut self) -> Self {
        self.empty_is_error = true;
        self
    }

    pub fn source(&self) -> Source<'a> {
        self.src
    }

    pub fn node(&self) -> &'a Node {
        self.node
    }

    pub fn has(&self, key: &str) -> bool {
        self.node.entry(key).is_some()
    }

    /// The key and value of `key`, marking it read.
    pub fn entry(&mut self, key: &'a str) -> Option<(&'a Node, &'a Node)> {
        self.read.push(key);
        self.node.entry(key)
    }

    /// The value of `key`; `None` when absent or empty. An empty value is
    /// reported where that is an error, and a missing one when `required`.
    fn value(&mut self, key: &'a str, expected: &str, required: bool) -> Option<&'a Node> {
        let Some((k, v)) = self.entry(key) else {
            if required {
                self.missing(format!("missing `{key}`: expected {expected}"));
            }
            return None;
        };
        if v.is_null() {
            if self.empty_is_error || required {
                let mut d = self.src.error(
                    Some(Node::entry_pos(k, v)),
                    format!("`{key}` is empty; expected {expected}"),
                );
                d.help = self.src.comment_hint(k);
                self.diags.push(d);
            }
            return None;
        }
        Some(v)
    }

    /// Where `key`'s value is, as [`Node::entry_pos`] has it.
    pub fn pos(&self, key: &str) -> Option<Pos> {
        self.node.entry(key).map(|(k, v)| Node::entry_pos(k, v))
    }

    /// Records an error at `pos`, returning it to add a hint.
    pub fn error_at(&mut self, pos: Option<Pos>, message: impl Into<String>) -> &mut Diagnostic {
        let d = self.src.error(pos, message);
        self.diags.push(d);
        let last = self.diags.len() - 1;
        &mut self.diags[last]
    }

    /// Records a warning at `pos`: the file still loads.
    pub fn warn_at(&mut self, pos: Option<Pos>, message: impl Into<String>) -> &mut Diagnostic {
        let d = self.error_at(pos, message);
        d.severity = crate::diag::Severity::Warning;
        d
    }

    /// Records an error at `key`'s value (at the mapping when it is absent).
    pub fn error(&mut self, key: &str, message: impl Into<String>) -> &mut Diagnostic {
        let pos = self.pos(key).or(self.at);
        self.error_at(pos, message)
    }

    /// "`key` must be …; found …" at `key`'s value.
    pub fn wrong_type(&mut self, key: &str, node: &Node, expected: &str) -> &mut Diagnostic {
        let msg = format!("`{key}` must be {expected}; found {}", node.describe());
        let d = self.error(key, msg);
        d.help = node.alias_note();
        d
    }

    /// An error where the mapping is named (line 1 at the top level).
    pub fn missing(&mut self, message: impl Into<String>) -> &mut Diagnostic {
        let pos = self.at.or(Some(Pos::new(1, 1, 1)));
        self.error_at(pos, message)
    }

    fn typed<T>(
        &mut self,
        key: &'a str,
        expected: &str,
        required: bool,
        read: impl Fn(&'a Node) -> Option<T>,
    ) -> Option<T> {
        let v = self.value(key, expected, required)?;
        let t = read(v);
        if t.is_none() {
            self.wrong_type(key, v, expected);
        }
        t
    }

    /// Text: a string, or a number or boolean as it was written.
    pub fn text(&mut self, key: &'a str, expected: &str) -> Option<&'a str> {
        self.typed(key, expected, false, Node::as_text)
    }

    pub fn required_text(&mut self, key: &'a str, expected: &str) -> Option<&'a str> {
        self.typed(key, expected, true, Node::as_text)
    }

    /// A plain (unquoted) string or text; the node too, for positions inside it.
    pub fn text_node(&mut self, key: &'a str, expected: &str) -> Option<(&'a str, &'a Node)> {
        self.typed(key, expected, false, |n| n.as_text().map(|s| (s, n)))
    }

    pub fn int(&mut self, key: &'a str, expected: &str) -> Option<i64> {
        self.typed(key, expected, false, |n| match n.value {
            Value::Int(i) => Some(i),
            _ => None,
        })
    }

    /// A whole number in `min..=max`.
    pub fn count(&mut self, key: &'a str, min: u64, max: u64) -> Option<u64> {
        let expected = format!("a whole number from {min} to {max}");
        let i = self.int(key, &expected)?;
        let n = u64::try_from(i).ok().filter(|n| (min..=max).contains(n));
        if n.is_none() {
            self.error(
                key,
                format!("`{key}` must be from {min} to {max}; found {i}"),
            );
        }
        n
    }

    pub fn float(&mut self, key: &'a str, expected: &str) -> Option<f64> {
        self.typed(key, expected, false, |n| match n.value {
            Value::Int(i) => Some(i as f64),
            Value::Float(f) => Some(f),
            _ => None,
        })
    }

    pub fn bool(&mut self, key: &'a str) -> Option<bool> {
        self.typed(key, "true or false", false, |n| match n.value {
            Value::Bool(b) => Some(b),
            _ => None,
        })
    }

    /// A list. Text where a list belongs gets the list written out as a hint.
    pub fn list(&mut self, key: &'a str, expected: &str, required: bool) -> Option<&'a [Node]> {
        let v = self.value(key, expected, required)?;
        if let Value::Seq(items) = &v.value {
            return Some(items);
        }
        let text = v.as_text().map(str::to_string);
        let d = self.wrong_type(key, v, expected);
        if let Some(t) = text {
            let items: Vec<&str> = t.split(',').map(str::trim).collect();
            d.help = Some(format!("write a list: {key}: [{}]", items.join(", ")));
        }
        None
    }

    /// A list of text values; each bad element is reported at its place.
    pub fn texts(&mut self, key: &'a str, expected: &str) -> Option<Vec<(&'a str, &'a Node)>> {
        let items = self.list(key, expected, false)?;
        let mut out = Vec::with_capacity(items.len());
        for item in items {
            match item.as_text() {
                Some(s) => out.push((s, item)),
                None => {
                    let msg = format!("each of `{key}` must be text; found {}", item.describe());
                    self.error_at(Some(item.pos), msg);
                }
            }
        }
        (out.len() == items.len()).then_some(out)
    }

    /// A nested mapping, read with its own `Fields`; `absorb` it when done.
    pub fn fields(&mut self, key: &'a str, required: bool) -> Option<Fields<'a>> {
        let v = self.value(key, "a mapping", required)?;
        let at = self.node.entry(key).map(|(k, _)| k.pos);
        let mut f = Fields::new(self.src, v, at, &format!("`{key}`"));
        f.empty_is_error = self.empty_is_error;
        Some(f)
    }

    /// Takes over a nested mapping's problems, unknown keys included.
    pub fn absorb(&mut self, child: Fields<'a>) {
        self.diags.extend(child.finish());
    }

    /// Marks keys as known without reading them (read another way).
    pub fn allow(&mut self, keys: &[&'a str]) {
        self.read.extend_from_slice(keys);
    }

    /// Reports the keys nobody read, with a suggestion for typos, and
    /// returns every problem found.
    pub fn finish(mut self) -> Vec<Diagnostic> {
        let unknown: Vec<&Node> = self
            .node
            .entries()
            .iter()
            .map(|(k, _)| k)
            .filter(|k| !self.read.contains(&k.as_str().unwrap_or_default()))
            .collect();
        for k in unknown {
            let name = k.as_str().unwrap_or_default();
            let help = unknown_key_help(name, &self.read);
            self.error_at(Some(k.pos), format!("unknown key `{name}`"))
                .help = Some(help);
        }
        self.diags
    }
}

/// "did you mean `title`?", else the keys allowed.
pub fn unknown_key_help(key: &str, allowed: &[&str]) -> String {
    match did_you_mean(key, allowed.iter().copied()) {
        Some(s) => format!("did you mean `{s}`?"),
        None => format!("allowed here: {}", allowed.join(", ")),
    }
}

#[cfg(test)]
mod tests;
