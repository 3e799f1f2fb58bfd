//! The documentation's curl sessions, replayed: the README's "A short curl tour" and the
//! examples in `docs/API.md` are run as written (only `localhost:3000` is pointed at a fresh
//! host on the SQLite defaults) and every answer must equal the one printed, so the examples
//! stay byte-exact and true. JSON answers are compared as JSON (the docs wrap long lines), with
//! the fields that depend on the clock (`processed_at`, `started_at`, uptime) masked; text
//! answers line by line, where a line `…` ends the comparison.

mod support;

use std::process::Command;
use std::time::Duration;

use serde_json::Value;
use support::{Host, HostConfig, root};

/// One `$ command` of a session and the answer printed under it.
#[derive(Debug)]
struct Step {
    command: String,
    expected: String,
}

/// The steps of the first ```sh block after `heading` in `file`.
fn session(file: &str, heading: &str) -> Vec<Step> {
    let text = std::fs::read_to_string(root().join(file)).unwrap();
    let after = &text[text
        .find(heading)
        .unwrap_or_else(|| panic!("{file} has no heading {heading:?}"))..];
    let start = after.find("```sh\n").expect("a sh block") + "```sh\n".len();
    let block = &after[start..start + after[start..].find("```").unwrap()];
    let mut steps: Vec<Step> = Vec::new();
    let mut lines = block.lines().peekable();
    while let Some(line) = lines.next() {
        if let Some(cmd) = line.strip_prefix("$ ") {
            let mut command = cmd.to_string();
            // A command goes on while a quote is open or the line ends with a backslash.
            while command.matches('\'').count() % 2 == 1 || command.ends_with('\\') {
                command.push('\n');
                command.push_str(lines.next().expect("an unterminated command"));
            }
            steps.push(Step {
                command,
                expected: String::new(),
            });
        } else if let Some(step) = steps.last_mut() {
            step.expected.push_str(line);
            step.expected.push('\n');
        }
    }
    assert!(steps.len() >= 5, "{file}: too few steps found: {steps:?}");
    steps
}

/// Replaces the values that depend on when the session ran.
fn mask(v: &mut Value) {
    match v {
        Value::Object(map) => {
            for (k, v) in map.iter_mut() {
                if matches!(
                    k.as_str(),
                    "processed_at" | "started_at" | "uptime_seconds" | "uptime_human"
                ) {
                    *v = Value::String("<clock>".into());
                } else {
                    mask(v);
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(mask),
        _ => {}
    }
}

/// Whether `actual` is the answer the docs print; `Err` says how it differs.
fn matches(expected: &str, actual: &str) -> Result<(), String> {
    let expected = expected.trim();
    if expected.starts_with('{') {
        let mut want: Value =
            serde_json::from_str(expected).map_err(|e| format!("the docs' JSON: {e}"))?;
        let mut got: Value =
            serde_json::from_str(actual.trim()).map_err(|e| format!("not JSON ({e}): {actual}"))?;
        mask(&mut want);
        mask(&mut got);
        return if want == got {
            Ok(())
        } else {
            Err(format!("expected {want}\n     got {got}"))
        };
    }
    let mut got = actual.lines();
    for want in expected.lines() {
        if want.trim() == "…" {
            return Ok(());
        }
        let line = got.next().unwrap_or("<end of output>");
        let clock = want.starts_with("edgelog_uptime_seconds");
        if want != line && !(clock && line.starts_with("edgelog_uptime_seconds ")) {
            return Err(format!("expected line {want:?}\n          got {line:?}"));
        }
    }
    match got.next() {
        None => Ok(()),
        Some(extra) => Err(format!("unexpected extra output {extra:?}")),
    }
}

/// Runs `command` in bash after the session's earlier assignments, against `addr`.
fn run(prelude: &str, command: &str, addr: &str) -> String {
    let script = format!("{prelude}\n{}", command.replace("localhost:3000", addr));
    let out = Command::new("bash")
        .args(["-c", &script])
        .output()
        .expect("run bash");
    assert!(
        out.status.success(),
        "{command} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn readme_tour_and_api_examples_answer_as_printed() {
    let host = Host::start(HostConfig::default());
    let addr = host.url.trim_start_matches("http://").to_string();
    let mut steps = session("README.md", "## A short curl tour");
    steps.extend(session("docs/API.md", "## Examples"));
    let mut prelude = String::new();
    for step in &steps {
        if step.expected.trim().is_empty() {
            // An assignment such as H='content-type: …': later commands use it.
            prelude.push_str(&step.command);
            prelude.push('\n');
            continue;
        }
        // A queued publish is consumed after its answer; a read may need a moment to see it.
        // Writes run once; reads are repeated until they agree (or the last try fails).
        let tries = if step.command.contains("-XPOST") {
            1
        } else {
            40
        };
        let mut last = Err(String::new());
        for _ in 0..tries {
            let actual = run(&prelude, &step.command, &addr);
            last = matches(&step.expected, &actual);
            if last.is_ok() {
                break;
            }
            std::thread::sleep(Duration::from_millis(250));
        }
        if let Err(why) = last {
            panic!(
                "`{}` does not answer as the docs print:\n{why}",
                step.command
            );
        }
    }
}

#[test]
fn a_changed_answer_is_caught() {
    let printed = r#"{"status":"healthy","queue_size":0,
 "started_at":"2026-12-01T08:37:45.949000Z"}"#;
    assert!(
        matches(
            printed,
            r#"{"status":"healthy","queue_size":0,"started_at":"x"}"#
        )
        .is_ok()
    );
    assert!(
        matches(
            printed,
            r#"{"status":"healthy","queue_size":1,"started_at":"x"}"#
        )
        .is_err()
    );
    assert!(matches("a 1\nb 2\n…\n", "a 1\nb 2\nc 3\n").is_ok());
    assert!(matches("a 1\nb 2\n", "a 1\nb 3\n").is_err());
    assert!(matches("a 1\n", "a 1\nb 2\n").is_err());
}
