//! Routing through the kitchen-sink fixture: the most specific route wins and Spin's headers
//! describe the match; without a catch-all route, a path no route matches is a 404 from the host.

use serde_json::Value as Json;

use crate::support::{Host, HostConfig, client};
use crate::{fixture_dir, start_fixture};

fn route_info(host: &Host, path: &str) -> (u16, Json, Option<String>) {
    let resp = client().get(host.at(path)).send().unwrap();
    let status = resp.status().as_u16();
    let matched = resp
        .headers()
        .get("x-spin-matched-route")
        .map(|v| v.to_str().unwrap().to_string());
    let text = resp.text().unwrap();
    (
        status,
        serde_json::from_str(&text).unwrap_or(Json::String(text)),
        matched,
    )
}

#[test]
fn most_specific_route_wins_and_spin_headers_describe_the_match() {
    let host = start_fixture();
    let cases = [
        // (path, matched route, component route, path info)
        ("/exact", "/exact", "/exact", ""),
        ("/exact/more", "/...", "", "/exact/more"),
        ("/exactly", "/...", "", "/exactly"),
        ("/", "/...", "", "/"),
        ("/api", "/api/...", "/api", ""),
        ("/api/things/1", "/api/...", "/api", "/things/1"),
        ("/api/exact", "/api/exact", "/api/exact", ""),
        ("/api/exact/sub", "/api/...", "/api", "/exact/sub"),
        ("/api/v2/x/y", "/api/v2/...", "/api/v2", "/x/y"),
        ("/api/v2", "/api/v2/...", "/api/v2", ""),
        ("/api/v22", "/api/...", "/api", "/v22"),
        ("/apix", "/...", "", "/apix"),
    ];
    for (path, route, component_route, path_info) in cases {
        let (status, info, header) = route_info(&host, path);
        assert_eq!(status, 200, "{path}: {info}");
        let spin = &info["spin"];
        assert_eq!(spin["spin-matched-route"], route, "{path}: {info}");
        assert_eq!(spin["spin-raw-component-route"], route, "{path}: {info}");
        assert_eq!(
            spin["spin-component-route"], component_route,
            "{path}: {info}"
        );
        assert_eq!(spin["spin-path-info"], path_info, "{path}: {info}");
        assert_eq!(header.as_deref(), Some(route), "{path}");
    }
    let (_, info, _) = route_info(&host, "/api/things?q=1&r=two");
    let spin = &info["spin"];
    assert_eq!(
        spin["spin-full-url"],
        format!("{}/api/things?q=1&r=two", host.url),
        "{info}"
    );
    assert_eq!(spin["spin-base-path"], "/", "{info}");
    assert!(
        spin["spin-client-addr"]
            .as_str()
            .unwrap()
            .starts_with("127.0.0.1:"),
        "{info}"
    );
    assert_eq!(info["query"], "q=1&r=two", "{info}");
}

#[test]
fn unmatched_paths_get_404_without_a_catch_all_route() {
    let host = Host::start(HostConfig {
        manifest: Some(fixture_dir().join("no-catch-all.toml")),
        ..Default::default()
    });
    for path in ["/exact", "/api", "/api/anything/below"] {
        let (status, info, _) = route_info(&host, path);
        assert_eq!(status, 200, "{path}: {info}");
    }
    for path in ["/", "/nope", "/exactly", "/exact/sub", "/apix"] {
        let (status, body, header) = route_info(&host, path);
        assert_eq!(status, 404, "{path}: {body}");
        assert_eq!(header, None, "{path}: answered by the component");
    }
    let resp = client().post(host.at("/nope")).body("x").send().unwrap();
    assert_eq!(resp.status(), 404);
}
