//! From a rendered edition to delivered messages: personalisation
//! (`variant`), unsubscribe tokens (`token`), MIME and DKIM (`message`),
//! the outbox and SMTP (`transport`) and the concurrent, crash-safe sender
//! (`sender`).

pub mod message;
pub mod sender;
pub mod token;
pub mod transport;
pub mod variant;
