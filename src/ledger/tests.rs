//! The ledger's behaviour: freezing, outcomes, leases, migrations, the
//! return path. What both backends do is tested on both (`on_sqlite::…`,
//! `on_postgres::…`, the latter on a throwaway PostgreSQL server); the
//! migrations of old SQLite files and SQLite's own locking on SQLite.

use super::sqlite::MIGRATIONS;
use super::store::OPEN;
use super::*;
use chrono::{TimeDelta, TimeZone};
use rusqlite::Connection;

/// Runs each named test (a `fn(Location)`) on a new SQLite file and on a
/// new PostgreSQL database.
macro_rules! on_both_backends {
    ($($name:ident),* $(,)?) => {
        mod on_sqlite {
            $(
                #[test]
                fn $name() {
                    let dir = tempfile::tempdir().unwrap();
                    super::$name(crate::ledger::Location::Sqlite(dir.path().join("l.sqlite")));
                }
            )*
        }
        mod on_postgres {
            $(
                #[test]
                fn $name() {
                    super::$name(crate::ledger::throwaway::ledger());
                }
            )*
        }
    };
}

on_both_backends!(
    lease_is_shared_between_connections,
    refreezing_keeps_the_first_copy,
    freeze_is_all_or_nothing,
    duplicate_recipients_first_wins,
    outcomes_pending_failed_and_no_downgrade,
    in_doubt_is_resent_once_then_final,
    a_deferred_resend_keeps_its_doubt,
    senders_join_an_edition_renew_and_take_over_the_stopped,
    claims_split_an_edition_between_senders_and_free_a_stopped_senders_share,
    senders_claiming_at_once_never_get_one_recipient_twice,
    a_batch_naming_a_recipient_twice_is_recorded_in_order,
    edition_states_and_summaries,
    frozen_edition_can_become_missed,
    a_readers_own_suppressions_and_preferences_are_found_by_address,
    a_web_rendering_is_frozen_with_its_edition_and_read_alone,
    a_subscriber_is_stored_once_per_newsletter_and_a_second_consent_renews_the_first,
    confirming_lifts_only_the_readers_own_unsubscribes_and_narrows_one_from_everything,
    an_older_consent_or_an_import_never_replaces_a_newer_one,
    a_link_used_again_after_an_unsubscribe_does_not_undo_it,
);

fn edition(id: &str) -> FrozenEdition {
    FrozenEdition {
        id: id.to_owned(),
        newsletter: "am".to_owned(),
        slot_utc: Utc.with_ymd_and_hms(2026, 11, 30, 6, 0, 0).unwrap(),
        zone: "Europe/Lisbon".to_owned(),
        renderings: vec![
            Rendering {
                subject: "Morning Brief".to_owned(),
                html: "<p>all</p>".to_owned(),
                text: "all".to_owned(),
                item_ids: vec!["world/trade".to_owned(), "local/rain".to_owned()],
            },
            Rendering {
                subject: "Morning Brief (EU)".to_owned(),
                html: "<p>eu</p>".to_owned(),
                text: "eu".to_owned(),
                item_ids: vec!["world/trade".to_owned()],
            },
        ],
        web: None,
    }
}

fn recipients(n: usize) -> Vec<Recipient> {
    (0..n)
        .map(|i| Recipient {
            email: format!("r{i}@example.com"),
            name: Some(format!("Reader {i}")),
            fields: [("city".to_string(), format!("City {i}"))].into(),
            rendering: (i % 2) as u32,
        })
        .collect()
}

fn outcome(email: &str, state: DeliveryState, reply: &str) -> DeliveryUpdate {
    DeliveryUpdate {
        edition_id: "am-1".to_owned(),
        email: email.to_owned(),
        state,
        attempts: 1,
        reply: Some(reply.to_owned()),
    }
}

#[test]
fn open_creates_parent_dir_and_survives_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state/nested/ledger.sqlite");
    {
        let mut ledger = Ledger::open(&path).unwrap();
        assert!(
            ledger
                .freeze_edition(&edition("am-1"), &recipients(4))
                .unwrap()
        );
        ledger
            .record_batch(&[outcome("r0@example.com", DeliveryState::Sent, "250 ok")])
            .unwrap();
    }
    let ledger = Ledger::open(&path).unwrap();
    let stored = ledger.edition("am-1").unwrap().unwrap();
    assert_eq!(stored.subject.as_deref(), Some("Morning Brief"));
    assert_eq!(stored.state, EditionState::Frozen);
    assert_eq!(stored.item_ids(), ["world/trade", "local/rain"]);
    assert_eq!(stored.renderings.len(), 2);
    assert_eq!(
        stored.content(1),
        Some(("Morning Brief (EU)", "<p>eu</p>", "eu"))
    );
    assert_eq!(stored.content(MAIN_RENDERING).map(|c| c.2), Some("all"));
    assert_eq!(stored.content(7), None);
    assert_eq!(stored.num, 1);
    let counts = ledger.counts("am-1").unwrap();
    assert_eq!((counts.sent, counts.pending, counts.total()), (1, 3, 4));
    let (version, newest) = Ledger::schema_version(ledger.location()).unwrap();
    assert_eq!(version, Some(MIGRATIONS.len() as i64));
    assert_eq!(newest, MIGRATIONS.len() as i64);
}

#[test]
fn concurrent_opens_of_a_new_ledger_all_succeed() {
    // Two senders started together (cron, or a rerun while another runs)
    // both create the file, switch it to WAL and migrate it.
    for round in 0..20 {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state/ledger.sqlite");
        let barrier = std::sync::Arc::new(std::sync::Barrier::new(4));
        let opens: Vec<_> = (0..4)
            .map(|_| {
                let (path, barrier) = (path.clone(), barrier.clone());
                std::thread::spawn(move || {
                    barrier.wait();
                    Ledger::open(&path).map(|_| ())
                })
            })
            .collect();
        for open in opens {
            let result = open.join().unwrap();
            assert!(result.is_ok(), "round {round}: {:?}", result.unwrap_err());
        }
    }
}

#[test]
fn refuses_newer_schema() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("l.sqlite");
    drop(Ledger::open(&path).unwrap());
    let conn = Connection::open(&path).unwrap();
    conn.pragma_update(None, "user_version", 99).unwrap();
    drop(conn);
    assert!(matches!(
        Ledger::open(&path),
        Err(LedgerError::NewerSchema { found: 99, .. })
    ));
}

fn refreezing_keeps_the_first_copy(at: Location) {
    let mut ledger = Ledger::open(&at).unwrap();
    assert!(
        ledger
            .freeze_edition(&edition("am-1"), &recipients(2))
            .unwrap()
    );
    let mut edited = edition("am-1");
    edited.renderings[0].subject = "Edited".to_owned();
    assert!(!ledger.freeze_edition(&edited, &recipients(5)).unwrap());
    let stored = ledger.edition("am-1").unwrap().unwrap();
    assert_eq!(stored.subject.as_deref(), Some("Morning Brief"));
    assert_eq!(ledger.counts("am-1").unwrap().total(), 2);
}

fn freeze_is_all_or_nothing(at: Location) {
    let mut ledger = Ledger::open(&at).unwrap();
    let mut bad = recipients(3);
    bad[2].rendering = 5;
    assert!(matches!(
        ledger.freeze_edition(&edition("am-1"), &bad),
        Err(LedgerError::UnknownRendering { .. })
    ));
    assert!(ledger.edition("am-1").unwrap().is_none());
    assert_eq!(ledger.counts("am-1").unwrap().total(), 0);
}

fn duplicate_recipients_first_wins(at: Location) {
    let mut ledger = Ledger::open(&at).unwrap();
    let mut rs = recipients(2);
    rs.push(Recipient {
        email: "r0@example.com".into(),
        name: Some("Other".into()),
        rendering: MAIN_RENDERING,
        fields: Default::default(),
    });
    ledger.freeze_edition(&edition("am-1"), &rs).unwrap();
    let all = ledger.deliveries("am-1").unwrap();
    assert_eq!(all.len(), 2);
    assert_eq!(all[0].name.as_deref(), Some("Reader 0"));
}

fn outcomes_pending_failed_and_no_downgrade(at: Location) {
    let mut ledger = Ledger::open(&at).unwrap();
    ledger
        .freeze_edition(&edition("am-1"), &recipients(4))
        .unwrap();
    let changed = ledger
        .record_batch(&[
            outcome("r0@example.com", DeliveryState::Sent, "250 2.0.0 queued"),
            outcome(
                "r1@example.com",
                DeliveryState::Deferred,
                "450 4.2.1 try later",
            ),
            outcome(
                "r2@example.com",
                DeliveryState::Failed,
                "550 5.1.1 no such user",
            ),
        ])
        .unwrap();
    assert_eq!(changed, 3);
    let pending: Vec<_> = ledger
        .pending("am-1")
        .unwrap()
        .into_iter()
        .map(|d| (d.email, d.state, d.attempts))
        .collect();
    assert_eq!(
        pending,
        [
            ("r1@example.com".to_owned(), DeliveryState::Deferred, 1),
            ("r3@example.com".to_owned(), DeliveryState::Pending, 0),
        ]
    );
    assert_eq!(
        ledger.failed("am-1").unwrap(),
        [(
            "r2@example.com".to_owned(),
            "550 5.1.1 no such user".to_owned()
        )]
    );
    assert_eq!(
        ledger.replies("am-1", DeliveryState::Deferred).unwrap(),
        [(
            "r1@example.com".to_owned(),
            "450 4.2.1 try later".to_owned()
        )]
    );
    // A stale "deferred" for an already-sent delivery changes nothing.
    let changed = ledger
        .record_batch(&[
            outcome("r0@example.com", DeliveryState::Deferred, "421 late"),
            outcome("r1@example.com", DeliveryState::Sent, "250 ok"),
        ])
        .unwrap();
    assert_eq!(changed, 1);
    let all = ledger.deliveries("am-1").unwrap();
    assert_eq!(all[0].state, DeliveryState::Sent);
    // An acceptance is not kept: the common case, per recipient.
    assert_eq!(all[0].last_reply, None);
    assert_eq!((all[1].state, all[1].attempts), (DeliveryState::Sent, 2));
    assert_eq!(
        ledger.counts("am-1").unwrap(),
        Counts {
            pending: 1,
            sent: 2,
            deferred: 0,
            failed: 1,
            in_doubt: 0,
            resend: 0,
            suppressed: 0,
        }
    );
}

fn in_doubt_is_resent_once_then_final(at: Location) {
    let mut ledger = Ledger::open(&at).unwrap();
    ledger
        .freeze_edition(&edition("am-1"), &recipients(3))
        .unwrap();
    let lost = "in doubt: connection lost";
    ledger
        .record_batch(&[
            outcome("r0@example.com", DeliveryState::InDoubt, lost),
            outcome("r1@example.com", DeliveryState::InDoubt, lost),
            outcome("r2@example.com", DeliveryState::Sent, "250 ok"),
        ])
        .unwrap();
    let counts = ledger.counts("am-1").unwrap();
    assert_eq!((counts.in_doubt, counts.resend, counts.unsent()), (2, 2, 2));
    assert_eq!(counts.total(), 3);
    // The next run resends both, once.
    let again: Vec<_> = ledger
        .pending("am-1")
        .unwrap()
        .into_iter()
        .map(|d| (d.email, d.doubts))
        .collect();
    assert_eq!(
        again,
        [
            ("r0@example.com".to_owned(), 1),
            ("r1@example.com".to_owned(), 1)
        ]
    );
    // r0's resend is in doubt again: final. r1's is accepted.
    let changed = ledger
        .record_batch(&[
            outcome("r0@example.com", DeliveryState::InDoubt, lost),
            outcome("r1@example.com", DeliveryState::Sent, "250 ok"),
        ])
        .unwrap();
    assert_eq!(changed, 2);
    let counts = ledger.counts("am-1").unwrap();
    assert_eq!(
        (counts.in_doubt, counts.resend, counts.sent, counts.unsent()),
        (1, 0, 2, 0),
        "in doubt twice counts as done"
    );
    assert!(ledger.pending("am-1").unwrap().is_empty());
    let r0 = &ledger.deliveries("am-1").unwrap()[0];
    assert_eq!(
        (r0.state, r0.doubts, r0.attempts),
        (DeliveryState::InDoubt, 2, 2)
    );
    // Nothing moves it any more, not even a stale outcome.
    let changed = ledger
        .record_batch(&[outcome("r0@example.com", DeliveryState::Sent, "250 ok")])
        .unwrap();
    assert_eq!(changed, 0);
    assert_eq!(
        ledger.replies("am-1", DeliveryState::InDoubt).unwrap(),
        [("r0@example.com".to_owned(), lost.to_owned())]
    );
    let summary = &ledger.editions(None).unwrap()[0];
    assert_eq!(summary.counts, ledger.counts("am-1").unwrap());
    // The SQL spells MAX_DOUBTS out.
    assert!(OPEN.contains(&format!("doubts < {MAX_DOUBTS}")));
    assert!(super::sql::RECORD_OUTCOME.contains(OPEN));
}

fn a_deferred_resend_keeps_its_doubt(at: Location) {
    // In doubt, then the resend meets a 4xx before the message: still one
    // resend allowed after it, never a third message in doubt.
    let mut ledger = Ledger::open(&at).unwrap();
    ledger
        .freeze_edition(&edition("am-1"), &recipients(1))
        .unwrap();
    for (state, open) in [
        (DeliveryState::InDoubt, true),
        (DeliveryState::Deferred, true),
        (DeliveryState::InDoubt, false),
    ] {
        ledger
            .record_batch(&[outcome("r0@example.com", state, "x")])
            .unwrap();
        assert_eq!(ledger.pending("am-1").unwrap().len() == 1, open, "{state}");
    }
}

#[test]
fn migrates_a_version_1_ledger_keeping_its_rows() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("old.sqlite");
    {
        let conn = Connection::open(&path).unwrap();
        conn.execute_batch(MIGRATIONS[0]).unwrap();
        conn.pragma_update(None, "user_version", 1).unwrap();
        conn.execute_batch(
            "INSERT INTO editions (id, newsletter, slot_utc, zone, state, created_at)
             VALUES ('am-1', 'am', '2026-11-30T06:00:00.000Z', 'UTC', 'sending',
                     '2026-11-30T06:00:00.000Z');
             INSERT INTO deliveries (edition_id, email, variant, state, attempts, last_reply, updated_at)
             VALUES ('am-1', 'z@example.com', 'main', 'sent', 1, '250 ok', '2026-11-30T06:00:01.000Z'),
                    ('am-1', 'a@example.com', 'main', 'deferred', 2, '451 later', '2026-11-30T06:00:02.000Z');",
        )
        .unwrap();
        let refused = conn.execute(
            "UPDATE deliveries SET state = 'in_doubt' WHERE email = 'a@example.com'",
            [],
        );
        assert!(refused.is_err(), "version 1 has no in_doubt");
    }
    let mut ledger = Ledger::open(&path).unwrap();
    let all = ledger.deliveries("am-1").unwrap();
    let rows: Vec<_> = all
        .iter()
        .map(|d| (d.email.as_str(), d.state, d.attempts, d.doubts))
        .collect();
    assert_eq!(
        rows,
        [
            ("a@example.com", DeliveryState::Deferred, 2, 0),
            ("z@example.com", DeliveryState::Sent, 1, 0),
        ],
        "rows survive, by address"
    );
    // The acceptance reply is not carried over; the deferral's is.
    assert_eq!(all[0].last_reply.as_deref(), Some("451 later"));
    assert_eq!(all[1].last_reply, None);
    ledger
        .record_batch(&[DeliveryUpdate {
            edition_id: "am-1".into(),
            email: "a@example.com".into(),
            state: DeliveryState::InDoubt,
            attempts: 1,
            reply: None,
        }])
        .unwrap();
    assert_eq!(ledger.counts("am-1").unwrap().in_doubt, 1);
    assert_eq!(ledger.edition("am-1").unwrap().unwrap().num, 1);
}

#[test]
fn migrates_renderings_and_variant_keys_of_a_version_2_ledger() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("v2.sqlite");
    {
        let conn = Connection::open(&path).unwrap();
        conn.execute_batch(MIGRATIONS[0]).unwrap();
        conn.execute_batch(MIGRATIONS[1]).unwrap();
        conn.pragma_update(None, "user_version", 2).unwrap();
        conn.execute_batch(
            "INSERT INTO editions (id, newsletter, slot_utc, zone, state, subject, html, text, item_ids, created_at)
             VALUES ('am-1', 'am', '2026-11-30T06:00:00.000Z', 'UTC', 'sending', 'All', '<p>all</p>', 'all',
                     '[\"a\",\"b\"]', '2026-11-30T06:00:00.000Z');
             INSERT INTO variants (edition_id, key, subject, html, text, item_ids) VALUES
                 ('am-1', 'regions=eu;topics=*', 'EU', '<p>eu</p>', 'eu', '[\"a\"]'),
                 ('am-1', 'regions=us;topics=*', 'US', '<p>us</p>', 'us', '[\"b\"]');
             INSERT INTO deliveries (edition_id, email, name, variant, fields, state, updated_at) VALUES
                 ('am-1', 'e@example.com', 'E', 'regions=eu;topics=*', '{\"city\":\"Lisbon\"}', 'pending', '2026-11-30T06:00:00.000Z'),
                 ('am-1', 'm@example.com', NULL, 'main', '{}', 'pending', '2026-11-30T06:00:00.000Z'),
                 ('am-1', 'u@example.com', NULL, 'regions=us;topics=*', '{}', 'pending', '2026-11-30T06:00:00.000Z');",
        )
        .unwrap();
    }
    let ledger = Ledger::open(&path).unwrap();
    let stored = ledger.edition("am-1").unwrap().unwrap();
    assert_eq!(stored.content(0), Some(("All", "<p>all</p>", "all")));
    assert_eq!(stored.item_ids(), ["a", "b"]);
    let by_email: Vec<_> = ledger
        .deliveries("am-1")
        .unwrap()
        .into_iter()
        .map(|d| {
            (
                d.email.clone(),
                stored.content(d.rendering).unwrap().0.to_owned(),
                d.fields,
            )
        })
        .collect();
    assert_eq!(
        by_email,
        [
            (
                "e@example.com".to_owned(),
                "EU".to_owned(),
                [("city".to_owned(), "Lisbon".to_owned())].into()
            ),
            (
                "m@example.com".to_owned(),
                "All".to_owned(),
                Default::default()
            ),
            (
                "u@example.com".to_owned(),
                "US".to_owned(),
                Default::default()
            ),
        ]
    );
}

fn senders_join_an_edition_renew_and_take_over_the_stopped(at: Location) {
    let mut ledger = Ledger::open(&at).unwrap();
    ledger
        .freeze_edition(&edition("am-1"), &recipients(1))
        .unwrap();
    let ttl = Duration::from_secs(60);
    let t0 = Utc::now();
    let alive = |_: &str| false;
    let a = ledger.join_at("am-1", "host-a:1", ttl, t0, &alive).unwrap();
    assert_eq!(a, Joined::default());
    // Joining again renews; a second sender shares the edition.
    ledger.join_at("am-1", "host-a:1", ttl, t0, &alive).unwrap();
    let b = (ledger.join_at("am-1", "host-b:2", ttl, t0 + TimeDelta::seconds(30), &alive)).unwrap();
    assert_eq!(
        (b.others, b.took_over),
        (vec!["host-a:1".to_owned()], vec![])
    );
    assert!(ledger.renew_lease("am-1", "host-a:1", ttl).unwrap());
    assert!(!ledger.renew_lease("am-1", "host-x:9", ttl).unwrap());
    // After expiry another sender ends both leases, and the old holders
    // learn on their next renewal that they lost them.
    let c = ledger
        .join_at(
            "am-1",
            "host-c:3",
            ttl,
            Utc::now() + TimeDelta::seconds(120),
            &alive,
        )
        .unwrap();
    assert_eq!(c.took_over, ["host-a:1", "host-b:2"]);
    assert!(c.others.is_empty());
    assert!(!ledger.renew_lease("am-1", "host-a:1", ttl).unwrap());
    // A holder known to be dead loses an unexpired lease at once.
    let d = (ledger.join_edition("am-1", "host-d:4", ttl, &|h| h == "host-c:3")).unwrap();
    assert_eq!(d.took_over, ["host-c:3"]);
    ledger.release_lease("am-1", "host-d:4").unwrap();
    assert!(!ledger.renew_lease("am-1", "host-d:4", ttl).unwrap());
    assert!(matches!(
        ledger.join_edition("nope", "x", ttl, &alive),
        Err(LedgerError::UnknownEdition(_))
    ));
}

fn lease_is_shared_between_connections(at: Location) {
    let mut a = Ledger::open(&at).unwrap();
    let mut b = Ledger::open(&at).unwrap();
    a.freeze_edition(&edition("am-1"), &recipients(1)).unwrap();
    let ttl = Duration::from_secs(60);
    a.join_edition("am-1", "a", ttl, &|_| false).unwrap();
    let joined = b.join_edition("am-1", "b", ttl, &|_| false).unwrap();
    assert_eq!(joined.others, ["a"]);
}

fn emails(batch: &Claimed) -> Vec<&str> {
    batch.deliveries.iter().map(|d| d.email.as_str()).collect()
}

fn claims_split_an_edition_between_senders_and_free_a_stopped_senders_share(at: Location) {
    let mut l = Ledger::open(&at).unwrap();
    l.freeze_edition(&edition("am-1"), &recipients(10)).unwrap();
    let ttl = Duration::from_secs(60);
    let alive = |_: &str| false;
    for h in ["a", "b"] {
        l.join_edition("am-1", h, ttl, &alive).unwrap();
    }
    let a1 = l.claim_batch("am-1", "a", 4, &alive).unwrap();
    assert_eq!(
        emails(&a1),
        [
            "r0@example.com",
            "r1@example.com",
            "r2@example.com",
            "r3@example.com"
        ]
    );
    assert_eq!(a1.deliveries[1].name.as_deref(), Some("Reader 1"));
    assert_eq!(a1.deliveries[1].rendering, 1);
    let b1 = l.claim_batch("am-1", "b", 4, &alive).unwrap();
    assert_eq!(
        emails(&b1),
        [
            "r4@example.com",
            "r5@example.com",
            "r6@example.com",
            "r7@example.com"
        ]
    );
    let a2 = l.claim_batch("am-1", "a", 4, &alive).unwrap();
    assert_eq!(emails(&a2), ["r8@example.com", "r9@example.com"]);
    assert!(
        l.claim_batch("am-1", "b", 4, &alive)
            .unwrap()
            .deliveries
            .is_empty()
    );
    assert_eq!(l.unsent_here_and_elsewhere("am-1", "b").unwrap(), (10, 6));
    assert_eq!(l.unsent_here_and_elsewhere("am-1", "a").unwrap(), (10, 4));
    l.record_batch(&[outcome("r0@example.com", DeliveryState::Sent, "250 ok")])
        .unwrap();
    assert_eq!(l.unsent_here_and_elsewhere("am-1", "b").unwrap(), (9, 5));
    // `a` stops: its unsent share goes to the next sender to claim, never
    // what `b` holds.
    l.join_edition("am-1", "c", ttl, &alive).unwrap();
    let c1 = l.claim_batch("am-1", "c", 10, &|h| h == "a").unwrap();
    assert_eq!(c1.took_over, ["a"]);
    assert_eq!(
        emails(&c1),
        [
            "r1@example.com",
            "r2@example.com",
            "r3@example.com",
            "r8@example.com",
            "r9@example.com"
        ]
    );
    // A deferred recipient stays its claimer's for the rest of its run.
    l.record_batch(&[outcome(
        "r1@example.com",
        DeliveryState::Deferred,
        "451 later",
    )])
    .unwrap();
    assert!(
        l.claim_batch("am-1", "c", 10, &alive)
            .unwrap()
            .deliveries
            .is_empty()
    );
    // `b` finishes its run without sending: what it held is free again.
    l.release_lease("am-1", "b").unwrap();
    let c2 = l.claim_batch("am-1", "c", 10, &alive).unwrap();
    assert_eq!(
        emails(&c2),
        [
            "r4@example.com",
            "r5@example.com",
            "r6@example.com",
            "r7@example.com"
        ]
    );
    l.release_lease("am-1", "c").unwrap();
    l.join_edition("am-1", "d", ttl, &alive).unwrap();
    assert_eq!(
        l.claim_batch("am-1", "d", 100, &alive)
            .unwrap()
            .deliveries
            .len(),
        9
    );
    assert_eq!(l.counts("am-1").unwrap().unsent(), 9);
}

fn senders_claiming_at_once_never_get_one_recipient_twice(at: Location) {
    let mut l = Ledger::open(&at).unwrap();
    l.freeze_edition(&edition("am-1"), &recipients(2_000))
        .unwrap();
    let ttl = Duration::from_secs(60);
    let claimers: Vec<_> = (0..4)
        .map(|i| {
            let at = at.clone();
            std::thread::spawn(move || {
                let holder = format!("host-{i}:1");
                let mut l = Ledger::open(&at).unwrap();
                l.join_edition("am-1", &holder, ttl, &|_| false).unwrap();
                let mut mine = Vec::new();
                loop {
                    let batch = l.claim_batch("am-1", &holder, 50, &|_| false).unwrap();
                    if batch.deliveries.is_empty() {
                        return mine;
                    }
                    mine.extend(batch.deliveries.into_iter().map(|d| d.email));
                }
            })
        })
        .collect();
    let shares: Vec<Vec<String>> = claimers.into_iter().map(|c| c.join().unwrap()).collect();
    let mut all: Vec<&String> = shares.iter().flatten().collect();
    let claimed = all.len();
    all.sort();
    all.dedup();
    assert_eq!((claimed, all.len()), (2_000, 2_000), "claimed once each");
}

fn edition_states_and_summaries(at: Location) {
    let mut ledger = Ledger::open(&at).unwrap();
    ledger
        .freeze_edition(&edition("am-1"), &recipients(3))
        .unwrap();
    ledger.mark_sending("am-1").unwrap();
    ledger
        .record_batch(&[outcome("r0@example.com", DeliveryState::Sent, "250")])
        .unwrap();
    ledger.mark_complete("am-1").unwrap();
    ledger.mark_complete("am-1").unwrap();
    let stored = ledger.edition("am-1").unwrap().unwrap();
    assert_eq!(stored.state, EditionState::Complete);
    assert!(stored.completed_at.is_some());

    let missed = EditionStub {
        id: "am-0".into(),
        newsletter: "am".into(),
        slot_utc: Utc.with_ymd_and_hms(2026, 11, 29, 6, 0, 0).unwrap(),
        zone: "Europe/Lisbon".into(),
    };
    ledger.record_missed(&missed, "machine was off").unwrap();
    ledger.record_missed(&missed, "again").unwrap();
    let skipped = EditionStub {
        id: "pm-0".into(),
        newsletter: "pm".into(),
        ..missed.clone()
    };
    ledger.record_skipped(&skipped, "no items").unwrap();
    assert!(matches!(
        ledger.record_missed(&skipped, "x"),
        Err(LedgerError::InvalidTransition { .. })
    ));
    let complete_stub = EditionStub {
        id: "am-1".into(),
        ..missed.clone()
    };
    assert!(matches!(
        ledger.record_skipped(&complete_stub, "x"),
        Err(LedgerError::InvalidTransition { .. })
    ));

    let all = ledger.editions(None).unwrap();
    let ids: Vec<_> = all.iter().map(|e| e.id.as_str()).collect();
    assert_eq!(ids, ["am-1", "am-0", "pm-0"]);
    assert_eq!(all[0].counts.sent, 1);
    assert_eq!(all[0].counts.pending, 2);
    assert_eq!(all[1].state, EditionState::Missed);
    assert_eq!(all[1].reason.as_deref(), Some("machine was off"));
    assert_eq!(all[1].counts, Counts::default());
    assert_eq!(all[1].subject, None);
    let am: Vec<_> = ledger
        .editions(Some("am"))
        .unwrap()
        .into_iter()
        .map(|e| e.id)
        .collect();
    assert_eq!(am, ["am-1", "am-0"]);
    assert!(matches!(
        ledger.mark_complete("nope"),
        Err(LedgerError::UnknownEdition(_))
    ));
}

fn frozen_edition_can_become_missed(at: Location) {
    let mut ledger = Ledger::open(&at).unwrap();
    let e = edition("am-1");
    ledger.freeze_edition(&e, &recipients(1)).unwrap();
    let stub = EditionStub {
        id: e.id.clone(),
        newsletter: e.newsletter.clone(),
        slot_utc: e.slot_utc,
        zone: e.zone.clone(),
    };
    ledger.record_missed(&stub, "sender never ran").unwrap();
    let stored = ledger.edition("am-1").unwrap().unwrap();
    assert_eq!(stored.state, EditionState::Missed);
    assert_eq!(stored.reason.as_deref(), Some("sender never ran"));
    assert_eq!(stored.subject.as_deref(), Some("Morning Brief"));
}

fn suppression(address: &str, scope: SuppressionScope, reason: SuppressionReason) -> Suppression {
    Suppression {
        address: address.to_owned(),
        scope,
        reason,
        created_at: Utc.with_ymd_and_hms(2026, 12, 1, 9, 0, 0).unwrap(),
        evidence: serde_json::json!({"user_agent": "test"}),
    }
}

fn a_readers_own_suppressions_and_preferences_are_found_by_address(at: Location) {
    let mut ledger = Ledger::open(&at).unwrap();
    let am = SuppressionScope::Newsletter("am".into());
    assert!(
        ledger
            .suppress(&suppression(
                "Ana@Example.com",
                am.clone(),
                SuppressionReason::OneClick
            ))
            .unwrap()
    );
    ledger
        .suppress(&suppression(
            "ana@example.com",
            SuppressionScope::All,
            SuppressionReason::Link,
        ))
        .unwrap();
    ledger
        .suppress(&suppression(
            "bob@example.com",
            am.clone(),
            SuppressionReason::HardBounce,
        ))
        .unwrap();
    let ana = ledger.suppressions_of("ANA@example.com").unwrap();
    let scopes: Vec<_> = ana.iter().map(|s| (&s.scope, s.reason)).collect();
    assert_eq!(
        scopes,
        [
            (&SuppressionScope::All, SuppressionReason::Link),
            (&am, SuppressionReason::OneClick)
        ]
    );
    assert_eq!(ana[1].evidence["user_agent"], "test");
    assert!(
        ledger
            .suppressions_of("carla@example.com")
            .unwrap()
            .is_empty()
    );

    assert_eq!(
        ledger.preferences_of("ana@example.com", "am").unwrap(),
        None
    );
    let p = Preferences {
        regions: vec!["world".into()],
        topics: vec![],
    };
    ledger.set_preferences("Ana@Example.com", "am", &p).unwrap();
    assert_eq!(
        ledger.preferences_of("ana@EXAMPLE.com", "am").unwrap(),
        Some(p)
    );
    assert_eq!(
        ledger.preferences_of("ana@example.com", "pm").unwrap(),
        None
    );
}

fn a_web_rendering_is_frozen_with_its_edition_and_read_alone(at: Location) {
    let mut ledger = Ledger::open(&at).unwrap();
    let web = WebRendering {
        subject: "Morning Brief".to_owned(),
        html: "<p>web</p>".to_owned(),
        text: "web".to_owned(),
    };
    let with = FrozenEdition {
        web: Some(web.clone()),
        ..edition("am-1")
    };
    ledger.freeze_edition(&with, &recipients(2)).unwrap();
    ledger
        .freeze_edition(&edition("am-2"), &recipients(2))
        .unwrap();
    assert_eq!(ledger.web_rendering("am-1").unwrap(), Some(web));
    assert_eq!(ledger.web_rendering("am-2").unwrap(), None);
    assert_eq!(ledger.web_rendering("nope").unwrap(), None);
    let eu = ledger.rendering("am-2", 1).unwrap().unwrap();
    assert_eq!(
        (eu.subject.as_str(), eu.item_ids.len()),
        ("Morning Brief (EU)", 1)
    );
    assert_eq!(ledger.rendering("am-2", 2).unwrap(), None);
    assert_eq!(ledger.rendering("nope", 0).unwrap(), None);
}

#[test]
fn migrates_a_version_3_ledger_whose_editions_have_no_web_rendering() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("v3.sqlite");
    {
        let conn = Connection::open(&path).unwrap();
        for m in &MIGRATIONS[..3] {
            conn.execute_batch(m).unwrap();
        }
        conn.pragma_update(None, "user_version", 3).unwrap();
        conn.execute_batch(
            "INSERT INTO editions (id, num, newsletter, slot_utc, zone, state, subject, item_ids, created_at)
             VALUES ('am-1', 1, 'am', '2026-11-30T06:00:00.000Z', 'UTC', 'complete', 'All', '[\"a\"]',
                     '2026-11-30T06:00:00.000Z');
             INSERT INTO renderings (edition_num, idx, subject, html, text, item_ids)
             VALUES (1, 0, 'All', '<p>all</p>', 'all', '[\"a\"]');",
        )
        .unwrap();
    }
    let ledger = Ledger::open(&path).unwrap();
    assert_eq!(ledger.web_rendering("am-1").unwrap(), None);
    assert_eq!(
        ledger.edition("am-1").unwrap().unwrap().content(0),
        Some(("All", "<p>all</p>", "all"))
    );
    assert_eq!(
        ledger.rendering("am-1", 0).unwrap().unwrap().html,
        "<p>all</p>"
    );
}

#[test]
fn a_recipients_fields_are_stored_as_one_object_with_sorted_keys_and_the_last_value_of_a_repeated_name()
 {
    let dir = tempfile::tempdir().unwrap();
    let mut ledger = Ledger::open(&dir.path().join("ledger.sqlite")).unwrap();
    let pair = |k: &str, v: &str| (k.to_owned(), v.to_owned());
    let reader = Recipient {
        email: "ana@example.com".to_owned(),
        name: None,
        rendering: 0,
        // As a list with a repeated column gives them: header order.
        fields: vec![
            pair("zip", "1"),
            pair("city", "Lima"),
            pair("city", "Quito"),
        ],
    };
    assert!(ledger.freeze_edition(&edition("am-1"), &[reader]).unwrap());
    let stored = ledger.deliveries("am-1").unwrap();
    let want: BTreeMap<String, String> = [pair("city", "Quito"), pair("zip", "1")].into();
    assert_eq!(stored[0].fields, want);
    let raw: String = rusqlite::Connection::open(dir.path().join("ledger.sqlite"))
        .unwrap()
        .query_row("SELECT fields FROM deliveries", [], |r| r.get(0))
        .unwrap();
    assert_eq!(raw, r#"{"city":"Quito","zip":"1"}"#);
}

/// A confirmation of a link issued after the test's suppressions.
fn confirming() -> Confirming {
    Confirming {
        newsletters: vec!["am".into(), "pm".into()],
        issued: Utc.with_ymd_and_hms(2026, 12, 1, 9, 30, 0).unwrap(),
    }
}

fn signed_up(email: &str, newsletter: &str, name: Option<&str>) -> StoredSubscriber {
    StoredSubscriber {
        email: email.to_owned(),
        newsletter: newsletter.to_owned(),
        name: name.map(str::to_owned),
        consent_at: Utc.with_ymd_and_hms(2026, 12, 1, 10, 0, 0).unwrap(),
        source: "signup page".to_owned(),
        evidence: serde_json::json!({"user_agent": "test"}),
    }
}

fn a_subscriber_is_stored_once_per_newsletter_and_a_second_consent_renews_the_first(at: Location) {
    let mut l = Ledger::open(&at).unwrap();
    let first = l
        .add_subscribers(
            &[
                signed_up("Ana@example.com", "am", Some("Ana")),
                signed_up("ana@example.com", "pm", None),
            ],
            &confirming(),
        )
        .unwrap();
    assert_eq!((first.added, first.renewed), (2, 0));
    let mut again = signed_up("ANA@example.com", "am", None);
    again.consent_at += TimeDelta::days(1);
    let second = l.add_subscribers(&[again.clone()], &confirming()).unwrap();
    assert_eq!((second.added, second.renewed), (0, 1));
    let am = l.subscribers(Some("am")).unwrap();
    assert_eq!(am.len(), 1);
    // The first spelling and the name stay; the consent is the newer one.
    assert_eq!(am[0].email, "Ana@example.com");
    assert_eq!(am[0].name.as_deref(), Some("Ana"));
    assert_eq!(am[0].consent_at, again.consent_at);
    assert_eq!(l.subscribers(None).unwrap().len(), 2);
}

fn confirming_lifts_only_the_readers_own_unsubscribes_and_narrows_one_from_everything(
    at: Location,
) {
    let mut l = Ledger::open(&at).unwrap();
    let all: Vec<String> = ["am", "pm", "markets"].map(String::from).to_vec();
    let nl = |id: &str| SuppressionScope::Newsletter(id.into());
    l.suppress(&suppression(
        "a@example.com",
        nl("am"),
        SuppressionReason::OneClick,
    ))
    .unwrap();
    l.suppress(&suppression(
        "b@example.com",
        nl("am"),
        SuppressionReason::HardBounce,
    ))
    .unwrap();
    l.suppress(&suppression(
        "c@example.com",
        SuppressionScope::All,
        SuppressionReason::Link,
    ))
    .unwrap();
    let done = l
        .add_subscribers(
            &[
                signed_up("a@example.com", "am", None),
                signed_up("b@example.com", "am", None),
                signed_up("c@example.com", "am", None),
            ],
            &Confirming {
                newsletters: all,
                issued: Utc.with_ymd_and_hms(2026, 12, 1, 9, 30, 0).unwrap(),
            },
        )
        .unwrap();
    assert_eq!(done.lifted, 2);
    assert!(!l.is_suppressed("a@example.com", "am").unwrap());
    // A bounce is not the reader's to lift: the row is stored, the mail
    // still stops.
    assert!(l.is_suppressed("b@example.com", "am").unwrap());
    // From everything to everything but the letter just confirmed.
    assert!(!l.is_suppressed("c@example.com", "am").unwrap());
    assert!(l.is_suppressed("c@example.com", "pm").unwrap());
    assert!(l.is_suppressed("c@example.com", "markets").unwrap());
    let events = l.events_about("a@example.com").unwrap();
    assert!(events.iter().any(|e| e.kind == ReturnKind::Resubscribe));
}

fn an_older_consent_or_an_import_never_replaces_a_newer_one(at: Location) {
    let mut l = Ledger::open(&at).unwrap();
    let first = signed_up("ana@example.com", "am", Some("Ana"));
    l.add_subscribers(std::slice::from_ref(&first), &confirming())
        .unwrap();
    let mut older = signed_up("ana@example.com", "am", None);
    older.consent_at -= TimeDelta::days(3);
    older.evidence = serde_json::json!({"user_agent": "old"});
    l.add_subscribers(&[older], &confirming()).unwrap();
    let mut import = signed_up("ana@example.com", "am", Some("Imported"));
    import.consent_at += TimeDelta::days(3);
    import.source = "import old.csv".into();
    let p = Preferences {
        regions: vec!["world".into()],
        topics: vec![],
    };
    l.set_preferences(
        "ana@example.com",
        "am",
        &Preferences {
            regions: vec!["national".into()],
            topics: vec![],
        },
    )
    .unwrap();
    let done = l.import_subscribers(&[(import, Some(p))]).unwrap();
    assert_eq!((done.added, done.renewed), (0, 1));
    let kept = &l.subscribers(Some("am")).unwrap()[0];
    assert_eq!(kept.consent_at, first.consent_at);
    assert_eq!(kept.evidence, first.evidence);
    assert_eq!(kept.source, "signup page");
    assert_eq!(kept.name.as_deref(), Some("Ana"));
    // The reader's own choice of sections stays too.
    assert_eq!(
        l.preferences_of("ana@example.com", "am")
            .unwrap()
            .unwrap()
            .regions,
        ["national"]
    );
}

fn a_link_used_again_after_an_unsubscribe_does_not_undo_it(at: Location) {
    let mut l = Ledger::open(&at).unwrap();
    let link = confirming();
    l.add_subscribers(&[signed_up("ana@example.com", "am", None)], &link)
        .unwrap();
    // Unsubscribed after the link was made (its created_at is 09:00, so
    // make a later one).
    let mut later = suppression(
        "ana@example.com",
        SuppressionScope::Newsletter("am".into()),
        SuppressionReason::OneClick,
    );
    later.created_at = link.issued + TimeDelta::hours(2);
    l.suppress(&later).unwrap();
    let mut all = suppression(
        "ana@example.com",
        SuppressionScope::All,
        SuppressionReason::Link,
    );
    all.created_at = link.issued + TimeDelta::hours(3);
    l.suppress(&all).unwrap();
    let again = l
        .add_subscribers(&[signed_up("ana@example.com", "am", None)], &link)
        .unwrap();
    assert_eq!((again.lifted, again.stale, again.renewed), (0, 1, 0));
    assert!(l.is_suppressed("ana@example.com", "am").unwrap());
    assert!(l.is_suppressed("ana@example.com", "pm").unwrap());
}

#[test]
fn a_postgres_ledger_outlives_a_restart_of_its_server() {
    let server = throwaway::Server::own();
    let at = Location::Postgres(server.database());
    let mut l = Ledger::open(&at).unwrap();
    let s = suppression(
        "ana@example.com",
        SuppressionScope::All,
        SuppressionReason::OneClick,
    );
    assert!(l.suppress(&s).unwrap());
    server.restart();
    // The first call finds the connection gone; the next ones are answered
    // on a new one, as a long-running `serve` needs.
    let _ = l.is_suppressed("ana@example.com", "am");
    assert!(l.is_suppressed("ana@example.com", "am").unwrap());
    assert!(l.ping().is_ok());
}

fn a_batch_naming_a_recipient_twice_is_recorded_in_order(at: Location) {
    let mut l = Ledger::open(&at).unwrap();
    l.freeze_edition(&edition("am-1"), &recipients(3)).unwrap();
    // An attempt and its retry in one commit; then a batch of distinct
    // recipients, which PostgreSQL records in one statement.
    let changed = l
        .record_batch(&[
            outcome("r0@example.com", DeliveryState::Deferred, "451 later"),
            outcome("r0@example.com", DeliveryState::Sent, "250 ok"),
        ])
        .unwrap();
    assert_eq!(changed, 2);
    let changed = l
        .record_batch(&[
            outcome("r0@example.com", DeliveryState::Deferred, "451 too late"),
            outcome("r1@example.com", DeliveryState::Failed, "550 no such user"),
            outcome("r2@example.com", DeliveryState::InDoubt, "in doubt"),
        ])
        .unwrap();
    assert_eq!(changed, 2, "a sent delivery never changes again");
    let d = l.deliveries("am-1").unwrap();
    assert_eq!(
        (d[0].state, d[0].attempts, d[0].last_reply.as_deref()),
        (DeliveryState::Sent, 2, None)
    );
    assert_eq!(
        (d[1].state, d[1].last_reply.as_deref()),
        (DeliveryState::Failed, Some("550 no such user"))
    );
    assert_eq!((d[2].state, d[2].doubts), (DeliveryState::InDoubt, 1));
}

#[test]
fn a_postgres_ledger_over_tls_verifies_the_servers_certificate() {
    let server = throwaway::Server::own_with_tls();
    let db = server.database();
    let cert = server.certificate().unwrap().display().to_string();
    let url = |host: &str, query: &str| PgTarget {
        url: db.url.replace("127.0.0.1", host) + query,
        password_env: None,
    };
    // Trusting the server's certificate: TLS, by name and by address.
    for host in ["localhost", "127.0.0.1"] {
        let at = Location::Postgres(url(host, &format!("?sslmode=require&sslrootcert={cert}")));
        let mut l =
            Ledger::open(&at).unwrap_or_else(|e| panic!("{host}: {}", crate::diag::causes(&e)));
        l.suppress(&suppression(
            "ana@example.com",
            SuppressionScope::All,
            SuppressionReason::Manual,
        ))
        .unwrap();
        assert!(l.is_suppressed("ana@example.com", "am").unwrap());
    }
    // Not trusting it: refused, never sent in the clear.
    let at = Location::Postgres(url("localhost", "?sslmode=require"));
    let e = Ledger::open(&at).unwrap_err();
    let said = crate::diag::causes(&e);
    assert!(said.contains("cannot connect to the ledger"), "{said}");
    assert!(said.to_ascii_lowercase().contains("certificate"), "{said}");
}

/// Everything a ledger holds, as its readers see it.
fn everything(l: &Ledger) -> String {
    format!(
        "{:?}\n{:?}\n{:?}\n{:?}\n{:?}\n{:?}\n{:?}\n{:?}\n{:?}",
        l.editions(None).unwrap(),
        l.edition("am-1").unwrap(),
        l.deliveries("am-1").unwrap(),
        l.web_rendering("am-1").unwrap(),
        l.suppressions(None, None).unwrap(),
        l.events_about("ana@example.com").unwrap(),
        l.preferences(None).unwrap(),
        l.subscribers(None).unwrap(),
        l.relay_tallies("am-1").unwrap(),
    )
}

#[test]
fn a_history_copied_to_postgres_and_back_reads_the_same() {
    let dir = tempfile::tempdir().unwrap();
    let first = Location::Sqlite(dir.path().join("first.sqlite"));
    let mut l = Ledger::open(&first).unwrap();
    let mut e = edition("am-1");
    e.web = Some(WebRendering {
        subject: "Morning Brief".into(),
        html: "<p>web</p>".into(),
        text: "web".into(),
    });
    l.freeze_edition(&e, &recipients(5)).unwrap();
    l.record_batch(&[
        outcome("r0@example.com", DeliveryState::Sent, "250 ok"),
        outcome(
            "r1@example.com",
            DeliveryState::Failed,
            "550 5.1.1 no such user",
        ),
    ])
    .unwrap();
    l.record_skipped(
        &EditionStub {
            id: "pm-1".into(),
            newsletter: "pm".into(),
            slot_utc: Utc.with_ymd_and_hms(2026, 11, 30, 17, 0, 0).unwrap(),
            zone: "UTC".into(),
        },
        "0 items",
    )
    .unwrap();
    let s = suppression(
        "ana@example.com",
        SuppressionScope::All,
        SuppressionReason::OneClick,
    );
    let event = ReturnEvent {
        address: "ana@example.com".into(),
        newsletter: Some("am".into()),
        edition_id: Some("am-1".into()),
        kind: ReturnKind::Unsubscribe,
        at: s.created_at,
        evidence: serde_json::json!({"via": "one-click"}),
    };
    l.suppress_with_event(&s, &event).unwrap();
    l.set_preferences(
        "bo@example.com",
        "am",
        &Preferences {
            regions: vec!["world".into()],
            topics: vec![],
        },
    )
    .unwrap();
    l.add_subscribers(
        &[signed_up("cy@example.com", "am", Some("Cy"))],
        &confirming(),
    )
    .unwrap();
    l.add_relay_tallies(
        "am-1",
        &[RelayTally {
            relay: "mx1".into(),
            sent: 1,
            failed: 1,
            ..RelayTally::default()
        }],
    )
    .unwrap();
    let before = everything(&l);
    drop(l);

    let pg = throwaway::ledger();
    let copied = copy(&first, &pg).unwrap();
    assert_eq!((copied.rows("editions"), copied.rows("deliveries")), (2, 5));
    assert_eq!(everything(&Ledger::open(&pg).unwrap()), before);
    let back = Location::Sqlite(dir.path().join("back.sqlite"));
    copy(&pg, &back).unwrap();
    assert_eq!(everything(&Ledger::open(&back).unwrap()), before);
    // A later edition and event number on from the copied ones.
    let mut l = Ledger::open(&pg).unwrap();
    assert!(l.freeze_edition(&edition("am-2"), &recipients(1)).unwrap());
    assert_eq!(l.edition("am-2").unwrap().unwrap().num, 3);
    l.record_event(&ReturnEvent {
        kind: ReturnKind::HardBounce,
        edition_id: Some("am-2".into()),
        ..event
    })
    .unwrap();
    assert_eq!(l.events_about("ana@example.com").unwrap().len(), 2);
    assert!(
        matches!(copy(&back, &pg), Err(LedgerError::Copy(_))),
        "into a ledger with history"
    );
}
