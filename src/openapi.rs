//! `GET /openapi.json`: the API contract, `docs/openapi.json` embedded in the component, with its
//! security requirements fitted to the tokens configured now.
//!
//! The file declares on every protected operation the bearer schemes that may call it, its own
//! group's scheme first (`publishToken`, `readToken` or `adminToken`; read operations also list
//! `adminToken`, since admin tokens are accepted there). A group whose token variable is empty is
//! open (see `auth`), so the served document keeps an operation's requirements only when its own
//! group has tokens, and of those only the schemes that have tokens; an open operation says
//! `"security": []` (OpenAPI's "no authentication"). With no tokens set (the default) the document
//! therefore declares no security at all, and a client generated from it sends none.
//!
//! Only the `security` arrays are parsed and rewritten; the rest of the document is copied as
//! text, and each group's variable is read at most once per request.

use std::collections::BTreeMap;

use spin_sdk::http::Response;

use crate::Group;
use crate::auth;

/// The contract document, compiled in so it always matches this build; gzip-compressed by
/// `build.rs`, because static data enlarges the memory image every instance starts from.
const DOCUMENT_GZ: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/openapi.json.gz"));

/// The contract document as `docs/openapi.json` spells it.
fn document_text() -> String {
    let mut text = String::new();
    std::io::Read::read_to_string(&mut flate2::read::GzDecoder::new(DOCUMENT_GZ), &mut text)
        .expect("build.rs embeds docs/openapi.json gzip-compressed");
    text
}

/// The key of an operation's security requirements, as the file spells it.
const KEY: &str = "\"security\":";

/// One security requirement object: scheme name → scopes (always empty for bearer schemes).
type Requirement = BTreeMap<String, Vec<String>>;

/// Serves the document for the tokens configured now.
pub fn serve() -> Response {
    let mut known: [Option<bool>; 3] = [None; 3];
    let body = render(&document_text(), |group| {
        let slot = match group {
            Group::Publish => 0,
            Group::Read => 1,
            Group::Admin => 2,
            Group::Open => return false,
        };
        *known[slot].get_or_insert_with(|| auth::is_protected(group))
    });
    Response::builder()
        .status(200)
        .header("content-type", "application/json")
        .body(body)
        .build()
}

/// The group whose tokens a security scheme of the document stands for.
fn scheme_group(scheme: &str) -> Option<Group> {
    match scheme {
        "publishToken" => Some(Group::Publish),
        "readToken" => Some(Group::Read),
        "adminToken" => Some(Group::Admin),
        _ => None,
    }
}

/// Rewrites every `security` array of `doc` for the groups that `protected` says have tokens.
fn render(doc: &str, mut protected: impl FnMut(Group) -> bool) -> String {
    let mut out = String::with_capacity(doc.len());
    let mut rest = doc;
    while let Some(at) = rest.find(KEY) {
        let (head, tail) = rest.split_at(at + KEY.len());
        out.push_str(head);
        rest = tail;
        // `\"security\":` inside a description is text, not a key.
        if head[..at].ends_with('\\') {
            continue;
        }
        let mut values = serde_json::Deserializer::from_str(tail).into_iter::<Vec<Requirement>>();
        // Anything that is not a list of requirement objects is not an operation's: copied as is.
        let Some(Ok(requirements)) = values.next() else {
            continue;
        };
        let kept = fit(requirements, &mut protected);
        out.push(' ');
        out.push_str(&serde_json::to_string(&kept).expect("requirements serialize"));
        rest = &tail[values.byte_offset()..];
    }
    out.push_str(rest);
    out
}

/// One operation's requirements: none if its own group (the first scheme's) is open, else those
/// whose every scheme has tokens. A scheme the component does not know is kept.
fn fit(
    requirements: Vec<Requirement>,
    protected: &mut impl FnMut(Group) -> bool,
) -> Vec<Requirement> {
    let own = requirements
        .first()
        .and_then(|r| r.keys().next())
        .and_then(|scheme| scheme_group(scheme));
    if own.is_some_and(|group| !protected(group)) {
        return Vec::new();
    }
    requirements
        .into_iter()
        .filter(|r| {
            r.keys()
                .all(|scheme| scheme_group(scheme).is_none_or(&mut *protected))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};
    use spin_sdk::http::Method;

    use super::*;
    use crate::Route;

    fn document() -> Value {
        serde_json::from_str(&document_text()).unwrap()
    }

    /// Every operation of a parsed document: `(path, method, operation)`, OPTIONS excluded (the
    /// CORS preflight, never authenticated).
    fn operations(doc: &Value) -> Vec<(String, Method, Value)> {
        let mut out = Vec::new();
        for (path, item) in doc["paths"].as_object().unwrap() {
            for (name, op) in item.as_object().unwrap() {
                let method = match name.as_str() {
                    "get" => Method::Get,
                    "head" => Method::Head,
                    "post" => Method::Post,
                    "delete" => Method::Delete,
                    "options" | "parameters" | "summary" | "description" => continue,
                    other => panic!("{path}: unexpected key {other}"),
                };
                out.push((path.clone(), method, op.clone()));
            }
        }
        out
    }

    fn group_of(path: &str, method: &Method) -> Group {
        let (route, _) = Route::of(path).unwrap_or_else(|| panic!("{path} is no route"));
        route.group(method)
    }

    fn scheme(group: Group) -> &'static str {
        match group {
            Group::Publish => "publishToken",
            Group::Read => "readToken",
            Group::Admin => "adminToken",
            Group::Open => unreachable!(),
        }
    }

    /// The file's security matches the route table: open routes declare none (`[]`), the others
    /// their own group's scheme first (which `fit` relies on), read routes the admin scheme too.
    #[test]
    fn the_file_declares_each_routes_group() {
        let doc = document();
        for (path, method, op) in operations(&doc) {
            let group = group_of(&path, &method);
            let want = match group {
                Group::Open => json!([]),
                Group::Read => json!([{"readToken": []}, {"adminToken": []}]),
                g => json!([{ scheme(g): [] }]),
            };
            assert_eq!(op["security"], want, "{method} {path}");
        }
    }

    /// For each combination of configured groups, the served document is the file with each
    /// operation's security derived from the route table, and nothing else changed.
    #[test]
    fn served_security_follows_the_configured_groups() {
        let file = document();
        for bits in 0..8u8 {
            let on = |g: Group| match g {
                Group::Publish => bits & 1 != 0,
                Group::Read => bits & 2 != 0,
                Group::Admin => bits & 4 != 0,
                Group::Open => false,
            };
            let mut reads = Vec::new();
            let served: Value = serde_json::from_str(&render(&document_text(), |g| {
                reads.push(g);
                on(g)
            }))
            .unwrap();
            let mut expected = file.clone();
            for (path, method, _) in operations(&file) {
                let group = group_of(&path, &method);
                if group == Group::Open {
                    continue;
                }
                let mut want = Vec::new();
                if on(group) {
                    want.push(json!({ scheme(group): [] }));
                    if group == Group::Read && on(Group::Admin) {
                        want.push(json!({"adminToken": []}));
                    }
                }
                let name = method.to_string().to_ascii_lowercase();
                expected["paths"][&path][&name]["security"] = Value::Array(want);
            }
            assert_eq!(
                served, expected,
                "publish/read/admin configured: {bits:03b}"
            );
            assert!(!reads.contains(&Group::Open));
        }
        // Everything protected: the file as it is.
        let all: Value = serde_json::from_str(&render(&document_text(), |_| true)).unwrap();
        assert_eq!(all, file);
    }

    #[test]
    fn only_keys_are_rewritten() {
        let doc = r#"{"description": "say \"security\": [{\"readToken\": []}]", "security": [{"readToken": []}, {"adminToken": []}], "x": {"security": {"type": "object"}}}"#;
        let served = render(doc, |g| g == Group::Admin);
        let served: Value = serde_json::from_str(&served).unwrap();
        assert_eq!(
            served,
            json!({"description": "say \"security\": [{\"readToken\": []}]", "security": [],
                   "x": {"security": {"type": "object"}}})
        );
        let served: Value = serde_json::from_str(&render(doc, |g| g == Group::Read)).unwrap();
        assert_eq!(served["security"], json!([{"readToken": []}]));
    }
}
