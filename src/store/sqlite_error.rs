//! SQLite failures as the service sees them: busy, locked or I/O trouble is the database's
//! (transient), constraint and type errors are the data's (permanent).

use spin_sdk::sqlite3::Error;

use super::super::{ErrorKind, StoreError};

/// Maps a host error to the store's error, with whether retrying can help.
pub(super) fn sqlite_error(e: Error) -> StoreError {
    let (summary, kind) = match &e {
        Error::NoSuchDatabase => (
            "sqlite database \"default\" is not configured",
            ErrorKind::Transient,
        ),
        Error::AccessDenied => (
            "access to the sqlite database was denied",
            ErrorKind::Transient,
        ),
        Error::InvalidConnection => ("invalid sqlite connection", ErrorKind::Transient),
        Error::DatabaseFull => ("the sqlite database is full", ErrorKind::Transient),
        Error::Io(m) => ("sqlite query failed", io_kind(m)),
    };
    StoreError::new(summary, format!("sqlite: {e:?}")).kind(kind)
}

/// Busy, locked or I/O trouble is the database's; constraint and type errors are the data's.
fn io_kind(message: &str) -> ErrorKind {
    let m = message.to_ascii_lowercase();
    if ["locked", "busy", "disk i/o", "unable to open", "readonly"]
        .iter()
        .any(|s| m.contains(s))
    {
        ErrorKind::Transient
    } else if [
        "constraint",
        "datatype mismatch",
        "too big",
        "malformed json",
    ]
    .iter()
    .any(|s| m.contains(s))
    {
        ErrorKind::Permanent
    } else {
        ErrorKind::Unknown
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_kinds() {
        assert_eq!(io_kind("database is locked"), ErrorKind::Transient);
        assert_eq!(
            io_kind("CHECK constraint failed: poison"),
            ErrorKind::Permanent
        );
        assert_eq!(io_kind("something else"), ErrorKind::Unknown);
    }
}
