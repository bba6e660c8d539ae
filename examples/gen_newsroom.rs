//! Writes a synthetic newsroom for benchmarks and load tests:
//!
//! ```text
//! cargo run --release --example gen_newsroom -- --items 100000 --per-day 50 --out /tmp/newsroom100k
//! briefing --config /tmp/newsroom100k/config.yaml build --at 2026-11-25T06:00
//! ```
//!
//! The generator itself lives in `benches/support/synth.rs`, shared with the
//! criterion benches.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;

#[path = "../benches/support/synth.rs"]
mod synth;

/// Generate a synthetic newsroom: config.yaml and content/<region>/<yyyy>/<mm>/<slug>.md.
#[derive(Debug, Parser)]
struct Args {
    /// How many items to write.
    #[arg(long, default_value_t = 10_000)]
    items: usize,
    /// Items in every 24 hours: the size of the `daily` edition.
    #[arg(long, default_value_t = 50)]
    per_day: usize,
    /// Seed of the text generator.
    #[arg(long)]
    seed: Option<u64>,
    /// The folder to write; an earlier generated newsroom there is replaced.
    #[arg(long)]
    out: PathBuf,
    /// Regenerate even when the folder already holds this exact newsroom.
    #[arg(long)]
    force: bool,
}

fn main() -> ExitCode {
    let args = Args::parse();
    if args.per_day == 0 {
        eprintln!("error: --per-day must be at least 1");
        return ExitCode::from(2);
    }
    let mut spec = synth::Spec::new(args.items, args.per_day);
    if let Some(s) = args.seed {
        spec.seed = s;
    }
    let started = std::time::Instant::now();
    let result = if args.force {
        synth::generate(&spec, &args.out).map(|()| true)
    } else {
        synth::ensure(&spec, &args.out)
    };
    match result {
        Ok(wrote) => {
            let what = if wrote {
                format!("wrote {} items in {:.1?}", spec.items, started.elapsed())
            } else {
                format!("already holds these {} items", spec.items)
            };
            println!("{}: {what}", args.out.display());
            println!(
                "newest slot: --at {} (the `daily` edition holds {} items)",
                synth::ANCHOR,
                spec.per_day.min(spec.items)
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {}: {e}", args.out.display());
            ExitCode::FAILURE
        }
    }
}
