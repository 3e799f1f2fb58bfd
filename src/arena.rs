//! The component's heap: small allocations come from a bump arena, everything else from the
//! toolchain's allocator (wasi-libc's dlmalloc).
//!
//! Spin makes a fresh instance for every request and throws its memory away afterwards, so
//! freeing a small block one by one is work nobody needs: issue 17's instruction profile put
//! dlmalloc's `malloc`/`free` at about a third of a single publish's guest instructions and a
//! fifth of a batched event's. Here a small allocation is a pointer bump, freeing it is nothing
//! (unless it was the last one, which is then given back), and growing the last one is in place.
//!
//! The arena is bounded: [`CHUNK`]-sized chunks, taken from the system allocator on demand, at
//! most [`MAX_CHUNKS`] of them. Past that (a very large batch), or for a block larger than
//! [`SMALL`], allocation falls through to the system allocator, so the arena adds at most
//! `CHUNK × MAX_CHUNKS` to a request's memory. A host that kept an instance for many requests
//! would see the same bound: the arena stops growing and the system allocator takes over.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

/// Largest block served by the arena; larger ones (request bodies, big vectors) are the system's.
const SMALL: usize = 4 << 10;
/// Bytes taken from the system allocator at a time.
const CHUNK: usize = 64 << 10;
/// Most chunks the arena takes: with [`CHUNK`], 512 KiB.
const MAX_CHUNKS: usize = 8;

/// A bump arena over chunks of the system allocator's memory.
pub struct Arena {
    /// Next free byte of the current chunk.
    next: Cell<usize>,
    /// End of the current chunk.
    end: Cell<usize>,
    /// Start of the last block handed out (0 if none since the chunk began).
    last: Cell<usize>,
    /// `[start, end)` of every chunk taken, to tell arena blocks from system blocks on free.
    chunks: [Cell<(usize, usize)>; MAX_CHUNKS],
    /// How many of `chunks` are taken.
    taken: Cell<usize>,
}

// SAFETY: the component runs on one thread (wasm32-wasip2 without the atomics feature; `lib.rs`
// installs the arena only there), so the cells are never touched concurrently.
unsafe impl Sync for Arena {}

impl Arena {
    /// An empty arena; chunks are taken on first use.
    pub const fn new() -> Arena {
        Arena {
            next: Cell::new(0),
            end: Cell::new(0),
            last: Cell::new(0),
            chunks: [const { Cell::new((0, 0)) }; MAX_CHUNKS],
            taken: Cell::new(0),
        }
    }

    fn owns(&self, ptr: *mut u8) -> bool {
        let at = ptr as usize;
        self.chunks[..self.taken.get()]
            .iter()
            .any(|c| (c.get().0..c.get().1).contains(&at))
    }

    /// Bumps `layout` out of the current chunk, taking a new chunk if needed and allowed.
    fn bump(&self, layout: Layout) -> Option<*mut u8> {
        let start = self.next.get().checked_add(layout.align() - 1)? & !(layout.align() - 1);
        let end = start.checked_add(layout.size())?;
        if self.next.get() != 0 && end <= self.end.get() {
            self.next.set(end);
            self.last.set(start);
            return Some(start as *mut u8);
        }
        let taken = self.taken.get();
        if taken == MAX_CHUNKS {
            return None;
        }
        // SAFETY: a non-zero size and a power-of-two alignment.
        let chunk = unsafe { System.alloc(Layout::from_size_align(CHUNK, 16).ok()?) } as usize;
        if chunk == 0 {
            return None;
        }
        self.chunks[taken].set((chunk, chunk + CHUNK));
        self.taken.set(taken + 1);
        self.next.set(chunk);
        self.end.set(chunk + CHUNK);
        self.last.set(0);
        self.bump(layout)
    }
}

impl Default for Arena {
    fn default() -> Self {
        Arena::new()
    }
}

// SAFETY: blocks come from chunks the system allocator gave us and never overlap (the bump only
// moves forward, and only the last block is ever given back or grown); blocks from the system
// allocator are returned to it, told apart by address.
unsafe impl GlobalAlloc for Arena {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if layout.size() <= SMALL
            && layout.align() <= 16
            && let Some(ptr) = self.bump(layout)
        {
            return ptr;
        }
        // SAFETY: the caller's layout, passed on.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        if self.owns(ptr) {
            if ptr as usize == self.last.get() && self.last.get() != 0 {
                self.next.set(self.last.get());
                self.last.set(0);
            }
            return;
        }
        // SAFETY: not an arena block, so the system allocator gave it out with this layout.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let at = ptr as usize;
        if at == self.last.get()
            && at != 0
            && new_size <= SMALL
            && let Some(end) = at.checked_add(new_size).filter(|&e| e <= self.end.get())
        {
            self.next.set(end);
            return ptr;
        }
        if self.owns(ptr) {
            // SAFETY: the caller guarantees a valid size for `layout.align()`.
            let new =
                unsafe { self.alloc(Layout::from_size_align_unchecked(new_size, layout.align())) };
            if !new.is_null() {
                // SAFETY: both blocks hold at least the smaller of the two sizes and do not overlap.
                unsafe { std::ptr::copy_nonoverlapping(ptr, new, layout.size().min(new_size)) };
                // SAFETY: `ptr` is this arena's, allocated with `layout`.
                unsafe { self.dealloc(ptr, layout) };
            }
            return new;
        }
        // SAFETY: a system block, reallocated by the system allocator.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_are_distinct_aligned_and_survive_growth() {
        let arena = Arena::new();
        unsafe {
            let a = arena.alloc(Layout::from_size_align(3, 1).unwrap());
            let b = arena.alloc(Layout::from_size_align(8, 8).unwrap());
            assert_eq!(b as usize % 8, 0);
            assert!(b as usize >= a as usize + 3);
            a.write_bytes(1, 3);
            // `b` is the last block: grown in place.
            b.write_bytes(2, 8);
            let b2 = arena.realloc(b, Layout::from_size_align(8, 8).unwrap(), 100);
            assert_eq!(b2, b);
            // `a` is not the last one: moved, contents kept.
            let a2 = arena.realloc(a, Layout::from_size_align(3, 1).unwrap(), 50);
            assert_ne!(a2, a);
            assert_eq!(std::slice::from_raw_parts(a2, 3), &[1, 1, 1]);
            assert_eq!(std::slice::from_raw_parts(b2, 8), &[2; 8]);
            // Freeing the last block gives its bytes back.
            let c = arena.alloc(Layout::from_size_align(16, 16).unwrap());
            arena.dealloc(c, Layout::from_size_align(16, 16).unwrap());
            let d = arena.alloc(Layout::from_size_align(16, 16).unwrap());
            assert_eq!(c, d);
        }
    }

    #[test]
    fn large_blocks_and_a_full_arena_fall_through_to_the_system() {
        let arena = Arena::new();
        unsafe {
            let big = Layout::from_size_align(SMALL + 1, 8).unwrap();
            let p = arena.alloc(big);
            assert!(!p.is_null() && !arena.owns(p));
            arena.dealloc(p, big);
            // Fill every chunk; the next block is the system's.
            let small = Layout::from_size_align(SMALL, 8).unwrap();
            let per_chunk = CHUNK / SMALL;
            let mut blocks = Vec::new();
            for _ in 0..MAX_CHUNKS * per_chunk {
                let p = arena.alloc(small);
                assert!(arena.owns(p));
                blocks.push(p);
            }
            let spill = arena.alloc(small);
            assert!(!spill.is_null() && !arena.owns(spill));
            arena.dealloc(spill, small);
            // Growing an arena block past SMALL moves it to the system allocator.
            let moved = arena.realloc(blocks[0], small, SMALL * 4);
            assert!(!arena.owns(moved));
            arena.dealloc(moved, Layout::from_size_align(SMALL * 4, 8).unwrap());
        }
    }
}
