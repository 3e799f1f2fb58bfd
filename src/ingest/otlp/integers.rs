//! Whole numbers written with a fraction or an exponent (`2.0`, `1e3`), spelled as integers
//! before the OTLP/JSON request is deserialised.
//!
//! The protobuf JSON mapping that OTLP/JSON follows accepts any JSON number whose value is whole
//! for an integer field (protobuf's own parsers take `"flags": 1.0` and `1e2`), and JSON Schema's
//! `integer` is the same set of values; the deserialiser of `opentelemetry-proto` takes only the
//! plain spelling. This pass rewrites every number token whose value is a whole number of at most
//! [`MAX_DIGITS`] digits to its plain spelling, outside strings, exactly (digit by digit, never
//! through a float). A `doubleValue` so rewritten reads back as the same double. The text is
//! copied only when something is rewritten; anything that is not a number token followed by a
//! delimiter is left for the parser to judge.

use std::borrow::Cow;

/// Longest integer produced (`u64::MAX` has 20 digits); longer whole numbers stay as they are
/// (no integer field holds them, a double keeps its spelling).
const MAX_DIGITS: usize = 20;

/// `body` with whole numbers spelled as integers (borrowed when there were none to rewrite).
pub fn plain_integers(body: &[u8]) -> Cow<'_, [u8]> {
    let mut out: Option<Vec<u8>> = None;
    let mut copied = 0;
    let mut i = 0;
    let mut in_string = false;
    while i < body.len() {
        let c = body[i];
        if in_string {
            match c {
                b'\\' => i += 2,
                b'"' => {
                    in_string = false;
                    i += 1;
                }
                _ => i += 1,
            }
            continue;
        }
        match c {
            b'"' => {
                in_string = true;
                i += 1;
            }
            b'-' | b'0'..=b'9' => {
                let end = token_end(body, i);
                let delimited = body
                    .get(end)
                    .is_none_or(|c| matches!(c, b',' | b']' | b'}' | b' ' | b'\t' | b'\n' | b'\r'));
                if let Some(integer) = whole(&body[i..end]).filter(|_| delimited) {
                    let buf = out.get_or_insert_with(|| Vec::with_capacity(body.len()));
                    buf.extend_from_slice(&body[copied..i]);
                    buf.extend_from_slice(integer.as_bytes());
                    copied = end;
                }
                i = end.max(i + 1);
            }
            _ => i += 1,
        }
    }
    match out {
        Some(mut buf) => {
            buf.extend_from_slice(&body[copied..]);
            Cow::Owned(buf)
        }
        None => Cow::Borrowed(body),
    }
}

/// Where the run of number characters starting at `start` ends.
fn token_end(body: &[u8], start: usize) -> usize {
    body[start..]
        .iter()
        .position(|c| !matches!(c, b'-' | b'+' | b'.' | b'e' | b'E' | b'0'..=b'9'))
        .map_or(body.len(), |n| start + n)
}

/// The plain spelling of `token` when it is a JSON number (RFC 8259 grammar) with a fraction or
/// an exponent whose value is whole; `None` for everything else.
fn whole(token: &[u8]) -> Option<String> {
    let (negative, rest) = match token.strip_prefix(b"-") {
        Some(r) => (true, r),
        None => (false, token),
    };
    let int_len = rest.iter().take_while(|c| c.is_ascii_digit()).count();
    let int = &rest[..int_len];
    if int.is_empty() || (int.len() > 1 && int[0] == b'0') {
        return None;
    }
    let mut rest = &rest[int_len..];
    let mut frac: &[u8] = &[];
    if let Some(r) = rest.strip_prefix(b".") {
        let n = r.iter().take_while(|c| c.is_ascii_digit()).count();
        if n == 0 {
            return None;
        }
        frac = &r[..n];
        rest = &r[n..];
    }
    let mut exponent: i64 = 0;
    let has_exponent = matches!(rest.first(), Some(b'e' | b'E'));
    if has_exponent {
        let r = &rest[1..];
        let (sign, r) = match r.first() {
            Some(b'-') => (-1, &r[1..]),
            Some(b'+') => (1, &r[1..]),
            _ => (1, r),
        };
        if r.is_empty() || r.len() > 6 || !r.iter().all(u8::is_ascii_digit) {
            return None;
        }
        exponent = sign * std::str::from_utf8(r).ok()?.parse::<i64>().ok()?;
        rest = &[];
    }
    if !rest.is_empty() || (frac.is_empty() && !has_exponent) {
        return None;
    }
    // The value is 0.DIGITS × 10^point.
    let digits: Vec<u8> = int.iter().chain(frac).copied().collect();
    let point = int.len() as i64 + exponent;
    if digits.iter().all(|&d| d == b'0') {
        return Some("0".to_owned());
    }
    let first = digits.iter().position(|&d| d != b'0').unwrap_or(0) as i64;
    if point <= first || point - first > MAX_DIGITS as i64 {
        return None;
    }
    let point = point as usize;
    if digits
        .get(point..)
        .is_some_and(|tail| tail.iter().any(|&d| d != b'0'))
    {
        return None;
    }
    let mut integer: Vec<u8> = digits.iter().take(point).copied().collect();
    integer.resize(point, b'0');
    let integer = &integer[first as usize..];
    let mut text = String::with_capacity(integer.len() + 1);
    if negative {
        text.push('-');
    }
    text.push_str(std::str::from_utf8(integer).ok()?);
    Some(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rewrite(s: &str) -> String {
        String::from_utf8(plain_integers(s.as_bytes()).into_owned()).unwrap()
    }

    #[test]
    fn whole_numbers_lose_their_fraction_and_exponent() {
        assert_eq!(
            rewrite(r#"{"flags":2143.0,"n":-2147483648.0,"t":1e3,"u":0.5e1,"v":100e-2}"#),
            r#"{"flags":2143,"n":-2147483648,"t":1000,"u":5,"v":1}"#
        );
        assert_eq!(
            rewrite("[0.0,-0.0,0e-5,1E+2,18446744073709551615.000]"),
            "[0,0,0,100,18446744073709551615]"
        );
    }

    #[test]
    fn everything_else_is_left_alone() {
        for same in [
            r#"{"a":1,"b":-7,"c":"2.0 in a string","d":"\"1.0\"","e":[true,null]}"#,
            "[1.5,1e-5,-0.25,12.34e1,1e400,123456789012345678901.0]",
            "[01.0,1.,.5,1.0.0,1e,1e+,--1,1.0x]",
        ] {
            assert!(
                matches!(plain_integers(same.as_bytes()), Cow::Borrowed(_)),
                "{same}"
            );
        }
    }

    #[test]
    fn a_rewritten_request_reads_as_the_plain_one() {
        let rewritten = rewrite(r#"{"x":[2.0,{"k":"v\\"},3e0]}"#);
        assert_eq!(rewritten, r#"{"x":[2,{"k":"v\\"},3]}"#);
        let v: serde_json::Value = serde_json::from_str(&rewritten).unwrap();
        assert_eq!(v["x"][0], 2);
    }
}
