//! The hand-picked edge corpus of the round-trip test, published on every run whatever the
//! random draw: every edge number bare, in an object with whitespace and in an array; nesting at
//! 128 and 129 levels; payloads at and over 64 KiB in one- and two-byte characters; unicode keys
//! and values; every bad escape in every field; text fields of 255 and 256 characters; timestamps
//! at the ends of what can be stored; a repeated member.

use crate::cases::{
    Case, Field, MAX_DEPTH, MAX_PAYLOAD_BYTES, MAX_TEXT_CHARS, Payload, TAG_CHARS, Ts, sized,
};
use crate::json::{Bad, Json, Piece, Spacing, edge_numbers, nested, plain};

/// The hand-picked edges, so every run covers them whatever the random draw.
pub fn edge_cases() -> Vec<Case> {
    let value = |j: Json| Case::with_payload(Payload::Value(j, Spacing::none()));
    let spaced =
        |j: Json| Case::with_payload(Payload::Value(j, Spacing::of(&[" ", "\n\t", "", "\r\n "])));
    let mut cases: Vec<Case> = edge_numbers()
        .into_iter()
        .flat_map(|n| {
            [
                value(Json::Num(n.clone())),
                spaced(Json::Obj(vec![(plain("n"), Json::Num(n.clone()))])),
                value(Json::Arr(vec![Json::Num(n)])),
            ]
        })
        .collect();
    let deep = |d: usize, arrays: bool| nested(&vec![arrays; d], Some(Json::Num("1".into())));
    for d in [MAX_DEPTH, MAX_DEPTH + 1] {
        cases.push(value(deep(d, true)));
        cases.push(spaced(deep(d, false)));
        cases.push(value(nested(
            &(0..d).map(|i| i % 2 == 0).collect::<Vec<_>>(),
            None,
        )));
    }
    for (bytes, wide) in [
        (MAX_PAYLOAD_BYTES, false),
        (MAX_PAYLOAD_BYTES, true),
        (MAX_PAYLOAD_BYTES + 1, false),
        (MAX_PAYLOAD_BYTES + 1, true),
    ] {
        cases.push(spaced(sized(bytes, wide)));
    }
    let unicode = vec![
        Piece::Raw('😀'),
        Piece::Pair('😀', true),
        Piece::Pair('\u{10FFFF}', false),
        Piece::Unit('é', false),
        Piece::Unit('\u{FFFF}', true),
        Piece::Raw('e'),
        Piece::Raw('\u{301}'),
        Piece::Raw('ש'),
        Piece::Raw('\u{202E}'),
        Piece::Short(b'/'),
        Piece::Short(b'"'),
        Piece::Raw('\u{1F}'),
        Piece::Raw('\u{2028}'),
    ];
    cases.push(value(Json::Obj(vec![
        (plain("a"), Json::Num("1".into())),
        (plain("a"), Json::Str(unicode.clone())),
        (
            unicode.clone(),
            Json::Arr(vec![
                Json::Obj(vec![]),
                Json::Arr(vec![]),
                Json::Str(vec![]),
            ]),
        ),
    ])));
    cases.push(Case::with_payload(Payload::Absent));
    cases.push(value(Json::Null));
    for bad in [
        Bad::Nul,
        Bad::LoneHigh,
        Bad::LoneLow,
        Bad::HighThenOther,
        Bad::RawControl,
    ] {
        for field in [Field::Topic, Field::EventId, Field::Source, Field::Payload] {
            let mut c = Case::with_payload(Payload::Absent);
            c.poison = Some((field, bad));
            cases.push(c);
        }
    }
    // Text fields at and over the limit, in unicode (astral characters written as pairs too).
    let mut long_text = |len: usize, which: Field| {
        let mut c = value(Json::Obj(vec![]));
        let pieces: Vec<Piece> = unicode.iter().cycle().take(len).cloned().collect();
        match which {
            Field::Topic => c.topic = pieces,
            Field::Source => c.source = pieces,
            _ => c.event_id = pieces[..len - TAG_CHARS].to_vec(),
        }
        cases.push(c);
    };
    for which in [Field::Topic, Field::EventId, Field::Source] {
        long_text(MAX_TEXT_CHARS, which);
        long_text(MAX_TEXT_CHARS + 1, which);
    }
    // Timestamps at the edges of what can be stored.
    for (ymd_hms, fraction, offset) in [
        ((1, 1, 1, 0, 0, 0), "", "Z"),
        ((1, 1, 1, 0, 0, 0), "", "+00:01"),
        ((9999, 12, 31, 23, 59, 59), "999999999", "Z"),
        ((9999, 12, 31, 23, 59, 59), "", "-00:01"),
        ((2024, 2, 29, 23, 30, 0), "5", "-23:59"),
        ((2023, 2, 29, 0, 0, 0), "", "Z"),
        ((2016, 12, 31, 23, 59, 60), "", "Z"),
        ((2024, 5, 1, 12, 0, 0), "1234567", ""),
    ] {
        let mut c = value(Json::Obj(vec![]));
        c.ts = Ts {
            ymd_hms,
            fraction: fraction.into(),
            separator: ' ',
            offset: offset.into(),
        };
        cases.push(c);
    }
    let mut repeated = value(Json::Obj(vec![]));
    repeated.repeated_member = true;
    cases.push(repeated);
    cases
}
