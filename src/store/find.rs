//! What a reader asks the store for beyond topic, source and time: severity, text search,
//! order, the live-tail position and volume buckets. Plain data; the SQL is in `query`, the
//! parsing of query parameters in `crate::search`.

use serde::{Deserialize, Serialize};

use crate::validate::Level;

/// How `GET /events` orders a page (see docs/SEARCH.md).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Order {
    /// Today's default: stored order, or event time when `since` / `until` is given.
    #[default]
    Default,
    /// Newest stored first (`id` descending).
    Stored,
    /// Newest event time first, ties by `id` descending.
    Time,
}

/// `level=`: one level means "this and more severe", a list names an exact set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LevelFilter {
    /// `level=warn`: warn, error and fatal.
    AtLeast(Level),
    /// `level=warn,error`: exactly these (sorted, no repeats).
    Exactly(Vec<Level>),
}

impl LevelFilter {
    /// Whether an event of this level passes (events without a level never do); the reference
    /// the SQL is tested against.
    #[cfg(test)]
    pub fn accepts(&self, level: Option<Level>) -> bool {
        match (self, level) {
            (_, None) => false,
            (LevelFilter::AtLeast(min), Some(l)) => l >= *min,
            (LevelFilter::Exactly(set), Some(l)) => set.contains(&l),
        }
    }

    /// The SQL condition on a `level` rank column (ranks are literals: no user text reaches SQL).
    pub fn sql(&self, column: &str) -> String {
        match self {
            LevelFilter::AtLeast(min) => format!("{column} >= {}", min.rank()),
            LevelFilter::Exactly(set) => {
                let ranks: Vec<String> = set.iter().map(|l| l.rank().to_string()).collect();
                format!("{column} IN ({})", ranks.join(", "))
            }
        }
    }
}

/// One term of `q`: a word or a quoted phrase, matched as a case-insensitive substring.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Term {
    /// The text to find (a phrase keeps its inner spaces).
    pub text: String,
    /// `-word`: events containing it are excluded.
    pub exclude: bool,
}

impl Term {
    /// Whether an index of three-character pieces (trigrams) can find this term.
    pub fn indexable(&self) -> bool {
        self.text.chars().count() >= 3
    }

    /// `%text%` for `LIKE` / `ILIKE`, with `\`, `%` and `_` escaped by a backslash.
    pub fn like_pattern(&self) -> String {
        let mut p = String::with_capacity(self.text.len() + 2);
        p.push('%');
        for c in self.text.chars() {
            if matches!(c, '\\' | '%' | '_') {
                p.push('\\');
            }
            p.push(c);
        }
        p.push('%');
        p
    }

    /// The term as an FTS5 string (double quotes doubled), matched as one phrase.
    pub fn fts_string(&self) -> String {
        format!("\"{}\"", self.text.replace('"', "\"\""))
    }
}

/// A parsed `q`: every non-excluded term must occur, no excluded one may.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Search {
    /// The terms, in the order written.
    pub terms: Vec<Term>,
}

impl Search {
    /// Whether a searchable text matches (the reference semantics; the stores agree with it
    /// for ASCII letters, see docs/SEARCH.md for case folding beyond ASCII).
    #[cfg(test)]
    pub fn matches(&self, text: &str) -> bool {
        let text = text.to_lowercase();
        self.terms
            .iter()
            .all(|t| text.contains(&t.text.to_lowercase()) != t.exclude)
    }
}

/// The filters and order `GET /events` and `GET /volume` add to topic, source and time.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Find {
    /// `level=`.
    pub level: Option<LevelFilter>,
    /// `q=`.
    pub q: Option<Search>,
    /// `order=`.
    pub order: Order,
}

/// A position in the store's commit order: a live tail returns what was committed after it.
///
/// On PostgreSQL, ids are taken before commit, so a smaller id can become visible after a
/// larger one; the tail therefore walks `(tx, id)`, the inserting transaction's 64-bit id
/// first, and only transactions older than every running one (the snapshot's `xmin`), which
/// can no longer change. On SQLite (one writer at a time) `tx` is always 0 and ids are
/// committed in order. Shown as `<tx>-<id>`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord)]
pub struct TailCursor {
    /// Transaction id (PostgreSQL `xid8`), 0 on SQLite.
    pub tx: u64,
    /// Event id.
    pub id: i64,
}

impl std::fmt::Display for TailCursor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}-{}", self.tx, self.id)
    }
}

impl Serialize for TailCursor {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl std::str::FromStr for TailCursor {
    type Err = ();

    fn from_str(s: &str) -> Result<TailCursor, ()> {
        let (tx, id) = s.split_once('-').ok_or(())?;
        let digits =
            |p: &str| !p.is_empty() && p.len() <= 19 && p.bytes().all(|b| b.is_ascii_digit());
        if !digits(tx) || !digits(id) {
            return Err(());
        }
        Ok(TailCursor {
            tx: tx.parse().map_err(|_| ())?,
            id: id.parse().map_err(|_| ())?,
        })
    }
}

/// Stored events per level (`none`: without a level).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LevelCounts {
    /// `trace` events.
    pub trace: u64,
    /// `debug` events.
    pub debug: u64,
    /// `info` events.
    pub info: u64,
    /// `warn` events.
    pub warn: u64,
    /// `error` events.
    pub error: u64,
    /// `fatal` events.
    pub fatal: u64,
    /// Events without a level.
    pub none: u64,
}

impl LevelCounts {
    /// Adds `n` to the count of a level rank (0: no level).
    pub fn add(&mut self, rank: i64, n: u64) {
        let slot = match Level::from_rank(rank) {
            Some(Level::Trace) => &mut self.trace,
            Some(Level::Debug) => &mut self.debug,
            Some(Level::Info) => &mut self.info,
            Some(Level::Warn) => &mut self.warn,
            Some(Level::Error) => &mut self.error,
            Some(Level::Fatal) => &mut self.fatal,
            None => &mut self.none,
        };
        *slot += n;
    }

    /// All levels together.
    pub fn total(&self) -> u64 {
        self.trace + self.debug + self.info + self.warn + self.error + self.fatal + self.none
    }

    /// `(name, count)` in severity order, `none` last (for `/metrics`).
    pub fn named(&self) -> [(&'static str, u64); 7] {
        [
            ("trace", self.trace),
            ("debug", self.debug),
            ("info", self.info),
            ("warn", self.warn),
            ("error", self.error),
            ("fatal", self.fatal),
            ("none", self.none),
        ]
    }
}

/// A `GET /volume` request, in whole minutes since the Unix epoch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VolumeQuery {
    /// First minute of the first bucket (a multiple of `step`).
    pub since_minute: i64,
    /// First minute after the last bucket.
    pub until_minute: i64,
    /// Bucket width in minutes.
    pub step_minutes: i64,
    /// Only this topic.
    pub topic: Option<String>,
    /// Only this source (answered by counting events: counters do not carry sources).
    pub source: Option<String>,
    /// `level=` and `q=` (order is ignored).
    pub find: Find,
}

impl VolumeQuery {
    /// Whether the maintained counters can answer (no source, no text search).
    pub fn uses_counters(&self) -> bool {
        self.source.is_none() && self.find.q.is_none()
    }
}

/// One cell of a volume answer: bucket index, level rank (0: none), events.
pub type VolumeCell = (i64, i64, u64);

/// What a live-tail read found.
#[derive(Debug)]
pub struct TailPage {
    /// Matching events committed after the cursor, oldest first.
    pub events: Vec<super::StoredEvent>,
    /// Where the next read continues (never behind the cursor it was given).
    pub next: TailCursor,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_as_text() {
        let c = TailCursor { tx: 912, id: 77 };
        assert_eq!(c.to_string(), "912-77");
        assert_eq!("912-77".parse::<TailCursor>(), Ok(c));
        for bad in [
            "",
            "1",
            "-1",
            "1-",
            "a-1",
            "1-2-3",
            "1--2",
            "99999999999999999999-1",
            " 1-2",
        ] {
            assert!(bad.parse::<TailCursor>().is_err(), "{bad}");
        }
        assert!(TailCursor { tx: 1, id: 0 } > TailCursor { tx: 0, id: 99 });
    }

    #[test]
    fn patterns_escape_wildcards() {
        let t = |s: &str| Term {
            text: s.into(),
            exclude: false,
        };
        assert_eq!(t("50%_a\\b").like_pattern(), "%50\\%\\_a\\\\b%");
        assert_eq!(t("say \"hi\"").fts_string(), "\"say \"\"hi\"\"\"");
        assert!(t("abc").indexable() && !t("ab").indexable() && t("éèà").indexable());
    }

    #[test]
    fn level_filters() {
        let warn = LevelFilter::AtLeast(Level::Warn);
        assert!(warn.accepts(Some(Level::Fatal)) && !warn.accepts(Some(Level::Info)));
        assert!(!warn.accepts(None));
        assert_eq!(warn.sql("level"), "level >= 4");
        let set = LevelFilter::Exactly(vec![Level::Debug, Level::Error]);
        assert_eq!(set.sql("level"), "level IN (2, 5)");
        assert!(set.accepts(Some(Level::Debug)) && !set.accepts(Some(Level::Fatal)));
    }

    #[test]
    fn reference_search() {
        let s = Search {
            terms: vec![
                Term {
                    text: "Timeout".into(),
                    exclude: false,
                },
                Term {
                    text: "retry ok".into(),
                    exclude: true,
                },
            ],
        };
        assert!(s.matches("db TIMEOUT after 3s"));
        assert!(!s.matches("timeout; retry OK"));
        assert!(!s.matches("all good"));
    }
}
