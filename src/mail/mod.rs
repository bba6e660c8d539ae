//! From a rendered edition to delivered messages: personalisation
//! (`variant`), unsubscribe tokens (`token`), MIME (`message`), DKIM (`dkim`),
//! where messages go (`transport`: the `outbox` or `smtp`) and the
//! concurrent, crash-safe sender (`sender`).

pub mod dkim;
pub mod message;
pub mod outbox;
pub mod sender;
pub mod smtp;
pub mod token;
pub mod transport;
pub mod variant;
