//! TLS for outbound PostgreSQL, chosen by the connection URL as libpq chooses it: `sslmode`
//! (`disable`, `prefer` — the default —, `require`, `verify-ca`, `verify-full`) and
//! `sslrootcert` (a PEM file, or `system` for the machine's CA bundle). The TLS stack is rustls
//! (ring provider) through `tokio-postgres-rustls`; the system bundle comes from
//! `rustls-native-certs`, with Mozilla's roots (`webpki-roots`) when the machine has none.
//!
//! What each mode checks (libpq's meaning; Spin differs, see docs/OPERATIONS.md, "PostgreSQL TLS"):
//! - `disable`: never TLS.
//! - `prefer`: TLS when the server offers it, plain otherwise; the certificate is not checked.
//! - `require`: TLS or fail; the certificate is not checked — unless `sslrootcert` is given,
//!   which makes it `verify-ca`, as in libpq.
//! - `verify-ca`: TLS, and the certificate chains to `sslrootcert` (or the system bundle).
//! - `verify-full`: as `verify-ca`, and the certificate names the host of the URL.
//!
//! `edge-host up --postgres-tls spin` gives Spin 4's meaning instead (its outbound PostgreSQL
//! uses `tokio-postgres` with a default native-tls connector): `prefer` and `require` verify the
//! certificate against the system CAs and the host name, and `verify-ca`, `verify-full` and
//! `sslrootcert` are rejected as `tokio-postgres` rejects them — so a URL can be checked on
//! edge-host before it goes to `spin up`.

use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, WebPkiSupportedAlgorithms};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{
    CertificateError, ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme,
};
use std::path::PathBuf;
use std::str::FromStr;
use std::sync::{Arc, OnceLock};
use std::time::Duration;
use tokio_postgres_rustls::MakeRustlsConnect;

/// How long a TCP connection attempt may take unless the URL sets `connect_timeout`: long
/// enough for a distant managed database, short enough that an unreachable address fails fast.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

/// Whose meaning of `sslmode` to follow (`--postgres-tls`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum TlsPolicy {
    /// libpq's: `prefer`/`require` encrypt without verifying; `verify-ca`/`verify-full` verify.
    #[default]
    Libpq,
    /// Spin 4's: every TLS connection verified against the system CAs and the host name;
    /// `verify-*` and `sslrootcert` rejected.
    Spin,
}

static POLICY: OnceLock<TlsPolicy> = OnceLock::new();

/// Chooses the policy for every pool made afterwards; called once at start-up (a process-wide
/// setting, like the command-line flag it comes from).
pub fn set_policy(policy: TlsPolicy) {
    if POLICY.set(policy).is_err() && POLICY.get() != Some(&policy) {
        tracing::warn!("PostgreSQL TLS policy already set; {policy:?} ignored");
    }
}

fn policy() -> TlsPolicy {
    POLICY.get().copied().unwrap_or_default()
}

/// libpq's `sslmode` values that edge-host honours.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SslMode {
    /// Never TLS.
    Disable,
    /// TLS when offered, unverified.
    Prefer,
    /// TLS or fail, unverified.
    Require,
    /// TLS, certificate chain verified.
    VerifyCa,
    /// TLS, chain and host name verified.
    VerifyFull,
}

impl SslMode {
    /// The value as written in a URL, for logs and messages.
    pub fn as_str(self) -> &'static str {
        match self {
            SslMode::Disable => "disable",
            SslMode::Prefer => "prefer",
            SslMode::Require => "require",
            SslMode::VerifyCa => "verify-ca",
            SslMode::VerifyFull => "verify-full",
        }
    }
}

/// Where trusted roots come from for the verifying modes.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Roots {
    System,
    File(PathBuf),
}

/// The TLS side of a connection, kept with its pool (also used to send cancel requests).
#[derive(Clone)]
pub enum Tls {
    /// `sslmode=disable`.
    None,
    /// Any other mode.
    Rustls(MakeRustlsConnect),
}

/// A guest's address turned into what the pool needs.
pub struct Target {
    /// tokio-postgres configuration (libpq-only options removed, timeouts set).
    pub config: tokio_postgres::Config,
    /// The effective mode (`require` with `sslrootcert` is reported as `verify-ca`).
    pub mode: SslMode,
    /// The connector matching `mode`.
    pub tls: Tls,
}

impl std::fmt::Debug for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print the configuration: it holds the password.
        f.debug_struct("Target")
            .field("mode", &self.mode)
            .finish_non_exhaustive()
    }
}

/// Parses a `postgres://` URL, resolving `sslmode`/`sslrootcert` into a TLS connector. The
/// error text is what the guest sees and never contains the URL (it may hold a password).
pub fn target(address: &str) -> Result<Target, String> {
    target_with(address, policy())
}

fn target_with(address: &str, policy: TlsPolicy) -> Result<Target, String> {
    let url = url::Url::parse(address)
        .map_err(|_| "invalid address: expected postgres://user@host:port/database".to_string())?;
    let mut mode = SslMode::Prefer;
    let mut roots = None;
    let mut kept = Vec::new();
    for (key, value) in url.query_pairs() {
        match key.as_ref() {
            "sslmode" => {
                mode = match value.as_ref() {
                    "disable" => SslMode::Disable,
                    "prefer" => SslMode::Prefer,
                    "require" => SslMode::Require,
                    "verify-ca" => SslMode::VerifyCa,
                    "verify-full" => SslMode::VerifyFull,
                    other => {
                        return Err(format!(
                            "invalid address: sslmode={other} is not supported (use disable, prefer, require, verify-ca or verify-full)"
                        ));
                    }
                }
            }
            "sslrootcert" => {
                roots = Some(if value == "system" {
                    Roots::System
                } else {
                    Roots::File(PathBuf::from(value.as_ref()))
                })
            }
            "sslcert" | "sslkey" | "sslpassword" | "sslcrl" => {
                return Err(format!(
                    "invalid address: `{key}` is not supported by edge-host (no client certificates or CRLs)"
                ));
            }
            _ => kept.push((key.into_owned(), value.into_owned())),
        }
    }
    if policy == TlsPolicy::Spin {
        return spin_target(url, mode, roots.is_some(), kept);
    }
    if mode == SslMode::Require && roots.is_some() {
        mode = SslMode::VerifyCa; // libpq: a root certificate makes `require` verify the chain
    }
    let mut config = client_config(url, kept)?;
    config.ssl_mode(match mode {
        SslMode::Disable => tokio_postgres::config::SslMode::Disable,
        SslMode::Prefer => tokio_postgres::config::SslMode::Prefer,
        _ => tokio_postgres::config::SslMode::Require,
    });
    let tls = match mode {
        SslMode::Disable => Tls::None,
        SslMode::Prefer | SslMode::Require => Tls::Rustls(connector(Verify::Nothing)?),
        SslMode::VerifyCa => Tls::Rustls(connector(Verify::Chain(root_store(roots)?))?),
        SslMode::VerifyFull => Tls::Rustls(connector(Verify::Full(root_store(roots)?))?),
    };
    Ok(Target { config, mode, tls })
}

/// The tokio-postgres configuration of `url` with only the options it knows (`kept`), and the
/// default connect limit unless the URL sets one.
fn client_config(
    mut url: url::Url,
    kept: Vec<(String, String)>,
) -> Result<tokio_postgres::Config, String> {
    if kept.is_empty() {
        url.set_query(None);
    } else {
        url.query_pairs_mut().clear().extend_pairs(kept);
    }
    let mut config = tokio_postgres::Config::from_str(url.as_str())
        .map_err(|e| format!("invalid address: {}", crate::pg_error::describe(&e)))?;
    if config.get_connect_timeout().is_none() {
        config.connect_timeout(DEFAULT_CONNECT_TIMEOUT);
    }
    Ok(config)
}

/// `--postgres-tls spin`: what Spin 4 would do with the same URL.
fn spin_target(
    url: url::Url,
    mode: SslMode,
    has_roots: bool,
    kept: Vec<(String, String)>,
) -> Result<Target, String> {
    if matches!(mode, SslMode::VerifyCa | SslMode::VerifyFull) {
        return Err(format!(
            "invalid address: invalid value for option `sslmode` ({} is not accepted by Spin: use disable, prefer or require; --postgres-tls spin)",
            mode.as_str()
        ));
    }
    if has_roots {
        return Err(
            "invalid address: unknown option `sslrootcert` (not accepted by Spin; --postgres-tls spin)"
                .into(),
        );
    }
    let mut config = client_config(url, kept)?;
    let (pg_mode, tls) = match mode {
        SslMode::Disable => (tokio_postgres::config::SslMode::Disable, Tls::None),
        SslMode::Require => (
            tokio_postgres::config::SslMode::Require,
            Tls::Rustls(connector(Verify::Full(system_roots()))?),
        ),
        _ => (
            tokio_postgres::config::SslMode::Prefer,
            Tls::Rustls(connector(Verify::Full(system_roots()))?),
        ),
    };
    config.ssl_mode(pg_mode);
    Ok(Target { config, mode, tls })
}

enum Verify {
    Nothing,
    Chain(Arc<RootCertStore>),
    Full(Arc<RootCertStore>),
}

fn provider() -> Arc<CryptoProvider> {
    static PROVIDER: OnceLock<Arc<CryptoProvider>> = OnceLock::new();
    PROVIDER
        .get_or_init(|| Arc::new(rustls::crypto::ring::default_provider()))
        .clone()
}

fn connector(verify: Verify) -> Result<MakeRustlsConnect, String> {
    let provider = provider();
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS set-up failed: {e}"))?;
    let config = match verify {
        Verify::Full(roots) => builder.with_root_certificates(roots).with_no_client_auth(),
        Verify::Chain(roots) => {
            let inner = WebPkiServerVerifier::builder_with_provider(roots, provider)
                .build()
                .map_err(|e| format!("TLS set-up failed: {e}"))?;
            builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(ChainOnly(inner)))
                .with_no_client_auth()
        }
        Verify::Nothing => builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(Unverified(
                provider.signature_verification_algorithms,
            )))
            .with_no_client_auth(),
    };
    Ok(MakeRustlsConnect::new(config))
}

/// Trusted roots: the PEM file named by `sslrootcert`, else the system bundle.
fn root_store(roots: Option<Roots>) -> Result<Arc<RootCertStore>, String> {
    match roots.unwrap_or(Roots::System) {
        Roots::System => Ok(system_roots()),
        Roots::File(path) => {
            let mut store = RootCertStore::empty();
            let certs = CertificateDer::pem_file_iter(&path)
                .and_then(|it| it.collect::<Result<Vec<_>, _>>())
                .map_err(|e| format!("cannot read sslrootcert {}: {e}", path.display()))?;
            let (added, _) = store.add_parsable_certificates(certs);
            if added == 0 {
                return Err(format!(
                    "sslrootcert {} holds no usable certificate",
                    path.display()
                ));
            }
            Ok(Arc::new(store))
        }
    }
}

/// The machine's CA bundle (loaded once), or Mozilla's roots where the machine has none.
fn system_roots() -> Arc<RootCertStore> {
    static ROOTS: OnceLock<Arc<RootCertStore>> = OnceLock::new();
    ROOTS
        .get_or_init(|| {
            let found = rustls_native_certs::load_native_certs();
            for e in &found.errors {
                tracing::debug!("system CA bundle: {e}");
            }
            let mut store = RootCertStore::empty();
            store.add_parsable_certificates(found.certs);
            if store.is_empty() {
                tracing::warn!("no system CA certificates found; using the bundled Mozilla roots");
                store.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
            }
            Arc::new(store)
        })
        .clone()
}

/// `verify-ca`: the chain must verify; the name in the certificate is not compared.
#[derive(Debug)]
struct ChainOnly(Arc<WebPkiServerVerifier>);

impl ServerCertVerifier for ChainOnly {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        // WebPkiServerVerifier checks the name last, after the chain verified.
        match self
            .0
            .verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
        {
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_verify_schemes()
    }
}

/// `prefer`/`require`: encryption without authentication of the server, as in libpq. The
/// handshake signatures are still checked, so the session key belongs to the presented key.
#[derive(Debug)]
struct Unverified(WebPkiSupportedAlgorithms);

impl ServerCertVerifier for Unverified {
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
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.0)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.0)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modes_and_root_certificates_follow_libpq() {
        let t = target("postgres://u@h/db").unwrap();
        assert_eq!(t.mode, SslMode::Prefer);
        assert_eq!(
            t.config.get_connect_timeout(),
            Some(&DEFAULT_CONNECT_TIMEOUT)
        );
        let t = target("postgres://u@h/db?sslmode=disable&connect_timeout=7").unwrap();
        assert_eq!(t.mode, SslMode::Disable);
        assert_eq!(
            t.config.get_connect_timeout(),
            Some(&Duration::from_secs(7))
        );
        assert!(matches!(t.tls, Tls::None));
        let t = target("postgres://u@h/db?sslmode=verify-full&application_name=x").unwrap();
        assert_eq!(t.mode, SslMode::VerifyFull);
        assert_eq!(t.config.get_application_name(), Some("x"));
        let t = target("postgres://u@h/db?sslmode=require&sslrootcert=system").unwrap();
        assert_eq!(t.mode, SslMode::VerifyCa);
    }

    #[test]
    fn spin_policy_verifies_every_tls_mode_and_rejects_libpq_only_options() {
        let t = target_with("postgres://u@h/db?sslmode=require", TlsPolicy::Spin).unwrap();
        assert_eq!(t.mode, SslMode::Require);
        let t = target_with("postgres://u@h/db?sslmode=disable", TlsPolicy::Spin).unwrap();
        assert!(matches!(t.tls, Tls::None));
        for url in [
            "postgres://u@h/db?sslmode=verify-full",
            "postgres://u@h/db?sslmode=verify-ca",
            "postgres://u@h/db?sslrootcert=system",
        ] {
            let e = target_with(url, TlsPolicy::Spin).unwrap_err();
            assert!(e.contains("not accepted by Spin"), "{url}: {e}");
        }
    }

    #[test]
    fn bad_options_are_named_without_the_password() {
        let e = target("postgres://u:hunter2@h/db?sslmode=allowish").unwrap_err();
        assert!(e.contains("sslmode=allowish"), "{e}");
        let e = target("postgres://u:hunter2@h/db?sslrootcert=/nonexistent.pem&sslmode=verify-ca")
            .unwrap_err();
        assert!(e.contains("/nonexistent.pem"), "{e}");
        let e = target("postgres://u:hunter2@h/db?sslcert=c.pem").unwrap_err();
        assert!(e.contains("sslcert"), "{e}");
        let e = target("postgres://u:hunter2@h/db?bogus=1").unwrap_err();
        assert!(e.contains("bogus") && !e.contains("hunter2"), "{e}");
    }
}
