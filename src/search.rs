//! The query language of finding things: `q` (words, "phrases", -exclusions), `level`,
//! `order`, the live tail's `after` / `wait`, and `/volume`'s range and `step`. Parsing only;
//! what the stores do with it is in `store::query`, the semantics in docs/SEARCH.md.

use std::time::Duration;

use crate::error::ApiError;
use crate::http::{query_param, text_param, time_param};
use crate::store::find::{Find, LevelFilter, Order, Search, Term, VolumeQuery};
use crate::store::{EventQuery, TailCursor};
use crate::validate::level::LEVEL_NAMES;
use crate::validate::{Level, parse_timestamp};

/// Longest `q`, in characters.
pub const MAX_Q_CHARS: usize = 512;
/// Most blank-separated words in one `q` (words inside phrases count), so the served schema can
/// state the limit exactly.
pub const MAX_WORDS: usize = 16;
/// Longest `wait` of a live tail, in seconds (well inside every host's request timeout).
pub const MAX_WAIT_SECONDS: u64 = 25;
/// How often a waiting tail looks for new events: at most 1 / `POLL` store reads per second
/// per waiting client (plus one drain of the queue when the request starts).
pub const POLL: Duration = Duration::from_millis(500);
/// Most buckets one `/volume` answer holds.
pub const MAX_BUCKETS: i64 = 1440;
/// Widest `/volume` step: 366 days, in minutes.
pub const MAX_STEP_MINUTES: i64 = 366 * 1440;
/// First minute of 0001-01-01 and of 10000-01-01 since the Unix epoch: bucket bounds stay
/// inside the years every answer can name.
const FIRST_MINUTE: i64 = -62_135_596_800 / 60;
const END_MINUTE: i64 = 253_402_300_800 / 60;

/// Splits `q` into terms: blank-separated words, `"quoted phrases"` kept whole (an
/// unterminated quote runs to the end), a leading `-` excludes the word or phrase after it.
/// Empty phrases (`""`, `-""`) are dropped; `None` when nothing else is left (no filter).
pub fn parse_q(raw: &str) -> Result<Option<Search>, String> {
    if raw.chars().count() > MAX_Q_CHARS {
        return Err(format!("must be at most {MAX_Q_CHARS} characters"));
    }
    if raw.contains('\0') {
        return Err("must not contain NUL characters".into());
    }
    match raw.split_whitespace().count() {
        0 => return Err("must contain a word or a \"phrase\"".into()),
        n if n > MAX_WORDS => {
            return Err(format!(
                "must have at most {MAX_WORDS} blank-separated words (words in phrases count); \
                 it has {n}"
            ));
        }
        _ => {}
    }
    let mut terms = Vec::new();
    let mut rest = raw.trim_start();
    while !rest.is_empty() {
        let (exclude, body) = match rest.strip_prefix('-') {
            Some(after) if !after.is_empty() && !after.starts_with(char::is_whitespace) => {
                (true, after)
            }
            _ => (false, rest),
        };
        let (text, tail) = match body.strip_prefix('"') {
            Some(quoted) => match quoted.find('"') {
                Some(end) => (&quoted[..end], &quoted[end + 1..]),
                None => (quoted, ""),
            },
            None => {
                let end = body.find(char::is_whitespace).unwrap_or(body.len());
                (&body[..end], &body[end..])
            }
        };
        if !text.is_empty() {
            terms.push(Term {
                text: text.to_owned(),
                exclude,
            });
        }
        rest = tail.trim_start();
    }
    Ok((!terms.is_empty()).then_some(Search { terms }))
}

/// `warn` → warn and more severe; `warn,error` → exactly those.
pub fn parse_level(raw: &str) -> Result<LevelFilter, String> {
    let names: Vec<&str> = raw.split(',').map(str::trim).collect();
    let mut levels = Vec::with_capacity(names.len());
    for name in &names {
        match Level::parse(name) {
            Some(l) => levels.push(l),
            None => {
                return Err(format!(
                    "must be a level ({LEVEL_NAMES}) or a comma-separated list of them; \
                     {name:?} is not one"
                ));
            }
        }
    }
    Ok(if levels.len() == 1 {
        LevelFilter::AtLeast(levels[0])
    } else {
        levels.sort();
        levels.dedup();
        LevelFilter::Exactly(levels)
    })
}

/// `q`, `level` and `order` of `GET /events` (and `q`, `level` of `GET /volume`).
pub fn parse_find(query: &str) -> Result<Find, ApiError> {
    let q = query_param(query, "q")
        .map(|raw| parse_q(&raw).map_err(|m| ApiError::bad_query("q", m)))
        .transpose()?
        .flatten();
    let level = query_param(query, "level")
        .map(|raw| parse_level(&raw).map_err(|m| ApiError::bad_query("level", m)))
        .transpose()?;
    let order = match query_param(query, "order").as_deref() {
        None => Order::Default,
        Some("stored") => Order::Stored,
        Some("time") => Order::Time,
        Some(_) => return Err(ApiError::bad_query("order", "must be stored or time")),
    };
    Ok(Find { level, q, order })
}

/// A live-tail request: `after=<cursor>` and how long to wait for something new.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tail {
    /// Return events committed after this position.
    pub after: TailCursor,
    /// How long to wait when there are none yet.
    pub wait: Duration,
}

/// `after` and `wait` of `GET /events`; `None` for an ordinary page.
pub fn parse_tail(query: &str, page: &EventQuery) -> Result<Option<Tail>, ApiError> {
    let wait = match query_param(query, "wait") {
        None => None,
        Some(raw) => match raw.trim().parse::<u64>() {
            Ok(s) if s <= MAX_WAIT_SECONDS => Some(Duration::from_secs(s)),
            _ => {
                return Err(ApiError::bad_query(
                    "wait",
                    format!("must be an integer from 0 to {MAX_WAIT_SECONDS} (seconds)"),
                ));
            }
        },
    };
    // Without `after` this is a listing, which answers at once: `wait` means nothing there and
    // is ignored (every schema-valid request is answered).
    let Some(raw) = query_param(query, "after") else {
        return Ok(None);
    };
    let after = raw.trim().parse::<TailCursor>().map_err(|()| {
        ApiError::bad_query(
            "after",
            "must be a tail_cursor from a previous answer, such as 0-1234",
        )
    })?;
    // A tail reads what was stored after the cursor, oldest first: `before`, `offset` and `order`
    // page a listing and have no meaning here, so they are ignored (every schema-valid request
    // is answered; see docs/SEARCH.md).
    let _ = page;
    Ok(Some(Tail {
        after,
        wait: wait.unwrap_or_default(),
    }))
}

/// Minutes since the Unix epoch of a normalised timestamp, rounded down.
fn minute_of(text: &str) -> Result<i64, String> {
    parse_timestamp(text)
        .map(|t| t.and_utc().timestamp().div_euclid(60))
        .map_err(|e| e.to_string())
}

/// A step such as `5m`, `1h`, `1d`, `90s` or `300` (seconds), in whole minutes.
pub fn parse_step(raw: &str) -> Result<i64, String> {
    const HINT: &str = "must be a whole number of minutes such as 1m, 5m, 1h, 1d (or seconds: 300)";
    let raw = raw.trim();
    let (digits, unit) = match raw.char_indices().find(|(_, c)| !c.is_ascii_digit()) {
        Some((i, _)) => (&raw[..i], &raw[i..]),
        None => (raw, "s"),
    };
    let n: i64 = digits.parse().map_err(|_| HINT.to_string())?;
    let seconds = match unit {
        "s" => Some(n),
        "m" => n.checked_mul(60),
        "h" => n.checked_mul(3600),
        "d" => n.checked_mul(86_400),
        _ => None,
    }
    .ok_or_else(|| HINT.to_string())?;
    if seconds <= 0 || seconds % 60 != 0 {
        return Err(HINT.into());
    }
    if seconds / 60 > MAX_STEP_MINUTES {
        return Err("must be at most 366 days (366d)".into());
    }
    Ok(seconds / 60)
}

/// The step `/volume` picks when none is given: the smallest round step giving at most 120 buckets.
pub fn auto_step(range_minutes: i64) -> i64 {
    const STEPS: [i64; 13] = [1, 2, 5, 10, 15, 30, 60, 120, 180, 360, 720, 1440, 10_080];
    STEPS
        .into_iter()
        .find(|s| range_minutes <= s * 120)
        .unwrap_or_else(|| (range_minutes / 120 / 1440 + 1) * 1440)
}

/// Parses `GET /volume`: `since` / `until` (default: the last hour up to `now_minute`), `step`,
/// `topic`, `source`, `level`, `q`. The range is widened to whole steps counted from the epoch,
/// so buckets of the same step always line up; `since` after `until` gives no buckets.
pub fn parse_volume(query: &str, now_minute: i64) -> Result<VolumeQuery, ApiError> {
    let minute = |name: &str| -> Result<Option<i64>, ApiError> {
        time_param(query, name)?
            .map(|t| minute_of(&t).map_err(|m| ApiError::bad_query(name, m)))
            .transpose()
    };
    let until = match (minute("until")?, time_param(query, "until")?) {
        // An until inside a minute still covers that minute.
        (Some(m), Some(text)) if !text.contains(":00.000000Z") => m + 1,
        (Some(m), _) => m,
        (None, _) => now_minute + 1,
    };
    let since = minute("since")?.unwrap_or(until - 60);
    let step = match query_param(query, "step") {
        Some(raw) => parse_step(&raw).map_err(|m| ApiError::bad_query("step", m))?,
        None => auto_step((until - since).max(1)),
    };
    // A step too fine for the range is widened to the finest one within MAX_BUCKETS, and a range
    // that rounds out of the years 0001-9999 is cut to whole steps inside them: the answer's
    // `step_seconds`, `since` and `until` say what was counted (every schema-valid request is
    // answered; see docs/SEARCH.md).
    let until = until.max(since);
    let range = until - since;
    let mut step = step;
    let (since, until) = loop {
        let round_up =
            |m: i64| m.div_euclid(step) * step + if m.rem_euclid(step) == 0 { 0 } else { step };
        let first = round_up(FIRST_MINUTE).max(since.div_euclid(step) * step);
        let last = round_up(until)
            .min((END_MINUTE - 1).div_euclid(step) * step)
            .max(first);
        if (last - first) / step <= MAX_BUCKETS {
            break (first, last);
        }
        step = (step + 1).max((range + MAX_BUCKETS - 1) / MAX_BUCKETS);
    };
    let mut find = parse_find(query)?;
    find.order = Order::Default;
    Ok(VolumeQuery {
        since_minute: since,
        until_minute: until,
        step_minutes: step,
        topic: text_param(query, "topic")?,
        source: text_param(query, "source")?,
        find,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(s: &Search) -> Vec<(String, bool)> {
        s.terms
            .iter()
            .map(|t| (t.text.clone(), t.exclude))
            .collect()
    }

    #[test]
    fn q_grammar() {
        let s = parse_q(r#"  timeout "conn reset" -retry -"all good" ERR_CONN_RESET - "open"#)
            .unwrap()
            .unwrap();
        assert_eq!(
            words(&s),
            vec![
                ("timeout".into(), false),
                ("conn reset".into(), false),
                ("retry".into(), true),
                ("all good".into(), true),
                ("ERR_CONN_RESET".into(), false),
                ("-".into(), false),
                ("open".into(), false),
            ]
        );
        assert_eq!(
            words(&parse_q("a-b").unwrap().unwrap()),
            vec![("a-b".into(), false)]
        );
        assert_eq!(
            words(&parse_q("say\"hi\"").unwrap().unwrap()),
            vec![("say\"hi\"".into(), false)]
        );
        assert!(parse_q("").is_err());
        assert!(parse_q(" \t\u{3000} ").is_err());
        assert_eq!(parse_q("   \"\" -\"\" "), Ok(None));
        assert!(parse_q(&"x ".repeat(16)).unwrap().is_some());
        assert!(parse_q(&"x ".repeat(17)).is_err());
        assert!(parse_q(&format!("\"{}\"", "x ".repeat(17))).is_err());
        assert!(parse_q(&"x".repeat(513)).is_err());
        assert!(parse_q("a\0b").is_err());
    }

    #[test]
    fn level_filter_grammar() {
        assert_eq!(
            parse_level("WARNING"),
            Ok(LevelFilter::AtLeast(Level::Warn))
        );
        assert_eq!(
            parse_level("error, warn,err"),
            Ok(LevelFilter::Exactly(vec![Level::Warn, Level::Error]))
        );
        assert!(parse_level("loud").is_err());
        assert!(parse_level("warn,").is_err());
        assert!(parse_level("").is_err());
    }

    #[test]
    fn find_params() {
        let f = parse_find("q=a%20-b&level=error&order=time").unwrap();
        assert_eq!(f.order, Order::Time);
        assert_eq!(f.level, Some(LevelFilter::AtLeast(Level::Error)));
        assert_eq!(f.q.unwrap().terms.len(), 2);
        for (query, name) in [("order=new", "order"), ("level=x", "level"), ("q=", "q")] {
            let e = parse_find(query).unwrap_err();
            assert_eq!((e.status, e.details[0].field.as_deref()), (422, Some(name)));
        }
    }

    fn page() -> EventQuery {
        crate::http::parse_event_query("").unwrap()
    }

    #[test]
    fn tail_params() {
        assert_eq!(parse_tail("", &page()).unwrap(), None);
        let t = parse_tail("after=3-9&wait=25", &page()).unwrap().unwrap();
        assert_eq!(t.after, TailCursor { tx: 3, id: 9 });
        assert_eq!(t.wait, Duration::from_secs(25));
        for (query, name) in [
            ("after=3-9&wait=26", "wait"),
            ("after=x", "after"),
            ("after=5", "after"),
        ] {
            let e = parse_tail(query, &page()).unwrap_err();
            assert_eq!(e.details[0].field.as_deref(), Some(name), "{query}");
        }
        // A listing ignores `wait`; a tail ignores a listing's `before` and `order`.
        assert_eq!(parse_tail("wait=5", &page()).unwrap(), None);
        let with_before = crate::http::parse_event_query("before=5").unwrap();
        let t = parse_tail("after=0-7&order=time", &with_before)
            .unwrap()
            .unwrap();
        assert_eq!(t.after, TailCursor { tx: 0, id: 7 });
    }

    #[test]
    fn steps() {
        assert_eq!(parse_step("5m"), Ok(5));
        assert_eq!(parse_step("1h"), Ok(60));
        assert_eq!(parse_step("2d"), Ok(2880));
        assert_eq!(parse_step("300"), Ok(5));
        assert_eq!(parse_step("120s"), Ok(2));
        for bad in ["90s", "0m", "m", "1w", "-5m", "5 m", ""] {
            assert!(parse_step(bad).is_err(), "{bad}");
        }
        assert_eq!(auto_step(60), 1);
        assert_eq!(auto_step(24 * 60), 15);
        assert_eq!(auto_step(7 * 24 * 60), 120);
        assert_eq!(auto_step(1000 * 1440) % 1440, 0);
    }

    #[test]
    fn volume_range_is_aligned_to_steps() {
        let v = parse_volume(
            "since=2024-05-01T10:17:00Z&until=2024-05-01T12:05:30Z&step=1h&level=warn",
            0,
        )
        .unwrap();
        let at = |s: &str| minute_of(s).unwrap();
        assert_eq!(v.since_minute, at("2024-05-01T10:00:00Z"));
        assert_eq!(v.until_minute, at("2024-05-01T13:00:00Z"));
        assert_eq!(v.step_minutes, 60);
        assert_eq!(v.find.level, Some(LevelFilter::AtLeast(Level::Warn)));
        let v = parse_volume("", 1000).unwrap();
        assert_eq!(
            (v.since_minute, v.until_minute, v.step_minutes),
            (941, 1001, 1)
        );
        let v = parse_volume(
            "since=2024-05-02T00:00:00Z&until=2024-05-01T00:00:00Z&step=1h",
            0,
        )
        .unwrap();
        assert_eq!(v.since_minute, v.until_minute, "inverted: no buckets");
        // 1m over 121 days would be 174,240 buckets: widened to the finest step within 1,440.
        let v = parse_volume(
            "since=2024-01-01T00:00:00Z&until=2024-05-01T00:00:00Z&step=1m",
            0,
        )
        .unwrap();
        assert!((v.until_minute - v.since_minute) / v.step_minutes <= MAX_BUCKETS);
        assert_eq!(v.step_minutes, 121);
        assert_eq!(v.since_minute % v.step_minutes, 0);
        assert!(parse_volume("step=7s", 0).is_err());
        assert!(parse_step("367d").is_err() && parse_step("366d").is_ok());
        // The last day would round up past 9999-12-31: the range is cut to whole days inside.
        let v = parse_volume(
            "since=9999-12-01T00:00:00Z&until=9999-12-31T23:59:30Z&step=1d",
            0,
        )
        .unwrap();
        assert_eq!(v.since_minute, at("9999-12-01T00:00:00Z"));
        assert_eq!(v.until_minute, at("9999-12-31T00:00:00Z"));
        assert!(parse_volume("since=0001-01-01T00:00:00Z&until=0001-01-02T00:00:00Z", 0).is_ok());
    }
}
