//! Schemathesis, property-based, from the document the service serves, with every check it has
//! (`--checks all`, see `scripts/contract.sh`): on both backends, against the default service (no
//! tokens, every group open) and against a service with tokens for every group (given them).

use std::process::Command;

use crate::hosts::{
    ADMIN_TOKEN, Backend, PUBLISH_TOKEN, READ_TOKEN, inject_unreadable_entry, start, with_tokens,
};
use crate::support::{HostConfig, root, temp_dir};
use crate::wire::Req;

/// The variables `scripts/contract.sh run` reads the tokens from.
const TOKEN_VARIABLES: [(&str, &str); 3] = [
    ("EDGELOG_PUBLISH_TOKEN", PUBLISH_TOKEN),
    ("EDGELOG_READ_TOKEN", READ_TOKEN),
    ("EDGELOG_ADMIN_TOKEN", ADMIN_TOKEN),
];

fn schemathesis(backend: Backend, tokens: bool) {
    let config = if tokens {
        with_tokens(HostConfig::default())
    } else {
        HostConfig::default()
    };
    let app = start(backend, config);
    // One dead letter, so the dead-letter operations (through the document's links) see a real id.
    inject_unreadable_entry(&app);
    let drain = Req::new("POST", "/drain");
    let drain = if tokens {
        drain.token(ADMIN_TOKEN)
    } else {
        drain
    };
    let drained = drain.send(&app.host);
    assert_eq!(
        drained.status,
        200,
        "{}",
        String::from_utf8_lossy(&drained.body)
    );
    let examples = std::env::var("CONTRACT_MAX_EXAMPLES").unwrap_or_else(|_| "25".into());
    let report = temp_dir("contract-st-");
    let mut command = Command::new(root().join("scripts/contract.sh"));
    command
        .current_dir(root())
        .arg("run")
        .arg(&app.host.url)
        .args([
            "--max-examples",
            &examples,
            "--seed",
            "20261201",
            // One worker: Hypothesis 6.170 raced in its lambda-source cache with two.
            "--workers",
            "1",
        ])
        .arg("--report")
        .arg("junit")
        .arg("--report-dir")
        .arg(&report);
    for (variable, token) in TOKEN_VARIABLES {
        // The open run must not pick up tokens from the caller's environment.
        if tokens {
            command.env(variable, token);
        } else {
            command.env_remove(variable);
        }
    }
    let out = command.output().expect("run scripts/contract.sh run");
    let stdout = String::from_utf8_lossy(&out.stdout);
    println!("{stdout}");
    let access = if tokens { "with tokens" } else { "open" };
    assert!(
        out.status.success(),
        "Schemathesis found disagreements between the served document and the service on \
         {backend:?} ({access}):\n{stdout}\n{}\nhost log tail:\n{}",
        String::from_utf8_lossy(&out.stderr),
        tail(&app.host.logs(), 40)
    );
    assert!(
        stdout.contains("generated"),
        "Schemathesis ran no test case:\n{stdout}"
    );
    let junit = std::fs::read_dir(&report)
        .unwrap()
        .flatten()
        .any(|e| e.file_name().to_string_lossy().starts_with("junit"));
    assert!(
        junit,
        "Schemathesis wrote no JUnit report in {}",
        report.display()
    );
}

fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// SQLite (queue and store), no tokens: the default service.
#[test]
fn schemathesis_sqlite_open() {
    schemathesis(Backend::Sqlite, false);
}

/// SQLite, tokens for every group.
#[test]
fn schemathesis_sqlite_tokens() {
    schemathesis(Backend::Sqlite, true);
}

/// PostgreSQL + Redis, no tokens.
#[test]
fn schemathesis_postgres_redis_open() {
    schemathesis(Backend::PostgresRedis, false);
}

/// PostgreSQL + Redis, tokens for every group.
#[test]
fn schemathesis_postgres_redis_tokens() {
    schemathesis(Backend::PostgresRedis, true);
}
