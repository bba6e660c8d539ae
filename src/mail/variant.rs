//! Personalisation without rendering per subscriber. An edition is rendered
//! once per *variant* — a preference set plus which subscriber fields are
//! filled in — with each subscriber field replaced by a placeholder; each
//! recipient's message then only substitutes their values. Conditions on
//! whether a field is empty (`{% if subscriber.name %}`) work, because
//! emptiness is part of the variant; conditions on a field's value do not.
//!
//! Content cannot forge a placeholder: a rendering is made with
//! [`Placeholders::mark`], which carries a random nonce nobody knows in
//! advance, and [`Placeholders::seal`] then turns exactly those marks into
//! the stored form and neutralises every other placeholder character that
//! came from an item, the config or a list.

use std::collections::BTreeMap;

use crate::render::escape_html_into;

const START: char = '\u{E000}';
const END: char = '\u{E001}';

/// The stand-in for `field` in a stored rendering: two private-use
/// characters around the name, which neither Tera, the CSS inliner nor HTML
/// escaping touch. Only [`Placeholders::seal`] produces them.
pub fn placeholder(field: &str) -> String {
    format!("{START}{field}{END}")
}

/// The marks one planning run renders with.
#[derive(Debug, Clone)]
pub struct Placeholders {
    nonce: String,
}

impl Default for Placeholders {
    fn default() -> Self {
        Self::new()
    }
}

impl Placeholders {
    /// New marks with a fresh random nonce.
    pub fn new() -> Placeholders {
        let mut bytes = [0u8; 16];
        // No randomness at all would be a broken machine; the time is still
        // unknown to whoever wrote the content, so fall back to it.
        if getrandom::fill(&mut bytes).is_err() {
            let t = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap_or_default();
            bytes[..16].copy_from_slice(&t.as_nanos().to_le_bytes());
        }
        Placeholders {
            nonce: hex::encode(bytes),
        }
    }

    /// The stand-in for `field` while rendering.
    pub fn mark(&self, field: &str) -> String {
        format!("{START}{}:{field}{END}", self.nonce)
    }

    /// A rendering made with these marks, in its stored form: each mark
    /// becomes [`placeholder`]`(field)`, and any other U+E000 or U+E001 (from
    /// an item, the config or a list) becomes a character reference in HTML,
    /// or U+FFFD in text, so that filling can never be steered by content.
    pub fn seal(&self, rendered: &str, html: bool) -> String {
        let mut out = String::with_capacity(rendered.len());
        let prefix = format!("{START}{}:", self.nonce);
        let mut rest = rendered;
        while let Some(i) = rest.find([START, END]) {
            out.push_str(&rest[..i]);
            let at = &rest[i..];
            if let Some(after) = at.strip_prefix(prefix.as_str()) {
                if let Some(j) = after.find(END) {
                    let field = &after[..j];
                    if !field.contains([START, END]) {
                        out.push_str(&placeholder(field));
                        rest = &after[j + END.len_utf8()..];
                        continue;
                    }
                }
            }
            let c = at.chars().next().unwrap_or(START);
            match (html, c) {
                (true, START) => out.push_str("&#xE000;"),
                (true, _) => out.push_str("&#xE001;"),
                (false, _) => out.push('\u{FFFD}'),
            }
            rest = &at[c.len_utf8()..];
        }
        out.push_str(rest);
        out
    }
}

/// What one recipient's message is filled with.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Fields(pub BTreeMap<String, String>);

impl Fields {
    /// The variant part of a key: the names of the fields that are not empty.
    pub fn present(&self) -> Vec<&str> {
        self.0
            .iter()
            .filter(|(_, v)| !v.is_empty())
            .map(|(k, _)| k.as_str())
            .collect()
    }
}

/// Replaces every placeholder in `text` with the recipient's value,
/// HTML-escaped when `html`. Unknown names become empty.
pub fn fill(text: &str, fields: &Fields, html: bool) -> String {
    let mut out = String::with_capacity(text.len() + 64);
    let mut rest = text;
    while let Some(i) = rest.find(START) {
        out.push_str(&rest[..i]);
        let after = &rest[i + START.len_utf8()..];
        match after.find(END) {
            Some(j) => {
                let value = fields.0.get(&after[..j]).map(String::as_str).unwrap_or("");
                if html {
                    escape_html_into(value, &mut out);
                } else {
                    out.push_str(value);
                }
                rest = &after[j + END.len_utf8()..];
            }
            None => {
                // Not a placeholder (sealed renderings have none like it):
                // keep the text.
                out.push(START);
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

/// Whether `text` holds any placeholder (a variant that needs no filling can
/// be sent as is).
pub fn has_placeholders(text: &str) -> bool {
    text.contains(START)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields(pairs: &[(&str, &str)]) -> Fields {
        Fields(
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        )
    }

    #[test]
    fn fills_placeholders_escaping_only_html() {
        let f = fields(&[("name", "Ana <&> \"Q\""), ("email", "ana@example.com")]);
        let tpl = format!("Hi {}, {}!", placeholder("name"), placeholder("email"));
        assert_eq!(fill(&tpl, &f, false), "Hi Ana <&> \"Q\", ana@example.com!");
        assert_eq!(
            fill(&tpl, &f, true),
            "Hi Ana &lt;&amp;&gt; &quot;Q&quot;, ana@example.com!"
        );
        assert_eq!(fill(&placeholder("missing"), &f, true), "");
        assert_eq!(fill("no placeholders", &f, true), "no placeholders");
    }

    #[test]
    fn content_cannot_forge_a_placeholder() {
        let marks = Placeholders::new();
        let f = fields(&[("email", "ana@example.com")]);
        let rendered = format!(
            "Title \u{E000}email\u{E001} / {} / lone \u{E000} then the rest / \u{E001}",
            marks.mark("email")
        );
        let text = fill(&marks.seal(&rendered, false), &f, false);
        assert_eq!(
            text,
            "Title \u{FFFD}email\u{FFFD} / ana@example.com / lone \u{FFFD} then the rest / \u{FFFD}"
        );
        let html = fill(&marks.seal(&rendered, true), &f, true);
        assert_eq!(
            html,
            "Title &#xE000;email&#xE001; / ana@example.com / lone &#xE000; then the rest / &#xE001;"
        );
        // Another run's marks are not this run's.
        let other = Placeholders::new().mark("email");
        assert!(!fill(&marks.seal(&other, false), &f, false).contains("ana@"));
    }

    #[test]
    fn present_fields_name_the_variant() {
        let f = fields(&[("name", ""), ("email", "a@example.com")]);
        assert_eq!(f.present(), vec!["email"]);
    }
}
