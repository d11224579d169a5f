//! Line validation: raw NDJSON bytes in, a [`Record`] or a [`Rejection`] out.
//!
//! Every rejection names the line, the field and why, so the sender can fix it and the
//! dead-letter file explains itself. Nothing here panics on any input (fuzzed by proptest
//! below): non-UTF-8, control characters and absurd numbers all become rejections.

use std::borrow::Cow;
use std::fmt;

use serde::Serialize;
use serde_json::{Map, Value};

use crate::check_line::{self, FieldProblem};
use crate::config::ValidationConfig;
use crate::event::{MICROS_PER_SEC, ProbeEvent, ProbeHop, Record, ServiceEvent};

/// Limits applied to each line; built from `[validation]`.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Longest line accepted, bytes.
    pub max_line_bytes: usize,
    /// Longest service name accepted, bytes.
    pub max_service_name_bytes: usize,
    /// Furthest into the future an event may be stamped, microseconds.
    pub max_future_skew_us: i64,
    /// Largest latency accepted, milliseconds.
    pub max_latency_ms: f64,
}

impl Default for Limits {
    fn default() -> Self {
        Self::from(&ValidationConfig::default())
    }
}

impl From<&ValidationConfig> for Limits {
    fn from(v: &ValidationConfig) -> Self {
        Self {
            max_line_bytes: v.max_line_bytes,
            max_service_name_bytes: v.max_service_name_bytes,
            max_future_skew_us: i64::try_from(v.max_future_skew.as_micros()).unwrap_or(i64::MAX),
            max_latency_ms: v.max_latency_ms,
        }
    }
}

/// Why a line was rejected; `as_str` is the `reason` label of the rejects metric.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, PartialOrd, Ord)]
#[serde(rename_all = "snake_case")]
pub enum RejectReason {
    /// Longer than `max_line_bytes`.
    LineTooLong,
    /// Not valid UTF-8.
    InvalidUtf8,
    /// Not parseable as JSON.
    MalformedJson,
    /// JSON, but not an object.
    NotAnObject,
    /// A required field is absent or null.
    MissingField,
    /// A field has the wrong JSON type.
    WrongType,
    /// A field's value is outside its allowed range.
    OutOfRange,
    /// `service` is empty or only whitespace.
    EmptyServiceName,
    /// `service` is longer than allowed.
    ServiceNameTooLong,
    /// `timestamp` is not RFC 3339 or epoch milliseconds.
    InvalidTimestamp,
    /// `timestamp` is too far in the future.
    TimestampInFuture,
    /// `kind` names no kind of line we know.
    UnknownKind,
    /// A valid event of a service past `limits.max_services`: kept in the dead letter
    /// instead of the lake, rollups and SLOs.
    ServiceLimit,
}

impl RejectReason {
    /// Every reason, for pre-registering metric labels.
    pub const ALL: [RejectReason; 13] = [
        Self::LineTooLong,
        Self::InvalidUtf8,
        Self::MalformedJson,
        Self::NotAnObject,
        Self::MissingField,
        Self::WrongType,
        Self::OutOfRange,
        Self::EmptyServiceName,
        Self::ServiceNameTooLong,
        Self::InvalidTimestamp,
        Self::TimestampInFuture,
        Self::UnknownKind,
        Self::ServiceLimit,
    ];

    /// Stable snake_case name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::LineTooLong => "line_too_long",
            Self::InvalidUtf8 => "invalid_utf8",
            Self::MalformedJson => "malformed_json",
            Self::NotAnObject => "not_an_object",
            Self::MissingField => "missing_field",
            Self::WrongType => "wrong_type",
            Self::OutOfRange => "out_of_range",
            Self::EmptyServiceName => "empty_service_name",
            Self::ServiceNameTooLong => "service_name_too_long",
            Self::InvalidTimestamp => "invalid_timestamp",
            Self::TimestampInFuture => "timestamp_in_future",
            Self::UnknownKind => "unknown_kind",
            Self::ServiceLimit => "service_limit",
        }
    }
}

/// A rejected line: where, which field, why.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Rejection {
    /// 1-based line number within its batch or file.
    pub line: u64,
    /// The offending field, when one is to blame.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<&'static str>,
    /// Machine-readable reason.
    pub reason: RejectReason,
    /// Human-readable explanation.
    pub message: String,
}

impl fmt::Display for Rejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}: ", self.line)?;
        if let Some(field) = self.field {
            write!(f, "field `{field}`: ")?;
        }
        f.write_str(&self.message)
    }
}

impl std::error::Error for Rejection {}

/// Splits a buffer into lines with 1-based numbers, dropping `\r` before `\n` and lines
/// that are empty or only whitespace (as every NDJSON reader does).
pub fn lines(buf: &[u8]) -> impl Iterator<Item = (u64, &[u8])> {
    // memchr finds newlines many bytes at a time; a byte-by-byte split was a visible
    // share of the parse thread's time.
    let mut rest = Some(buf);
    std::iter::from_fn(move || {
        let b = rest?;
        match memchr::memchr(b'\n', b) {
            Some(i) => {
                rest = Some(&b[i + 1..]);
                Some(&b[..i])
            }
            None => {
                rest = None;
                Some(b)
            }
        }
    })
    .enumerate()
    .map(|(i, l)| (i as u64 + 1, l.strip_suffix(b"\r").unwrap_or(l)))
    .filter(|(_, l)| !l.iter().all(u8::is_ascii_whitespace))
}

/// Fields a service event may carry besides the required ones; anything else goes to
/// `attributes`.
const KNOWN_OPTIONAL: [&str; 6] = [
    "error", "endpoint", "method", "region", "instance", "trace_id",
];

/// Validates one line. `now_us` is the current time (for the future-skew check).
pub fn parse_line(
    raw: &[u8],
    line: u64,
    now_us: i64,
    limits: &Limits,
) -> Result<Record, Rejection> {
    parse_line_borrowed(raw, line, now_us, limits).map(ParsedLine::into_record)
}

/// A validated line that may borrow from the input: the common service line without a
/// copy of its strings, anything else as an owned [`Record`].
#[derive(Debug, Clone, PartialEq)]
pub enum ParsedLine<'a> {
    /// A service line, strings borrowed from the input where they had no escapes.
    Service(ServiceLine<'a>),
    /// Any other valid line (probes, service lines with extra attributes, ...), boxed:
    /// the rare case should not make every hot-path value as large as a probe.
    Record(Box<Record>),
}

/// A valid service event whose strings borrow from the line.
#[derive(Debug, Clone, PartialEq)]
pub struct ServiceLine<'a> {
    /// Service name.
    pub service: Cow<'a, str>,
    /// Event time, µs since the epoch.
    pub timestamp_us: i64,
    /// HTTP status, 100–599.
    pub status_code: u16,
    /// Latency, ms.
    pub latency_ms: f64,
    /// The sender's own error flag.
    pub error: Option<bool>,
    /// Optional context.
    pub endpoint: Option<Cow<'a, str>>,
    /// Optional context.
    pub method: Option<Cow<'a, str>>,
    /// Optional context.
    pub region: Option<Cow<'a, str>>,
    /// Optional context.
    pub instance: Option<Cow<'a, str>>,
    /// Optional context.
    pub trace_id: Option<Cow<'a, str>>,
    /// Every other field, as a JSON object with sorted keys (see [`ServiceEvent`]).
    pub attributes: Option<String>,
}

impl ParsedLine<'_> {
    /// The owned record.
    pub fn into_record(self) -> Record {
        match self {
            Self::Service(line) => Record::Service(line.into_owned()),
            Self::Record(record) => *record,
        }
    }
}

impl ServiceLine<'_> {
    /// The owned event.
    pub fn into_owned(self) -> ServiceEvent {
        ServiceEvent {
            service: self.service.into_owned(),
            timestamp_us: self.timestamp_us,
            status_code: self.status_code,
            latency_ms: self.latency_ms,
            error: self.error,
            endpoint: self.endpoint.map(Cow::into_owned),
            method: self.method.map(Cow::into_owned),
            region: self.region.map(Cow::into_owned),
            instance: self.instance.map(Cow::into_owned),
            trace_id: self.trace_id.map(Cow::into_owned),
            attributes: self.attributes,
        }
    }
}

/// [`parse_line`] without copying a plain service line's strings: same validation, same
/// rejections.
pub fn parse_line_borrowed<'a>(
    raw: &'a [u8],
    line: u64,
    now_us: i64,
    limits: &Limits,
) -> Result<ParsedLine<'a>, Rejection> {
    let reject = |field, reason, message: String| Rejection {
        line,
        field,
        reason,
        message,
    };
    if raw.len() > limits.max_line_bytes {
        return Err(reject(
            None,
            RejectReason::LineTooLong,
            format!(
                "line is {} bytes, over the limit of {} bytes",
                raw.len(),
                limits.max_line_bytes
            ),
        ));
    }
    let text = std::str::from_utf8(raw).map_err(|e| {
        reject(
            None,
            RejectReason::InvalidUtf8,
            format!(
                "line is not valid UTF-8 (invalid byte at offset {})",
                e.valid_up_to()
            ),
        )
    })?;
    if let Some(event) = fast::service_line(text, now_us, limits) {
        return Ok(ParsedLine::Service(event));
    }
    parse_text(text, line, now_us, limits).map(|r| ParsedLine::Record(Box::new(r)))
}

/// The full validator over a UTF-8 line: accepts everything `parse_line` accepts and
/// names the field and the reason for everything else.
fn parse_text(text: &str, line: u64, now_us: i64, limits: &Limits) -> Result<Record, Rejection> {
    let reject = |field, reason, message: String| Rejection {
        line,
        field,
        reason,
        message,
    };
    let value: Value = serde_json::from_str(text).map_err(|e| {
        reject(
            None,
            RejectReason::MalformedJson,
            format!("malformed JSON: {e}"),
        )
    })?;
    let Value::Object(obj) = value else {
        return Err(reject(
            None,
            RejectReason::NotAnObject,
            format!("expected a JSON object, got {}", type_name(&value)),
        ));
    };
    let ctx = Ctx {
        line,
        now_us,
        limits,
    };
    match obj.get("kind") {
        None | Some(Value::Null) => ctx.service(obj),
        Some(Value::String(k)) if k == "service" => ctx.service(obj),
        Some(Value::String(k)) if k == "probe" => ctx.probe(obj),
        Some(Value::String(k)) if k == "http" => ctx.http_check(&obj),
        Some(Value::String(k)) => Err(reject(
            Some("kind"),
            RejectReason::UnknownKind,
            format!(
                "unknown kind {:?}: expected \"service\", \"probe\" or \"http\"",
                truncate(k)
            ),
        )),
        Some(other) => Err(reject(
            Some("kind"),
            RejectReason::WrongType,
            format!("expected a string, got {}", type_name(other)),
        )),
    }
}

struct Ctx<'a> {
    line: u64,
    now_us: i64,
    limits: &'a Limits,
}

impl Ctx<'_> {
    fn err(&self, field: &'static str, reason: RejectReason, message: String) -> Rejection {
        Rejection {
            line: self.line,
            field: Some(field),
            reason,
            message,
        }
    }

    fn required<'v>(
        &self,
        obj: &'v Map<String, Value>,
        field: &'static str,
    ) -> Result<&'v Value, Rejection> {
        match obj.get(field) {
            None | Some(Value::Null) => {
                Err(self.err(field, RejectReason::MissingField, "is required".to_owned()))
            }
            Some(v) => Ok(v),
        }
    }

    fn wrong_type(&self, field: &'static str, expected: &str, got: &Value) -> Rejection {
        self.err(
            field,
            RejectReason::WrongType,
            format!("expected {expected}, got {}", describe(got)),
        )
    }

    fn name(
        &self,
        obj: &Map<String, Value>,
        field: &'static str,
        max: usize,
    ) -> Result<String, Rejection> {
        let v = self.required(obj, field)?;
        let Value::String(s) = v else {
            return Err(self.wrong_type(field, "a string", v));
        };
        if s.trim().is_empty() {
            return Err(self.err(field, RejectReason::EmptyServiceName, "is empty".to_owned()));
        }
        if s.len() > max {
            return Err(self.err(
                field,
                RejectReason::ServiceNameTooLong,
                format!("is {} bytes, over the limit of {max} bytes", s.len()),
            ));
        }
        Ok(s.clone())
    }

    fn timestamp(&self, obj: &Map<String, Value>) -> Result<i64, Rejection> {
        const F: &str = "timestamp";
        let v = self.required(obj, F)?;
        let us = match v {
            Value::String(s) => {
                // chrono's own error text ("premature end of input") helps nobody; an
                // example of the expected form does.
                let t = chrono::DateTime::parse_from_rfc3339(s).map_err(|_| {
                    self.err(
                        F,
                        RejectReason::InvalidTimestamp,
                        format!(
                            "{:?} is not an RFC 3339 timestamp with a UTC offset, e.g. \"2025-04-30T12:00:00Z\" \
                             or \"2025-04-30T14:00:00.5+02:00\"",
                            truncate(s)
                        ),
                    )
                })?;
                t.timestamp_micros()
            }
            Value::Number(n) => {
                let Some(ms) = n.as_i64() else {
                    return Err(self.err(
                        F,
                        RejectReason::InvalidTimestamp,
                        format!("{n} is not whole epoch milliseconds; send an integer or an RFC 3339 string"),
                    ));
                };
                ms.checked_mul(1000).ok_or_else(|| {
                    self.err(
                        F,
                        RejectReason::OutOfRange,
                        format!("{ms} epoch milliseconds is out of range"),
                    )
                })?
            }
            other => {
                return Err(self.wrong_type(
                    F,
                    "an RFC 3339 string or integer epoch milliseconds",
                    other,
                ));
            }
        };
        if us < 0 {
            return Err(self.err(
                F,
                RejectReason::OutOfRange,
                "is before 1970-01-01T00:00:00Z".to_owned(),
            ));
        }
        if us > self.now_us.saturating_add(self.limits.max_future_skew_us) {
            return Err(self.err(
                F,
                RejectReason::TimestampInFuture,
                format!(
                    "{} is {}s in the future, more than the allowed {}s",
                    crate::event::rfc3339(us),
                    (us - self.now_us) / MICROS_PER_SEC,
                    self.limits.max_future_skew_us / MICROS_PER_SEC
                ),
            ));
        }
        Ok(us)
    }

    fn number(&self, v: &Value, field: &'static str, min: f64, max: f64) -> Result<f64, Rejection> {
        let Value::Number(n) = v else {
            return Err(self.wrong_type(field, "a number", v));
        };
        let x = n.as_f64().filter(|x| x.is_finite()).ok_or_else(|| {
            self.err(
                field,
                RejectReason::OutOfRange,
                format!("{n} is not a finite number"),
            )
        })?;
        if x < min || x > max {
            return Err(self.err(
                field,
                RejectReason::OutOfRange,
                format!("{x} is out of range: must be from {min} to {max}"),
            ));
        }
        Ok(x)
    }

    fn integer(
        &self,
        v: &Value,
        field: &'static str,
        min: i64,
        max: i64,
    ) -> Result<i64, Rejection> {
        let Value::Number(n) = v else {
            return Err(self.wrong_type(field, "an integer", v));
        };
        let Some(i) = n.as_i64() else {
            return Err(self.err(
                field,
                RejectReason::WrongType,
                format!("expected an integer, got {n}"),
            ));
        };
        if i < min || i > max {
            return Err(self.err(
                field,
                RejectReason::OutOfRange,
                format!("{i} is out of range: must be from {min} to {max}"),
            ));
        }
        Ok(i)
    }

    fn optional_string(
        &self,
        obj: &Map<String, Value>,
        field: &'static str,
    ) -> Result<Option<String>, Rejection> {
        match obj.get(field) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(other) => Err(self.wrong_type(field, "a string", other)),
        }
    }

    fn service(&self, obj: Map<String, Value>) -> Result<Record, Rejection> {
        let service = self.name(&obj, "service", self.limits.max_service_name_bytes)?;
        let timestamp_us = self.timestamp(&obj)?;
        let status = self.integer(self.required(&obj, "status_code")?, "status_code", 100, 599)?;
        let latency_ms = self.number(
            self.required(&obj, "latency_ms")?,
            "latency_ms",
            0.0,
            self.limits.max_latency_ms,
        )?;
        let error = match obj.get("error") {
            None | Some(Value::Null) => None,
            Some(Value::Bool(b)) => Some(*b),
            Some(other) => return Err(self.wrong_type("error", "true or false", other)),
        };
        let endpoint = self.optional_string(&obj, "endpoint")?;
        let method = self.optional_string(&obj, "method")?;
        let region = self.optional_string(&obj, "region")?;
        let instance = self.optional_string(&obj, "instance")?;
        let trace_id = self.optional_string(&obj, "trace_id")?;
        let extra: Map<String, Value> = obj
            .into_iter()
            .filter(|(k, _)| {
                !matches!(
                    k.as_str(),
                    "service" | "timestamp" | "status_code" | "latency_ms" | "kind"
                ) && !KNOWN_OPTIONAL.contains(&k.as_str())
            })
            .collect();
        let attributes = (!extra.is_empty()).then(|| Value::Object(extra).to_string());
        Ok(Record::Service(ServiceEvent {
            service,
            timestamp_us,
            status_code: status as u16,
            latency_ms,
            error,
            endpoint,
            method,
            region,
            instance,
            trace_id,
            attributes,
        }))
    }

    fn probe(&self, obj: Map<String, Value>) -> Result<Record, Rejection> {
        let target = self.name(&obj, "target", 253)?;
        let timestamp_us = self.timestamp(&obj)?;
        let ms = |field| self.optional_ms(&obj, field);
        let loss_pct = self.number(self.required(&obj, "loss_pct")?, "loss_pct", 0.0, 100.0)?;
        let hop_count = self.integer(self.required(&obj, "hop_count")?, "hop_count", 0, 255)? as u8;
        let hops = match obj.get("hops") {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::Array(items)) => {
                let mut hops = Vec::with_capacity(items.len());
                for item in items {
                    hops.push(self.hop(item)?);
                }
                hops
            }
            Some(other) => return Err(self.wrong_type("hops", "an array of hops", other)),
        };
        let sent = self.optional_count(&obj, "sent")?;
        let received = self.optional_count(&obj, "received")?;
        if let (Some(sent), Some(received)) = (sent, received)
            && received > sent
        {
            return Err(self.err(
                "received",
                RejectReason::OutOfRange,
                format!(
                    "{received} echoes received but only {sent} sent: received must be at most sent"
                ),
            ));
        }
        let rtt_samples_ms = self.samples(&obj)?;
        if let Some(answered) = received.or(sent)
            && rtt_samples_ms.len() > answered as usize
        {
            return Err(self.err(
                "rtt_samples_ms",
                RejectReason::OutOfRange,
                format!(
                    "{} samples but {answered} echoes answered: one sample per answered echo at most",
                    rtt_samples_ms.len()
                ),
            ));
        }
        Ok(Record::Probe(ProbeEvent {
            agent: self.optional_string(&obj, "agent")?,
            protocol: self.optional_string(&obj, "protocol")?,
            resolved_addr: self.optional_string(&obj, "resolved_addr")?,
            previous_resolved_addr: self.optional_string(&obj, "previous_resolved_addr")?,
            dns_ms: ms("dns_ms")?,
            dns_error: self.optional_string(&obj, "dns_error")?,
            rtt_ms: ms("rtt_ms")?,
            loss_pct,
            hop_count,
            sent,
            received,
            rtt_min_ms: ms("rtt_min_ms")?,
            rtt_max_ms: ms("rtt_max_ms")?,
            rtt_median_ms: ms("rtt_median_ms")?,
            rtt_p95_ms: ms("rtt_p95_ms")?,
            rtt_stddev_ms: ms("rtt_stddev_ms")?,
            jitter_ms: ms("jitter_ms")?,
            rtt_samples_ms,
            previous_route_hash: self.optional_string(&obj, "previous_route_hash")?,
            hops,
            target,
            timestamp_us,
        }))
    }

    /// A URL check's result line (`"kind":"http"`): the timestamp here, the other
    /// fields in [`check_line`].
    fn http_check(&self, obj: &Map<String, Value>) -> Result<Record, Rejection> {
        let timestamp_us = self.timestamp(obj)?;
        check_line::http_check(obj, timestamp_us, self.limits.max_latency_ms)
            .map(Record::HttpCheck)
            .map_err(|e| {
                let reason = match e.problem {
                    FieldProblem::Missing => RejectReason::MissingField,
                    FieldProblem::WrongType => RejectReason::WrongType,
                    FieldProblem::OutOfRange | FieldProblem::TooLong => RejectReason::OutOfRange,
                    FieldProblem::Empty => RejectReason::EmptyServiceName,
                };
                self.err(e.field, reason, e.message)
            })
    }

    /// An optional duration in milliseconds (0 up to the latency limit).
    fn optional_ms(
        &self,
        obj: &Map<String, Value>,
        field: &'static str,
    ) -> Result<Option<f64>, Rejection> {
        match obj.get(field) {
            None | Some(Value::Null) => Ok(None),
            Some(v) => self
                .number(v, field, 0.0, self.limits.max_latency_ms)
                .map(Some),
        }
    }

    /// `rtt_samples_ms`: an optional array of round-trip times, ms.
    fn samples(&self, obj: &Map<String, Value>) -> Result<Vec<f64>, Rejection> {
        const F: &str = "rtt_samples_ms";
        match obj.get(F) {
            None | Some(Value::Null) => Ok(Vec::new()),
            Some(Value::Array(items)) => items
                .iter()
                .map(|v| self.number(v, F, 0.0, self.limits.max_latency_ms))
                .collect(),
            Some(other) => Err(self.wrong_type(F, "an array of milliseconds", other)),
        }
    }

    /// An optional packet count.
    fn optional_count(
        &self,
        obj: &Map<String, Value>,
        field: &'static str,
    ) -> Result<Option<u32>, Rejection> {
        match obj.get(field) {
            None | Some(Value::Null) => Ok(None),
            Some(v) => Ok(Some(self.integer(v, field, 0, i64::from(u32::MAX))? as u32)),
        }
    }

    fn hop(&self, v: &Value) -> Result<ProbeHop, Rejection> {
        const F: &str = "hops";
        let Value::Object(h) = v else {
            return Err(self.wrong_type(F, "an object per hop", v));
        };
        let field_err = |e: Rejection| Rejection {
            message: format!("{}: {}", e.field.unwrap_or(F), e.message),
            field: Some(F),
            ..e
        };
        let string = |field| self.optional_string(h, field).map_err(field_err);
        let ms = |field| self.optional_ms(h, field).map_err(field_err);
        let ttl = self
            .integer(self.required(h, "ttl").map_err(field_err)?, "ttl", 1, 255)
            .map_err(field_err)? as u8;
        let addrs = match h.get("addrs") {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::Array(items)) => items
                .iter()
                .map(|a| match a {
                    Value::String(s) => Ok(s.clone()),
                    other => Err(field_err(self.wrong_type(
                        "addrs",
                        "an array of strings",
                        other,
                    ))),
                })
                .collect::<Result<_, _>>()?,
            Some(other) => {
                return Err(field_err(self.wrong_type(
                    "addrs",
                    "an array of strings",
                    other,
                )));
            }
        };
        let loss_pct = match h.get("loss_pct") {
            None | Some(Value::Null) => 0.0,
            Some(v) => self.number(v, "loss_pct", 0.0, 100.0).map_err(field_err)?,
        };
        let coordinate = |field, limit: f64| match h.get(field) {
            None | Some(Value::Null) => Ok(None),
            Some(v) => self
                .number(v, field, -limit, limit)
                .map(Some)
                .map_err(field_err),
        };
        let asn = match h.get("asn") {
            None | Some(Value::Null) => None,
            Some(v) => Some(
                self.integer(v, "asn", 0, i64::from(u32::MAX))
                    .map_err(field_err)? as u32,
            ),
        };
        Ok(ProbeHop {
            ttl,
            addr: string("addr")?,
            addrs,
            name: string("name")?,
            sent: self.optional_count(h, "sent").map_err(field_err)?,
            received: self.optional_count(h, "received").map_err(field_err)?,
            rtt_ms: ms("rtt_ms")?,
            last_ms: ms("last_ms")?,
            best_ms: ms("best_ms")?,
            worst_ms: ms("worst_ms")?,
            jitter_ms: ms("jitter_ms")?,
            loss_pct,
            scope: string("scope")?,
            asn,
            as_org: string("as_org")?,
            city: string("city")?,
            country: string("country")?,
            latitude: coordinate("latitude", 90.0)?,
            longitude: coordinate("longitude", 180.0)?,
        })
    }
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

fn describe(v: &Value) -> String {
    match v {
        Value::String(s) => format!("the string {:?}", truncate(s)),
        Value::Number(n) => format!("the number {n}"),
        Value::Bool(b) => format!("{b}"),
        other => type_name(other).to_owned(),
    }
}

/// Keeps quoted input in messages short.
fn truncate(s: &str) -> &str {
    match s.char_indices().nth(64) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}

/// The common case without a `serde_json::Value`: a service line with only known,
/// well-typed, valid fields decodes straight into a borrowed struct (no map, no key
/// allocations; extra fields are kept as sorted JSON, as the full path does). Everything
/// else -- probes, duplicate keys, a wrong type
/// or value anywhere -- returns `None` and goes through the full validator above, which
/// alone writes rejections. So this path only ever accepts, and accepts exactly what the
/// full path would, with the same values (checked by a differential proptest below).
mod fast {
    use std::borrow::Cow;
    use std::fmt;

    use serde::Deserialize;
    use serde::de::{self, Deserializer, Visitor};

    use super::{Limits, ServiceLine};

    /// The fields of a service line; any other key goes to `extra` (the full path's
    /// `attributes`). A duplicate key fails, so the full path decides about it.
    #[derive(Default)]
    struct Line<'a> {
        service: Option<Cow<'a, str>>,
        timestamp: Option<Timestamp<'a>>,
        status_code: Option<i64>,
        latency_ms: Option<f64>,
        error: Option<Option<bool>>,
        endpoint: Option<Option<Text<'a>>>,
        method: Option<Option<Text<'a>>>,
        region: Option<Option<Text<'a>>>,
        instance: Option<Option<Text<'a>>>,
        trace_id: Option<Option<Text<'a>>>,
        kind: Option<Option<Text<'a>>>,
        extra: Vec<(Text<'a>, &'a serde_json::value::RawValue)>,
    }

    /// Sets a field once; a second time is an error (a duplicate key).
    fn once<'de, T: Deserialize<'de>, A: de::MapAccess<'de>>(
        slot: &mut Option<T>,
        map: &mut A,
    ) -> Result<(), A::Error> {
        if slot.is_some() {
            return Err(de::Error::custom("duplicate key"));
        }
        *slot = Some(map.next_value()?);
        Ok(())
    }

    impl<'de: 'a, 'a> Deserialize<'de> for Line<'a> {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            struct V<'a>(std::marker::PhantomData<&'a ()>);
            impl<'de: 'a, 'a> Visitor<'de> for V<'a> {
                type Value = Line<'a>;
                fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                    f.write_str("an object")
                }
                fn visit_map<A: de::MapAccess<'de>>(
                    self,
                    mut map: A,
                ) -> Result<Line<'a>, A::Error> {
                    let mut line = Line::default();
                    while let Some(key) = map.next_key::<Text<'de>>()? {
                        match key.0.as_ref() {
                            "service" => {
                                if line.service.is_some() {
                                    return Err(de::Error::custom("duplicate key"));
                                }
                                line.service = Some(map.next_value::<Text<'de>>()?.0);
                            }
                            "timestamp" => once(&mut line.timestamp, &mut map)?,
                            "status_code" => once(&mut line.status_code, &mut map)?,
                            "latency_ms" => once(&mut line.latency_ms, &mut map)?,
                            "error" => once(&mut line.error, &mut map)?,
                            "endpoint" => once(&mut line.endpoint, &mut map)?,
                            "method" => once(&mut line.method, &mut map)?,
                            "region" => once(&mut line.region, &mut map)?,
                            "instance" => once(&mut line.instance, &mut map)?,
                            "trace_id" => once(&mut line.trace_id, &mut map)?,
                            "kind" => once(&mut line.kind, &mut map)?,
                            _ => line.extra.push((key, map.next_value()?)),
                        }
                    }
                    Ok(line)
                }
            }
            d.deserialize_map(V(std::marker::PhantomData))
        }
    }

    /// A string that borrows from the line unless it had escapes. serde's `borrow` only
    /// borrows a bare `Cow<str>`; inside an `Option` it copies every value, so optional
    /// fields go through this instead.
    struct Text<'a>(Cow<'a, str>);

    impl<'de: 'a, 'a> Deserialize<'de> for Text<'a> {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            struct V;
            impl<'de> Visitor<'de> for V {
                type Value = Text<'de>;
                fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                    f.write_str("a string")
                }
                fn visit_borrowed_str<E: de::Error>(self, s: &'de str) -> Result<Self::Value, E> {
                    Ok(Text(Cow::Borrowed(s)))
                }
                fn visit_str<E: de::Error>(self, s: &str) -> Result<Self::Value, E> {
                    Ok(Text(Cow::Owned(s.to_owned())))
                }
            }
            d.deserialize_str(V)
        }
    }

    /// An RFC 3339 string or integer epoch milliseconds; anything else fails (and the
    /// full path explains why).
    enum Timestamp<'a> {
        Text(Cow<'a, str>),
        EpochMillis(i64),
    }

    impl<'de: 'a, 'a> Deserialize<'de> for Timestamp<'a> {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            struct V;
            impl<'de> Visitor<'de> for V {
                type Value = Timestamp<'de>;
                fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                    f.write_str("an RFC 3339 string or integer epoch milliseconds")
                }
                fn visit_borrowed_str<E: de::Error>(self, s: &'de str) -> Result<Self::Value, E> {
                    Ok(Timestamp::Text(Cow::Borrowed(s)))
                }
                fn visit_str<E: de::Error>(self, s: &str) -> Result<Self::Value, E> {
                    Ok(Timestamp::Text(Cow::Owned(s.to_owned())))
                }
                fn visit_i64<E: de::Error>(self, ms: i64) -> Result<Self::Value, E> {
                    Ok(Timestamp::EpochMillis(ms))
                }
                fn visit_u64<E: de::Error>(self, ms: u64) -> Result<Self::Value, E> {
                    i64::try_from(ms)
                        .map(Timestamp::EpochMillis)
                        .map_err(|_| E::custom("out of range"))
                }
            }
            d.deserialize_any(V)
        }
    }

    /// The event, when `text` is a plain valid service line; `None` means "ask the full
    /// validator".
    pub(super) fn service_line<'a>(
        text: &'a str,
        now_us: i64,
        limits: &Limits,
    ) -> Option<ServiceLine<'a>> {
        let line: Line<'_> = serde_json::from_str(text).ok()?;
        if line
            .kind
            .as_ref()
            .is_some_and(|k| k.as_ref().is_none_or(|k| k.0 != "service"))
        {
            return None;
        }
        let service = line.service?;
        if service.trim().is_empty() || service.len() > limits.max_service_name_bytes {
            return None;
        }
        let timestamp_us = match line.timestamp? {
            Timestamp::Text(s) => chrono::DateTime::parse_from_rfc3339(&s)
                .ok()?
                .timestamp_micros(),
            Timestamp::EpochMillis(ms) => ms.checked_mul(1000)?,
        };
        if timestamp_us < 0 || timestamp_us > now_us.saturating_add(limits.max_future_skew_us) {
            return None;
        }
        let status_code = line.status_code?;
        if !(100..=599).contains(&status_code) {
            return None;
        }
        let latency_ms = line.latency_ms?;
        if !latency_ms.is_finite() || !(0.0..=limits.max_latency_ms).contains(&latency_ms) {
            return None;
        }
        let text = |t: Option<Option<Text<'a>>>| t.flatten().map(|t| t.0);
        Some(ServiceLine {
            service,
            timestamp_us,
            status_code: status_code as u16,
            latency_ms,
            error: line.error.flatten(),
            endpoint: text(line.endpoint),
            method: text(line.method),
            region: text(line.region),
            instance: text(line.instance),
            trace_id: text(line.trace_id),
            attributes: attributes(line.extra)?,
        })
    }

    /// The extra fields as the full path writes them (`Value::Object(..).to_string()`:
    /// keys sorted, compact): `Some(None)` when there are none, `None` (ask the full
    /// path) for a duplicate key. A value already in that form (a string without escapes,
    /// a small integer, `true`, `false`, `null`) is copied as it is; any other goes
    /// through a `Value` to be written the same way.
    fn attributes(
        mut extra: Vec<(Text<'_>, &serde_json::value::RawValue)>,
    ) -> Option<Option<String>> {
        if extra.is_empty() {
            return Some(None);
        }
        extra.sort_unstable_by(|a, b| a.0.0.cmp(&b.0.0));
        if extra.windows(2).any(|w| w[0].0.0 == w[1].0.0) {
            return None;
        }
        let mut out = String::with_capacity(
            extra
                .iter()
                .map(|(k, v)| k.0.len() + v.get().len() + 4)
                .sum::<usize>()
                + 2,
        );
        out.push('{');
        for (i, (key, raw)) in extra.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            match &key.0 {
                // Borrowed: no escapes, so nothing the writer would escape either.
                Cow::Borrowed(k) => {
                    out.push('"');
                    out.push_str(k);
                    out.push('"');
                }
                Cow::Owned(k) => out.push_str(&serde_json::to_string(k).ok()?),
            }
            out.push(':');
            let raw = raw.get();
            if is_canonical(raw) {
                out.push_str(raw);
            } else {
                out.push_str(
                    &serde_json::from_str::<serde_json::Value>(raw)
                        .ok()?
                        .to_string(),
                );
            }
        }
        out.push('}');
        Some(Some(out))
    }

    /// Whether serde_json would write this JSON value back byte for byte.
    fn is_canonical(raw: &str) -> bool {
        match raw.as_bytes() {
            [b'"', ..] => !raw.contains('\\'),
            b"true" | b"false" | b"null" => true,
            [b'-', b'0', ..] => false,
            [b'-', digits @ ..] | digits @ [_, ..] => {
                digits.len() <= 18
                    && digits.iter().all(u8::is_ascii_digit)
                    && (digits[0] != b'0' || digits.len() == 1)
            }
            [] => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_746_000_000 * MICROS_PER_SEC; // 2025-04-30T08:00:00Z

    fn parse(line: &str) -> Result<Record, Rejection> {
        parse_line(line.as_bytes(), 7, NOW, &Limits::default())
    }

    fn rejected(line: &str) -> Rejection {
        parse(line).expect_err("line should be rejected")
    }

    fn service(line: &str) -> ServiceEvent {
        match parse(line).expect("line should parse") {
            Record::Service(e) => e,
            other => panic!("expected a service event, got {other:?}"),
        }
    }

    const GOOD: &str = r#"{"service":"auth","timestamp":"2025-04-30T07:59:00.123456+02:00","status_code":503,"latency_ms":12.5,"error":true}"#;

    #[test]
    fn good_line_normalises_offset_to_utc() {
        let e = service(GOOD);
        assert_eq!(e.service, "auth");
        // 07:59:00.123456+02:00 = 05:59:00.123456Z
        assert_eq!(
            crate::event::rfc3339(e.timestamp_us),
            "2025-04-30T05:59:00.123456Z"
        );
        assert_eq!(e.status_code, 503);
        assert_eq!(e.latency_ms, 12.5);
        assert_eq!(e.error, Some(true));
        assert_eq!(e.attributes, None);
    }

    #[test]
    fn epoch_milliseconds_are_accepted() {
        let e = service(
            r#"{"service":"a","timestamp":1745999999000,"status_code":200,"latency_ms":1}"#,
        );
        assert_eq!(e.timestamp_us, 1_745_999_999_000_000);
        assert_eq!(e.error, None);
    }

    #[test]
    fn unknown_fields_are_kept_as_sorted_json_attributes() {
        let e = service(
            r#"{"service":"a","timestamp":1745999999000,"status_code":200,"latency_ms":1,"zone":"b","user":{"id":7},"endpoint":"/x"}"#,
        );
        assert_eq!(
            e.attributes.as_deref(),
            Some(r#"{"user":{"id":7},"zone":"b"}"#)
        );
        assert_eq!(e.endpoint.as_deref(), Some("/x"));
    }

    #[test]
    fn rejection_messages() {
        let cases: &[(&str, Option<&str>, RejectReason, &str)] = &[
            (
                "{not json",
                None,
                RejectReason::MalformedJson,
                "line 7: malformed JSON: key must be a string at line 1 column 2",
            ),
            (
                "[1,2]",
                None,
                RejectReason::NotAnObject,
                "line 7: expected a JSON object, got an array",
            ),
            (
                r#"{"timestamp":1,"status_code":200,"latency_ms":1}"#,
                Some("service"),
                RejectReason::MissingField,
                "line 7: field `service`: is required",
            ),
            (
                r#"{"service":null,"timestamp":1,"status_code":200,"latency_ms":1}"#,
                Some("service"),
                RejectReason::MissingField,
                "line 7: field `service`: is required",
            ),
            (
                r#"{"service":5,"timestamp":1,"status_code":200,"latency_ms":1}"#,
                Some("service"),
                RejectReason::WrongType,
                "line 7: field `service`: expected a string, got the number 5",
            ),
            (
                r#"{"service":"  ","timestamp":1,"status_code":200,"latency_ms":1}"#,
                Some("service"),
                RejectReason::EmptyServiceName,
                "line 7: field `service`: is empty",
            ),
            (
                r#"{"service":"a","status_code":200,"latency_ms":1}"#,
                Some("timestamp"),
                RejectReason::MissingField,
                "line 7: field `timestamp`: is required",
            ),
            (
                r#"{"service":"a","timestamp":"yesterday","status_code":200,"latency_ms":1}"#,
                Some("timestamp"),
                RejectReason::InvalidTimestamp,
                "line 7: field `timestamp`: \"yesterday\" is not an RFC 3339 timestamp with a UTC offset, e.g. \"2025-04-30T12:00:00Z\" or \"2025-04-30T14:00:00.5+02:00\"",
            ),
            (
                r#"{"service":"a","timestamp":1.5,"status_code":200,"latency_ms":1}"#,
                Some("timestamp"),
                RejectReason::InvalidTimestamp,
                "line 7: field `timestamp`: 1.5 is not whole epoch milliseconds; send an integer or an RFC 3339 string",
            ),
            (
                r#"{"service":"a","timestamp":true,"status_code":200,"latency_ms":1}"#,
                Some("timestamp"),
                RejectReason::WrongType,
                "line 7: field `timestamp`: expected an RFC 3339 string or integer epoch milliseconds, got true",
            ),
            (
                r#"{"service":"a","timestamp":-5,"status_code":200,"latency_ms":1}"#,
                Some("timestamp"),
                RejectReason::OutOfRange,
                "line 7: field `timestamp`: is before 1970-01-01T00:00:00Z",
            ),
            (
                r#"{"service":"a","timestamp":"2025-04-30T08:05:01Z","status_code":200,"latency_ms":1}"#,
                Some("timestamp"),
                RejectReason::TimestampInFuture,
                "line 7: field `timestamp`: 2025-04-30T08:05:01.000000Z is 301s in the future, more than the allowed 300s",
            ),
            (
                r#"{"service":"a","timestamp":1,"latency_ms":1}"#,
                Some("status_code"),
                RejectReason::MissingField,
                "line 7: field `status_code`: is required",
            ),
            (
                r#"{"service":"a","timestamp":1,"status_code":"200","latency_ms":1}"#,
                Some("status_code"),
                RejectReason::WrongType,
                "line 7: field `status_code`: expected an integer, got the string \"200\"",
            ),
            (
                r#"{"service":"a","timestamp":1,"status_code":200.5,"latency_ms":1}"#,
                Some("status_code"),
                RejectReason::WrongType,
                "line 7: field `status_code`: expected an integer, got 200.5",
            ),
            (
                r#"{"service":"a","timestamp":1,"status_code":600,"latency_ms":1}"#,
                Some("status_code"),
                RejectReason::OutOfRange,
                "line 7: field `status_code`: 600 is out of range: must be from 100 to 599",
            ),
            (
                r#"{"service":"a","timestamp":1,"status_code":99,"latency_ms":1}"#,
                Some("status_code"),
                RejectReason::OutOfRange,
                "line 7: field `status_code`: 99 is out of range: must be from 100 to 599",
            ),
            (
                r#"{"service":"a","timestamp":1,"status_code":200}"#,
                Some("latency_ms"),
                RejectReason::MissingField,
                "line 7: field `latency_ms`: is required",
            ),
            (
                r#"{"service":"a","timestamp":1,"status_code":200,"latency_ms":-0.5}"#,
                Some("latency_ms"),
                RejectReason::OutOfRange,
                "line 7: field `latency_ms`: -0.5 is out of range: must be from 0 to 86400000",
            ),
            (
                r#"{"service":"a","timestamp":1,"status_code":200,"latency_ms":"fast"}"#,
                Some("latency_ms"),
                RejectReason::WrongType,
                "line 7: field `latency_ms`: expected a number, got the string \"fast\"",
            ),
            (
                r#"{"service":"a","timestamp":1,"status_code":200,"latency_ms":1,"error":"yes"}"#,
                Some("error"),
                RejectReason::WrongType,
                "line 7: field `error`: expected true or false, got the string \"yes\"",
            ),
            (
                r#"{"service":"a","timestamp":1,"status_code":200,"latency_ms":1,"region":4}"#,
                Some("region"),
                RejectReason::WrongType,
                "line 7: field `region`: expected a string, got the number 4",
            ),
            (
                r#"{"kind":"metric","service":"a"}"#,
                Some("kind"),
                RejectReason::UnknownKind,
                "line 7: field `kind`: unknown kind \"metric\": expected \"service\", \"probe\" or \"http\"",
            ),
        ];
        for (line, field, reason, message) in cases {
            let r = rejected(line);
            assert_eq!(
                (r.field, r.reason, r.to_string().as_str()),
                (*field, *reason, *message),
                "for {line}"
            );
        }
    }

    #[test]
    fn over_long_service_name_is_rejected() {
        let name = "s".repeat(129);
        let r = rejected(&format!(
            r#"{{"service":"{name}","timestamp":1,"status_code":200,"latency_ms":1}}"#
        ));
        assert_eq!(r.reason, RejectReason::ServiceNameTooLong);
        assert_eq!(
            r.to_string(),
            "line 7: field `service`: is 129 bytes, over the limit of 128 bytes"
        );
    }

    #[test]
    fn over_long_line_is_rejected_before_parsing() {
        let line = format!(r#"{{"service":"a","pad":"{}"}}"#, "x".repeat(70_000));
        let r = rejected(&line);
        assert_eq!(r.reason, RejectReason::LineTooLong);
        assert_eq!(r.field, None);
        assert!(
            r.message.contains("over the limit of 65536 bytes"),
            "{}",
            r.message
        );
    }

    #[test]
    fn invalid_utf8_is_rejected_with_offset() {
        let r = parse_line(b"{\"service\":\"a\xff\"}", 3, NOW, &Limits::default()).unwrap_err();
        assert_eq!(r.reason, RejectReason::InvalidUtf8);
        assert_eq!(
            r.to_string(),
            "line 3: line is not valid UTF-8 (invalid byte at offset 13)"
        );
    }

    #[test]
    fn control_characters_in_names_are_accepted_as_data() {
        let e = service(
            "{\"service\":\"a\\u0000/..\\n\",\"timestamp\":1,\"status_code\":200,\"latency_ms\":1}",
        );
        assert_eq!(e.service, "a\u{0}/..\n");
    }

    #[test]
    fn probe_line_parses_with_hops() {
        let line = r#"{"kind":"probe","target":"example.com","timestamp":"2025-04-30T07:00:00Z","rtt_ms":21.5,"loss_pct":0,"hop_count":2,"hops":[{"ttl":1,"addr":"192.0.2.1","rtt_ms":1.1,"loss_pct":0},{"ttl":2,"addr":null,"rtt_ms":null,"loss_pct":100}]}"#;
        let Record::Probe(p) = parse(line).unwrap() else {
            panic!("not a probe")
        };
        assert_eq!(p.target, "example.com");
        assert_eq!(p.hop_count, 2);
        assert_eq!(
            p.hops[1],
            ProbeHop {
                ttl: 2,
                addr: None,
                rtt_ms: None,
                loss_pct: 100.0,
                ..ProbeHop::default()
            }
        );
    }

    /// A URL check's result line parses into its record; a bad one names line and field.
    #[test]
    fn http_check_line_parses_and_refusals_name_the_field() {
        let line = r#"{"kind":"http","url":"https://x.test/","monitor_id":"m1","every_s":60,"timestamp":"2025-04-30T07:00:00.5Z","status_code":503,"duration_ms":12.5,"dns_ms":null,"redirects":0,"body_bytes":3,"cert_expiry_days":null,"error":null}"#;
        let Record::HttpCheck(c) = parse(line).unwrap() else {
            panic!("not a check")
        };
        assert_eq!(c.timestamp_us, 1_745_996_400_500_000);
        assert_eq!((c.status_code, c.duration_ms), (Some(503), 12.5));
        let e = rejected(
            r#"{"kind":"http","url":"u","timestamp":"2025-04-30T07:00:00Z","duration_ms":1,"error":"nope"}"#,
        );
        assert_eq!(
            (e.field, e.reason),
            (Some("error"), RejectReason::OutOfRange)
        );
        assert!(
            e.to_string()
                .starts_with("line 7: field `error`: \"nope\" is not an error class"),
            "{e}"
        );
        let e = rejected(r#"{"kind":"http","url":"u","duration_ms":1,"status_code":200}"#);
        assert_eq!(
            (e.field, e.reason),
            (Some("timestamp"), RejectReason::MissingField)
        );
        let e = rejected(
            r#"{"kind":"http","url":"u","timestamp":"2025-04-30T07:00:00Z","status_code":200}"#,
        );
        assert_eq!(
            (e.field, e.reason),
            (Some("duration_ms"), RejectReason::MissingField)
        );
    }

    /// Everything a real tracer adds is read, hop and path alike.
    #[test]
    fn probe_line_parses_the_tracer_fields() {
        let line = r#"{"kind":"probe","target":"example.com","timestamp":"2025-04-30T07:00:00Z","agent":"fra1","protocol":"icmp","resolved_addr":"192.0.2.9","previous_resolved_addr":"192.0.2.8","dns_ms":3.5,"rtt_ms":21.5,"loss_pct":5,"hop_count":1,"sent":20,"received":19,"rtt_min_ms":20,"rtt_max_ms":30,"rtt_median_ms":21,"rtt_p95_ms":29,"rtt_stddev_ms":2.5,"jitter_ms":1.5,"previous_route_hash":"00000000000000aa","hops":[{"ttl":1,"addr":"192.0.2.9","addrs":["192.0.2.9","192.0.2.10"],"name":"gw.example","sent":20,"received":19,"rtt_ms":21.5,"last_ms":22,"best_ms":20,"worst_ms":30,"jitter_ms":1.5,"loss_pct":5,"scope":"public","asn":64500,"as_org":"Example","city":"Berlin","country":"DE","latitude":52.5,"longitude":13.4}]}"#;
        let Record::Probe(p) = parse(line).unwrap() else {
            panic!("not a probe")
        };
        assert_eq!(p.agent.as_deref(), Some("fra1"));
        assert_eq!(p.previous_resolved_addr.as_deref(), Some("192.0.2.8"));
        assert_eq!((p.sent, p.received), (Some(20), Some(19)));
        assert_eq!(p.rtt_p95_ms, Some(29.0));
        assert_eq!(p.previous_route_hash.as_deref(), Some("00000000000000aa"));
        let h = &p.hops[0];
        assert_eq!(h.addrs, ["192.0.2.9", "192.0.2.10"]);
        assert_eq!((h.asn, h.latitude), (Some(64500), Some(52.5)));
        assert_eq!(h.name.as_deref(), Some("gw.example"));
        // What parses serializes back to the same fields.
        let again = serde_json::to_value(&p.hops[0]).unwrap();
        assert_eq!(again["as_org"], "Example");
    }

    #[test]
    fn a_latitude_out_of_range_names_the_hop_field() {
        let line = r#"{"kind":"probe","target":"t","timestamp":1,"loss_pct":0,"hop_count":1,"hops":[{"ttl":1,"latitude":91}]}"#;
        assert_eq!(
            rejected(line).to_string(),
            "line 7: field `hops`: latitude: 91 is out of range: must be from -90 to 90"
        );
    }

    #[test]
    fn probe_hop_errors_name_the_inner_field() {
        let line = r#"{"kind":"probe","target":"t","timestamp":1,"loss_pct":0,"hop_count":1,"hops":[{"ttl":0}]}"#;
        let r = rejected(line);
        assert_eq!(
            r.to_string(),
            "line 7: field `hops`: ttl: 0 is out of range: must be from 1 to 255"
        );
    }

    /// Regression: `#[serde(borrow)]` does not make `Option<Cow<str>>` borrow (serde only
    /// borrows a bare `Cow<str>`), so every optional field of every line was copied into
    /// its own heap string on the "borrowed" path.
    #[test]
    fn borrowed_path_does_not_copy_optional_fields() {
        let line = br#"{"service":"api","timestamp":"2025-04-30T07:59:00Z","status_code":200,"latency_ms":1.5,"endpoint":"/x","method":"GET","region":"eu","instance":"api-1","trace_id":"ab"}"#;
        let parsed = parse_line_borrowed(line, 1, NOW, &Limits::default()).expect("valid line");
        let ParsedLine::Service(e) = parsed else {
            panic!("expected the fast path to take a plain service line");
        };
        for (name, field) in [
            ("service", Some(&e.service)),
            ("endpoint", e.endpoint.as_ref()),
            ("method", e.method.as_ref()),
            ("region", e.region.as_ref()),
            ("instance", e.instance.as_ref()),
            ("trace_id", e.trace_id.as_ref()),
        ] {
            assert!(
                matches!(field, Some(Cow::Borrowed(_))),
                "{name} was copied: {field:?}"
            );
        }
    }

    #[test]
    fn lines_skips_blank_and_strips_cr() {
        let got: Vec<_> = lines(b"a\r\n\n  \nb\n").collect();
        assert_eq!(got, vec![(1, &b"a"[..]), (4, &b"b"[..])]);
    }

    mod fuzz {
        use super::*;
        use proptest::prelude::*;

        proptest! {
            #[test]
            fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
                let _ = parse_line(&bytes, 1, NOW, &Limits::default());
            }

            #[test]
            fn arbitrary_json_objects_never_panic(s in r#"\{("[a-z_]{1,12}":(-?[0-9]{1,20}(\.[0-9]+)?|"[^"\\]{0,8}"|true|null|\[\]),?){0,6}\}"#) {
                let _ = parse_line(s.as_bytes(), 1, NOW, &Limits::default());
            }

            /// The fast path must agree with the full validator on every line: same
            /// record, or (when it declines) the full validator's rejection.
            #[test]
            fn fast_path_agrees_with_full_validator(fields in proptest::collection::vec(field(), 0..9)) {
                let line = format!("{{{}}}", fields.join(","));
                let limits = Limits::default();
                let full = parse_text(&line, 1, NOW, &limits);
                prop_assert_eq!(parse_line(line.as_bytes(), 1, NOW, &limits), full, "line {}", line);
            }
        }

        proptest! {
            /// As above, from a valid line with a few pairs added (overriding, extra or
            /// duplicated), so most cases are near the edge of the fast path.
            #[test]
            fn fast_path_agrees_near_valid_lines(
                service in "[a-z-]{1,12}",
                ms in 1_700_000_000_000i64..1_746_000_000_000,
                status in 100i64..600,
                latency in 0.0f64..5000.0,
                optional in proptest::collection::vec((0usize..6, "[a-z/]{0,6}"), 0..6),
                more in proptest::collection::vec(field(), 0..3),
            ) {
                let keys = ["endpoint", "method", "region", "instance", "trace_id", "error"];
                let mut pairs = vec![
                    format!("\"service\":\"{service}\""),
                    format!("\"timestamp\":\"{}\"", crate::event::rfc3339(ms * 1000)),
                    format!("\"status_code\":{status}"),
                    format!("\"latency_ms\":{latency}"),
                ];
                for (k, v) in optional {
                    let value = if keys[k] == "error" { (v.len() % 2 == 0).to_string() } else { format!("\"{v}\"") };
                    pairs.push(format!("\"{}\":{value}", keys[k]));
                }
                pairs.extend(more);
                let line = format!("{{{}}}", pairs.join(","));
                let limits = Limits::default();
                let full = parse_text(&line, 1, NOW, &limits);
                prop_assert_eq!(parse_line(line.as_bytes(), 1, NOW, &limits), full, "line {}", line);
            }
        }

        #[test]
        fn simulator_lines_take_the_fast_path() {
            let line = r#"{"service":"api-gateway","timestamp":"2025-01-01T00:00:00.000Z","status_code":200,"latency_ms":142.013,"error":false,"endpoint":"/*","method":"GET","region":"eu-central-1","instance":"api-gateway-3","trace_id":"7eff8a17b5ea8d36b5c5488e7609dfe1"}"#;
            let fast = fast::service_line(line, NOW, &Limits::default()).expect("fast path");
            assert_eq!(
                Ok(Record::Service(fast.into_owned())),
                parse_text(line, 1, NOW, &Limits::default())
            );
        }

        /// Regression (issue #16's benchmark): a line with extra fields, as the OTLP source
        /// writes them (span name, kind, id, resource attributes), fell off the fast path
        /// into a full `Value` parse, plus an error message built and thrown away: OTLP
        /// cost 3.9x NDJSON per event. It now stays on the fast path, with the same
        /// attributes the full validator writes.
        #[test]
        fn regression_lines_with_extra_fields_take_the_fast_path() {
            let line = r#"{"service":"shop","timestamp":"2025-01-01T00:00:00.000Z","status_code":200,"latency_ms":40,"telemetry.sdk.name":"opentelemetry","span.name":"POST /cart","span.kind":"server","ratio":1.50,"n":7,"tags":["a",1.0]}"#;
            let fast = fast::service_line(line, NOW, &Limits::default()).expect("fast path");
            assert_eq!(
                fast.attributes.as_deref(),
                Some(
                    r#"{"n":7,"ratio":1.5,"span.kind":"server","span.name":"POST /cart","tags":["a",1.0],"telemetry.sdk.name":"opentelemetry"}"#
                )
            );
            assert_eq!(
                Ok(Record::Service(fast.into_owned())),
                parse_text(line, 1, NOW, &Limits::default())
            );
        }

        /// One `"key":value` pair: mostly the fields a service line has, with valid and
        /// invalid values, plus probes' `kind`, unknown keys and duplicates (by repetition).
        fn field() -> impl Strategy<Value = String> {
            let key = prop_oneof![
                Just("service"),
                Just("timestamp"),
                Just("status_code"),
                Just("latency_ms"),
                Just("error"),
                Just("endpoint"),
                Just("method"),
                Just("region"),
                Just("instance"),
                Just("trace_id"),
                Just("kind"),
                Just("extra"),
                Just("a.b"),
                Just("zeta"),
                Just("\\u0041x"),
            ];
            let value = prop_oneof![
                Just("null".to_owned()),
                Just("true".to_owned()),
                Just("\"service\"".to_owned()),
                Just("\"probe\"".to_owned()),
                Just("\"  \"".to_owned()),
                Just("\"a\\u00e9\\n\"".to_owned()),
                Just(format!("\"{}\"", "s".repeat(129))),
                Just("\"2025-04-30T07:00:00.123Z\"".to_owned()),
                Just("\"2025-04-30T09:00:00+02:00\"".to_owned()),
                Just("\"2030-01-01T00:00:00Z\"".to_owned()),
                Just("\"2025-04-30\"".to_owned()),
                Just("1746000000000".to_owned()),
                Just("-5".to_owned()),
                Just("18446744073709551615".to_owned()),
                Just("9223372036854775807".to_owned()),
                Just("200.0".to_owned()),
                Just("2e2".to_owned()),
                Just("[]".to_owned()),
                Just("{}".to_owned()),
                Just("-0".to_owned()),
                Just("1.50".to_owned()),
                Just("1e3".to_owned()),
                Just("007".to_owned()),
                Just("123456789012345678901".to_owned()),
                Just("\"x/y \\\"q\\\"\"".to_owned()),
                Just(r#"{"b":1,"a":[1.0,"x"]}"#.to_owned()),
                Just(" 5 ".to_owned()),
                (-1000i64..100_000).prop_map(|n| n.to_string()),
                (0.0f64..1e9).prop_map(|x| x.to_string()),
                "[a-z/{}]{0,12}".prop_map(|s| format!("\"{s}\"")),
            ];
            (key, value).prop_map(|(k, v)| format!("\"{k}\":{v}"))
        }
    }
}
