//! The component's heap: small allocations come from a bump arena, everything else from the
//! toolchain's allocator (wasi-libc's dlmalloc).
//!
//! Spin makes a fresh instance for every request and throws its memory away afterwards, so
//! freeing a small block one by one is work nobody needs: issue 17's instruction profile put
//! dlmalloc's `malloc`/`free` at about a third of a single publish's guest instructions and a
//! fifth of a batched event's. Here a small allocation is a pointer bump, freeing it is nothing
//! (unless it was the last one, which is then given back), and growing the last one is in place.
//! (Talc, a maintained allocator crate, in place of dlmalloc saved a quarter of what this does.)
//!
//! The arena is a fixed 32 KiB of the component's static memory ([`SIZE`]): enough for a single
//! publish, and it never grows linear memory (which would cost a reset of the new bytes and two
//! `mprotect` calls per request: a first version that took 64 KiB chunks from the system
//! allocator measured slower for that). A block larger than [`SMALL`], or one that no longer
//! fits (a large batch), comes from the system allocator. A host that kept an instance for many
//! requests would see the same: once the arena is used up, the system allocator takes over.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::{Cell, UnsafeCell};

/// Largest block served by the arena; larger ones (request bodies, big vectors) are the system's.
const SMALL: usize = 4 << 10;
/// The arena's size. It lives in the component's static memory, so the instance starts with it
/// and never grows its linear memory for it: every byte of linear memory is reset after every
/// request (Spin keeps up to 2 MiB resident and clears it), and growing memory costs two
/// `mprotect` calls per request besides. 32 KiB holds a single publish's small blocks.
const SIZE: usize = 32 << 10;

/// The arena's bytes.
#[repr(C, align(16))]
struct Space(UnsafeCell<[u8; SIZE]>);

/// A bump arena over a fixed region, in front of the system allocator.
pub struct Arena {
    space: Space,
    /// Offset of the next free byte.
    next: Cell<usize>,
    /// Offset of the last block handed out, plus one (0: none to give back or grow).
    last: Cell<usize>,
}

// SAFETY: the component runs on one thread (wasm32-wasip2 without the atomics feature; `lib.rs`
// installs the arena only there), so the cells are never touched concurrently.
unsafe impl Sync for Arena {}

impl Arena {
    /// An empty arena.
    pub const fn new() -> Arena {
        Arena {
            space: Space(UnsafeCell::new([0; SIZE])),
            next: Cell::new(0),
            last: Cell::new(0),
        }
    }

    fn base(&self) -> usize {
        self.space.0.get() as usize
    }

    /// The offset of `ptr` in the arena, if it is an arena block.
    fn offset(&self, ptr: *mut u8) -> Option<usize> {
        (ptr as usize)
            .checked_sub(self.base())
            .filter(|&at| at < SIZE)
    }

    /// Bumps `layout` out of the arena, if it fits.
    fn bump(&self, layout: Layout) -> Option<*mut u8> {
        let base = self.base();
        let start =
            (base + self.next.get()).checked_add(layout.align() - 1)? & !(layout.align() - 1);
        let end = start.checked_add(layout.size())?;
        if end > base + SIZE {
            return None;
        }
        self.next.set(end - base);
        self.last.set(start - base + 1);
        Some(start as *mut u8)
    }
}

impl Default for Arena {
    fn default() -> Self {
        Arena::new()
    }
}

// SAFETY: arena blocks never overlap (the bump only moves forward, and only the last block is
// ever given back or grown); blocks from the system allocator are returned to it, told apart by
// address.
unsafe impl GlobalAlloc for Arena {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if layout.size() <= SMALL
            && let Some(ptr) = self.bump(layout)
        {
            return ptr;
        }
        // SAFETY: the caller's layout, passed on.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        match self.offset(ptr) {
            Some(at) => {
                if self.last.get() == at + 1 {
                    self.next.set(at);
                    self.last.set(0);
                }
            }
            // SAFETY: not an arena block, so the system allocator gave it out with this layout.
            None => unsafe { System.dealloc(ptr, layout) },
        }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let Some(at) = self.offset(ptr) else {
            // SAFETY: a system block, reallocated by the system allocator.
            return unsafe { System.realloc(ptr, layout, new_size) };
        };
        if self.last.get() == at + 1 && new_size <= SMALL && at + new_size <= SIZE {
            self.next.set(at + new_size);
            return ptr;
        }
        // SAFETY: the caller guarantees a valid size for `layout.align()`.
        let new =
            unsafe { self.alloc(Layout::from_size_align_unchecked(new_size, layout.align())) };
        if !new.is_null() {
            // SAFETY: both blocks hold at least the smaller of the two sizes and do not overlap.
            unsafe { std::ptr::copy_nonoverlapping(ptr, new, layout.size().min(new_size)) };
            // SAFETY: `ptr` is this arena's, allocated with `layout`.
            unsafe { self.dealloc(ptr, layout) };
        }
        new
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_are_distinct_aligned_and_survive_growth() {
        let arena = Box::new(Arena::new());
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
        let arena = Box::new(Arena::new());
        unsafe {
            let big = Layout::from_size_align(SMALL + 1, 8).unwrap();
            let p = arena.alloc(big);
            assert!(!p.is_null() && arena.offset(p).is_none());
            arena.dealloc(p, big);
            let small = Layout::from_size_align(SMALL, 8).unwrap();
            let mut blocks = Vec::new();
            for _ in 0..SIZE / SMALL {
                let p = arena.alloc(small);
                assert!(arena.offset(p).is_some());
                blocks.push(p);
            }
            let spill = arena.alloc(small);
            assert!(!spill.is_null() && arena.offset(spill).is_none());
            arena.dealloc(spill, small);
            // Growing an arena block past SMALL moves it to the system allocator.
            let moved = arena.realloc(blocks[0], small, SMALL * 4);
            assert!(arena.offset(moved).is_none());
            arena.dealloc(moved, Layout::from_size_align(SMALL * 4, 8).unwrap());
        }
    }
}
