//! RFC 3464 delivery status notifications: the `message/delivery-status`
//! body (one per-message block, then one block per recipient) read into
//! recipients with their action, status and diagnostic.

use super::fields::{self, Field, Item};

/// What one `message/delivery-status` part says.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DeliveryStatus {
    pub reporting_mta: Option<String>,
    pub recipients: Vec<DsnRecipient>,
}

/// One per-recipient block, as reported (addresses without their type).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DsnRecipient {
    pub final_recipient: Option<String>,
    pub original_recipient: Option<String>,
    /// Lower-cased first word: `failed`, `delayed`, `delivered`, …
    pub action: Option<String>,
    /// The status code as given (`5.1.1`), comments dropped.
    pub status: Option<String>,
    pub diagnostic: Option<String>,
    pub remote_mta: Option<String>,
}

/// Fields that belong to a recipient, not to the message (RFC 3464 2.3,
/// plus what Exchange adds). One of these starts the recipient part.
const RECIPIENT_FIELDS: &[&str] = &[
    "original-recipient",
    "final-recipient",
    "action",
    "status",
    "remote-mta",
    "diagnostic-code",
    "last-attempt-date",
    "final-log-id",
    "will-retry-until",
    "x-actual-recipient",
    "x-display-name",
    "x-supplementary-info",
];

/// Fields that occur once per recipient: seeing one again means the next
/// recipient began, even without the blank line RFC 3464 asks for (some
/// Exchange versions and gateways leave it out).
const ONCE_PER_RECIPIENT: &[&str] = &["original-recipient", "final-recipient", "action", "status"];

/// Reads a `message/delivery-status` body. Never fails: a block without a
/// recipient address is dropped, and fields in an unexpected order (Exim
/// writes `Action` before `Final-Recipient`) are still read.
pub fn parse(text: &str) -> DeliveryStatus {
    let mut per_message: Vec<Field> = Vec::new();
    let mut blocks: Vec<Vec<Field>> = Vec::new();
    let mut current: Option<Vec<Field>> = None;
    for item in fields::parse(text) {
        match item {
            Item::Blank => {
                if let Some(block) = current.take() {
                    blocks.push(block);
                }
            }
            Item::Field(f) => {
                let starts_recipient = RECIPIENT_FIELDS.contains(&f.name.as_str());
                match current.as_mut() {
                    None if !starts_recipient && blocks.is_empty() => per_message.push(f),
                    None => current = Some(vec![f]),
                    Some(block) => {
                        let repeated = ONCE_PER_RECIPIENT.contains(&f.name.as_str())
                            && block.iter().any(|g| g.name == f.name);
                        if repeated {
                            blocks.push(std::mem::take(block));
                        }
                        block.push(f);
                    }
                }
            }
        }
    }
    if let Some(block) = current {
        blocks.push(block);
    }
    DeliveryStatus {
        reporting_mta: fields::get(&per_message, "reporting-mta").map(strip_type),
        recipients: blocks.iter().filter_map(|b| recipient(b)).collect(),
    }
}

fn recipient(block: &[Field]) -> Option<DsnRecipient> {
    let final_recipient = fields::get(block, "final-recipient")
        .or_else(|| fields::get(block, "x-actual-recipient"))
        .and_then(fields::address);
    let original_recipient = fields::get(block, "original-recipient").and_then(fields::address);
    if final_recipient.is_none() && original_recipient.is_none() {
        return None;
    }
    Some(DsnRecipient {
        final_recipient,
        original_recipient,
        action: fields::get(block, "action")
            .and_then(|a| a.split([' ', '(', ';']).next())
            .filter(|a| !a.is_empty())
            .map(str::to_ascii_lowercase),
        status: fields::get(block, "status")
            .and_then(super::status::Code::find)
            .map(|c| c.to_string()),
        diagnostic: fields::get(block, "diagnostic-code").map(str::to_owned),
        remote_mta: fields::get(block, "remote-mta").map(strip_type),
    })
}

/// `dns; mx.example` -> `mx.example`.
fn strip_type(value: &str) -> String {
    match value.split_once(';') {
        Some((_, rest)) => rest.trim().to_owned(),
        None => value.trim().to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn postfix_report_with_three_recipients() {
        let ds = parse(
            "Reporting-MTA: dns; relay.news.example.com\n\
             X-Postfix-Queue-ID: E40AC98F09A\n\
             X-Postfix-Sender: rfc822; bounces+x@news.example.com\n\
             Arrival-Date: Tue,  1 Dec 2026 17:00:26 +0000 (UTC)\n\
             \n\
             Final-Recipient: rfc822; ghost@local.example\n\
             Original-Recipient: rfc822;ghost@local.example\n\
             Action: failed\n\
             Status: 5.1.1\n\
             Diagnostic-Code: X-Postfix; mailbox unavailable\n\
             \n\
             Final-Recipient: rfc822; bob@users.example\n\
             Original-Recipient: rfc822;bob@users.example\n\
             Action: failed\n\
             Status: 5.1.1\n\
             Remote-MTA: dns; 127.0.0.1\n\
             Diagnostic-Code: smtp; 550 5.1.1 <bob@users.example>: Recipient address\n    rejected: User unknown in relay recipient table\n\
             \n\
             Final-Recipient: rfc822; x@soft.example\n\
             Action: delayed\n\
             Status: 4.3.0 (temporary)\n",
        );
        assert_eq!(ds.reporting_mta.as_deref(), Some("relay.news.example.com"));
        assert_eq!(ds.recipients.len(), 3);
        let bob = &ds.recipients[1];
        assert_eq!(bob.final_recipient.as_deref(), Some("bob@users.example"));
        assert_eq!(bob.original_recipient.as_deref(), Some("bob@users.example"));
        assert_eq!(bob.action.as_deref(), Some("failed"));
        assert_eq!(bob.status.as_deref(), Some("5.1.1"));
        assert_eq!(bob.remote_mta.as_deref(), Some("127.0.0.1"));
        assert_eq!(
            bob.diagnostic.as_deref(),
            Some(
                "smtp; 550 5.1.1 <bob@users.example>: Recipient address rejected: User unknown in relay recipient table"
            )
        );
        assert_eq!(ds.recipients[2].action.as_deref(), Some("delayed"));
        assert_eq!(ds.recipients[2].status.as_deref(), Some("4.3.0"));
    }

    #[test]
    fn exim_order_and_missing_blank_lines() {
        // Exim: Action first. Then two recipients with no blank line between.
        let ds = parse(
            "Reporting-MTA: dns; mx.exim.example\n\nAction: failed\nFinal-Recipient: rfc822;a@x.example\nStatus: 5.0.0\n\
             Final-Recipient: rfc822;b@x.example\nAction: delayed\nStatus: 4.0.0\n",
        );
        let got: Vec<_> = ds
            .recipients
            .iter()
            .map(|r| {
                (
                    r.final_recipient.as_deref(),
                    r.action.as_deref(),
                    r.status.as_deref(),
                )
            })
            .collect();
        assert_eq!(
            got,
            [
                (Some("a@x.example"), Some("failed"), Some("5.0.0")),
                (Some("b@x.example"), Some("delayed"), Some("4.0.0")),
            ]
        );
    }

    #[test]
    fn per_message_and_recipient_fields_in_one_block() {
        let ds = parse(
            "reporting-mta: dns; gw\nfinal-recipient: rfc822; a@b.example\naction: FAILED\nstatus: 5.1.1\n",
        );
        assert_eq!(ds.reporting_mta.as_deref(), Some("gw"));
        assert_eq!(ds.recipients.len(), 1);
        assert_eq!(ds.recipients[0].action.as_deref(), Some("failed"));
    }

    #[test]
    fn blocks_without_an_address_are_dropped() {
        let ds = parse(
            "Reporting-MTA: dns; x\n\nAction: failed\nStatus: 5.1.1\n\nFinal-Recipient: rfc822; nonsense\nAction: failed\n",
        );
        assert!(ds.recipients.is_empty());
        assert_eq!(parse(""), DeliveryStatus::default());
    }
}
