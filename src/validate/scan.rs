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

use std::borrow::Cow;

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
        self.text_in_place(t).map(Cow::into_owned)
    }

    /// A string value's text, decoded; borrowed from the body when it has no escapes.
    fn text_in_place(&self, t: &Text) -> Option<Cow<'a, str>> {
        if t.escaped {
            serde_json::from_str(&self.s[t.start - 1..t.end + 1])
                .ok()
                .map(Cow::Owned)
        } else {
            Some(Cow::Borrowed(&self.s[t.start..t.end]))
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
        let timestamp = normalize_timestamp(&self.text_in_place(&timestamp?)?).ok()?;
        let level = match level {
            Some(t) => Some(Level::parse(&self.text_in_place(&t)?)?),
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
#[path = "scan_tests.rs"]
mod tests;
