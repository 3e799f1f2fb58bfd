//! Routes: the paths of `Route::of` in `src/lib.rs` are the document's, on each path the methods
//! the live service accepts (its `Allow` on a 405) are the document's, near-misses of every path
//! are 404s, and the open service serves the document as the file.

use std::collections::BTreeSet;

use crate::METHODS;
use crate::document::Contract;
use crate::hosts::{Backend, concrete, start};
use crate::support::{HostConfig, root};
use crate::wire::Req;

/// The paths of `Route::of` in `src/lib.rs`, as concrete paths (`{id}` segments filled with `x`).
fn source_paths() -> BTreeSet<String> {
    let src = std::fs::read_to_string(root().join("src/lib.rs")).unwrap();
    let start = src.find("pub fn of(").expect("src/lib.rs has Route::of");
    let body = &src[start..];
    let body = &body[..body.find("\n    }\n").expect("end of Route::of")];
    let literals = |marker: &str| -> Vec<String> {
        body.match_indices(marker)
            .filter_map(|(at, _)| {
                let rest = &body[at + marker.len()..];
                rest.split('"').next().map(str::to_owned)
            })
            .collect()
    };
    let mut paths: BTreeSet<String> = body
        .lines()
        .filter(|l| l.contains("=> Some(Route::"))
        .filter_map(|l| {
            l.trim()
                .strip_prefix('"')?
                .split('"')
                .next()
                .map(str::to_owned)
        })
        .collect();
    for prefix in literals("strip_prefix(\"") {
        paths.insert(format!("{prefix}x"));
        for suffix in literals("strip_suffix(\"") {
            paths.insert(format!("{prefix}x{suffix}"));
        }
    }
    assert!(
        paths.len() >= 5,
        "could not read the routes of src/lib.rs: {paths:?}"
    );
    paths
}

/// Route for route: the source's paths are the document's, and on each the methods the service
/// accepts (its `Allow` on a 405) are the document's methods (plus OPTIONS, the preflight).
#[test]
fn routes_and_methods_match_the_document() {
    let contract = Contract::load();
    let app = start(Backend::Sqlite, HostConfig::default());
    let host = &app.host;
    let source = source_paths();
    let documented: BTreeSet<String> = contract.paths().keys().map(|t| concrete(t, "x")).collect();
    assert_eq!(
        source, documented,
        "paths of src/lib.rs Route::of (left) differ from docs/openapi.json (right)"
    );
    let mut failures = Vec::new();
    for template in contract.paths().keys() {
        let path = concrete(template, "x");
        // PATCH is no route's method: the 405's Allow lists what the path accepts.
        let answer = Req::new("PATCH", &path).send(host);
        if answer.status != 405 {
            failures.push(format!(
                "PATCH {path}: {} (expected 405: does the route exist?)",
                answer.status
            ));
            continue;
        }
        let allow: BTreeSet<String> = answer
            .header("allow")
            .unwrap_or_default()
            .split(',')
            .map(|m| m.trim().to_owned())
            .filter(|m| !m.is_empty())
            .chain(["OPTIONS".to_owned()])
            .collect();
        if allow != contract.methods(template) {
            failures.push(format!(
                "{template}: the service accepts {allow:?}, the document has {:?}",
                contract.methods(template)
            ));
        }
        // And every method it does not accept is refused (nothing served beyond Allow).
        for method in METHODS {
            let answer = Req::new(method, &path).send(host);
            let accepted = answer.status != 405;
            if accepted != allow.contains(method) {
                failures.push(format!(
                    "{method} {path}: {} but Allow is {allow:?}",
                    answer.status
                ));
            }
        }
        let preflight = Req::new("OPTIONS", &path).send(host);
        if preflight.status != 204 {
            failures.push(format!("OPTIONS {path}: {}", preflight.status));
        }
    }
    // Near-misses of every path are not routes.
    for template in contract.paths().keys() {
        let path = concrete(template, "x");
        // (Not `{path}/`: edge-host's router ignores one trailing slash.)
        for near in [
            format!("{path}x"),
            format!("{path}/extra"),
            path.to_ascii_uppercase(),
        ] {
            if near == "/" || documented.contains(&near) {
                continue;
            }
            let answer = Req::new("GET", &near).send(host);
            if answer.status != 404 {
                failures.push(format!("GET {near}: {} (expected 404)", answer.status));
            }
        }
    }
    // The document the service serves is the file, with no security on this open host (see
    // `security.rs` for hosts with tokens).
    let served = Req::new("GET", "/openapi.json").send(host);
    assert_eq!(served.status, 200);
    assert_eq!(
        served.json(),
        contract.served(&[]),
        "/openapi.json differs from docs/openapi.json without its security requirements"
    );
    assert!(
        failures.is_empty(),
        "route table vs document:\n{}",
        failures.join("\n")
    );
}
