//! loadgen against the real service behind a real TLS front: the `.wasm` on edge-host with
//! access control on (tokens through `SPIN_VARIABLE_*`), `socat` terminating TLS with a
//! certificate made by `openssl` at test time, and loadgen's library pointed at the `https://`
//! URL as a user points it at their edge URL. Verification must be exact; a missing or refused
//! token must stop the run at once, naming the token and the route, without retries. Every
//! `--protocol` (OTLP, Loki, NDJSON; gzip on for half of them) is verified exactly too.

mod support;

use std::time::Duration;

use lab::terminator::{Terminator, make_certs};
use loadgen::auth::{Secret, Tokens};
use loadgen::tls::TlsOptions;
use loadgen::{Config, Mode, Protocol, Report};
use support::{Host, HostConfig, temp_dir};

const PUBLISH: &str = "tok-loadgen-publish-7a1c40";
const READ: &str = "tok-loadgen-read-2b9e11";
const ADMIN: &str = "tok-loadgen-admin-5d03f2";

/// edge-host with every group closed, and a TLS front before it.
fn protected() -> (Host, Terminator, TlsOptions) {
    let host = Host::start(
        HostConfig::default()
            .env("SPIN_VARIABLE_PUBLISH_TOKENS", PUBLISH)
            .env("SPIN_VARIABLE_READ_TOKENS", READ)
            .env("SPIN_VARIABLE_ADMIN_TOKENS", ADMIN),
    );
    let certs = make_certs(&temp_dir("loadgen-certs-")).unwrap();
    let backend = host.url.trim_start_matches("http://").to_string();
    let front = Terminator::start(&certs, &backend).unwrap();
    let ca = TlsOptions {
        ca_cert: Some(certs.ca),
        insecure: false,
    };
    (host, front, ca)
}

fn config(url: &str, tls: TlsOptions, publish: Option<&str>, read: Option<&str>) -> Config {
    Config {
        url: url.to_string(),
        tls,
        tokens: Tokens {
            publish: publish.and_then(Secret::new),
            read: read.and_then(Secret::new),
        },
        events: Some(3_000),
        batch_size: 50,
        concurrency: 4,
        topics: 3,
        mode: Mode::Mixed,
        request_timeout: Duration::from_secs(30),
        ..Config::default()
    }
}

fn assert_exact(report: &Report) {
    assert!(report.passed(), "{:#?}", report.failure_lines());
    let v = report.verification.as_ref().expect("verified");
    assert!(v.exact, "{v:?}");
    assert_eq!(v.deltas.received as u64, report.acknowledged.events);
    assert_eq!(v.deltas.unique_processed as u64, report.acknowledged.unique);
    assert_eq!(v.deltas.unique_processed as u64, report.unique_ids);
    assert_eq!(v.sample_ok, v.sampled);
    assert!(v.sampled > 0);
    let json = report.to_json();
    assert!(
        !json.contains(PUBLISH) && !json.contains(READ),
        "tokens stay out of reports"
    );
}

#[test]
fn a_verified_run_over_tls_with_tokens_is_exact() {
    let (_host, front, ca) = protected();
    let insecure = TlsOptions {
        ca_cert: None,
        insecure: true,
    };
    for tls in [insecure, ca] {
        let report = loadgen::run(&config(&front.url, tls.clone(), Some(PUBLISH), Some(READ)))
            .expect("the run takes place");
        print!("{}", report.render_human());
        assert_exact(&report);
        assert_eq!(report.events_sent, 3_000, "{tls:?}");
        assert_eq!(
            report.http_versions.keys().collect::<Vec<_>>(),
            ["HTTP/1.1"],
            "socat offers no ALPN: HTTP/1.1 over TLS"
        );
        // POST /drain is the admin group's: the read token is refused there, and /stats
        // consumes the queue instead.
        let notes = &report.verification.as_ref().unwrap().notes;
        assert!(
            notes.iter().any(|n| n.contains("POST /drain answered 403")),
            "{notes:?}"
        );
    }
}

#[test]
fn a_missing_or_refused_token_stops_the_run_naming_it_without_retries() {
    let (host, front, ca) = protected();
    let publish_lines = |status: u16| {
        host.logs()
            .matches(&format!("POST /publish/batch {status} "))
            .count()
    };
    let err = |publish: Option<&str>, read: Option<&str>| {
        let mut cfg = config(&front.url, ca.clone(), publish, read);
        cfg.mode = Mode::Batch;
        cfg.concurrency = 1;
        let e = loadgen::run(&cfg).expect_err("the run must stop");
        format!("{e:#}")
    };

    let msg = err(Some("tok-not-a-real-one"), Some(READ));
    assert!(msg.contains("POST /publish/batch answered 401"), "{msg}");
    assert!(
        msg.contains("publish token (--token / EDGELOG_PUBLISH_TOKEN) was refused"),
        "{msg}"
    );
    assert!(!msg.contains("tok-not-a-real-one"), "{msg}");
    assert_eq!(publish_lines(401), 1, "one request, not retried");

    let msg = err(None, Some(READ));
    assert!(
        msg.contains("no publish token (--token / EDGELOG_PUBLISH_TOKEN) was given"),
        "{msg}"
    );
    assert_eq!(publish_lines(401), 2);

    // A valid token of another group: 403, named as such.
    let msg = err(Some(READ), Some(READ));
    assert!(msg.contains("POST /publish/batch answered 403"), "{msg}");
    assert!(msg.contains("not for this route's group"), "{msg}");
    assert_eq!(publish_lines(403), 1);

    // A refused read token stops the run at the baseline, before anything is published.
    for read in [Some("tok-wrong-read"), None] {
        let msg = err(Some(PUBLISH), read);
        assert!(msg.contains("GET /stats answered 401"), "{msg}");
        assert!(
            msg.contains("read token (--read-token / EDGELOG_READ_TOKEN)"),
            "{msg}"
        );
    }
    assert_eq!(publish_lines(200), 0, "nothing was published");
    assert_eq!(publish_lines(401) + publish_lines(403), 3);
}

#[test]
fn a_rate_run_for_a_duration_counts_exactly() {
    let (_host, front, ca) = protected();
    let mut cfg = config(&front.url, ca, Some(PUBLISH), Some(READ));
    cfg.events = None;
    cfg.rate = Some(200.0);
    cfg.duration = Some(Duration::from_secs(3));
    cfg.batch_size = 10;
    cfg.mode = Mode::Batch;
    cfg.seed = Some(18);
    let report = loadgen::run(&cfg).expect("the run takes place");
    print!("{}", report.render_human());
    assert_exact(&report);
    // Request k of 10 events is due at k × 50 ms: the 60 due before 3 s are sent, no more.
    assert_eq!(report.events_sent, 600);
    assert!(report.max_schedule_lag_ms.is_some());
}

#[test]
fn every_protocol_is_verified_exactly_on_its_route() {
    let host = Host::start(HostConfig::default());
    let protocols = [
        (Protocol::OtlpProto, "/v1/logs 200"),
        (Protocol::OtlpJson, "/v1/logs 200"),
        (Protocol::Loki, "/loki/api/v1/push 204"),
        (Protocol::LokiJson, "/loki/api/v1/push 204"),
        (Protocol::Ndjson, "/publish/batch 200"),
    ];
    for (k, (protocol, route)) in protocols.into_iter().enumerate() {
        let before = host.logs().matches(route).count();
        let mut cfg = config(&host.url, TlsOptions::default(), None, None);
        cfg.protocol = protocol;
        cfg.gzip = k % 2 == 0;
        cfg.events = Some(400);
        cfg.seed = Some(15 + k as u64);
        let report = loadgen::run(&cfg).expect("the run takes place");
        print!("{}", report.render_human());
        assert_exact(&report);
        assert_eq!(report.events_sent, 400, "{protocol:?}");
        assert!(
            report.replays > 0,
            "{protocol:?}: replays must be duplicates"
        );
        assert!(
            host.logs().matches(route).count() > before,
            "{protocol:?} went to {route}"
        );
    }
}
