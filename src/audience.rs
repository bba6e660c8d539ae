//! The audience: subscribers loaded from a CSV file, suppressed addresses, and
//! the address normalisation both share. A bad row never stops a load: it is
//! reported with its file line so an editor can fix the spreadsheet.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::fmt;
use std::path::{Path, PathBuf};

use thiserror::Error;

/// Longest address SMTP can carry in a path (RFC 5321 4.5.3.1.3: 256 octets
/// including the angle brackets).
const MAX_ADDRESS_LEN: usize = 254;
/// RFC 5321 4.5.3.1.1.
const MAX_LOCAL_LEN: usize = 64;

/// Errors that stop a load: the file itself is unusable. Problems with single
/// rows are reported in [`AudienceList::rejected`] instead.
#[derive(Debug, Error)]
pub enum AudienceError {
    #[error("cannot read {}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{}: the header row has no `email` column (found: {found})", path.display())]
    MissingEmailColumn { path: PathBuf, found: String },
    #[error("{}: cannot read the header row", path.display())]
    Header {
        path: PathBuf,
        #[source]
        source: csv::Error,
    },
    #[error(
        "{}: column `{}` has a control or private-use character in its name; rename the column",
        path.display(),
        name.escape_debug()
    )]
    BadColumn { path: PathBuf, name: String },
    /// A suppression list that cannot be read fully is never read partly:
    /// a line that is not an address stops the send.
    #[error(
        "{}:{line}: `{text}` is not an address ({problem}); fix or remove the line: a suppression list is used only when every line of it is understood",
        path.display()
    )]
    Suppression {
        path: PathBuf,
        line: u64,
        text: String,
        problem: AddressProblem,
    },
}

/// One reader, as loaded from the audience file.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Subscriber {
    /// Normalised address: local part kept as written, domain lower-cased and
    /// punycoded (see [`normalize_email`]).
    pub email: String,
    pub name: Option<String>,
    /// Region ids; empty means every region.
    pub regions: Vec<String>,
    /// Topic ids; empty means every topic.
    pub topics: Vec<String>,
    /// Every other CSV column as (header name, value), in the header's
    /// order, for templates. A list, not a map: a map allocates room for
    /// eleven entries however few columns a row has, and a list of a
    /// million rows is held whole while an edition is planned.
    pub fields: Vec<(String, String)>,
    /// 1-based line of the row in its file (0 when not from a file).
    pub line: u64,
}

/// What a reader asked for, in a canonical form: two readers with the same key
/// get the same rendered edition, so the caller renders once per key.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PreferenceKey {
    /// Sorted, deduplicated; empty means all.
    pub regions: Vec<String>,
    /// Sorted, deduplicated; empty means all.
    pub topics: Vec<String>,
}

impl fmt::Display for PreferenceKey {
    /// `regions=eu,us;topics=*`: stable, readable, and safe to store as the
    /// ledger's variant key.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fn list(items: &[String]) -> String {
            if items.is_empty() {
                "*".to_owned()
            } else {
                items.join(",")
            }
        }
        write!(
            f,
            "regions={};topics={}",
            list(&self.regions),
            list(&self.topics)
        )
    }
}

impl Subscriber {
    /// The canonical (sorted, deduplicated) preference set of this reader.
    pub fn preference_key(&self) -> PreferenceKey {
        fn canonical(items: &[String]) -> Vec<String> {
            items
                .iter()
                .cloned()
                .collect::<BTreeSet<_>>()
                .into_iter()
                .collect()
        }
        PreferenceKey {
            regions: canonical(&self.regions),
            topics: canonical(&self.topics),
        }
    }
}

/// A row (or suppression line) that was not loaded, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejected {
    pub path: PathBuf,
    /// 1-based line in the file where the row starts.
    pub line: u64,
    /// The address as written (empty when the cell was empty).
    pub email: String,
    pub reason: String,
}

impl fmt::Display for Rejected {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}: {:?}: {}",
            self.path.display(),
            self.line,
            self.email,
            self.reason
        )
    }
}

/// The result of loading an audience file.
#[derive(Debug, Clone, Default)]
pub struct AudienceList {
    pub subscribers: Vec<Subscriber>,
    pub rejected: Vec<Rejected>,
}

impl AudienceList {
    /// Adds the readers of `more` who are not on the list yet (compared as
    /// the list's duplicates are, case-insensitively), after its rows.
    /// Returns how many were added.
    pub fn add_signed_up(&mut self, more: impl IntoIterator<Item = Subscriber>) -> usize {
        let mut seen: HashSet<String> = (self.subscribers.iter())
            .map(|s| s.email.to_ascii_lowercase())
            .collect();
        let before = self.subscribers.len();
        for s in more {
            if seen.insert(s.email.to_ascii_lowercase()) {
                self.subscribers.push(s);
            }
        }
        self.subscribers.len() - before
    }

    /// Drops suppressed readers and returns how many were dropped.
    pub fn remove_suppressed(&mut self, suppressions: &Suppressions) -> usize {
        let before = self.subscribers.len();
        self.subscribers
            .retain(|s| !suppressions.contains(&s.email));
        before - self.subscribers.len()
    }
}

/// Addresses that must never receive mail (unsubscribed, bounced, complained).
#[derive(Debug, Clone, Default)]
pub struct Suppressions {
    /// Fully lower-cased normalised addresses.
    addresses: HashSet<String>,
}

impl Suppressions {
    /// Whether `email` (in any case, in any form [`parse_address`] reads) is
    /// suppressed.
    pub fn contains(&self, email: &str) -> bool {
        let key = match parse_address(email) {
            Ok(normalised) => normalised.to_ascii_lowercase(),
            Err(_) => email.trim().to_lowercase(),
        };
        self.addresses.contains(&key)
    }

    /// Adds an address (already normalised).
    pub fn insert(&mut self, email: &str) {
        self.addresses.insert(email.to_ascii_lowercase());
    }

    pub fn len(&self) -> usize {
        self.addresses.len()
    }

    pub fn is_empty(&self) -> bool {
        self.addresses.is_empty()
    }
}

/// The extra columns of a subscriber list (besides email, name, regions
/// and topics), from its header row: what templates may use as
/// `subscriber.<column>`. Empty when the file cannot be read.
pub fn list_columns(path: &Path) -> Vec<String> {
    let Ok(text) = read(path) else {
        return Vec::new();
    };
    let header = text.lines().next().unwrap_or("");
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .from_reader(header.as_bytes());
    let Some(Ok(row)) = reader.records().next() else {
        return Vec::new();
    };
    row.iter()
        .map(|h| h.trim_start_matches('\u{feff}').trim().to_owned())
        .filter(|h| {
            !["email", "name", "regions", "topics"]
                .iter()
                .any(|k| h.eq_ignore_ascii_case(k))
        })
        .collect()
}

/// Reads and parses a subscriber CSV file.
pub fn load_subscribers(path: &Path) -> Result<AudienceList, AudienceError> {
    let text = read(path)?;
    parse_subscribers(&text, path)
}

/// Reads and parses a suppression list; any line that is not an address
/// is an error (see [`parse_suppressions`]).
pub fn load_suppressions(path: &Path) -> Result<Suppressions, AudienceError> {
    let text = read(path)?;
    parse_suppressions(&text, path)
}

fn read(path: &Path) -> Result<String, AudienceError> {
    let bytes = std::fs::read(path).map_err(|source| AudienceError::Io {
        path: path.to_owned(),
        source,
    })?;
    // A spreadsheet export in a legacy encoding should not abort the load:
    // rows with broken bytes become rejects (their addresses fail validation)
    // while the rest still load.
    Ok(String::from_utf8(bytes)
        .unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned()))
}

/// Parses subscriber CSV text. `path` is only used in reports.
///
/// The header row must have an `email` column (any case); `name`, `regions`
/// and `topics` are recognised (`;`-separated ids, empty = all); every other
/// column lands in [`Subscriber::fields`]. Invalid and duplicate rows are
/// reported in [`AudienceList::rejected`], never fatal.
pub fn parse_subscribers(text: &str, path: &Path) -> Result<AudienceList, AudienceError> {
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(true)
        // Ragged rows are reported per row rather than failing the read.
        .flexible(true)
        .trim(csv::Trim::All)
        .from_reader(text.as_bytes());

    let headers = reader
        .headers()
        .map_err(|source| AudienceError::Header {
            path: path.to_owned(),
            source,
        })?
        .clone();
    let names: Vec<String> = headers
        .iter()
        .map(|h| h.trim_start_matches('\u{feff}').trim().to_owned())
        .collect();
    // Column names become template variables and placeholder names.
    if let Some(bad) = names.iter().find(|n| {
        n.chars()
            .any(|c| c.is_control() || ('\u{E000}'..='\u{F8FF}').contains(&c))
    }) {
        return Err(AudienceError::BadColumn {
            path: path.to_owned(),
            name: bad.clone(),
        });
    }
    let column = |wanted: &str| names.iter().position(|n| n.eq_ignore_ascii_case(wanted));
    let email_col = column("email").ok_or_else(|| AudienceError::MissingEmailColumn {
        path: path.to_owned(),
        found: names.join(", "),
    })?;
    let name_col = column("name");
    let regions_col = column("regions");
    let topics_col = column("topics");

    let mut list = AudienceList::default();
    // Lower-cased address -> line of its first occurrence.
    let mut seen: HashMap<String, u64> = HashMap::new();
    let mut record = csv::StringRecord::new();
    loop {
        let line_hint = reader.position().line();
        match reader.read_record(&mut record) {
            Ok(false) => break,
            Ok(true) => {}
            Err(err) => {
                let line = err.position().map(|p| p.line()).unwrap_or(line_hint);
                if matches!(err.kind(), csv::ErrorKind::Io(_)) {
                    // Reading from memory cannot fail with I/O; stop rather
                    // than spin if it ever does.
                    list.rejected
                        .push(reject(path, line, "", format!("unreadable: {err}")));
                    break;
                }
                list.rejected
                    .push(reject(path, line, "", format!("malformed CSV row: {err}")));
                continue;
            }
        }
        let line = record.position().map(|p| p.line()).unwrap_or(line_hint);
        let raw_email = record.get(email_col).unwrap_or("").to_owned();

        if record.len() > names.len() {
            list.rejected.push(reject(
                path,
                line,
                &raw_email,
                format!(
                    "row has {} fields but the header has {}",
                    record.len(),
                    names.len()
                ),
            ));
            continue;
        }
        if raw_email.is_empty() {
            list.rejected
                .push(reject(path, line, "", "empty email".to_owned()));
            continue;
        }
        let email = match parse_address(&raw_email) {
            Ok(email) => email,
            Err(problem) => {
                list.rejected
                    .push(reject(path, line, &raw_email, problem.to_string()));
                continue;
            }
        };
        // The whole address is compared case-insensitively: every real mailbox
        // provider ignores local-part case, the unsubscribe token lower-cases
        // the address, and two rows differing only in case would otherwise be
        // two ledger deliveries to one inbox.
        let dedupe_key = email.to_ascii_lowercase();
        if let Some(first) = seen.get(&dedupe_key) {
            list.rejected.push(reject(
                path,
                line,
                &raw_email,
                format!("duplicate of line {first}"),
            ));
            continue;
        }

        let name = match name_col
            .and_then(|c| record.get(c))
            .filter(|n| !n.is_empty())
        {
            Some(n)
                if n.chars()
                    .any(|c| c.is_control() || matches!(c, '\u{2028}' | '\u{2029}')) =>
            {
                list.rejected.push(reject(
                    path,
                    line,
                    &raw_email,
                    "name contains a control character (line break or tab)".to_owned(),
                ));
                continue;
            }
            other => other.map(str::to_owned),
        };
        let ids = |col: Option<usize>| -> Vec<String> {
            col.and_then(|c| record.get(c))
                .map(split_ids)
                .unwrap_or_default()
        };
        let regions = ids(regions_col);
        let topics = ids(topics_col);
        let fields = names
            .iter()
            .enumerate()
            .filter(|(i, _)| {
                *i != email_col
                    && Some(*i) != name_col
                    && Some(*i) != regions_col
                    && Some(*i) != topics_col
            })
            .map(|(i, n)| (n.clone(), record.get(i).unwrap_or("").to_owned()))
            .collect();

        seen.insert(dedupe_key, line);
        list.subscribers.push(Subscriber {
            email,
            name,
            regions,
            topics,
            fields,
            line,
        });
    }
    Ok(list)
}

/// Parses a suppression list: one address per line in any form
/// [`parse_address`] reads (`a@x.org`, `<a@x.org>`, `Ana <a@x.org>`,
/// `mailto:a@x.org`), `#` starts a comment, blank lines are ignored; a BOM
/// and CRLF or CR line ends are fine. A line that is still not an address is
/// an error: a list we cannot read fully must not be used partly, or the
/// people on the lines we skipped would be mailed. `path` is only used in
/// reports.
pub fn parse_suppressions(text: &str, path: &Path) -> Result<Suppressions, AudienceError> {
    let mut out = Suppressions::default();
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    for (index, raw_line) in text.split(['\n', '\r']).enumerate() {
        let line = raw_line
            .split_once('#')
            .map_or(raw_line, |(before, _)| before)
            .trim();
        if line.is_empty() {
            continue;
        }
        match parse_address(line) {
            Ok(email) => out.insert(&email),
            Err(problem) => {
                return Err(AudienceError::Suppression {
                    path: path.to_owned(),
                    line: line_number(text, index),
                    text: line.to_owned(),
                    problem,
                });
            }
        }
    }
    Ok(out)
}

/// The 1-based line of the `index`th piece of `text` split at CR and LF
/// (a CRLF pair makes an empty piece, which is not a line).
fn line_number(text: &str, index: usize) -> u64 {
    let mut line = 1;
    let mut piece = 0;
    let mut chars = text.chars().peekable();
    while piece < index {
        match chars.next() {
            Some('\r') if chars.peek() == Some(&'\n') => {
                chars.next();
                piece += 2;
                line += 1;
            }
            Some('\r' | '\n') => {
                piece += 1;
                line += 1;
            }
            Some(_) => {}
            None => break,
        }
    }
    line
}

fn reject(path: &Path, line: u64, email: &str, reason: String) -> Rejected {
    Rejected {
        path: path.to_owned(),
        line,
        email: email.to_owned(),
        reason,
    }
}

fn split_ids(cell: &str) -> Vec<String> {
    cell.split(';')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect()
}

/// Why an address was refused. The text is shown to editors.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum AddressProblem {
    #[error("contains a control character (line break, tab or similar)")]
    Control,
    #[error(
        "looks like a display name or list (`<`, `>`, `,`, `;`, quotes or spaces); put only the address in the email column"
    )]
    DisplayName,
    #[error("missing @")]
    MissingAt,
    #[error("empty local part (before @)")]
    EmptyLocal,
    #[error("local part longer than 64 characters")]
    LocalTooLong,
    #[error("non-ASCII local part needs SMTPUTF8, which briefing does not send")]
    NonAsciiLocal,
    #[error("invalid local part (before @)")]
    InvalidLocal,
    #[error("IP-address domains are not accepted")]
    IpLiteral,
    #[error("invalid domain")]
    InvalidDomain,
    #[error("address longer than 254 characters")]
    TooLong,
}

/// The address in what people paste into lists: `a@x.org`, `<a@x.org>`,
/// `Ana Lima <a@x.org>`, `"Lima, Ana" <a@x.org>`, `mailto:a@x.org?subject=x`,
/// with a BOM or surrounding spaces; then [`normalize_email`]. Used for
/// subscriber rows and suppression lines alike, so that the same person is
/// recognised in both.
pub fn parse_address(raw: &str) -> Result<String, AddressProblem> {
    let s = raw.trim_matches(|c: char| c.is_whitespace() || c == '\u{feff}');
    if s.chars().any(char::is_control) {
        return Err(AddressProblem::Control);
    }
    let s = match (s.rfind('<'), s.strip_suffix('>')) {
        (Some(open), Some(inner)) if open < inner.len() => &inner[open + 1..],
        _ => s,
    };
    let s = match s.get(..7) {
        Some(scheme) if scheme.eq_ignore_ascii_case("mailto:") => {
            let rest = &s[7..];
            rest.split_once('?').map_or(rest, |(addr, _)| addr)
        }
        _ => s,
    };
    normalize_email(s)
}

/// Normalises and validates one address.
///
/// The local part is kept exactly as written (it is the mailbox owner's);
/// the domain is IDNA-mapped (lower-cased, punycoded): `Ana@Bücher.Example`
/// becomes `Ana@xn--bcher-kva.example`. Only plain dot-atom local parts are
/// accepted: no quoted strings, no comments, no display names.
pub fn normalize_email(raw: &str) -> Result<String, AddressProblem> {
    let raw = raw.trim();
    if raw.chars().any(char::is_control) {
        return Err(AddressProblem::Control);
    }
    if raw
        .chars()
        .any(|c| matches!(c, '<' | '>' | ',' | ';' | '"' | '(' | ')') || c.is_whitespace())
    {
        return Err(AddressProblem::DisplayName);
    }
    let (local, domain) = raw.rsplit_once('@').ok_or(AddressProblem::MissingAt)?;
    if local.is_empty() {
        return Err(AddressProblem::EmptyLocal);
    }
    if !local.is_ascii() {
        return Err(AddressProblem::NonAsciiLocal);
    }
    if local.len() > MAX_LOCAL_LEN {
        return Err(AddressProblem::LocalTooLong);
    }
    if !is_dot_atom(local) {
        return Err(AddressProblem::InvalidLocal);
    }
    if domain.starts_with('[') {
        return Err(AddressProblem::IpLiteral);
    }
    let domain = normalize_domain(domain)?;
    let email = format!("{local}@{domain}");
    if email.len() > MAX_ADDRESS_LEN {
        return Err(AddressProblem::TooLong);
    }
    // Belt and braces: whatever we accept must also be accepted by the SMTP
    // client that will carry it.
    lettre::Address::new(local, &domain).map_err(|_| AddressProblem::InvalidLocal)?;
    Ok(email)
}

fn normalize_domain(domain: &str) -> Result<String, AddressProblem> {
    if domain.is_empty() || domain.ends_with('.') {
        return Err(AddressProblem::InvalidDomain);
    }
    let ascii = idna::domain_to_ascii_strict(domain).map_err(|_| AddressProblem::InvalidDomain)?;
    let labels: Vec<&str> = ascii.split('.').collect();
    if labels.len() < 2 {
        return Err(AddressProblem::InvalidDomain);
    }
    for label in &labels {
        let ok = !label.is_empty()
            && label.len() <= 63
            && !label.starts_with('-')
            && !label.ends_with('-')
            && label
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
        if !ok {
            return Err(AddressProblem::InvalidDomain);
        }
    }
    // An all-numeric last label is an IP address typed without brackets.
    if labels
        .last()
        .is_some_and(|tld| tld.bytes().all(|b| b.is_ascii_digit()))
    {
        return Err(AddressProblem::IpLiteral);
    }
    Ok(ascii)
}

/// RFC 5322 dot-atom-text.
fn is_dot_atom(s: &str) -> bool {
    !s.starts_with('.')
        && !s.ends_with('.')
        && !s.contains("..")
        && s.bytes().all(|b| b == b'.' || is_atext(b))
}

/// RFC 5322 atext.
pub(crate) fn is_atext(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-/=?^_`{|}~".contains(&b)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> AudienceList {
        parse_subscribers(text, Path::new("audience.csv")).expect("parses")
    }

    #[test]
    fn normalises_domain_keeps_local_part() {
        assert_eq!(
            normalize_email(" Ana.Lopez@Bücher.Example ").unwrap(),
            "Ana.Lopez@xn--bcher-kva.example"
        );
        assert_eq!(
            normalize_email("x+tag@EXAMPLE.ORG").unwrap(),
            "x+tag@example.org"
        );
    }

    #[test]
    fn refuses_bad_addresses() {
        use AddressProblem::*;
        let cases = [
            ("a@b.com\r\nBcc: evil@x.com", Control),
            ("a\n@b.com", Control),
            ("Ana <ana@example.com>", DisplayName),
            ("ana@example.com, bob@example.com", DisplayName),
            ("\"ana\"@example.com", DisplayName),
            ("ana.example.com", MissingAt),
            ("@example.com", EmptyLocal),
            ("ana..b@example.com", InvalidLocal),
            (".ana@example.com", InvalidLocal),
            ("jörg@example.com", NonAsciiLocal),
            ("ana@[127.0.0.1]", IpLiteral),
            ("ana@127.0.0.1", IpLiteral),
            ("ana@localhost", InvalidDomain),
            ("ana@exa_mple.com", InvalidDomain),
            ("ana@-example.com", InvalidDomain),
            ("ana@example..com", InvalidDomain),
            ("ana@example.com.", InvalidDomain),
        ];
        for (input, want) in cases {
            assert_eq!(normalize_email(input), Err(want), "{input:?}");
        }
        let long_local = format!("{}@example.com", "a".repeat(65));
        assert_eq!(normalize_email(&long_local), Err(LocalTooLong));
    }

    #[test]
    fn loads_columns_preferences_and_fields() {
        let list = parse(
            "email,name,regions,topics,city\n\
             ana@example.com,Ana López,eu; us ,,Lisbon\n\
             bob@example.org,,,tech;politics,\n",
        );
        assert!(list.rejected.is_empty(), "{:?}", list.rejected);
        let ana = &list.subscribers[0];
        assert_eq!(ana.name.as_deref(), Some("Ana López"));
        assert_eq!(ana.regions, ["eu", "us"]);
        assert!(ana.topics.is_empty());
        assert_eq!(ana.fields, [("city".to_owned(), "Lisbon".to_owned())]);
        let bob = &list.subscribers[1];
        assert_eq!(bob.name, None);
        assert_eq!(bob.topics, ["tech", "politics"]);
    }

    #[test]
    fn email_column_is_required_and_case_insensitive() {
        let err = parse_subscribers("name,mail\nAna,a@b.com\n", Path::new("x.csv")).unwrap_err();
        assert!(matches!(err, AudienceError::MissingEmailColumn { .. }));
        let list = parse("\u{feff}Email,Name\na@example.com,A\n");
        assert_eq!(list.subscribers.len(), 1);
    }

    #[test]
    fn rejects_with_file_line_numbers_and_keeps_going() {
        // Line 4 is a quoted field spanning two lines, so the row after it
        // starts on line 6.
        let list = parse(
            "email,name\n\
             ana@example.com,Ana\n\
             not-an-address,X\n\
             bob@example.com,\"Bob\nSmith\"\n\
             ANA@EXAMPLE.COM,Again\n\
             carol@example.com,Carol\n\
             ,Nobody\n\
             dan@example.com,Dan,extra\n",
        );
        let emails: Vec<_> = list.subscribers.iter().map(|s| s.email.as_str()).collect();
        assert_eq!(emails, ["ana@example.com", "carol@example.com"]);
        let got: Vec<(u64, &str)> = list
            .rejected
            .iter()
            .map(|r| (r.line, r.reason.as_str()))
            .collect();
        assert_eq!(got[0], (3, "missing @"));
        assert_eq!(got[1].0, 4);
        assert!(got[1].1.contains("control character"), "{:?}", got[1]);
        assert_eq!(got[2], (6, "duplicate of line 2"));
        assert_eq!(got[3], (8, "empty email"));
        assert_eq!(got[4].0, 9);
        assert!(got[4].1.contains("3 fields"), "{:?}", got[4]);
        assert_eq!(list.rejected[2].email, "ANA@EXAMPLE.COM");
        assert_eq!(list.rejected[2].path, Path::new("audience.csv"));
    }

    #[test]
    fn names_with_unicode_line_separators_are_rejected() {
        // Not control characters, but a header line break to some clients;
        // the message composer would refuse them at send time.
        let list = parse(
            "email,name\nana@example.com,Ana\u{2028}Bcc: x\nbo@example.com,Bo\u{2029}Bcc: x\n",
        );
        assert!(list.subscribers.is_empty());
        assert_eq!(list.rejected.len(), 2);
        assert!(list.rejected[0].reason.contains("control character"));
    }

    #[test]
    fn dedupes_after_idn_normalisation() {
        let list = parse("email\nana@bücher.example\nana@XN--BCHER-KVA.example\n");
        assert_eq!(list.subscribers.len(), 1);
        assert_eq!(list.rejected[0].reason, "duplicate of line 2");
    }

    #[test]
    fn preference_key_is_canonical() {
        let sub = |regions: &[&str], topics: &[&str]| Subscriber {
            email: "a@example.com".into(),
            name: None,
            regions: regions.iter().map(|s| s.to_string()).collect(),
            topics: topics.iter().map(|s| s.to_string()).collect(),
            ..Subscriber::default()
        };
        let a = sub(&["us", "eu", "us"], &["tech"]);
        let b = sub(&["eu", "us"], &["tech"]);
        assert_eq!(a.preference_key(), b.preference_key());
        assert_eq!(a.preference_key().to_string(), "regions=eu,us;topics=tech");
        assert_eq!(
            sub(&[], &[]).preference_key().to_string(),
            "regions=*;topics=*"
        );
        assert_ne!(a.preference_key(), sub(&["eu"], &["tech"]).preference_key());
    }

    #[test]
    fn suppressions_match_normalised_any_case() {
        let s = parse_suppressions(
            "# unsubscribed via web\n\
             \n\
             Ana@Bücher.example   # asked by phone\n\
             BOB@example.com\n",
            Path::new("suppressed.txt"),
        )
        .unwrap();
        assert_eq!(s.len(), 2);
        assert!(s.contains("ana@xn--bcher-kva.example"));
        assert!(s.contains("ANA@bücher.EXAMPLE"));
        assert!(s.contains("bob@EXAMPLE.com"));
        assert!(!s.contains("carol@example.com"));
    }

    #[test]
    fn every_form_people_paste_is_suppressed() {
        let text = "\u{feff}ana@example.com\r\n\
                    <bob@example.com>\r\n\
                    Carol Diaz <carol@example.com>\r\n\
                    \"Diaz, Dan\" <DAN@Example.COM>\r\n\
                    mailto:eve@example.com\r\n\
                    MAILTO:fay@example.com?subject=unsubscribe\r\
                    gus@bücher.example\n";
        let s = parse_suppressions(text, Path::new("suppressed.txt")).unwrap();
        for who in [
            "ana@example.com",
            "bob@example.com",
            "carol@example.com",
            "dan@example.com",
            "eve@example.com",
            "fay@example.com",
            "gus@xn--bcher-kva.example",
        ] {
            assert!(s.contains(who), "{who} is not suppressed");
        }
        assert_eq!(s.len(), 7);
    }

    #[test]
    fn a_line_that_is_not_an_address_fails_the_whole_list_with_its_line() {
        for (text, line) in [
            ("a@example.com\nnot an address\n", 2),
            ("a@example.com\r\n\r\nb@example.com\r\nbob\r\n", 4),
            ("a@example.com\rbob\r", 2),
        ] {
            let e = parse_suppressions(text, Path::new("suppressed.txt")).unwrap_err();
            let AudienceError::Suppression { line: got, .. } = &e else {
                panic!("{e}");
            };
            assert_eq!(*got, line, "{text:?}");
            assert!(
                e.to_string()
                    .starts_with(&format!("suppressed.txt:{line}: ")),
                "{e}"
            );
        }
    }

    #[test]
    fn subscriber_rows_take_the_same_forms() {
        let list =
            parse("email,name\n\"Ana Lima <ana@example.com>\",Ana\nmailto:bob@example.com,Bob\n");
        let emails: Vec<&str> = list.subscribers.iter().map(|s| s.email.as_str()).collect();
        assert_eq!(emails, ["ana@example.com", "bob@example.com"]);
    }

    #[test]
    fn remove_suppressed_drops_matching_readers() {
        let mut list = parse("email\nana@example.com\nbob@example.com\n");
        let s = parse_suppressions("ANA@example.com\n", Path::new("s.txt")).unwrap();
        assert_eq!(list.remove_suppressed(&s), 1);
        assert_eq!(list.subscribers[0].email, "bob@example.com");
    }

    #[test]
    fn load_reports_missing_file_with_path() {
        let err = load_subscribers(Path::new("/nonexistent/audience.csv")).unwrap_err();
        assert!(err.to_string().contains("/nonexistent/audience.csv"));
    }
}
