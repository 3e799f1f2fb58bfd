//! HTTP route matching with Spin's rules: `/path` matches exactly, `/path/...` matches the prefix
//! and everything under it, an exact route beats any wildcard, a longer wildcard beats a shorter
//! one, and a request that matches nothing gets `404`.

use anyhow::{Result, bail};

/// A resolved route: which component and what Spin tells it about the match.
#[derive(Debug, Clone, PartialEq)]
pub struct RouteMatch {
    /// Index of the component (into the server's component list).
    pub component: usize,
    /// The route as written in the manifest (`spin-matched-route`, `spin-raw-component-route`).
    pub raw_route: String,
    /// The route without the trailing `/...` (`spin-component-route`).
    pub component_route: String,
    /// The part of the path after the matched prefix (`spin-path-info`).
    pub path_info: String,
}

#[derive(Debug)]
struct Route {
    prefix: String,
    wildcard: bool,
    raw: String,
    component: usize,
}

/// The routing table of an app.
#[derive(Debug, Default)]
pub struct Router {
    routes: Vec<Route>,
}

impl Router {
    /// Adds `route` for `component`; duplicate routes are an error, as in Spin.
    pub fn add(&mut self, route: &str, component: usize) -> Result<()> {
        let (prefix, wildcard) = match route.strip_suffix("/...") {
            Some(p) => (p.to_string(), true),
            None if route == "/..." => (String::new(), true),
            None => (normalise(route), false),
        };
        if self
            .routes
            .iter()
            .any(|r| r.prefix == prefix && r.wildcard == wildcard)
        {
            bail!("duplicate route `{route}`");
        }
        self.routes.push(Route {
            prefix,
            wildcard,
            raw: route.to_string(),
            component,
        });
        Ok(())
    }

    /// Finds the most specific route for `path`.
    pub fn route(&self, path: &str) -> Option<RouteMatch> {
        let path = normalise(path);
        let mut best: Option<&Route> = None;
        for r in &self.routes {
            let hit = if r.wildcard {
                path == r.prefix
                    || (path.starts_with(&r.prefix) && path[r.prefix.len()..].starts_with('/'))
                    || r.prefix.is_empty()
            } else {
                path == r.prefix
            };
            if !hit {
                continue;
            }
            best = match best {
                None => Some(r),
                Some(b) if !r.wildcard && b.wildcard => Some(r),
                Some(b) if r.wildcard == b.wildcard && r.prefix.len() > b.prefix.len() => Some(r),
                keep => keep,
            };
        }
        best.map(|r| RouteMatch {
            component: r.component,
            raw_route: r.raw.clone(),
            component_route: r.prefix.clone(),
            path_info: if r.wildcard {
                path[r.prefix.len()..].to_string()
            } else {
                String::new()
            },
        })
    }
}

fn normalise(path: &str) -> String {
    if path.len() > 1 && path.ends_with('/') {
        path.trim_end_matches('/').to_string()
    } else {
        path.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn router() -> Router {
        let mut r = Router::default();
        r.add("/...", 0).unwrap();
        r.add("/api/...", 1).unwrap();
        r.add("/api/health", 2).unwrap();
        r.add("/api/v2/...", 3).unwrap();
        r
    }

    #[test]
    fn most_specific_route_wins() {
        let r = router();
        assert_eq!(r.route("/api/health").unwrap().component, 2);
        assert_eq!(r.route("/api/healthz").unwrap().component, 1);
        assert_eq!(r.route("/api/v2/x/y").unwrap().component, 3);
        assert_eq!(r.route("/api").unwrap().component, 1);
        assert_eq!(r.route("/apix").unwrap().component, 0);
        assert_eq!(r.route("/").unwrap().component, 0);
    }

    #[test]
    fn path_info_is_the_rest_after_the_prefix() {
        let r = router();
        let m = r.route("/api/v2/x/y").unwrap();
        assert_eq!(m.path_info, "/x/y");
        assert_eq!(m.component_route, "/api/v2");
        assert_eq!(m.raw_route, "/api/v2/...");
        assert_eq!(r.route("/api/health").unwrap().path_info, "");
        assert_eq!(r.route("/publish").unwrap().path_info, "/publish");
    }

    #[test]
    fn no_match_is_none_and_duplicates_are_rejected() {
        let mut r = Router::default();
        r.add("/only", 0).unwrap();
        assert!(r.route("/other").is_none());
        assert!(r.route("/only/sub").is_none());
        assert!(r.add("/only", 1).is_err());
    }
}
