//! Application and component variables, resolved the way Spin does: application variables take
//! their value from `SPIN_VARIABLE_<NAME>` in the environment, else their `default`; component
//! variables (and `allowed_outbound_hosts`) are `{{ name }}` templates over them. Serves
//! `fermyon:spin/variables@2.0.0` and `wasi:config/store`.

use crate::bindings::{fermyon::spin::variables as spin_vars, wasi::config::store as wasi_config};
use crate::manifest::VariableDecl;
use crate::state::RequestState;
use anyhow::{Result, bail};
use std::collections::BTreeMap;

/// Resolved application variables (name → value); secrets are never logged.
#[derive(Debug, Default)]
pub struct AppVariables {
    values: BTreeMap<String, String>,
}

impl AppVariables {
    /// Resolves every declared variable from `env` (normally the process environment), failing
    /// at start-up, as Spin does, when a required variable has no value.
    pub fn resolve(
        decls: &BTreeMap<String, VariableDecl>,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Self> {
        let mut values = BTreeMap::new();
        for (name, decl) in decls {
            let env_name = format!("SPIN_VARIABLE_{}", name.to_uppercase());
            let value = match env(&env_name).or_else(|| decl.default.clone()) {
                Some(v) => v,
                None => bail!("required variable `{name}` has no value: set {env_name}"),
            };
            values.insert(name.clone(), value);
        }
        Ok(AppVariables { values })
    }

    /// Expands `{{ name }}` references in `template`.
    pub fn expand(&self, template: &str) -> Result<String> {
        let mut out = String::with_capacity(template.len());
        let mut rest = template;
        while let Some(start) = rest.find("{{") {
            out.push_str(&rest[..start]);
            let after = &rest[start + 2..];
            let Some(end) = after.find("}}") else {
                bail!("unterminated `{{{{` in `{template}`");
            };
            let name = after[..end].trim();
            match self.values.get(name) {
                Some(v) => out.push_str(v),
                None => bail!("undefined variable `{name}`"),
            }
            rest = &after[end + 2..];
        }
        out.push_str(rest);
        Ok(out)
    }
}

/// Names of the variables a template refers to (used to validate the manifest).
pub fn template_references(template: &str) -> Result<Vec<String>> {
    let mut names = Vec::new();
    let mut rest = template;
    while let Some(start) = rest.find("{{") {
        let after = &rest[start + 2..];
        let Some(end) = after.find("}}") else {
            bail!("unterminated `{{{{` in `{template}`");
        };
        names.push(after[..end].trim().to_string());
        rest = &after[end + 2..];
    }
    Ok(names)
}

impl RequestState {
    fn variable(&self, name: &str) -> Result<String, spin_vars::Error> {
        match self.component.variables.get(name) {
            Some(value) => Ok(value.clone()),
            // Only names the manifest did not declare are checked: declared ones were at load.
            None if crate::manifest::check_variable_name(name).is_err() => {
                Err(spin_vars::Error::InvalidName(name.to_string()))
            }
            None => Err(spin_vars::Error::Undefined(format!(
                "no variable for \"{name}\""
            ))),
        }
    }
}

impl spin_vars::Host for RequestState {
    async fn get(&mut self, name: String) -> wasmtime::Result<Result<String, spin_vars::Error>> {
        Ok(self.variable(&name))
    }
}

impl wasi_config::Host for RequestState {
    async fn get(
        &mut self,
        key: String,
    ) -> wasmtime::Result<Result<Option<String>, wasi_config::Error>> {
        Ok(match self.variable(&key) {
            Ok(v) => Ok(Some(v)),
            Err(spin_vars::Error::Undefined(_) | spin_vars::Error::InvalidName(_)) => Ok(None),
            Err(e) => Err(wasi_config::Error::Upstream(format!("{e:?}"))),
        })
    }

    async fn get_all(
        &mut self,
    ) -> wasmtime::Result<Result<Vec<(String, String)>, wasi_config::Error>> {
        let mut all = Vec::new();
        for name in self.component.variables.keys() {
            match self.variable(name) {
                Ok(v) => all.push((name.clone(), v)),
                Err(e) => return Ok(Err(wasi_config::Error::Upstream(format!("{e:?}")))),
            }
        }
        Ok(Ok(all))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decls() -> BTreeMap<String, VariableDecl> {
        let mut d = BTreeMap::new();
        d.insert(
            "store".into(),
            VariableDecl {
                default: Some("sqlite".into()),
                required: false,
                secret: false,
                description: None,
            },
        );
        d.insert(
            "token".into(),
            VariableDecl {
                default: None,
                required: true,
                secret: true,
                description: None,
            },
        );
        d
    }

    #[test]
    fn env_overrides_default_and_required_must_be_set() {
        let env = |k: &str| match k {
            "SPIN_VARIABLE_STORE" => Some("postgres".to_string()),
            "SPIN_VARIABLE_TOKEN" => Some("t0k".to_string()),
            _ => None,
        };
        let vars = AppVariables::resolve(&decls(), env).unwrap();
        assert_eq!(vars.expand("{{ store }}").unwrap(), "postgres");
        assert_eq!(vars.expand("x-{{token}}-y").unwrap(), "x-t0k-y");
        let err = AppVariables::resolve(&decls(), |_| None).unwrap_err();
        assert!(err.to_string().contains("SPIN_VARIABLE_TOKEN"));
    }

    #[test]
    fn templates_report_references_and_errors() {
        assert_eq!(
            template_references("a{{ x }}b{{y}}").unwrap(),
            vec!["x", "y"]
        );
        assert!(template_references("{{ x").is_err());
        let vars = AppVariables::resolve(&decls(), |_| Some("v".into())).unwrap();
        assert!(vars.expand("{{ nope }}").is_err());
        assert_eq!(vars.expand("plain").unwrap(), "plain");
    }
}
