//! Access logs in, telltale lines out: the mapping of one JSON access log line (nginx,
//! Envoy, Traefik, or a `[formats.<name>]` of the config) to a telltale JSON line.
//!
//! ```text
//! access.log ──line──▶ [Mapper::map_line] ──telltale JSON line──▶ [parse] ▸ flag ▸ lake
//!                           └─ Rejection (line, field, why) ──▶ dead letter
//! ```
//!
//! A source maps before the pipeline sees the line, so the write-ahead log keeps the mapped
//! line and a replay validates it exactly as the first time. What the mapping does not use
//! is kept: every other field of the line goes into the event's `attributes` (a field whose
//! name telltale itself uses, such as `error`, as `log.<name>`).

use serde_json::{Map, Value};

use crate::config::{AccessLogFormat, LatencyUnit, TimestampFormat};
use crate::parse::{RejectReason, Rejection};

/// Field names of telltale's own line: an access log field (or an OTLP attribute) with
/// one of these names is kept under a prefix so it cannot be taken for telltale's.
pub const TELLTALE_FIELDS: [&str; 11] = [
    "service",
    "timestamp",
    "status_code",
    "latency_ms",
    "kind",
    "error",
    "endpoint",
    "method",
    "region",
    "instance",
    "trace_id",
];

/// The `&'static` name of one of telltale's fields (for a [`Rejection`] read back from
/// the write-ahead log), `None` for another name.
pub fn field_name(name: &str) -> Option<&'static str> {
    TELLTALE_FIELDS.into_iter().find(|f| *f == name)
}

/// A compiled access log mapping.
#[derive(Debug, Clone)]
pub struct Mapper {
    format: AccessLogFormat,
    /// The format's name, for messages (`nginx`, `myapp`).
    name: String,
}

impl Mapper {
    /// A mapper for `format`, called `name` in messages; `service` (the `--service` flag)
    /// wins over the format's own service settings when given.
    pub fn new(mut format: AccessLogFormat, name: &str, service: Option<&str>) -> Self {
        if let Some(s) = service.map(str::trim).filter(|s| !s.is_empty()) {
            s.clone_into(&mut format.service);
        }
        Self {
            format,
            name: name.to_owned(),
        }
    }

    /// The format's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Maps `raw` (one line, line number `line` in its source) to a telltale JSON line,
    /// appended to `out` without a newline. On error `out` is left as it was.
    pub fn map_line(&self, raw: &[u8], line: u64, out: &mut Vec<u8>) -> Result<(), Rejection> {
        let ctx = Ctx {
            line,
            name: &self.name,
        };
        let text = std::str::from_utf8(raw).map_err(|e| {
            ctx.err(
                None,
                RejectReason::InvalidUtf8,
                format!(
                    "line is not valid UTF-8 (invalid byte at offset {})",
                    e.valid_up_to()
                ),
            )
        })?;
        let value: Value = serde_json::from_str(text).map_err(|e| {
            ctx.err(
                None,
                RejectReason::MalformedJson,
                format!(
                    "not a JSON access log line ({e}); the {} format reads one JSON object a line",
                    self.name
                ),
            )
        })?;
        let Value::Object(mut obj) = value else {
            return Err(ctx.err(
                None,
                RejectReason::NotAnObject,
                format!("a JSON {}, not an object", kind_of(&value)),
            ));
        };
        let f = &self.format;
        let service = if f.service.trim().is_empty() {
            let v = lookup(&obj, &f.service_field).cloned().ok_or_else(|| {
                ctx.missing(
                    "service",
                    &f.service_field,
                    "the service name; or give a fixed one with `--service NAME` \
                     (or `service` in the format's table)",
                )
            })?;
            match v {
                Value::String(s) if !s.trim().is_empty() && s != "-" => s,
                other => {
                    return Err(ctx.err(
                        Some("service"),
                        RejectReason::EmptyServiceName,
                        format!(
                            "field `{}` (the service) is {}; give a fixed name with `--service NAME`",
                            f.service_field,
                            describe(&other)
                        ),
                    ));
                }
            }
        } else {
            f.service.trim().to_owned()
        };

        let ts = lookup(&obj, &f.timestamp_field)
            .cloned()
            .ok_or_else(|| ctx.missing("timestamp", &f.timestamp_field, "the request's time"))?;
        let timestamp_us = timestamp_us(&ts, f.timestamp_format).ok_or_else(|| {
            ctx.err(
                Some("timestamp"),
                RejectReason::InvalidTimestamp,
                format!(
                    "field `{}` is {}, not {}",
                    f.timestamp_field,
                    describe(&ts),
                    timestamp_example(f.timestamp_format)
                ),
            )
        })?;

        let status = lookup(&obj, &f.status_field)
            .cloned()
            .ok_or_else(|| ctx.missing("status_code", &f.status_field, "the HTTP status"))?;
        let status_code = number(&status)
            .filter(|n| n.fract() == 0.0 && (100.0..=599.0).contains(n))
            .ok_or_else(|| {
                ctx.err(
                    Some("status_code"),
                    RejectReason::OutOfRange,
                    format!(
                        "field `{}` is {}, not an HTTP status from 100 to 599 (0 or \"-\" \
                         means no response was sent)",
                        f.status_field,
                        describe(&status)
                    ),
                )
            })? as u16;

        let latency = lookup(&obj, &f.latency_field)
            .cloned()
            .ok_or_else(|| ctx.missing("latency_ms", &f.latency_field, "the request's duration"))?;
        let latency_ms = number(&latency)
            .filter(|n| n.is_finite() && *n >= 0.0)
            .map(|n| n * f.latency_unit.to_ms())
            .ok_or_else(|| {
                ctx.err(
                    Some("latency_ms"),
                    RejectReason::OutOfRange,
                    format!(
                        "field `{}` is {}, not a duration >= 0 in {}",
                        f.latency_field,
                        describe(&latency),
                        unit_name(f.latency_unit)
                    ),
                )
            })?;

        let text_field = |field: &str, obj: &Map<String, Value>| {
            if field.is_empty() {
                return None;
            }
            match lookup(obj, field)?.clone() {
                Value::String(s) if !s.is_empty() && s != "-" => Some(s),
                Value::Number(n) => Some(n.to_string()),
                _ => None,
            }
        };
        let mut method = text_field(&f.method_field, &obj);
        let mut endpoint = text_field(&f.endpoint_field, &obj);
        if (method.is_none() || endpoint.is_none())
            && let Some(request) = text_field(&f.request_field, &obj)
        {
            let mut parts = request.split_ascii_whitespace();
            let (m, p) = (parts.next(), parts.next());
            if method.is_none() {
                method = m.map(str::to_owned);
            }
            if endpoint.is_none() {
                endpoint = p.map(str::to_owned);
            }
        }
        let endpoint = endpoint.map(|e| match e.split_once('?') {
            Some((path, _)) => path.to_owned(),
            None => e,
        });
        let trace_id = text_field(&f.trace_id_field, &obj);
        let instance = text_field(&f.instance_field, &obj);
        let region = text_field(&f.region_field, &obj);

        // The fields the mapping took from the top level are not kept twice.
        let consumed: Vec<&str> = [
            (&f.service_field, f.service.trim().is_empty()),
            (&f.timestamp_field, true),
            (&f.status_field, true),
            (&f.latency_field, true),
            (&f.endpoint_field, endpoint.is_some()),
            (&f.method_field, method.is_some()),
            (&f.trace_id_field, trace_id.is_some()),
            (&f.instance_field, instance.is_some()),
            (&f.region_field, region.is_some()),
        ]
        .into_iter()
        .filter(|(k, used)| *used && !k.is_empty())
        .map(|(k, _)| k.as_str())
        .collect();
        for k in consumed {
            obj.remove(k);
        }

        let mut event = Map::new();
        event.insert("service".into(), Value::String(service));
        event.insert(
            "timestamp".into(),
            Value::String(crate::event::rfc3339(timestamp_us)),
        );
        event.insert("status_code".into(), Value::from(status_code));
        event.insert("latency_ms".into(), Value::from(latency_ms));
        for (k, v) in [
            ("endpoint", endpoint),
            ("method", method),
            ("trace_id", trace_id),
            ("instance", instance),
            ("region", region),
        ] {
            if let Some(v) = v {
                event.insert(k.into(), Value::String(v));
            }
        }
        for (k, v) in obj {
            let k = if TELLTALE_FIELDS.contains(&k.as_str()) {
                format!("log.{k}")
            } else {
                k
            };
            event.entry(k).or_insert(v);
        }
        // Writing a `Map` of plain values cannot fail.
        serde_json::to_writer(&mut *out, &Value::Object(event)).map_err(|e| {
            ctx.err(
                None,
                RejectReason::MalformedJson,
                format!("mapping failed: {e}"),
            )
        })
    }
}

/// Context of one line's errors.
struct Ctx<'a> {
    line: u64,
    name: &'a str,
}

impl Ctx<'_> {
    fn err(&self, field: Option<&'static str>, reason: RejectReason, message: String) -> Rejection {
        Rejection {
            line: self.line,
            field,
            reason,
            message,
        }
    }

    fn missing(&self, key: &'static str, field: &str, what: &str) -> Rejection {
        self.err(
            Some(key),
            RejectReason::MissingField,
            format!(
                "the {} access log format reads {what} from field `{field}`, which this line \
                 lacks; check the log_format or set the field name in `[formats.<name>]`",
                self.name
            ),
        )
    }
}

/// `field` of `obj`: the key itself, else a dotted path into nested objects.
fn lookup<'a>(obj: &'a Map<String, Value>, field: &str) -> Option<&'a Value> {
    if field.is_empty() {
        return None;
    }
    if let Some(v) = obj.get(field) {
        return (!v.is_null()).then_some(v);
    }
    let mut parts = field.split('.');
    let mut v = obj.get(parts.next()?)?;
    for part in parts {
        v = v.as_object()?.get(part)?;
    }
    (!v.is_null()).then_some(v)
}

/// A number, or a string holding one (nginx's `escape=json` quotes every variable).
fn number(v: &Value) -> Option<f64> {
    match v {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

fn timestamp_us(v: &Value, format: TimestampFormat) -> Option<i64> {
    let scale_to_us = |per_us: f64| -> Option<i64> {
        // Whole numbers keep their precision (nanoseconds do not fit an f64 exactly).
        let int = match v {
            Value::Number(n) => n.as_i64(),
            Value::String(s) => s.trim().parse::<i64>().ok(),
            _ => None,
        };
        match int {
            Some(i) if per_us >= 1.0 => Some(i / per_us as i64),
            Some(i) => i.checked_mul((1.0 / per_us) as i64),
            None => {
                let x = number(v)? / per_us;
                (x.is_finite() && x.abs() < 9.0e18).then_some(x as i64)
            }
        }
    };
    match format {
        TimestampFormat::Rfc3339 => chrono::DateTime::parse_from_rfc3339(v.as_str()?.trim())
            .ok()
            .map(|t| t.timestamp_micros()),
        TimestampFormat::Clf => {
            chrono::DateTime::parse_from_str(v.as_str()?.trim(), "%d/%b/%Y:%H:%M:%S %z")
                .ok()
                .map(|t| t.timestamp_micros())
        }
        TimestampFormat::UnixSeconds => scale_to_us(1e-6),
        TimestampFormat::UnixMillis => scale_to_us(1e-3),
        TimestampFormat::UnixMicros => scale_to_us(1.0),
        TimestampFormat::UnixNanos => scale_to_us(1e3),
    }
}

fn timestamp_example(format: TimestampFormat) -> &'static str {
    match format {
        TimestampFormat::Rfc3339 => "an RFC 3339 time such as \"2026-12-03T14:00:00+00:00\"",
        TimestampFormat::Clf => "a Common Log Format time such as \"03/Dec/2026:14:00:00 +0000\"",
        TimestampFormat::UnixSeconds => "seconds since the epoch such as 1796306400.123",
        TimestampFormat::UnixMillis => "milliseconds since the epoch such as 1796306400123",
        TimestampFormat::UnixMicros => "microseconds since the epoch",
        TimestampFormat::UnixNanos => "nanoseconds since the epoch",
    }
}

fn unit_name(unit: LatencyUnit) -> &'static str {
    match unit {
        LatencyUnit::Seconds => "seconds",
        LatencyUnit::Millis => "milliseconds",
        LatencyUnit::Micros => "microseconds",
        LatencyUnit::Nanos => "nanoseconds",
    }
}

fn kind_of(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// A value for a message: short, quoted like JSON.
fn describe(v: &Value) -> String {
    let mut s = v.to_string();
    if s.len() > 60 {
        let mut end = 60;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        s.truncate(end);
        s.push('…');
    }
    s
}

#[cfg(test)]
mod tests;
