//! Log lines: tracing-subscriber's text or JSON format, plus the trace and span id of the
//! current span when traces are exported, with passwords in URLs masked.

use std::borrow::Cow;
use std::fmt;

use opentelemetry::trace::TraceContextExt;
use tracing::{Event, Subscriber};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::{LookupSpan, Registry};

/// Wraps a line format: masks URL passwords, appends `trace_id`/`span_id`.
pub(crate) struct TracedLines<F> {
    pub inner: F,
    /// The inner format writes JSON objects.
    pub json: bool,
    /// Traces are exported: look up the ids.
    pub trace_ids: bool,
}

impl<S, N, F> FormatEvent<S, N> for TracedLines<F>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
    F: FormatEvent<S, N>,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let mut line = String::with_capacity(256);
        self.inner
            .format_event(ctx, Writer::new(&mut line), event)?;
        let mut line = match redact_urls(&line) {
            Cow::Borrowed(_) => line,
            Cow::Owned(redacted) => redacted,
        };
        if self.trace_ids
            && let Some((trace_id, span_id)) = current_ids()
        {
            let body = line.trim_end_matches('\n').len();
            line.truncate(body);
            if self.json && line.ends_with('}') {
                line.pop();
                line.push_str(&format!(
                    ",\"trace_id\":\"{trace_id}\",\"span_id\":\"{span_id}\"}}"
                ));
            } else {
                line.push_str(&format!(" trace_id={trace_id} span_id={span_id}"));
            }
            line.push('\n');
        }
        writer.write_str(&line)
    }
}

/// The trace and span id of the innermost current span the OpenTelemetry layer tracks. Read
/// from the registry, not from the log layer's context: that one only holds the spans the
/// log filter enables, and a `warn` filter would hide every INFO span.
fn current_ids() -> Option<(String, String)> {
    tracing::dispatcher::get_default(|dispatch| {
        let current = dispatch.current_span();
        let registry = dispatch.downcast_ref::<Registry>()?;
        let ids: Vec<tracing::span::Id> = registry
            .span(current.id()?)?
            .scope()
            .map(|span| span.id())
            .collect();
        ids.iter().find_map(|id| {
            let context = tracing_opentelemetry::get_otel_context(id, dispatch)?;
            let span_context = context.span().span_context().clone();
            span_context.is_valid().then(|| {
                (
                    span_context.trace_id().to_string(),
                    span_context.span_id().to_string(),
                )
            })
        })
    })
}

/// `scheme://user:password@host` → `scheme://user:***@host`, wherever it appears (errors of
/// drivers and URLs in messages may carry one).
pub(crate) fn redact_urls(text: &str) -> Cow<'_, str> {
    if !text.contains("://") {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    let mut changed = false;
    while let Some(found) = rest.find("://") {
        let authority_start = found + 3;
        out.push_str(&rest[..authority_start]);
        let tail = &rest[authority_start..];
        let authority_len = tail
            .find(|c: char| {
                // Where a URL's authority ends. `;`, `,`, `)` and the like may stand in a
                // password unencoded, so they do not end it.
                c == '/' || c == '?' || c == '#' || c == '"' || c == '\'' || c.is_whitespace()
            })
            .unwrap_or(tail.len());
        let authority = &tail[..authority_len];
        match (authority.rfind('@'), authority.find(':')) {
            (Some(at), Some(colon)) if colon < at => {
                out.push_str(&authority[..=colon]);
                out.push_str("***");
                out.push_str(&authority[at..]);
                changed = true;
            }
            _ => out.push_str(authority),
        }
        rest = &tail[authority_len..];
    }
    out.push_str(rest);
    if changed {
        Cow::Owned(out)
    } else {
        Cow::Borrowed(text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masks_passwords_in_urls_only() {
        assert_eq!(
            redact_urls("cannot connect to mysql://app:s3cret@db:3306/x: refused"),
            "cannot connect to mysql://app:***@db:3306/x: refused"
        );
        assert_eq!(
            redact_urls(r#"{"url":"mysql://a:p@ss@h","b":"https://u:v@k/"}"#),
            r#"{"url":"mysql://a:***@h","b":"https://u:***@k/"}"#
        );
        assert_eq!(
            redact_urls("mysql://app:pa;ss,w)rd@db:3306"),
            "mysql://app:***@db:3306"
        );
        let plain = "mysql://app@db:3306 and http://127.0.0.1:4317 at 12:00";
        assert!(matches!(redact_urls(plain), Cow::Borrowed(_)));
    }
}
