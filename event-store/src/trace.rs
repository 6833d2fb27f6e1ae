//! W3C trace context (`traceparent`): read from an HTTP request, stored with each event's
//! metadata, carried by the relay in the AMQP headers, and continued by the consumers and the
//! process managers' follow-up commands, so one trace id runs from the request to every change
//! it causes. Each hop is a child: the same trace id, a new span id, the caller's as parent.
//!
//! When spans are exported (OTLP, see the binary's telemetry), [`join`] makes a hop's tracing
//! span the exported span of the same ids, so what the events carry names spans the collector
//! has; without an exporter the ids are made here.
use std::fmt;

use opentelemetry::trace::{SpanContext, SpanId, TraceContextExt, TraceFlags, TraceId, TraceState};
use tracing_opentelemetry::OpenTelemetrySpanExt;
use uuid::Uuid;

/// The metadata key and the header name (HTTP and AMQP) it travels under.
pub const TRACEPARENT: &str = "traceparent";

/// One span's place in a trace: `00-{trace id}-{span id}-{flags}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TraceContext {
    trace_id: u128,
    span_id: u64,
    flags: u8,
}

impl TraceContext {
    /// A new trace (sampled), for a request that came without one.
    pub fn root() -> Self {
        Self {
            trace_id: nonzero_u128(),
            span_id: nonzero_u64(),
            flags: 1,
        }
    }

    /// Parses a `traceparent` value; `None` for anything the W3C format rejects (all-zero
    /// ids, version `ff`, wrong lengths), which then starts a new trace.
    pub fn parse(value: &str) -> Option<Self> {
        let mut parts = value.trim().split('-');
        let (version, trace, span, flags) =
            (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
        let lengths_ok = version.len() == 2 && trace.len() == 32 && span.len() == 16;
        if !lengths_ok || flags.len() != 2 || version == "ff" || !is_lower_hex(value) {
            return None;
        }
        // Version 00 has exactly four parts; later versions may append more.
        if version == "00" && parts.next().is_some() {
            return None;
        }
        let context = Self {
            trace_id: u128::from_str_radix(trace, 16).ok()?,
            span_id: u64::from_str_radix(span, 16).ok()?,
            flags: u8::from_str_radix(flags, 16).ok()?,
        };
        (context.trace_id != 0 && context.span_id != 0).then_some(context)
    }

    /// The next hop: same trace, a span of its own.
    pub fn child(&self) -> Self {
        Self {
            span_id: nonzero_u64(),
            ..*self
        }
    }

    pub fn trace_id(&self) -> String {
        format!("{:032x}", self.trace_id)
    }

    pub fn span_id(&self) -> String {
        format!("{:016x}", self.span_id)
    }
}

/// Places `span` (not yet entered) in the trace of `parent`, a new trace without one, and
/// returns the span's own trace context. With an exporter the ids are those of the exported
/// span, whose parent is `parent` (never the tracing span it happens to run under); without
/// one they are made here.
pub fn join(span: &tracing::Span, parent: Option<TraceContext>) -> TraceContext {
    let remote = match parent {
        Some(parent) => {
            opentelemetry::Context::new().with_remote_span_context(parent.span_context())
        }
        None => opentelemetry::Context::new(),
    };
    // Fails only when no exporter is installed or the span is disabled: ids are made below.
    let _ = span.set_parent(remote);
    let exported = span.context().span().span_context().clone();
    if exported.is_valid() {
        return TraceContext::from_span_context(&exported);
    }
    parent.map_or_else(TraceContext::root, |p| p.child())
}

/// The next hop after `parent` for work done in the current span (a process manager's
/// follow-up command): the current span itself when it is exported and continues `parent`'s
/// trace, so the follow-up's events name a span the collector has; else a child made here.
pub fn continued_here(parent: TraceContext) -> TraceContext {
    let current = tracing::Span::current()
        .context()
        .span()
        .span_context()
        .clone();
    let here = TraceContext::from_span_context(&current);
    match current.is_valid() && here.trace_id == parent.trace_id {
        true => here,
        false => parent.child(),
    }
}

impl TraceContext {
    fn span_context(&self) -> SpanContext {
        SpanContext::new(
            TraceId::from_bytes(self.trace_id.to_be_bytes()),
            SpanId::from_bytes(self.span_id.to_be_bytes()),
            TraceFlags::new(self.flags),
            true,
            TraceState::default(),
        )
    }

    fn from_span_context(context: &SpanContext) -> Self {
        Self {
            trace_id: u128::from_be_bytes(context.trace_id().to_bytes()),
            span_id: u64::from_be_bytes(context.span_id().to_bytes()),
            flags: context.trace_flags().to_u8(),
        }
    }
}

/// The `traceparent` value.
impl fmt::Display for TraceContext {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(
            f,
            "00-{:032x}-{:016x}-{:02x}",
            self.trace_id, self.span_id, self.flags
        )
    }
}

/// What the HTTP layer knows of a request before any route runs, for the handlers to store
/// with the events: its id, and its span's trace context.
#[derive(Debug, Clone, Copy)]
pub struct RequestTrace {
    pub request_id: Uuid,
    pub trace: TraceContext,
}

fn is_lower_hex(value: &str) -> bool {
    value
        .trim()
        .chars()
        .all(|c| c == '-' || c.is_ascii_digit() || ('a'..='f').contains(&c))
}

fn nonzero_u128() -> u128 {
    rand::random::<u128>().max(1)
}

fn nonzero_u64() -> u64 {
    rand::random::<u64>().max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    const EXAMPLE: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    #[test]
    fn a_valid_traceparent_round_trips_and_its_child_keeps_the_trace() {
        let parsed = TraceContext::parse(EXAMPLE).unwrap();
        assert_eq!(parsed.to_string(), EXAMPLE);
        assert_eq!(parsed.trace_id(), "4bf92f3577b34da6a3ce929d0e0e4736");
        let child = parsed.child();
        assert_eq!(child.trace_id(), parsed.trace_id());
        assert_ne!(child.span_id(), parsed.span_id());
        assert!(TraceContext::parse(&child.to_string()).is_some());
        assert!(TraceContext::parse(&TraceContext::root().to_string()).is_some());
    }

    #[test]
    fn without_an_exporter_a_joined_span_is_the_parents_child() {
        let parent = TraceContext::parse(EXAMPLE).unwrap();
        let joined = join(&tracing::Span::none(), Some(parent));
        assert_eq!(joined.trace_id(), parent.trace_id());
        assert_ne!(joined.span_id(), parent.span_id());
        assert_eq!(
            parent.span_context().trace_id().to_string(),
            parent.trace_id()
        );
        let back = TraceContext::from_span_context(&parent.span_context());
        assert_eq!(back, parent);
        let next = continued_here(parent);
        assert_eq!(next.trace_id(), parent.trace_id());
        assert_ne!(next.span_id(), parent.span_id());
    }

    #[test]
    fn malformed_values_are_refused() {
        for bad in [
            "",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e473-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",
        ] {
            assert!(TraceContext::parse(bad).is_none(), "{bad}");
        }
    }
}
