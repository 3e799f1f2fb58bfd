//! Content-derived event ids, for protocols whose records carry no id of their own.
//!
//! OTLP and Loki clients retry by sending the same records again, without an id the service
//! could deduplicate on. The adapters derive one from everything that identifies a record (never
//! from when it arrived), so a resend always gets the same id and is dropped as a duplicate.
//! Each part is length-prefixed before hashing, so no two different part lists hash alike by
//! concatenating to the same bytes.

use sha2::{Digest, Sha256};

/// SHA-256 over the length-prefixed parts, as 64 lowercase hex digits.
pub fn content_id(parts: &[&[u8]]) -> String {
    let mut hasher = Sha256::new();
    for part in parts {
        hasher.update((part.len() as u64).to_le_bytes());
        hasher.update(part);
    }
    hasher
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_stable_and_boundary_safe() {
        let id = content_id(&[b"ab", b"c"]);
        assert_eq!(id.len(), 64);
        assert_eq!(id, content_id(&[b"ab", b"c"]));
        assert_ne!(id, content_id(&[b"a", b"bc"]));
        assert_ne!(id, content_id(&[b"abc"]));
    }
}
