//! Personalisation without rendering per subscriber. An edition is rendered
//! once per *variant* — a preference set plus which subscriber fields are
//! filled in — with each subscriber field replaced by a placeholder; each
//! recipient's message then only substitutes their values. Conditions on
//! whether a field is empty (`{% if subscriber.name %}`) work, because
//! emptiness is part of the variant; conditions on a field's value do not.

use std::collections::BTreeMap;

use serde_json::{Map, Value};

use crate::render::escape_html_into;

const START: char = '\u{E000}';
const END: char = '\u{E001}';

/// The stand-in for `field` in rendered text: two private-use characters
/// around the name, which neither Tera, the CSS inliner nor HTML escaping
/// touch, and which no real content contains.
pub fn placeholder(field: &str) -> String {
    format!("{START}{field}{END}")
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

/// The `subscriber` value templates see when rendering a variant: each
/// present field is a placeholder, each absent one is empty.
pub fn subscriber_context(fields: &Fields, regions: &[String], topics: &[String]) -> Value {
    let mut m = Map::new();
    for (k, v) in &fields.0 {
        let value = if v.is_empty() {
            String::new()
        } else {
            placeholder(k)
        };
        m.insert(k.clone(), Value::String(value));
    }
    m.insert("regions".into(), Value::from(regions.to_vec()));
    m.insert("topics".into(), Value::from(topics.to_vec()));
    Value::Object(m)
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
    fn context_marks_present_fields_only() {
        let f = fields(&[("name", ""), ("email", "a@example.com")]);
        let v = subscriber_context(&f, &["world".into()], &[]);
        assert_eq!(v["name"], "");
        assert_eq!(v["email"], placeholder("email"));
        assert_eq!(v["regions"][0], "world");
        assert_eq!(f.present(), vec!["email"]);
    }
}
