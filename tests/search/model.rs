//! The property test's world: generated events and queries, and the naive in-memory filter
//! that says what `/events` and `/volume` must answer (issue 16, "How we will know").

use proptest::prelude::*;
use serde_json::{Value, json};

/// Words messages are made of: identifiers with `_` and `-`, mixed case, a phrase, LIKE's
/// wildcards, words shorter than a trigram.
pub const VOCAB: [&str; 14] = [
    "timeout",
    "Timeout",
    "TIMEOUT",
    "ERR_CONN_RESET",
    "req-7f3a9",
    "db",
    "checkout",
    "retry ok",
    "payment",
    "failed",
    "50%",
    "a_b",
    "conn",
    "x",
];

/// What a query may search for: vocabulary words, their pieces, and near misses.
pub const QUERY_WORDS: [&str; 16] = [
    "timeout",
    "TimeOut",
    "conn_reset",
    "7F3A",
    "db",
    "checkout",
    "retry ok",
    "ok",
    "payment",
    "fail",
    "50%",
    "%",
    "a_b",
    "_",
    "nothing",
    "out",
];

/// Level names (index 0-5) as published, with aliases and mixed case.
pub const LEVEL_SPELLINGS: [&[&str]; 6] = [
    &["trace", "TRACE"],
    &["debug", "Debug"],
    &["info", "notice"],
    &["warn", "WARNING"],
    &["error", "err"],
    &["fatal", "critical"],
];

/// Canonical level names by rank - 1.
pub const LEVELS: [&str; 6] = ["trace", "debug", "info", "warn", "error", "fatal"];

/// One generated event, before it has a day, an id or a tag.
#[derive(Debug, Clone)]
pub struct Ev {
    pub topic: usize,
    pub source: usize,
    /// Rank - 1 and spelling, if any.
    pub level: Option<(usize, usize)>,
    /// Whether the level goes in the payload instead of the event.
    pub level_in_payload: bool,
    pub minute: i64,
    pub second: u32,
    pub words: Vec<usize>,
    /// 0 message, 1 msg (+ noise), 2 body, 3 no message (whole payload), 4 a bare string.
    pub shape: usize,
}

pub fn ev() -> impl Strategy<Value = Ev> {
    (
        0..2usize,
        0..2usize,
        prop_oneof![Just(None), (0..6usize, 0..2usize).prop_map(Some)],
        any::<bool>(),
        0..180i64,
        prop_oneof![Just(0u32), Just(30), Just(59)],
        proptest::collection::vec(0..VOCAB.len(), 1..5),
        0..5usize,
    )
        .prop_map(
            |(topic, source, level, level_in_payload, minute, second, words, shape)| Ev {
                topic,
                source,
                level,
                level_in_payload,
                minute,
                second,
                words,
                shape,
            },
        )
}

/// One generated `/events` or `/volume` question.
#[derive(Debug, Clone)]
pub struct Ask {
    pub topic: Option<usize>,
    pub source: Option<usize>,
    /// `Err(min)`: level=min (and above); `Ok(set)`: an exact set.
    pub level: Option<Result<Vec<usize>, usize>>,
    /// Terms: word index, excluded.
    pub q: Vec<(usize, bool)>,
    pub time_order: bool,
    pub limit: u32,
    /// `/volume` step in minutes.
    pub step: i64,
}

pub fn ask() -> impl Strategy<Value = Ask> {
    (
        prop_oneof![Just(None), (0..2usize).prop_map(Some)],
        prop_oneof![3 => Just(None), 1 => (0..2usize).prop_map(Some)],
        prop_oneof![
            2 => Just(None),
            1 => (0..6usize).prop_map(|min| Some(Err(min))),
            1 => proptest::collection::vec(0..6usize, 2..4).prop_map(|set| Some(Ok(set))),
        ],
        proptest::collection::vec((0..QUERY_WORDS.len(), prop::bool::weighted(0.3)), 0..3),
        prop::bool::weighted(0.7),
        1..9u32,
        prop_oneof![Just(1i64), Just(5), Just(60)],
    )
        .prop_map(|(topic, source, level, q, time_order, limit, step)| Ask {
            topic,
            source,
            level,
            q,
            time_order,
            limit,
            step,
        })
}

impl Ev {
    /// The level rank - 1 the event ends up with (a bare-string payload cannot carry one).
    pub fn effective_level(&self) -> Option<usize> {
        match self.level {
            Some(_) if self.level_in_payload && self.shape == 4 => None,
            other => other.map(|(rank, _)| rank),
        }
    }

    /// The canonical level the service must store.
    pub fn level_name(&self) -> Option<&'static str> {
        self.effective_level().map(|rank| LEVELS[rank])
    }

    pub fn message(&self) -> String {
        self.words
            .iter()
            .map(|w| VOCAB[*w])
            .collect::<Vec<_>>()
            .join(" ")
    }

    /// The payload as sent (compact JSON, as the service keeps it).
    pub fn payload(&self) -> Value {
        let text = self.message();
        let mut p = match self.shape {
            0 => json!({"message": text}),
            1 => json!({"n": 7, "msg": text}),
            2 => json!({"body": text, "attrs": {"k": "v"}}),
            3 => json!({"data": text, "code": 504}),
            _ => return json!(text),
        };
        if let (Some((rank, spelling)), true) = (self.level, self.level_in_payload) {
            p["level"] = json!(LEVEL_SPELLINGS[rank][spelling]);
        }
        p
    }

    /// What search reads: the message when the payload has one, else the whole payload text.
    pub fn searchable(&self) -> String {
        match self.shape {
            0..=2 | 4 => self.message(),
            _ => self.payload().to_string(),
        }
    }

    /// The published event.
    pub fn to_json(&self, day: &str, event_id: &str) -> Value {
        let mut v = json!({
            "topic": format!("t{}", self.topic),
            "event_id": event_id,
            "timestamp": self.timestamp(day),
            "source": format!("s{}", self.source),
            "payload": self.payload(),
        });
        if let (Some((rank, spelling)), false) = (self.level, self.level_in_payload) {
            v["level"] = json!(LEVEL_SPELLINGS[rank][spelling]);
        }
        v
    }

    /// `day` is `YYYY-MM-DD`; events spread over its first three hours.
    pub fn timestamp(&self, day: &str) -> String {
        format!(
            "{day}T{:02}:{:02}:{:02}.000000Z",
            self.minute / 60,
            self.minute % 60,
            self.second
        )
    }
}

impl Ask {
    /// The `q` text.
    pub fn q_text(&self) -> Option<String> {
        if self.q.is_empty() {
            return None;
        }
        let terms: Vec<String> = self
            .q
            .iter()
            .map(|(w, exclude)| {
                let word = QUERY_WORDS[*w];
                let quoted = if word.contains(' ') {
                    format!("\"{word}\"")
                } else {
                    word.to_owned()
                };
                if *exclude {
                    format!("-{quoted}")
                } else {
                    quoted
                }
            })
            .collect();
        Some(terms.join(" "))
    }

    pub fn level_text(&self) -> Option<String> {
        match &self.level {
            None => None,
            Some(Err(min)) => Some(LEVELS[*min].to_owned()),
            Some(Ok(set)) => Some(set.iter().map(|l| LEVELS[*l]).collect::<Vec<_>>().join(",")),
        }
    }

    /// Query parameters common to `/events` and `/volume`.
    pub fn params(&self) -> Vec<(&'static str, String)> {
        let mut p = Vec::new();
        if let Some(t) = self.topic {
            p.push(("topic", format!("t{t}")));
        }
        if let Some(s) = self.source {
            p.push(("source", format!("s{s}")));
        }
        if let Some(l) = self.level_text() {
            p.push(("level", l));
        }
        if let Some(q) = self.q_text() {
            p.push(("q", q));
        }
        p
    }

    /// The naive filter.
    pub fn accepts(&self, e: &Ev) -> bool {
        if self.topic.is_some_and(|t| t != e.topic) || self.source.is_some_and(|s| s != e.source) {
            return false;
        }
        let level_ok = match (&self.level, e.effective_level()) {
            (None, _) => true,
            (Some(_), None) => false,
            (Some(Err(min)), Some(rank)) => rank >= *min,
            (Some(Ok(set)), Some(rank)) => set.contains(&rank),
        };
        let text = e.searchable().to_lowercase();
        level_ok
            && self
                .q
                .iter()
                .all(|(w, exclude)| text.contains(&QUERY_WORDS[*w].to_lowercase()) != *exclude)
    }
}
