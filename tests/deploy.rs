//! Deployment files checked statically (no Docker engine runs in CI): `runtime-compose.yml`
//! wires PostgreSQL, Redis and the app correctly, and every file it or the docs reference exists
//! and parses.

#[path = "deploy/docs.rs"]
mod docs;
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
    // into a temporary tree, run from there, so its relative paths land there, not in the
    // repository (its SQLite path is relative to the working directory; tests/runtime_config.rs
    // checks both files' places).
    let dir = support::temp_dir("edge-local-");
    std::fs::create_dir_all(dir.join("runtime-config")).unwrap();
    let rc = dir.join("runtime-config/local.toml");
    std::fs::copy(support::root().join("runtime-config/local.toml"), &rc).unwrap();
    let host = support::Host::start(support::HostConfig {
        runtime_config: Some(rc),
        state_dir: Some(dir.join("state")),
        cwd: Some(dir.clone()),
        ..Default::default()
    });
    let resp = support::client().get(host.at("/health")).send().unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    assert!(
        dir.join(".spin/sqlite_key_value.db").exists(),
        "the queue lives where the file says"
    );
}

// ---------------------------------------------------------------------------------------------
// Deploy targets in deploy/: checked against spin.toml (parsed here, never restated).

/// `spin.toml`, parsed.
fn manifest() -> toml::Table {
    let text = std::fs::read_to_string(support::root().join("spin.toml")).unwrap();
    toml::from_str(&text).expect("spin.toml parses")
}

/// The `[variables]` table of `spin.toml`.
fn spin_variables() -> toml::Table {
    manifest()["variables"].as_table().unwrap().clone()
}

/// Names of the variables `spin.toml` marks `secret = true`.
fn secret_variables() -> Vec<String> {
    spin_variables()
        .iter()
        .filter(|(_, v)| v.get("secret").and_then(|s| s.as_bool()) == Some(true))
        .map(|(k, _)| k.clone())
        .collect()
}

/// Every label a component of `spin.toml` lists under `field` (e.g. `key_value_stores`).
fn component_labels(field: &str) -> Vec<String> {
    let mut labels = Vec::new();
    for (_, c) in manifest()["component"].as_table().unwrap() {
        for l in c
            .get(field)
            .and_then(|v| v.as_array())
            .into_iter()
            .flatten()
        {
            labels.push(l.as_str().unwrap().to_string());
        }
    }
    labels
}

/// Every YAML document of every file in `deploy/spinkube/`, with its file name.
fn spinkube_docs() -> Vec<(String, Value)> {
    use serde::Deserialize;
    let dir = support::root().join("deploy/spinkube");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    let mut docs = Vec::new();
    for f in files {
        let text = std::fs::read_to_string(&f).unwrap();
        for doc in serde_yaml::Deserializer::from_str(&text) {
            let v = Value::deserialize(doc)
                .unwrap_or_else(|e| panic!("{} is valid YAML: {e}", f.display()));
            assert!(
                v["apiVersion"].is_string()
                    && v["kind"].is_string()
                    && v["metadata"]["name"].is_string(),
                "{}: every document has apiVersion, kind and metadata.name",
                f.display()
            );
            docs.push((f.file_name().unwrap().to_string_lossy().into_owned(), v));
        }
    }
    docs
}

/// The only document of `kind` (panics when there is none or several).
fn only(docs: &[(String, Value)], kind: &str) -> Value {
    let found: Vec<&Value> = docs
        .iter()
        .filter(|(_, d)| d["kind"].as_str() == Some(kind))
        .map(|(_, d)| d)
        .collect();
    assert_eq!(found.len(), 1, "exactly one {kind} in deploy/spinkube/");
    found[0].clone()
}

/// The `stringData` entry `key` of the Secret called `name`.
fn secret_value(docs: &[(String, Value)], name: &str, key: &str) -> String {
    let secret = docs
        .iter()
        .map(|(_, d)| d)
        .find(|d| {
            d["kind"].as_str() == Some("Secret") && d["metadata"]["name"].as_str() == Some(name)
        })
        .unwrap_or_else(|| panic!("a Secret named {name} in deploy/spinkube/"));
    secret["stringData"][key]
        .as_str()
        .unwrap_or_else(|| panic!("Secret {name} has the key {key}"))
        .to_string()
}

#[test]
fn spinkube_spinapp_agrees_with_spin_toml() {
    let docs = spinkube_docs();
    let app = only(&docs, "SpinApp");
    assert_eq!(
        app["apiVersion"].as_str(),
        Some("core.spinkube.dev/v1alpha1")
    );
    let spec = &app["spec"];

    // The image is the OCI artifact of this version (`spin registry push …/edgelog:<version>`).
    let m = manifest();
    let version = m["application"]["version"].as_str().unwrap();
    let name = m["application"]["name"].as_str().unwrap();
    let image = spec["image"].as_str().unwrap();
    assert!(
        image.ends_with(&format!("/{name}:{version}")),
        "{image} is {name}:{version} from spin.toml"
    );
    assert!(
        spec["replicas"].as_u64().unwrap() > 1,
        "more than one replica"
    );
    for (probe, path) in [
        ("readiness", "/health?probe=ready"),
        ("liveness", "/health?probe=live"),
    ] {
        assert_eq!(
            spec["checks"][probe]["httpGet"]["path"].as_str(),
            Some(path),
            "{probe} probe"
        );
    }

    // Variables: only names spin.toml declares, each once; secrets only from Secrets.
    let declared = spin_variables();
    let mut bound = Vec::new();
    for v in spec["variables"].as_sequence().unwrap() {
        let var = v["name"].as_str().unwrap();
        assert!(
            declared.contains_key(var),
            "SpinApp binds {var}, which spin.toml does not declare"
        );
        assert!(!bound.contains(&var), "{var} bound twice");
        bound.push(var);
        if secret_variables().iter().any(|s| s == var) {
            assert!(
                v["value"].is_null(),
                "secret {var} must not be written in the SpinApp"
            );
            let r = &v["valueFrom"]["secretKeyRef"];
            let (secret, key) = (r["name"].as_str().unwrap(), r["key"].as_str().unwrap());
            secret_value(&docs, secret, key);
        } else {
            assert!(v["value"].is_string(), "{var} has a plain value");
        }
    }
    for secret in secret_variables() {
        assert!(
            bound.contains(&secret.as_str()),
            "secret variable {secret} is bound from a Secret"
        );
    }
    for (var, def) in &declared {
        if def.get("required").and_then(|r| r.as_bool()) == Some(true) {
            assert!(
                bound.contains(&var.as_str()),
                "required variable {var} is bound"
            );
        }
    }

    // Several replicas need one shared store: PostgreSQL, reachable through db_host.
    let value_of = |var: &str| {
        spec["variables"]
            .as_sequence()
            .unwrap()
            .iter()
            .find(|v| v["name"].as_str() == Some(var))
            .and_then(|v| v["value"].as_str())
            .map(str::to_string)
    };
    assert_eq!(value_of("store").as_deref(), Some("postgres"));
    let db_ref = spec["variables"]
        .as_sequence()
        .unwrap()
        .iter()
        .find(|v| v["name"].as_str() == Some("database_url"))
        .unwrap()["valueFrom"]["secretKeyRef"]
        .clone();
    let url = url::Url::parse(&secret_value(
        &docs,
        db_ref["name"].as_str().unwrap(),
        db_ref["key"].as_str().unwrap(),
    ))
    .unwrap();
    assert_eq!(url.scheme(), "postgres");
    assert_eq!(
        value_of("db_host").unwrap(),
        format!("{}:{}", url.host_str().unwrap(), url.port().unwrap_or(5432)),
        "db_host (allowed_outbound_hosts) is the database URL's host:port"
    );

    // The runtime config: one Secret key spin-operator reads, every key-value label in Redis.
    let rc_secret = spec["runtimeConfig"]["loadFromSecret"].as_str().unwrap();
    let rc: toml::Table = toml::from_str(&secret_value(&docs, rc_secret, "runtime-config.toml"))
        .expect("runtime-config.toml in the Secret parses");
    let labels = component_labels("key_value_stores");
    assert!(!labels.is_empty());
    for label in labels {
        let store = &rc["key_value_store"][&label];
        assert_eq!(
            store["type"].as_str(),
            Some("redis"),
            "store {label} is shared (Redis)"
        );
        assert!(store["url"].as_str().unwrap().starts_with("redis"));
    }
}

#[test]
fn spinkube_cronjob_runs_the_chores_script_with_the_admin_token() {
    let docs = spinkube_docs();
    let app = only(&docs, "SpinApp");
    let cron = only(&docs, "CronJob");
    assert_eq!(cron["apiVersion"].as_str(), Some("batch/v1"));
    assert_eq!(cron["spec"]["concurrencyPolicy"].as_str(), Some("Forbid"));
    let pod = &cron["spec"]["jobTemplate"]["spec"]["template"]["spec"];
    let containers = pod["containers"].as_sequence().unwrap();
    assert_eq!(containers.len(), 1);
    let c = &containers[0];
    assert!(c["image"].as_str().unwrap().contains("curl"));

    // The script it runs is deploy/chores.sh, mounted from the ConfigMap.
    let config_map = only(&docs, "ConfigMap");
    let volume = &pod["volumes"][0];
    assert_eq!(
        volume["configMap"]["name"].as_str(),
        config_map["metadata"]["name"].as_str()
    );
    let mount = c["volumeMounts"][0]["mountPath"].as_str().unwrap();
    assert_eq!(c["volumeMounts"][0]["name"], volume["name"]);
    let command: Vec<&str> = c["command"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap())
        .collect();
    let script_file = command.last().unwrap();
    let key = script_file
        .strip_prefix(&format!("{mount}/"))
        .expect("the command runs a file from the mounted ConfigMap");
    let script = std::fs::read_to_string(support::root().join("deploy/chores.sh")).unwrap();
    assert_eq!(
        config_map["data"][key].as_str(),
        Some(script.as_str()),
        "the ConfigMap holds deploy/chores.sh verbatim"
    );

    // It calls the SpinApp's Service (same name, port 80) with the app's admin tokens.
    let env = c["env"].as_sequence().unwrap();
    let env_of = |n: &str| {
        env.iter()
            .find(|e| e["name"].as_str() == Some(n))
            .unwrap()
            .clone()
    };
    assert_eq!(
        env_of("EDGELOG_URL")["value"].as_str().unwrap(),
        format!("http://{}", app["metadata"]["name"].as_str().unwrap())
    );
    let admin = app["spec"]["variables"]
        .as_sequence()
        .unwrap()
        .iter()
        .find(|v| v["name"].as_str() == Some("admin_tokens"))
        .unwrap()["valueFrom"]["secretKeyRef"]
        .clone();
    assert_eq!(
        env_of("EDGELOG_ADMIN_TOKEN")["valueFrom"]["secretKeyRef"],
        admin,
        "the CronJob uses the SpinApp's admin tokens"
    );
}

/// Runs `deploy/chores.sh` against `url` with `token` (and `lanes` drain loops, when given);
/// returns (success, stdout, stderr).
fn run_chores(url: &str, token: &str, lanes: Option<&str>) -> (bool, String, String) {
    let mut command = std::process::Command::new("sh");
    command
        .arg(support::root().join("deploy/chores.sh"))
        .env("EDGELOG_URL", url)
        .env("EDGELOG_ADMIN_TOKEN", token);
    match lanes {
        Some(lanes) => command.env("EDGELOG_DRAIN_LANES", lanes),
        None => command.env_remove("EDGELOG_DRAIN_LANES"),
    };
    let out = command
        .output()
        .expect("run sh deploy/chores.sh (needs curl)");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn chores_script_drains_and_maintains_a_real_service_with_the_first_admin_token() {
    // The exact script the CronJob runs, against the real component on edge-host, with two
    // admin tokens configured (rotation): the script sends the first.
    let host = support::Host::start(
        support::HostConfig::default().env("SPIN_VARIABLE_ADMIN_TOKENS", "admin-new,admin-old"),
    );
    let client = support::client();
    for i in 0..5 {
        let resp = client
            .post(host.at("/publish?async=true"))
            .json(&serde_json::json!([{
                "topic": "chores", "event_id": format!("e-{i}"),
                "timestamp": "2026-11-23T10:00:00Z", "source": "deploy-test"
            }]))
            .send()
            .unwrap();
        assert_eq!(resp.status().as_u16(), 202, "queued");
    }

    // By default four drain loops run in parallel, one per lane.
    let (ok, stdout, stderr) = run_chores(&host.url, "admin-new,admin-old", None);
    assert!(ok, "chores succeed\nstdout: {stdout}\nstderr: {stderr}");
    for lane in 0..4 {
        assert!(
            stdout.contains(&format!("/drain?lane={lane}&lanes=4 round 1: {{")),
            "{stdout}"
        );
    }
    assert!(stdout.contains("/maintenance round 1: {"), "{stdout}");
    let drained: u64 = stdout
        .lines()
        .filter(|l| l.starts_with("/drain"))
        .map(|l| {
            let body: serde_json::Value = serde_json::from_str(&l[l.find('{').unwrap()..]).unwrap();
            body["drained_batches"].as_u64().unwrap()
        })
        .sum();
    assert_eq!(
        drained, 5,
        "each queued entry applied by exactly one lane: {stdout}"
    );
    let stats: serde_json::Value = client
        .get(host.at("/stats"))
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(stats["queued"], 0, "{stats}");
    assert_eq!(stats["unique_processed"], 5, "{stats}");

    // One lane: the plain loop of before.
    let (ok, stdout, stderr) = run_chores(&host.url, "admin-new", Some("1"));
    assert!(ok, "chores succeed\nstdout: {stdout}\nstderr: {stderr}");
    assert!(stdout.contains("/drain round 1: {"), "{stdout}");
    let (ok, _, stderr) = run_chores(&host.url, "admin-new", Some("65"));
    assert!(!ok && stderr.contains("EDGELOG_DRAIN_LANES"), "{stderr}");

    // A token the service does not know: the job fails (so the scheduler shows it) at the
    // first call, and says why.
    for lanes in [None, Some("1")] {
        let (ok, stdout, stderr) = run_chores(&host.url, "not-a-token", lanes);
        assert!(!ok, "a wrong token fails the job\nstdout: {stdout}");
        assert!(stderr.contains("/drain"), "{stderr}");
        assert!(stderr.contains(" failed"), "{stderr}");
        assert!(stderr.contains("401"), "curl reports the 401: {stderr}");
        assert!(
            !stdout.contains("/maintenance"),
            "stops at the first failure: {stdout}"
        );
    }
}

#[test]
fn fermyon_guide_uses_only_spin_toml_names() {
    let text = std::fs::read_to_string(support::root().join("deploy/fermyon.md")).unwrap();
    let declared = spin_variables();
    let app = manifest()["application"]["name"]
        .as_str()
        .unwrap()
        .to_string();
    let mut set = Vec::new();
    let mut in_code = false;
    for line in text.lines() {
        if line.starts_with("```") {
            in_code = !in_code;
            continue;
        }
        if !in_code {
            continue; // commands live in code blocks; prose may quote them loosely
        }
        let line = line.split(" #").next().unwrap(); // drop shell comments
        let words: Vec<&str> = line.split_whitespace().collect();
        for (i, w) in words.iter().enumerate() {
            // `--variable name=value` and `spin cloud variables set --app edgelog name=value`.
            let assignment = if *w == "--variable" {
                words.get(i + 1).copied()
            } else if line.contains("variables set") && i > 0 && words[i - 1] == app {
                Some(*w)
            } else {
                None
            };
            if let Some(a) = assignment {
                let name = a.split('=').next().unwrap();
                assert!(
                    declared.contains_key(name),
                    "fermyon.md sets {name}, unknown to spin.toml"
                );
                set.push(name.to_string());
            }
            if *w == "--app" {
                assert_eq!(words.get(i + 1), Some(&app.as_str()), "{line}");
            }
        }
        if line.contains("spin cloud link sqlite") {
            let label = words.last().unwrap();
            assert!(
                component_labels("sqlite_databases")
                    .iter()
                    .any(|l| l == label),
                "links the SQLite label {label} that spin.toml uses"
            );
        }
    }
    for secret in secret_variables() {
        assert!(
            set.contains(&secret),
            "fermyon.md shows how to set the secret {secret}"
        );
    }
}
