//! How a group's text columns travel to PostgreSQL's apply function: each column as ONE text
//! parameter that `edgelog_apply_v7` (migration 7) splits, not an array of one string per event.
//!
//! A 100-event group's six `text[]` parameters are 600 strings that the host lifts out of the
//! component one at a time (an allocation, a copy and a UTF-8 check each) and the PostgreSQL
//! client encodes one at a time, on every Spin host; six texts cost six of each. Each value is
//! preceded by U+001E (RECORD SEPARATOR); a missing message is U+001F alone. A group with a
//! value that holds either character (a topic, event id or source may hold any character but
//! NUL) is not packed: it goes as arrays to `edgelog_apply_v5`, which `_v7` calls with what it
//! splits, so both ways store the same rows.

use crate::validate::Event;

/// Precedes every value of a packed column.
const SEPARATOR: u8 = 0x1e;
/// A packed message column's value for an event without a message (SQL NULL).
const NO_MESSAGE: u8 = 0x1f;

/// A group's text columns, packed, in the order of the apply function's `$4`-`$8` and `$11`.
#[derive(Debug, PartialEq, Eq)]
pub(super) struct Packed {
    /// Topics, event ids, timestamps, sources, payloads.
    pub columns: [String; 5],
    /// Searchable messages (NUL left out, as PostgreSQL `text` cannot hold it).
    pub messages: String,
}

/// Packs the events' columns, or `None` when a value holds a character the packing reserves.
///
/// One pass over the events for the sizes, one to copy. Timestamps (normalised by `validate`)
/// and payloads (JSON text, in which a control character is always escaped) cannot hold either
/// reserved character, so only the other columns are searched.
pub(super) fn pack<'a>(events: impl Iterator<Item = &'a Event> + Clone) -> Option<Packed> {
    let mut sizes = [0usize; 6];
    for e in events.clone() {
        let lens = [
            e.topic().len(),
            e.event_id().len(),
            e.timestamp().len(),
            e.source().len(),
            e.payload().len(),
            e.message().map_or(1, str::len),
        ];
        for (size, len) in sizes.iter_mut().zip(lens) {
            *size += len + 1;
        }
    }
    let mut columns: [String; 5] = std::array::from_fn(|i| String::with_capacity(sizes[i]));
    let mut messages = String::with_capacity(sizes[5]);
    for e in events {
        let [topics, ids, times, sources, payloads] = &mut columns;
        for (column, value) in [
            (topics, e.topic()),
            (ids, e.event_id()),
            (sources, e.source()),
        ] {
            if memchr::memchr(SEPARATOR, value.as_bytes()).is_some() {
                return None;
            }
            push(column, value);
        }
        for (column, value) in [(times, e.timestamp()), (payloads, e.payload())] {
            debug_assert!(!value.bytes().any(|b| b == SEPARATOR || b == NO_MESSAGE));
            push(column, value);
        }
        push_message(&mut messages, e.message())?;
    }
    Some(Packed { columns, messages })
}

/// Adds one event's message to the packed messages; `None` if it holds a reserved character.
fn push_message(messages: &mut String, message: Option<&str>) -> Option<()> {
    match message {
        None => messages.push_str("\u{1e}\u{1f}"),
        Some(m) if memchr::memchr2(SEPARATOR, NO_MESSAGE, m.as_bytes()).is_some() => return None,
        Some(m) if memchr::memchr(0, m.as_bytes()).is_some() => {
            messages.push(char::from(SEPARATOR));
            m.split('\0').for_each(|part| messages.push_str(part));
        }
        Some(m) => push(messages, m),
    }
    Some(())
}

fn push(column: &mut String, value: &str) {
    column.push(char::from(SEPARATOR));
    column.push_str(value);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::parse_events;

    /// What `string_to_array(text, E'\x1e', null)` then `[2:]` gives back, as the function does.
    fn split(packed: &str, null: Option<&str>) -> Vec<Option<String>> {
        let mut parts: Vec<_> = packed.split('\u{1e}').map(str::to_owned).collect();
        if packed.is_empty() {
            return Vec::new();
        }
        parts.remove(0);
        parts
            .into_iter()
            .map(|p| (Some(p.as_str()) != null).then_some(p))
            .collect()
    }

    #[test]
    fn every_column_splits_back_into_its_values() {
        let evs = parse_events(&serde_json::json!([
            {"topic": "t", "event_id": "1", "timestamp": "2024-01-01T00:00:00Z",
             "source": "r", "payload": {"message": "a", "level": "info"}},
            {"topic": "t", "event_id": "2", "timestamp": "2024-01-01T00:00:01Z",
             "source": "r", "payload": {"message": ""}},
            {"topic": "u", "event_id": "3", "timestamp": "2024-01-01T00:00:02Z",
             "source": "s", "payload": {"n": 1}},
        ]));
        let p = pack(evs.iter()).unwrap();
        let fields: [fn(&Event) -> &str; 5] = [
            Event::topic,
            Event::event_id,
            Event::timestamp,
            Event::source,
            Event::payload,
        ];
        for (column, field) in p.columns.iter().zip(fields) {
            let want: Vec<_> = evs.iter().map(|e| Some(field(e).to_owned())).collect();
            assert_eq!(split(column, None), want);
        }
        assert_eq!(
            split(&p.messages, Some("\u{1f}")),
            [Some("a".to_owned()), Some(String::new()), None]
        );
    }

    #[test]
    fn a_message_leaves_its_nul_characters_out() {
        // Only an adapter's message can hold NUL (a payload's `\u0000` is refused).
        let mut packed = String::new();
        for m in [Some("a\0b\0"), None] {
            push_message(&mut packed, m).unwrap();
        }
        assert_eq!(packed, "\u{1e}ab\u{1e}\u{1f}");
    }

    #[test]
    fn an_empty_group_packs_into_empty_columns() {
        let p = pack([].iter()).unwrap();
        assert!(p.columns.iter().all(String::is_empty) && p.messages.is_empty());
        assert!(split(&p.messages, Some("\u{1f}")).is_empty());
    }

    #[test]
    fn a_reserved_character_in_any_value_leaves_the_group_unpacked() {
        let base = serde_json::json!({"topic": "t", "event_id": "1",
            "timestamp": "2024-01-01T00:00:00Z", "source": "s", "payload": {"message": "m"}});
        assert!(pack(parse_events(&serde_json::json!([base.clone()])).iter()).is_some());
        for (field, value) in [
            ("topic", "a\u{1e}b"),
            ("event_id", "\u{1e}"),
            ("source", "s\u{1e}"),
        ] {
            let mut ev = base.clone();
            ev[field] = value.into();
            let evs = parse_events(&serde_json::json!([base.clone(), ev]));
            assert_eq!(pack(evs.iter()), None, "{field}");
        }
        for message in ["m\u{1e}", "\u{1f}", "x\u{1f}y"] {
            let mut ev = base.clone();
            ev["payload"]["message"] = message.into();
            assert_eq!(
                pack(parse_events(&serde_json::json!([ev])).iter()),
                None,
                "{message:?}"
            );
        }
        // Only the message column reserves U+001F.
        let mut ev = base.clone();
        ev["event_id"] = "a\u{1f}".into();
        assert!(pack(parse_events(&serde_json::json!([ev])).iter()).is_some());
    }
}
