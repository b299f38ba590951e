//! Who may use a control endpoint: TLS (optionally mutual) and a bearer token.

use std::sync::Arc;

use tonic::transport::{Certificate, Identity, ServerTlsConfig};
use tonic::{Request, Status};

use super::EndpointError;
use crate::config::{ControlConfig, Secret};

/// The endpoint's TLS settings and token, read from the configuration's files.
#[derive(Clone, Default)]
pub struct Security {
    /// TLS (with client certificates checked when a client CA is configured).
    pub tls: Option<ServerTlsConfig>,
    /// The bearer token control requests must carry.
    pub token: Option<Secret>,
}

impl std::fmt::Debug for Security {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Security")
            .field("tls", &self.tls.is_some())
            .field("token", &self.token)
            .finish()
    }
}

fn read(key: &'static str, path: &std::path::Path) -> Result<Vec<u8>, EndpointError> {
    std::fs::read(path).map_err(|e| EndpointError::Config {
        key,
        detail: format!("cannot read {}: {e}", path.display()),
    })
}

impl Security {
    /// Reads the certificate, key, client CA and token files `config` names.
    pub fn from_config(config: &ControlConfig) -> Result<Self, EndpointError> {
        let tls = match (&config.tls_cert, &config.tls_key) {
            (Some(cert), Some(key)) => {
                let identity = Identity::from_pem(
                    read("control.tls_cert", cert)?,
                    read("control.tls_key", key)?,
                );
                let mut tls = ServerTlsConfig::new().identity(identity);
                if let Some(ca) = &config.tls_client_ca {
                    tls = tls
                        .client_ca_root(Certificate::from_pem(read("control.tls_client_ca", ca)?));
                }
                Some(tls)
            }
            _ => None,
        };
        let token = config.read_token().map_err(|e| EndpointError::Config {
            key: "control.token_file",
            detail: e.to_string(),
        })?;
        if token.as_ref().is_some_and(|t| t.expose().trim().is_empty()) {
            return Err(EndpointError::Config {
                key: "control.token",
                detail: "is empty; give a token or leave both token and token_file out".into(),
            });
        }
        Ok(Self { tls, token })
    }

    /// The interceptor that checks the token (passes everything when there is none).
    pub fn token_check(&self) -> TokenCheck {
        TokenCheck {
            expected: self.token.as_ref().map(|t| Arc::from(t.expose())),
        }
    }
}

/// Refuses control requests without the right `authorization: Bearer <token>` header.
#[derive(Clone)]
pub struct TokenCheck {
    expected: Option<Arc<str>>,
}

impl tonic::service::Interceptor for TokenCheck {
    fn call(&mut self, request: Request<()>) -> Result<Request<()>, Status> {
        let Some(expected) = &self.expected else {
            return Ok(request);
        };
        let given = request
            .metadata()
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "));
        match given {
            None => Err(Status::unauthenticated(
                "this endpoint needs a bearer token: send `authorization: Bearer <token>` \
                 (rowferryctl --token-file, grpcurl -H)",
            )),
            Some(given) if same(given.as_bytes(), expected.as_bytes()) => Ok(request),
            Some(_) => Err(Status::unauthenticated(
                "the bearer token is wrong: use the one in the service's control.token_file",
            )),
        }
    }
}

/// Compares without stopping at the first difference (the time says nothing of where).
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use tonic::service::Interceptor;

    use super::*;

    fn with_header(value: Option<&str>) -> Request<()> {
        let mut request = Request::new(());
        if let Some(value) = value
            && let Ok(value) = value.parse()
        {
            request.metadata_mut().insert("authorization", value);
        }
        request
    }

    #[test]
    fn the_token_is_required_and_compared_exactly() {
        let mut check = Security {
            tls: None,
            token: Some(Secret::new("s3cret")),
        }
        .token_check();
        assert!(check.call(with_header(Some("Bearer s3cret"))).is_ok());
        for bad in [
            None,
            Some("Bearer s3cre"),
            Some("Bearer s3cret2"),
            Some("s3cret"),
        ] {
            let refused = check.call(with_header(bad)).err();
            assert_eq!(
                refused.map(|s| s.code()),
                Some(tonic::Code::Unauthenticated),
                "{bad:?}"
            );
        }
        let mut open = Security::default().token_check();
        assert!(open.call(with_header(None)).is_ok());
    }
}
