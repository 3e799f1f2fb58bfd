//! HTTPS for loadgen: which certificates to trust when the base URL is `https://`. By default the
//! system's CAs (webpki's bundled Mozilla roots when the system has none); `--ca-cert FILE`
//! trusts exactly the CAs in that PEM file instead (as `curl --cacert` does); `--insecure`
//! accepts any certificate, for self-signed test setups only. The protocol (HTTP/2 or HTTP/1.1)
//! is chosen by ALPN in [`crate::client`].

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context, Result, bail};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::WebPkiSupportedAlgorithms;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};

/// How to check the server's certificate, so a deployment with a private CA or a local
/// self-signed terminator can be load-tested without weakening the default.
#[derive(Clone, Debug, Default)]
pub struct TlsOptions {
    /// Trust only the CA certificates in this PEM file instead of the system's.
    pub ca_cert: Option<PathBuf>,
    /// Accept any server certificate (no authentication of the server at all).
    pub insecure: bool,
}

/// The rustls configuration for `options` (without ALPN: the connector sets it).
pub fn client_config(options: &TlsOptions) -> Result<ClientConfig> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ClientConfig::builder_with_provider(Arc::clone(&provider))
        .with_safe_default_protocol_versions()
        .context("TLS protocol versions")?;
    let config = if options.insecure {
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AcceptAnyCertificate {
                algorithms: provider.signature_verification_algorithms,
            }))
            .with_no_client_auth()
    } else {
        builder
            .with_root_certificates(roots(options)?)
            .with_no_client_auth()
    };
    Ok(config)
}

/// The trust anchors: the `--ca-cert` file's, or the system's (webpki's when it has none).
fn roots(options: &TlsOptions) -> Result<RootCertStore> {
    let mut store = RootCertStore::empty();
    if let Some(path) = &options.ca_cert {
        let certs = CertificateDer::pem_file_iter(path)
            .with_context(|| format!("--ca-cert {}: cannot read it", path.display()))?
            .collect::<Result<Vec<_>, _>>()
            .with_context(|| format!("--ca-cert {}: not a PEM certificate file", path.display()))?;
        if certs.is_empty() {
            bail!(
                "--ca-cert {}: no CERTIFICATE block in the file",
                path.display()
            );
        }
        for cert in certs {
            store
                .add(cert)
                .with_context(|| format!("--ca-cert {}: unusable certificate", path.display()))?;
        }
        return Ok(store);
    }
    let native = rustls_native_certs::load_native_certs();
    let (added, _ignored) = store.add_parsable_certificates(native.certs);
    if added == 0 {
        store.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    }
    Ok(store)
}

/// `--insecure`: any certificate for any name is accepted; handshake signatures are still
/// checked, so the connection is encrypted, just not authenticated.
#[derive(Debug)]
struct AcceptAnyCertificate {
    algorithms: WebPkiSupportedAlgorithms,
}

impl ServerCertVerifier for AcceptAnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_trusts_some_roots_and_a_bad_ca_file_is_named() {
        assert!(client_config(&TlsOptions::default()).is_ok());
        assert!(
            client_config(&TlsOptions {
                insecure: true,
                ..TlsOptions::default()
            })
            .is_ok()
        );
        let dir = std::env::temp_dir().join(format!("loadgen-tls-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let empty = dir.join("empty.pem");
        std::fs::write(&empty, "not a certificate\n").unwrap();
        let err = client_config(&TlsOptions {
            ca_cert: Some(empty.clone()),
            insecure: false,
        })
        .unwrap_err();
        assert!(
            format!("{err:#}").contains("no CERTIFICATE block"),
            "{err:#}"
        );
        let missing = dir.join("missing.pem");
        let err = client_config(&TlsOptions {
            ca_cert: Some(missing),
            insecure: false,
        })
        .unwrap_err();
        assert!(format!("{err:#}").contains("cannot read it"), "{err:#}");
        let _ = std::fs::remove_dir_all(dir);
    }
}
