//! Hints for the syntax mistakes editors make most, read from the text
//! around the parser's error (never from its wording, which may change).

pub(super) struct Hint {
    /// A better place to point at (YAML-relative line, column).
    pub at: Option<(usize, usize)>,
    pub message: Option<String>,
    pub help: String,
}

/// `line` and `col` are in `text`; `first_line` is `text`'s line in its
/// file, for line numbers quoted in a hint.
pub(super) fn syntax(text: &str, line: usize, col: usize, first_line: usize) -> Option<Hint> {
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
pub(super) fn quoted(value: &str) -> String {
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
            message: Some(format!(
                "the `{open}` on line {} is never closed",
                n + first_line
            )),
            help: format!(
                "a value that starts with `{open}` is {what}, which must end with `{close}`; \
                 to write text that starts with `{open}`, quote it: {key}: {}",
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
