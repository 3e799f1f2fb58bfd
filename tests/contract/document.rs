//! The contract document, `docs/openapi.json`: its operations, documented responses (with
//! `$ref`s resolved) and JSON Schema validation of live answers against them (`jsonschema`).

use std::collections::{BTreeSet, HashMap};

use serde_json::{Value, json};

use crate::support::root;
use crate::wire::Answer;

/// `docs/openapi.json`, parsed, with compiled response schemas.
pub struct Contract {
    /// The parsed document.
    pub doc: Value,
    /// Compiled schemas by JSON pointer, so each is compiled once per test.
    pub validators: std::sync::Mutex<HashMap<String, std::sync::Arc<jsonschema::Validator>>>,
}

/// One documented response, `$ref` resolved.
pub struct Documented {
    /// Where the response lives in the document (the base for its schemas).
    pub pointer: String,
    /// The response object itself.
    pub response: Value,
}

impl Contract {
    /// Reads the file from the repository, so the test checks what is committed.
    pub fn load() -> Contract {
        let text = std::fs::read_to_string(root().join("docs/openapi.json")).unwrap();
        Contract {
            doc: serde_json::from_str(&text).expect("docs/openapi.json is JSON"),
            validators: Default::default(),
        }
    }

    /// The `paths` object: the document's route table.
    pub fn paths(&self) -> &serde_json::Map<String, Value> {
        self.doc["paths"].as_object().expect("paths")
    }

    /// The documented methods of a path template, upper case.
    pub fn methods(&self, template: &str) -> BTreeSet<String> {
        self.paths()[template]
            .as_object()
            .unwrap()
            .keys()
            .filter(|k| !matches!(k.as_str(), "parameters" | "summary" | "description"))
            .map(|k| k.to_ascii_uppercase())
            .collect()
    }

    /// Every `(path template, METHOD)` of the document.
    pub fn operations(&self) -> BTreeSet<(String, String)> {
        self.paths()
            .keys()
            .flat_map(|p| self.methods(p).into_iter().map(move |m| (p.clone(), m)))
            .collect()
    }

    /// The template a concrete path matches (`{id}` matches one non-empty segment).
    pub fn template_of(&self, path: &str) -> Option<String> {
        self.paths()
            .keys()
            .find(|t| {
                let (ts, ps): (Vec<&str>, Vec<&str>) =
                    (t.split('/').collect(), path.split('/').collect());
                ts.len() == ps.len()
                    && ts.iter().zip(&ps).all(|(t, p)| {
                        if t.starts_with('{') {
                            !p.is_empty()
                        } else {
                            t == p
                        }
                    })
            })
            .cloned()
    }

    /// The document a service with tokens for exactly the `configured` security schemes serves:
    /// an operation keeps its requirements only if its own group (its first scheme) has tokens,
    /// and then only the requirements whose schemes have tokens; otherwise `"security": []`.
    pub fn served(&self, configured: &[&str]) -> Value {
        let mut doc = self.doc.clone();
        for item in doc["paths"].as_object_mut().unwrap().values_mut() {
            for op in item.as_object_mut().unwrap().values_mut() {
                let Some(requirements) = op.get_mut("security").and_then(Value::as_array_mut)
                else {
                    continue;
                };
                let has_tokens = |r: &Value| {
                    r.as_object()
                        .unwrap()
                        .keys()
                        .all(|scheme| configured.contains(&scheme.as_str()))
                };
                if requirements.first().is_some_and(|own| !has_tokens(own)) {
                    requirements.clear();
                }
                requirements.retain(has_tokens);
            }
        }
        doc
    }

    /// A JSON pointer segment.
    pub fn escape(s: &str) -> String {
        s.replace('~', "~0").replace('/', "~1")
    }

    /// Follows a `$ref` (transitively), returning the target and its pointer.
    pub fn resolve(&self, value: &Value, pointer: String) -> (Value, String) {
        match value.get("$ref").and_then(Value::as_str) {
            Some(r) => {
                let p = r.trim_start_matches('#').to_owned();
                let target = self
                    .doc
                    .pointer(&p)
                    .unwrap_or_else(|| panic!("dangling $ref {r}"));
                self.resolve(target, p)
            }
            None => (value.clone(), pointer),
        }
    }

    /// `name=value` for every value of every enumerated query parameter of an operation.
    pub fn enum_queries(&self, template: &str, method: &str) -> Vec<String> {
        let op = &self.paths()[template][method.to_ascii_lowercase()];
        let mut out = Vec::new();
        for p in op["parameters"].as_array().into_iter().flatten() {
            let (p, _) = self.resolve(p, String::new());
            if p["in"] != "query" {
                continue;
            }
            for v in p["schema"]["enum"].as_array().into_iter().flatten() {
                if let (Some(name), Some(v)) = (p["name"].as_str(), v.as_str()) {
                    out.push(format!("{name}={v}"));
                }
            }
        }
        out
    }

    /// The documented statuses of an operation.
    pub fn statuses(&self, template: &str, method: &str) -> BTreeSet<u16> {
        self.paths()[template][method.to_ascii_lowercase()]["responses"]
            .as_object()
            .unwrap()
            .keys()
            .map(|s| s.parse().expect("numeric status"))
            .collect()
    }

    /// The response documented for `status`, or `None` if the status is undocumented.
    pub fn response(&self, template: &str, method: &str, status: u16) -> Option<Documented> {
        let m = method.to_ascii_lowercase();
        let raw = self.paths()[template][&m]["responses"].get(status.to_string())?;
        let pointer = format!(
            "/paths/{}/{m}/responses/{status}",
            Contract::escape(template)
        );
        let (response, pointer) = self.resolve(raw, pointer);
        Some(Documented { pointer, response })
    }

    /// A response from `components.responses` (for 404 on unknown paths, 405 on wrong methods).
    pub fn component_response(&self, name: &str) -> Documented {
        let pointer = format!("/components/responses/{name}");
        Documented {
            response: self.doc.pointer(&pointer).unwrap().clone(),
            pointer,
        }
    }

    /// A validator for the schema at `pointer` (resolving `$ref`s against the whole document).
    pub fn validator(&self, pointer: &str) -> std::sync::Arc<jsonschema::Validator> {
        let mut cache = self.validators.lock().unwrap();
        cache
            .entry(pointer.to_owned())
            .or_insert_with(|| {
                let mut root = self.doc.clone();
                root.as_object_mut()
                    .unwrap()
                    .insert("$ref".into(), json!(format!("#{}", uri_fragment(pointer))));
                let v = jsonschema::options()
                    .with_draft(jsonschema::Draft::Draft202012)
                    .should_validate_formats(true)
                    .build(&root)
                    .unwrap_or_else(|e| panic!("schema at {pointer} does not compile: {e}"));
                std::sync::Arc::new(v)
            })
            .clone()
    }

    /// Validates an answer against a documented response: content type, body schema, headers.
    pub fn check(&self, doc: &Documented, method: &str, answer: &Answer) -> Result<(), String> {
        let mut problems = Vec::new();
        if let Some(headers) = doc.response.get("headers").and_then(Value::as_object) {
            for (name, h) in headers {
                let (h, hp) = self.resolve(
                    h,
                    format!("{}/headers/{}", doc.pointer, Contract::escape(name)),
                );
                match answer.header(name) {
                    None if h["required"] == json!(true) => {
                        problems.push(format!("required header {name} missing"))
                    }
                    None => {}
                    Some(value) => {
                        let v = if h["schema"]["type"] == json!("integer") {
                            value
                                .parse::<i64>()
                                .map(Value::from)
                                .unwrap_or(json!(value))
                        } else {
                            json!(value)
                        };
                        let validator = self.validator(&format!("{hp}/schema"));
                        for e in validator.iter_errors(&v) {
                            problems.push(format!("header {name}: {value:?}: {e}"));
                        }
                    }
                }
            }
        }
        let content = doc.response.get("content").and_then(Value::as_object);
        if method == "HEAD" || answer.status == 204 {
            if !answer.body.is_empty() {
                problems.push(format!("{} answer has a body", answer.status));
            }
        } else if let Some(content) = content {
            let media = answer.media_type();
            match content.get(&media) {
                None => problems.push(format!(
                    "content type {media:?} is not documented (documented: {:?})",
                    content.keys().collect::<Vec<_>>()
                )),
                Some(_) => {
                    let instance = if media == "application/json" {
                        serde_json::from_slice(&answer.body)
                            .map_err(|e| format!("body is not JSON: {e}"))?
                    } else {
                        Value::String(String::from_utf8_lossy(&answer.body).into_owned())
                    };
                    let pointer = format!(
                        "{}/content/{}/schema",
                        doc.pointer,
                        Contract::escape(&media)
                    );
                    for e in self.validator(&pointer).iter_errors(&instance) {
                        problems.push(format!("body: {e} at {}", e.instance_path()));
                    }
                }
            }
        } else if !answer.body.is_empty() {
            problems.push("a body where the document has none".into());
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(problems.join("; "))
        }
    }
}

/// A JSON pointer as a URI fragment (`{id}` has characters a URI may not carry as they are).
pub fn uri_fragment(pointer: &str) -> String {
    pointer.replace('{', "%7B").replace('}', "%7D")
}
