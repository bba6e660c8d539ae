//! Automatic replies (RFC 3834): vacation and out-of-office notices, ticket
//! acknowledgements and other machine answers that reach the return path.
//! They are recognised so that they are ignored, never taken for bounces.

use super::parts::Parsed;

/// Whether the message is an automatic reply. Checked only after bounces
/// and complaints, which carry `Auto-Submitted` too (Postfix and Exim put
/// `auto-replied` on every bounce).
pub fn is_auto_reply(msg: &Parsed) -> bool {
    let header = |name: &str| msg.header(name).map(|v| v.trim().to_ascii_lowercase());
    // RFC 3834: anything but "no" is automatic.
    if let Some(v) = header("Auto-Submitted") {
        let kind = v.split([';', ' ', '(']).next().unwrap_or_default();
        if !kind.is_empty() && kind != "no" {
            return true;
        }
    }
    // Older responders and Microsoft's.
    for name in [
        "X-Autoreply",
        "X-Autorespond",
        "X-Autoresponder",
        "X-Auto-Reply",
    ] {
        if header(name).is_some_and(|v| v != "no" && v != "false") {
            return true;
        }
    }
    let precedence = header("Precedence").or_else(|| header("X-Precedence"));
    if precedence.as_deref() == Some("auto_reply") {
        return true;
    }
    // A subject alone is a weak signal (a person may write "Out of office
    // until Monday, but please unsubscribe me"), but together with a bulk
    // precedence or Exchange's suppression header it is what responders
    // without RFC 3834 headers send.
    let subject_says_so = msg.subject.as_deref().is_some_and(subject_is_auto_reply);
    let machine_hint = matches!(precedence.as_deref(), Some("bulk" | "junk" | "list"))
        || msg.header("X-Auto-Response-Suppress").is_some()
        || msg.header("X-MS-Exchange-Inbox-Rules-Loop").is_some()
        || msg.header("X-Vacation").is_some();
    subject_says_so && (machine_hint || !asks_to_unsubscribe(msg))
}

/// Subjects of out-of-office and automatic replies in the languages a
/// newsroom's readers are most likely to write in.
pub fn subject_is_auto_reply(subject: &str) -> bool {
    let s = subject.to_lowercase();
    AUTO_SUBJECTS.iter().any(|p| s.contains(p))
}

/// A reply that asks to be unsubscribed is a person's request, whatever its
/// subject says.
fn asks_to_unsubscribe(msg: &Parsed) -> bool {
    msg.texts
        .first()
        .is_some_and(|t| t.to_lowercase().contains("unsubscribe"))
}

const AUTO_SUBJECTS: &[&str] = &[
    "out of office",
    "out of the office",
    "out-of-office",
    "automatic reply",
    "auto reply",
    "auto-reply",
    "autoreply",
    "auto response",
    "auto-response",
    "autoresponse",
    "automated response",
    "on vacation",
    "vacation reply",
    "away from the office",
    "away from my desk",
    // German
    "abwesenheitsnotiz",
    "automatische antwort",
    "außer haus",
    "nicht im büro",
    // French
    "réponse automatique",
    "reponse automatique",
    "absence du bureau",
    "message d'absence",
    // Spanish, Portuguese
    "respuesta automática",
    "respuesta automatica",
    "fuera de la oficina",
    "resposta automática",
    "resposta automatica",
    "ausente do escritório",
    // Italian
    "risposta automatica",
    "fuori sede",
    "fuori ufficio",
    // Dutch
    "automatisch antwoord",
    "afwezigheidsbericht",
    "niet aanwezig",
    // Nordic, Polish
    "frånvaro",
    "autosvar",
    "automatisk svar",
    "fraværende",
    "automatyczna odpowiedź",
    "poza biurem",
];

#[cfg(test)]
mod tests {
    use super::*;

    fn auto(raw: &str) -> bool {
        is_auto_reply(&super::super::parts::parse(raw.as_bytes()).unwrap())
    }

    #[test]
    fn rfc3834_headers() {
        assert!(auto(
            "Auto-Submitted: auto-replied\r\nSubject: Re: Morning Brief\r\n\r\nI'm away.\r\n"
        ));
        assert!(auto(
            "Auto-Submitted: Auto-Generated (vacation)\r\nSubject: x\r\n\r\nx\r\n"
        ));
        assert!(!auto(
            "Auto-Submitted: no\r\nSubject: Re: Morning Brief\r\n\r\nThanks!\r\n"
        ));
        assert!(auto("X-Autoreply: yes\r\nSubject: x\r\n\r\nx\r\n"));
        assert!(auto("Precedence: auto_reply\r\nSubject: x\r\n\r\nx\r\n"));
    }

    #[test]
    fn subjects_need_a_second_signal_or_a_plain_body() {
        assert!(auto(
            "Subject: Automatic reply: Morning Brief\r\nX-Auto-Response-Suppress: All\r\n\r\nI am out until Monday.\r\n"
        ));
        assert!(auto(
            "Subject: Abwesenheitsnotiz: Morning Brief\r\n\r\nIch bin bis Montag nicht im Büro.\r\n"
        ));
        assert!(auto(
            "Subject: =?utf-8?q?R=C3=A9ponse_automatique?=\r\n\r\nAbsent.\r\n"
        ));
        // A person writing in their own words, asking to leave: not a machine.
        assert!(!auto(
            "Subject: Out of office? No, please unsubscribe me\r\n\r\nPlease unsubscribe me.\r\n"
        ));
        assert!(!auto(
            "Subject: Re: Morning Brief\r\n\r\nGreat issue today.\r\n"
        ));
    }
}
