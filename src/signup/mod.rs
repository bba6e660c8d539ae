//! Sign-ups: the stage behind `briefing serve`'s sign-up page and
//! `briefing subscribers import`. A sign-up is held nowhere until it is
//! confirmed: the confirmation link carries what was asked for, signed and
//! expiring (`link`); the confirmation message is composed and delivered
//! through the newsroom's transport (`notice`); `limit` keeps one client or
//! one address from sending many; `import` stores a CSV as consented.

pub mod import;
pub mod limit;
pub mod link;
pub mod notice;
pub mod worker;
