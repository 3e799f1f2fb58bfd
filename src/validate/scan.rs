//! The common publish body read in one pass.
//!
//! The general path (module `body`) reads a body with serde_json as its rules need: the items'
//! fields as raw text, then each payload again to drop its whitespace and check its escapes,
//! then again for its message and level. For a batch of small events that was most of the
//! component's work per event (issue 17's profile). This module reads the common bodies — an
//! array of event objects, `{"events": [...]}`, one bare event — in a single pass that checks
//! the JSON grammar as it goes, copies each payload without whitespace, and notes the payload's
//! message and level members while it copies them.
//!
//! It decides only successes. Anything it is not sure of — an invalid or repeated field, an
//! escape in a member name, `\u0000`, a payload deeper than [`MAX_DEPTH`], a syntax error, a
//! batch over the limit — returns `None`, and the general path reads the body and gives its
//! answer. A body it accepts is one the general path accepts too, as the same events (the tests
//! check both on generated and mutated bodies).

use super::{Event, Level, Limits, MAX_TEXT_CHARS, Shape, normalize_timestamp, text, text_chars};

/// Deepest nesting this pass follows inside a payload (or an ignored member); deeper bodies
/// take the general path, which applies the 128-level rule.
const MAX_DEPTH: usize = 64;

/// The events of `body` if it is a common body whose every event is valid; `None` otherwise.
pub(super) fn events(body: &str, shape: Shape, limits: &Limits) -> Option<Vec<Event>> {
    let mut r = Reader {
        s: body,
        b: body.as_bytes(),
        i: 0,
    };
    r.space();
    let events = match r.peek()? {
        b'[' => r.items(limits)?,
        b'{' if r.wrapper_ahead() => {
            r.i += 1;
            r.space();
            r.plain_key()?; // "events"
            r.colon()?;
            let events = r.items(limits)?;
            r.space();
            r.expect(b'}')?;
            events
        }
        b'{' if shape == Shape::Any => vec![r.event(limits, true)?],
        _ => return None,
    };
    r.space();
    (r.i == r.b.len() && !events.is_empty() && events.len() <= limits.max_batch_events)
        .then_some(events)
}

/// One event object and nothing else, read as an item of a batch is (an NDJSON line: an
/// `events` member is just an unknown field there); `None` as for [`events`].
pub(super) fn event(line: &str, limits: &Limits) -> Option<Event> {
    let mut r = Reader {
        s: line,
        b: line.as_bytes(),
        i: 0,
    };
    r.space();
    let event = r.event(limits, false)?;
    r.space();
    (r.i == r.b.len()).then_some(event)
}

/// A position in the body; every method returns `None` for what this pass does not take.
struct Reader<'a> {
    s: &'a str,
    b: &'a [u8],
    i: usize,
}

/// A string's content (between the quotes) and whether it has escapes.
struct Text {
    start: usize,
    end: usize,
    escaped: bool,
}

/// A value's text copied without whitespace, lazily: `out` holds the text up to `from` (a
/// position in the body), and the body from `from` to the cursor is still to be copied, so a
/// value written without whitespace is copied once, at the end, in one piece.
struct Copy {
    out: String,
    from: usize,
}

impl Copy {
    fn at_cursor(r: &Reader<'_>) -> Copy {
        Copy {
            out: String::new(),
            from: r.i,
        }
    }

    /// Where body position `i` (not before `from`) lands in the copy.
    fn at(&self, i: usize) -> usize {
        self.out.len() + (i - self.from)
    }

    /// The copy, up to the cursor.
    fn finish(mut self, r: &Reader<'_>) -> String {
        self.out.push_str(&r.s[self.from..r.i]);
        self.out
    }
}

/// The first index from `i` of a `"`, a `\` or a control character (or the end): string text
/// up to there needs no look. Eight bytes at a time while none of them is one.
#[inline(always)]
pub(super) fn plain_end(b: &[u8], mut i: usize) -> usize {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    let zero_in = |x: u64| x.wrapping_sub(ONES) & !x & HIGH;
    while let Some(chunk) = b.get(i..i + 8) {
        let x = u64::from_le_bytes(chunk.try_into().unwrap_or_default());
        let special = zero_in(x ^ (ONES * u64::from(b'"')))
            | zero_in(x ^ (ONES * u64::from(b'\\')))
            | (x.wrapping_sub(ONES * 0x20) & !x & HIGH);
        if special != 0 {
            // The lowest flagged byte is exact (a false flag only ever sits above a true one).
            return i + (special.trailing_zeros() / 8) as usize;
        }
        i += 8;
    }
    while let Some(&c) = b.get(i) {
        if c == b'"' || c == b'\\' || c < 0x20 {
            break;
        }
        i += 1;
    }
    i
}

impl<'a> Reader<'a> {
    fn peek(&self) -> Option<u8> {
        self.b.get(self.i).copied()
    }

    fn space(&mut self) {
        while matches!(self.b.get(self.i), Some(b' ' | b'\t' | b'\n' | b'\r')) {
            self.i += 1;
        }
    }

    fn expect(&mut self, c: u8) -> Option<()> {
        (self.peek()? == c).then(|| self.i += 1)
    }

    fn colon(&mut self) -> Option<()> {
        self.space();
        self.expect(b':')?;
        self.space();
        Some(())
    }

    /// After a member or an item: `true` if another follows (`,`), `false` at `close`.
    fn next(&mut self, close: u8) -> Option<bool> {
        self.space();
        match self.peek()? {
            b',' => {
                self.i += 1;
                self.space();
                Some(true)
            }
            c if c == close => {
                self.i += 1;
                Some(false)
            }
            _ => None,
        }
    }

    /// Whether the object at the cursor is `{"events": ...` (then it is read as the wrapper,
    /// and must have no other member).
    fn wrapper_ahead(&self) -> bool {
        let mut at = self.i + 1;
        while matches!(self.b.get(at), Some(b' ' | b'\t' | b'\n' | b'\r')) {
            at += 1;
        }
        self.b[at..].starts_with(b"\"events\"")
    }

    /// `[event, …]`.
    fn items(&mut self, limits: &Limits) -> Option<Vec<Event>> {
        self.expect(b'[')?;
        self.space();
        let mut events = Vec::new();
        if self.peek()? == b']' {
            return None;
        }
        loop {
            if events.len() == limits.max_batch_events {
                return None;
            }
            events.push(self.event(limits, false)?);
            if !self.next(b']')? {
                return Some(events);
            }
        }
    }

    /// A string at the cursor: its content's bounds, the escapes checked (`\u0000` and
    /// unpaired surrogates are left to the general path).
    fn string(&mut self) -> Option<Text> {
        self.expect(b'"')?;
        let start = self.i;
        let mut escaped = false;
        loop {
            self.i = plain_end(self.b, self.i);
            match self.peek()? {
                b'"' => {
                    let end = self.i;
                    self.i += 1;
                    return Some(Text {
                        start,
                        end,
                        escaped,
                    });
                }
                b'\\' => {
                    escaped = true;
                    self.escape()?;
                }
                _ => return None, // a control character
            }
        }
    }

    /// One escape at the cursor (on its `\`).
    fn escape(&mut self) -> Option<()> {
        match *self.b.get(self.i + 1)? {
            b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't' => {
                self.i += 2;
                Some(())
            }
            b'u' => {
                let unit = self.hex(self.i + 2)?;
                match unit {
                    0 | 0xDC00..=0xDFFF => None,
                    0xD800..=0xDBFF => {
                        let low = (self.b.get(self.i + 6..self.i + 8)? == b"\\u")
                            .then(|| self.hex(self.i + 8))??;
                        (0xDC00..=0xDFFF).contains(&low).then(|| self.i += 12)
                    }
                    _ => {
                        self.i += 6;
                        Some(())
                    }
                }
            }
            _ => None,
        }
    }

    fn hex(&self, at: usize) -> Option<u32> {
        let digits = self.b.get(at..at + 4)?;
        digits
            .iter()
            .try_fold(0u32, |n, d| Some(n * 16 + char::from(*d).to_digit(16)?))
    }

    /// A member name without escapes (the others take the general path).
    fn plain_key(&mut self) -> Option<&'a str> {
        let key = self.string()?;
        (!key.escaped).then(|| &self.s[key.start..key.end])
    }

    /// A string value's text, decoded.
    fn text(&self, t: &Text) -> Option<String> {
        if t.escaped {
            serde_json::from_str(&self.s[t.start - 1..t.end + 1]).ok()
        } else {
            Some(self.s[t.start..t.end].to_owned())
        }
    }

    /// A number at the cursor, its grammar checked.
    fn number(&mut self) -> Option<()> {
        let digits = |r: &mut Self| {
            let from = r.i;
            while r.peek().is_some_and(|c| c.is_ascii_digit()) {
                r.i += 1;
            }
            r.i > from
        };
        if self.peek()? == b'-' {
            self.i += 1;
        }
        if self.peek()? == b'0' {
            self.i += 1;
        } else if !digits(self) {
            return None;
        }
        if self.peek() == Some(b'.') {
            self.i += 1;
            digits(self).then_some(())?;
        }
        if matches!(self.peek(), Some(b'e' | b'E')) {
            self.i += 1;
            if matches!(self.peek(), Some(b'+' | b'-')) {
                self.i += 1;
            }
            digits(self).then_some(())?;
        }
        Some(())
    }

    /// Any value at the cursor, checked; its text goes to `copy` without whitespace.
    fn value(&mut self, copy: &mut Copy, depth: usize) -> Option<()> {
        match self.peek()? {
            b'"' => {
                self.string()?;
            }
            b'{' => {
                return self.container(copy, depth, b'}', |r, copy| {
                    r.member(copy, depth + 1).map(drop)
                });
            }
            b'[' => return self.container(copy, depth, b']', |r, copy| r.value(copy, depth + 1)),
            b't' => self.literal(b"true")?,
            b'f' => self.literal(b"false")?,
            b'n' => self.literal(b"null")?,
            _ => self.number()?,
        }
        Some(())
    }

    /// Whitespace at the cursor inside a copied value: the text before it is copied, the
    /// whitespace skipped.
    #[inline(always)]
    fn gap(&mut self, copy: &mut Copy) {
        if matches!(self.peek(), Some(b' ' | b'\t' | b'\n' | b'\r')) {
            copy.out.push_str(&self.s[copy.from..self.i]);
            self.space();
            copy.from = self.i;
        }
    }

    /// The object or array at the cursor (its bracket, then `each` for every member or item);
    /// `close` is its closing bracket.
    fn container(
        &mut self,
        copy: &mut Copy,
        depth: usize,
        close: u8,
        mut each: impl FnMut(&mut Self, &mut Copy) -> Option<()>,
    ) -> Option<()> {
        if depth == MAX_DEPTH {
            return None;
        }
        self.i += 1;
        self.gap(copy);
        if self.peek()? == close {
            self.i += 1;
            return Some(());
        }
        loop {
            each(self, copy)?;
            self.gap(copy);
            match self.peek()? {
                b',' => {
                    self.i += 1;
                    self.gap(copy);
                }
                c if c == close => {
                    self.i += 1;
                    return Some(());
                }
                _ => return None,
            }
        }
    }

    /// One object member at the cursor: its key, and where its value's copy starts and ends.
    fn member(&mut self, copy: &mut Copy, depth: usize) -> Option<(Text, usize, usize)> {
        let key = self.string()?;
        self.gap(copy);
        self.expect(b':')?;
        self.gap(copy);
        let from = copy.at(self.i);
        self.value(copy, depth)?;
        Some((key, from, copy.at(self.i)))
    }

    fn literal(&mut self, word: &[u8]) -> Option<()> {
        self.b[self.i..]
            .starts_with(word)
            .then(|| self.i += word.len())
    }

    /// A payload at the cursor: its compact text, message and level.
    fn payload(&mut self) -> Option<(String, Option<String>, Option<Level>)> {
        let mut copy = Copy::at_cursor(self);
        if self.peek()? != b'{' {
            self.value(&mut copy, 1)?;
            let out = copy.finish(self);
            let (message, level) = text::inspect(&out);
            return Some((out, message, level));
        }
        // An object: its members read one by one, the known ones' values noted by position.
        let mut known: [Option<(usize, usize)>; 5] = [None; 5];
        let mut repeated = false;
        self.container(&mut copy, 1, b'}', |r, copy| {
            let (key, from, to) = r.member(copy, 2)?;
            let slot = if key.escaped {
                let name = r.text(&key)?;
                text::KNOWN.iter().position(|k| *k == name)
            } else {
                let name = &r.s[key.start..key.end];
                text::KNOWN.iter().position(|k| *k == name)
            };
            if let Some(slot) = slot {
                repeated |= known[slot].is_some();
                known[slot] = Some((from, to));
            }
            Some(())
        })?;
        let out = copy.finish(self);
        let (message, level) = if repeated {
            (None, None)
        } else {
            text::read(&known.map(|span| span.map(|(a, b)| &out[a..b])))
        };
        Some((out, message, level))
    }

    /// One event object; `bare`: the body itself, where an `events` member makes it a wrapper.
    fn event(&mut self, limits: &Limits, bare: bool) -> Option<Event> {
        let mut texts: [Option<Text>; 5] = [None, None, None, None, None];
        let mut level_null = false;
        let mut payload = None;
        self.expect(b'{')?;
        self.space();
        if self.peek()? == b'}' {
            return None; // no fields: the general path says which are required
        }
        loop {
            let key = self.plain_key()?;
            self.colon()?;
            let slot = match key {
                "topic" => Some(0),
                "event_id" => Some(1),
                "timestamp" => Some(2),
                "source" => Some(3),
                "level" => Some(4),
                _ => None,
            };
            if let Some(slot) = slot {
                if texts[slot].is_some() || (slot == 4 && level_null) {
                    return None;
                }
                if slot == 4 && self.peek()? == b'n' {
                    self.literal(b"null")?;
                    level_null = true;
                } else {
                    texts[slot] = Some(self.string()?);
                }
            } else if key == "payload" {
                if payload.is_some() {
                    return None;
                }
                payload = Some(self.payload()?);
            } else if bare && key == "events" {
                return None;
            } else {
                // Checked, not kept: its copy is dropped.
                self.value(&mut Copy::at_cursor(self), 1)?;
            }
            if !self.next(b'}')? {
                break;
            }
        }
        let [topic, event_id, timestamp, source, level] = texts;
        let field = |t: Option<Text>| {
            let value = self.text(&t?)?;
            // `check_text`'s length rule; its NUL rule cannot fail here, as this pass leaves
            // `\u0000` to the general path and refuses raw control characters.
            (1..=MAX_TEXT_CHARS)
                .contains(&text_chars(&value))
                .then_some(value)
        };
        let (topic, event_id, source) = (field(topic)?, field(event_id)?, field(source)?);
        let timestamp = normalize_timestamp(&self.text(&timestamp?)?).ok()?;
        let level = match level {
            Some(t) => Some(Level::parse(&self.text(&t)?)?),
            None => None,
        };
        let (payload, message, payload_level) =
            payload.unwrap_or_else(|| ("{}".to_owned(), None, None));
        if payload.len() > limits.max_payload_bytes {
            return None;
        }
        Some(Event {
            topic,
            event_id,
            timestamp,
            source,
            payload,
            level: level.or(payload_level),
            message,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::super::body::parse_text;
    use super::*;

    const LIMITS: Limits = Limits {
        max_batch_events: 4,
        max_payload_bytes: 120,
    };

    /// Generated event bodies, lines and their mutations.
    struct Gen(crate::testing::Rng);

    impl Gen {
        fn below(&mut self, n: usize) -> usize {
            self.0.below(n)
        }

        fn pick<'s>(&mut self, from: &[&'s str]) -> &'s str {
            from[self.below(from.len())]
        }

        fn space(&mut self) -> &'static str {
            self.pick(&["", "", "", " ", "\n ", "\t", "\r\n"])
        }

        /// Any JSON value (sometimes not quite JSON), nested up to `depth`.
        fn value(&mut self, depth: usize) -> String {
            const SCALARS: [&str; 24] = [
                "0",
                "-1",
                "12.50",
                "1e400",
                "-0.0e-1",
                "2E+3",
                "true",
                "false",
                "null",
                "\"x\"",
                "\"\"",
                "\"a b\"",
                "\"\\\"q\\\"\"",
                "\"\\u00e9\\n\"",
                "\"\\ud83d\\ude00\"",
                "\"é ✓\"",
                "\"\\u0000\"",
                "\"\\ud800\"",
                "01",
                "1.",
                "-",
                "tru",
                "\"\\x\"",
                "\"\u{1}\"",
            ];
            match self.below(if depth == 0 { 1 } else { 4 }) {
                0 => self.pick(&SCALARS).to_owned(),
                1 => {
                    let n = self.below(4);
                    let items: Vec<String> = (0..n).map(|_| self.value(depth - 1)).collect();
                    format!("[{}{}]", self.space(), items.join(","))
                }
                _ => {
                    let n = self.below(4);
                    let members: Vec<String> = (0..n)
                        .map(|_| {
                            let key = self.pick(&[
                                "\"message\"",
                                "\"msg\"",
                                "\"body\"",
                                "\"level\"",
                                "\"severity\"",
                                "\"m\\u0065ssage\"",
                                "\"n\"",
                                "\"k\\\"\"",
                                "\"\"",
                            ]);
                            let level = self.pick(&["\"warn\"", "\"ERR\"", "\"loud\""]);
                            let v = if self.below(3) == 0 {
                                level.to_owned()
                            } else {
                                self.value(depth - 1)
                            };
                            format!(
                                "{}{key}{}:{}{v}{}",
                                self.space(),
                                self.space(),
                                self.space(),
                                self.space()
                            )
                        })
                        .collect();
                    format!("{{{}}}", members.join(","))
                }
            }
        }

        /// An event object: the fields in any order, sometimes wrong, missing or repeated.
        fn event(&mut self) -> String {
            let mut members = Vec::new();
            let text = |g: &mut Gen| {
                if g.below(4) > 0 {
                    return g
                        .pick(&["\"t\"", "\"caf\\u00e9\"", "\"x\\ty\"", "\"é\""])
                        .to_owned();
                }
                g.pick(&[
                    "\"t\"",
                    "\"t\"",
                    "\"caf\\u00e9\"",
                    "\"\"",
                    "5",
                    "null",
                    "\"a\\u0000\"",
                    "\"\\ud800\"",
                    "\"x\\ty\"",
                ])
                .to_owned()
            };
            for name in ["topic", "event_id", "source"] {
                if self.below(12) > 0 {
                    let v = text(self);
                    members.push(format!("\"{name}\":{v}"));
                }
            }
            if self.below(12) > 0 {
                let ts = self.pick(&[
                    "\"2024-05-01T12:00:00Z\"",
                    "\"2024-05-01T12:00:00Z\"",
                    "\"2024-05-01T12:00:00Z\"",
                    "\"2024-05-01T12:00:00Z\"",
                    "\"2024-05-01 12:00:00.123456789+02:00\"",
                    "\"2024-02-30T00:00:00Z\"",
                    "\"2024-05-01T12:00:00\\u005a\"",
                    "12",
                ]);
                members.push(format!("\"timestamp\":{ts}"));
            }
            if self.below(3) > 0 {
                let v = self.value(3);
                members.push(format!("\"payload\"{}:{v}", self.space()));
            }
            if self.below(4) == 0 {
                let l = self.pick(&["\"WARNING\"", "null", "\"loud\"", "3", "\"err\""]);
                members.push(format!("\"level\":{l}"));
            }
            if self.below(5) == 0 {
                let v = self.value(2);
                let k = self.pick(&[
                    "\"extra\"",
                    "\"events\"",
                    "\"topic\"",
                    "\"payload\"",
                    "\"to\\u0070ic\"",
                ]);
                members.push(format!("{k}:{v}"));
            }
            for i in (1..members.len()).rev() {
                let j = self.below(i + 1);
                members.swap(i, j);
            }
            let sep = format!(",{}", self.space());
            format!("{{{}{}}}", self.space(), members.join(&sep))
        }

        fn body(&mut self) -> String {
            let n = 1 + self.below(5);
            let items: Vec<String> = (0..n).map(|_| self.event()).collect();
            match self.below(4) {
                0 => items[0].clone(),
                1 => format!("{{\"events\":{}[{}]}}", self.space(), items.join(",")),
                2 => format!("{{\"events\":[{}], \"x\": 1}}", items.join(",")),
                _ => format!("{}[{}]{}", self.space(), items.join(","), self.space()),
            }
        }

        /// A random edit of a body: a byte dropped, doubled or replaced by a JSON-ish one.
        fn mutate(&mut self, body: &str) -> String {
            let mut b: Vec<char> = body.chars().collect();
            for _ in 0..1 + self.below(2) {
                if b.is_empty() {
                    break;
                }
                let at = self.below(b.len());
                let c = self.pick(&[
                    "{", "}", "[", "]", ",", ":", "\"", "\\", " ", "0", "e", "-", "u",
                ]);
                match self.below(3) {
                    0 => {
                        b.remove(at);
                    }
                    1 => b.insert(at, b[at]),
                    _ => b[at] = c.chars().next().unwrap_or(' '),
                }
            }
            b.into_iter().collect()
        }
    }

    fn check(body: &str, shape: Shape) -> bool {
        let fast = events(body, shape, &LIMITS);
        let general = parse_text(body, shape, &LIMITS);
        let Some(fast) = fast else {
            return false;
        };
        let general = general.unwrap_or_else(|e| {
            panic!("the scan took a body the general path refuses ({e:?}): {body}")
        });
        assert_eq!(fast, general, "{body}");
        let derived = |events: &[Event]| -> Vec<(Option<String>, Option<Level>)> {
            events
                .iter()
                .map(|e| (e.message().map(str::to_owned), e.level()))
                .collect()
        };
        assert_eq!(derived(&fast), derived(&general), "{body}");
        true
    }

    #[test]
    fn plain_end_stops_at_the_first_quote_backslash_or_control_character() {
        let naive = |b: &[u8], i: usize| {
            (i..b.len())
                .find(|&j| matches!(b[j], b'"' | b'\\' | 0..=0x1f))
                .unwrap_or(b.len())
        };
        let mut rng = crate::testing::Rng(0x51_7cc1_b727_220a);
        // Bytes chosen so that a special byte may sit at any position of an 8-byte word, next
        // to bytes just above and below the ones looked for (borrows in the word arithmetic).
        let alphabet = [
            b'"', b'\\', 0, 0x1f, 0x20, 0x21, b'#', b']', b'a', 0x7f, 0x80, 0xc3, 0xff,
        ];
        for _ in 0..50_000 {
            let len = rng.below(40);
            let b: Vec<u8> = (0..len)
                .map(|_| match rng.below(4) {
                    0 => alphabet[rng.below(alphabet.len())],
                    _ => b'a' + rng.below(26) as u8,
                })
                .collect();
            let from = rng.below(len + 1);
            assert_eq!(plain_end(&b, from), naive(&b, from), "{b:?} from {from}");
        }
    }

    #[test]
    fn what_the_scan_takes_the_general_path_takes_the_same() {
        let mut g = Gen(crate::testing::Rng(0x9e37_79b9_7f4a_7c15));
        let (mut taken, mut valid) = (0, 0);
        for _ in 0..20_000 {
            let body = g.body();
            for shape in [Shape::Any, Shape::Batch] {
                valid += usize::from(parse_text(&body, shape, &LIMITS).is_ok());
                taken += usize::from(check(&body, shape));
                check(&g.mutate(&body), shape);
            }
        }
        // Most valid bodies are the common case; the scan must take them, not only step aside.
        eprintln!("the scan took {taken} of {valid} valid bodies");
        assert!(
            valid > 2_000 && taken * 10 > valid * 6,
            "the scan took {taken} of {valid} valid bodies"
        );
    }

    #[test]
    fn a_line_the_scan_takes_is_the_event_the_general_path_reads() {
        let mut g = Gen(crate::testing::Rng(0x2545_f491_4f6c_dd1d));
        let mut taken = 0;
        for _ in 0..20_000 {
            let line = g.event();
            for line in [line.clone(), g.mutate(&line)] {
                let Some(fast) = event(&line, &LIMITS) else {
                    continue;
                };
                taken += 1;
                let raw: &serde_json::value::RawValue =
                    serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: {line}"));
                let general =
                    super::super::validate_items(std::iter::once((Some(0), raw)), &LIMITS)
                        .unwrap_or_else(|e| {
                            panic!("the scan took a line the general path refuses ({e:?}): {line}")
                        });
                assert_eq!(general, vec![fast.clone()], "{line}");
                assert_eq!(general[0].message(), fast.message(), "{line}");
            }
        }
        assert!(taken > 3_000, "the scan took {taken} lines");
    }

    #[test]
    fn the_common_body_is_taken() {
        let event = r#"{"topic":"orders","event_id":"run-00000001","timestamp":"2026-12-07T03:00:00.000001Z","source":"loadgen","payload":{"seq":1,"run":"r","level":"warn","msg":"loadgen event 1","n":42}}"#;
        for (body, shape) in [
            (format!("[{event},{event}]"), Shape::Batch),
            (format!(r#"{{"events":[{event}]}}"#), Shape::Batch),
            (event.to_owned(), Shape::Any),
        ] {
            let limits = Limits {
                max_batch_events: 10,
                max_payload_bytes: 1000,
            };
            let got = events(&body, shape, &limits).expect("taken");
            assert_eq!(got[0].message(), Some("loadgen event 1"));
            assert_eq!(got[0].level(), Some(Level::Warn));
            assert_eq!(
                got[0].payload(),
                r#"{"seq":1,"run":"r","level":"warn","msg":"loadgen event 1","n":42}"#
            );
        }
        let small = Limits {
            max_batch_events: 10,
            max_payload_bytes: 32,
        };
        assert!(
            events(&format!("[{event}]"), Shape::Batch, &small).is_none(),
            "413 is the general path's"
        );
    }
}
