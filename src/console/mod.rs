//! `GET /`: the web console for browsers, a JSON summary for every other client.
//!
//! Content negotiation: a request whose `Accept` prefers `text/html` (what browsers send) gets
//! the console page; anything else (curl's `*/*`, clients of the predecessors, no header) keeps
//! getting `{"service":"Log Aggregator","status":"running",…}`.
//!
//! The page is one self-contained document: `index.html` with `console.css` and `console.js` +
//! `explore.js` inlined at their markers, all embedded in the `.wasm`, so it needs no CDN, no extra route and
//! no file mount, and works under any base path (the script calls the API by relative URLs).
//! Because the script is inline, the Content-Security-Policy allows exactly that script and
//! that style by their SHA-256 hashes and nothing else: no other script can run even if an
//! event payload were ever rendered unsafely.

use serde::Serialize;
use sha2::{Digest, Sha256};
use spin_sdk::http::Response;

use crate::http;

const INDEX: &str = include_str!("index.html");
const CSS: &str = include_str!("console.css");
/// The page's one script: the console, then exploring events (search, volume, tail, detail).
const JS: &str = concat!(include_str!("console.js"), include_str!("explore.js"));

#[derive(Serialize)]
struct Summary {
    service: &'static str,
    status: &'static str,
    version: &'static str,
    docs: &'static str,
}

/// Serves the console page to browsers and the summary JSON to everyone else.
pub fn serve(headers: &http::Headers) -> Response {
    if prefers_html(headers.get("accept").as_deref().unwrap_or("")) {
        return page();
    }
    let mut response = http::json(
        200,
        &Summary {
            service: "Log Aggregator",
            status: "running",
            version: env!("CARGO_PKG_VERSION"),
            docs: "/openapi.json",
        },
    );
    response.set_header("vary", "accept");
    response
}

/// The console page with its hash-pinned security policy.
fn page() -> Response {
    let policy = format!(
        "default-src 'none'; connect-src 'self'; img-src 'self' data:; \
         script-src 'sha256-{}'; style-src 'sha256-{}'; \
         base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
        sha256_base64(JS),
        sha256_base64(CSS)
    );
    Response::builder()
        .status(200)
        .header("content-type", "text/html; charset=utf-8")
        .header("content-security-policy", policy)
        .header("x-content-type-options", "nosniff")
        .header("referrer-policy", "no-referrer")
        .header("cache-control", "no-cache")
        .header("vary", "accept")
        .body(html())
        .build()
}

/// The document: `index.html` with the stylesheet and script inlined at their markers.
fn html() -> String {
    INDEX
        .replacen("<!--console.css-->", &format!("<style>{CSS}</style>"), 1)
        .replacen("<!--console.js-->", &format!("<script>{JS}</script>"), 1)
}

/// True when `text/html` is acceptable and at least as wanted as JSON (RFC 9110 q-values;
/// `*/*` alone means "anything", which keeps API clients on JSON).
fn prefers_html(accept: &str) -> bool {
    let (mut html, mut json) = (0.0f32, 0.0f32);
    for range in accept.split(',') {
        let mut parts = range.split(';');
        let media = parts.next().unwrap_or("").trim().to_ascii_lowercase();
        let q = parts
            .filter_map(|p| p.trim().strip_prefix("q="))
            .find_map(|v| v.trim().parse::<f32>().ok())
            .unwrap_or(1.0);
        match media.as_str() {
            "text/html" => html = html.max(q),
            "application/json" | "application/*" => json = json.max(q),
            _ => {}
        }
    }
    html > 0.0 && html >= json
}

/// Standard base64 of a SHA-256 digest, the form CSP hash sources take.
fn sha256_base64(text: &str) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let digest = Sha256::digest(text.as_bytes());
    let mut out = String::with_capacity(44);
    for chunk in digest.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[(n >> (18 - 6 * i)) as usize & 63] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn negotiation() {
        let chrome = "text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,*/*;q=0.8";
        assert!(prefers_html(chrome));
        assert!(prefers_html("text/html"));
        for json in [
            "",
            "*/*",
            "application/json",
            "application/json, text/html;q=0.5",
            "text/html;q=0",
            "text/plain",
        ] {
            assert!(!prefers_html(json), "{json}");
        }
    }

    #[test]
    fn page_inlines_assets_once() {
        let page = html();
        assert!(!page.contains("<!--console."));
        assert_eq!(page.matches("<script>").count(), 1);
        assert_eq!(page.matches("<style>").count(), 1);
        assert!(page.contains(JS) && page.contains(CSS));
        // Inlined text must not close its own element early.
        assert!(!JS.contains("</script") && !CSS.contains("</style"));
    }

    #[test]
    fn csp_hash_encoding() {
        // `printf '' | openssl dgst -sha256 -binary | base64`
        assert_eq!(
            sha256_base64(""),
            "47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU="
        );
        // `printf 'abc' | openssl dgst -sha256 -binary | base64`
        assert_eq!(
            sha256_base64("abc"),
            "ungWv48Bz+pBQUDeXa4iI7ADYaOWF3qctBD/YfIAFa0="
        );
    }
}
