//! The probe matrix's bookkeeping: every answer checked against the document, every
//! `(operation, status)` seen, and the few documented statuses no probe can provoke.

use std::collections::BTreeSet;

use crate::document::Contract;
use crate::support::Host;
use crate::wire::{Answer, Req};

/// The probe matrix's bookkeeping: what was seen, and what disagreed with the document.
pub struct Probe<'a> {
    /// The document answers are checked against.
    pub contract: &'a Contract,
    /// Every `(path template, METHOD, status)` answered so far.
    pub seen: BTreeSet<(String, String, u16)>,
    /// Every disagreement, reported together at the end.
    pub failures: Vec<String>,
}

impl<'a> Probe<'a> {
    /// An empty matrix over `contract`.
    pub fn new(contract: &'a Contract) -> Probe<'a> {
        Probe {
            contract,
            seen: BTreeSet::new(),
            failures: Vec::new(),
        }
    }

    /// Sends a request to a documented operation and checks the answer against the document.
    pub fn send(&mut self, host: &Host, req: Req) -> Answer {
        let answer = req.send(host);
        self.record(&req, &answer);
        answer
    }

    /// Sends `req` and, for a GET, the same request as HEAD.
    pub fn get(&mut self, host: &Host, req: Req) -> Answer {
        let mut head = req.clone();
        head.method = "HEAD";
        let head_answer = self.send(host, head);
        let answer = self.send(host, req.clone());
        if head_answer.status != answer.status {
            self.failures.push(format!(
                "HEAD {} answered {} but GET {}",
                req.path, head_answer.status, answer.status
            ));
        }
        answer
    }

    /// Checks one answer against the document and notes its status as seen.
    pub fn record(&mut self, req: &Req, answer: &Answer) {
        // edge-host's router ignores one trailing slash (`/stats/` is `/stats`).
        let raw = req.path.split('?').next().unwrap();
        let path = match raw.strip_suffix('/') {
            Some(p) if !p.is_empty() => p,
            _ => raw,
        };
        let what = format!("{} {} -> {}", req.method, req.path, answer.status);
        let Some(template) = self.contract.template_of(path) else {
            // Not a documented path: must be the generic 404.
            let doc = self.contract.component_response("NotFound");
            if answer.status != 404 {
                self.failures
                    .push(format!("{what}: an undocumented path must be 404"));
            } else if let Err(e) = self.contract.check(&doc, req.method, answer) {
                self.failures.push(format!("{what}: {e}"));
            }
            return;
        };
        let documented = self.contract.methods(&template);
        if !documented.contains(req.method) {
            // A method the path does not document: 405 with Allow naming exactly the others.
            let doc = self.contract.component_response("MethodNotAllowed");
            if answer.status != 405 {
                self.failures
                    .push(format!("{what}: an undocumented method must be 405"));
                return;
            }
            if let Err(e) = self.contract.check(&doc, req.method, answer) {
                self.failures.push(format!("{what}: {e}"));
            }
            let allow: BTreeSet<String> = answer
                .header("allow")
                .unwrap_or("")
                .split(',')
                .map(|m| m.trim().to_ascii_uppercase())
                .filter(|m| !m.is_empty())
                .chain(["OPTIONS".to_owned()])
                .collect();
            if allow != documented {
                self.failures.push(format!(
                    "{what}: Allow + OPTIONS = {allow:?}, the document has {documented:?}"
                ));
            }
            return;
        }
        self.seen
            .insert((template.clone(), req.method.to_owned(), answer.status));
        match self.contract.response(&template, req.method, answer.status) {
            None => self.failures.push(format!(
                "{what}: status {} is not documented for {} {template} (body {})",
                answer.status,
                req.method,
                String::from_utf8_lossy(&answer.body)
            )),
            Some(doc) => {
                if let Err(e) = self.contract.check(&doc, req.method, answer) {
                    self.failures.push(format!(
                        "{what}: {e} (body {})",
                        String::from_utf8_lossy(&answer.body)
                    ));
                }
            }
        }
    }

    /// Records an answer obtained outside `send` (the raw-socket slow-body probe).
    pub fn record_raw(&mut self, method: &'static str, path: &str, answer: &Answer) {
        self.record(&Req::new(method, path), answer);
    }
}

/// Documented statuses the matrix cannot provoke, with why: only edge-host's own failures give
/// them there. Everything else that is documented must be seen.
pub fn unprobed(template: &str, method: &str, status: u16) -> Option<&'static str> {
    let publish = method == "POST" && template.starts_with("/publish");
    // Every ingest route: the native ones and the foreign protocols (OTLP, Loki push).
    let ingest =
        publish || (method == "POST" && matches!(template, "/v1/logs" | "/loki/api/v1/push"));
    let uses_config = !matches!(template, "/" | "/openapi.json") && method != "OPTIONS";
    let slow_body_probed =
        (template == "/publish" && method == "POST") || (template == "/events" && method == "GET");
    match status {
        400 if !publish => Some("edge-host answers 400 only when a body breaks off mid-way"),
        408 if !slow_body_probed => {
            Some("edge-host's slow-body 408 is probed on POST /publish and GET /events")
        }
        408 if crate::support::on_spin() => Some("Spin has no body idle timeout (edge-host's 408)"),
        503 if ingest && crate::support::on_spin() => {
            Some("an ingest's 503 needs the queue down, not probed on Spin (a refused Redis hangs)")
        }
        500 if !uses_config => Some("no configuration is read: 500 only if the guest traps"),
        503 if !uses_config => Some("no store is used: 503 only when edge-host is overloaded"),
        _ => None,
    }
}
