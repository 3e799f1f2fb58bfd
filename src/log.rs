//! Log lines: the component's only output besides its answers, on the host's stderr.
//!
//! A line goes straight to `wasi:cli/stderr` in one `blocking-write-and-flush`: three host
//! calls (the stream, the write, the stream's drop). `eprintln!` takes seven (stream, pollable,
//! `check-write`, `write`, `blocking-flush`, two drops) and writes a line and its newline apart;
//! it goes through wasi-libc, whose descriptor table is allocated on its first use in an
//! instance, and with the heap empty at start (before build.rs gave it room) that allocation
//! grew linear memory by 64 KiB: a `memory.grow`, and two `mprotect` calls on the host. Dropped
//! duplicates are logged on the publish path, so this was paid by about a third of a
//! publisher's requests (docs/BENCHMARKS.md, issue 17).

/// Writes `text` and a newline to stderr as one line; a failed write is dropped (there is
/// nowhere else to report it).
pub fn line(mut text: String) {
    text.push('\n');
    write(text.as_bytes());
}

/// Writes `bytes` to stderr as they are (several lines at once, each ending in a newline).
pub fn write(bytes: &[u8]) {
    #[cfg(target_family = "wasm")]
    {
        /// Most bytes one `blocking-write-and-flush` may carry (the WASI 0.2 contract).
        const MAX_WRITE: usize = 4096;
        let stderr = wasi::cli::stderr::get_stderr();
        for chunk in bytes.chunks(MAX_WRITE) {
            if stderr.blocking_write_and_flush(chunk).is_err() {
                return;
            }
        }
    }
    // Unit tests run natively, where there is no wasi:cli to call.
    #[cfg(not(target_family = "wasm"))]
    {
        use std::io::Write as _;
        let _ = std::io::stderr().write_all(bytes);
    }
}

/// `eprintln!`, but as one [`line`] through `wasi:cli/stderr`.
macro_rules! logln {
    ($($arg:tt)*) => {
        $crate::log::line(format!($($arg)*))
    };
}
pub(crate) use logln;
