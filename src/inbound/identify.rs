//! Whose mail a returned message is about: VERP tags that verify, our own
//! deterministic Message-IDs wherever the original's headers survive, and
//! the original's Message-ID when it is plainly someone else's.

use super::tag;

/// Where a tag was found: after the bounce address's local part, or after
/// the mailed-unsubscribe address's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Via {
    Bounce,
    Unsubscribe,
}

/// A tag that verified with one of the configured secrets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TagRef {
    /// The ledger's edition row id.
    pub edition: u64,
    /// The ledger's delivery (recipient) row id.
    pub recipient: u64,
    /// 0 for the current secret, 1 for the previous one, …
    pub secret_index: usize,
    pub via: Via,
    /// The tag as found (lower-cased).
    pub tag: String,
}

/// One of our Message-IDs, `<edition-part.hash@domain>` (see
/// `mail::message::message_id`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OurMessageId {
    /// With angle brackets, as found.
    pub id: String,
    /// The part before the hash: the edition id, or `edition-id.tag` for a
    /// test copy. As found; an MTA that lower-cased headers lower-cased it
    /// too, so look it up case-insensitively.
    pub edition_part: String,
    /// The first 16 hex digits of SHA-256 of the lower-cased recipient
    /// address.
    pub recipient_hash: String,
}

/// Most tag candidates checked per message: each costs an HMAC per secret,
/// and a message stuffed with `bounces+…` strings must stay cheap.
const MAX_CANDIDATES: usize = 64;

/// Collects tags and Message-IDs from several texts, in priority order.
pub struct Finder<'a> {
    bounce_local: Option<String>,
    unsubscribe_local: Option<String>,
    secrets: Vec<&'a [u8]>,
    domains: Vec<String>,
    exclude_id: Option<String>,
    budget: usize,
    pub tags: Vec<TagRef>,
    /// The first tag-shaped string that did not verify (forged, damaged, or
    /// signed with a secret no longer configured).
    pub unverified: Option<String>,
    pub message_ids: Vec<OurMessageId>,
}

impl<'a> Finder<'a> {
    /// `bounce`/`unsubscribe` are base addresses (`bounces@news.example.com`);
    /// `domains` our Message-ID domains; `exclude_id` the returned message's
    /// own Message-ID (never evidence, even if a relay gave it our domain).
    pub fn new(
        bounce: Option<&str>,
        unsubscribe: Option<&str>,
        secrets: Vec<&'a [u8]>,
        domains: &[String],
        exclude_id: Option<&str>,
    ) -> Self {
        let local = |a: Option<&str>| {
            a.and_then(|a| a.rsplit_once('@'))
                .map(|(l, _)| l.to_ascii_lowercase())
                .filter(|l| !l.is_empty())
        };
        Finder {
            bounce_local: local(bounce),
            unsubscribe_local: local(unsubscribe),
            secrets,
            domains: domains
                .iter()
                .map(|d| d.trim().to_ascii_lowercase())
                .filter(|d| !d.is_empty())
                .collect(),
            exclude_id: exclude_id.map(str::to_ascii_lowercase),
            budget: MAX_CANDIDATES,
            tags: Vec::new(),
            unverified: None,
            message_ids: Vec::new(),
        }
    }

    /// Searches one text for tags and Message-IDs.
    pub fn scan(&mut self, text: &str) {
        let lower = text.to_ascii_lowercase();
        for via in [Via::Bounce, Via::Unsubscribe] {
            let local = match via {
                Via::Bounce => self.bounce_local.clone(),
                Via::Unsubscribe => self.unsubscribe_local.clone(),
            };
            if let Some(local) = local {
                self.scan_tags(&lower, &local, via);
            }
        }
        for domain in self.domains.clone() {
            self.scan_ids(text, &lower, &domain);
        }
    }

    fn scan_tags(&mut self, lower: &str, local: &str, via: Via) {
        let needle = format!("{local}+");
        for (i, _) in lower.match_indices(&needle) {
            // Part of a longer local part (`xbounces+…`) is not ours. `=`
            // precedes it in an SRS-rewritten address, which is.
            let before = lower[..i].bytes().next_back();
            if before.is_some_and(|b| b.is_ascii_alphanumeric() || b"._-+".contains(&b)) {
                continue;
            }
            let rest = &lower[i + needle.len()..];
            let len = rest
                .bytes()
                .take(tag::MAX_TAG_LEN + 1)
                .take_while(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'-')
                .count();
            if len == 0 || len > tag::MAX_TAG_LEN {
                continue;
            }
            let candidate = &rest[..len];
            if self.tags.iter().any(|t| t.tag == candidate) {
                continue;
            }
            if self.budget == 0 {
                return;
            }
            self.budget -= 1;
            match tag::verify(candidate, &self.secrets) {
                Some(v) => self.tags.push(TagRef {
                    edition: v.edition,
                    recipient: v.recipient,
                    secret_index: v.secret_index,
                    via,
                    tag: candidate.to_owned(),
                }),
                None => {
                    if self.unverified.is_none() {
                        self.unverified = Some(candidate.to_owned());
                    }
                }
            }
        }
    }

    fn scan_ids(&mut self, text: &str, lower: &str, domain: &str) {
        let needle = format!("@{domain}>");
        for (at, _) in lower.match_indices(&needle) {
            // Our ids are short: look back a bounded distance only, so that
            // a text full of `@domain>` costs linear time.
            let from = at.saturating_sub(250);
            let Some(open) = lower.as_bytes()[from..at]
                .iter()
                .rposition(|&b| b == b'<')
                .map(|p| from + p)
            else {
                continue;
            };
            let end = at + needle.len();
            let (Some(id), Some(left)) = (text.get(open..end), text.get(open + 1..at)) else {
                continue;
            };
            if self.exclude_id.as_deref() == Some(&lower[open..end]) {
                continue;
            }
            if let Some(found) = our_message_id(id, left)
                && !self.message_ids.iter().any(|m| m.id == found.id)
            {
                self.message_ids.push(found);
            }
        }
    }
}

/// `left` of `<left@domain>` in our shape: `edition-part.` then 16 hex
/// digits, only RFC 5322 atext and dots. Relays' own ids (Postfix's
/// `<20261201170027.025E698F0A6@…>`) do not have this shape.
fn our_message_id(id: &str, left: &str) -> Option<OurMessageId> {
    let (edition_part, hash) = left.rsplit_once('.')?;
    let hex = hash.len() == 16
        && hash
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
    let atext = left
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-/=?^_`{|}~.".contains(&b));
    (hex && atext && !edition_part.is_empty() && !edition_part.starts_with('.')).then(|| {
        OurMessageId {
            id: id.to_owned(),
            edition_part: edition_part.to_owned(),
            recipient_hash: hash.to_owned(),
        }
    })
}

/// The local part and domain of a base address, lower-cased.
pub fn split_base(base: &str) -> Option<(String, String)> {
    let (l, d) = base.trim().rsplit_once('@')?;
    (!l.is_empty() && !d.is_empty()).then(|| (l.to_ascii_lowercase(), d.to_ascii_lowercase()))
}

/// Whether `address` is the base address itself or `local+anything@domain`.
pub fn is_base_address(address: &str, base: &(String, String)) -> bool {
    let Some((l, d)) = address.trim().rsplit_once('@') else {
        return false;
    };
    let l = l.to_ascii_lowercase();
    d.eq_ignore_ascii_case(&base.1)
        && (l == base.0
            || l.strip_prefix(base.0.as_str())
                .is_some_and(|rest| rest.starts_with('+')))
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: &[u8] = b"test-verp-secret";

    fn finder() -> Finder<'static> {
        Finder::new(
            Some("bounces@news.example.com"),
            Some("unsubscribe@news.example.com"),
            vec![S, b"old-verp-secret"],
            &["news.example.com".to_owned()],
            Some("<20261201170027.025E698F0A6@news.example.com>"),
        )
    }

    #[test]
    fn finds_tags_in_addresses_and_srs() {
        let t = tag::encode(7, 42, S);
        let mut f = finder();
        f.scan(&format!(
            "To: bounces+{}@news.example.com\n",
            t.to_uppercase()
        ));
        f.scan(&format!(
            "Return-Path: <SRS0=abcd=TT=news.example.com=bounces+{t}@fwd.example>"
        ));
        assert_eq!(f.tags.len(), 1, "the same tag once");
        assert_eq!(
            (f.tags[0].edition, f.tags[0].recipient, f.tags[0].via),
            (7, 42, Via::Bounce)
        );
        let old = tag::encode(8, 43, b"old-verp-secret");
        f.scan(&format!(
            "List-Unsubscribe: <mailto:unsubscribe+{old}@news.example.com>"
        ));
        assert_eq!(f.tags[1].secret_index, 1);
        assert_eq!(f.tags[1].via, Via::Unsubscribe);
        assert_eq!(f.unverified, None);
    }

    #[test]
    fn forged_tags_are_noted_not_trusted() {
        let mut f = finder();
        f.scan("To: bounces+7-16-aaaaaaaaaaaaaaaa@news.example.com");
        f.scan("To: xbounces+7-16-bbbbbbbbbbbbbbbb@news.example.com");
        assert!(f.tags.is_empty());
        assert_eq!(f.unverified.as_deref(), Some("7-16-aaaaaaaaaaaaaaaa"));
    }

    #[test]
    fn the_candidate_budget_bounds_the_work() {
        let mut f = finder();
        let spam: String = (0..10_000)
            .map(|i| format!("bounces+{i}-1-aaaaaaaaaaaaaaaa "))
            .collect();
        f.scan(&spam);
        let good = tag::encode(1, 1, S);
        f.scan(&format!("bounces+{good}@x"));
        assert!(f.tags.is_empty(), "the budget is spent");
        assert_eq!(f.budget, 0);
    }

    #[test]
    fn finds_our_message_ids_only() {
        let mut f = finder();
        f.scan(
            "Message-Id: <20261201170027.025E698F0A6@news.example.com>\n\
             From: Morning Brief <brief@news.example.com>\n\
             Message-ID: <am-2026-11-30T0600.0123456789abcdef@News.Example.COM>\n\
             References: <am-2026-11-30T0600.test-1.fedcba9876543210@news.example.com> <x.0123456789abcdef@other.example>\n",
        );
        let ids: Vec<_> = f
            .message_ids
            .iter()
            .map(|m| (m.edition_part.as_str(), m.recipient_hash.as_str()))
            .collect();
        assert_eq!(
            ids,
            [
                ("am-2026-11-30T0600", "0123456789abcdef"),
                ("am-2026-11-30T0600.test-1", "fedcba9876543210")
            ]
        );
        assert_eq!(
            f.message_ids[0].id,
            "<am-2026-11-30T0600.0123456789abcdef@News.Example.COM>"
        );
    }

    #[test]
    fn base_addresses() {
        let base = split_base("Unsubscribe@News.Example.com").unwrap();
        assert!(is_base_address("unsubscribe@news.example.com", &base));
        assert!(is_base_address("UNSUBSCRIBE+abc@news.example.com", &base));
        assert!(!is_base_address("unsubscribers@news.example.com", &base));
        assert!(!is_base_address("unsubscribe@other.example", &base));
        assert!(split_base("nope").is_none());
    }
}
