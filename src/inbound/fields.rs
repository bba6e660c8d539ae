//! RFC 822-style field blocks, as `message/delivery-status` (RFC 3464) and
//! `message/feedback-report` (RFC 5965) bodies carry them: case-insensitive
//! names, folded continuation lines, blocks separated by blank lines.

/// One field: the name lower-cased, the value unfolded, its runs of white
/// space collapsed to one space, trimmed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Field {
    pub name: String,
    pub value: String,
}

/// A field or the blank line that ends a block, in input order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Item {
    Field(Field),
    Blank,
}

/// Longest value kept: a diagnostic is a few lines; more is noise (or an
/// attack on whoever prints it).
const MAX_VALUE: usize = 2000;

/// Splits `text` into fields and blank lines. Lines that are neither a field
/// (`name: value`, name made of printable ASCII without spaces) nor a
/// continuation are skipped: real reports contain stray text, and one bad
/// line must not cost the rest of the report.
pub fn parse(text: &str) -> Vec<Item> {
    let mut items: Vec<Item> = Vec::new();
    for line in text.split('\n') {
        let line = line.strip_suffix('\r').unwrap_or(line);
        if line.trim().is_empty() {
            if !matches!(items.last(), Some(Item::Blank) | None) {
                items.push(Item::Blank);
            }
            continue;
        }
        if line.starts_with([' ', '\t']) {
            if let Some(Item::Field(f)) = items.last_mut() {
                append(&mut f.value, line);
            }
            continue;
        }
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        let name = name.trim_end();
        if name.is_empty() || !name.bytes().all(|b| b.is_ascii_graphic()) {
            continue;
        }
        let mut v = String::new();
        append(&mut v, value);
        items.push(Item::Field(Field {
            name: name.to_ascii_lowercase(),
            value: v,
        }));
    }
    items
}

/// Appends `more` to `value`, one space between words, up to [`MAX_VALUE`].
fn append(value: &mut String, more: &str) {
    for word in more.split_whitespace() {
        if value.len() + word.len() + 1 > MAX_VALUE {
            return;
        }
        if !value.is_empty() {
            value.push(' ');
        }
        value.push_str(word);
    }
}

/// The first value of `name` (lower-case) among `fields`.
pub fn get<'a>(fields: &'a [Field], name: &str) -> Option<&'a str> {
    fields
        .iter()
        .find(|f| f.name == name)
        .map(|f| f.value.as_str())
        .filter(|v| !v.is_empty())
}

/// An address field's address: `rfc822; <a@b>` -> `a@b`. The address type
/// (`rfc822`, `utf-8`, …) is dropped; anything that does not look like
/// `local@domain` gives `None`.
pub fn address(value: &str) -> Option<String> {
    let value = match value.split_once(';') {
        Some((kind, rest)) if !kind.contains('@') => rest,
        _ => value,
    };
    let a = value
        .trim()
        .trim_start_matches('<')
        .trim_end_matches('>')
        .trim();
    let (local, domain) = a.rsplit_once('@')?;
    let ok = !local.is_empty()
        && !domain.is_empty()
        && a.len() <= 320
        && !a
            .chars()
            .any(|c| c.is_whitespace() || c.is_control() || c == '<' || c == '>');
    ok.then(|| a.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields(items: &[Item]) -> Vec<(&str, &str)> {
        items
            .iter()
            .filter_map(|i| match i {
                Item::Field(f) => Some((f.name.as_str(), f.value.as_str())),
                Item::Blank => None,
            })
            .collect()
    }

    #[test]
    fn unfolds_and_lowercases() {
        let items = parse(
            "Reporting-MTA: dns; relay\r\n\r\nFinal-Recipient: rfc822; a@b\r\nDIAGNOSTIC-CODE: smtp; 550 5.1.1 <a@b>: Recipient address\r\n    rejected: User unknown\r\n\r\n\r\n",
        );
        assert_eq!(
            fields(&items),
            [
                ("reporting-mta", "dns; relay"),
                ("final-recipient", "rfc822; a@b"),
                (
                    "diagnostic-code",
                    "smtp; 550 5.1.1 <a@b>: Recipient address rejected: User unknown"
                ),
            ]
        );
        assert_eq!(items.iter().filter(|i| **i == Item::Blank).count(), 2);
    }

    #[test]
    fn skips_junk_lines_and_keeps_going() {
        let items = parse("garbage line\n: no name\nbad name: x\nStatus: 5.1.1\n\tcontinued\n");
        assert_eq!(fields(&items), [("status", "5.1.1 continued")]);
        assert!(parse("").is_empty());
        assert!(parse("   \n\t\n").is_empty());
    }

    #[test]
    fn caps_very_long_values() {
        let long = format!("Diagnostic-Code: {}\n", "word ".repeat(10_000));
        let items = parse(&long);
        let Some(Item::Field(f)) = items.first() else {
            panic!("{items:?}")
        };
        assert!(f.value.len() <= MAX_VALUE);
    }

    #[test]
    fn addresses() {
        assert_eq!(
            address("rfc822; a@b.example").as_deref(),
            Some("a@b.example")
        );
        assert_eq!(
            address("RFC822;<A@B.example>").as_deref(),
            Some("A@B.example")
        );
        assert_eq!(address("a@b.example").as_deref(), Some("a@b.example"));
        assert_eq!(
            address("utf-8; jörg@bücher.example").as_deref(),
            Some("jörg@bücher.example")
        );
        assert_eq!(address("rfc822;"), None);
        assert_eq!(address("rfc822; not an address"), None);
        assert_eq!(address("rfc822; @b"), None);
        assert_eq!(address("rfc822; a b@c"), None);
    }
}
