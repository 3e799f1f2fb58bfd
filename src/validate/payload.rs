//! Payloads: kept as the sender's JSON text, minus the whitespace between tokens.
//!
//! The parser has already checked the text is JSON; this pass looks only at what no store
//! can hold or what the rules refuse — `\u0000` escapes (a rule: `422`), unpaired surrogate
//! escapes (not Unicode: the body is malformed, `400`), nesting deeper than
//! [`MAX_PAYLOAD_DEPTH`] — and removes insignificant whitespace, so the stored text is the
//! compact form of what was sent: key order, number spelling and escapes stay the sender's,
//! and nothing can grow between what was sent and what is read back.

use serde_json::value::RawValue;

use super::{ItemError, MAX_PAYLOAD_DEPTH};

/// Checks a payload's escapes and drops the whitespace between its tokens.
///
/// The text is already valid JSON (the parser checked it), so only escapes need a
/// look: `\u0000` is a rule violation (`Ok(Err)`), an unpaired surrogate makes the body
/// malformed (`Err`). `None`: the text is already compact, and the caller keeps it as it is.
#[allow(clippy::type_complexity)]
pub(super) fn compact(raw: &RawValue) -> Result<Result<Option<String>, &'static str>, ItemError> {
    let b = raw.get().as_bytes();
    let mut out: Vec<u8> = Vec::new();
    let mut copied = 0; // b[..copied] is accounted for in `out` (only used once whitespace is seen)
    let mut in_string = false;
    let mut depth = 0usize;
    let mut i = 0;
    let hex = |at: usize| -> Option<u32> {
        let digits = std::str::from_utf8(b.get(at..at + 4)?).ok()?;
        u32::from_str_radix(digits, 16).ok()
    };
    let lone = || ItemError::Malformed("payload has an unpaired surrogate escape".into());
    while i < b.len() {
        if in_string {
            // Most of a payload is string text: jump to the next quote or backslash.
            match memchr::memchr2(b'"', b'\\', &b[i..]) {
                Some(at) => i += at,
                None => break,
            }
        }
        let c = b[i];
        if in_string {
            match c {
                b'"' => in_string = false,
                b'\\' if b.get(i + 1) == Some(&b'u') => {
                    let unit = hex(i + 2).ok_or_else(lone)?;
                    if unit == 0 {
                        return Ok(Err("strings must not contain NUL characters"));
                    }
                    if (0xDC00..0xE000).contains(&unit) {
                        return Err(lone());
                    }
                    if (0xD800..0xDC00).contains(&unit) {
                        let pair = b.get(i + 6..i + 8) == Some(&b"\\u"[..])
                            && hex(i + 8).is_some_and(|low| (0xDC00..0xE000).contains(&low));
                        if !pair {
                            return Err(lone());
                        }
                        i += 6;
                    }
                    i += 6;
                    continue;
                }
                b'\\' => {
                    i += 2;
                    continue;
                }
                _ => {}
            }
        } else if c == b'"' {
            in_string = true;
        } else if c == b'[' || c == b'{' {
            depth += 1;
            if depth > MAX_PAYLOAD_DEPTH {
                return Ok(Err(
                    "must not nest arrays and objects more than 128 levels deep",
                ));
            }
        } else if c == b']' || c == b'}' {
            depth -= 1;
        } else if matches!(c, b' ' | b'\t' | b'\n' | b'\r') {
            out.extend_from_slice(&b[copied..i]);
            copied = i + 1;
        }
        i += 1;
    }
    if copied == 0 {
        return Ok(Ok(None));
    }
    out.extend_from_slice(&b[copied..]);
    // Only whitespace between tokens was left out: still the same valid JSON, still UTF-8.
    let text = String::from_utf8(out).map_err(|e| ItemError::Malformed(e.to_string()))?;
    Ok(Ok(Some(text)))
}
