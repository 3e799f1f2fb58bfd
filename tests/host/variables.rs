//! Variables through the kitchen-sink fixture: manifest defaults, secrets and templates,
//! `SPIN_VARIABLE_*` overrides, errors for undefined and invalid names, the same values through
//! wasi:config, secrets kept out of the logs, the component's environment taken from the
//! manifest only, and a missing required variable failing start-up.

use serde_json::{Value as Json, json};

use crate::support::{Host, client, temp_dir};
use crate::{
    REGION, fixture_config, fixture_manifest, post_json, run_to_exit, runtime_config, start_fixture,
};

/// Default of the fixture's secret variable `api_token`.
const SECRET: &str = "s3cr3t-t0ken";

fn variables(host: &Host) -> Json {
    post_json(
        host,
        "/vars",
        &json!({ "names": ["greeting", "region", "api_token", "composite", "undefined_one", "Bad-Name"] }),
    )
}

#[test]
fn variables_defaults_env_overrides_and_errors() {
    let host = start_fixture();
    let v = variables(&host);
    assert_eq!(v["spin"]["greeting"], json!({ "ok": "hello" }), "{v}");
    assert_eq!(v["spin"]["region"], json!({ "ok": REGION }), "{v}");
    assert_eq!(v["spin"]["api_token"], json!({ "ok": SECRET }), "{v}");
    assert_eq!(
        v["spin"]["composite"],
        json!({ "ok": format!("hello, {REGION}!") }),
        "{v}"
    );
    assert!(
        v["spin"]["undefined_one"]["error"]["undefined"].is_string(),
        "{v}"
    );
    assert!(
        v["spin"]["Bad-Name"]["error"]["invalid-name"].is_string(),
        "{v}"
    );
    // wasi:config: defined keys have values, unknown ones are absent.
    assert_eq!(v["wasi"]["greeting"], json!({ "ok": "hello" }), "{v}");
    assert_eq!(v["wasi"]["undefined_one"], json!({ "ok": null }), "{v}");
    assert_eq!(
        v["wasi_all"],
        json!([
            ["api_token", SECRET],
            ["composite", format!("hello, {REGION}!")],
            ["greeting", "hello"],
            ["region", REGION],
        ]),
        "{v}"
    );

    let overridden = Host::start(
        fixture_config(runtime_config(""))
            .env("SPIN_VARIABLE_GREETING", "howdy")
            .env("SPIN_VARIABLE_API_TOKEN", "other-secret"),
    );
    let v = variables(&overridden);
    assert_eq!(v["spin"]["greeting"], json!({ "ok": "howdy" }), "{v}");
    assert_eq!(
        v["spin"]["api_token"],
        json!({ "ok": "other-secret" }),
        "{v}"
    );
    assert_eq!(
        v["spin"]["composite"],
        json!({ "ok": format!("howdy, {REGION}!") }),
        "{v}"
    );
    assert_eq!(v["wasi"]["greeting"], json!({ "ok": "howdy" }), "{v}");

    // Secrets never reach the logs.
    for h in [&host, &overridden] {
        let logs = h.logs();
        assert!(
            !logs.contains(SECRET) && !logs.contains("other-secret"),
            "{logs}"
        );
    }
}

#[test]
fn component_environment_is_the_manifests_not_the_hosts() {
    let host = start_fixture();
    let get = |name: &str| -> Json {
        let resp = client()
            .get(host.at(&format!("/env?name={name}")))
            .send()
            .unwrap();
        assert_eq!(resp.status(), 200);
        resp.json().unwrap()
    };
    assert_eq!(get("KITCHEN_SINK_ENV"), json!("from-manifest"));
    assert_eq!(get("SPIN_VARIABLE_REGION"), Json::Null);
    assert_eq!(get("PATH"), Json::Null);
}

#[test]
fn missing_required_variable_fails_start_up_naming_it() {
    let rc = runtime_config("");
    let (status, output) = run_to_exit(
        &[
            "up",
            "--from",
            fixture_manifest().to_str().unwrap(),
            "--listen",
            "127.0.0.1:0",
            "--runtime-config-file",
            rc.to_str().unwrap(),
            "--state-dir",
            temp_dir("edge-state-").to_str().unwrap(),
        ],
        &[],
    );
    assert!(!status.success(), "{output}");
    assert!(output.contains("`region`"), "{output}");
    assert!(output.contains("SPIN_VARIABLE_REGION"), "{output}");
    assert!(!output.contains("Serving"), "{output}");
}
