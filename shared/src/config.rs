//! Configuration loading both services share: a TOML file with environment overrides, and
//! secrets that never print.

use std::fmt;
use std::path::{Path, PathBuf};

use figment::Figment;
use figment::providers::{Env, Format, Toml};
use serde::Deserialize;
use serde::de::DeserializeOwned;

/// A secret that never prints.
#[derive(Clone, Default, Deserialize, PartialEq, Eq)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret value.
    pub fn new(text: impl Into<String>) -> Self {
        Self(text.into())
    }

    /// The secret text.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(if self.0.is_empty() { "\"\"" } else { "\"***\"" })
    }
}

/// A `mysql://user:password@host:port` URL whose password never prints.
#[derive(Clone, Default, Deserialize, PartialEq, Eq)]
#[serde(transparent)]
pub struct ConnectionUrl(String);

impl ConnectionUrl {
    /// Wraps a URL.
    pub fn new(url: impl Into<String>) -> Self {
        Self(url.into())
    }

    /// The URL with any password replaced by `***`.
    pub fn redacted(&self) -> String {
        let Some(scheme_end) = self.0.find("://").map(|i| i + 3) else {
            return self.0.clone();
        };
        let rest = &self.0[scheme_end..];
        match (rest.rfind('@'), rest.find(':')) {
            (Some(at), Some(colon)) if colon < at => format!(
                "{}{}:***{}",
                &self.0[..scheme_end],
                &rest[..colon],
                &rest[at..]
            ),
            _ => self.0.clone(),
        }
    }
}

impl std::ops::Deref for ConnectionUrl {
    type Target = str;

    fn deref(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for ConnectionUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.redacted())
    }
}

/// The capture's default topic of committed positions (`kafka.offsets_topic`): not change
/// events, so an apply must not consume it.
pub const DEFAULT_CAPTURE_OFFSETS_TOPIC: &str = "rowferry.capture.offsets";

/// Whether `name` can name a service instance: it becomes part of Kafka topic names,
/// consumer groups and transactional ids, so letters, digits, `.`, `_` and `-` only.
pub fn is_valid_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c))
}

/// Why a password could not be read.
#[derive(Debug, thiserror::Error)]
pub enum PasswordError {
    /// A password file could not be read.
    #[error("cannot read password file {path}: {source}")]
    File {
        path: PathBuf,
        source: std::io::Error,
    },
    /// A password environment variable is not set.
    #[error("environment variable {name} named by `{key}` is not set")]
    Env { name: String, key: &'static str },
}

/// A password given in one of three places: inline, in a file of its own (trailing newline
/// ignored), or in a named environment variable. `env_key` names the setting in errors.
pub fn read_password(
    inline: Option<&Secret>,
    file: Option<&Path>,
    env: Option<&str>,
    env_key: &'static str,
) -> Result<Option<Secret>, PasswordError> {
    if let Some(password) = inline {
        return Ok(Some(password.clone()));
    }
    if let Some(path) = file {
        let text = std::fs::read_to_string(path).map_err(|source| PasswordError::File {
            path: path.to_owned(),
            source,
        })?;
        return Ok(Some(Secret(text.trim_end_matches(['\n', '\r']).to_owned())));
    }
    if let Some(name) = env {
        let value = std::env::var(name).map_err(|_| PasswordError::Env {
            name: name.to_owned(),
            key: env_key,
        })?;
        return Ok(Some(Secret(value)));
    }
    Ok(None)
}

/// Reads `path` (if any), then overrides keys from environment variables
/// `<env_prefix><SECTION>__<KEY>`. The error text names the offending key.
pub fn load<T: DeserializeOwned>(path: Option<&Path>, env_prefix: &str) -> Result<T, String> {
    let mut figment = Figment::new();
    if let Some(path) = path {
        figment = figment.merge(Toml::file_exact(path));
    }
    figment
        .merge(Env::prefixed(env_prefix).split("__").lowercase(true))
        .extract()
        .map_err(|e| {
            let names = std::env::vars_os().filter_map(|(name, _)| name.into_string().ok());
            match service_link_hint(names, env_prefix) {
                Some(hint) => format!("{e}. {hint}"),
                None => e.to_string(),
            }
        })
}

/// Kubernetes gives every pod `<SERVICE>_PORT…` and `<SERVICE>_SERVICE_HOST/PORT…` variables
/// for each Service in its namespace; a Service named like the variable prefix
/// (`rowferry-capture`) makes them read as configuration keys. Names them and the fix.
fn service_link_hint(names: impl Iterator<Item = String>, env_prefix: &str) -> Option<String> {
    let links: Vec<String> = names
        .filter(|name| {
            name.strip_prefix(env_prefix).is_some_and(|rest| {
                rest == "PORT" || rest.starts_with("PORT_") || rest.starts_with("SERVICE_")
            })
        })
        .collect();
    (!links.is_empty()).then(|| {
        format!(
            "{} look like Kubernetes service-link variables of a Service named like \
             {env_prefix}: set `enableServiceLinks: false` in the pod spec",
            links.join(", ")
        )
    })
}

/// Parses TOML text (tests and embedded configs).
pub fn from_toml<T: DeserializeOwned>(text: &str) -> Result<T, String> {
    Figment::new()
        .merge(Toml::string(text))
        .extract()
        .map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kubernetes_service_links_are_named_with_the_fix() {
        let names = [
            "ROWFERRY_CAPTURE_PORT",
            "ROWFERRY_CAPTURE_SERVICE_HOST",
            "ROWFERRY_CAPTURE_NAME",
            "ROWFERRY_APPLY_PORT",
        ]
        .map(String::from);
        let hint = service_link_hint(names.clone().into_iter(), "ROWFERRY_CAPTURE_");
        assert!(
            hint.as_deref().is_some_and(|h| h.contains(
                "ROWFERRY_CAPTURE_PORT, ROWFERRY_CAPTURE_SERVICE_HOST look like Kubernetes"
            ) && h.contains("enableServiceLinks: false")),
            "{hint:?}"
        );
        assert_eq!(
            service_link_hint(names[2..3].iter().cloned(), "ROWFERRY_CAPTURE_"),
            None
        );
    }

    #[test]
    fn urls_print_without_their_password() {
        let url = ConnectionUrl::new("mysql://app:s3cret@db:3306/x");
        assert_eq!(url.redacted(), "mysql://app:***@db:3306/x");
        assert!(!format!("{url:?}").contains("s3cret"));
        assert_eq!(&*url, "mysql://app:s3cret@db:3306/x");
        let at_sign = ConnectionUrl::new("mysql://app:p@ss@db");
        assert_eq!(at_sign.redacted(), "mysql://app:***@db");
        let plain = ConnectionUrl::new("mysql://app@db:3306");
        assert_eq!(plain.redacted(), "mysql://app@db:3306");
    }
}

/// The gRPC control endpoint of a service (`[control]`), the same for both services.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ControlConfig {
    /// Listen address (`127.0.0.1:50051`); empty disables the endpoint (the process then exits
    /// when the pipeline stops or fails, as nothing could restart it); unset: the service's
    /// default.
    #[serde(default)]
    pub grpc_listen: Option<String>,
    /// Start the pipeline when the process starts (else it waits, STOPPED, for a Start).
    #[serde(default = "default_true")]
    pub autostart: bool,
    /// Server certificate chain (PEM). With `tls_key`, the endpoint speaks TLS only.
    #[serde(default)]
    pub tls_cert: Option<PathBuf>,
    /// Private key of `tls_cert` (PEM).
    #[serde(default)]
    pub tls_key: Option<PathBuf>,
    /// CA certificate(s) (PEM) that client certificates must chain to: mutual TLS.
    #[serde(default)]
    pub tls_client_ca: Option<PathBuf>,
    /// Bearer token every control request must carry (`authorization: Bearer <token>`);
    /// health checks and reflection stay open. Prefer `token_file` or the environment.
    #[serde(default)]
    pub token: Option<Secret>,
    /// File holding the bearer token (trailing newline ignored).
    #[serde(default)]
    pub token_file: Option<PathBuf>,
    /// Control requests served at once; more wait for a slot.
    #[serde(default = "default_max_concurrent")]
    pub max_concurrent_requests: usize,
}

fn default_true() -> bool {
    true
}

fn default_max_concurrent() -> usize {
    32
}

impl Default for ControlConfig {
    fn default() -> Self {
        Self {
            grpc_listen: None,
            autostart: true,
            tls_cert: None,
            tls_key: None,
            tls_client_ca: None,
            token: None,
            token_file: None,
            max_concurrent_requests: default_max_concurrent(),
        }
    }
}

impl ControlConfig {
    /// The listen address, `default` when unset; empty when disabled.
    pub fn listen<'a>(&'a self, default: &'a str) -> &'a str {
        self.grpc_listen.as_deref().unwrap_or(default)
    }

    /// Checks the settings that only make sense together; the error names the key and why.
    pub fn check(&self, default_listen: &str) -> Result<(), (&'static str, String)> {
        let enabled = !self.listen(default_listen).is_empty();
        if !self.autostart && !enabled {
            return Err((
                "control.autostart",
                "is false but control.grpc_listen is empty, so nothing could ever start the \
                 pipeline; set autostart = true or give a grpc_listen address"
                    .into(),
            ));
        }
        if self.tls_cert.is_some() != self.tls_key.is_some() {
            return Err((
                "control.tls_cert",
                "and control.tls_key go together: give both (PEM files) or neither".into(),
            ));
        }
        if self.tls_client_ca.is_some() && self.tls_cert.is_none() {
            return Err((
                "control.tls_client_ca",
                "needs TLS: give control.tls_cert and control.tls_key too".into(),
            ));
        }
        if self.token.is_some() && self.token_file.is_some() {
            return Err((
                "control.token",
                "and control.token_file are alternatives: give one".into(),
            ));
        }
        if self.max_concurrent_requests == 0 {
            return Err((
                "control.max_concurrent_requests",
                "must be 1 or more".into(),
            ));
        }
        Ok(())
    }

    /// The bearer token, read from `token_file` when given there.
    pub fn read_token(&self) -> Result<Option<Secret>, PasswordError> {
        read_password(
            self.token.as_ref(),
            self.token_file.as_deref(),
            None,
            "control.token",
        )
    }
}
