//! The API contract, `docs/openapi.json`, against the live service: the real `edgelog.wasm` on
//! `edge-host`, over real HTTP, with real SQLite files, PostgreSQL and Redis.
//!
//! Five kinds of check, none of which lists the routes or statuses by hand:
//! - the document is valid OpenAPI 3.1 (`openapi-spec-validator`, `contract/validity.rs`) and is
//!   what `/openapi.json` serves (its security requirements fitted to the configured tokens);
//! - routes: the paths in `src/lib.rs`'s `Route::of` and the methods the service names in `Allow`
//!   equal the document's paths and methods (plus OPTIONS, the CORS preflight on any path)
//!   (`contract/routes.rs`);
//! - statuses: a probe matrix (valid, invalid, oversized, wrong method, unknown path, no / wrong
//!   token, slow body, store down, queue down, broken configuration, a dead letter that cannot be
//!   read, one the store refuses and later accepts) against six live hosts; every answer's
//!   status must be documented for its operation and its body and headers must validate
//!   against the documented schemas (`jsonschema`), and every documented status
//!   must have been seen, except the few only edge-host's own failures can produce (listed
//!   with the reason in [`unprobed`](probe::unprobed)) (`contract/statuses.rs`);
//! - security: `/openapi.json` declares a token only where the running service asks for one
//!   (`contract/security.rs`);
//! - and Schemathesis with `--checks all`, property-based, from the served document, on both
//!   backends, open and with tokens (`contract/schemathesis.rs`).
//!
//! One test binary, its tests by concept in `contract/` (the five above); helpers there too:
//! `contract/document.rs` (the document and schema validation), `contract/wire.rs` (requests and
//! answers), `contract/probe.rs` (the matrix's bookkeeping), `contract/hosts.rs` (hosts, tokens,
//! queue injection). This file holds what several tests share: the methods they probe.
//!
//! `CONTRACT_MAX_EXAMPLES` sets Schemathesis's examples per operation (default 25);
//! `scripts/contract.sh --max-examples 500` is the long run.

mod support;

#[path = "contract/document.rs"]
mod document;
#[path = "contract/hosts.rs"]
mod hosts;
#[path = "contract/probe.rs"]
mod probe;
#[path = "contract/routes.rs"]
mod routes;
#[path = "contract/schemathesis.rs"]
mod schemathesis;
#[path = "contract/security.rs"]
mod security;
#[path = "contract/statuses.rs"]
mod statuses;
#[path = "contract/validity.rs"]
mod validity;
#[path = "contract/wire.rs"]
mod wire;

/// Methods probed on every path (shared: `routes.rs`, `statuses.rs` and `security.rs` probe
/// them); OPTIONS is probed separately (it is the preflight everywhere).
const METHODS: [&str; 6] = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"];
