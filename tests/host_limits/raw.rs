//! Raw HTTP/1.1 over TCP for the host_limits tests: clients that misbehave on purpose (headers
//! that never end, bodies that stop or dribble) and a small reader for the answers.

use serde_json::{Value, json};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use crate::support::Host;

pub fn addr(host: &Host) -> String {
    host.url.trim_start_matches("http://").to_string()
}

/// A raw connection that has sent `head` (and whatever part of a body follows it).
pub fn open(host: &Host, head: &str) -> TcpStream {
    let mut s = TcpStream::connect(addr(host)).unwrap();
    s.write_all(head.as_bytes()).unwrap();
    s
}

/// A POST whose headers promise `len` body bytes, of which `sent` are sent now.
pub fn post_head(path: &str, len: usize, sent: &str) -> String {
    format!("POST {path} HTTP/1.1\r\nHost: test\r\nContent-Length: {len}\r\n\r\n{sent}")
}

/// An HTTP answer read off a raw connection.
#[derive(Debug)]
pub struct Raw {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Raw {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("{e}: {self:?}"))
    }
}

/// Reads one answer (headers plus a `Content-Length` body); `None` if the server closed the
/// connection without answering. Panics if nothing happens within `within` (liveness bound).
pub fn read_answer(s: &mut TcpStream, within: Duration) -> Option<Raw> {
    s.set_read_timeout(Some(within)).unwrap();
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end]).to_string();
            let mut lines = head.split("\r\n");
            let status = lines.next().unwrap().split(' ').nth(1).unwrap();
            let headers: Vec<(String, String)> = lines
                .filter_map(|l| l.split_once(':'))
                .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
                .collect();
            let chunked = headers.iter().any(|(k, v)| {
                k.eq_ignore_ascii_case("transfer-encoding") && v.eq_ignore_ascii_case("chunked")
            });
            let rest = &buf[end + 4..];
            let body = if chunked {
                decode_chunked(rest)
            } else {
                let len: usize = headers
                    .iter()
                    .find(|(k, _)| k.eq_ignore_ascii_case("content-length"))
                    .map(|(_, v)| v.parse().unwrap())
                    .unwrap_or(0);
                (rest.len() >= len).then(|| rest[..len].to_vec())
            };
            if let Some(body) = body {
                return Some(Raw {
                    status: status.parse().unwrap(),
                    headers,
                    body: String::from_utf8_lossy(&body).to_string(),
                });
            }
        }
        match s.read(&mut chunk) {
            Ok(0) => return None,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return None,
            Err(e) => panic!("no answer and no close within {within:?}: {e}"),
        }
    }
}

/// The body of a complete chunked encoding, or `None` while the last chunk has not arrived.
fn decode_chunked(mut data: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    loop {
        let line_end = data.windows(2).position(|w| w == b"\r\n")?;
        let size_text = String::from_utf8_lossy(&data[..line_end]).to_string();
        let size = usize::from_str_radix(size_text.split(';').next()?.trim(), 16).ok()?;
        data = &data[line_end + 2..];
        if size == 0 {
            return data.starts_with(b"\r\n").then_some(out);
        }
        if data.len() < size + 2 {
            return None;
        }
        out.extend_from_slice(&data[..size]);
        data = &data[size + 2..];
    }
}

pub fn assert_json_error(raw: &Raw, status: u16, code: &str) {
    assert_eq!(raw.status, status, "{raw:?}");
    assert_eq!(
        raw.header("content-type"),
        Some("application/json"),
        "{raw:?}"
    );
    let body = raw.json();
    assert_eq!(body["error"], code, "{body}");
    assert!(body["message"].as_str().is_some_and(|m| !m.is_empty()));
    assert_eq!(body["details"], json!([]), "{body}");
}

/// Sends one byte every `every` on a clone of `s` until the server stops taking them.
pub fn dribble(s: &TcpStream, every: Duration) -> Arc<AtomicBool> {
    let stop = Arc::new(AtomicBool::new(false));
    let (mut w, flag) = (s.try_clone().unwrap(), stop.clone());
    std::thread::spawn(move || {
        while !flag.load(Ordering::Relaxed) && w.write_all(b"a").is_ok() {
            std::thread::sleep(every);
        }
    });
    stop
}
