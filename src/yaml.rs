//! YAML read into a tree whose every node knows where it is written: line,
//! column and width in the *file* (front-matter starts below its `---`).
//! config.yaml and front-matter are both read through it, field by field, so
//! every problem points at its key, value or list element, and the mistakes
//! editors make most (an unquoted colon, a `#`, a stray quote, a tab) get a hint.

mod fields;
mod hint;
#[cfg(test)]
mod tests;

use std::fmt;

use serde::de::{Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_saphyr::budget::BudgetBreach;
use serde_saphyr::{Location, MessageFormatter, Spanned};

pub use fields::{Fields, Source, unknown_key_help};

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

    /// Where a node is: a scalar is underlined to its end on its first
    /// line, a flow collection to its closing bracket.
    fn pos(&self, l: &Location, collection: bool) -> Pos {
        let line = (l.line() as usize).max(1) + self.first_line - 1;
        let col = (l.column() as usize).max(1);
        let rest = self.rest_of_line(l);
        let len = l.span().len() as usize;
        let width = if collection && rest.starts_with(['[', '{']) {
            flow_width(rest)
        } else if rest.len() >= len {
            // Byte length bounds char length: no count needed.
            len.min(rest.chars().take(len).count())
        } else {
            rest.chars().count()
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
    let pos = cx.pos(&s.referenced, matches!(s.value, Raw::Seq(_) | Raw::Map(_)));
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
                    let block = matches!(v.value, Value::Str(_)) && v.pos.line > k.pos.line;
                    if let Some(p) = block.then(|| block_indicator(cx, &k)).flatten() {
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
    // The parser's place is a point, except for a repeated key: underline it.
    let mut p = Problem {
        message: String::new(),
        pos: file_pos(line, col, 1),
        help: None,
    };
    p.message = match inner {
        E::Budget {
            breach: BudgetBreach::Depth { .. },
            ..
        } => return nesting(limits, p.pos),
        E::Budget { .. } => format!("{} is too large or too complex", limits.what),
        E::DuplicateMappingKey { key: Some(k), .. } => {
            p.pos.width = width;
            format!("`{k}` appears twice")
        }
        _ => serde_saphyr::UserMessageFormatter
            .format_message(inner)
            .into_owned(),
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

/// A mapping with nothing in it, for sections that are not there.
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
