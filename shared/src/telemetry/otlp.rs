//! The OTLP trace exporter, configured only by the standard `OTEL_*` environment variables.

use opentelemetry::KeyValue;
use opentelemetry_otlp::{SpanExporter, WithExportConfig};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::trace::{Config, SdkTracerProvider};

use super::root_sampling::DecidedIds;

use super::init::TelemetryError;

/// How spans leave the process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Protocol {
    /// OTLP over gRPC (the default; port 4317).
    Grpc,
    /// OTLP over HTTP with protobuf bodies (port 4318, `/v1/traces`).
    HttpProtobuf,
}

/// Whether traces are exported, and how, from the environment read through `var`. Off unless
/// an OTLP endpoint is given or `OTEL_TRACES_EXPORTER=otlp`; `OTEL_SDK_DISABLED=true` and
/// `OTEL_TRACES_EXPORTER=none` turn it off.
pub(crate) fn protocol_from_env(
    var: impl Fn(&str) -> Option<String>,
) -> Result<Option<Protocol>, TelemetryError> {
    let set = |name: &str| var(name).filter(|v| !v.trim().is_empty());
    if set("OTEL_SDK_DISABLED").is_some_and(|v| v.trim().eq_ignore_ascii_case("true")) {
        return Ok(None);
    }
    let wanted = match set("OTEL_TRACES_EXPORTER").map(|v| v.trim().to_ascii_lowercase()) {
        Some(v) if v == "none" => return Ok(None),
        Some(v) if v == "otlp" => true,
        Some(other) => {
            return Err(TelemetryError::Environment {
                variable: "OTEL_TRACES_EXPORTER",
                reason: format!("is `{other}`; rowferry exports traces by `otlp` or `none`"),
            });
        }
        None => {
            set("OTEL_EXPORTER_OTLP_ENDPOINT").is_some()
                || set("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT").is_some()
        }
    };
    if !wanted {
        return Ok(None);
    }
    for variable in [
        "OTEL_EXPORTER_OTLP_COMPRESSION",
        "OTEL_EXPORTER_OTLP_TRACES_COMPRESSION",
    ] {
        if let Some(value) = set(variable) {
            return Err(TelemetryError::Environment {
                variable,
                reason: format!(
                    "is `{value}`, but rowferry is built without OTLP compression; unset it \
                     (a collector on the same host or network can compress onwards)"
                ),
            });
        }
    }
    let (variable, protocol) = match set("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL") {
        Some(p) => ("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", p),
        None => (
            "OTEL_EXPORTER_OTLP_PROTOCOL",
            set("OTEL_EXPORTER_OTLP_PROTOCOL").unwrap_or_else(|| "grpc".into()),
        ),
    };
    match protocol.trim() {
        "grpc" => Ok(Some(Protocol::Grpc)),
        "http/protobuf" => Ok(Some(Protocol::HttpProtobuf)),
        other => Err(TelemetryError::Environment {
            variable,
            reason: format!("is `{other}`; use `grpc` (default) or `http/protobuf`"),
        }),
    }
}

/// The resource every span carries: `OTEL_RESOURCE_ATTRIBUTES` and `OTEL_SERVICE_NAME` first,
/// then `service.name` = the service, `service.version` and a random `service.instance.id`
/// where they say nothing.
pub(crate) fn resource(service: &'static str, version: &'static str) -> Resource {
    let from_env = Resource::builder().build();
    let has = |key: &'static str| from_env.get(&opentelemetry::Key::from_static_str(key));
    let mut builder = Resource::builder();
    let named = has("service.name").is_some_and(|v| !v.as_str().starts_with("unknown_service"));
    if !named {
        builder = builder.with_service_name(service);
    }
    if has("service.version").is_none() {
        builder = builder.with_attribute(KeyValue::new("service.version", version));
    }
    if has("service.instance.id").is_none() {
        builder = builder.with_attribute(KeyValue::new(
            "service.instance.id",
            uuid::Uuid::new_v4().to_string(),
        ));
    }
    builder.build()
}

/// A tracer provider exporting in batches (a background thread; the gRPC exporter needs the
/// Tokio runtime this is called in). Endpoint, headers, timeout and compression come from
/// the `OTEL_EXPORTER_OTLP_*` variables; the sampler from `OTEL_TRACES_SAMPLER(_ARG)`.
pub(crate) fn provider(
    protocol: Protocol,
    resource: Resource,
) -> Result<SdkTracerProvider, TelemetryError> {
    let exporter = match protocol {
        Protocol::Grpc => SpanExporter::builder().with_tonic().build(),
        Protocol::HttpProtobuf => SpanExporter::builder()
            .with_http()
            .with_protocol(opentelemetry_otlp::Protocol::HttpBinary)
            .build(),
    }
    .map_err(|e| TelemetryError::Exporter(e.to_string()))?;
    // The sampler from OTEL_TRACES_SAMPLER(_ARG), once for the provider and once for the
    // decisions made before root spans.
    super::root_sampling::install(Config::default().sampler);
    Ok(SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_resource(resource)
        .with_sampler(Config::default().sampler)
        .with_id_generator(DecidedIds::default())
        .build())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env<'a>(pairs: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<String> + 'a {
        move |name| {
            pairs
                .iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| (*v).to_owned())
        }
    }

    #[test]
    fn off_unless_an_endpoint_or_the_exporter_is_named() {
        assert_eq!(protocol_from_env(env(&[])).ok(), Some(None));
        assert_eq!(
            protocol_from_env(env(&[(
                "OTEL_EXPORTER_OTLP_ENDPOINT",
                "http://127.0.0.1:4317"
            )]))
            .ok(),
            Some(Some(Protocol::Grpc))
        );
        assert_eq!(
            protocol_from_env(env(&[("OTEL_TRACES_EXPORTER", "otlp")])).ok(),
            Some(Some(Protocol::Grpc))
        );
        assert_eq!(
            protocol_from_env(env(&[
                (
                    "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
                    "http://c:4318/v1/traces"
                ),
                ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf"),
            ]))
            .ok(),
            Some(Some(Protocol::HttpProtobuf))
        );
        for off in [
            [
                ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4317"),
                ("OTEL_SDK_DISABLED", "true"),
            ],
            [
                ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4317"),
                ("OTEL_TRACES_EXPORTER", "none"),
            ],
        ] {
            assert_eq!(protocol_from_env(env(&off)).ok(), Some(None));
        }
    }

    /// The refusal `protocol_from_env` gives for `vars` ("" when it accepts them).
    fn refusal(vars: &[(&str, &str)]) -> String {
        protocol_from_env(env(vars))
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default()
    }

    #[test]
    fn unsupported_settings_name_the_variable_and_the_choices() {
        let error = refusal(&[("OTEL_TRACES_EXPORTER", "zipkin")]);
        assert!(
            error.contains("OTEL_TRACES_EXPORTER") && error.contains("`otlp`"),
            "{error}"
        );
        let error = refusal(&[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4318"),
            ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/json"),
        ]);
        assert!(
            error.contains("OTEL_EXPORTER_OTLP_PROTOCOL") && error.contains("http/protobuf"),
            "{error}"
        );
        let error = refusal(&[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4317"),
            ("OTEL_EXPORTER_OTLP_COMPRESSION", "gzip"),
        ]);
        assert!(
            error.contains("COMPRESSION") && error.contains("unset it"),
            "{error}"
        );
    }
}
