//! Request bodies: read with a size cap, then undo `Content-Encoding` with the same cap.
//!
//! Every ingest route reads its body here, so one rule holds for all of them: the body the
//! route sees is at most `max_body_bytes`, counted after decompression. The compressed bytes
//! are read with that cap too (never buffered past it), and each decoder writes into a buffer
//! that stops at `max_body_bytes + 1` bytes: a decompression bomb is a `413` after at most
//! `max_body_bytes` of output, whatever its ratio, and never an out-of-memory.
//!
//! Codings: `gzip` (also `x-gzip`; several members are one body, as RFC 1952 allows),
//! `deflate` (zlib as RFC 9110 says, or the raw deflate some clients send instead), `zstd`
//! and `identity`. Several codings (`Content-Encoding: gzip, zstd`) are undone last first, at
//! most [`MAX_CODINGS`] of them. Anything else is a `415` before a byte of the body is read.

use std::io::Read;

use crate::error::ApiError;

/// Most codings one body may stack; more is no client's and only multiplies the work.
pub const MAX_CODINGS: usize = 3;

/// A content coding this service can undo.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Coding {
    /// RFC 1952 gzip (one or more members).
    Gzip,
    /// RFC 1950 zlib, or a bare RFC 1951 deflate stream.
    Deflate,
    /// RFC 8878 Zstandard.
    Zstd,
}

impl Coding {
    fn name(self) -> &'static str {
        match self {
            Coding::Gzip => "gzip",
            Coding::Deflate => "deflate",
            Coding::Zstd => "zstd",
        }
    }
}

/// Parses a `Content-Encoding` header into the codings to undo, in the order they were applied.
pub fn codings(header: Option<&str>) -> Result<Vec<Coding>, ApiError> {
    let Some(header) = header else {
        return Ok(Vec::new());
    };
    let mut out = Vec::new();
    for token in header.split(',').map(str::trim).filter(|t| !t.is_empty()) {
        match token.to_ascii_lowercase().as_str() {
            "identity" => {}
            "gzip" | "x-gzip" => out.push(Coding::Gzip),
            "deflate" => out.push(Coding::Deflate),
            "zstd" => out.push(Coding::Zstd),
            _ => {
                return Err(ApiError::unsupported_encoding(format!(
                    "content encoding {token:?} is not supported; send gzip, deflate, zstd \
                     or an uncompressed body"
                )));
            }
        }
    }
    if out.len() > MAX_CODINGS {
        return Err(ApiError::unsupported_encoding(format!(
            "{} content codings are stacked; at most {MAX_CODINGS} are undone",
            out.len()
        )));
    }
    Ok(out)
}

/// Undoes `codings` (last applied first); every stage's output is capped at `max_bytes`.
pub fn decode(
    mut body: Vec<u8>,
    codings: &[Coding],
    max_bytes: usize,
) -> Result<Vec<u8>, ApiError> {
    for &coding in codings.iter().rev() {
        body = decode_one(&body, coding, max_bytes)?;
    }
    Ok(body)
}

fn decode_one(body: &[u8], coding: Coding, max_bytes: usize) -> Result<Vec<u8>, ApiError> {
    let corrupt = |e: std::io::Error| {
        ApiError::bad_encoding(format!(
            "the request body is not valid {}: {e}",
            coding.name()
        ))
    };
    match coding {
        Coding::Gzip => capped(flate2::read::MultiGzDecoder::new(body), max_bytes, corrupt),
        Coding::Deflate if is_zlib(body) => {
            capped(flate2::read::ZlibDecoder::new(body), max_bytes, corrupt)
        }
        Coding::Deflate => capped(flate2::read::DeflateDecoder::new(body), max_bytes, corrupt),
        Coding::Zstd => {
            // The frame names its window and the decoder reserves it up front: up to the allowed
            // output, or 8 MiB (what the reference encoder's highest levels ask), whichever is
            // larger. A frame asking more is refused rather than allocated.
            let window = (max_bytes as u64).max(8 << 20);
            let decoder =
                ruzstd::decoding::StreamingDecoder::new_with_max_window_size(body, window)
                    .map_err(|e| {
                        ApiError::bad_encoding(format!("the request body is not valid zstd: {e}"))
                    })?;
            capped(decoder, max_bytes, corrupt)
        }
    }
}

/// Whether a `deflate` body carries the zlib wrapper RFC 9110 asks for (RFC 1950 header check).
fn is_zlib(body: &[u8]) -> bool {
    match body {
        [cmf, flg, ..] => cmf & 0x0F == 8 && (u16::from(*cmf) << 8 | u16::from(*flg)) % 31 == 0,
        _ => false,
    }
}

/// Reads a decoder to its end, refusing (413) as soon as it yields more than `max_bytes`.
fn capped(
    reader: impl Read,
    max_bytes: usize,
    corrupt: impl Fn(std::io::Error) -> ApiError,
) -> Result<Vec<u8>, ApiError> {
    let mut out = Vec::new();
    reader
        .take(max_bytes as u64 + 1)
        .read_to_end(&mut out)
        .map_err(corrupt)?;
    if out.len() > max_bytes {
        return Err(ApiError::too_large(format!(
            "request body exceeds {max_bytes} bytes once decompressed"
        )));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn gzip(data: &[u8]) -> Vec<u8> {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        e.write_all(data).unwrap();
        e.finish().unwrap()
    }

    #[test]
    fn header_parsing() {
        assert_eq!(codings(None).unwrap(), vec![]);
        assert_eq!(codings(Some("identity")).unwrap(), vec![]);
        assert_eq!(codings(Some("GZIP")).unwrap(), vec![Coding::Gzip]);
        assert_eq!(
            codings(Some("deflate, zstd")).unwrap(),
            vec![Coding::Deflate, Coding::Zstd]
        );
        for bad in ["br", "compress", "gzip, lzma", "gzip, gzip, gzip, gzip"] {
            assert_eq!(codings(Some(bad)).unwrap_err().status, 415, "{bad}");
        }
    }

    #[test]
    fn round_trips() {
        let data = b"{\"topic\":\"t\"}\n".repeat(100);
        assert_eq!(decode(gzip(&data), &[Coding::Gzip], 1 << 20).unwrap(), data);
        let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::fast());
        z.write_all(&data).unwrap();
        assert_eq!(
            decode(z.finish().unwrap(), &[Coding::Deflate], 1 << 20).unwrap(),
            data
        );
        let mut raw = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::fast());
        raw.write_all(&data).unwrap();
        assert_eq!(
            decode(raw.finish().unwrap(), &[Coding::Deflate], 1 << 20).unwrap(),
            data
        );
        let twice = gzip(&gzip(&data));
        assert_eq!(
            decode(twice, &[Coding::Gzip, Coding::Gzip], 1 << 20).unwrap(),
            data
        );
        let mut members = gzip(b"ab");
        members.extend(gzip(b"cd"));
        assert_eq!(decode(members, &[Coding::Gzip], 10).unwrap(), b"abcd");
    }

    #[test]
    fn zstd_frames_decode() {
        // Frames made by the reference implementation: `printf 'hello zstd\n' | zstd -c` (a raw
        // block) and `'edgelog ' * 40 | zstd -19 -c` (a compressed block with a repeat).
        let raw = [
            0x28, 0xb5, 0x2f, 0xfd, 0x04, 0x58, 0x59, 0x00, 0x00, 0x68, 0x65, 0x6c, 0x6c, 0x6f,
            0x20, 0x7a, 0x73, 0x74, 0x64, 0x0a, 0x6c, 0x57, 0xf9, 0x51,
        ];
        assert_eq!(
            decode(raw.to_vec(), &[Coding::Zstd], 100).unwrap(),
            b"hello zstd\n"
        );
        let compressed = [
            0x28, 0xb5, 0x2f, 0xfd, 0x04, 0x68, 0x7d, 0x00, 0x00, 0x40, 0x65, 0x64, 0x67, 0x65,
            0x6c, 0x6f, 0x67, 0x20, 0x01, 0x00, 0x35, 0xd5, 0xcb, 0x05, 0xc9, 0x60, 0x2f, 0xf0,
        ];
        assert_eq!(
            decode(compressed.to_vec(), &[Coding::Zstd], 1000).unwrap(),
            b"edgelog ".repeat(40)
        );
        let err = decode(compressed.to_vec(), &[Coding::Zstd], 100).unwrap_err();
        assert_eq!(err.status, 413);
        assert_eq!(
            decode(b"not zstd".to_vec(), &[Coding::Zstd], 100)
                .unwrap_err()
                .status,
            400
        );
    }

    #[test]
    fn limits_count_decompressed_bytes() {
        let data = vec![b'a'; 1000];
        assert_eq!(
            decode(gzip(&data), &[Coding::Gzip], 1000).unwrap().len(),
            1000
        );
        let err = decode(gzip(&data), &[Coding::Gzip], 999).unwrap_err();
        assert_eq!(err.status, 413);
    }

    #[test]
    fn a_bomb_stops_at_the_limit() {
        // 64 MiB of zeros, gzipped twice: about 1 KB on the wire.
        let inner_member = gzip(&vec![0u8; 1 << 20]);
        let inner = inner_member.repeat(64);
        let bomb = gzip(&inner);
        assert!(bomb.len() < 4096, "{}", bomb.len());
        let err = decode(bomb, &[Coding::Gzip, Coding::Gzip], 1 << 20).unwrap_err();
        assert_eq!(err.status, 413);
    }

    #[test]
    fn corrupt_bodies_are_400() {
        let mut bad = gzip(b"hello");
        let n = bad.len();
        bad[n - 6] ^= 0xff; // the CRC
        assert_eq!(decode(bad, &[Coding::Gzip], 100).unwrap_err().status, 400);
        let truncated = gzip(&[7u8; 5000])[..20].to_vec();
        assert_eq!(
            decode(truncated, &[Coding::Gzip], 10_000)
                .unwrap_err()
                .status,
            400
        );
    }
}
