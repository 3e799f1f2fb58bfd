//! PostgreSQL failures as the service sees them: transient (retry, never dead-letter),
//! permanent (the data is refused) or unknown, with summaries safe to show a client.

use spin_sdk::pg4::{PgError, QueryError};

use super::{ErrorKind, StoreError};

/// Retrying helps for these SQLSTATE classes: connection (08), rollback such as
/// deadlock or serialization (40), resources (53), lock/state (55), operator
/// intervention (57), system (58). Data (22) and integrity (23) errors are the data's.
fn kind_of(code: &str) -> ErrorKind {
    match code.get(..2) {
        Some("08" | "40" | "53" | "55" | "57" | "58") => ErrorKind::Transient,
        Some("22" | "23") => ErrorKind::Permanent,
        _ => ErrorKind::Unknown,
    }
}

/// Maps a PostgreSQL host error to the store's error, with whether retrying can help.
pub(super) fn pg_error(e: PgError) -> StoreError {
    match e {
        PgError::ConnectionFailed(m) => {
            StoreError::new(connection_summary(&m), m).kind(ErrorKind::Transient)
        }
        PgError::QueryFailed(QueryError::DbError(db)) => StoreError::new(
            format!("query failed (SQLSTATE {})", db.code),
            format!("SQLSTATE {} {}: {}", db.code, db.severity, db.message),
        )
        .kind(kind_of(&db.code)),
        // Spin 4.0.2 flattens an error raised while a query's rows stream back (a constraint, a
        // trigger) to text: its SQLSTATE is still in the words, and decides as above.
        PgError::QueryFailed(QueryError::Text(t)) if sqlstate_in(&t).is_some() => {
            let code = sqlstate_in(&t).unwrap_or_default();
            StoreError::new(format!("query failed (SQLSTATE {code})"), t).kind(kind_of(&code))
        }
        PgError::QueryFailed(QueryError::Text(t)) => {
            let kind = if lost_connection(&t) {
                ErrorKind::Transient
            } else {
                ErrorKind::Unknown
            };
            StoreError::new("query failed", t).kind(kind)
        }
        PgError::BadParameter(m) => StoreError::new("bad parameter", m),
        PgError::ValueConversionFailed(m) => StoreError::new("value conversion failed", m),
        PgError::Other(m) => StoreError::new("postgres error", m),
    }
}

/// The SQLSTATE in a flattened server error (`code: "23505"`, or tokio-postgres's
/// `SqlState(E23505)`), if there is one.
fn sqlstate_in(text: &str) -> Option<String> {
    let valid = |c: &str| {
        c.len() == 5
            && c.bytes()
                .all(|b| b.is_ascii_digit() || b.is_ascii_uppercase())
    };
    for (marker, end) in [("code: \"", '"'), ("SqlState(E", ')')] {
        for (at, _) in text.match_indices(marker) {
            let rest = &text[at + marker.len()..];
            if let Some(code) = rest.split(end).next().filter(|c| valid(c)) {
                return Some(code.to_owned());
            }
        }
    }
    None
}

/// Whether a host's error text says the connection, not the statement, failed.
fn lost_connection(text: &str) -> bool {
    let t = text.to_ascii_lowercase();
    [
        "timed out",
        "no answer",
        "closed",
        "broke",
        "communicating",
        "eof",
        "reset",
        "refused",
        "connection",
        "pool",
    ]
    .iter()
    .any(|s| t.contains(s))
}

/// Names the cause of a failed connection in words safe to show (no address, no credentials).
pub fn connection_summary(message: &str) -> String {
    let m = message.to_ascii_lowercase();
    let cause = if m.contains("timed out") || m.contains("timeout") || m.contains("unreachable") {
        "the server is unreachable or too slow"
    } else if m.contains("does not exist") && m.contains("database") {
        "the database does not exist"
    } else if m.contains("password") || m.contains("authentication") {
        "authentication failed"
    } else if m.contains("pg_hba") {
        "the server refuses this client (pg_hba.conf; it may require TLS)"
    } else if m.contains("certificate") || m.contains("tls") || m.contains("ssl") {
        "TLS negotiation failed (check sslmode and the server certificate)"
    } else if m.contains("refused") {
        "connection refused"
    } else if m.contains("not allowed") || m.contains("allowed_outbound_hosts") {
        "address not allowed by allowed_outbound_hosts"
    } else if m.contains("resolve") || m.contains("lookup") || m.contains("dns") {
        "host name could not be resolved"
    } else {
        return "connection failed".to_owned();
    };
    format!("connection failed: {cause}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_flattened_server_error_keeps_its_sqlstate() {
        // What Spin 4.0.2 answers for a unique violation raised while a query runs.
        let spin = r#"Error::QueryFailed(QueryError::DbError(DbError { as-text: "Error { kind: Db, cause: Some(DbError { severity: \"ERROR\", code: SqlState(E23505), message: \"duplicate key\" }) }", severity: "ERROR", code: "23505", message: "duplicate key value violates unique constraint \"u_pkey\"" }))"#;
        let e = pg_error(PgError::QueryFailed(QueryError::Text(spin.into())));
        assert_eq!(e.kind, ErrorKind::Permanent);
        assert_eq!(e.summary, "query failed (SQLSTATE 23505)");
        assert_eq!(
            sqlstate_in("Error { code: SqlState(E40P01) }").as_deref(),
            Some("40P01")
        );
        // Words that merely look like a connection failure do not decide it ("refused").
        let refused = spin
            .replace("23505", "23514")
            .replace("duplicate key", "refused");
        let e = pg_error(PgError::QueryFailed(QueryError::Text(refused)));
        assert_eq!(e.kind, ErrorKind::Permanent);
        assert_eq!(sqlstate_in("connection reset by peer"), None);
    }

    #[test]
    fn sqlstate_classes() {
        assert_eq!(kind_of("08006"), ErrorKind::Transient);
        assert_eq!(kind_of("40P01"), ErrorKind::Transient);
        assert_eq!(kind_of("57P01"), ErrorKind::Transient);
        assert_eq!(kind_of("22003"), ErrorKind::Permanent);
        assert_eq!(kind_of("23514"), ErrorKind::Permanent);
        assert_eq!(kind_of("42P01"), ErrorKind::Unknown);
        assert_eq!(kind_of(""), ErrorKind::Unknown);
    }

    #[test]
    fn lost_connections_are_transient() {
        for text in [
            "the connection to PostgreSQL broke: early eof",
            "no answer from PostgreSQL within 10 s; the statement was cancelled",
            "error communicating with the server: Connection reset by peer",
            "no pooled connection became free within 5 s",
        ] {
            assert!(lost_connection(text), "{text}");
        }
        assert!(!lost_connection(
            "value too long for type character varying(3)"
        ));
    }

    #[test]
    fn connection_causes_are_named_without_secrets() {
        let s = connection_summary("db error: FATAL: database \"edgelog\" does not exist");
        assert_eq!(s, "connection failed: the database does not exist");
        let s = connection_summary("FATAL: password authentication failed for user \"bob\"");
        assert_eq!(s, "connection failed: authentication failed");
        assert!(!s.contains("bob"));
        assert_eq!(
            connection_summary("Connection refused (os error 111)"),
            "connection failed: connection refused"
        );
        assert_eq!(connection_summary("weird"), "connection failed");
        assert_eq!(
            connection_summary(
                "no connection within 5 s (TCP connect, TLS and authentication): the server is unreachable or too slow"
            ),
            "connection failed: the server is unreachable or too slow"
        );
        assert!(connection_summary("no pg_hba.conf entry for host").contains("pg_hba.conf"));
    }
}
