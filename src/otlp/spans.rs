//! A run's spans in OTLP form, built from its outcome after the run: a root span for the run,
//! one per step that ran, and one per attempt of a step that retried, with the ids its
//! requests carried in `traceparent`.

use std::time::{Duration, SystemTime};

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue, InstrumentationScope, KeyValue};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{
    span::SpanKind, status::StatusCode, ResourceSpans, ScopeSpans, Span, Status,
};

use crate::outcome::{AttemptSpan, Reason, ScenarioOutcome, StepOutcome, StepStatus};

/// Longest status message: the first line of the failure, cut.
const STATUS_MESSAGE_CHARS: usize = 200;

/// The run's spans; none when its ids are not valid hex (they always are).
pub fn run_spans(out: &ScenarioOutcome) -> Vec<Span> {
    let (Some(trace), Some(root)) = (id::<16>(&out.trace_id), id::<8>(&out.span_id)) else {
        return Vec::new();
    };
    let mut spans = vec![root_span(out, &trace, &root)];
    for step in &out.steps {
        let Some(step_id) = step.span_id.as_deref().and_then(id::<8>) else {
            continue;
        };
        if step.status == StepStatus::Skipped {
            continue;
        }
        spans.push(step_span(out, step, &trace, &root, &step_id));
        for a in &step.attempt_spans {
            if let Some(a_id) = id::<8>(&a.span_id) {
                spans.push(attempt_span(out, step, a, &trace, &step_id, &a_id));
            }
        }
    }
    spans
}

/// One export request for spans of one resource.
pub fn request(resource: &[(String, String)], spans: Vec<Span>) -> ExportTraceServiceRequest {
    ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            resource: Some(Resource {
                attributes: resource.iter().map(|(k, v)| string(k, v)).collect(),
                ..Default::default()
            }),
            scope_spans: vec![ScopeSpans {
                scope: Some(InstrumentationScope {
                    name: "flowprobe".to_string(),
                    version: env!("CARGO_PKG_VERSION").to_string(),
                    ..Default::default()
                }),
                spans,
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
}

fn root_span(out: &ScenarioOutcome, trace: &[u8; 16], root: &[u8; 8]) -> Span {
    let mut attributes = vec![
        string("flowprobe.scenario", &out.scenario),
        string("flowprobe.file", &out.file),
        string("flowprobe.run_id", &out.run_id),
        int("flowprobe.iteration", i64::from(out.iteration)),
    ];
    if let Some(r) = out.reason {
        attributes.push(string("flowprobe.reason", r.as_str()));
    }
    if out.cancelled {
        attributes.push(boolean("flowprobe.cancelled", true));
    }
    for (k, v) in &out.labels {
        attributes.push(string(&format!("flowprobe.label.{k}"), v));
    }
    let status = if out.cancelled {
        StatusCode::Unset
    } else if out.success {
        StatusCode::Ok
    } else {
        StatusCode::Error
    };
    let failure = out.first_failure().and_then(|s| s.message.as_deref());
    Span {
        trace_id: trace.to_vec(),
        span_id: root.to_vec(),
        name: out.scenario.clone(),
        kind: SpanKind::Internal as i32,
        start_time_unix_nano: nanos(out.started_at),
        end_time_unix_nano: nanos(out.started_at + out.duration),
        attributes,
        status: Some(span_status(
            status,
            out.reason,
            failure.or(out.message.as_deref()),
        )),
        ..sampled()
    }
}

fn step_span(
    out: &ScenarioOutcome,
    step: &StepOutcome,
    trace: &[u8; 16],
    root: &[u8; 8],
    id: &[u8; 8],
) -> Span {
    let retried = !step.attempt_spans.is_empty();
    let mut attributes = common(out, step);
    attributes.push(int("flowprobe.attempts", i64::from(step.attempts)));
    if !retried {
        attributes.push(int("flowprobe.attempt", 1));
    }
    if step.cleanup {
        attributes.push(boolean("flowprobe.finally", true));
    }
    push_result(&mut attributes, step.reason, step.http_status);
    let start = step.started_at.unwrap_or(out.started_at);
    let code = if step.status == StepStatus::Passed {
        StatusCode::Ok
    } else {
        StatusCode::Error
    };
    Span {
        trace_id: trace.to_vec(),
        span_id: id.to_vec(),
        parent_span_id: root.to_vec(),
        name: step.name.clone(),
        // The span that sent the step's requests is a client span.
        kind: if retried {
            SpanKind::Internal
        } else {
            SpanKind::Client
        } as i32,
        start_time_unix_nano: nanos(start),
        end_time_unix_nano: nanos(start + step.duration),
        attributes,
        status: Some(span_status(code, step.reason, step.message.as_deref())),
        ..sampled()
    }
}

fn attempt_span(
    out: &ScenarioOutcome,
    step: &StepOutcome,
    a: &AttemptSpan,
    trace: &[u8; 16],
    parent: &[u8; 8],
    id: &[u8; 8],
) -> Span {
    let mut attributes = common(out, step);
    attributes.push(int("flowprobe.attempt", i64::from(a.attempt)));
    push_result(&mut attributes, a.reason, a.http_status);
    let code = if a.reason.is_none() {
        StatusCode::Ok
    } else {
        StatusCode::Error
    };
    // The message kept is the last attempt's; an earlier one shows its reason only.
    let last = a.attempt == step.attempts;
    let message = if last { step.message.as_deref() } else { None };
    Span {
        trace_id: trace.to_vec(),
        span_id: id.to_vec(),
        parent_span_id: parent.to_vec(),
        name: format!("{} attempt {}", step.name, a.attempt),
        kind: SpanKind::Client as i32,
        start_time_unix_nano: nanos(a.started_at),
        end_time_unix_nano: nanos(a.started_at + a.duration),
        attributes,
        status: Some(span_status(code, a.reason, message)),
        ..sampled()
    }
}

/// Attributes of every step and attempt span.
fn common(out: &ScenarioOutcome, step: &StepOutcome) -> Vec<KeyValue> {
    vec![
        string("flowprobe.scenario", &out.scenario),
        string("flowprobe.step", &step.name),
        string("flowprobe.step.kind", step.kind),
        string("flowprobe.location", &step.location),
    ]
}

fn push_result(attributes: &mut Vec<KeyValue>, reason: Option<Reason>, http: Option<u16>) {
    if let Some(r) = reason {
        attributes.push(string("flowprobe.reason", r.as_str()));
    }
    if let Some(code) = http {
        attributes.push(int("http.response.status_code", i64::from(code)));
    }
}

/// An error status says `reason: first line of the (redacted) message`.
fn span_status(code: StatusCode, reason: Option<Reason>, message: Option<&str>) -> Status {
    let message = match (code, reason) {
        (StatusCode::Error, Some(r)) => {
            let first = message.and_then(|m| m.lines().next()).unwrap_or("");
            let text = if first.is_empty() {
                r.as_str().to_string()
            } else {
                format!("{r}: {first}")
            };
            text.chars().take(STATUS_MESSAGE_CHARS).collect()
        }
        _ => String::new(),
    };
    Status {
        message,
        code: code as i32,
    }
}

/// A span with the W3C "sampled" flag and "has remote parent: no" known.
fn sampled() -> Span {
    Span {
        // W3C flags 0x01 (sampled) | SPAN_FLAGS_CONTEXT_HAS_IS_REMOTE_MASK (0x100).
        flags: 0x101,
        ..Default::default()
    }
}

fn nanos(t: SystemTime) -> u64 {
    let d = t
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or(Duration::ZERO);
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

fn id<const N: usize>(hex_text: &str) -> Option<[u8; N]> {
    let mut out = [0u8; N];
    hex::decode_to_slice(hex_text, &mut out).ok()?;
    Some(out)
}

fn string(key: &str, value: &str) -> KeyValue {
    attr(key, any_value::Value::StringValue(value.to_string()))
}

fn int(key: &str, value: i64) -> KeyValue {
    attr(key, any_value::Value::IntValue(value))
}

fn boolean(key: &str, value: bool) -> KeyValue {
    attr(key, any_value::Value::BoolValue(value))
}

fn attr(key: &str, value: any_value::Value) -> KeyValue {
    KeyValue {
        key: key.to_string(),
        value: Some(AnyValue { value: Some(value) }),
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::outcome::fixtures;

    fn attr_of<'a>(s: &'a Span, key: &str) -> Option<&'a any_value::Value> {
        s.attributes
            .iter()
            .find(|kv| kv.key == key)
            .and_then(|kv| kv.value.as_ref())
            .and_then(|v| v.value.as_ref())
    }

    #[test]
    fn a_failed_run_is_a_root_with_step_children_and_skipped_steps_have_none() {
        let mut failed = fixtures::step("pay", StepStatus::Failed);
        failed.span_id = Some("1111111111111111".into());
        failed.message = Some("HTTP 503\n  response: x".into());
        failed.http_status = Some(503);
        let out = fixtures::run(
            "shop",
            vec![
                fixtures::step("home", StepStatus::Passed),
                failed,
                fixtures::step("never", StepStatus::Skipped),
            ],
        );
        let spans = run_spans(&out);
        assert_eq!(spans.len(), 3);
        let root = &spans[0];
        assert!(root.parent_span_id.is_empty());
        assert_eq!(hex::encode(&root.trace_id), out.trace_id);
        assert_eq!(
            root.status.as_ref().map(|s| s.code),
            Some(StatusCode::Error as i32)
        );
        let pay = &spans[2];
        assert_eq!(pay.parent_span_id, root.span_id);
        assert_eq!(pay.kind, SpanKind::Client as i32);
        let status = pay.status.clone().unwrap_or_default();
        assert_eq!(status.message, "http_status: HTTP 503");
        assert_eq!(
            attr_of(pay, "http.response.status_code"),
            Some(&any_value::Value::IntValue(503))
        );
        assert_eq!(
            attr_of(pay, "flowprobe.reason"),
            Some(&any_value::Value::StringValue("http_status".into()))
        );
    }

    #[test]
    fn a_retried_step_has_a_child_span_per_attempt() {
        let mut step = fixtures::step("flaky", StepStatus::Passed);
        step.attempts = 2;
        step.attempt_spans = (1..=2)
            .map(|n| AttemptSpan {
                attempt: n,
                span_id: format!("{n:016x}"),
                started_at: SystemTime::UNIX_EPOCH,
                duration: Duration::from_millis(1),
                reason: (n == 1).then_some(Reason::Connect),
                http_status: None,
            })
            .collect();
        let spans = run_spans(&fixtures::run("shop", vec![step]));
        assert_eq!(spans.len(), 4);
        assert_eq!(spans[1].kind, SpanKind::Internal as i32);
        assert_eq!(spans[2].parent_span_id, spans[1].span_id);
        assert_eq!(spans[2].name, "flaky attempt 1");
        assert_eq!(
            spans[2].status.as_ref().map(|s| s.code),
            Some(StatusCode::Error as i32)
        );
        assert_eq!(
            attr_of(&spans[3], "flowprobe.attempt"),
            Some(&any_value::Value::IntValue(2))
        );
    }
}
