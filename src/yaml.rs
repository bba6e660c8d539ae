//! Positions inside YAML text. serde gives a location only for syntax and type
//! errors; semantic checks (an unknown region, a bad schedule) need to point
//! at a key too, so this module finds keys by path in block- or flow-style YAML.

/// A 1-based line and column inside some text, plus the width to underline.
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

/// The position serde_yaml_ng reports for an error, if it has one.
pub fn error_pos(e: &serde_yaml_ng::Error) -> Option<Pos> {
    e.location().map(|l| Pos::new(l.line(), l.column(), 1))
}

/// serde's message for an unknown key lists the expected ones; turns
/// "unknown field `titel`, expected one of `title`, `date`" into
/// (`titel`, [title, date]).
pub fn unknown_field(message: &str) -> Option<(String, Vec<String>)> {
    let rest = message.split("unknown field `").nth(1)?;
    let (field, tail) = rest.split_once('`')?;
    let expected = tail
        .split('`')
        .skip(1)
        .step_by(2)
        .map(str::to_string)
        .collect();
    Some((field.to_string(), expected))
}

/// Splits a libyaml message such as "did not find expected ',' or ']' at
/// line 3 column 5, while parsing a flow sequence at line 2 column 8" into
/// the problem and a hint with the context's position moved by `line_offset`
/// (front-matter starts a line or more into its file).
pub fn explain(message: &str, line_offset: usize) -> (String, Option<String>) {
    let problem = strip_location(message).to_string();
    let context = message.split_once(", while ").map(|(_, c)| c);
    let hint = context.map(|c| match c.split_once(" at line ") {
        Some((what, pos)) => {
            let line: usize = pos
                .split(' ')
                .next()
                .and_then(|l| l.parse().ok())
                .unwrap_or(0);
            format!("while {what} that starts on line {}", line + line_offset)
        }
        None => format!("while {c}"),
    });
    (problem, hint)
}

/// Removes serde_yaml_ng's " at line X column Y" suffix (we print positions ourselves).
pub fn strip_location(message: &str) -> &str {
    match message.find(" at line ") {
        Some(i) => &message[..i],
        None => message,
    }
}

struct Line<'a> {
    indent: usize,
    text: &'a str,
}

fn lines(text: &str) -> Vec<Line<'_>> {
    text.split('\n')
        .map(|l| {
            let l = l.trim_end_matches('\r');
            Line {
                indent: l.len() - l.trim_start_matches(' ').len(),
                text: l,
            }
        })
        .collect()
}

fn is_blank(l: &Line) -> bool {
    let t = l.text.trim_start();
    t.is_empty() || t.starts_with('#')
}

/// `key:` at the start of `s` (after optional "- "), returning the key's byte offset.
fn key_at(s: &str, key: &str) -> Option<usize> {
    let body = s.trim_start_matches(' ');
    let mut off = s.len() - body.len();
    let body = match body.strip_prefix("- ") {
        Some(b) => {
            off += 2;
            b
        }
        None => body,
    };
    let unq = body
        .strip_prefix('"')
        .and_then(|b| b.strip_prefix(key)?.strip_prefix('"'))
        .or_else(|| body.strip_prefix(key));
    match unq {
        Some(rest) if rest.starts_with(':') => Some(off),
        _ => None,
    }
}

/// Where the value of `key` on this line begins (the key itself when empty).
fn value_pos(line_no: usize, text: &str, key_off: usize) -> Pos {
    let after = match text[key_off..].find(':') {
        Some(i) => key_off + i + 1,
        None => return Pos::new(line_no, key_off + 1, 1),
    };
    let value = text[after..].trim_start();
    let value = strip_comment(value);
    if value.is_empty() {
        let key_len = after - key_off - 1;
        return Pos::new(line_no, key_off + 1, key_len);
    }
    let start = text.len() - text[after..].trim_start().len();
    Pos::new(
        line_no,
        text[..start].chars().count() + 1,
        value.chars().count(),
    )
}

fn strip_comment(v: &str) -> &str {
    // A '#' after whitespace starts a comment, unless inside quotes; good
    // enough for pointing at a value.
    let mut quote = None;
    let mut prev_space = true;
    for (i, c) in v.char_indices() {
        match (quote, c) {
            (None, '"' | '\'') => quote = Some(c),
            (Some(q), c) if c == q => quote = None,
            (None, '#') if prev_space => return v[..i].trim_end(),
            _ => {}
        }
        prev_space = c == ' ' || c == '\t';
    }
    v.trim_end()
}

/// Finds the value of the key at `path` (e.g. `["newsletters", "am", "schedule"]`).
/// Handles block mappings at any depth and, for the last step, flow mappings
/// written on the parent's line (`image: { src: x, alt: y }`). Returns the
/// position of the value, or of the key when the value is on later lines.
pub fn locate(text: &str, path: &[&str]) -> Option<Pos> {
    let ls = lines(text);
    let (mut start, mut end, mut parent_indent): (usize, usize, isize) = (0, ls.len(), -1);
    let mut found = None;
    for (depth, key) in path.iter().enumerate() {
        let mut hit = None;
        let mut child_indent = None;
        for (i, l) in ls.iter().enumerate().take(end).skip(start) {
            if is_blank(l) {
                continue;
            }
            let ind = l.indent as isize;
            if ind <= parent_indent {
                break;
            }
            let ci = *child_indent.get_or_insert(l.indent);
            if l.indent != ci && !l.text.trim_start().starts_with("- ") {
                continue;
            }
            if let Some(off) = key_at(l.text, key) {
                hit = Some((i, off));
                break;
            }
        }
        match hit {
            Some((i, off)) => {
                found = Some(value_pos(i + 1, ls[i].text, off));
                parent_indent = off as isize;
                start = i + 1;
                end = ls.len();
            }
            None => {
                // Flow style on the parent's line: `parent: { key: value }`.
                if depth > 0 {
                    if let Some(prev) = found {
                        let text = ls[prev.line - 1].text;
                        let needle = format!("{key}:");
                        if let Some(b) = find_word(text, &needle) {
                            let vstart = b + needle.len();
                            let v = text[vstart..].trim_start();
                            let vb = text.len() - v.len();
                            let vlen = v.find([',', '}']).unwrap_or(v.len());
                            let vtext = v[..vlen].trim_end();
                            return Some(Pos::new(
                                prev.line,
                                text[..vb].chars().count() + 1,
                                vtext.chars().count().max(1),
                            ));
                        }
                    }
                }
                return None;
            }
        }
    }
    found
}

/// Byte offset of `needle` in `text` where it is not part of a longer word.
fn find_word(text: &str, needle: &str) -> Option<usize> {
    let mut from = 0;
    while let Some(i) = text[from..].find(needle) {
        let at = from + i;
        let before = text[..at].chars().last();
        if before.is_none_or(|c| !(c.is_alphanumeric() || c == '_' || c == '-')) {
            return Some(at);
        }
        from = at + needle.len();
    }
    None
}

/// Narrows a value position to one element of it, e.g. `wrld` inside
/// `regions: [national, wrld]`. Falls back to the whole value.
pub fn narrow(text: &str, pos: Pos, element: &str) -> Pos {
    let Some(line) = text.split('\n').nth(pos.line - 1) else {
        return pos;
    };
    let line_start: usize = line
        .char_indices()
        .nth(pos.col - 1)
        .map(|(b, _)| b)
        .unwrap_or(0);
    match find_word(&line[line_start..], element) {
        Some(b) => Pos::new(
            pos.line,
            line[..line_start + b].chars().count() + 1,
            element.chars().count(),
        ),
        None => {
            // Block list: the element may sit on one of the following lines.
            for (n, l) in text.split('\n').enumerate().skip(pos.line) {
                let t = l.trim_start();
                if !t.starts_with("- ") {
                    break;
                }
                if let Some(b) = find_word(l, element) {
                    return Pos::new(n + 1, l[..b].chars().count() + 1, element.chars().count());
                }
            }
            pos
        }
    }
}

/// The top-level keys of a block mapping, with the position of each key.
pub fn top_level_keys(text: &str) -> Vec<(String, Pos)> {
    let mut out = Vec::new();
    for (i, l) in lines(text).iter().enumerate() {
        // Flow-style mappings (`{title: x}`) and sequences are not block keys.
        if l.indent != 0 || is_blank(l) || l.text.starts_with(['-', '{', '[']) {
            continue;
        }
        let Some(colon) = l.text.find(':') else {
            continue;
        };
        let key = l.text[..colon].trim().trim_matches(['"', '\'']);
        if key.is_empty() || key.contains(' ') && !l.text.starts_with('"') {
            continue;
        }
        out.push((
            key.to_string(),
            Pos::new(i + 1, 1, key.chars().count().max(1)),
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const CFG: &str = "site:\n  name: X\n  timezone: Mars/Base # bad\nnewsletters:\n  am:\n    name: AM\n    regions: [national, wrld]\n  pm:\n    schedule: \"0 17 * * *\"\n    image: { src: a.jpg, alt: \"\" }\n    topics:\n      - politics\n      - sprots\n";

    #[test]
    fn locates_nested_values() {
        assert_eq!(locate(CFG, &["site", "timezone"]), Some(Pos::new(3, 13, 9)));
        assert_eq!(
            locate(CFG, &["newsletters", "pm", "schedule"]),
            Some(Pos::new(9, 15, 12))
        );
        assert_eq!(locate(CFG, &["newsletters", "am", "schedule"]), None);
        assert_eq!(
            locate(CFG, &["newsletters", "pm", "topics"]).map(|p| p.line),
            Some(11)
        );
    }

    #[test]
    fn locates_flow_mapping_members_and_list_elements() {
        assert_eq!(
            locate(CFG, &["newsletters", "pm", "image", "alt"]),
            Some(Pos::new(10, 31, 2))
        );
        let p = locate(CFG, &["newsletters", "am", "regions"]).unwrap();
        assert_eq!(narrow(CFG, p, "wrld"), Pos::new(7, 25, 4));
        let p = locate(CFG, &["newsletters", "pm", "topics"]).unwrap();
        assert_eq!(narrow(CFG, p, "sprots"), Pos::new(13, 9, 6));
    }

    #[test]
    fn lists_top_level_keys() {
        let keys: Vec<_> = top_level_keys("title: a\n# c\ndate: b\n  nested: c\nregion: [x]\n")
            .into_iter()
            .map(|(k, p)| (k, p.line))
            .collect();
        assert_eq!(
            keys,
            vec![
                ("title".into(), 1),
                ("date".into(), 3),
                ("region".into(), 5)
            ]
        );
    }

    #[test]
    fn explains_libyaml_context() {
        let (p, h) = explain(
            "did not find expected ',' or ']' at line 3 column 5, while parsing a flow sequence at line 2 column 8",
            1,
        );
        assert_eq!(p, "did not find expected ',' or ']'");
        assert_eq!(
            h.as_deref(),
            Some("while parsing a flow sequence that starts on line 3")
        );
    }

    #[test]
    fn parses_unknown_field_messages() {
        let (f, exp) =
            unknown_field("unknown field `titel`, expected one of `title`, `date`").unwrap();
        assert_eq!(f, "titel");
        assert_eq!(exp, vec!["title", "date"]);
    }
}
