//! Tests of `validate::scan`: whatever the one-pass scan takes, the general path takes as the
//! same events; generated bodies, lines and their mutations.

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
            let general = super::super::validate_items(std::iter::once((Some(0), raw)), &LIMITS)
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
