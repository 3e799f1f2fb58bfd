//! `allowed_outbound_hosts`: which network addresses a component may reach, matched the way Spin
//! matches them (`scheme://host:port`, `*` wildcards for each part, `*.domain` host suffixes, the
//! scheme's default port when none is written).

use anyhow::{Context, Result, bail};

/// One allowed-host pattern.
#[derive(Debug, Clone, PartialEq)]
struct Pattern {
    scheme: String,
    host: String,
    port: PortPattern,
}

#[derive(Debug, Clone, PartialEq)]
enum PortPattern {
    Any,
    Range(u16, u16),
}

/// The expanded allow-list of one component.
#[derive(Debug, Clone, Default)]
pub struct AllowedHosts {
    patterns: Vec<Pattern>,
}

fn default_port(scheme: &str) -> Option<u16> {
    Some(match scheme {
        "postgres" | "postgresql" => 5432,
        "redis" => 6379,
        "mysql" => 3306,
        "http" => 80,
        "https" => 443,
        _ => return None,
    })
}

impl AllowedHosts {
    /// Parses already-expanded patterns; a malformed pattern is a start-up error.
    pub fn parse(patterns: &[String]) -> Result<Self> {
        let mut out = Vec::new();
        for p in patterns {
            out.push(parse_pattern(p).with_context(|| format!("allowed_outbound_hosts `{p}`"))?);
        }
        Ok(AllowedHosts { patterns: out })
    }

    /// Whether `scheme://host:port` may be reached.
    pub fn allows(&self, scheme: &str, host: &str, port: u16) -> bool {
        let scheme = if scheme == "postgresql" {
            "postgres"
        } else {
            scheme
        };
        let host = host.trim_start_matches('[').trim_end_matches(']');
        self.patterns.iter().any(|p| {
            (p.scheme == "*" || p.scheme == scheme)
                && host_matches(&p.host, host)
                && match p.port {
                    PortPattern::Any => true,
                    PortPattern::Range(lo, hi) => (lo..=hi).contains(&port),
                }
        })
    }
}

fn host_matches(pattern: &str, host: &str) -> bool {
    if pattern == "*" {
        return true;
    }
    if let Some(suffix) = pattern.strip_prefix("*.") {
        return host.len() > suffix.len() + 1
            && host.ends_with(suffix)
            && host.as_bytes()[host.len() - suffix.len() - 1] == b'.';
    }
    pattern.eq_ignore_ascii_case(host)
}

fn parse_pattern(p: &str) -> Result<Pattern> {
    let Some((scheme, rest)) = p.split_once("://") else {
        bail!("missing scheme (write e.g. `postgres://127.0.0.1:5432`)");
    };
    let rest = rest.trim_end_matches('/');
    if rest.contains('/') {
        bail!("paths are not allowed");
    }
    let scheme = if scheme == "postgresql" {
        "postgres"
    } else {
        scheme
    };
    let (host, port) = match rest.rsplit_once(':') {
        Some((h, port)) if !h.ends_with(']') || rest.starts_with('[') => (h, Some(port)),
        _ => (rest, None),
    };
    if host.is_empty() {
        bail!("empty host");
    }
    let port = match port {
        Some("*") => PortPattern::Any,
        Some(range) if range.contains('-') => {
            let (lo, hi) = range.split_once('-').context("bad port range")?;
            PortPattern::Range(lo.parse()?, hi.parse()?)
        }
        Some(n) => {
            let n: u16 = n.parse().context("bad port")?;
            PortPattern::Range(n, n)
        }
        None if scheme == "*" => PortPattern::Any,
        None => match default_port(scheme) {
            Some(n) => PortPattern::Range(n, n),
            None => bail!("no default port for scheme `{scheme}`: write one"),
        },
    };
    Ok(Pattern {
        scheme: scheme.to_string(),
        host: host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_string(),
        port,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn allow(ps: &[&str]) -> AllowedHosts {
        AllowedHosts::parse(&ps.iter().map(|s| s.to_string()).collect::<Vec<_>>()).unwrap()
    }

    #[test]
    fn exact_default_port_and_wildcards() {
        let a = allow(&[
            "postgres://127.0.0.1:5432",
            "postgres://db.internal",
            "redis://*:*",
        ]);
        assert!(a.allows("postgres", "127.0.0.1", 5432));
        assert!(!a.allows("postgres", "127.0.0.1", 5433));
        assert!(a.allows("postgres", "db.internal", 5432));
        assert!(a.allows("postgresql", "db.internal", 5432));
        assert!(!a.allows("postgres", "10.0.0.1", 5432));
        assert!(a.allows("redis", "anything", 1));
        assert!(!a.allows("mysql", "127.0.0.1", 3306));
    }

    #[test]
    fn subdomain_wildcards_and_ranges() {
        let a = allow(&["postgres://*.example.com:5000-5010"]);
        assert!(a.allows("postgres", "db.example.com", 5005));
        assert!(!a.allows("postgres", "example.com", 5005));
        assert!(!a.allows("postgres", "db.example.com", 5432));
        assert!(!a.allows("postgres", "evilexample.com", 5005));
    }

    #[test]
    fn malformed_patterns_are_rejected() {
        assert!(AllowedHosts::parse(&["127.0.0.1:5432".into()]).is_err());
        assert!(AllowedHosts::parse(&["postgres://h:notaport".into()]).is_err());
        assert!(AllowedHosts::parse(&["foo://h".into()]).is_err());
    }
}
