//! The hostile bodies of [`super::foreign`], built by hand so that each is exactly the
//! malformation it names: protobuf written field by field (back to front, so 10,000 levels of
//! nesting cost O(size)), OTLP/JSON and Loki bodies, snappy blocks, and the decompression bombs.
//!
//! The bombs are bodies of a few KB (gzip ~3 KB, deflate ~2.7 KB, zstd ~100 bytes) that inflate
//! to 1 GiB through two stacked codings (`gzip, gzip` and the like: the outer undoes to about
//! 1 MB, the inner to 1 GiB of zeros). Each is made once per process with flate2 and ruzstd from
//! one compressed MiB (or 128 KiB RLE block) repeated: no GiB is ever held in memory, here or in
//! the service, which stops at `max_body_bytes` of output.

use std::io::Write;
use std::sync::OnceLock;

/// What every bomb inflates to.
pub(super) const BOMB_BYTES: u64 = 1 << 30;

/// How deep the nested-AnyValue cases go.
pub(super) const DEEP: usize = 10_000;

/// The three bombs (a few KB each), made once per process.
pub(super) struct Bombs {
    /// `Content-Encoding: gzip, gzip`.
    pub gzip: Vec<u8>,
    /// `Content-Encoding: deflate, deflate`.
    pub deflate: Vec<u8>,
    /// `Content-Encoding: zstd, zstd`.
    pub zstd: Vec<u8>,
}

pub(super) fn bombs() -> &'static Bombs {
    static BOMBS: OnceLock<Bombs> = OnceLock::new();
    BOMBS.get_or_init(|| Bombs {
        gzip: gzip_bomb(BOMB_BYTES),
        deflate: deflate_bomb(BOMB_BYTES),
        zstd: zstd_bomb(BOMB_BYTES),
    })
}

/// Zeros in a bomb's repeated unit: each unit is compressed once and repeated `total / CHUNK`
/// times, so a bomb costs milliseconds to make even in a debug build.
pub(super) const CHUNK: usize = 1 << 20;

/// `Content-Encoding: gzip, gzip`: the inner body is one gzip member of [`CHUNK`] zeros
/// repeated (RFC 1952 members concatenate), streamed into the outer encoder.
pub(super) fn gzip_bomb(total: u64) -> Vec<u8> {
    use flate2::{Compression, write::GzEncoder};
    let mut member = GzEncoder::new(Vec::new(), Compression::best());
    member.write_all(&vec![0u8; CHUNK]).expect("to memory");
    let member = member.finish().expect("to memory");
    let mut outer = GzEncoder::new(Vec::new(), Compression::best());
    for _ in 0..total / CHUNK as u64 {
        outer.write_all(&member).expect("to memory");
    }
    outer.finish().expect("to memory")
}

/// `Content-Encoding: deflate, deflate`: the inner body is one zlib stream whose deflate data
/// is a full-flushed segment of [`CHUNK`] zeros repeated (a full flush ends byte-aligned and
/// references nothing before it, so copies follow each other), an empty final block and the
/// Adler-32 of the zeros; streamed into the outer zlib encoder.
pub(super) fn deflate_bomb(total: u64) -> Vec<u8> {
    use flate2::{Compress, Compression, FlushCompress, write::ZlibEncoder};
    let mut raw = Compress::new(Compression::best(), false);
    let mut segment = Vec::with_capacity(CHUNK / 64);
    raw.compress_vec(&vec![0u8; CHUNK], &mut segment, FlushCompress::Full)
        .expect("deflate of zeros");
    assert_eq!(
        raw.total_in(),
        CHUNK as u64,
        "one call takes the whole chunk"
    );
    let mut outer = ZlibEncoder::new(Vec::new(), Compression::best());
    outer.write_all(&[0x78, 0xda]).expect("to memory"); // zlib header, best compression
    for _ in 0..total / CHUNK as u64 {
        outer.write_all(&segment).expect("to memory");
    }
    outer.write_all(&[0x03, 0x00]).expect("to memory"); // final fixed block, end of block only
    // Adler-32 of `total` zeros: A stays 1, B adds A once a byte.
    let adler = ((total % 65_521) << 16 | 1) as u32;
    outer.write_all(&adler.to_be_bytes()).expect("to memory");
    outer.finish().expect("to memory")
}

/// `Content-Encoding: zstd, zstd`: the inner body is one zstd frame of RLE blocks (128 KiB of
/// zeros each, 4 bytes on the wire), zstd-compressed.
pub(super) fn zstd_bomb(total: u64) -> Vec<u8> {
    use ruzstd::encoding::{CompressionLevel, compress_to_vec};
    const BLOCK: u64 = 128 << 10;
    // Magic; descriptor: no content size, no checksum; window 2^17 (one block).
    let mut inner = vec![0x28, 0xb5, 0x2f, 0xfd, 0x00, (17 - 10) << 3];
    let blocks = total / BLOCK;
    for i in 0..blocks {
        let last = u32::from(i + 1 == blocks);
        // Block header (3 bytes LE): last flag, type 1 (RLE), size; then the byte repeated.
        let header = (BLOCK as u32) << 3 | 1 << 1 | last;
        inner.extend_from_slice(&header.to_le_bytes()[..3]);
        inner.push(0);
    }
    compress_to_vec(inner.as_slice(), CompressionLevel::Fastest)
}

/// Appends a protobuf varint.
pub(super) fn varint(out: &mut Vec<u8>, mut n: u64) {
    loop {
        let b = (n & 0x7f) as u8;
        n >>= 7;
        if n == 0 {
            out.push(b);
            return;
        }
        out.push(b | 0x80);
    }
}

/// A length-delimited protobuf field.
pub(super) fn field(tag: u8, bytes: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    varint(&mut out, bytes.len() as u64);
    out.extend_from_slice(bytes);
    out
}

/// A protobuf message written back to front, so nesting 10,000 levels costs O(size).
#[derive(Default)]
pub(super) struct Reversed(Vec<u8>);

impl Reversed {
    /// Puts `bytes` before everything written so far.
    pub(super) fn prepend(&mut self, bytes: &[u8]) {
        self.0.extend(bytes.iter().rev());
    }

    /// Makes everything written so far the value of a length-delimited field `tag`.
    pub(super) fn wrap(&mut self, tag: u8) {
        let mut len = Vec::new();
        varint(&mut len, self.0.len() as u64);
        self.prepend(&len);
        self.prepend(&[tag]);
    }

    /// The message, front to back.
    pub(super) fn finish(mut self) -> Vec<u8> {
        self.0.reverse();
        self.0
    }
}

/// An AnyValue string nested `depth` levels of kvlist (`{"k": ...}`) or array values.
pub(super) fn nested_any_value(depth: usize, kvlist: bool) -> Reversed {
    let mut r = Reversed::default();
    r.prepend(&field(0x0a, b"leaf")); // AnyValue.string_value = 1
    for _ in 0..depth {
        if kvlist {
            r.wrap(0x12); // KeyValue.value = 2
            r.prepend(&field(0x0a, b"k")); // KeyValue.key = 1
            r.wrap(0x0a); // KeyValueList.values = 1
            r.wrap(0x32); // AnyValue.kvlist_value = 6
        } else {
            r.wrap(0x0a); // ArrayValue.values = 1
            r.wrap(0x2a); // AnyValue.array_value = 5
        }
    }
    r
}

/// An ExportLogsServiceRequest (service.name = `topic`) whose one record has `body` as its
/// body and `time` as its first field (time_unix_nano = 1, fixed64).
pub(super) fn otlp_request(topic: &str, mut body: Reversed, time: &[u8]) -> Vec<u8> {
    body.wrap(0x2a); // LogRecord.body = 5
    body.prepend(time);
    body.wrap(0x12); // ScopeLogs.log_records = 2
    body.wrap(0x12); // ResourceLogs.scope_logs = 2
    let key_value = [
        field(0x0a, b"service.name"),
        field(0x12, &field(0x0a, topic.as_bytes())),
    ]
    .concat();
    body.prepend(&field(0x0a, &field(0x0a, &key_value))); // ResourceLogs.resource = 1
    body.wrap(0x0a); // ExportLogsServiceRequest.resource_logs = 1
    body.finish()
}

/// `time_unix_nano` as the fixed64 it is.
pub(super) fn fixed_time() -> Vec<u8> {
    let mut t = vec![0x09];
    t.extend_from_slice(&1_714_564_800_000_000_000u64.to_le_bytes());
    t
}

/// A valid OTLP/JSON request for `topic` whose one record's body is `body` (JSON text).
pub(super) fn otlp_json(topic: &str, body: &str) -> String {
    format!(
        r#"{{"resourceLogs":[{{"resource":{{"attributes":[{{"key":"service.name","value":{{"stringValue":"{topic}"}}}}]}},"scopeLogs":[{{"logRecords":[{{"timeUnixNano":"1714564800000000000","body":{body}}}]}}]}}]}}"#
    )
}

/// An AnyValue as OTLP/JSON nested `depth` levels of kvlist or array values.
pub(super) fn nested_json(depth: usize, kvlist: bool) -> String {
    let (open, close) = if kvlist {
        (r#"{"kvlistValue":{"values":[{"key":"k","value":"#, "}]}}")
    } else {
        (r#"{"arrayValue":{"values":["#, "]}}")
    };
    format!(
        r#"{}{{"stringValue":"leaf"}}{}"#,
        open.repeat(depth),
        close.repeat(depth)
    )
}

/// A Loki PushRequest (protobuf, before snappy) with one entry in a stream labelled for `topic`.
pub(super) fn loki_request(topic: &str) -> Vec<u8> {
    let mut timestamp = vec![0x08];
    varint(&mut timestamp, 1_714_564_800); // Timestamp.seconds = 1
    let entry = [field(0x0a, &timestamp), field(0x12, b"a line")].concat();
    let labels = format!(r#"{{service_name="{topic}"}}"#);
    let stream = [field(0x0a, labels.as_bytes()), field(0x12, &entry)].concat();
    field(0x0a, &stream)
}

pub(super) fn loki_json(topic: &str) -> String {
    format!(
        r#"{{"streams":[{{"stream":{{"service_name":"{topic}"}},"values":[["1714564800000000000","a line"]]}}]}}"#
    )
}

pub(super) fn snappy(data: &[u8]) -> Vec<u8> {
    snap::raw::Encoder::new()
        .compress_vec(data)
        .expect("snappy compresses anything")
}

pub(super) fn ndjson_line(topic: &str, id: &str) -> String {
    format!(
        r#"{{"topic":"{topic}","event_id":"{id}","timestamp":"2024-05-01T12:00:00Z","source":"chaos"}}"#
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;
    use std::io::Read;

    /// A decoder over `data`.
    type Decoder = for<'a> fn(&'a [u8]) -> Box<dyn Read + 'a>;

    fn gz(d: &[u8]) -> Box<dyn Read + '_> {
        Box::new(flate2::read::MultiGzDecoder::new(d))
    }

    fn zl(d: &[u8]) -> Box<dyn Read + '_> {
        Box::new(flate2::read::ZlibDecoder::new(d))
    }

    fn zs(d: &[u8]) -> Box<dyn Read + '_> {
        Box::new(ruzstd::decoding::StreamingDecoder::new(d).unwrap())
    }

    /// Undoes `layers` codings; the outer ones are small, the innermost is only counted.
    fn inflate(body: &[u8], layers: usize, read: Decoder) -> u64 {
        let mut data = body.to_vec();
        for _ in 1..layers {
            let mut next = Vec::new();
            read(&data).read_to_end(&mut next).unwrap();
            data = next;
        }
        std::io::copy(&mut read(&data), &mut std::io::sink()).unwrap()
    }

    #[test]
    fn the_bombs_are_small_and_inflate_to_what_they_claim() {
        let b = bombs();
        for (name, bomb) in [
            ("gzip", &b.gzip),
            ("deflate", &b.deflate),
            ("zstd", &b.zstd),
        ] {
            assert!(bomb.len() < 8 << 10, "{name}: {} bytes", bomb.len());
        }
        // Built the same way at 64 MiB, inflated all through (a GiB is slow in a debug build).
        let total = 64 << 20;
        assert_eq!(inflate(&gzip_bomb(total), 2, gz), total);
        assert_eq!(inflate(&deflate_bomb(total), 2, zl), total);
        assert_eq!(inflate(&zstd_bomb(total), 2, zs), total);
        // The real ones: their outer layer holds the repeated unit BOMB_BYTES / CHUNK times.
        assert!(inflate(&b.gzip, 1, gz) > BOMB_BYTES / CHUNK as u64 * 500);
        assert!(inflate(&b.deflate, 1, zl) > BOMB_BYTES / CHUNK as u64 * 500);
        assert_eq!(inflate(&b.zstd, 1, zs), BOMB_BYTES / (128 << 10) * 4 + 6);
    }

    #[test]
    fn hand_built_messages_are_what_they_claim() {
        // The control request: a service.name attribute and a leaf string, fields in order.
        let good = otlp_request("t.x", nested_any_value(0, false), &fixed_time());
        assert_eq!(good[0], 0x0a);
        assert!(good.windows(12).any(|w| w == b"service.name"));
        assert!(good.ends_with(b"leaf"));
        // Nesting adds a fixed number of bytes a level once the lengths have grown.
        let deep = nested_any_value(DEEP, true).finish();
        assert!(
            deep.len() > DEEP * 8 && deep.len() < DEEP * 20,
            "{}",
            deep.len()
        );
        assert_eq!(deep[0], 0x32);
        let json = nested_json(3, false);
        assert!(serde_json::from_str::<Value>(&json).is_ok(), "{json}");
        let json = nested_json(3, true);
        assert!(serde_json::from_str::<Value>(&json).is_ok(), "{json}");
        assert!(serde_json::from_str::<Value>(&otlp_json("t", &json)).is_ok());
        assert!(serde_json::from_str::<Value>(&loki_json("t")).is_ok());
    }
}
