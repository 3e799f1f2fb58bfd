//! Which queued entries one drain takes, and in what order, so that parallel `POST /drain`
//! callers do not spend their budgets on the same entries.
//!
//! Correctness never depends on this: an entry applied twice changes nothing (its store marker),
//! and an entry another caller already deleted reads as `Loaded::Gone` and is skipped. What a
//! share buys is throughput: callers that never meet each apply different groups, so N of them
//! keep N store connections busy instead of racing for the same oldest group.
//!
//! - [`Share::Oldest`]: everything, oldest first. The read routes use it: what a reader is about
//!   to see should include the oldest acknowledged events first.
//! - [`Share::Lane`]: only the entries of one lane, oldest first. An entry's lane is its key's
//!   16-hex random nonce modulo the number of lanes (see `queue::entry_key`), so N callers with
//!   lanes `0..N` take disjoint parts of the queue, of about equal size.
//! - [`Share::Scattered`]: everything, from a random group boundary of the pending list, wrapping
//!   around. `POST /drain` without lanes uses it, so callers that do not coordinate rarely start
//!   on the same group.

use super::GROUP_ENTRIES;
use crate::queue::{self, Pending};

/// Most lanes a queue can be split into (`lanes` of `POST /drain`).
pub const MAX_LANES: u64 = 64;

/// The part of the queue one drain consumes, and its order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Share {
    /// Every entry, oldest first.
    Oldest,
    /// Every entry, starting at a random group and wrapping around.
    Scattered,
    /// The entries whose nonce modulo `lanes` is `lane`, oldest first (`lane < lanes`).
    Lane {
        /// This caller's lane, below `lanes`.
        lane: u64,
        /// How many lanes the queue is split into, 1 to [`MAX_LANES`].
        lanes: u64,
    },
}

impl Share {
    /// The share of `POST /drain?lane=I&lanes=N`: a lane when both are given (`I` taken modulo
    /// `N`, so every value the contract allows is answered), otherwise the scattered whole.
    pub fn of_request(lane: Option<u64>, lanes: Option<u64>) -> Share {
        match (lane, lanes) {
            (Some(lane), Some(lanes)) if lanes > 0 => Share::Lane {
                lane: lane % lanes,
                lanes,
            },
            _ => Share::Scattered,
        }
    }

    /// Whether a pending entry belongs to this share.
    pub fn holds(self, key: &str) -> bool {
        match self {
            Share::Oldest | Share::Scattered => true,
            Share::Lane { lane, lanes } => lane_of(key, lanes) == lane,
        }
    }

    /// The pending entries (oldest first, as `Queue::pending` lists them) this share takes, in
    /// the order it takes them.
    pub fn arrange(self, mut pending: Vec<Pending>) -> Vec<Pending> {
        match self {
            Share::Oldest => {}
            Share::Lane { .. } => pending.retain(|p| self.holds(&p.key)),
            Share::Scattered => {
                let groups = pending.len().div_ceil(GROUP_ENTRIES);
                if groups > 1 {
                    let start = (queue::random() % groups as u64) as usize * GROUP_ENTRIES;
                    pending.rotate_left(start);
                }
            }
        }
        pending
    }
}

/// The lane of an entry key among `lanes`: its random nonce modulo `lanes` (0 for a key without
/// a readable nonce, which `Queue::pending` never lists).
pub fn lane_of(key: &str, lanes: u64) -> u64 {
    let nonce = queue::id_of(key)
        .split('-')
        .nth(1)
        .and_then(|hex| u64::from_str_radix(hex, 16).ok())
        .unwrap_or(0);
    nonce % lanes.max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pending(n: u64) -> Vec<Pending> {
        (0..n)
            .map(|i| Pending {
                key: queue::entry_key(
                    1_714_564_800_000 + i,
                    i.wrapping_mul(0x9e37_79b9_7f4a_7c15),
                    1,
                ),
                count: 1,
            })
            .collect()
    }

    #[test]
    fn the_lane_is_the_nonce_modulo_the_lanes() {
        let key = queue::entry_key(1_714_564_800_123, 0xdead_beef, 42);
        assert_eq!(lane_of(&key, 1), 0);
        assert_eq!(lane_of(&key, 4), 0xdead_beef % 4);
        assert_eq!(lane_of(&key, 64), 0xdead_beef % 64);
        assert_eq!(lane_of("q/garbage", 4), 0);
    }

    #[test]
    fn lanes_split_the_queue_into_disjoint_oldest_first_parts() {
        let all = pending(1000);
        let lanes = 4;
        let mut seen: Vec<String> = Vec::new();
        for lane in 0..lanes {
            let mine = Share::Lane { lane, lanes }.arrange(all.clone());
            assert!(mine.windows(2).all(|w| w[0].key < w[1].key), "oldest first");
            assert!(mine.len() > 150, "about a quarter each: {}", mine.len());
            seen.extend(mine.into_iter().map(|p| p.key));
        }
        seen.sort();
        let every: Vec<String> = all.into_iter().map(|p| p.key).collect();
        assert_eq!(seen, every, "each entry in exactly one lane");
    }

    #[test]
    fn scattered_starts_at_a_group_boundary_and_wraps() {
        let all = pending(3 * GROUP_ENTRIES as u64 + 7);
        for _ in 0..20 {
            let order = Share::Scattered.arrange(all.clone());
            let start = all.iter().position(|p| p.key == order[0].key).unwrap();
            assert_eq!(start % GROUP_ENTRIES, 0, "a group boundary");
            let mut back = order.clone();
            back.rotate_right(start);
            assert_eq!(back, all, "the same entries, rotated");
        }
        let few = pending(5);
        assert_eq!(
            Share::Scattered.arrange(few.clone()),
            few,
            "one group: as is"
        );
        assert_eq!(Share::Oldest.arrange(all.clone()), all);
    }

    #[test]
    fn request_parameters_make_a_lane_only_together() {
        assert_eq!(Share::of_request(None, None), Share::Scattered);
        assert_eq!(Share::of_request(Some(1), None), Share::Scattered);
        assert_eq!(Share::of_request(None, Some(4)), Share::Scattered);
        assert_eq!(
            Share::of_request(Some(1), Some(4)),
            Share::Lane { lane: 1, lanes: 4 }
        );
        assert_eq!(
            Share::of_request(Some(6), Some(4)),
            Share::Lane { lane: 2, lanes: 4 }
        );
    }
}
