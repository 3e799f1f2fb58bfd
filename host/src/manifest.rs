//! `spin.toml` (manifest version 2): the parts of Spin's application manifest edge-host
//! understands, parsed strictly enough that a typo is an error at start-up rather than a
//! surprise at request time. Fields Spin documents but edge-host does not act on are still parsed
//! (hence `allow(dead_code)` on a few of them) so a valid Spin manifest is never rejected.

use anyhow::{Context, Result, bail};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// A parsed manifest plus the directory its relative paths are resolved against.
#[derive(Debug)]
pub struct App {
    /// Directory holding `spin.toml`; `source` and build `workdir` are relative to it.
    pub dir: PathBuf,
    /// The raw manifest.
    pub manifest: Manifest,
}

/// Top level of `spin.toml`.
#[allow(dead_code)]
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// Only version 2 is supported (Spin 2 and later).
    pub spin_manifest_version: u32,
    /// Name, version and description of the app.
    pub application: Application,
    /// Application variables, overridable through `SPIN_VARIABLE_<NAME>`.
    #[serde(default)]
    pub variables: BTreeMap<String, VariableDecl>,
    /// Triggers by type; only `http` is served.
    #[serde(default)]
    pub trigger: Triggers,
    /// Components by id.
    #[serde(default)]
    pub component: BTreeMap<String, ComponentDecl>,
}

/// `[application]`.
#[allow(dead_code)]
#[derive(Debug, Deserialize)]
pub struct Application {
    /// Application name, used in logs.
    pub name: String,
    /// Free-form version.
    #[serde(default)]
    pub version: Option<String>,
    /// Free-form description.
    #[serde(default)]
    pub description: Option<String>,
    /// Authors, ignored.
    #[serde(default)]
    pub authors: Vec<String>,
    /// Per-trigger-type application settings (`[application.trigger.http] base`).
    #[serde(default)]
    pub trigger: Option<toml::Table>,
}

/// `[trigger]` tables.
#[allow(dead_code)]
#[derive(Debug, Default, Deserialize)]
pub struct Triggers {
    /// `[[trigger.http]]` entries.
    #[serde(default)]
    pub http: Vec<HttpTrigger>,
    /// Other trigger types are accepted in the manifest but not served.
    #[serde(flatten)]
    pub other: BTreeMap<String, toml::Value>,
}

/// One `[[trigger.http]]`.
#[allow(dead_code)]
#[derive(Debug, Deserialize)]
pub struct HttpTrigger {
    /// Optional id of the trigger.
    #[serde(default)]
    pub id: Option<String>,
    /// Route pattern, or `{ private = true }` for a component reachable only internally.
    pub route: RouteDecl,
    /// The component id the route dispatches to.
    pub component: String,
    /// `executor = { type = "spin" | "wagi" }`: only the default (spin) is supported.
    #[serde(default)]
    pub executor: Option<toml::Value>,
}

/// A route as written in the manifest.
#[allow(dead_code)]
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum RouteDecl {
    /// `route = "/path"` or `route = "/path/..."`.
    Path(String),
    /// `route = { private = true }`.
    Private {
        /// Must be `true`.
        private: bool,
    },
}

/// `[variables.NAME]`.
#[allow(dead_code)]
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VariableDecl {
    /// Value used when no provider supplies one.
    #[serde(default)]
    pub default: Option<String>,
    /// A value must come from a provider; start-up fails otherwise.
    #[serde(default)]
    pub required: bool,
    /// Never printed in logs.
    #[serde(default)]
    pub secret: bool,
    /// Free-form description.
    #[serde(default)]
    pub description: Option<String>,
}

/// `[component.ID]`.
#[allow(dead_code)]
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ComponentDecl {
    /// Path of the `.wasm`, relative to the manifest directory.
    pub source: SourceDecl,
    /// Free-form description.
    #[serde(default)]
    pub description: Option<String>,
    /// Key-value store labels the component may open.
    #[serde(default)]
    pub key_value_stores: Vec<String>,
    /// SQLite database labels the component may open.
    #[serde(default)]
    pub sqlite_databases: Vec<String>,
    /// Outbound addresses (`postgres://host:port`, templates allowed) the component may reach.
    #[serde(default)]
    pub allowed_outbound_hosts: Vec<String>,
    /// Component variables: templates over application variables.
    #[serde(default)]
    pub variables: BTreeMap<String, String>,
    /// Environment variables visible to the guest.
    #[serde(default)]
    pub environment: BTreeMap<String, String>,
    /// `[component.ID.build]`, run by `up --build`.
    #[serde(default)]
    pub build: Option<BuildDecl>,
    /// Static files to mount: not supported by edge-host (rejected if non-empty).
    #[serde(default)]
    pub files: Vec<toml::Value>,
    /// Other capabilities Spin knows (`ai_models`, ...): rejected if non-empty.
    #[serde(default)]
    pub ai_models: Vec<String>,
    /// Spin's `dependencies_inherit_configuration`, ignored.
    #[serde(default)]
    pub dependencies_inherit_configuration: Option<bool>,
}

/// `source` of a component: a local path (URL and registry sources are not supported).
#[allow(dead_code)]
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum SourceDecl {
    /// `source = "path/to/file.wasm"`.
    Path(String),
    /// `source = { url = ..., digest = ... }` and registry sources.
    Remote(toml::Table),
}

/// `[component.ID.build]`.
#[allow(dead_code)]
#[derive(Debug, Deserialize)]
pub struct BuildDecl {
    /// Shell command (or list of commands) to build the component.
    pub command: CommandDecl,
    /// Working directory relative to the manifest directory.
    #[serde(default)]
    pub workdir: Option<String>,
    /// Watch globs, used by `spin watch`; ignored here.
    #[serde(default)]
    pub watch: Vec<String>,
}

/// A build command: one string or several.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum CommandDecl {
    /// One command.
    One(String),
    /// Several commands run in order.
    Many(Vec<String>),
}

impl CommandDecl {
    /// The commands in order.
    pub fn commands(&self) -> Vec<&str> {
        match self {
            CommandDecl::One(c) => vec![c.as_str()],
            CommandDecl::Many(cs) => cs.iter().map(String::as_str).collect(),
        }
    }
}

impl App {
    /// Reads and validates the manifest at `path` (a file, or a directory holding `spin.toml`).
    pub fn load(path: &Path) -> Result<App> {
        let file = if path.is_dir() {
            path.join("spin.toml")
        } else {
            path.to_path_buf()
        };
        let text = std::fs::read_to_string(&file)
            .with_context(|| format!("cannot read manifest {}", file.display()))?;
        let manifest: Manifest = toml::from_str(&text)
            .with_context(|| format!("invalid manifest {}", file.display()))?;
        let dir = file
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_else(|| PathBuf::from("."));
        let dir = if dir.as_os_str().is_empty() {
            PathBuf::from(".")
        } else {
            dir
        };
        let app = App { dir, manifest };
        app.validate()
            .with_context(|| format!("invalid manifest {}", file.display()))?;
        Ok(app)
    }

    fn validate(&self) -> Result<()> {
        let m = &self.manifest;
        if m.spin_manifest_version != 2 {
            bail!(
                "spin_manifest_version = {} is not supported (only 2)",
                m.spin_manifest_version
            );
        }
        for name in m.variables.keys() {
            check_variable_name(name)?;
        }
        for (name, decl) in &m.variables {
            if decl.required && decl.default.is_some() {
                bail!("variable `{name}`: `required` and `default` are mutually exclusive");
            }
            if !decl.required && decl.default.is_none() {
                bail!("variable `{name}` needs either a `default` or `required = true`");
            }
        }
        if m.trigger.http.is_empty() {
            bail!("no [[trigger.http]] entries: edge-host serves HTTP triggers only");
        }
        for t in &m.trigger.http {
            if !m.component.contains_key(&t.component) {
                bail!(
                    "trigger route refers to unknown component `{}`",
                    t.component
                );
            }
            if let Some(exec) = &t.executor {
                let kind = exec.get("type").and_then(|v| v.as_str()).unwrap_or("");
                if kind != "spin" {
                    bail!("executor type `{kind}` is not supported (only `spin`)");
                }
            }
            if let RouteDecl::Path(r) = &t.route
                && !r.starts_with('/')
            {
                bail!("route `{r}` must start with `/`");
            }
        }
        for (id, c) in &m.component {
            if let SourceDecl::Remote(_) = c.source {
                bail!("component `{id}`: only local file sources are supported");
            }
            if !c.files.is_empty() {
                bail!("component `{id}`: `files` mounts are not supported by edge-host");
            }
            if !c.ai_models.is_empty() {
                bail!("component `{id}`: `ai_models` are not supported by edge-host");
            }
            for var in c.variables.keys() {
                check_variable_name(var)
                    .with_context(|| format!("component `{id}` variable `{var}`"))?;
            }
            for template in c.variables.values().chain(&c.allowed_outbound_hosts) {
                for used in crate::variables::template_references(template)? {
                    if !m.variables.contains_key(&used) {
                        bail!("component `{id}` refers to undeclared variable `{used}`");
                    }
                }
            }
        }
        Ok(())
    }

    /// Absolute-or-relative path of a component's `.wasm`.
    pub fn source_path(&self, component: &ComponentDecl) -> PathBuf {
        match &component.source {
            SourceDecl::Path(p) => self.dir.join(p),
            SourceDecl::Remote(_) => unreachable!("rejected by validate"),
        }
    }
}

/// Spin's rule for variable names: lower-case ASCII letters, digits and `_`, starting with a
/// letter.
pub fn check_variable_name(name: &str) -> Result<()> {
    let mut chars = name.chars();
    let ok = matches!(chars.next(), Some('a'..='z'))
        && chars.all(|c| matches!(c, 'a'..='z' | '0'..='9' | '_'));
    if !ok {
        bail!(
            "invalid variable name `{name}`: use lower-case letters, digits and `_`, starting with a letter"
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<App> {
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("spin.toml");
        std::fs::write(&path, text)?;
        App::load(&path)
    }

    const MINIMAL: &str = r#"
spin_manifest_version = 2
[application]
name = "x"
[variables]
a = { default = "1" }
[[trigger.http]]
route = "/..."
component = "c"
[component.c]
source = "c.wasm"
[component.c.variables]
v = "{{ a }}"
"#;

    #[test]
    fn minimal_manifest_loads() {
        let app = parse(MINIMAL).unwrap();
        assert_eq!(app.manifest.application.name, "x");
        assert_eq!(app.manifest.trigger.http.len(), 1);
    }

    #[test]
    fn unknown_component_and_bad_version_are_errors() {
        let bad = MINIMAL.replace("component = \"c\"", "component = \"nope\"");
        assert!(format!("{:#}", parse(&bad).unwrap_err()).contains("unknown component"));
        let bad = MINIMAL.replace("= 2", "= 1");
        assert!(format!("{:#}", parse(&bad).unwrap_err()).contains("not supported"));
    }

    #[test]
    fn undeclared_variable_reference_is_an_error() {
        let bad = MINIMAL.replace("{{ a }}", "{{ b }}");
        assert!(format!("{:#}", parse(&bad).unwrap_err()).contains("undeclared variable `b`"));
    }

    #[test]
    fn variable_names_follow_spin_rules() {
        assert!(check_variable_name("db_url2").is_ok());
        assert!(check_variable_name("DbUrl").is_err());
        assert!(check_variable_name("2x").is_err());
        assert!(check_variable_name("").is_err());
    }
}
