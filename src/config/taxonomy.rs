//! `regions:` and `topics:`: the terms items are filed under, in display
//! order, and the filters newsletters build from them.

use serde::{Deserialize, Serialize};

use super::valid_id;
use crate::diag::did_you_mean;
use crate::yaml::Fields;

/// A region or a topic: an id used in front-matter and a display name.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Term {
    pub id: String,
    pub name: String,
}

/// Reads `regions:` and `topics:`.
pub(super) fn read(f: &mut Fields) -> (Vec<Term>, Vec<Term>) {
    (terms(f, "regions"), terms(f, "topics"))
}

fn terms(f: &mut Fields, kind: &'static str) -> Vec<Term> {
    let Some(items) = f.list(kind, "a list of { id, name }", true) else {
        return Vec::new();
    };
    let mut out: Vec<Term> = Vec::with_capacity(items.len());
    for item in items {
        let mut t = Fields::new(
            f.source(),
            item,
            Some(item.pos),
            &format!("each of `{kind}`"),
        );
        let id = t.required_text("id", "an id like world");
        let name = t.required_text("name", "a display name");
        if let Some(id) = id {
            if !valid_id(id) {
                t.error(
                    "id",
                    format!(
                        "invalid id `{id}` in {kind}: use lowercase letters, digits, `-` and `_`"
                    ),
                );
            } else if out.iter().any(|o| o.id == id) {
                t.error("id", format!("{kind} lists `{id}` twice"));
            }
        }
        if let (Some(id), Some(name)) = (id, name) {
            out.push(Term {
                id: id.to_string(),
                name: name.to_string(),
            });
        }
        f.absorb(t);
    }
    out
}

/// A newsletter's `regions:` or `topics:` filter: ids declared in `terms`,
/// each unknown one reported at its place.
pub(super) fn filter(f: &mut Fields, key: &'static str, terms: &[Term]) -> Option<Vec<String>> {
    let ids = f.texts(key, "a list of ids like [a, b]")?;
    let allowed: Vec<&str> = terms.iter().map(|t| t.id.as_str()).collect();
    let what = &key[..key.len() - 1];
    for (id, node) in &ids {
        if !allowed.contains(id) {
            let suggestion = did_you_mean(id, allowed.iter().copied());
            let d = f.error_at(
                Some(node.pos),
                format!(
                    "unknown {what} `{id}`; expected one of: {}",
                    allowed.join(", ")
                ),
            );
            d.help = suggestion.map(|s| format!("did you mean `{s}`?"));
        }
    }
    Some(ids.iter().map(|(id, _)| id.to_string()).collect())
}
