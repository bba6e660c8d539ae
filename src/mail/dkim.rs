//! DKIM signing (RFC 6376; Ed25519 per RFC 8463), relaxed/relaxed, with
//! aws-lc-rs: constant-time RSA and Ed25519, and several times faster than
//! the pure-Rust `rsa` crate lettre's DKIM uses (which has an open advisory
//! for a timing side channel, RUSTSEC-2023-0071). It signs the finished
//! bytes of a message, so it does not depend on how they were built; the
//! tests verify its signatures with mail-auth and with Python's dkimpy.

use std::path::{Path, PathBuf};
use std::str::FromStr;

use aws_lc_rs::digest::{self, SHA256};
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{Ed25519KeyPair, KeyPair as _, RSA_PKCS1_SHA256, RsaKeyPair};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde::{Deserialize, Serialize};
use thiserror::Error;

/// DKIM signing algorithm, as written in config.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum DkimAlgorithm {
    #[serde(rename = "rsa-sha256")]
    RsaSha256,
    #[serde(rename = "ed25519-sha256")]
    Ed25519Sha256,
}

impl FromStr for DkimAlgorithm {
    type Err = DkimError;

    fn from_str(s: &str) -> Result<Self, DkimError> {
        match s {
            "rsa-sha256" => Ok(DkimAlgorithm::RsaSha256),
            "ed25519-sha256" => Ok(DkimAlgorithm::Ed25519Sha256),
            other => Err(DkimError::UnknownAlgorithm(other.to_owned())),
        }
    }
}

/// DKIM configuration as read from the newsroom's config.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DkimSettings {
    /// `d=`: the signing domain, normally the From domain (DMARC alignment).
    pub domain: String,
    /// `s=`: the key is published at `<selector>._domainkey.<domain>`.
    pub selector: String,
    /// PEM private key. RSA: PKCS#1 (`BEGIN RSA PRIVATE KEY`) or PKCS#8
    /// (`BEGIN PRIVATE KEY`). Ed25519: PKCS#8 PEM as written by
    /// `openssl genpkey -algorithm ed25519`, or the base64 32-byte seed.
    pub key_file: PathBuf,
    pub algorithm: DkimAlgorithm,
}

#[derive(Debug, Error)]
pub enum DkimError {
    #[error("cannot read DKIM key {}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("DKIM key {}: {reason}", path.display())]
    Key { path: PathBuf, reason: String },
    #[error("unknown DKIM algorithm {0:?} (expected rsa-sha256 or ed25519-sha256)")]
    UnknownAlgorithm(String),
    #[error("invalid DKIM {field} {value:?}")]
    InvalidName { field: &'static str, value: String },
    #[error("DKIM signing failed")]
    Sign,
}

/// A loaded DKIM key with the header list briefing signs. Cheap to share
/// between threads: signing takes `&self`.
pub struct DkimSigner {
    domain: String,
    selector: String,
    key: Key,
    rng: SystemRandom,
}

enum Key {
    Rsa(RsaKeyPair),
    Ed25519(Ed25519KeyPair),
}

impl std::fmt::Debug for DkimSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DkimSigner")
            .field("domain", &self.domain)
            .field("selector", &self.selector)
            .field("algorithm", &self.algorithm())
            .finish_non_exhaustive()
    }
}

impl DkimSigner {
    /// Headers covered by the signature, in this order, each that the
    /// message has. RFC 8058 one-click only counts when both List-Unsubscribe
    /// headers are signed.
    pub const SIGNED_HEADERS: [&'static str; 10] = [
        "From",
        "To",
        "Subject",
        "Date",
        "Message-ID",
        "MIME-Version",
        "Content-Type",
        "List-Id",
        "List-Unsubscribe",
        "List-Unsubscribe-Post",
    ];

    /// Reads the key file named in the settings.
    pub fn load(settings: &DkimSettings) -> Result<Self, DkimError> {
        let text =
            std::fs::read_to_string(&settings.key_file).map_err(|source| DkimError::Read {
                path: settings.key_file.clone(),
                source,
            })?;
        Self::from_key_text(
            &settings.domain,
            &settings.selector,
            settings.algorithm,
            &text,
            &settings.key_file,
        )
    }

    /// Builds a signer from key text; `origin` names the key in errors.
    pub fn from_key_text(
        domain: &str,
        selector: &str,
        algorithm: DkimAlgorithm,
        key_text: &str,
        origin: &Path,
    ) -> Result<Self, DkimError> {
        let name_ok = |s: &str| {
            !s.is_empty()
                && s.split('.').all(|label| {
                    !label.is_empty()
                        && label
                            .bytes()
                            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
                })
        };
        if !name_ok(domain) {
            return Err(DkimError::InvalidName {
                field: "domain",
                value: domain.to_owned(),
            });
        }
        if !name_ok(selector) {
            return Err(DkimError::InvalidName {
                field: "selector",
                value: selector.to_owned(),
            });
        }
        let key_error = |reason: String| DkimError::Key {
            path: origin.to_owned(),
            reason,
        };
        let key = match algorithm {
            DkimAlgorithm::RsaSha256 => Key::Rsa(rsa_key(key_text).map_err(key_error)?),
            DkimAlgorithm::Ed25519Sha256 => Key::Ed25519(ed25519_key(key_text).map_err(key_error)?),
        };
        Ok(DkimSigner {
            domain: domain.to_owned(),
            selector: selector.to_owned(),
            key,
            rng: SystemRandom::new(),
        })
    }

    pub fn algorithm(&self) -> DkimAlgorithm {
        match self.key {
            Key::Rsa(_) => DkimAlgorithm::RsaSha256,
            Key::Ed25519(_) => DkimAlgorithm::Ed25519Sha256,
        }
    }

    /// `message` (CRLF line ends, headers then a blank line then the body)
    /// with a `DKIM-Signature` header in front, signed at `timestamp`
    /// (seconds since the epoch, the `t=` tag).
    pub fn sign(&self, message: &[u8], timestamp: u64) -> Result<Vec<u8>, DkimError> {
        let (headers, body) = split_message(message);
        let body_hash = STANDARD.encode(body_hash(body));
        let fields = header_fields(headers);
        let mut data = Vec::with_capacity(1024);
        let mut names = Vec::new();
        for name in Self::SIGNED_HEADERS {
            // The bottom-most instance (RFC 6376 5.4.2); ours appear once.
            if let Some(field) = fields
                .iter()
                .rev()
                .find(|f| f.name.eq_ignore_ascii_case(name))
            {
                relaxed_header(&mut data, field.name, field.value);
                data.extend_from_slice(b"\r\n");
                names.push(name.to_ascii_lowercase());
            }
        }
        let algorithm = match self.key {
            Key::Rsa(_) => "rsa-sha256",
            Key::Ed25519(_) => "ed25519-sha256",
        };
        // Folded after each tag: lines stay short, and relaxed
        // canonicalisation reads each fold as one space on both sides.
        let value = format!(
            " v=1; a={algorithm}; c=relaxed/relaxed; d={}; s={};\r\n\tt={timestamp}; h={};\r\n\tbh={body_hash};\r\n\tb=",
            self.domain,
            self.selector,
            names.join(":"),
        );
        relaxed_header(&mut data, "DKIM-Signature", value.as_bytes());
        let signature = match &self.key {
            Key::Rsa(pair) => {
                let mut sig = vec![0; pair.public_modulus_len()];
                pair.sign(&RSA_PKCS1_SHA256, &self.rng, &data, &mut sig)
                    .map_err(|_| DkimError::Sign)?;
                sig
            }
            // RFC 8463: Ed25519 signs the SHA-256 hash of the data.
            Key::Ed25519(pair) => pair
                .sign(digest::digest(&SHA256, &data).as_ref())
                .as_ref()
                .to_vec(),
        };
        let b = STANDARD.encode(signature);
        let mut out = Vec::with_capacity(message.len() + value.len() + b.len() + 64);
        out.extend_from_slice(b"DKIM-Signature:");
        out.extend_from_slice(value.as_bytes());
        for (i, chunk) in b.as_bytes().chunks(72).enumerate() {
            if i > 0 {
                out.extend_from_slice(b"\r\n\t ");
            }
            out.extend_from_slice(chunk);
        }
        out.extend_from_slice(b"\r\n");
        out.extend_from_slice(message);
        Ok(out)
    }

    /// The public key as it goes in the DNS TXT record's `p=`.
    pub fn public_key_base64(&self) -> String {
        match &self.key {
            Key::Rsa(pair) => STANDARD.encode(pair.public_key().as_ref()),
            Key::Ed25519(pair) => STANDARD.encode(pair.public_key().as_ref()),
        }
    }
}

/// One header field: its name and its value as written (after the colon,
/// folds included, without the final CRLF).
struct Field<'a> {
    name: &'a str,
    value: &'a [u8],
}

/// The header block (without the blank line) and the body.
fn split_message(message: &[u8]) -> (&[u8], &[u8]) {
    if message.starts_with(b"\r\n") {
        return (&[], &message[2..]);
    }
    match memchr::memmem::find(message, b"\r\n\r\n") {
        Some(i) => (&message[..i + 2], &message[i + 4..]),
        None => (message, &[]),
    }
}

fn header_fields(headers: &[u8]) -> Vec<Field<'_>> {
    let mut fields = Vec::new();
    let mut start = 0;
    let mut i = 0;
    while i < headers.len() {
        let Some(eol) = memchr::memmem::find(&headers[i..], b"\r\n").map(|e| e + i) else {
            break;
        };
        let next = eol + 2;
        // A line starting with white space continues the field.
        if next < headers.len() && matches!(headers[next], b' ' | b'\t') {
            i = next;
            continue;
        }
        let line = &headers[start..eol];
        if let Some(colon) = memchr::memchr(b':', line)
            && let Ok(name) = std::str::from_utf8(&line[..colon])
        {
            fields.push(Field {
                name: name.trim_end(),
                value: &line[colon + 1..],
            });
        }
        start = next;
        i = next;
    }
    fields
}

fn is_wsp(b: u8) -> bool {
    b == b' ' || b == b'\t'
}

/// RFC 6376 3.4.2: the name in lower case, `:`, the value unfolded with
/// runs of white space as one space and none at either end.
fn relaxed_header(out: &mut Vec<u8>, name: &str, value: &[u8]) {
    out.extend(name.trim().bytes().map(|b| b.to_ascii_lowercase()));
    out.push(b':');
    let mut space = false;
    let mut any = false;
    for &b in value {
        if b == b'\r' || b == b'\n' {
            continue;
        }
        if is_wsp(b) {
            space = true;
            continue;
        }
        if space && any {
            out.push(b' ');
        }
        space = false;
        any = true;
        out.push(b);
    }
}

/// The SHA-256 of the body in RFC 6376's relaxed form (3.4.4): runs of
/// white space in a line as one space, none at a line's end, no empty
/// lines at the end, a non-empty body ending in CRLF. Lines already in that
/// form (nearly all of a quoted-printable body) are hashed straight from
/// the message in long runs; only the others are rewritten.
fn body_hash(body: &[u8]) -> digest::Digest {
    if let Some(relaxed) = already_relaxed(body) {
        let mut ctx = digest::Context::new(&SHA256);
        ctx.update(relaxed);
        if !relaxed.is_empty() && !relaxed.ends_with(b"\r\n") {
            ctx.update(b"\r\n");
        }
        return ctx.finish();
    }
    let mut hash = Spans {
        body,
        ctx: digest::Context::new(&SHA256),
        span: None,
    };
    // Where a line may need rewriting, found by vectorised scans of the
    // whole body: the lines without one are hashed as they are.
    let mut dirty: Vec<usize> = (memchr::memchr2_iter(b'\t', b'\r', body))
        .filter(|&i| body[i] == b'\t' || body.get(i + 1) != Some(&b'\n'))
        .chain(memchr::memmem::find_iter(body, b"  "))
        .chain(memchr::memmem::find_iter(body, b" \r"))
        .collect();
    dirty.sort_unstable();
    let mut d = 0;
    let mut scratch = Vec::new();
    // Blank lines not yet hashed: only a later non-blank line writes them.
    let mut blanks = 0usize;
    let mut blanks_from: Option<usize> = None;
    let mut start = 0;
    while start < body.len() {
        let end = memchr::memchr(b'\n', &body[start..]).map_or(body.len(), |i| start + i);
        let line = &body[start..end];
        let content = line.strip_suffix(b"\r").unwrap_or(line);
        // Ends in CRLF in the message, so the message's bytes can be hashed.
        let crlf = end < body.len() && content.len() < line.len();
        let next = (end + 1).min(body.len());
        while d < dirty.len() && dirty[d] < start {
            d += 1;
        }
        let marked = d < dirty.len() && dirty[d] < end;
        // A line that does not end in CRLF (the last one, or a bare LF) was
        // not fully covered by the scans: looked at byte by byte.
        let clean = !marked && (crlf || is_relaxed(content));
        let canon: &[u8] = if clean {
            content
        } else {
            scratch.clear();
            compress_wsp(content, &mut scratch);
            &scratch
        };
        if canon.is_empty() {
            // Written from the message when all of them are plain CRLFs.
            if blanks == 0 {
                blanks_from = Some(start);
            }
            if !(clean && crlf) {
                blanks_from = None;
            }
            blanks += 1;
        } else {
            match blanks_from {
                Some(from) if blanks > 0 => hash.message(from, start),
                _ => (0..blanks).for_each(|_| hash.bytes(b"\r\n")),
            }
            blanks = 0;
            blanks_from = None;
            if clean && crlf {
                hash.message(start, end + 1);
            } else {
                hash.bytes(canon);
                hash.bytes(b"\r\n");
            }
        }
        start = next;
    }
    hash.finish()
}

/// The body itself, without its trailing blank lines, when every line is
/// already relaxed and ends in CRLF: a few vectorised scans of the whole
/// body instead of one pass per line.
fn already_relaxed(body: &[u8]) -> Option<&[u8]> {
    use memchr::memmem;
    if memchr::memchr(b'\t', body).is_some()
        || memmem::find(body, b"  ").is_some()
        || memmem::find(body, b" \r").is_some()
        || body.ends_with(b" ")
    {
        return None;
    }
    let pairs = memmem::find_iter(body, b"\r\n").count();
    if memchr::memchr_iter(b'\r', body).count() != pairs
        || memchr::memchr_iter(b'\n', body).count() != pairs
    {
        return None;
    }
    let mut t = body;
    while t.ends_with(b"\r\n\r\n") {
        t = &t[..t.len() - 2];
    }
    Some(if t == b"\r\n" { &[] } else { t })
}

/// Whether a line is already relaxed: no tab, no CR, no two spaces in a
/// row, no space at its end. One pass over the bytes.
fn is_relaxed(line: &[u8]) -> bool {
    let mut space = false;
    for &b in line {
        match b {
            b'\t' | b'\r' => return false,
            b' ' if space => return false,
            _ => {}
        }
        space = b == b' ';
    }
    !space
}

/// A hash fed from runs of the message where it can, bytes where it must.
struct Spans<'a> {
    body: &'a [u8],
    ctx: digest::Context,
    span: Option<(usize, usize)>,
}

impl Spans<'_> {
    fn message(&mut self, from: usize, to: usize) {
        match &mut self.span {
            Some((_, end)) if *end == from => *end = to,
            _ => {
                self.flush();
                self.span = Some((from, to));
            }
        }
    }

    fn bytes(&mut self, bytes: &[u8]) {
        self.flush();
        self.ctx.update(bytes);
    }

    fn flush(&mut self) {
        if let Some((from, to)) = self.span.take() {
            self.ctx.update(&self.body[from..to]);
        }
    }

    fn finish(mut self) -> digest::Digest {
        self.flush();
        self.ctx.finish()
    }
}

/// One line's runs of white space as one space, none at its end. A stray
/// CR inside a line is no line end and is kept as it is.
fn compress_wsp(line: &[u8], out: &mut Vec<u8>) {
    let mut space = false;
    for &b in line {
        if is_wsp(b) {
            space = true;
            continue;
        }
        if space {
            out.push(b' ');
        }
        space = false;
        out.push(b);
    }
}

/// The relaxed body written out in full: the reference [`body_hash`] is
/// tested against.
#[cfg(test)]
fn relaxed_body(body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(body.len() + 2);
    let mut blank_lines = 0usize;
    let mut lines = body.split(|&b| b == b'\n').peekable();
    while let Some(line) = lines.next() {
        let last = lines.peek().is_none();
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if last && line.is_empty() {
            break;
        }
        let mut canon = Vec::with_capacity(line.len());
        compress_wsp(line, &mut canon);
        if canon.is_empty() {
            blank_lines += 1;
            continue;
        }
        for _ in 0..blank_lines {
            out.extend_from_slice(b"\r\n");
        }
        blank_lines = 0;
        out.extend_from_slice(&canon);
        out.extend_from_slice(b"\r\n");
    }
    out
}

/// The DER inside a PEM block, or `None` when the text is not PEM.
fn pem_der(text: &str, label: &str) -> Option<Result<Vec<u8>, String>> {
    let begin = format!("-----BEGIN {label}-----");
    let end = format!("-----END {label}-----");
    let start = text.find(&begin)? + begin.len();
    let stop = text[start..].find(&end)? + start;
    let b64: String = text[start..stop]
        .chars()
        .filter(|c| !c.is_whitespace())
        .collect();
    Some(
        STANDARD
            .decode(b64)
            .map_err(|e| format!("bad base64 in PEM: {e}")),
    )
}

/// One DER element: (tag, contents, rest).
fn der_next(input: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, rest) = input.split_first()?;
    let (&first, rest) = rest.split_first()?;
    let (len, rest) = if first < 0x80 {
        (first as usize, rest)
    } else {
        let n = (first & 0x7f) as usize;
        if n == 0 || n > 4 || rest.len() < n {
            return None;
        }
        let len = rest[..n]
            .iter()
            .fold(0usize, |acc, &b| (acc << 8) | b as usize);
        (len, &rest[n..])
    };
    if rest.len() < len {
        return None;
    }
    Some((tag, &rest[..len], &rest[len..]))
}

/// PKCS#8 PrivateKeyInfo -> (algorithm OID bytes, privateKey contents).
fn pkcs8_parts(der: &[u8]) -> Option<(&[u8], &[u8])> {
    let (0x30, info, _) = der_next(der)? else {
        return None;
    };
    let (0x02, _version, rest) = der_next(info)? else {
        return None;
    };
    let (0x30, algorithm, rest) = der_next(rest)? else {
        return None;
    };
    let (0x06, oid, _) = der_next(algorithm)? else {
        return None;
    };
    let (0x04, private_key, _) = der_next(rest)? else {
        return None;
    };
    Some((oid, private_key))
}

const OID_RSA: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01];
const OID_ED25519: &[u8] = &[0x2b, 0x65, 0x70];

/// An RSA private key in PKCS#1 (`BEGIN RSA PRIVATE KEY`) or PKCS#8
/// (`BEGIN PRIVATE KEY`, what openssl writes by default) PEM.
fn rsa_key(text: &str) -> Result<RsaKeyPair, String> {
    if let Some(der) = pem_der(text, "RSA PRIVATE KEY") {
        return RsaKeyPair::from_der(&der?).map_err(|e| format!("not a usable RSA key: {e}"));
    }
    let der = pem_der(text, "PRIVATE KEY").ok_or_else(|| {
        "expected a PEM RSA private key (BEGIN RSA PRIVATE KEY or BEGIN PRIVATE KEY)".to_owned()
    })??;
    let (oid, _) = pkcs8_parts(&der).ok_or("malformed PKCS#8 key")?;
    if oid != OID_RSA {
        return Err("the key is not an RSA key (wrong algorithm in config?)".to_owned());
    }
    let pair = RsaKeyPair::from_pkcs8(&der).map_err(|e| format!("not a usable RSA key: {e}"))?;
    if pair.public_modulus_len() < 128 {
        return Err("RSA keys shorter than 1024 bits are refused by receivers".to_owned());
    }
    Ok(pair)
}

/// An Ed25519 key as PKCS#8 PEM (`openssl genpkey -algorithm ed25519`) or
/// the base64 32-byte seed.
fn ed25519_key(text: &str) -> Result<Ed25519KeyPair, String> {
    let seed = match pem_der(text, "PRIVATE KEY") {
        Some(der) => {
            let der = der?;
            let (oid, private_key) = pkcs8_parts(&der).ok_or("malformed PKCS#8 key")?;
            if oid != OID_ED25519 {
                return Err("the key is not an Ed25519 key (wrong algorithm in config?)".to_owned());
            }
            // CurvePrivateKey ::= OCTET STRING (RFC 8410).
            match der_next(private_key) {
                Some((0x04, seed, _)) if seed.len() == 32 => seed.to_vec(),
                _ => return Err("malformed Ed25519 private key".to_owned()),
            }
        }
        None => match STANDARD.decode(text.trim()) {
            Ok(seed) if seed.len() == 32 => seed,
            _ => {
                return Err(
                    "expected PKCS#8 PEM (BEGIN PRIVATE KEY) or a base64 32-byte seed".to_owned(),
                );
            }
        },
    };
    Ed25519KeyPair::from_seed_unchecked(&seed).map_err(|e| format!("not a usable Ed25519 key: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(s: &str) -> String {
        String::from_utf8(relaxed_body(s.as_bytes())).unwrap()
    }

    #[test]
    fn relaxed_body_follows_rfc_6376_3_4_4() {
        // The RFC's own example (3.4.6), in CRLF form.
        assert_eq!(body(" C \r\nD \t E\r\n\r\n\r\n"), " C\r\nD E\r\n");
        assert_eq!(body(""), "");
        assert_eq!(body("\r\n\r\n"), "");
        assert_eq!(body("a"), "a\r\n");
        assert_eq!(body("a\r\n\r\nb \r\n"), "a\r\n\r\nb\r\n");
    }

    #[test]
    fn relaxed_header_follows_rfc_6376_3_4_2() {
        let mut out = Vec::new();
        relaxed_header(&mut out, "SUBJect", b" AbC\r\n\t d  e \t");
        assert_eq!(out, b"subject:AbC d e");
        // The RFC's example (3.4.6): "A: X" and "B : Y<TAB><CRLF><TAB>Z  ".
        let fields = header_fields(b"A: X\r\nB : Y\t\r\n\tZ  \r\n");
        let canon: Vec<String> = fields
            .iter()
            .map(|f| {
                let mut o = Vec::new();
                relaxed_header(&mut o, f.name, f.value);
                String::from_utf8(o).unwrap()
            })
            .collect();
        assert_eq!(canon, ["a:X", "b:Y Z"]);
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(2000))]
        /// The fast hash is the hash of the reference canonical form, for
        /// bodies made of the pieces that matter: spaces, tabs, CR, LF.
        #[test]
        fn the_fast_body_hashes_are_the_reference_one(
            body in proptest::collection::vec(
                proptest::prop_oneof![
                    proptest::prelude::Just(b' '),
                    proptest::prelude::Just(b'\t'),
                    proptest::prelude::Just(b'\r'),
                    proptest::prelude::Just(b'\n'),
                    proptest::prelude::Just(b'a'),
                    proptest::prelude::Just(b'='),
                ],
                0..60,
            )
        ) {
            let reference = digest::digest(&SHA256, &relaxed_body(&body));
            let fast = body_hash(&body);
            proptest::prop_assert_eq!(fast.as_ref(), reference.as_ref());
        }
    }

    #[test]
    fn bodies_already_relaxed_take_the_short_way_to_the_same_hash() {
        for b in [
            "a\r\nb c\r\n\r\n\r\n",
            "\r\n\r\n",
            "",
            "a",
            "a\r\n\r\nb",
            "\r\na\r\n",
        ] {
            assert!(already_relaxed(b.as_bytes()).is_some(), "{b:?}");
            let reference = digest::digest(&SHA256, &relaxed_body(b.as_bytes()));
            assert_eq!(
                body_hash(b.as_bytes()).as_ref(),
                reference.as_ref(),
                "{b:?}"
            );
        }
        for b in [
            "a \r\n", "a\tb\r\n", "a  b\r\n", "a\nb\r\n", "a\rb\r\n", "a ",
        ] {
            assert!(already_relaxed(b.as_bytes()).is_none(), "{b:?}");
        }
    }

    #[test]
    fn a_message_without_a_body_splits_cleanly() {
        assert_eq!(split_message(b"A: b\r\n\r\n"), (&b"A: b\r\n"[..], &b""[..]));
        assert_eq!(split_message(b"\r\nbody"), (&b""[..], &b"body"[..]));
    }
}
