//! Severity: the six levels an event may carry, the names publishers use for them, and the
//! mapping from OTLP severity numbers.
//!
//! Levels are ordered (`trace` < `debug` < `info` < `warn` < `error` < `fatal`) and stored as
//! their rank 1–6 (0 in counter rows means "no level"), so `level=warn` ("warn and above") is
//! one range condition. Names are matched case-insensitively and common aliases are accepted:
//! syslog's (`emerg`, `alert`, `crit`, `err`, `notice`, `informational`), log4j/JUL's
//! (`severe`, `fine`, `finest`), and the short forms of zap/logrus/serilog (`wrn`, `eror`, `dbg` …).

use serde::{Serialize, Serializer};

/// One severity level, ordered from least to most severe.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Level {
    /// Finest-grained diagnostics.
    Trace = 1,
    /// Diagnostics for developers.
    Debug = 2,
    /// Normal operation.
    Info = 3,
    /// Something unexpected that did not fail.
    Warn = 4,
    /// A failure of one operation.
    Error = 5,
    /// A failure of the whole program or service.
    Fatal = 6,
}

impl Level {
    /// Every level, least severe first (the order of `/stats` and `/volume` fields).
    pub const ALL: [Level; 6] = [
        Level::Trace,
        Level::Debug,
        Level::Info,
        Level::Warn,
        Level::Error,
        Level::Fatal,
    ];

    /// The canonical name, as stored in answers (`warn`, never `warning`).
    pub fn name(self) -> &'static str {
        match self {
            Level::Trace => "trace",
            Level::Debug => "debug",
            Level::Info => "info",
            Level::Warn => "warn",
            Level::Error => "error",
            Level::Fatal => "fatal",
        }
    }

    /// The rank stored in the `level` column (1–6); counters use 0 for "no level".
    pub fn rank(self) -> i64 {
        self as i64
    }

    /// The level of a stored rank; `None` for 0 or anything out of range.
    pub fn from_rank(rank: i64) -> Option<Level> {
        Level::ALL.into_iter().find(|l| l.rank() == rank)
    }

    /// Parses a level name or alias, ignoring case and surrounding blanks; `None` if unknown.
    ///
    /// Public so every ingest adapter (OTLP `severityText`, Loki's `level` label) normalises
    /// the same way as the publish routes.
    pub fn parse(name: &str) -> Option<Level> {
        let name = name.trim();
        if name.is_empty() || name.len() > 16 {
            return None;
        }
        // Lowercased on the stack: every event with a level comes through here.
        let mut lower = [0u8; 16];
        let lower = &mut lower[..name.len()];
        lower.copy_from_slice(name.as_bytes());
        lower.make_ascii_lowercase();
        Some(match &*lower {
            b"trace" | b"trc" | b"finest" | b"verbose" | b"vrb" => Level::Trace,
            b"debug" | b"dbg" | b"fine" | b"finer" => Level::Debug,
            b"info" | b"inf" | b"information" | b"informational" | b"notice" => Level::Info,
            b"warn" | b"warning" | b"wrn" => Level::Warn,
            b"error" | b"err" | b"eror" | b"erro" | b"severe" => Level::Error,
            b"fatal" | b"ftl" | b"critical" | b"crit" | b"crt" | b"alert" | b"emerg"
            | b"emergency" | b"panic" => Level::Fatal,
            _ => return None,
        })
    }

    /// Maps an OTLP `SeverityNumber` (1–24) to a level: 1–4 trace, 5–8 debug, 9–12 info,
    /// 13–16 warn, 17–20 error, 21–24 fatal; 0 (unspecified) and anything else is `None`.
    #[allow(dead_code)] // for the OTLP ingest adapter (issue 15)
    pub fn from_otlp_severity(number: i32) -> Option<Level> {
        match number {
            1..=24 => Level::from_rank(i64::from((number - 1) / 4 + 1)),
            _ => None,
        }
    }
}

impl Serialize for Level {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.name())
    }
}

/// The accepted names, for error messages.
pub const LEVEL_NAMES: &str = "trace, debug, info, warn, error, fatal";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_aliases_ignore_case() {
        for (text, level) in [
            ("WARN", Level::Warn),
            ("Warning", Level::Warn),
            (" err ", Level::Error),
            ("CRITICAL", Level::Fatal),
            ("notice", Level::Info),
            ("trace", Level::Trace),
            ("Debug", Level::Debug),
            ("emerg", Level::Fatal),
            ("INFORMATIONAL", Level::Info),
            ("\tEmergency\n", Level::Fatal),
        ] {
            assert_eq!(Level::parse(text), Some(level), "{text}");
        }
        for bad in [
            "",
            "loud",
            "warnings",
            "5",
            "w a r n",
            "\u{131}nfo",        // dotless ı: only ASCII letters fold
            "informationalxyz!", // 17 bytes
            "ERROR\u{0}",
        ] {
            assert_eq!(Level::parse(bad), None, "{bad}");
        }
        for l in Level::ALL {
            assert_eq!(Level::parse(l.name()), Some(l));
            assert_eq!(Level::from_rank(l.rank()), Some(l));
        }
        assert_eq!(Level::from_rank(0), None);
    }

    #[test]
    fn otlp_severity_numbers() {
        let at = |n| Level::from_otlp_severity(n);
        assert_eq!((at(0), at(25), at(-1)), (None, None, None));
        assert_eq!((at(1), at(4)), (Some(Level::Trace), Some(Level::Trace)));
        assert_eq!((at(5), at(8)), (Some(Level::Debug), Some(Level::Debug)));
        assert_eq!((at(9), at(12)), (Some(Level::Info), Some(Level::Info)));
        assert_eq!((at(13), at(16)), (Some(Level::Warn), Some(Level::Warn)));
        assert_eq!((at(17), at(20)), (Some(Level::Error), Some(Level::Error)));
        assert_eq!((at(21), at(24)), (Some(Level::Fatal), Some(Level::Fatal)));
        assert!(Level::Warn > Level::Info);
    }
}
