//! JSON text for the round-trip property test, spelled the way a sender might spell it.
//!
//! A [`Json`] tree keeps every string as a list of spelled [`Piece`]s (raw characters, short
//! escapes, `\uXXXX` in either case, surrogate pairs, and the bad escapes validation must refuse)
//! and every number as its literal text, so rendering reproduces one exact spelling. [`render`]
//! writes it with chosen whitespace between tokens; [`compact`] is an independent scanner that
//! removes that whitespace again — what the service must store, byte for byte.

use proptest::collection::vec;
use proptest::prelude::*;
use proptest::sample::select;

/// One spelled character of a JSON string (bad pieces aside, each decodes to one character).
#[derive(Clone, Debug, PartialEq)]
pub enum Piece {
    /// Written as itself; `"` and `\` as `\"` and `\\`, control characters as `\u00XX`.
    Raw(char),
    /// A two-character escape: one of `" \ / b f n r t`.
    Short(u8),
    /// `\uXXXX` for a BMP character that is not a surrogate; `true` = upper-case hex.
    Unit(char, bool),
    /// A surrogate-pair escape `\uD83D\uDE00` for an astral character; `true` = upper-case hex.
    Pair(char, bool),
    /// An escape (or raw byte) validation must refuse.
    Bad(Bad),
}

/// The ways a JSON string can be unacceptable to every store.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Bad {
    /// `\u0000`: no NUL in a stored text (`422` naming the field).
    Nul,
    /// `\uD800` with no low half after it (`400`).
    LoneHigh,
    /// `\uDC00` with no high half before it (`400`).
    LoneLow,
    /// `\uD83D\u0041`: a high half followed by a non-surrogate (`400`).
    HighThenOther,
    /// A raw control byte inside a string: not JSON at all (`400`).
    RawControl,
}

impl Bad {
    /// The status validation answers for this spelling alone.
    pub fn status(self) -> u16 {
        match self {
            Bad::Nul => 422,
            _ => 400,
        }
    }
}

/// A JSON value with its exact spelling.
#[derive(Clone, Debug, PartialEq)]
pub enum Json {
    /// `null`.
    Null,
    /// `true` / `false`.
    Bool(bool),
    /// A number literal, exactly as written.
    Num(String),
    /// A string.
    Str(Vec<Piece>),
    /// An array.
    Arr(Vec<Json>),
    /// An object; keys may repeat.
    Obj(Vec<(Vec<Piece>, Json)>),
}

/// The whitespace put between tokens: the gaps are used in turn, over and over.
#[derive(Clone, Debug, Default)]
pub struct Spacing {
    gaps: Vec<String>,
    next: usize,
}

impl Spacing {
    /// No whitespace at all: rendering gives the compact text directly.
    pub fn none() -> Spacing {
        Spacing::default()
    }

    /// The given gaps, used in turn.
    pub fn of(gaps: &[&str]) -> Spacing {
        Spacing {
            gaps: gaps.iter().map(|g| g.to_string()).collect(),
            next: 0,
        }
    }

    /// The next gap (empty when there are none).
    pub fn gap(&mut self) -> String {
        if self.gaps.is_empty() {
            return String::new();
        }
        let g = self.gaps[self.next % self.gaps.len()].clone();
        self.next += 1;
        g
    }
}

/// Writes one piece of a string's spelling.
fn render_piece(p: &Piece, out: &mut String) {
    let unit = |out: &mut String, u: u32, upper: bool| {
        if upper {
            out.push_str(&format!("\\u{u:04X}"));
        } else {
            out.push_str(&format!("\\u{u:04x}"));
        }
    };
    match p {
        Piece::Raw('"') => out.push_str("\\\""),
        Piece::Raw('\\') => out.push_str("\\\\"),
        Piece::Raw(c) if (*c as u32) < 0x20 => unit(out, *c as u32, false),
        Piece::Raw(c) => out.push(*c),
        Piece::Short(b) => {
            out.push('\\');
            out.push(*b as char);
        }
        Piece::Unit(c, upper) => unit(out, *c as u32, *upper),
        Piece::Pair(c, upper) => {
            let mut halves = [0u16; 2];
            c.encode_utf16(&mut halves);
            unit(out, u32::from(halves[0]), *upper);
            unit(out, u32::from(halves[1]), *upper);
        }
        Piece::Bad(Bad::Nul) => out.push_str("\\u0000"),
        Piece::Bad(Bad::LoneHigh) => out.push_str("\\uD800"),
        Piece::Bad(Bad::LoneLow) => out.push_str("\\udc00"),
        Piece::Bad(Bad::HighThenOther) => out.push_str("\\uD83D\\u0041"),
        Piece::Bad(Bad::RawControl) => out.push('\u{1}'),
    }
}

/// A JSON string literal for these pieces.
pub fn render_str(pieces: &[Piece]) -> String {
    let mut out = String::from("\"");
    for p in pieces {
        render_piece(p, &mut out);
    }
    out.push('"');
    out
}

/// The text a string's pieces decode to; `None` when a piece is bad.
pub fn decode(pieces: &[Piece]) -> Option<String> {
    pieces
        .iter()
        .map(|p| match p {
            Piece::Raw(c) | Piece::Unit(c, _) | Piece::Pair(c, _) => Some(*c),
            Piece::Short(b) => Some(match b {
                b'b' => '\u{8}',
                b'f' => '\u{c}',
                b'n' => '\n',
                b'r' => '\r',
                b't' => '\t',
                other => *other as char,
            }),
            Piece::Bad(_) => None,
        })
        .collect()
}

/// Writes `j` with a gap from `sp` around every structural token.
pub fn render(j: &Json, sp: &mut Spacing, out: &mut String) {
    match j {
        Json::Null => out.push_str("null"),
        Json::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Json::Num(n) => out.push_str(n),
        Json::Str(s) => out.push_str(&render_str(s)),
        Json::Arr(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                out.push_str(&sp.gap());
                if i > 0 {
                    out.push(',');
                    out.push_str(&sp.gap());
                }
                render(item, sp, out);
            }
            out.push_str(&sp.gap());
            out.push(']');
        }
        Json::Obj(members) => {
            out.push('{');
            for (i, (k, v)) in members.iter().enumerate() {
                out.push_str(&sp.gap());
                if i > 0 {
                    out.push(',');
                    out.push_str(&sp.gap());
                }
                out.push_str(&render_str(k));
                out.push_str(&sp.gap());
                out.push(':');
                out.push_str(&sp.gap());
                render(v, sp, out);
            }
            out.push_str(&sp.gap());
            out.push('}');
        }
    }
}

/// `j` rendered with the given spacing.
pub fn to_text(j: &Json, sp: &Spacing) -> String {
    let mut out = String::new();
    render(j, &mut sp.clone(), &mut out);
    out
}

/// Removes JSON's insignificant whitespace (space, tab, LF, CR outside strings); nothing else.
pub fn compact(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut in_string = false;
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if in_string {
            out.push(c);
            match c {
                '\\' => out.extend(chars.next()),
                '"' => in_string = false,
                _ => {}
            }
        } else if !matches!(c, ' ' | '\t' | '\n' | '\r') {
            in_string = c == '"';
            out.push(c);
        }
    }
    out
}

/// Levels of array/object nesting (a scalar is 0, `[]` is 1).
pub fn depth(j: &Json) -> usize {
    match j {
        Json::Arr(items) => 1 + items.iter().map(depth).max().unwrap_or(0),
        Json::Obj(members) => 1 + members.iter().map(|(_, v)| depth(v)).max().unwrap_or(0),
        _ => 0,
    }
}

/// Every bad piece in `j`, keys included.
pub fn bad_pieces(j: &Json) -> Vec<Bad> {
    fn of(s: &[Piece]) -> impl Iterator<Item = Bad> + '_ {
        s.iter().filter_map(|p| match p {
            Piece::Bad(b) => Some(*b),
            _ => None,
        })
    }
    match j {
        Json::Str(s) => of(s).collect(),
        Json::Arr(items) => items.iter().flat_map(bad_pieces).collect(),
        Json::Obj(members) => members
            .iter()
            .flat_map(|(k, v)| of(k).chain(bad_pieces(v)).collect::<Vec<_>>())
            .collect(),
        _ => Vec::new(),
    }
}

/// `n` nested containers (`kinds[i]`: array or object) around `leaf` (or an empty innermost one).
pub fn nested(kinds: &[bool], leaf: Option<Json>) -> Json {
    let wrap = |is_array: bool, inner: Option<Json>| match (is_array, inner) {
        (true, Some(v)) => Json::Arr(vec![v]),
        (true, None) => Json::Arr(vec![]),
        (false, Some(v)) => Json::Obj(vec![(vec![Piece::Raw('k')], v)]),
        (false, None) => Json::Obj(vec![]),
    };
    let mut value = leaf;
    for is_array in kinds.iter().rev() {
        value = Some(wrap(*is_array, value));
    }
    value.unwrap_or(Json::Null)
}

/// A string of plain text pieces.
pub fn plain(s: &str) -> Vec<Piece> {
    s.chars().map(Piece::Raw).collect()
}

/// Characters that tend to break things: astral emoji, ZWJ sequences, combining marks,
/// right-to-left text and overrides, BOM, line separators, noncharacters, the last scalar value,
/// and URL/query metacharacters (topics travel in a query string).
const TRICKY: &[char] = &[
    '😀',
    '👨',
    '\u{200D}',
    '🏳',
    '\u{FE0F}',
    '𝄞',
    '𠜎',
    '\u{10FFFF}',
    'e',
    '\u{301}',
    '\u{36F}',
    'ש',
    'ל',
    'ם',
    'م',
    'ر',
    '\u{202E}',
    '\u{200F}',
    '\u{FEFF}',
    '\u{2028}',
    '\u{2029}',
    '\u{FFFF}',
    '\u{FFFE}',
    '\u{7F}',
    '\u{80}',
    '\u{85}',
    'ß',
    'İ',
    '中',
    '&',
    '=',
    '+',
    '%',
    '#',
    '?',
    '/',
    ' ',
    '\'',
    '"',
    '\\',
    '<',
    '\u{1F}',
];

/// The number spellings at the edges of every store's number types (and past them).
pub fn edge_numbers() -> Vec<String> {
    let mut v: Vec<String> = [
        "1e999999",
        "-1e-20000",
        "1E+308",
        "4.9e-324",
        "0.0",
        "-0",
        "1.0e0",
        "1e131071",
        "-1e-999999",
        "1e-400",
        "1e400",
        "1.7976931348623157e308",
        "1.7976931348623159e308",
        "2.2250738585072014e-308",
        "5e-324",
        "-0.0",
        "0e0",
        "0E-0",
        "0",
        "1e+0",
        "100e-2",
        "0.1e1",
        "1E0001",
        "9007199254740993",
        "18446744073709551616",
        "-9223372036854775809",
        "0.000000000000000000000000000001",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    v.push(format!("1{}", "0".repeat(400)));
    v.push(format!("-{}", "9".repeat(300)));
    v.push(format!("0.{}1", "0".repeat(300)));
    v.push(format!("1.{}e-5", "5".repeat(250)));
    v
}

/// One spelled character: mostly printable ASCII, then tricky ones, any scalar, and escapes.
pub fn piece() -> impl Strategy<Value = Piece> {
    prop_oneof![
        6 => (0x20u8..0x7F).prop_map(|b| Piece::Raw(b as char)),
        3 => select(TRICKY).prop_map(Piece::Raw),
        2 => any::<char>().prop_filter("no NUL", |c| *c != '\0').prop_map(Piece::Raw),
        1 => select(&b"\"\\/bfnrt"[..]).prop_map(Piece::Short),
        1 => (1u32..=0xFFFF, any::<bool>()).prop_filter_map("a BMP scalar", |(u, up)| {
            char::from_u32(u).map(|c| Piece::Unit(c, up))
        }),
        1 => (0x10000u32..=0x10FFFF, any::<bool>())
            .prop_filter_map("an astral scalar", |(u, up)| char::from_u32(u).map(|c| Piece::Pair(c, up))),
    ]
}

/// A number literal: an edge spelling, a random grammar-valid spelling, or a Rust-formatted one.
pub fn number() -> impl Strategy<Value = String> {
    let grammar = proptest::string::string_regex(
        r"-?(0|[1-9][0-9]{0,40})(\.[0-9]{1,40})?([eE][+-]?[0-9]{1,7})?",
    )
    .expect("a valid regex");
    prop_oneof![
        3 => select(edge_numbers()),
        3 => grammar,
        1 => any::<i64>().prop_map(|n| n.to_string()),
        1 => (any::<f64>().prop_filter("finite", |f| f.is_finite()), any::<bool>())
            .prop_map(|(f, exp)| if exp { format!("{f:e}") } else { format!("{f}") }),
        1 => proptest::string::string_regex(r"-?[1-9][0-9]{100,400}").expect("a valid regex"),
    ]
}

/// An object key: often one of a few (so keys repeat), otherwise any string.
fn key() -> impl Strategy<Value = Vec<Piece>> {
    prop_oneof![
        3 => select(&["a", "b", "a", "", "id", "é", "😀", "k k"][..]).prop_map(plain),
        1 => vec(piece(), 0..8),
    ]
}

/// A scalar.
pub fn leaf() -> impl Strategy<Value = Json> {
    prop_oneof![
        1 => Just(Json::Null),
        1 => any::<bool>().prop_map(Json::Bool),
        3 => number().prop_map(Json::Num),
        3 => vec(piece(), 0..16).prop_map(Json::Str),
    ]
}

/// A random JSON tree (empty containers and repeated keys included).
pub fn tree() -> impl Strategy<Value = Json> {
    leaf().prop_recursive(5, 64, 6, |inner| {
        prop_oneof![
            vec(inner.clone(), 0..6).prop_map(Json::Arr),
            vec((key(), inner), 0..6).prop_map(Json::Obj),
        ]
    })
}

/// Whitespace between tokens: often none, sometimes runs of the four JSON whitespace characters.
pub fn spacing() -> impl Strategy<Value = Spacing> {
    vec(
        select(&["", "", "", " ", "\n", "\t", "\r\n", "  ", "\n\t \r"][..]),
        0..6,
    )
    .prop_map(|gaps| Spacing::of(&gaps))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compact_keeps_strings_and_drops_gaps() {
        let j = Json::Obj(vec![
            (plain("a b"), Json::Arr(vec![Json::Num("1e999999".into())])),
            (vec![Piece::Short(b'"'), Piece::Raw(' ')], Json::Null),
        ]);
        let spaced = to_text(&j, &Spacing::of(&[" ", "\n\t"]));
        assert_ne!(spaced, to_text(&j, &Spacing::none()));
        assert_eq!(compact(&spaced), r#"{"a b":[1e999999],"\" ":null}"#);
    }
}
