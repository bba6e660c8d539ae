//! The command line: clap derive, where doc comments are the help text.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

#[derive(Debug, Parser)]
#[command(name = "briefing", version, about = "Turns a newsroom's Markdown briefing items into email digests.", long_about = None)]
pub struct Cli {
    /// The newsroom's config file; relative paths in it resolve against its folder.
    #[arg(
        long,
        global = true,
        env = "BRIEFING_CONFIG",
        default_value = "config.yaml",
        value_name = "PATH",
        help_heading = "Global options"
    )]
    pub config: PathBuf,

    /// More log output: progress lines off a terminal; repeat for debugging.
    #[arg(short, long, global = true, action = clap::ArgAction::Count, help_heading = "Global options")]
    pub verbose: u8,

    /// Only errors.
    #[arg(
        short,
        long,
        global = true,
        conflicts_with = "verbose",
        help_heading = "Global options"
    )]
    pub quiet: bool,

    /// Log format: `text` for people, `json` (one object per line) for cron and log collectors.
    #[arg(
        long,
        global = true,
        value_enum,
        default_value_t = LogFormat::Text,
        help_heading = "Global options"
    )]
    pub log_format: LogFormat,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Validate config, every item and every template, rendering each newsletter's edition.
    ///
    /// Prints every problem as `path:line:col: error: message` with the offending line,
    /// then a one-line summary. Exit code 0 when clean, 1 on errors (or on warnings
    /// with --deny-warnings), 2 on bad usage.
    ///
    /// Examples:
    ///   briefing check
    ///   briefing check --at 2026-11-30T08:00 --deny-warnings
    #[command(verbatim_doc_comment)]
    Check(CheckArgs),

    /// Render editions to files: email.html, email.txt and edition.json per edition.
    ///
    /// Each edition lands in OUT/<newsletter>/<slot as YYYY-MM-DDTHHMM>/ (the slot in the
    /// newsletter's local time). Prints one line per edition.
    ///
    /// Examples:
    ///   briefing build --at 2026-11-30T08:00
    ///   briefing build --newsletter am --newsletter markets --out /tmp/digests
    #[command(verbatim_doc_comment)]
    Build(BuildArgs),

    /// Show the coming slots of every newsletter, in local time and UTC, with the
    /// number of items each edition would hold right now.
    ///
    /// Flags schedules that never fire or fire more than once a minute.
    ///
    /// Examples:
    ///   briefing schedule
    ///   briefing schedule --days 14 --now 2026-11-30T08:00
    #[command(verbatim_doc_comment)]
    Schedule(ScheduleArgs),

    /// Send a newsletter's edition to its subscribers.
    ///
    /// The edition is frozen in the ledger (its rendering and every recipient) before
    /// the first message goes out; running the command again resumes it and never
    /// sends a delivered recipient twice. An edition whose slot is older than the
    /// newsletter's max_delay is recorded as missed, not sent late.
    ///
    /// Exit codes: 0 all delivered; 75 some deferred to the next run, or the ledger's
    /// database unreachable; 1 errors (failed recipients, missed edition, bad config).
    ///
    /// Examples:
    ///   briefing send --newsletter am --at 2026-11-30T08:00 --dry-run
    ///   briefing send --newsletter am --to editor@example.com
    ///   briefing send --newsletter am --at 2026-11-30T08:00 --now 2026-11-30T06:01
    ///   briefing send --due                      # what cron runs every few minutes
    #[command(verbatim_doc_comment)]
    Send(SendArgs),

    /// Run in the foreground and send each newsletter's editions at their slots.
    ///
    /// For newsrooms without cron (e.g. under systemd): sleeps until the next slot
    /// of any newsletter, then does exactly what `send --due` does, reloading config
    /// and content each time. On SIGTERM or SIGINT it finishes the messages in
    /// flight, records them, and exits 0; the rest stay pending for the next run.
    /// It holds no lock while idle, so a manual `send` still works.
    ///
    /// Examples:
    ///   briefing run
    ///   briefing --log-format json run
    #[command(verbatim_doc_comment)]
    Run,

    /// Show the editions in the send ledger with their delivery counts.
    ///
    /// Examples:
    ///   briefing status
    ///   briefing status --newsletter am
    ///   briefing status --edition am-2026-11-30T0600 --failed
    #[command(verbatim_doc_comment)]
    Status(StatusArgs),

    /// Serve a live preview of every edition on a local web page.
    ///
    /// Prints the page's URL, then rebuilds what changed whenever a file under content/
    /// or templates/ or config.yaml is saved; open pages refresh by themselves. Errors
    /// show on the page, with the same `path:line:col` diagnostics as `briefing check`,
    /// and go away when the file is fixed. It never sends mail. Stop it with Ctrl-C.
    ///
    /// Examples:
    ///   briefing preview --open
    ///   briefing preview --at 2026-11-30T08:00 --port 8080
    ///   briefing preview --bind 0.0.0.0    # reachable from other machines: only on a trusted network
    #[command(verbatim_doc_comment)]
    Preview(PreviewArgs),

    /// Read mail that came back: bounces, complaints, mailed unsubscribes.
    ///
    /// One message on stdin (for a Postfix `pipe` transport, an Exim pipe or a
    /// .forward), message files given as arguments, or every new message of a
    /// Maildir. Each is classified (a delivery status notification in RFC 3464 or
    /// one of the common non-standard forms, an ARF complaint, a mailed
    /// unsubscribe, an auto-reply, a delivery report) and attributed to its
    /// edition and recipient (VERP tag, our Message-ID, the report's fields);
    /// under delivery.bounces a hard bounce suppresses the address everywhere, soft
    /// bounces are counted, a complaint suppresses its newsletter. A message it
    /// does not understand is never deleted: in a Maildir it stays in new/.
    ///
    /// Exit codes: 0 every message understood or deliberately ignored; 1 some
    /// unrecognised (kept for a person); 2 bad usage.
    ///
    /// Examples:
    ///   briefing inbound < returned.eml
    ///   briefing inbound --dry-run --json bounces/*.eml
    ///   briefing inbound --maildir /var/mail/bounces
    #[command(verbatim_doc_comment)]
    Inbound(InboundArgs),

    /// Suppress an address: it gets no newsletter (or not this one) again.
    ///
    /// Examples:
    ///   briefing suppress reader@example.com
    ///   briefing suppress reader@example.com --newsletter am --reason "asked by phone"
    #[command(verbatim_doc_comment)]
    Suppress(SuppressArgs),

    /// Lift a suppression: the address may be mailed again.
    ///
    /// Only suppressions the person asked for (one-click, the unsubscribe page, a
    /// mailed unsubscribe, a manual entry) are lifted; a hard bounce or a complaint
    /// needs --force.
    ///
    /// Examples:
    ///   briefing unsuppress reader@example.com
    ///   briefing unsuppress reader@example.com --newsletter am --force
    #[command(verbatim_doc_comment)]
    Unsuppress(UnsuppressArgs),

    /// List suppressed addresses (for the newsroom's CRM), oldest first.
    ///
    /// Examples:
    ///   briefing suppressions
    ///   briefing suppressions --since 2026-11-01 --newsletter am --format csv
    #[command(verbatim_doc_comment)]
    Suppressions(SuppressionsArgs),

    /// List the sections subscribers chose on the preferences page.
    ///
    /// Examples:
    ///   briefing preferences --format csv
    ///   briefing preferences --newsletter am --format json
    #[command(verbatim_doc_comment)]
    Preferences(PreferencesArgs),

    /// List the subscribers the ledger holds: those who signed up on the sign-up page
    /// and confirmed, and those imported. They are merged with each newsletter's CSV
    /// list when an edition is planned (a reader on both is mailed once; an
    /// unsubscribe or a suppression always wins).
    ///
    /// `subscribers import FILE --newsletter ID` stores a CSV list's rows as
    /// subscribers who already consented, recording the file as their source. A file
    /// with an invalid row imports nothing unless --skip-invalid.
    ///
    /// Examples:
    ///   briefing subscribers
    ///   briefing subscribers --newsletter am --format json
    ///   briefing subscribers import exported.csv --newsletter am
    #[command(verbatim_doc_comment, args_conflicts_with_subcommands = true)]
    Subscribers(SubscribersArgs),

    /// Create or upgrade the ledger's schema, or copy a newsroom's history into another
    /// ledger.
    ///
    /// `ledger migrate` brings the configured ledger (`ledger:` in config.yaml, a SQLite
    /// file or a postgres:// URL) to this build's schema version; every command also
    /// does it when it opens the ledger, so this is for running it on purpose, before
    /// the senders, after an upgrade. `ledger copy` copies every edition, delivery,
    /// suppression, event, preference and subscriber from one ledger into an empty
    /// one, in one transaction: stop the senders, copy, point `ledger:` at the new one.
    ///
    /// Examples:
    ///   briefing ledger migrate
    ///   briefing ledger copy --from sqlite:.briefing/ledger.sqlite --to postgres://db/news
    ///   briefing ledger copy --from postgres://db/news --to sqlite:backup.sqlite
    #[command(verbatim_doc_comment)]
    Ledger(LedgerArgs),

    /// Answer the links in every message: one-click unsubscribes, the unsubscribe
    /// page and the preferences page.
    ///
    /// A public web endpoint meant to run behind the newsroom's TLS reverse proxy, at
    /// the paths of delivery.unsubscribe.url and delivery.preferences.url, with
    /// /healthz for the proxy. Mailbox providers' RFC 8058 one-click POSTs are recorded
    /// in the ledger before they are answered; opening a link never unsubscribes; the
    /// next edition leaves an unsubscribed reader out and honours the sections they
    /// chose. Links are checked against the unsubscribe secret (the current one and,
    /// during a rotation, the previous one). Prints its URL, then serves until SIGTERM
    /// or Ctrl-C.
    ///
    /// Examples:
    ///   briefing serve
    ///   briefing serve --bind 127.0.0.1:8025
    ///   briefing serve --archive
    ///   briefing --log-format json serve --port 9000
    #[command(verbatim_doc_comment)]
    Serve(ServeArgs),
    /// Write the web archive: every sent edition's page, an index and an Atom feed per newsletter.
    ///
    /// Built from the ledger's sent editions only (what went out, never drafts): each
    /// edition's anonymous web copy at <archive url>/<newsletter>/<YYYY-MM-DD-HHMM>/, the
    /// page its emails' "View in browser" links open; each newsletter's editions, newest
    /// first, and its feed.xml; a list of the newsletters. Newsletters with `archive: false`
    /// are left out. Only files that changed are written; files an earlier run wrote and
    /// this one does not are removed. Needs `archive:` in config.yaml.
    ///
    /// Examples:
    ///   briefing archive
    ///   briefing archive --out /tmp/newsletters
    #[command(verbatim_doc_comment)]
    Archive(ArchiveArgs),
}

#[derive(Debug, Args)]
pub struct ArchiveArgs {
    /// Where to write the archive. Default: `archive.out` from config (out/archive).
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct InboundArgs {
    /// Message files to read; none (and no --maildir) reads one message from stdin.
    #[arg(value_name = "FILE")]
    pub files: Vec<std::path::PathBuf>,

    /// Read every message in this Maildir's new/ (processed ones move to cur/, marked seen).
    #[arg(long, value_name = "DIR", conflicts_with = "files")]
    pub maildir: Option<std::path::PathBuf>,

    /// Record nothing, move nothing: only classify and report.
    #[arg(long)]
    pub dry_run: bool,

    /// One JSON line per message on stdout (source, kind, recipients, newsletter, edition, decision).
    #[arg(long)]
    pub json: bool,

    /// The message's envelope recipient, as the delivery agent knows it (Postfix pipe: ${original_recipient}).
    #[arg(long, value_name = "ADDR")]
    pub recipient: Option<String>,
}

#[derive(Debug, Args)]
pub struct SuppressArgs {
    /// The address to suppress.
    pub address: String,

    /// Only this newsletter (default: all of them).
    #[arg(long, short = 'n', value_name = "ID")]
    pub newsletter: Option<String>,

    /// Why, kept with the entry (a person's note).
    #[arg(long, value_name = "TEXT")]
    pub reason: Option<String>,
}

#[derive(Debug, Args)]
pub struct UnsuppressArgs {
    /// The address to mail again.
    pub address: String,

    /// Only this newsletter's suppression (default: every one of the address).
    #[arg(long, short = 'n', value_name = "ID")]
    pub newsletter: Option<String>,

    /// Lift hard-bounce and complaint entries too.
    #[arg(long)]
    pub force: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ExportFormat {
    Csv,
    Json,
}

#[derive(Debug, Args)]
pub struct SuppressionsArgs {
    /// Only entries added since T (RFC 3339 or a local date-time).
    #[arg(long, value_name = "T")]
    pub since: Option<String>,

    /// Only what covers this newsletter (its own entries and the all-newsletters ones).
    #[arg(long, short = 'n', value_name = "ID")]
    pub newsletter: Option<String>,

    /// csv (a header row, then one row each) or json (one object per line).
    #[arg(long, value_enum, default_value_t = ExportFormat::Csv)]
    pub format: ExportFormat,
}

#[derive(Debug, Args)]
pub struct PreferencesArgs {
    /// Only this newsletter.
    #[arg(long, short = 'n', value_name = "ID")]
    pub newsletter: Option<String>,

    #[arg(long, value_enum, default_value_t = ExportFormat::Csv)]
    pub format: ExportFormat,
}

#[derive(Debug, Args)]
pub struct SubscribersArgs {
    #[command(subcommand)]
    pub action: Option<SubscribersAction>,

    /// Only this newsletter's.
    #[arg(long, short = 'n', value_name = "ID")]
    pub newsletter: Option<String>,

    /// csv (a header row, then one row each) or json (one object per line).
    #[arg(long, value_enum, default_value_t = ExportFormat::Csv)]
    pub format: ExportFormat,
}

#[derive(Debug, Args)]
pub struct LedgerArgs {
    #[command(subcommand)]
    pub action: LedgerAction,
}

#[derive(Debug, Subcommand)]
pub enum LedgerAction {
    /// Create the configured ledger's schema, or upgrade it to this build's version.
    Migrate,
    /// Copy every row of one ledger into another, empty one.
    Copy(CopyArgs),
}

#[derive(Debug, Args)]
pub struct CopyArgs {
    /// The ledger to copy: `sqlite:PATH` or `postgres://user@host:port/database`.
    #[arg(long, value_name = "LEDGER")]
    pub from: String,

    /// The ledger to copy into (created if need be; it must hold no history yet).
    #[arg(long, value_name = "LEDGER")]
    pub to: String,

    /// The environment variable that holds the PostgreSQL password (for either side).
    #[arg(long, value_name = "NAME")]
    pub password_env: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum SubscribersAction {
    /// Store a CSV list's rows as subscribers who already consented.
    Import(ImportArgs),
}

#[derive(Debug, Args)]
pub struct ImportArgs {
    /// A CSV list with an `email` column (and optionally `name`, `regions`, `topics`),
    /// read with the same rules as `subscribers:` lists.
    pub file: PathBuf,

    /// The newsletter they subscribed to.
    #[arg(long, short = 'n', value_name = "ID")]
    pub newsletter: String,

    /// Import the valid rows of a file with invalid ones (each is reported).
    #[arg(long)]
    pub skip_invalid: bool,
}

/// Where `serve` listens: an address, and maybe a port.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bind {
    pub ip: std::net::IpAddr,
    pub port: Option<u16>,
}

/// `127.0.0.1`, `::1`, `127.0.0.1:8025` or `[::1]:8025`.
pub fn parse_bind(s: &str) -> Result<Bind, String> {
    if let Ok(ip) = s.parse::<std::net::IpAddr>() {
        return Ok(Bind { ip, port: None });
    }
    s.parse::<std::net::SocketAddr>()
        .map(|a| Bind {
            ip: a.ip(),
            port: Some(a.port()),
        })
        .map_err(|_| format!("`{s}` is not an address like 127.0.0.1 or 127.0.0.1:8025"))
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// The address to listen on, with or without a port. The default serves this
    /// machine only: the reverse proxy in front of it.
    #[arg(long, default_value = "127.0.0.1", value_name = "ADDR[:PORT]", value_parser = parse_bind)]
    pub bind: Bind,

    /// The port to listen on (0 picks a free one). Default: 8025.
    #[arg(long)]
    pub port: Option<u16>,

    /// Also serve the web archive at the path of archive.url, from DIR
    /// (default: archive.out), so one process answers reader links and
    /// archive pages. `briefing archive` writes the files.
    #[arg(long, value_name = "DIR", num_args = 0..=1)]
    pub archive: Option<Option<PathBuf>>,
}

#[derive(Debug, Args)]
pub struct ScheduleArgs {
    /// How many days ahead to list.
    #[arg(long, default_value_t = 7, value_name = "N")]
    pub days: u32,

    /// Pretend it is this time: RFC 3339, or a local date-time in the site's zone. Default: now.
    #[arg(long, value_name = "T")]
    pub now: Option<String>,
}

#[derive(Debug, Args)]
pub struct CheckArgs {
    /// The time to render editions for: RFC 3339, or a local date-time like
    /// 2026-11-30T08:00 in the site's zone. Default: now.
    #[arg(long, value_name = "T")]
    pub at: Option<String>,

    /// Treat warnings as errors (exit code 1).
    #[arg(long)]
    pub deny_warnings: bool,
}

#[derive(Debug, Args)]
pub struct BuildArgs {
    /// Only this newsletter (repeatable). Default: all.
    #[arg(long = "newsletter", short = 'n', value_name = "ID")]
    pub newsletters: Vec<String>,

    /// The time to build for: each newsletter's latest slot at or before it.
    /// RFC 3339, or a local date-time like 2026-11-30T08:00 in the site's zone. Default: now.
    #[arg(long, value_name = "T")]
    pub at: Option<String>,

    /// Where to write the editions.
    #[arg(long, default_value = "out", value_name = "DIR")]
    pub out: PathBuf,
}

#[derive(Debug, Args)]
pub struct PreviewArgs {
    /// The port to listen on (0 picks a free one).
    #[arg(long, default_value_t = 1111)]
    pub port: u16,

    /// The address to listen on. The default serves this machine only; anything
    /// else lets other machines read the unpublished editions.
    #[arg(long, default_value = "127.0.0.1", value_name = "ADDR")]
    pub bind: std::net::IpAddr,

    /// Open the preview in the default browser.
    #[arg(long)]
    pub open: bool,

    /// The time to preview editions for (the page can change it): RFC 3339, or a
    /// local date-time like 2026-11-30T08:00 in the site's zone. Default: now.
    #[arg(long, value_name = "T")]
    pub at: Option<String>,

    /// How item source links open your editor: `{path}` (absolute) and `{line}`
    /// are filled in, e.g. `idea://open?file={path}&line={line}`.
    #[arg(
        long,
        value_name = "URL",
        default_value = "vscode://file/{path}:{line}",
        env = "BRIEFING_EDITOR_URL"
    )]
    pub editor_url: String,
}

#[derive(Debug, Args)]
pub struct SendArgs {
    /// Send every newsletter's edition that is due now (for cron): the latest slot
    /// of each schedule, if not already sent and not older than max_delay; also
    /// finishes editions left pending or deferred by earlier runs.
    #[arg(long)]
    pub due: bool,

    /// The newsletter to send.
    #[arg(long, short = 'n', value_name = "ID")]
    pub newsletter: Option<String>,

    /// Which edition: the newsletter's latest slot at or before T. Default: now.
    #[arg(long, value_name = "T")]
    pub at: Option<String>,

    /// Pretend it is this time (for lateness and for `--at`'s default). Default: the clock.
    #[arg(long, value_name = "T")]
    pub now: Option<String>,

    /// Print the plan (recipients, suppressed, invalid, empty, sections) and send nothing.
    /// Works for any edition: a late one says a send would record it missed,
    /// a sent one shows what was sent.
    #[arg(long)]
    pub dry_run: bool,

    /// Send a test copy to this address only, subject prefixed [TEST]; not recorded
    /// as a delivery (repeatable).
    #[arg(long, value_name = "ADDR")]
    pub to: Vec<String>,

    /// Stop after N messages (the rest stay pending for the next run).
    #[arg(long, value_name = "N")]
    pub limit: Option<usize>,
}

#[derive(Debug, Args)]
pub struct StatusArgs {
    /// Only this newsletter's editions.
    #[arg(long, short = 'n', value_name = "ID")]
    pub newsletter: Option<String>,

    /// Only this edition, in detail.
    #[arg(long, value_name = "ID")]
    pub edition: Option<String>,

    /// List failed and deferred recipients with the server's last reply.
    #[arg(long)]
    pub failed: bool,
}
