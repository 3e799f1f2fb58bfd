//! One generated publish per [`Case`]: its text fields, timestamp and payload as a sender might
//! spell them, and what the service must answer — computed here, independently of the service:
//! stored with this compact payload and this UTC timestamp, or rejected with this status naming
//! these fields.

use chrono::{Datelike, NaiveDate, NaiveDateTime, NaiveTime, TimeDelta};
use proptest::collection::vec;
use proptest::prelude::*;
use proptest::sample::select;

use crate::json::{
    self, Bad, Json, Piece, Spacing, compact, decode, nested, piece, plain, render_str, spacing,
    to_text,
};

/// The payload limit in bytes of compact JSON (`max_payload_bytes`' default in spin.toml).
pub const MAX_PAYLOAD_BYTES: usize = 65_536;
/// The deepest accepted payload nesting (docs/DESIGN.md, "Validation rules").
pub const MAX_DEPTH: usize = 128;
/// Longest topic / event_id / source, in characters.
pub const MAX_TEXT_CHARS: usize = 255;
/// Characters of the unique tag every event_id starts with.
pub const TAG_CHARS: usize = 6;

/// A timestamp as spelled by the sender.
#[derive(Clone, Debug)]
pub struct Ts {
    /// Date and time-of-day fields, unchecked (so impossible dates can be sent).
    pub ymd_hms: (u32, u32, u32, u32, u32, u32),
    /// Fraction digits after the dot (may be empty = no fraction).
    pub fraction: String,
    /// `T`, `t` or a space.
    pub separator: char,
    /// `""`, `Z`, `z`, or `±HH:MM`.
    pub offset: String,
}

impl Ts {
    /// The text sent.
    pub fn text(&self) -> String {
        let (y, mo, d, h, mi, s) = self.ymd_hms;
        let frac = if self.fraction.is_empty() {
            String::new()
        } else {
            format!(".{}", self.fraction)
        };
        format!(
            "{y:04}-{mo:02}-{d:02}{}{h:02}:{mi:02}:{s:02}{frac}{}",
            self.separator, self.offset
        )
    }

    /// What the service must store: UTC, microseconds; `None` when it must be rejected.
    pub fn expected(&self) -> Option<String> {
        let (y, mo, d, h, mi, s) = self.ymd_hms;
        let date = NaiveDate::from_ymd_opt(y as i32, mo, d)?;
        let micros: String = self
            .fraction
            .chars()
            .chain("000000".chars())
            .take(6)
            .collect();
        let time = NaiveTime::from_hms_micro_opt(h, mi, s, micros.parse().ok()?)?;
        if s > 59 {
            return None;
        }
        let offset_minutes = match self.offset.as_bytes() {
            [] | [b'Z' | b'z'] => 0,
            [sign, ..] => {
                let (oh, om): (i64, i64) = (
                    self.offset[1..3].parse().ok()?,
                    self.offset[4..6].parse().ok()?,
                );
                if oh > 23 || om > 59 {
                    return None;
                }
                if *sign == b'-' {
                    -(oh * 60 + om)
                } else {
                    oh * 60 + om
                }
            }
        };
        let utc = NaiveDateTime::new(date, time)
            .checked_sub_signed(TimeDelta::minutes(offset_minutes))
            .filter(|t| (1..=9999).contains(&t.year()))?;
        Some(utc.format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string())
    }
}

/// The payload member of an event.
#[derive(Clone, Debug)]
pub enum Payload {
    /// No `payload` member: stored as `{}`.
    Absent,
    /// A value, written with this spacing between its tokens (and around it).
    Value(Json, Spacing),
}

/// Where a bad spelling is put.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Field {
    /// `topic`.
    Topic,
    /// `event_id`.
    EventId,
    /// `source`.
    Source,
    /// `payload` (replaced by `{"s":"a<bad>"}`).
    Payload,
}

/// One generated event.
#[derive(Clone, Debug)]
pub struct Case {
    /// `topic` pieces.
    pub topic: Vec<Piece>,
    /// `event_id` pieces after the unique tag.
    pub event_id: Vec<Piece>,
    /// `source` pieces.
    pub source: Vec<Piece>,
    /// `timestamp`.
    pub ts: Ts,
    /// `payload`.
    pub payload: Payload,
    /// A bad spelling put into one field.
    pub poison: Option<(Field, Bad)>,
    /// An unknown member, which must be ignored.
    pub extra: Option<Json>,
    /// `source` given twice: the event is rejected as a whole.
    pub repeated_member: bool,
    /// Whitespace between the event object's own tokens.
    pub spacing: Spacing,
}

/// What the service must do with a case.
#[derive(Clone, Debug, PartialEq)]
pub enum Expect {
    /// Stored: read back with exactly this payload text and timestamp.
    Stored {
        /// Compact payload text.
        payload: String,
        /// Normalised UTC timestamp.
        timestamp: String,
    },
    /// Rejected with this status, naming these fields in the error details (in order).
    Rejected {
        /// HTTP status.
        status: u16,
        /// `details[].field` (`None` for a problem with the event as a whole).
        fields: Vec<Option<String>>,
    },
}

/// A case made concrete: the event object's text, its decoded keys, and the expected outcome.
#[derive(Clone, Debug)]
pub struct Rendered {
    /// The event object as sent.
    pub body: String,
    /// Decoded topic (`None` if it cannot be decoded).
    pub topic: Option<String>,
    /// Decoded event_id.
    pub event_id: Option<String>,
    /// Decoded source.
    pub source: Option<String>,
    /// What must happen.
    pub expect: Expect,
}

impl Case {
    /// A plain, valid event with this payload (for hand-written edge cases).
    pub fn with_payload(payload: Payload) -> Case {
        Case {
            topic: plain("edges"),
            event_id: Vec::new(),
            source: plain("roundtrip"),
            ts: Ts {
                ymd_hms: (2024, 5, 1, 12, 0, 0),
                fraction: String::new(),
                separator: 'T',
                offset: "Z".into(),
            },
            payload,
            poison: None,
            extra: None,
            repeated_member: false,
            spacing: Spacing::none(),
        }
    }

    /// The pieces of each text field with the poison (if any) appended.
    fn texts(&self, tag: &str) -> [Vec<Piece>; 3] {
        let mut topic = self.topic.clone();
        let mut event_id = plain(tag);
        event_id.extend(self.event_id.iter().cloned());
        let mut source = self.source.clone();
        match self.poison {
            Some((Field::Topic, b)) => topic.push(Piece::Bad(b)),
            Some((Field::EventId, b)) => event_id.push(Piece::Bad(b)),
            Some((Field::Source, b)) => source.push(Piece::Bad(b)),
            _ => {}
        }
        [topic, event_id, source]
    }

    /// The payload as sent (`None` when absent).
    fn payload_json(&self) -> Option<(Json, Spacing)> {
        if let Some((Field::Payload, b)) = self.poison {
            let bad = vec![Piece::Raw('a'), Piece::Bad(b)];
            return Some((
                Json::Obj(vec![(plain("s"), Json::Str(bad))]),
                Spacing::none(),
            ));
        }
        match &self.payload {
            Payload::Absent => None,
            Payload::Value(j, sp) => Some((j.clone(), sp.clone())),
        }
    }

    /// Renders the event with `tag` at the start of its event_id (unique per publish).
    pub fn render(&self, tag: &str) -> Rendered {
        assert_eq!(tag.chars().count(), TAG_CHARS);
        let [topic, event_id, source] = self.texts(tag);
        let payload = self.payload_json();
        let mut sp = self.spacing.clone();
        let mut members: Vec<(&str, String)> = vec![
            ("topic", render_str(&topic)),
            ("event_id", render_str(&event_id)),
            ("timestamp", format!("\"{}\"", self.ts.text())),
            ("source", render_str(&source)),
        ];
        let payload_text = payload.as_ref().map(|(j, psp)| to_text(j, psp));
        if let Some(text) = &payload_text {
            members.push(("payload", text.clone()));
        }
        if let Some(extra) = &self.extra {
            members.push(("extra", to_text(extra, &Spacing::none())));
        }
        if self.repeated_member {
            members.push(("source", render_str(&source)));
        }
        let mut body = String::from("{");
        for (i, (name, value)) in members.iter().enumerate() {
            if i > 0 {
                body.push(',');
            }
            body.push_str(&format!("{}\"{name}\"{}:{}", sp.gap(), sp.gap(), sp.gap()));
            body.push_str(value);
            body.push_str(&sp.gap());
        }
        body.push('}');

        let compact_payload = match (&payload, &payload_text) {
            (Some((j, _)), Some(text)) => {
                let c = compact(text);
                assert_eq!(
                    c,
                    to_text(j, &Spacing::none()),
                    "the generator's two compact forms"
                );
                c
            }
            _ => "{}".to_string(),
        };
        let expect = self.expect(
            &topic,
            &event_id,
            &source,
            payload.as_ref().map(|p| &p.0),
            compact_payload,
        );
        Rendered {
            body,
            topic: decode(&topic),
            event_id: decode(&event_id),
            source: decode(&source),
            expect,
        }
    }

    /// The outcome the validation rules prescribe (docs/DESIGN.md, "Validation rules").
    fn expect(
        &self,
        topic: &[Piece],
        event_id: &[Piece],
        source: &[Piece],
        payload: Option<&Json>,
        compact_payload: String,
    ) -> Expect {
        let rejected = |status, fields: Vec<Option<String>>| Expect::Rejected { status, fields };
        let bads = |s: &[Piece]| -> Vec<Bad> {
            s.iter()
                .filter_map(|p| match p {
                    Piece::Bad(b) => Some(*b),
                    _ => None,
                })
                .collect()
        };
        let mut all_bad: Vec<Bad> = [topic, event_id, source]
            .iter()
            .flat_map(|s| bads(s))
            .collect();
        all_bad.extend(payload.map(json::bad_pieces).unwrap_or_default());
        // Not JSON at all: the body is refused before any event is looked at.
        if all_bad.contains(&Bad::RawControl) {
            return rejected(400, vec![]);
        }
        // A member given twice makes the event unreadable as a whole.
        if self.repeated_member {
            return rejected(422, vec![None]);
        }
        // Text no store can hold (unpaired surrogates): the body is malformed.
        if all_bad.iter().any(|b| b.status() == 400) {
            return rejected(400, vec![]);
        }
        let mut invalid = Vec::new();
        let text_ok =
            |s: &[Piece]| (1..=MAX_TEXT_CHARS).contains(&s.len()) && !bads(s).contains(&Bad::Nul);
        for (name, text) in [("topic", topic), ("event_id", event_id)] {
            if !text_ok(text) {
                invalid.push(Some(name.to_string()));
            }
        }
        let timestamp = self.ts.expected();
        if timestamp.is_none() {
            invalid.push(Some("timestamp".into()));
        }
        if !text_ok(source) {
            invalid.push(Some("source".into()));
        }
        let payload_bad = payload
            .is_some_and(|j| json::depth(j) > MAX_DEPTH || json::bad_pieces(j).contains(&Bad::Nul));
        if payload_bad {
            invalid.push(Some("payload".into()));
        } else if compact_payload.len() > MAX_PAYLOAD_BYTES {
            return rejected(413, vec![Some("payload".into())]);
        }
        match timestamp {
            Some(timestamp) if invalid.is_empty() => Expect::Stored {
                payload: compact_payload,
                timestamp,
            },
            _ => rejected(422, invalid),
        }
    }
}

/// A text field's pieces: usually short, sometimes exactly at (255) or over (256) the limit,
/// rarely empty. `reserved` characters are taken by a prefix added later (the event_id tag).
fn text(reserved: usize) -> impl Strategy<Value = Vec<Piece>> {
    let fill = move |n: usize| n.saturating_sub(reserved);
    prop_oneof![
        30 => (1usize..=24).prop_map(move |n| fill(n.max(reserved))),
        1 => Just(fill(MAX_TEXT_CHARS)),
        1 => Just(fill(MAX_TEXT_CHARS + 1)),
        1 => Just(0usize),
    ]
    .prop_flat_map(|n| vec(piece(), n))
}

/// A timestamp: mostly valid, with edge years, impossible days, leap seconds and every offset form.
fn timestamp() -> impl Strategy<Value = Ts> {
    let year =
        prop_oneof![3 => 1970u32..=2100, 1 => 1u32..=9999, 1 => Just(1u32), 1 => Just(9999u32)];
    let day = prop_oneof![10 => 1u32..=28, 1 => 29u32..=31];
    let second = prop_oneof![20 => 0u32..=59, 1 => Just(60u32)];
    let fraction = prop_oneof![Just(String::new()), "[0-9]{1,9}"];
    let offset = prop_oneof![
        1 => Just(String::new()),
        2 => select(&["Z", "z"][..]).prop_map(String::from),
        3 => (select(&['+', '-'][..]), 0u32..=23, 0u32..=59)
            .prop_map(|(s, h, m)| format!("{s}{h:02}:{m:02}")),
    ];
    (
        year,
        1u32..=12,
        day,
        0u32..=23,
        0u32..=59,
        second,
        fraction,
        select(&['T', 't', ' '][..]),
        offset,
    )
        .prop_map(|(y, mo, d, h, mi, s, fraction, separator, offset)| Ts {
            ymd_hms: (y, mo, d, h, mi, s),
            fraction,
            separator,
            offset,
        })
}

/// Nesting around the documented limit (and shallower), arrays and objects mixed.
fn deep() -> impl Strategy<Value = Json> {
    prop_oneof![1usize..=129, 125usize..=129]
        .prop_flat_map(|d| (vec(any::<bool>(), d), proptest::option::of(json::leaf())))
        .prop_map(|(kinds, leaf)| nested(&kinds, leaf))
}

/// One long string (1–60 KB), alone or inside a container.
fn long() -> impl Strategy<Value = Json> {
    (vec(piece(), 1..4), 1_000usize..60_000, 0..3u8).prop_map(|(chunk, bytes, wrap)| {
        let one = render_str(&chunk).len() - 2;
        let s = Json::Str(
            chunk
                .iter()
                .cycle()
                .take(chunk.len() * bytes.div_ceil(one))
                .cloned()
                .collect(),
        );
        match wrap {
            0 => s,
            1 => Json::Arr(vec![s]),
            _ => Json::Obj(vec![(plain("msg"), s)]),
        }
    })
}

/// `["…"]` whose compact text is exactly `bytes` long (multi-byte characters when `wide`).
pub fn sized(bytes: usize, wide: bool) -> Json {
    let fill = bytes - 4;
    let pieces = if wide {
        let mut p = vec![Piece::Raw('é'); fill / 2];
        if fill % 2 == 1 {
            p.push(Piece::Raw('x'));
        }
        p
    } else {
        vec![Piece::Raw('x'); fill]
    };
    Json::Arr(vec![Json::Str(pieces)])
}

/// A payload: random trees, bare edge numbers, deep nesting, long strings, the size boundary.
fn payload() -> impl Strategy<Value = Payload> {
    let num_in = (json::number(), 0..3u8).prop_map(|(n, wrap)| match wrap {
        0 => Json::Num(n),
        1 => Json::Arr(vec![Json::Num(n)]),
        _ => Json::Obj(vec![(plain("n"), Json::Num(n))]),
    });
    let boundary = (
        select(
            &[
                MAX_PAYLOAD_BYTES - 1,
                MAX_PAYLOAD_BYTES,
                MAX_PAYLOAD_BYTES + 1,
            ][..],
        ),
        any::<bool>(),
    )
        .prop_map(|(b, wide)| sized(b, wide));
    let value = prop_oneof![
        8 => json::tree(),
        4 => num_in,
        1 => Just(Json::Null),
        1 => Just(Json::Arr(vec![])),
        1 => Just(Json::Obj(vec![])),
        1 => deep(),
        1 => long(),
        1 => boundary,
    ];
    prop_oneof![
        1 => Just(Payload::Absent),
        20 => (value, spacing()).prop_map(|(j, sp)| Payload::Value(j, sp)),
    ]
}

/// A bad spelling in a field, about one event in twenty.
fn poison() -> impl Strategy<Value = Option<(Field, Bad)>> {
    let field = select(&[Field::Topic, Field::EventId, Field::Source, Field::Payload][..]);
    let bad = select(
        &[
            Bad::Nul,
            Bad::LoneHigh,
            Bad::LoneLow,
            Bad::HighThenOther,
            Bad::RawControl,
        ][..],
    );
    prop_oneof![19 => Just(None), 1 => (field, bad).prop_map(Some)]
}

/// One generated event.
pub fn case() -> impl Strategy<Value = Case> {
    (
        text(0),
        text(TAG_CHARS),
        text(0),
        timestamp(),
        payload(),
        poison(),
        proptest::option::weighted(0.1, json::leaf()),
        proptest::bool::weighted(0.02),
        spacing(),
    )
        .prop_map(
            |(topic, event_id, source, ts, payload, poison, extra, repeated_member, spacing)| {
                Case {
                    topic,
                    event_id,
                    source,
                    ts,
                    payload,
                    poison,
                    extra,
                    repeated_member,
                    spacing,
                }
            },
        )
}
