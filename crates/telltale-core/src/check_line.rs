//! The fields of a URL check's result line (`"kind":"http"`, as `telltale monitor check`
//! prints it) validated into an [`HttpCheckEvent`]. `parse` reads the JSON, the kind and
//! the timestamp and hands the object here; what is wrong comes back as a
//! [`FieldError`] naming the field, which `parse` turns into the line's rejection.
//!
//! The line format is the contract between the checker and the pipeline (telltale-core
//! does not depend on `telltale-monitor`); a test in `telltale-monitor` checks that what
//! the checker prints parses. Fields not listed here are ignored, so a newer checker's
//! additions do not turn results into dead letters.

use serde_json::{Map, Value};

use crate::event::{CHECK_ERRORS, HttpCheckEvent};

/// Longest `url` (and `final_url`) accepted, bytes.
pub const MAX_URL_BYTES: usize = 2048;
/// Longest `monitor_id` accepted, bytes.
pub const MAX_MONITOR_ID_BYTES: usize = 128;
/// Largest `cert_expiry_days` accepted either side of zero.
const MAX_CERT_DAYS: f64 = 1e6;

/// Why a field was refused; `parse` maps it to its `RejectReason`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldProblem {
    /// Absent or `null` but required.
    Missing,
    /// The wrong JSON type.
    WrongType,
    /// Outside its range (or not one of the allowed values).
    OutOfRange,
    /// An empty string where a name is needed.
    Empty,
    /// Longer than allowed.
    TooLong,
}

/// A refused field of a check line.
#[derive(Debug, Clone, PartialEq)]
pub struct FieldError {
    /// The field.
    pub field: &'static str,
    /// What is wrong with it.
    pub problem: FieldProblem,
    /// In words, for the dead letter.
    pub message: String,
}

type Result<T> = std::result::Result<T, FieldError>;

fn err(field: &'static str, problem: FieldProblem, message: impl Into<String>) -> FieldError {
    FieldError {
        field,
        problem,
        message: message.into(),
    }
}

fn wrong_type(field: &'static str, expected: &str, got: &Value) -> FieldError {
    let got = match got {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    };
    err(
        field,
        FieldProblem::WrongType,
        format!("expected {expected}, got {got}"),
    )
}

fn present<'v>(obj: &'v Map<String, Value>, field: &str) -> Option<&'v Value> {
    obj.get(field).filter(|v| !v.is_null())
}

fn string(obj: &Map<String, Value>, field: &'static str, max: usize) -> Result<Option<String>> {
    match present(obj, field) {
        None => Ok(None),
        Some(Value::String(s)) if s.len() > max => Err(err(
            field,
            FieldProblem::TooLong,
            format!("is {} bytes, over the limit of {max} bytes", s.len()),
        )),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(other) => Err(wrong_type(field, "a string", other)),
    }
}

fn name(obj: &Map<String, Value>, field: &'static str, max: usize) -> Result<Option<String>> {
    let s = string(obj, field, max)?;
    if s.as_deref().is_some_and(|s| s.trim().is_empty()) {
        return Err(err(field, FieldProblem::Empty, "is empty"));
    }
    Ok(s)
}

fn number(
    obj: &Map<String, Value>,
    field: &'static str,
    min: f64,
    max: f64,
) -> Result<Option<f64>> {
    let Some(v) = present(obj, field) else {
        return Ok(None);
    };
    let Value::Number(n) = v else {
        return Err(wrong_type(field, "a number", v));
    };
    match n.as_f64().filter(|x| x.is_finite()) {
        Some(x) if (min..=max).contains(&x) => Ok(Some(x)),
        Some(x) => Err(err(
            field,
            FieldProblem::OutOfRange,
            format!("{x} is out of range: must be from {min} to {max}"),
        )),
        None => Err(err(
            field,
            FieldProblem::OutOfRange,
            format!("{n} is not a finite number"),
        )),
    }
}

fn integer(
    obj: &Map<String, Value>,
    field: &'static str,
    min: u64,
    max: u64,
) -> Result<Option<u64>> {
    let Some(v) = present(obj, field) else {
        return Ok(None);
    };
    let Value::Number(n) = v else {
        return Err(wrong_type(field, "an integer", v));
    };
    match n.as_u64() {
        Some(i) if (min..=max).contains(&i) => Ok(Some(i)),
        _ if n.is_i64() || n.is_u64() => Err(err(
            field,
            FieldProblem::OutOfRange,
            format!("{n} is out of range: must be from {min} to {max}"),
        )),
        _ => Err(err(
            field,
            FieldProblem::WrongType,
            format!("expected an integer, got {n}"),
        )),
    }
}

/// Validates the fields of a check line whose `timestamp` (µs) `parse` has read;
/// durations are 0 up to `max_ms`.
pub fn http_check(
    obj: &Map<String, Value>,
    timestamp_us: i64,
    max_ms: f64,
) -> Result<HttpCheckEvent> {
    let url = name(obj, "url", MAX_URL_BYTES)?
        .ok_or_else(|| err("url", FieldProblem::Missing, "is required"))?;
    let ms = |field| number(obj, field, 0.0, max_ms);
    let duration_ms = ms("duration_ms")?
        .ok_or_else(|| err("duration_ms", FieldProblem::Missing, "is required"))?;
    let error = match present(obj, "error") {
        None => None,
        Some(Value::String(s)) if CHECK_ERRORS.contains(&s.as_str()) => Some(s.clone()),
        Some(Value::String(s)) => {
            return Err(err(
                "error",
                FieldProblem::OutOfRange,
                format!(
                    "{:?} is not an error class: expected null or one of {}",
                    s.chars().take(64).collect::<String>(),
                    CHECK_ERRORS.join(", ")
                ),
            ));
        }
        Some(other) => return Err(wrong_type("error", "null or an error class", other)),
    };
    let status_code = integer(obj, "status_code", 100, 599)?.map(|s| s as u16);
    if error.is_none() && status_code.is_none() {
        return Err(err(
            "status_code",
            FieldProblem::Missing,
            "is required when `error` is null (a check without an answer names its error class)",
        ));
    }
    Ok(HttpCheckEvent {
        url,
        monitor_id: name(obj, "monitor_id", MAX_MONITOR_ID_BYTES)?,
        every_s: integer(obj, "every_s", 1, u64::from(u32::MAX))?,
        timestamp_us,
        status_code,
        duration_ms,
        dns_ms: ms("dns_ms")?,
        connect_ms: ms("connect_ms")?,
        tls_ms: ms("tls_ms")?,
        ttfb_ms: ms("ttfb_ms")?,
        transfer_ms: ms("transfer_ms")?,
        redirects: integer(obj, "redirects", 0, u64::from(u32::MAX))?.unwrap_or(0) as u32,
        body_bytes: integer(obj, "body_bytes", 0, i64::MAX as u64)?,
        cert_expiry_days: number(obj, "cert_expiry_days", -MAX_CERT_DAYS, MAX_CERT_DAYS)?,
        final_url: string(obj, "final_url", MAX_URL_BYTES)?,
        error,
        error_message: string(obj, "error_message", MAX_URL_BYTES)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn obj(text: &str) -> Map<String, Value> {
        serde_json::from_str(text).unwrap()
    }

    fn check(text: &str) -> Result<HttpCheckEvent> {
        http_check(&obj(text), 7, 600_000.0)
    }

    #[test]
    fn a_full_result_keeps_every_field() {
        let c = check(
            r#"{"kind":"http","url":"https://x.test/","monitor_id":"m1","every_s":60,
            "status_code":200,"duration_ms":84.2,"dns_ms":3.1,"connect_ms":20.4,"tls_ms":31.0,
            "ttfb_ms":27.9,"transfer_ms":0.4,"redirects":1,"body_bytes":17,
            "cert_expiry_days":-2.5,"final_url":"https://x.test/a","error":null,"new_field":1}"#,
        )
        .unwrap();
        assert_eq!(c.partition_key(), "m1");
        assert_eq!(
            (c.status_code, c.redirects, c.body_bytes),
            (Some(200), 1, Some(17))
        );
        assert_eq!(c.cert_expiry_days, Some(-2.5));
        assert!(c.is_up());
        assert_eq!(c.status_class(), "2xx");
    }

    #[test]
    fn a_failed_one_off_check_is_adhoc_and_down() {
        let c = check(
            r#"{"url":"http://x.test","duration_ms":3.0,"status_code":null,"error":"connect_refused","error_message":"refused"}"#,
        )
        .unwrap();
        assert_eq!(c.partition_key(), "adhoc");
        assert!(!c.is_up());
        assert_eq!(c.status_class(), "none");
        assert_eq!(c.redirects, 0);
    }

    #[test]
    fn refusals_name_the_field() {
        let cases = [
            (r#"{"duration_ms":1}"#, "url", FieldProblem::Missing),
            (
                r#"{"url":"","duration_ms":1,"status_code":200}"#,
                "url",
                FieldProblem::Empty,
            ),
            (
                r#"{"url":"u","status_code":200}"#,
                "duration_ms",
                FieldProblem::Missing,
            ),
            (
                r#"{"url":"u","duration_ms":-1,"status_code":200}"#,
                "duration_ms",
                FieldProblem::OutOfRange,
            ),
            (
                r#"{"url":"u","duration_ms":"1","status_code":200}"#,
                "duration_ms",
                FieldProblem::WrongType,
            ),
            (
                r#"{"url":"u","duration_ms":1}"#,
                "status_code",
                FieldProblem::Missing,
            ),
            (
                r#"{"url":"u","duration_ms":1,"status_code":99}"#,
                "status_code",
                FieldProblem::OutOfRange,
            ),
            (
                r#"{"url":"u","duration_ms":1,"status_code":2.5}"#,
                "status_code",
                FieldProblem::WrongType,
            ),
            (
                r#"{"url":"u","duration_ms":1,"error":"boom"}"#,
                "error",
                FieldProblem::OutOfRange,
            ),
            (
                r#"{"url":"u","duration_ms":1,"error":true}"#,
                "error",
                FieldProblem::WrongType,
            ),
            (
                r#"{"url":"u","duration_ms":1,"status_code":200,"redirects":-1}"#,
                "redirects",
                FieldProblem::OutOfRange,
            ),
            (
                r#"{"url":"u","duration_ms":1,"status_code":200,"monitor_id":7}"#,
                "monitor_id",
                FieldProblem::WrongType,
            ),
            (
                r#"{"url":"u","duration_ms":1,"status_code":200,"tls_ms":1e9}"#,
                "tls_ms",
                FieldProblem::OutOfRange,
            ),
        ];
        for (line, field, problem) in cases {
            let e = check(line).expect_err(line);
            assert_eq!(
                (e.field, e.problem),
                (field, problem),
                "{line}: {}",
                e.message
            );
        }
        let e = check(r#"{"url":"u","duration_ms":1,"error":"boom"}"#).unwrap_err();
        assert!(e.message.contains("connect_refused"), "{}", e.message);
    }

    mod fuzz {
        use super::*;
        use proptest::prelude::*;

        const FIELDS: [&str; 17] = [
            "url",
            "monitor_id",
            "every_s",
            "status_code",
            "duration_ms",
            "dns_ms",
            "connect_ms",
            "tls_ms",
            "ttfb_ms",
            "transfer_ms",
            "redirects",
            "body_bytes",
            "cert_expiry_days",
            "final_url",
            "error",
            "error_message",
            "extra",
        ];

        fn value() -> impl Strategy<Value = Value> {
            prop_oneof![
                Just(Value::Null),
                any::<bool>().prop_map(Value::Bool),
                any::<i64>().prop_map(Value::from),
                any::<f64>().prop_map(Value::from),
                (0u16..700).prop_map(Value::from),
                prop::sample::select(CHECK_ERRORS.to_vec()).prop_map(Value::from),
                "[a-z:/._]{0,12}".prop_map(Value::from),
                Just(Value::Array(Vec::new())),
            ]
        }

        proptest! {
            /// Any mix of the line's fields and values: a result, or a refusal naming
            /// one of the fields; never a panic. What is accepted keeps its invariants.
            #[test]
            fn any_fields_give_a_result_or_name_a_field(
                fields in prop::collection::btree_map(prop::sample::select(FIELDS.to_vec()), value(), 0..17)
            ) {
                let obj: Map<String, Value> =
                    fields.into_iter().map(|(k, v)| (k.to_owned(), v)).collect();
                match http_check(&obj, 1, 600_000.0) {
                    Ok(c) => {
                        prop_assert!(!c.url.trim().is_empty());
                        prop_assert!(c.duration_ms.is_finite() && c.duration_ms >= 0.0);
                        prop_assert!(c.error.is_some() || c.status_code.is_some());
                        prop_assert!(c.status_code.is_none_or(|s| (100..600).contains(&s)));
                    }
                    Err(e) => prop_assert!(FIELDS.contains(&e.field), "{e:?}"),
                }
            }
        }
    }
}
