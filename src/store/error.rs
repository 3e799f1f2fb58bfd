//! How a store failure reaches the rest of the service: a summary safe to show a client, a
//! detail for the log only, and whether retrying can help (which decides between "stays queued"
//! and "dead letter"). Each dialect maps its host's errors here (`sqlite_error`, `postgres_error`).

/// Whether retrying can fix a failure: decides between "stays queued" and "dead letter".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// The store is unreachable, busy or overloaded: retry later, never dead-letter.
    Transient,
    /// The data itself is refused (SQLSTATE classes 22 and 23, SQLite constraint errors).
    Permanent,
    /// Neither is clear: decided by the entry's retry history.
    Unknown,
}

/// A store failure: a short safe summary for clients and a detailed text for the log.
#[derive(Debug, Clone)]
pub struct StoreError {
    /// Short, credential-free description (e.g. `query failed (SQLSTATE 23505)`).
    pub summary: String,
    /// Full error text for stderr only.
    pub detail: String,
    /// Whether retrying can help.
    pub kind: ErrorKind,
}

impl StoreError {
    /// Builds an error of unknown kind from a safe summary and a log-only detail.
    pub fn new(summary: impl Into<String>, detail: impl Into<String>) -> StoreError {
        StoreError {
            summary: summary.into(),
            detail: detail.into(),
            kind: ErrorKind::Unknown,
        }
    }

    /// Sets the kind.
    pub fn kind(mut self, kind: ErrorKind) -> StoreError {
        self.kind = kind;
        self
    }
}

impl std::fmt::Display for StoreError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.summary, self.detail)
    }
}
