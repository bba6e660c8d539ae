use super::*;
use crate::mail::smtp::SmtpSettings;

const GOOD: &str = "site:\n  name: T\n  base_url: https://news.example.com/\n  timezone: America/New_York\nregions:\n  - { id: world, name: World }\ntopics:\n  - { id: trade, name: Trade }\nnewsletters:\n  am:\n    name: AM\n    from: \"AM <am@news.example.com>\"\n    schedule: \"0 6 * * MON-FRI\"\n    lookback: 36h\n";

fn parsed(t: &str) -> Result<Parsed, Diagnostics> {
    parse_config(t, Path::new("config.yaml"), Path::new("."))
}

fn parse(t: &str) -> Result<Config, Diagnostics> {
    parsed(t).map(|p| p.config)
}

/// Every diagnostic's `config.yaml:line:col: severity: message`.
fn headlines(t: &str) -> Vec<String> {
    match parsed(t) {
        Ok(p) => p.warnings.iter().map(|d| d.headline()).collect(),
        Err(ds) => ds.iter().map(|d| d.headline()).collect(),
    }
}

fn has(h: &[String], want: &str) -> bool {
    h.iter().any(|m| m.starts_with(want))
}

#[test]
fn loads_a_good_config_with_defaults() {
    let c = parse(GOOD).unwrap();
    assert_eq!(c.site.base_url, "https://news.example.com");
    let am = c.newsletter("am").unwrap();
    assert_eq!(am.lookback, Some(Duration::hours(36)));
    assert_eq!(am.group_by, vec![GroupBy::Region, GroupBy::Topic]);
    assert_eq!(am.template, "digest");
    assert_eq!(am.min_items, 1);
    assert_eq!(am.timezone, chrono_tz::America::New_York);
    assert_eq!(am.max_delay, Duration::hours(DEFAULT_MAX_DELAY_HOURS));
    assert_eq!(c.ledger, Path::new("./.briefing/ledger.sqlite").into());
    assert_eq!(
        c.delivery.unsubscribe.url,
        "https://news.example.com/unsubscribe"
    );
    assert!(c.delivery.relays.is_empty());
}

#[test]
fn unknown_keys_get_a_suggestion_and_position() {
    let bad = GOOD.replace("    lookback: 36h", "    lokback: 36h");
    let d = parse(&bad).unwrap_err();
    let d = d.iter().find(|d| d.is_error()).unwrap();
    assert_eq!(d.message, "unknown key `lokback`");
    assert_eq!((d.line, d.col, d.width), (14, 5, 7));
    assert_eq!(d.help.as_deref(), Some("did you mean `lookback`?"));
}

#[test]
fn reports_every_semantic_problem_at_its_place() {
    let bad = GOOD
        .replace("America/New_York", "America/New_Yrok")
        .replace(
            "    lookback: 36h",
            "    lookback: 36\n    regions: [world, wrld]\n    template: ../etc",
        );
    let h = headlines(&bad);
    assert!(
        has(
            &h,
            "config.yaml:4:13: error: unknown time zone `America/New_Yrok` (did you mean `America/New_York`?)"
        ),
        "{h:#?}"
    );
    assert!(
        has(&h, "config.yaml:14:15: error: invalid duration `36`"),
        "{h:#?}"
    );
    assert!(
        has(
            &h,
            "config.yaml:15:22: error: unknown region `wrld`; expected one of: world"
        ),
        "{h:#?}"
    );
    assert!(
        has(
            &h,
            "config.yaml:16:15: error: invalid template name `../etc`"
        ),
        "{h:#?}"
    );
}

#[test]
fn every_problem_of_every_section_comes_back_in_one_run() {
    // serde stopped at the first wrong type; each key is read on its own now.
    let bad = GOOD.replace("  name: T\n", "  name: [T]\n").replace(
        "    lookback: 36h",
        "    min_items: many\n    group_by: [region, desk]",
    ) + "delivery:\n  transport: smtpp\n";
    let h = headlines(&bad);
    assert!(
        has(
            &h,
            "config.yaml:2:9: error: `name` must be the newsroom's name; found a list"
        ),
        "{h:#?}"
    );
    assert!(
        has(
            &h,
            "config.yaml:14:16: error: `min_items` must be a whole number from 0 to 10000; found string \"many\""
        ),
        "{h:#?}"
    );
    assert!(
        has(
            &h,
            "config.yaml:15:24: error: unknown grouping `desk`: expected region or topic"
        ),
        "{h:#?}"
    );
    assert!(
        has(
            &h,
            "config.yaml:17:14: error: unknown transport `smtpp`: expected outbox or smtp"
        ),
        "{h:#?}"
    );
}

#[test]
fn header_values_with_line_breaks_are_rejected() {
    let bad = GOOD.replace("name: AM", "name: \"AM\\r\\nBcc: victim@example.com\"");
    let ds = parse(&bad).unwrap_err();
    assert!(
        ds.iter()
            .any(|d| d.message.contains("would inject a mail header"))
    );
    for sep in ["\u{2028}", "\u{2029}"] {
        assert!(
            check_header_value(&format!("AM{sep}Bcc: victim@example.com"))
                .unwrap_err()
                .contains("line break"),
            "{sep:?}"
        );
    }
    assert!(check_header_value("Morning Brief · Café").is_ok());
}

#[test]
fn anchors_block_scalars_and_comments_keep_positions() {
    let text = "# The sample newsroom.\nsite:\n  name: T # the masthead\n  base_url: https://news.example.com\n  timezone: America/New_York\nregions:\n  - { id: world, name: World }\ntopics:\n  - { id: trade, name: Trade }\ndefaults: &am\n  from: \"AM <am@news.example.com>\"\n  regions: [world, wrld]\nnewsletters:\n  am:\n    name: AM\n    from: \"AM <am@news.example.com>\"\n    subject: |\n      Morning: {{ edition.lead.title }}\n    preheader: >\n      folded\n      text\n    # a comment between keys\n    schedule: \"0 6 * * MON-FRY\" # typo in the day\n    regions: *r\n";
    // `*r` is an unknown anchor: a YAML error at the alias.
    let h = headlines(text);
    assert_eq!(h.len(), 1, "{h:#?}");
    assert!(
        h[0].starts_with("config.yaml:24:14: error: invalid YAML:"),
        "{h:#?}"
    );

    let text = text.replace("    regions: *r\n", "    regions: &r [world, wrld]\n  pm:\n    name: PM\n    from: \"PM <pm@news.example.com>\"\n    regions: *r\n    tepmlate: x\n");
    let h = headlines(&text);
    // After the comment and the two block scalars, still the right column.
    assert!(
        has(&h, "config.yaml:23:24: error: invalid schedule:"),
        "{h:#?}"
    );
    assert!(
        has(&h, "config.yaml:24:25: error: unknown region `wrld`"),
        "{h:#?}"
    );
    // Through the alias, the same element is reported where `*r` is used.
    assert!(
        has(&h, "config.yaml:28:14: error: unknown region `wrld`"),
        "{h:#?}"
    );
    assert!(
        has(&h, "config.yaml:29:5: error: unknown key `tepmlate`"),
        "{h:#?}"
    );
    // An unknown top-level key that holds the anchor is reported where it is.
    assert!(
        has(&h, "config.yaml:10:1: error: unknown key `defaults`"),
        "{h:#?}"
    );
    let block = text
        .replace(
            "defaults: &am\n  from: \"AM <am@news.example.com>\"\n  regions: [world, wrld]\n",
            "",
        )
        .replace("MON-FRY", "MON-FRI")
        .replace("    tepmlate: x\n", "")
        .replace("[world, wrld]", "[world]");
    let c = parse(&block).unwrap();
    let am = c.newsletter("am").unwrap();
    assert_eq!(am.subject, "Morning: {{ edition.lead.title }}\n");
    assert_eq!(am.preheader.as_deref(), Some("folded text\n"));
    assert_eq!(
        c.newsletter("pm").unwrap().regions,
        Some(vec!["world".to_string()])
    );
}

#[test]
fn config_diag_points_at_keys_by_path() {
    let p = parsed(GOOD).unwrap();
    let n = Newsroom {
        root: ".".into(),
        config_path: "config.yaml".into(),
        config_text: GOOD.into(),
        content_dir: p.content,
        templates_dir: p.templates,
        config: p.config,
        warnings: p.warnings,
        tree: p.tree,
    };
    let d = n.config_diag(&["newsletters", "am", "schedule"], "never fires");
    assert_eq!((d.line, d.col, d.width), (13, 15, 17));
    let d = n.config_diag(&["regions", "0", "name"], "x");
    assert_eq!((d.line, d.col), (6, 24));
    // A block mapping is pointed at by its key.
    let d = n.config_diag(&["newsletters", "am"], "x");
    assert_eq!((d.line, d.col, d.width), (10, 3, 2));
    assert_eq!(n.config_diag(&["nope"], "x").line, 0);
}

#[test]
fn ledger_is_the_key_and_state_still_works_with_a_warning() {
    let c = parse(&format!("{GOOD}ledger: db/ledger.sqlite\n")).unwrap();
    assert_eq!(c.ledger, Path::new("./db/ledger.sqlite").into());
    let p = parsed(&format!("{GOOD}state: db/old.sqlite\n")).unwrap();
    assert_eq!(p.config.ledger, Path::new("./db/old.sqlite").into());
    let w: Vec<String> = (p.warnings.iter())
        .map(|d| d.headline())
        .filter(|h| !h.contains("postal_address"))
        .collect();
    assert_eq!(
        w,
        [
            "config.yaml:15:1: warning: `state` is now called `ledger`: rename the key (`state` still works for now)"
        ]
    );
    let h = headlines(&format!("{GOOD}state: a.sqlite\nledger: b.sqlite\n"));
    assert!(
        has(
            &h,
            "config.yaml:15:8: error: `state` is the old name of `ledger`"
        ),
        "{h:#?}"
    );
    let h = headlines(&format!("{GOOD}ledger: /var/lib/ledger.sqlite\n"));
    assert!(
        has(
            &h,
            "config.yaml:15:9: error: `/var/lib/ledger.sqlite` must be a relative path"
        ),
        "{h:#?}"
    );
}

#[test]
fn a_postgres_ledger_is_a_url_without_a_password_and_a_variable_for_it() {
    let c = parse(&format!(
        "{GOOD}ledger: postgres://briefing@db.example:5432/briefing?sslmode=require\nledger_password_env: BRIEFING_DB_PASSWORD\n"
    ))
    .unwrap();
    assert_eq!(
        c.ledger,
        crate::ledger::Location::Postgres(crate::ledger::PgTarget {
            url: "postgres://briefing@db.example:5432/briefing?sslmode=require".into(),
            password_env: Some("BRIEFING_DB_PASSWORD".into()),
        })
    );
    let h = headlines(&format!(
        "{GOOD}ledger: postgres://briefing:hunter2@db.example/briefing\n"
    ));
    assert!(
        has(
            &h,
            "config.yaml:15:9: error: the URL holds a password: name an environment variable with ledger_password_env instead"
        ),
        "{h:#?}"
    );
    assert!(!h.iter().any(|l| l.contains("hunter2")), "{h:#?}");
    let h = headlines(&format!("{GOOD}ledger: postgres://briefing@db.example\n"));
    assert!(
        has(&h, "config.yaml:15:9: error: the URL names no database"),
        "{h:#?}"
    );
    let h = headlines(&format!(
        "{GOOD}ledger: postgres://briefing@db.example/b?sslmode=sometimes\n"
    ));
    assert!(
        has(&h, "config.yaml:15:9: error: not a PostgreSQL URL"),
        "{h:#?}"
    );
    let h = headlines(&format!(
        "{GOOD}ledger: db/ledger.sqlite\nledger_password_env: PW\n"
    ));
    assert!(
        has(
            &h,
            "config.yaml:16:22: error: only a PostgreSQL ledger (ledger: postgres://…) has a password"
        ),
        "{h:#?}"
    );
    let h = headlines(&format!(
        "{GOOD}ledger: postgres://briefing@db.example/b\nledger_password_env: 'PW; rm'\n"
    ));
    assert!(
        has(
            &h,
            "config.yaml:16:22: error: expected the name of an environment variable"
        ),
        "{h:#?}"
    );
}

#[test]
fn smtp_settings_come_from_config_with_the_transports_defaults() {
    let c = parse(&format!(
        "{GOOD}delivery:\n  transport: smtp\n  smtp:\n    url: smtp://mail.example.com:587\n"
    ))
    .unwrap();
    let s = c.delivery.relays[0].clone();
    let d = SmtpSettings::default();
    assert_eq!(s.url, "smtp://mail.example.com:587");
    assert_eq!(
        (s.connections, s.retries, s.timeout),
        (d.connections, d.retries, d.timeout)
    );
    assert_eq!(
        (s.rate, s.allow_insecure, &s.hello_name, &s.ca_file),
        (None, false, &None, &None)
    );

    let c = parse(&format!("{GOOD}delivery:\n  transport: smtp\n  smtp:\n    url: smtps://mail.example.com\n    username: brief\n    password_env: PW\n    connections: 200\n    rate: 12.5\n    retries: 0\n    timeout: 90s\n    allow_insecure: true\n    hello_name: brief.example.com\n    ca_file: secrets/ca.pem\n")).unwrap();
    let s = c.delivery.relays[0].clone();
    assert_eq!(s.connections, 200);
    assert_eq!(s.rate, Some(12.5));
    assert_eq!(s.retries, 0);
    assert_eq!(s.timeout, std::time::Duration::from_secs(90));
    assert!(s.allow_insecure);
    assert_eq!(s.hello_name.as_deref(), Some("brief.example.com"));
    assert_eq!(s.ca_file.as_deref(), Some(Path::new("./secrets/ca.pem")));
    assert_eq!(s.username.as_deref(), Some("brief"));
    assert_eq!(s.password_env.as_deref(), Some("PW"));
}

#[test]
fn several_relays_are_a_list_each_with_its_own_settings_name_and_weight() {
    let c = parse(&format!(
        "{GOOD}delivery:\n  transport: smtp\n  smtp:\n    - {{ url: \"smtp://mx1.example.com:587\", connections: 8, weight: 3 }}\n    - {{ url: \"smtp://mx2.example.com:587\", name: backup, rate: 20 }}\n"
    ))
    .unwrap();
    let r = &c.delivery.relays;
    assert_eq!(r.len(), 2);
    assert_eq!(
        (r[0].display_name().as_str(), r[0].connections, r[0].weight),
        ("mx1.example.com:587", 8, 3)
    );
    assert_eq!(
        (r[1].display_name().as_str(), r[1].rate, r[1].weight),
        ("backup", Some(20.0), 1)
    );
    let h = headlines(&format!(
        "{GOOD}delivery:\n  transport: smtp\n  smtp:\n    - {{ url: \"smtp://mx1.example.com\" }}\n    - {{ url: \"smtp://mx1.example.com\", weight: 0 }}\n"
    ));
    assert!(
        has(
            &h,
            "config.yaml:19:48: error: `weight` must be from 1 to 1000"
        ),
        "{h:#?}"
    );
    assert!(
        has(
            &h,
            "config.yaml:19:14: error: two relays are called `mx1.example.com`"
        ),
        "{h:#?}"
    );
    let h = headlines(&format!("{GOOD}delivery:\n  transport: smtp\n  smtp: []\n"));
    assert!(
        has(&h, "config.yaml:17:9: error: `smtp` lists no relay"),
        "{h:#?}"
    );
    let h = headlines(&format!(
        "{GOOD}delivery:\n  transport: smtp\n  smtp:\n    - {{ urll: \"smtp://mx1.example.com\" }}\n"
    ));
    assert!(
        has(&h, "config.yaml:18:9: error: unknown key `urll`"),
        "{h:#?}"
    );
    assert!(has(&h, "config.yaml:18:7: error: missing `url`"), "{h:#?}");
}

#[test]
fn smtp_limits_and_confinement_are_errors_at_their_place() {
    let smtp = |body: &str| {
        format!(
            "{GOOD}delivery:\n  transport: smtp\n  smtp:\n    url: smtp://m.example.com\n{body}"
        )
    };
    let h = headlines(&smtp("    connections: 100000\n"));
    assert!(
        has(
            &h,
            "config.yaml:19:18: error: `connections` must be from 1 to 200; found 100000"
        ),
        "{h:#?}"
    );
    let h = headlines(&smtp("    connections: 0\n"));
    assert!(
        has(
            &h,
            "config.yaml:19:18: error: `connections` must be from 1 to 200; found 0"
        ),
        "{h:#?}"
    );
    let h = headlines(&smtp("    ca_file: ../ca.pem\n"));
    assert!(
        has(
            &h,
            "config.yaml:19:14: error: `../ca.pem` must be a relative path inside the newsroom folder"
        ),
        "{h:#?}"
    );
    let h = headlines(&smtp("    hello_name: \"bad name\"\n"));
    assert!(
        has(
            &h,
            "config.yaml:19:17: error: `hello_name` must be a host name"
        ),
        "{h:#?}"
    );
    let h = headlines(&smtp("    rate: -1\n"));
    assert!(
        has(
            &h,
            "config.yaml:19:11: error: `rate` must be a positive number"
        ),
        "{h:#?}"
    );
    let h = headlines(&format!("{GOOD}delivery:\n  transport: smtp\n"));
    assert!(
        has(
            &h,
            "config.yaml:16:14: error: `transport: smtp` needs a `delivery.smtp` section"
        ),
        "{h:#?}"
    );
}

#[test]
fn overflowing_durations_are_errors_naming_the_range() {
    // Each of these panicked: in parsing, or (lookback) later in `check`,
    // subtracting it from the slot.
    let cases = [
        (
            "lookback: 9999999999999999w",
            "config.yaml:14:15: error: `lookback` must be from 1m to 3660d; found `9999999999999999w`",
        ),
        (
            "lookback: 100000000d",
            "config.yaml:14:15: error: `lookback` must be from 1m to 3660d; found `100000000d`",
        ),
        (
            "max_delay: 15250284452w15250284452w",
            "config.yaml:14:16: error: `max_delay` must be from 0s to 366d; found `15250284452w15250284452w`",
        ),
        (
            "lookback: 0s",
            "config.yaml:14:15: error: `lookback` must be from 1m to 3660d; found `0s`",
        ),
    ];
    for (line, want) in cases {
        let h = headlines(&GOOD.replace("lookback: 36h", line));
        assert!(has(&h, want), "{line}: {h:#?}");
    }
    let h = headlines(&format!(
        "{GOOD}delivery:\n  smtp:\n    url: smtp://m.example.com\n    timeout: 999999999999999d\n"
    ));
    assert!(
        has(
            &h,
            "config.yaml:18:14: error: `timeout` must be from 1s to 1h; found `999999999999999d`"
        ),
        "{h:#?}"
    );
}

#[test]
fn content_and_templates_paths_are_confined() {
    let h = headlines(&format!(
        "{GOOD}paths:\n  content: /etc\n  templates: ../shared/templates\n"
    ));
    assert!(
        has(
            &h,
            "config.yaml:16:12: error: `/etc` must be a relative path inside the newsroom folder"
        ),
        "{h:#?}"
    );
    assert!(
        has(
            &h,
            "config.yaml:17:14: error: `../shared/templates` must be a relative path"
        ),
        "{h:#?}"
    );
    let p = parsed(&format!("{GOOD}paths:\n  content: items\n")).unwrap();
    assert_eq!(p.content, Path::new("./items"));
    assert_eq!(p.templates, Path::new("./templates"));
}

#[test]
fn unsubscribe_urls_that_would_fail_every_send_are_refused() {
    let with_url = |url: &str| format!("{GOOD}delivery:\n  unsubscribe:\n    url: \"{url}\"\n");
    for (url, why) in [
        ("http://news.example.com/unsubscribe", "must be https://"),
        (
            "https://news.example.com/unsubscribe?list=am",
            "must not carry a query",
        ),
        (
            "https://news.example.com/unsubscribe#top",
            "must not carry a query (`?`) or fragment (`#`)",
        ),
    ] {
        let h = headlines(&with_url(url));
        let want = format!("config.yaml:17:10: error: the unsubscribe URL `{url}` {why}");
        assert!(has(&h, &want), "{url}: {h:#?}");
    }
    // Derived from site.base_url: the error points there.
    let h = headlines(&GOOD.replace("https://news.example.com/", "http://news.example.com/"));
    assert!(
        has(
            &h,
            "config.yaml:3:13: error: the unsubscribe URL `http://news.example.com/unsubscribe`, made from `site.base_url`, must be https://"
        ),
        "{h:#?}"
    );
    let h = headlines(&GOOD.replace("https://news.example.com/", "https://news.example.com/?a=1"));
    assert!(
        has(&h, "config.yaml:3:13: error: the unsubscribe URL"),
        "{h:#?}"
    );
    // An http base_url is fine when the unsubscribe URL is https.
    assert!(
        parse(
            &with_url("https://news.example.com/u")
                .replace("https://news.example.com/\n", "http://news.example.com/\n")
        )
        .is_ok()
    );
}

#[test]
fn the_preferences_page_sits_next_to_the_unsubscribe_page_unless_configured() {
    let c = parse(GOOD).unwrap();
    assert_eq!(
        c.delivery.preferences.url,
        "https://news.example.com/preferences"
    );
    let c = parse(&format!(
        "{GOOD}delivery:\n  unsubscribe:\n    url: https://example.com/news/u\n"
    ))
    .unwrap();
    assert_eq!(
        c.delivery.preferences.url,
        "https://example.com/news/preferences"
    );
    let c = parse(&format!(
        "{GOOD}delivery:\n  preferences:\n    url: https://news.example.com/choose\n"
    ))
    .unwrap();
    assert_eq!(
        c.delivery.preferences.url,
        "https://news.example.com/choose"
    );
    for (url, why) in [
        ("http://news.example.com/p", "must be https://"),
        ("https://news.example.com/p?x=1", "must not carry a query"),
    ] {
        let h = headlines(&format!(
            "{GOOD}delivery:\n  preferences:\n    url: \"{url}\"\n"
        ));
        let want = format!("config.yaml:17:10: error: the preferences URL `{url}` {why}");
        assert!(has(&h, &want), "{url}: {h:#?}");
    }
    assert_eq!(
        delivery::sibling("https://x.example", "p"),
        "https://x.example/p"
    );
    assert_eq!(
        delivery::sibling("https://x.example/", "p"),
        "https://x.example/p"
    );
    assert_eq!(
        delivery::sibling("https://x.example/a/b", "p"),
        "https://x.example/a/p"
    );
}

#[test]
fn yaml_mistakes_in_config_get_hints() {
    let h = |t: &str| parsed(t).err().map(|d| d.0[0].clone()).unwrap();
    let d = h(&GOOD.replace("  name: T\n", "  name: The Brief: Daily\n"));
    assert_eq!((d.line, d.col), (2, 18), "{d}");
    assert_eq!(
        d.help.as_deref(),
        Some(
            "a `: ` inside a value reads as a new key: quote the value: name: \"The Brief: Daily\""
        )
    );
    let d = h(&GOOD.replace("  name: T\n", "  name: #1 Brief\n"));
    assert_eq!(
        d.headline(),
        "config.yaml:2:3: error: `name` is empty; expected the newsroom's name"
    );
    assert!(
        d.help
            .as_deref()
            .unwrap()
            .contains("quote the value: name: \"#1 Brief\""),
        "{d}"
    );
    let d = h(&GOOD.replace("  timezone:", "\ttimezone:"));
    assert_eq!(
        d.headline(),
        "config.yaml:4:1: error: invalid YAML: a tab in the indentation"
    );
}
