//! Thin: parse the command line, set up logging, run the command, map the
//! outcome to an exit code.

use std::io::IsTerminal;
use std::process::ExitCode;

use clap::Parser;
use tracing_subscriber::EnvFilter;

use briefing::cli::{Cli, Command, LogFormat};
use briefing::diag::DiagnosticError;
use briefing::messages::Console;
use briefing::{cmd, exit};

// mimalloc: a send allocates and frees a ~30 KB message per recipient on
// several threads; with glibc's allocator malloc/free were 12% of a 20,000-
// message send's CPU (perf), and mimalloc cut the send's CPU by about 15%
// (5.8 s to 5.0 s, bench/send_vs_smtp_source.sh, same day).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn init_logging(cli: &Cli) {
    // Progress lines (INFO) are for a person watching: a terminal, the JSON
    // log, the interactive servers, or `-v`. A cron mail gets warnings,
    // errors and the one result line per edition.
    let watched = cli.log_format == LogFormat::Json
        || std::io::stderr().is_terminal()
        || matches!(cli.command, Command::Preview(_) | Command::Serve(_));
    let levels = ["error", "warn", "info", "debug", "trace"];
    let base = if watched { 2 } else { 1 };
    let default = match cli.quiet {
        true => "error",
        false => levels[(base + usize::from(cli.verbose)).min(levels.len() - 1)],
    };
    // BRIEFING_LOG overrides the level, e.g. BRIEFING_LOG=briefing=debug.
    let filter = EnvFilter::try_from_env("BRIEFING_LOG")
        .unwrap_or_else(|_| EnvFilter::new(format!("briefing={default},warn")));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match cli.log_format {
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .init(),
        LogFormat::Text => builder
            .without_time()
            .with_target(false)
            .with_ansi(std::io::stderr().is_terminal())
            .init(),
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(&cli);
    let ctx = cmd::Ctx {
        config: cli.config.clone(),
        console: Console::new(cli.log_format, cli.quiet, cli.verbose > 0),
    };
    let result = match &cli.command {
        Command::Check(args) => cmd::check::run(&ctx, args),
        Command::Build(args) => cmd::build::run(&ctx, args),
        Command::Schedule(args) => cmd::schedule::run(&ctx, args),
        Command::Send(args) => cmd::send::run(&ctx, args),
        Command::Status(args) => cmd::status::run(&ctx, args),
        Command::Run => cmd::run::run(&ctx),
        Command::Preview(args) => cmd::preview::run(&ctx, args),
        Command::Inbound(args) => cmd::inbound::run(&ctx, args),
        Command::Suppress(args) => cmd::suppress::suppress(&ctx, args),
        Command::Unsuppress(args) => cmd::suppress::unsuppress(&ctx, args),
        Command::Suppressions(args) => cmd::suppressions::suppressions(&ctx, args),
        Command::Preferences(args) => cmd::suppressions::preferences(&ctx, args),
        Command::Subscribers(args) => cmd::subscribers::run(&ctx, args),
        Command::Ledger(args) => cmd::ledger::run(&ctx, args),
        Command::Serve(args) => cmd::serve::run(&ctx, args),
        Command::Archive(args) => cmd::archive::run(&ctx, args),
    };
    match result {
        Ok(exit) => exit.into(),
        Err(e) => {
            match e.chain().find_map(|c| c.downcast_ref::<DiagnosticError>()) {
                // A problem in one of the newsroom's files: shown as `check` shows it.
                Some(DiagnosticError(d)) => ctx.console.diagnostic(d),
                // The whole cause chain: "cannot write out/am: permission denied".
                None => {
                    let chain: Vec<String> = e.chain().map(|c| c.to_string()).collect();
                    ctx.console.error(&chain.join(": "));
                }
            }
            exit::of_error(&e).into()
        }
    }
}
