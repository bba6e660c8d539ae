//! `briefing archive`: write the web archive and feeds from the ledger's
//! sent editions.

use anyhow::Result;

use super::Ctx;
use crate::archive::build;
use crate::cli::ArchiveArgs;
use crate::exit::Exit;

pub fn run(ctx: &Ctx, args: &ArchiveArgs) -> Result<Exit> {
    let newsroom = ctx.newsroom()?;
    let report = build(&newsroom, args.out.as_deref())?;
    ctx.console.show(report.messages());
    Ok(Exit::Ok)
}
