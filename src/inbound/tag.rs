//! VERP tags: the HMAC-protected reference to one (edition, recipient) pair
//! that rides in each message's envelope sender (`bounces+<tag>@…`) and in its
//! per-recipient `mailto:` unsubscribe address (`unsubscribe+<tag>@…`).

use hmac::{Hmac, Mac};
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

/// Bytes of the HMAC kept in a tag: 80 bits, 16 base32 characters. Forging a
/// tag means guessing these; at 2^80 that is out of reach, and it still fits
/// a local part with room to spare (see [`MAX_TAG_LEN`]).
const MAC_BYTES: usize = 10;
const MAC_CHARS: usize = 16;

/// The longest tag [`encode`] can produce: two 13-digit base36 numbers, the
/// MAC and two dashes. `unsubscribe+` plus this is 56 octets, under the 64
/// that RFC 5321 allows a local part.
pub const MAX_TAG_LEN: usize = 13 + 1 + 13 + 1 + MAC_CHARS;

/// The longest local part RFC 5321 (4.5.3.1.1) lets a server insist on.
pub const MAX_LOCAL_PART: usize = 64;

/// Domain separation: the same secret may also sign unsubscribe URLs
/// (`mail::token`), whose messages start with `v1\n`; a VERP MAC can never be
/// replayed as one of those, or the other way round.
const CONTEXT: &[u8] = b"briefing-verp-v1\0";

const BASE32: &[u8; 32] = b"abcdefghijklmnopqrstuvwxyz234567";
const BASE36: &[u8; 36] = b"0123456789abcdefghijklmnopqrstuvwxyz";

/// The tag for one delivery: `<edition>-<recipient>-<mac>`.
///
/// Format (version 1), for anyone who must produce or check one elsewhere:
///
/// - `edition` and `recipient` are the ledger's numeric row ids (u64), written
///   in lower-case base36 (`0-9a-z`), shortest form, `0` for zero.
/// - `mac` = the first 10 bytes of
///   `HMAC-SHA256(key = secret, "briefing-verp-v1" 0x00 || be64(edition) || be64(recipient))`,
///   where `be64` is the 8-byte big-endian encoding, written in RFC 4648
///   base32 with the lower-case alphabet `a-z2-7` and no padding: always 16
///   characters.
/// - Only `[a-z0-9-]` occurs, so an MTA that lower-cases local parts, or one
///   that is case-insensitive about them, changes nothing; decoding ignores
///   case. The longest tag is [`MAX_TAG_LEN`] (44) characters.
///
/// Test vector: secret `s3cret`, edition 7, recipient 1234 gives
/// `7-ya-tsuye42yh44ufybw` (checked in the unit tests, and by hand with
/// Python's `hmac` and `base64.b32encode`).
pub fn encode(edition: u64, recipient: u64, secret: &[u8]) -> String {
    let mac = mac(secret, edition, recipient).finalize().into_bytes();
    let mut tag = base36(edition);
    tag.push('-');
    tag.push_str(&base36(recipient));
    tag.push('-');
    tag.push_str(&base32(&mac[..MAC_BYTES]));
    tag
}

/// A tag that verified: the ids it carries, and which secret signed it
/// (0 = the current one, 1 = the previous one during a rotation…).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Verified {
    pub edition: u64,
    pub recipient: u64,
    pub secret_index: usize,
}

/// The (edition, recipient) a tag refers to, if one of `secrets` signed it.
/// Case-insensitive; the MAC comparison is constant-time.
pub fn decode(tag: &str, secrets: &[&[u8]]) -> Option<(u64, u64)> {
    verify(tag, secrets).map(|v| (v.edition, v.recipient))
}

/// Like [`decode`], also saying which secret matched, so a caller can see
/// when links signed with a retired secret are still coming back.
pub fn verify(tag: &str, secrets: &[&[u8]]) -> Option<Verified> {
    if tag.len() > MAX_TAG_LEN || !tag.is_ascii() {
        return None;
    }
    let lower = tag.to_ascii_lowercase();
    let mut parts = lower.split('-');
    let (Some(e), Some(r), Some(m), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return None;
    };
    let edition = unbase36(e)?;
    let recipient = unbase36(r)?;
    let claimed = unbase32(m)?;
    // Try every secret, not stopping at the first match, so that the time
    // taken does not say which one (if any) matched.
    let mut found = None;
    for (i, secret) in secrets.iter().enumerate() {
        let ok = mac(secret, edition, recipient)
            .verify_truncated_left(&claimed)
            .is_ok();
        if ok && found.is_none() {
            found = Some(i);
        }
    }
    found.map(|secret_index| Verified {
        edition,
        recipient,
        secret_index,
    })
}

/// The number a tag carries for a recipient: the first 8 bytes (big-endian)
/// of SHA-256 of the lower-cased address, the same bytes whose hex is the
/// hash in our Message-IDs (`mail::message::message_id`). Nothing per
/// recipient need be stored for it: the ledger finds the address by
/// hashing the edition's recipients.
pub fn recipient_ref(email: &str) -> u64 {
    use sha2::Digest;
    let digest = Sha256::digest(email.to_ascii_lowercase().as_bytes());
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest[..8]);
    u64::from_be_bytes(first)
}

/// `local+tag@domain` from a base address such as `bounces@news.example.com`,
/// or `None` when the base is not `local@domain` or the local part would
/// exceed 64 octets (some servers refuse such an envelope sender outright).
pub fn address(base: &str, tag: &str) -> Option<String> {
    let (local, domain) = base.rsplit_once('@')?;
    if local.is_empty() || domain.is_empty() || local.contains('+') {
        return None;
    }
    if local.len() + 1 + tag.len() > MAX_LOCAL_PART {
        return None;
    }
    Some(format!("{local}+{tag}@{domain}"))
}

fn mac(secret: &[u8], edition: u64, recipient: u64) -> HmacSha256 {
    let mut mac = <HmacSha256 as Mac>::new_from_slice(secret)
        .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length"));
    mac.update(CONTEXT);
    mac.update(&edition.to_be_bytes());
    mac.update(&recipient.to_be_bytes());
    mac
}

fn base36(mut n: u64) -> String {
    let mut digits = Vec::with_capacity(13);
    loop {
        digits.push(BASE36[(n % 36) as usize]);
        n /= 36;
        if n == 0 {
            break;
        }
    }
    digits.reverse();
    // Only ASCII digits and letters were pushed.
    String::from_utf8(digits).unwrap_or_default()
}

/// Only the shortest form is accepted (no leading zeros): one number, one
/// spelling, so a tag cannot be varied while still verifying.
fn unbase36(s: &str) -> Option<u64> {
    if s.is_empty() || s.len() > 13 || (s.len() > 1 && s.starts_with('0')) {
        return None;
    }
    let mut n: u64 = 0;
    for b in s.bytes() {
        let d = match b {
            b'0'..=b'9' => b - b'0',
            b'a'..=b'z' => b - b'a' + 10,
            _ => return None,
        };
        n = n.checked_mul(36)?.checked_add(u64::from(d))?;
    }
    Some(n)
}

fn base32(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len().div_ceil(5) * 8);
    let mut buffer: u32 = 0;
    let mut bits = 0;
    for &b in bytes {
        buffer = (buffer << 8) | u32::from(b);
        bits += 8;
        while bits >= 5 {
            bits -= 5;
            out.push(BASE32[((buffer >> bits) & 31) as usize] as char);
        }
    }
    if bits > 0 {
        out.push(BASE32[((buffer << (5 - bits)) & 31) as usize] as char);
    }
    out
}

fn unbase32(s: &str) -> Option<Vec<u8>> {
    if s.len() != MAC_CHARS {
        return None;
    }
    let mut out = Vec::with_capacity(MAC_BYTES);
    let mut buffer: u32 = 0;
    let mut bits = 0;
    for b in s.bytes() {
        let v = match b {
            b'a'..=b'z' => b - b'a',
            b'2'..=b'7' => b - b'2' + 26,
            _ => return None,
        };
        buffer = (buffer << 5) | u32::from(v);
        bits += 5;
        if bits >= 8 {
            bits -= 8;
            out.push((buffer >> bits) as u8);
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: &[u8] = b"s3cret";

    #[test]
    fn test_vector_from_the_doc_comment() {
        assert_eq!(encode(7, 1234, S), "7-ya-tsuye42yh44ufybw");
        assert_eq!(decode("7-ya-tsuye42yh44ufybw", &[S]), Some((7, 1234)));
    }

    #[test]
    fn round_trips_and_fits_a_local_part() {
        for (e, r) in [(0, 0), (1, 2), (u64::MAX, u64::MAX), (36, 35), (99_999, 7)] {
            let tag = encode(e, r, S);
            assert!(tag.len() <= MAX_TAG_LEN, "{tag}");
            assert!(
                tag.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            );
            assert_eq!(decode(&tag, &[S]), Some((e, r)), "{tag}");
            let addr = address("unsubscribe@news.example.com", &tag).unwrap();
            assert!(addr.split('@').next().unwrap().len() <= MAX_LOCAL_PART);
        }
        assert_eq!(
            encode(u64::MAX, u64::MAX, S).len(),
            MAX_TAG_LEN,
            "the bound is tight"
        );
    }

    #[test]
    fn survives_an_mta_that_changes_case() {
        let tag = encode(42, 4242, S);
        assert_eq!(decode(&tag.to_ascii_uppercase(), &[S]), Some((42, 4242)));
    }

    #[test]
    fn rejects_forgeries_and_tampering() {
        let tag = encode(42, 4242, S);
        assert_eq!(decode(&tag, &[b"other"]), None);
        // Another recipient with the same MAC.
        let (_, mac) = tag.rsplit_once('-').unwrap();
        assert_eq!(decode(&format!("16-39t-{mac}"), &[S]), None);
        // Every single-character change of the MAC.
        for i in tag.len() - MAC_CHARS..tag.len() {
            let mut b = tag.clone().into_bytes();
            b[i] = if b[i] == b'a' { b'b' } else { b'a' };
            let t = String::from_utf8(b).unwrap();
            assert_eq!(decode(&t, &[S]), None, "{t}");
        }
        // A leading zero spells the same number differently: refused.
        assert_eq!(decode(&format!("0{tag}"), &[S]), None);
        for bad in [
            "",
            "-",
            "--",
            "a-b",
            "a-b-c-d",
            "16-39t-",
            "16-39t-aaaaaaaaaaaaaaa1",
            "é-b-aaaaaaaaaaaaaaaa",
        ] {
            assert_eq!(decode(bad, &[S]), None, "{bad:?}");
        }
        // Truncated: fewer MAC characters never verify.
        assert_eq!(decode(&tag[..tag.len() - 1], &[S]), None);
        // Overflowing numbers.
        assert_eq!(decode("3w5e11264sgsg-0-aaaaaaaaaaaaaaaa", &[S]), None);
    }

    #[test]
    fn previous_secret_still_verifies_during_rotation() {
        let old = encode(5, 6, b"old");
        let v = verify(&old, &[b"new", b"old"]).unwrap();
        assert_eq!((v.edition, v.recipient, v.secret_index), (5, 6, 1));
        assert_eq!(verify(&old, &[b"new"]), None);
        assert_eq!(verify(&old, &[]), None);
    }

    #[test]
    fn base_conversions_agree_with_known_values() {
        assert_eq!(base36(0), "0");
        assert_eq!(base36(35), "z");
        assert_eq!(base36(36), "10");
        assert_eq!(base36(u64::MAX), "3w5e11264sgsf");
        assert_eq!(unbase36("3w5e11264sgsf"), Some(u64::MAX));
        // RFC 4648 test vector, lower-cased: "foobar" -> MZXW6YTBOI.
        assert_eq!(base32(b"foobar"), "mzxw6ytboi");
        let bytes = [0xff, 0, 0x55, 0xaa, 1, 2, 3, 4, 5, 6];
        assert_eq!(unbase32(&base32(&bytes)).unwrap(), bytes);
    }

    #[test]
    fn address_respects_the_local_part_limit() {
        let tag = encode(1, 2, S);
        assert_eq!(
            address("bounces@news.example.com", &tag).unwrap(),
            format!("bounces+{tag}@news.example.com")
        );
        let long = format!("{}@x.example", "b".repeat(30));
        assert_eq!(address(&long, &encode(u64::MAX, u64::MAX, S)), None);
        assert_eq!(address("no-at-sign", &tag), None);
        assert_eq!(address("a+b@x.example", &tag), None);
    }
}
