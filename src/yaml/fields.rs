//! Reading one YAML mapping field by field: typed getters that report a
//! wrong or missing value at its place, and the keys nobody read as unknown.

use std::path::Path;

use super::{EMPTY, Node, Pos, Problem, Value};
use crate::diag::{Diagnostic, did_you_mean};

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
                super::hint::quoted(value)
            )
        })
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
        // An empty file is an empty mapping: what it lacks is reported key by key.
        if node.is_null() && node.empty {
            f.node = &EMPTY;
        } else if !matches!(node.value, Value::Map(_)) {
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

    /// Text with its node, to point inside the value.
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
