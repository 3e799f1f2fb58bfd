//! Words for PostgreSQL failures that an operator can act on. tokio-postgres and deadpool show
//! only their outermost layer (`Error occurred while creating a new object: db error`); the
//! cause — `database "x" does not exist`, `password authentication failed`, `Connection
//! refused`, a certificate that does not verify — sits further down the source chain. These
//! functions walk the chain and say it in one line, without the connection URL (which may hold a
//! password: no error in the chain formats the configuration).

use deadpool_postgres::{PoolError, TimeoutType};
use std::error::Error as StdError;

/// One line for a tokio-postgres error: each layer of the source chain, a server error as
/// `message (SQLSTATE code)`, a certificate failure named as such.
pub fn describe(e: &tokio_postgres::Error) -> String {
    let mut parts: Vec<String> = Vec::new();
    if let Some(db) = e.as_db_error() {
        return db_line(db);
    }
    parts.push(e.to_string());
    let mut next = e.source();
    while let Some(layer) = next {
        if let Some(db) = layer.downcast_ref::<tokio_postgres::error::DbError>() {
            parts.push(db_line(db));
            break;
        }
        if let Some(tls) = rustls_error(layer) {
            parts.push(tls_line(tls));
            break;
        }
        let text = layer.to_string();
        if !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        next = layer.source();
    }
    parts.join(": ")
}

/// One line for a failure to get a pooled connection (`open`).
pub fn describe_pool(e: &PoolError, timeouts: &deadpool_postgres::Timeouts) -> String {
    let secs = |d: Option<std::time::Duration>| d.map_or(0.0, |d| d.as_secs_f64());
    match e {
        PoolError::Backend(e) => describe(e),
        PoolError::Timeout(TimeoutType::Create) => format!(
            "no connection within {} s (TCP connect, TLS and authentication): the server is unreachable or too slow",
            secs(timeouts.create)
        ),
        PoolError::Timeout(TimeoutType::Wait) => format!(
            "no pooled connection became free within {} s (all in use or still being set up: the database is slow or unreachable, or the load exceeds the pool)",
            secs(timeouts.wait)
        ),
        PoolError::Timeout(TimeoutType::Recycle) => format!(
            "checking a pooled connection took over {} s",
            secs(timeouts.recycle)
        ),
        PoolError::Closed => "the connection pool is closed".into(),
        PoolError::NoRuntimeSpecified => "internal error: no runtime for pool timeouts".into(),
        PoolError::PostCreateHook(e) => e.to_string(),
    }
}

fn db_line(db: &tokio_postgres::error::DbError) -> String {
    let mut line = format!("{} (SQLSTATE {})", db.message(), db.code().code());
    if db.code().code() == "28000" && db.message().contains("no encryption") {
        line.push_str(": the server accepts only TLS connections here; remove sslmode=disable");
    }
    line
}

fn tls_line(e: &rustls::Error) -> String {
    match e {
        rustls::Error::InvalidCertificate(rustls::CertificateError::UnknownIssuer) => format!(
            "TLS certificate verification failed: {e} (the server's certificate is not signed by a \
             trusted CA: name its CA with sslrootcert=, or use sslmode=require to encrypt without \
             verifying)"
        ),
        rustls::Error::InvalidCertificate(_) => {
            format!("TLS certificate verification failed: {e}")
        }
        _ => format!("TLS error: {e}"),
    }
}

/// The rustls error inside `layer`, which tokio-rustls wraps in an `io::Error` (whose `source`
/// skips it, so `get_ref` has to look).
fn rustls_error<'a>(layer: &'a (dyn StdError + 'static)) -> Option<&'a rustls::Error> {
    if let Some(e) = layer.downcast_ref::<rustls::Error>() {
        return Some(e);
    }
    layer
        .downcast_ref::<std::io::Error>()
        .and_then(|io| io.get_ref())
        .and_then(|inner| inner.downcast_ref::<rustls::Error>())
}
