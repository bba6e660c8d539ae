//! Turning a rendered edition into messages: personalisation, and (with
//! delivery) building MIME messages and handing them to a transport.

pub mod variant;
