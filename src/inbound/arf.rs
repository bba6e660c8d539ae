//! RFC 5965 abuse reports (ARF): the `message/feedback-report` body of a
//! `multipart/report; report-type=feedback-report` complaint, read into its
//! feedback type and the (often redacted) recipient it names.

use super::fields::{self, Item};

/// What one `message/feedback-report` part says.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Feedback {
    /// Lower-cased: `abuse`, `fraud`, `virus`, `other`, `not-spam`,
    /// `auth-failure`, or whatever a newer reporter sends.
    pub feedback_type: String,
    pub user_agent: Option<String>,
    pub version: Option<String>,
    /// `Original-Rcpt-To` values that are real addresses (not redacted).
    pub original_rcpt_to: Vec<String>,
    pub original_mail_from: Option<String>,
    pub arrival_date: Option<String>,
    pub source_ip: Option<String>,
    pub reporting_mta: Option<String>,
}

/// Reads a `message/feedback-report` body; `None` without a
/// `Feedback-Type`, the one field RFC 5965 cannot do without.
pub fn parse(text: &str) -> Option<Feedback> {
    let fields: Vec<_> = fields::parse(text)
        .into_iter()
        .filter_map(|i| match i {
            Item::Field(f) => Some(f),
            Item::Blank => None,
        })
        .collect();
    let feedback_type = fields::get(&fields, "feedback-type")?
        .split([' ', ';', '('])
        .next()
        .unwrap_or_default()
        .to_ascii_lowercase();
    if feedback_type.is_empty() {
        return None;
    }
    let mut original_rcpt_to = Vec::new();
    for f in fields.iter().filter(|f| {
        // Old AOL reports name the recipient in Removal-Recipient.
        f.name == "original-rcpt-to" || f.name == "removal-recipient"
    }) {
        if let Some(a) = fields::address(&f.value).filter(|a| !is_redacted(a))
            && !original_rcpt_to.contains(&a)
        {
            original_rcpt_to.push(a);
        }
    }
    let get = |name| fields::get(&fields, name).map(str::to_owned);
    Some(Feedback {
        feedback_type,
        user_agent: get("user-agent"),
        version: get("version"),
        original_rcpt_to,
        original_mail_from: fields::get(&fields, "original-mail-from").and_then(fields::address),
        arrival_date: get("arrival-date"),
        source_ip: get("source-ip"),
        reporting_mta: get("reporting-mta"),
    })
}

/// Providers redact the complaining recipient (RFC 6590): `xxxxxxxx@…`,
/// `redacted@…`, `****@…`. Such an "address" must never be suppressed;
/// the complaint is attributed through our own headers instead.
pub fn is_redacted(address: &str) -> bool {
    let local = address.rsplit_once('@').map_or(address, |(l, _)| l);
    let lower = local.to_ascii_lowercase();
    lower.is_empty()
        || lower.contains("redacted")
        || lower
            .bytes()
            .all(|b| matches!(b, b'x' | b'*' | b'#' | b'.' | b'-' | b'_'))
}

/// Whether a complaint of this type asks us to stop mailing. RFC 5965 says an
/// unknown type is to be treated as `other`.
pub fn suppresses(feedback_type: &str) -> bool {
    // `not-spam` is a reader rescuing our mail from the spam folder; `virus`
    // is a scanner's verdict and `auth-failure` a DKIM/SPF/DMARC failure
    // report: none of them is the reader asking to leave.
    !matches!(feedback_type, "not-spam" | "virus" | "auth-failure")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc5965_example() {
        // RFC 5965 appendix B.2's report body.
        let f = parse(
            "Feedback-Type: abuse\r\nUser-Agent: SomeGenerator/1.0\r\nVersion: 1\r\n\
             Original-Mail-From: <somespammer@example.net>\r\n\
             Original-Rcpt-To: <user@example.com>\r\n\
             Received-Date: Thu, 8 Mar 2005 14:00:00 EDT\r\n\
             Source-IP: 192.0.2.1\r\n\
             Authentication-Results: mail.example.com;\r\n               spf=fail smtp.mail=somespammer@example.com\r\n\
             Reported-Domain: example.net\r\n",
        )
        .unwrap();
        assert_eq!(f.feedback_type, "abuse");
        assert_eq!(f.user_agent.as_deref(), Some("SomeGenerator/1.0"));
        assert_eq!(f.version.as_deref(), Some("1"));
        assert_eq!(f.original_rcpt_to, ["user@example.com"]);
        assert_eq!(
            f.original_mail_from.as_deref(),
            Some("somespammer@example.net")
        );
        assert_eq!(f.source_ip.as_deref(), Some("192.0.2.1"));
    }

    #[test]
    fn redacted_recipients_are_not_addresses() {
        let f = parse("Feedback-Type: Abuse\nOriginal-Rcpt-To: xxxxxxxx@example.com\nOriginal-Rcpt-To: redacted@example.com\nOriginal-Rcpt-To: ****@example.com\n").unwrap();
        assert_eq!(f.feedback_type, "abuse");
        assert!(f.original_rcpt_to.is_empty());
        assert!(!is_redacted("max@example.com"));
        assert!(!is_redacted("x.y@example.com"));
        assert!(is_redacted("x.x@example.com"));
    }

    #[test]
    fn needs_a_feedback_type() {
        assert_eq!(parse("User-Agent: x\nVersion: 1\n"), None);
        assert_eq!(parse("Feedback-Type:\n"), None);
        assert_eq!(parse(""), None);
    }

    #[test]
    fn which_types_suppress() {
        for t in ["abuse", "fraud", "other", "opt-out", "something-new"] {
            assert!(suppresses(t), "{t}");
        }
        for t in ["not-spam", "virus", "auth-failure"] {
            assert!(!suppresses(t), "{t}");
        }
    }
}
