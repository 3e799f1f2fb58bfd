//! The served contract describes the running service's access control: `/openapi.json` declares
//! security only on the operations of groups that have tokens configured, and every operation asks
//! for a token exactly when the served document says it does.

use serde_json::json;

use crate::METHODS;
use crate::document::Contract;
use crate::hosts::{ADMIN_TOKEN, Backend, PUBLISH_TOKEN, READ_TOKEN, concrete, event, start};
use crate::support::HostConfig;
use crate::wire::Req;

/// The document's security schemes and the Spin variable that gives each its tokens.
const SCHEMES: [(&str, &str, &str); 3] = [
    (
        "publishToken",
        "SPIN_VARIABLE_PUBLISH_TOKENS",
        PUBLISH_TOKEN,
    ),
    ("readToken", "SPIN_VARIABLE_READ_TOKENS", READ_TOKEN),
    ("adminToken", "SPIN_VARIABLE_ADMIN_TOKENS", ADMIN_TOKEN),
];

/// No tokens (the default), admin only (read routes stay open, so admin tokens are not offered
/// there), publish and read without admin, and all three.
#[test]
fn served_security_follows_the_configured_tokens() {
    let contract = Contract::load();
    let all: Vec<&str> = SCHEMES.iter().map(|(s, _, _)| *s).collect();
    assert_eq!(
        contract.served(&all),
        contract.doc,
        "with every group protected the service serves the file as it is"
    );
    let cases: [&[&str]; 4] = [
        &[],
        &["adminToken"],
        &["publishToken", "readToken"],
        &["publishToken", "readToken", "adminToken"],
    ];
    let mut failures = Vec::new();
    for configured in cases {
        let mut config = HostConfig::default();
        for (scheme, variable, token) in SCHEMES {
            if configured.contains(&scheme) {
                config = config.env(variable, token);
            }
        }
        let app = start(Backend::Sqlite, config);
        let answer = Req::new("GET", "/openapi.json").send(&app.host);
        assert_eq!(answer.status, 200, "{configured:?}");
        let served = answer.json();
        assert_eq!(
            served,
            contract.served(configured),
            "/openapi.json with tokens for {configured:?} (left) differs from the expected document"
        );
        // And the service behaves as its document says: without a token, an operation is refused
        // (401) exactly when the served document declares a security requirement for it.
        for (template, method) in contract.operations() {
            if method == "OPTIONS" {
                continue;
            }
            let declared = served["paths"][&template][method.to_ascii_lowercase()]["security"]
                .as_array()
                .is_some_and(|r| !r.is_empty());
            let method: &'static str = METHODS.iter().find(|m| **m == method).unwrap();
            let mut req = Req::new(method, concrete(&template, "x"));
            if template.starts_with("/publish") {
                req = req.json(&json!([event("security")]));
            }
            let status = req.send(&app.host).status;
            if (status == 401) != declared {
                failures.push(format!(
                    "tokens for {configured:?}: {method} {template} without a token answered \
                     {status}, but the served document declares {}",
                    if declared { "a token" } else { "no security" }
                ));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
