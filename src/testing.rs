//! Helpers the unit tests share.

/// A small deterministic generator (xorshift64): generated cases are the same on every run, so
/// a failure names its case.
pub struct Rng(pub u64);

impl Rng {
    /// The next number below `n`.
    pub fn below(&mut self, n: usize) -> usize {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 % n as u64) as usize
    }
}

/// Events from a JSON array, validated as a publish would (the unit tests build batches as JSON).
pub fn parse_events(items: &serde_json::Value) -> Vec<crate::validate::Event> {
    let limits = crate::validate::Limits {
        max_batch_events: 100,
        max_payload_bytes: 1000,
    };
    crate::validate::parse_batch(
        items.to_string().as_bytes(),
        crate::validate::Shape::Any,
        &limits,
    )
    .unwrap()
}
