//! JSON text for the payloads the protocol adapters build, written directly.
//!
//! Adapters turn OTLP and Loki records into payload text without a `serde_json::Value` tree
//! (which would sort the keys and drop repeated ones): keys stay in the sender's order and
//! numbers keep their exact spelling. The text is then checked by `validate` like any payload.

use std::fmt::Write as _;

/// A JSON object being written: `{"k":v,...}`.
pub struct Object<'a> {
    out: &'a mut String,
    first: bool,
}

impl<'a> Object<'a> {
    /// Opens an object at the end of `out`.
    pub fn open(out: &'a mut String) -> Self {
        out.push('{');
        Object { out, first: true }
    }

    /// Writes a key and returns the buffer for its value (which the caller must then write).
    pub fn key(&mut self, key: &str) -> &mut String {
        if !self.first {
            self.out.push(',');
        }
        self.first = false;
        push_str(self.out, key);
        self.out.push(':');
        self.out
    }

    /// Writes a string member.
    pub fn string(&mut self, key: &str, value: &str) {
        push_str(self.key(key), value);
    }

    /// Writes a member whose value is already JSON text (a number, `true`, ...).
    pub fn raw(&mut self, key: &str, value: &str) {
        self.key(key).push_str(value);
    }

    /// Closes the object.
    pub fn close(self) {
        self.out.push('}');
    }
}

/// Appends `s` as a JSON string (quotes and escapes). Every character that needs an escape is
/// ASCII, so the scan is over bytes and the runs between escapes are copied whole.
pub fn push_str(out: &mut String, s: &str) {
    out.reserve(s.len() + 2);
    out.push('"');
    let mut start = 0;
    for (i, b) in s.bytes().enumerate() {
        let escape = match b {
            b'"' => "\\\"",
            b'\\' => "\\\\",
            b'\n' => "\\n",
            b'\r' => "\\r",
            b'\t' => "\\t",
            0..0x20 => "",
            _ => continue,
        };
        out.push_str(&s[start..i]);
        if escape.is_empty() {
            let _ = write!(out, "\\u{b:04x}");
        } else {
            out.push_str(escape);
        }
        start = i + 1;
    }
    out.push_str(&s[start..]);
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strings_and_objects_are_json() {
        let mut out = String::new();
        let mut o = Object::open(&mut out);
        o.string("a\"b", "line\n\ttab \u{1} é \\");
        o.raw("n", "12");
        o.string("a\"b", "again");
        o.close();
        assert_eq!(
            out,
            r#"{"a\"b":"line\n\ttab \u0001 é \\","n":12,"a\"b":"again"}"#
        );
        let v: serde_json::Value = serde_json::from_str(&out).unwrap();
        assert_eq!(v["n"], 12);
    }
}
