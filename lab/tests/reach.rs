//! loadgen reaching a service the way a deployment serves it, against the lab's mock: a base
//! URL with a path prefix, HTTPS with HTTP/2 offered through ALPN (trusting a CA file, or
//! `--insecure`, but never an unknown issuer by default), and an open-loop `--rate` run that
//! ends at `--duration` with exact counts and latency counted from the intended send times.

use std::time::Duration;

use lab::mock::{Faults, MockServer, Options};
use lab::terminator::make_certs;
use loadgen::tls::TlsOptions;
use loadgen::{Config, Mode, run_async};

fn config(url: String) -> Config {
    Config {
        url,
        events: Some(2_000),
        batch_size: 50,
        concurrency: 4,
        topics: 3,
        mode: Mode::Mixed,
        seed: Some(3),
        request_timeout: Duration::from_secs(5),
        drain_timeout: Duration::from_secs(5),
        ..Config::default()
    }
}

fn temp_dir(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("lab-reach-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_base_url_with_a_path_prefix_reaches_every_route() {
    let mock = MockServer::start_with(
        Faults::default(),
        Options {
            prefix: Some("/edge/logs".into()),
            ..Options::default()
        },
    )
    .await;
    assert!(mock.url().ends_with("/edge/logs"));
    let report = run_async(&config(format!("{}/", mock.url())))
        .await
        .unwrap();
    assert!(report.passed(), "{:#?}", report.failure_lines());
    let v = report.verification.as_ref().unwrap();
    assert!(v.exact);
    assert_eq!(v.deltas.received, 2_000);
    assert_eq!(v.sample_ok, 20, "the read-back went through the prefix too");

    // Without the prefix every route is 404: the run cannot even take its baseline.
    let root = mock.url().trim_end_matches("/edge/logs").to_string();
    let err = run_async(&config(root)).await.unwrap_err();
    assert!(format!("{err:#}").contains("status 404"), "{err:#}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_negotiates_http2_through_alpn_and_verifies_exactly() {
    let certs = make_certs(&temp_dir("h2")).unwrap();
    let mock = MockServer::start_with(
        Faults {
            queue_every: Some(5),
            ..Faults::default()
        },
        Options {
            tls: Some((certs.cert.clone(), certs.key.clone())),
            ..Options::default()
        },
    )
    .await;
    assert!(mock.url().starts_with("https://"));
    for tls in [
        TlsOptions {
            ca_cert: Some(certs.ca.clone()),
            insecure: false,
        },
        TlsOptions {
            ca_cert: None,
            insecure: true,
        },
    ] {
        let mut cfg = config(mock.url());
        cfg.tls = tls.clone();
        let report = run_async(&cfg).await.unwrap();
        assert!(report.passed(), "{tls:?}: {:#?}", report.failure_lines());
        assert!(report.verification.as_ref().unwrap().exact);
        assert_eq!(
            report.http_versions.keys().collect::<Vec<_>>(),
            ["HTTP/2"],
            "{tls:?}: the server offered h2"
        );
        assert!(report.render_human().contains("protocol         HTTP/2"));
    }
    // The system's CAs do not know the test CA: no silent downgrade to trusting it.
    let err = run_async(&config(mock.url())).await.unwrap_err();
    let msg = format!("{err:#}");
    assert!(msg.contains("certificate"), "{msg}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_open_loop_rate_run_ends_at_its_duration_with_exact_counts() {
    let mock = MockServer::start(Faults::default()).await;
    let mut cfg = config(mock.url());
    cfg.mode = Mode::Batch;
    cfg.events = None;
    cfg.rate = Some(2_000.0);
    cfg.duration = Some(Duration::from_secs(1));
    let report = run_async(&cfg).await.unwrap();
    assert!(report.passed(), "{:#?}", report.failure_lines());
    // Request k is scheduled at k × 50 / 2000 s: those before 1 s are the first 40.
    assert_eq!(report.events_sent, 2_000);
    assert_eq!(report.planned_events, None);
    assert!(!report.stopped_early);
    let v = report.verification.as_ref().unwrap();
    assert!(v.exact);
    assert_eq!(v.deltas.received, 2_000);
    assert!(
        report
            .render_human()
            .contains("open loop        2000 events/s")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn open_loop_latency_counts_from_the_intended_send_time() {
    // A service that takes 100 ms per request, one connection, and a schedule of one request
    // every 50 ms: request k cannot start before (k + 1) × 100 ms although it was due at
    // k × 50 ms, so its latency is at least 50 k + 100 ms. Closed-loop timing would report
    // about 100 ms for every request.
    let mock = MockServer::start(Faults {
        delay: Some(Duration::from_millis(100)),
        ..Faults::default()
    })
    .await;
    let mut cfg = config(mock.url());
    cfg.mode = Mode::Batch;
    cfg.batch_size = 5;
    cfg.concurrency = 1;
    cfg.events = None;
    cfg.rate = Some(100.0);
    cfg.duration = Some(Duration::from_millis(500));
    let report = run_async(&cfg).await.unwrap();
    assert!(report.passed(), "{:#?}", report.failure_lines());
    assert_eq!(
        report.events_sent, 50,
        "10 requests of 5 were due before 0.5 s"
    );
    assert!(report.latency_ms.max >= 550.0, "{:?}", report.latency_ms);
    assert!(report.max_schedule_lag_ms.unwrap() >= 450.0);
}
