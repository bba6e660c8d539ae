//! The delivery stage: an edition's life from a slot to delivered messages.
//! `plan` decides who gets which rendering, `compose` makes each message,
//! `lease` keeps two senders off one edition, `run` sends or resumes one
//! edition and says what became of it, `due` decides which slots are due,
//! missed or skipped. The commands only choose editions and print.

pub mod compose;
pub mod due;
pub mod lease;
pub mod plan;
pub mod run;
pub mod status;

pub use plan::{Plan, PlanStats, SectionPlan, plan};
pub use run::{EditionOutcome, EditionRun, Options, RunResult, send};
