//! Start-up errors, from the edge-host binary run to its exit: a missing or invalid manifest, a
//! missing `.wasm`, an import edge-host does not provide, a port in use, and `--build` running
//! the components' build commands and reporting a failing one.

use std::path::Path;

use crate::support::temp_dir;
use crate::{REGION, fixture_manifest, run_to_exit, runtime_config};

fn up_args<'a>(manifest: &'a str, state: &'a str, listen: &'a str) -> Vec<&'a str> {
    vec![
        "up",
        "--from",
        manifest,
        "--listen",
        listen,
        "--state-dir",
        state,
    ]
}

fn write_manifest(dir: &Path, text: &str) -> String {
    let path = dir.join("spin.toml");
    std::fs::write(&path, text).unwrap();
    path.to_str().unwrap().to_string()
}

const MINIMAL_MANIFEST: &str = r#"spin_manifest_version = 2
[application]
name = "broken"
[[trigger.http]]
route = "/..."
component = "c"
[component.c]
source = "SOURCE"
"#;

#[test]
fn missing_manifest_is_a_clear_start_up_error() {
    let dir = temp_dir("edge-bad-");
    let manifest = dir.join("nowhere/spin.toml");
    let state = dir.to_str().unwrap();
    let (status, output) = run_to_exit(
        &up_args(manifest.to_str().unwrap(), state, "127.0.0.1:0"),
        &[],
    );
    assert!(!status.success(), "{output}");
    assert!(output.contains("cannot read manifest"), "{output}");
    assert!(output.contains("nowhere/spin.toml"), "{output}");
}

#[test]
fn invalid_manifests_are_clear_start_up_errors() {
    let dir = temp_dir("edge-bad-");
    let state = dir.to_str().unwrap().to_string();
    let cases = [
        ("this is = not [toml", "invalid manifest"),
        (
            &*MINIMAL_MANIFEST.replace("[component.c]", "[component.c]\nkey_value_storez = []"),
            "key_value_storez",
        ),
        (
            &*MINIMAL_MANIFEST.replace("= 2", "= 1"),
            "spin_manifest_version",
        ),
        (
            &*MINIMAL_MANIFEST.replace("component = \"c\"", "component = \"d\""),
            "unknown component `d`",
        ),
    ];
    for (text, expected) in cases {
        let manifest = write_manifest(&dir, text);
        let (status, output) = run_to_exit(&up_args(&manifest, &state, "127.0.0.1:0"), &[]);
        assert!(!status.success(), "{text}: {output}");
        assert!(output.contains("invalid manifest"), "{text}: {output}");
        assert!(output.contains(expected), "{text}: {output}");
    }
}

#[test]
fn missing_wasm_is_a_clear_start_up_error() {
    let dir = temp_dir("edge-bad-");
    let manifest = write_manifest(
        &dir,
        &MINIMAL_MANIFEST.replace("SOURCE", "target/missing.wasm"),
    );
    let state = dir.join("state");
    let (status, output) = run_to_exit(
        &up_args(&manifest, state.to_str().unwrap(), "127.0.0.1:0"),
        &[],
    );
    assert!(!status.success(), "{output}");
    assert!(output.contains("missing.wasm"), "{output}");
    assert!(output.contains("does not exist"), "{output}");
}

#[test]
fn unprovided_import_fails_at_start_up_naming_it() {
    let dir = temp_dir("edge-bad-");
    let manifest = write_manifest(&dir, &MINIMAL_MANIFEST.replace("SOURCE", "c.wat"));
    // wasmtime reads a component in WAT text as well as in binary form. An import only has to be
    // provided if the component uses it, so this one is lowered into a core instance.
    let wat = r#"(component
        (import "fermyon:spin/mqtt@2.0.0" (instance $mqtt (export "publish" (func))))
        (core func $publish (canon lower (func $mqtt "publish")))
        (core module $m (import "mqtt" "publish" (func)))
        (core instance (instantiate $m (with "mqtt" (instance (export "publish" (func $publish))))))
    )"#;
    std::fs::write(dir.join("c.wat"), wat).unwrap();
    let state = dir.join("state");
    let (status, output) = run_to_exit(
        &up_args(&manifest, state.to_str().unwrap(), "127.0.0.1:0"),
        &[],
    );
    assert!(!status.success(), "{output}");
    assert!(output.contains("fermyon:spin/mqtt@2.0.0"), "{output}");
    assert!(output.contains("does not provide"), "{output}");
    assert!(!output.contains("Serving"), "{output}");
}

#[test]
fn port_in_use_is_a_clear_start_up_error() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let rc = runtime_config("");
    let state = temp_dir("edge-state-");
    let mut args = up_args(
        fixture_manifest().to_str().unwrap(),
        state.to_str().unwrap(),
        &addr,
    )
    .into_iter()
    .map(str::to_string)
    .collect::<Vec<_>>();
    args.extend([
        "--runtime-config-file".to_string(),
        rc.to_str().unwrap().to_string(),
    ]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let (status, output) = run_to_exit(&args, &[("SPIN_VARIABLE_REGION", REGION)]);
    assert!(!status.success(), "{output}");
    assert!(
        output.contains(&format!("cannot listen on {addr}")),
        "{output}"
    );
    drop(taken);
}

#[test]
fn build_runs_component_build_commands_and_reports_failures() {
    let dir = temp_dir("edge-build-");
    std::fs::create_dir(dir.join("sub")).unwrap();
    let manifest = write_manifest(
        &dir,
        &format!(
            "{}\n[component.c.build]\ncommand = [\"echo first > built.txt\", \"echo second >> built.txt\"]\nworkdir = \"sub\"\n",
            MINIMAL_MANIFEST.replace("SOURCE", "c.wasm")
        ),
    );
    let (status, output) = run_to_exit(&["build", "--from", &manifest], &[]);
    assert!(status.success(), "{output}");
    assert!(output.contains("Building component c"), "{output}");
    assert_eq!(
        std::fs::read_to_string(dir.join("sub/built.txt")).unwrap(),
        "first\nsecond\n"
    );

    let manifest = write_manifest(
        &dir,
        &format!(
            "{}\n[component.c.build]\ncommand = \"echo failing; exit 3\"\n",
            MINIMAL_MANIFEST.replace("SOURCE", "c.wasm")
        ),
    );
    let state = dir.join("state");
    let mut args = up_args(&manifest, state.to_str().unwrap(), "127.0.0.1:0");
    args.push("--build");
    let (status, output) = run_to_exit(&args, &[]);
    assert!(!status.success(), "{output}");
    assert!(
        output.contains("build command of component `c` failed"),
        "{output}"
    );
    assert!(!output.contains("Serving"), "{output}");
}
