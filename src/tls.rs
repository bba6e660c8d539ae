//! The client side of TLS, one setup for every connection briefing opens
//! (the SMTP relays, the PostgreSQL ledger): rustls on aws-lc-rs, the
//! system's root certificates, and those of a PEM file a setting names for
//! a server with a private CA.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;
use thiserror::Error;

#[derive(Debug, Error)]
pub enum RootsError {
    #[error("cannot read the CA file {}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("the CA file {} {reason}", path.display())]
    Bad { path: PathBuf, reason: String },
    #[error("cannot set up TLS: {0}")]
    Setup(String),
}

/// A client configuration that trusts the system's roots and `ca_file`'s.
pub fn client_config(ca_file: Option<&Path>) -> Result<rustls::ClientConfig, RootsError> {
    let mut roots = rustls::RootCertStore::empty();
    let native = rustls_native_certs::load_native_certs();
    for error in &native.errors {
        tracing::debug!("skipping a system root certificate: {error}");
    }
    let (added, ignored) = roots.add_parsable_certificates(native.certs);
    tracing::debug!(added, ignored, "system root certificates");
    if let Some(path) = ca_file {
        let pem = std::fs::read(path).map_err(|source| RootsError::Read {
            path: path.to_owned(),
            source,
        })?;
        let bad = |reason: String| RootsError::Bad {
            path: path.to_owned(),
            reason,
        };
        let certs = CertificateDer::pem_slice_iter(&pem)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| bad(format!("is not PEM certificates: {e}")))?;
        if certs.is_empty() {
            return Err(bad("holds no PEM certificate".to_owned()));
        }
        for cert in certs {
            roots
                .add(cert)
                .map_err(|e| bad(format!("holds an unusable certificate: {e}")))?;
        }
    }
    Ok(rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::aws_lc_rs::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    // Only fails for a provider without cipher suites, never aws-lc-rs's.
    .map_err(|e| RootsError::Setup(e.to_string()))?
    .with_root_certificates(roots)
    .with_no_client_auth())
}
