//! Deployment files checked statically (no Docker engine runs in CI): `runtime-compose.yml`
//! wires PostgreSQL, Redis and the app correctly, and every file it or the docs reference exists
//! and parses.

mod support;

use serde_yaml::Value;

fn compose() -> Value {
    let text = std::fs::read_to_string(support::root().join("runtime-compose.yml")).unwrap();
    serde_yaml::from_str(&text).expect("runtime-compose.yml is valid YAML")
}

#[test]
fn compose_has_postgres_redis_and_the_app_with_health_checks() {
    let c = compose();
    let services = c["services"].as_mapping().expect("services");
    for name in ["postgres", "redis", "app"] {
        assert!(services.contains_key(name), "service {name} missing");
    }
    for name in ["postgres", "redis"] {
        let hc = &c["services"][name]["healthcheck"];
        assert!(hc["test"].is_sequence(), "{name} has a health check");
        let volumes = c["services"][name]["volumes"].as_sequence().unwrap();
        let named = volumes[0].as_str().unwrap().split(':').next().unwrap();
        assert!(
            c["volumes"].as_mapping().unwrap().contains_key(named),
            "{name} uses the named volume {named}"
        );
    }
    let app = &c["services"]["app"];
    assert!(
        app["image"].as_str().unwrap().contains("spin"),
        "the app runs on the Spin image"
    );
    for dep in ["postgres", "redis"] {
        assert_eq!(
            app["depends_on"][dep]["condition"].as_str(),
            Some("service_healthy"),
            "app waits for {dep}"
        );
    }
    let env = &app["environment"];
    assert_eq!(env["SPIN_VARIABLE_STORE"].as_str(), Some("postgres"));
    let url = env["SPIN_VARIABLE_DATABASE_URL"].as_str().unwrap();
    assert!(
        url.starts_with("postgres://") && url.contains("@postgres:5432/"),
        "{url}"
    );
    assert_eq!(env["SPIN_VARIABLE_DB_HOST"].as_str(), Some("postgres:5432"));
    let ports: Vec<&str> = app["ports"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(|p| p.as_str().unwrap())
        .collect();
    assert!(ports.contains(&"3000:3000"));
}

#[test]
fn compose_references_files_that_exist_and_parse() {
    let c = compose();
    let root = support::root();
    let app = &c["services"]["app"];
    for v in app["volumes"].as_sequence().unwrap() {
        let host_path = v.as_str().unwrap().split(':').next().unwrap();
        if host_path.contains("target/") {
            continue; // the build output, made by `cargo build` before `docker compose up`
        }
        assert!(
            root.join(host_path).exists(),
            "{host_path} referenced by the app service exists"
        );
    }
    let args: Vec<&str> = app["command"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap())
        .collect();
    let rc = args[args
        .iter()
        .position(|a| *a == "--runtime-config-file")
        .unwrap()
        + 1];
    let rc_text = std::fs::read_to_string(root.join(rc)).unwrap();
    let rc: toml::Table = toml::from_str(&rc_text).unwrap();
    assert_eq!(
        rc["key_value_store"]["default"]["type"].as_str(),
        Some("redis")
    );
    assert!(
        rc["key_value_store"]["default"]["url"]
            .as_str()
            .unwrap()
            .contains("redis:6379")
    );
    for example in [
        "runtime-config/local.toml",
        "runtime-config/postgres-redis.toml",
    ] {
        let text = std::fs::read_to_string(root.join(example)).unwrap();
        let _: toml::Table = toml::from_str(&text).unwrap_or_else(|e| panic!("{example}: {e}"));
    }
}

#[test]
fn example_runtime_configs_start_the_host() {
    // The "all local" example really configures edge-host (it parses and serves). It is copied
    // into a temporary tree so its relative paths land there, not in the repository.
    let dir = support::temp_dir("edge-local-");
    std::fs::create_dir_all(dir.join("runtime-config")).unwrap();
    let rc = dir.join("runtime-config/local.toml");
    std::fs::copy(support::root().join("runtime-config/local.toml"), &rc).unwrap();
    let host = support::Host::start(support::HostConfig {
        runtime_config: Some(rc),
        state_dir: Some(dir.join("state")),
        ..Default::default()
    });
    let resp = support::client().get(host.at("/health")).send().unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    assert!(
        dir.join(".spin/sqlite_key_value.db").exists(),
        "the queue lives where the file says"
    );
}
