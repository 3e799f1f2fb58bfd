//! What the service reads out of a payload it otherwise keeps opaque: the *searchable message*
//! and, when the event has no `level` of its own, a level.
//!
//! Searchable message: the first of the payload object's `message`, `msg` and `body` members
//! that is present and not `null` — a string as its text, anything else (an OTLP `body` that is
//! a map, a number) as its compact JSON — or the payload itself when it is a JSON string.
//! Without one, search reads the whole payload text (the store does that: `NULL` here).
//! Level: the payload object's `level` or `severity` string, if it names a level. Reading is
//! best effort and never rejects an event: a payload that is not an object, or repeats one of
//! these members, simply has neither.

use super::level::Level;
use std::borrow::Cow;

/// The members of a payload object this module looks at, in the order they are preferred.
pub(super) const KNOWN: [&str; 5] = ["message", "msg", "body", "level", "severity"];

/// A raw JSON value as text: a string decoded, anything else as its (compact) JSON; borrowed
/// from `json` when it needs no decoding.
fn as_text(json: &str) -> Option<Cow<'_, str>> {
    if json == "null" {
        None
    } else if json.starts_with('"') {
        // No escape before the closing quote: the text between the quotes is the value. (A
        // JSON string holds no raw control character, the other place `plain_end` stops.)
        let end = super::scan::plain_end(json.as_bytes(), 1);
        if end + 1 == json.len() && json.as_bytes()[end] == b'"' {
            Some(Cow::Borrowed(&json[1..end]))
        } else {
            serde_json::from_str(json).ok().map(Cow::Owned)
        }
    } else {
        Some(Cow::Borrowed(json))
    }
}

/// The searchable message and the payload's own level (see the module doc).
///
/// Every event's payload passes through here, so the members are found by a scan of the text
/// (the payload is JSON already: its parser checked it) rather than a second parse; a member
/// repeated, as a parser would refuse it, gives neither, and so does anything unexpected.
pub fn inspect(json: &str) -> (Option<String>, Option<Level>) {
    if json.starts_with('"') {
        return (serde_json::from_str(json).ok(), None);
    }
    match members(json) {
        Some(known) => read(&known),
        None => (None, None),
    }
}

/// The message and level from the raw values of a payload object's [`KNOWN`] members, in
/// [`KNOWN`]'s order (how `validate::scan` reads them out of the members it copies).
pub(super) fn read(known: &[Option<&str>; 5]) -> (Option<String>, Option<Level>) {
    let message = known[..3]
        .iter()
        .flatten()
        .find_map(|raw| as_text(raw).map(Cow::into_owned));
    let level = known[3..]
        .iter()
        .flatten()
        .filter(|raw| raw.starts_with('"'))
        .find_map(|raw| as_text(raw).and_then(|s| Level::parse(&s)));
    (message, level)
}

/// The raw values of the [`KNOWN`] members of a JSON object's text; `None` if it is not an
/// object or repeats one of them (a key compares by its decoded text, escapes and all).
fn members(json: &str) -> Option<[Option<&str>; 5]> {
    let b = json.as_bytes();
    let mut found: [Option<&str>; 5] = [None; 5];
    let mut i = skip_space(b, 0);
    if b.get(i) != Some(&b'{') {
        return None;
    }
    i = skip_space(b, i + 1);
    if b.get(i) == Some(&b'}') {
        return Some(found);
    }
    loop {
        if b.get(i) != Some(&b'"') {
            return None;
        }
        let key_end = string_end(b, i)?;
        let key = &json[i..key_end];
        i = skip_space(b, key_end);
        if b.get(i) != Some(&b':') {
            return None;
        }
        let start = skip_space(b, i + 1);
        let end = value_end(b, start)?;
        let slot = if key.contains('\\') {
            let decoded: String = serde_json::from_str(key).ok()?;
            KNOWN.iter().position(|k| *k == decoded)
        } else {
            KNOWN.iter().position(|k| *k == &key[1..key.len() - 1])
        };
        if let Some(slot) = slot {
            if found[slot].is_some() {
                return None;
            }
            found[slot] = Some(&json[start..end]);
        }
        i = skip_space(b, end);
        match b.get(i) {
            Some(b',') => i = skip_space(b, i + 1),
            Some(b'}') => return Some(found),
            _ => return None,
        }
    }
}

/// The first index at or after `i` that is not JSON whitespace.
fn skip_space(b: &[u8], mut i: usize) -> usize {
    while matches!(b.get(i), Some(b' ' | b'\t' | b'\n' | b'\r')) {
        i += 1;
    }
    i
}

/// Just past the closing quote of the string that opens at `i`.
fn string_end(b: &[u8], i: usize) -> Option<usize> {
    let mut at = i + 1;
    loop {
        at += memchr::memchr2(b'"', b'\\', b.get(at..)?)?;
        if b[at] == b'"' {
            return Some(at + 1);
        }
        at += 2;
    }
}

/// Just past the value that starts at `i`: a string, a nested array or object, or a scalar.
fn value_end(b: &[u8], i: usize) -> Option<usize> {
    match b.get(i)? {
        b'"' => string_end(b, i),
        b'{' | b'[' => {
            let mut depth = 0usize;
            let mut at = i;
            loop {
                match b.get(at)? {
                    b'"' => {
                        at = string_end(b, at)?;
                        continue;
                    }
                    b'{' | b'[' => depth += 1,
                    b'}' | b']' => {
                        depth -= 1;
                        if depth == 0 {
                            return Some(at + 1);
                        }
                    }
                    _ => {}
                }
                at += 1;
            }
        }
        _ => {
            let len = b[i..]
                .iter()
                .position(|c| matches!(c, b',' | b'}' | b']' | b' ' | b'\t' | b'\n' | b'\r'))?;
            Some(i + len)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::value::RawValue;

    fn of(json: &str) -> (Option<String>, Option<Level>) {
        inspect(json)
    }

    #[test]
    fn message_members_in_order() {
        assert_eq!(of(r#"{"msg":"b","message":"a"}"#).0.as_deref(), Some("a"));
        assert_eq!(of(r#"{"message":null,"msg":"b"}"#).0.as_deref(), Some("b"));
        assert_eq!(
            of(r#"{"body":{"k":[1,2]}}"#).0.as_deref(),
            Some(r#"{"k":[1,2]}"#)
        );
        assert_eq!(
            of(r#"{"message":"caf\u00e9 \"x\""}"#).0.as_deref(),
            Some("café \"x\"")
        );
        assert_eq!(of(r#""plain line""#).0.as_deref(), Some("plain line"));
        assert_eq!(of(r#"{"other":"x"}"#).0, None);
        assert_eq!(of("[1]").0, None);
        assert_eq!(of("null").0, None);
        assert_eq!(
            of(r#"{"n":1e999999,"message":"big"}"#).0.as_deref(),
            Some("big")
        );
    }

    /// The reading this module's scan replaced: a serde parse of the known members. Kept as
    /// the oracle the scan must agree with.
    fn parsed(json: &str) -> (Option<String>, Option<Level>) {
        #[derive(serde::Deserialize)]
        struct Known<'a> {
            #[serde(borrow)]
            message: Option<&'a RawValue>,
            #[serde(borrow)]
            msg: Option<&'a RawValue>,
            #[serde(borrow)]
            body: Option<&'a RawValue>,
            #[serde(borrow)]
            level: Option<&'a RawValue>,
            #[serde(borrow)]
            severity: Option<&'a RawValue>,
        }
        if json.starts_with('"') {
            return (serde_json::from_str(json).ok(), None);
        }
        if !json.starts_with('{') {
            return (None, None);
        }
        let Ok(k) = serde_json::from_str::<Known>(json) else {
            return (None, None);
        };
        let message = [k.message, k.msg, k.body]
            .into_iter()
            .flatten()
            .find_map(|r| as_text(r.get()).map(Cow::into_owned));
        let level = [k.level, k.severity]
            .into_iter()
            .flatten()
            .filter(|r| r.get().starts_with('"'))
            .find_map(|r| as_text(r.get()).and_then(|s| Level::parse(&s)));
        (message, level)
    }

    #[test]
    fn the_scan_reads_what_a_parse_reads() {
        // Objects built from members that matter (the known names, spelled with escapes too,
        // repeated), values of every kind (nested, escaped, null), whitespace between tokens.
        const KEYS: [&str; 12] = [
            "message",
            "msg",
            "body",
            "level",
            "severity",
            "m\\u0065ssage",
            "lev\\u0065l",
            "n",
            "levels",
            "mess",
            "\\\"q",
            "",
        ];
        const VALUES: [&str; 14] = [
            "\"warn\"",
            "\"ERR\"",
            "\"text \\\" q\"",
            "null",
            "12",
            "-1.5e3",
            "true",
            "{\"k\":[1,{\"level\":\"x\"}]}",
            "[\"]\",\"}\"]",
            "\"\\u00e9\"",
            "{}",
            "[]",
            "\"info\"",
            "\"a\\\\\"",
        ];
        const SPACE: [&str; 4] = ["", " ", "\n\t", "\r "];
        let mut rng = crate::testing::Rng(0x2545_f491_4f6c_dd1d);
        let mut next = |n: usize| rng.below(n);
        for _ in 0..5_000 {
            let members = next(5);
            let mut json = String::from("{");
            for m in 0..members {
                if m > 0 {
                    json.push(',');
                }
                let sp = SPACE[next(4)];
                json.push_str(&format!(
                    "{sp}\"{}\"{sp}:{sp}{}{sp}",
                    KEYS[next(KEYS.len())],
                    VALUES[next(VALUES.len())]
                ));
            }
            json.push('}');
            assert!(
                serde_json::from_str::<serde_json::Value>(&json).is_ok(),
                "the test builds JSON: {json}"
            );
            assert_eq!(of(&json), parsed(&json), "{json}");
        }
        for other in [
            "\"line\"",
            "[1]",
            "null",
            "7",
            "\"\\ud800\"",
            " {\"msg\":\"x\"}",
        ] {
            assert_eq!(of(other), parsed(other.trim_start()), "{other}");
        }
    }

    #[test]
    fn payload_level_is_best_effort() {
        assert_eq!(of(r#"{"level":"WARNING"}"#).1, Some(Level::Warn));
        assert_eq!(of(r#"{"severity":"err"}"#).1, Some(Level::Error));
        assert_eq!(
            of(r#"{"level":"loud","severity":"info"}"#).1,
            Some(Level::Info)
        );
        assert_eq!(of(r#"{"level":30}"#).1, None);
        assert_eq!(of(r#"{"level":"info","level":"warn"}"#), (None, None));
    }
}
