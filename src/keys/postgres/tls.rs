//! TLS to PostgreSQL (rustls), as libpq reads the URL's `sslmode`:
//!
//! - `disable`: plain TCP;
//! - `prefer` (the default): TLS when the server offers it, its
//!   certificate not checked (encryption against a passive observer only);
//! - `require`: TLS or nothing, the certificate not checked unless
//!   `sslrootcert=PATH` is given (then checked, name included);
//! - `verify-ca`, `verify-full`: TLS or nothing, the certificate and the
//!   host name checked against `sslrootcert=PATH` or the Mozilla roots.

use std::sync::Arc;

use rustls::RootCertStore;
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;
use tokio_postgres_rustls::MakeRustlsConnect;

use super::{PostgresStoreError, database};

/// The URL's settings for tokio-postgres, and the TLS connector.
pub(super) fn configure(
    url: &str,
) -> Result<(tokio_postgres::Config, MakeRustlsConnect), PostgresStoreError> {
    let (base, query) = url.split_once('?').unwrap_or((url, ""));
    let mut kept = Vec::new();
    let mut root_file = None;
    let mut verify_mode = false;
    for pair in query.split('&').filter(|pair| !pair.is_empty()) {
        let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
        match (name, value) {
            ("sslrootcert", path) => {
                root_file = Some(
                    percent_encoding::percent_decode_str(path)
                        .decode_utf8_lossy()
                        .into_owned(),
                )
            }
            // tokio-postgres knows disable, prefer and require: the verify
            // modes are require, with the certificate checked here.
            ("sslmode", "verify-ca" | "verify-full") => {
                verify_mode = true;
                kept.push("sslmode=require".to_owned());
            }
            _ => kept.push(pair.to_owned()),
        }
    }
    let verify = verify_mode || root_file.is_some();
    let url = if kept.is_empty() {
        base.to_owned()
    } else {
        format!("{base}?{}", kept.join("&"))
    };
    let config: tokio_postgres::Config = url.parse().map_err(database("not a PostgreSQL URL"))?;
    let mut roots = RootCertStore::empty();
    match root_file {
        Some(path) => {
            let certificates = CertificateDer::pem_file_iter(&path)
                .and_then(|certificates| certificates.collect::<Result<Vec<_>, _>>())
                .map_err(|error| PostgresStoreError::Tls {
                    problem: "cannot read sslrootcert",
                    source: Some(error.into()),
                })?;
            let (added, _) = roots.add_parsable_certificates(certificates);
            if added == 0 {
                return Err(PostgresStoreError::Tls {
                    problem: "sslrootcert holds no certificate",
                    source: None,
                });
            }
        }
        None => roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned()),
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(Arc::clone(&provider))
        .with_safe_default_protocol_versions()
        .map_err(|error| PostgresStoreError::Tls {
            problem: "no safe TLS protocol version",
            source: Some(error.into()),
        })?;
    let tls = if verify {
        builder.with_root_certificates(roots).with_no_client_auth()
    } else {
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(Unchecked(provider)))
            .with_no_client_auth()
    };
    Ok((config, MakeRustlsConnect::new(tls)))
}

/// libpq's `prefer` and `require` without a root certificate: the
/// handshake's signatures are checked, the certificate is not.
#[derive(Debug)]
struct Unchecked(Arc<rustls::crypto::CryptoProvider>);

impl rustls::client::danger::ServerCertVerifier for Unchecked {
    fn verify_server_cert(
        &self,
        _: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: &rustls::pki_types::ServerName<'_>,
        _: &[u8],
        _: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}
