//! Run settings through loadgen's public API: the defaults are valid, bad settings are refused.

use loadgen::Config;

#[test]
fn default_config_is_valid() {
    Config::default().validate().unwrap();
}

#[test]
fn rejects_bad_settings() {
    let bad = [
        Config {
            duplicate_rate: 1.0,
            ..Config::default()
        },
        Config {
            duplicate_rate: -0.1,
            ..Config::default()
        },
        Config {
            events: Some(0),
            ..Config::default()
        },
        Config {
            events: None,
            ..Config::default()
        },
        Config {
            rate: Some(0.0),
            ..Config::default()
        },
        Config {
            batch_size: 0,
            ..Config::default()
        },
        Config {
            run_id: Some("a b".into()),
            ..Config::default()
        },
    ];
    for c in bad {
        assert!(c.validate().is_err(), "{c:?} should be rejected");
    }
}
