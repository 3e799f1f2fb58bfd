//! The document itself: `docs/openapi.json` is valid OpenAPI 3.1 (`openapi-spec-validator`, run
//! by `scripts/contract.sh validate`), and every schema and documented response in it compiles.

use std::process::Command;

use crate::document::Contract;
use crate::support::root;

/// The document is valid OpenAPI 3.1 (by a well-kept validator), and every schema in it compiles.
#[test]
fn document_is_valid_openapi_3_1() {
    let out = Command::new(root().join("scripts/contract.sh"))
        .args(["validate", "docs/openapi.json"])
        .output()
        .expect("run scripts/contract.sh validate");
    assert!(
        out.status.success(),
        "openapi-spec-validator refused docs/openapi.json:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let contract = Contract::load();
    assert_eq!(contract.doc["openapi"], "3.1.0");
    for name in contract.doc["components"]["schemas"]
        .as_object()
        .unwrap()
        .keys()
    {
        contract.validator(&format!("/components/schemas/{name}"));
    }
    // Every operation's responses resolve and their schemas compile.
    for (path, method) in contract.operations() {
        for status in contract.statuses(&path, &method) {
            let doc = contract.response(&path, &method, status).unwrap();
            for media in doc.response["content"]
                .as_object()
                .into_iter()
                .flat_map(|c| c.keys())
            {
                contract.validator(&format!(
                    "{}/content/{}/schema",
                    doc.pointer,
                    Contract::escape(media)
                ));
            }
        }
    }
}
