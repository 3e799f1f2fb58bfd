//! The wire: requests of the probe matrix, fully read answers, and a raw-socket request whose
//! body stalls (for edge-host's 408).

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use serde_json::Value;

use crate::support::Host;

/// One answer, fully read.
pub struct Answer {
    /// HTTP status.
    pub status: u16,
    /// Response headers, names lower case.
    pub headers: Vec<(String, String)>,
    /// The body, empty for HEAD and 204.
    pub body: Vec<u8>,
}

impl Answer {
    /// First value of a header, case-insensitively.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The `Content-Type` without parameters, lower case.
    pub fn media_type(&self) -> String {
        self.header("content-type")
            .unwrap_or("")
            .split(';')
            .next()
            .unwrap()
            .trim()
            .to_ascii_lowercase()
    }

    /// The body as JSON (`null` if it is not).
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or(Value::Null)
    }
}

/// A request of the probe matrix.
#[derive(Clone, Default)]
pub struct Req {
    /// HTTP method.
    pub method: &'static str,
    /// Path and query.
    pub path: String,
    /// Request headers.
    pub headers: Vec<(String, String)>,
    /// Request body, if any.
    pub body: Option<Vec<u8>>,
}

impl Req {
    /// A request without headers or body.
    pub fn new(method: &'static str, path: impl Into<String>) -> Req {
        Req {
            method,
            path: path.into(),
            ..Req::default()
        }
    }

    /// Adds a header.
    pub fn header(mut self, k: &str, v: &str) -> Req {
        self.headers.push((k.into(), v.into()));
        self
    }

    /// Adds `Authorization: Bearer <token>`.
    pub fn token(self, token: &str) -> Req {
        self.header("authorization", &format!("Bearer {token}"))
    }

    /// A JSON body with its content type.
    pub fn json(self, body: &Value) -> Req {
        self.raw("application/json", body.to_string().into_bytes())
    }

    /// Any body with any content type (for 400 and 415 probes).
    pub fn raw(mut self, content_type: &str, body: Vec<u8>) -> Req {
        self.headers
            .push(("content-type".into(), content_type.into()));
        self.body = Some(body);
        self
    }

    /// Sends it (no redirects) and reads the whole answer.
    pub fn send(&self, host: &Host) -> Answer {
        let client = reqwest::blocking::Client::builder()
            .timeout(Duration::from_secs(120))
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap();
        let method = reqwest::Method::from_bytes(self.method.as_bytes()).unwrap();
        let mut rb = client.request(method, host.at(&self.path));
        for (k, v) in &self.headers {
            rb = rb.header(k, v);
        }
        if let Some(b) = &self.body {
            rb = rb.body(b.clone());
        }
        let resp = rb
            .send()
            .unwrap_or_else(|e| panic!("{} {}: {e}", self.method, self.path));
        let status = resp.status().as_u16();
        let headers = resp
            .headers()
            .iter()
            .map(|(k, v)| {
                (
                    k.to_string(),
                    String::from_utf8_lossy(v.as_bytes()).into_owned(),
                )
            })
            .collect();
        Answer {
            status,
            headers,
            body: resp.bytes().map(|b| b.to_vec()).unwrap_or_default(),
        }
    }
}

/// A body that stops after a few bytes: edge-host must answer 408 after its idle timeout.
pub fn stalled_body(host: &Host, method: &str, path: &str) -> Answer {
    let addr = host.url.trim_start_matches("http://").to_owned();
    let mut s = TcpStream::connect(&addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n[{{\"topic\":"
    )
    .unwrap();
    s.flush().unwrap();
    let mut raw = Vec::new();
    let _ = s.read_to_end(&mut raw);
    parse_raw_response(&raw)
}

/// Parses an HTTP/1.1 answer read from a raw socket.
pub fn parse_raw_response(raw: &[u8]) -> Answer {
    let text = String::from_utf8_lossy(raw);
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    let chunked = headers
        .iter()
        .any(|(k, v)| k == "transfer-encoding" && v.contains("chunked"));
    let body = if chunked {
        dechunk(body)
    } else {
        body.to_owned()
    };
    Answer {
        status,
        headers,
        body: body.into_bytes(),
    }
}

/// Decodes a chunked body.
pub fn dechunk(mut s: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = s.split_once("\r\n") {
        let n = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
        if n == 0 || rest.len() < n {
            break;
        }
        out.push_str(&rest[..n]);
        s = rest[n..].trim_start_matches("\r\n");
    }
    out
}
