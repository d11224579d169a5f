use super::*;

fn map(format: &str, service: Option<&str>, line: &str) -> Result<Value, Rejection> {
    let mapper = Mapper::new(AccessLogFormat::preset(format).unwrap(), format, service);
    let mut out = Vec::new();
    mapper.map_line(line.as_bytes(), 7, &mut out)?;
    Ok(serde_json::from_slice(&out).unwrap())
}

const NGINX: &str = r#"{"time":"2026-12-03T14:00:00+00:00","host":"checkout","remote_addr":"127.0.0.1","request":"GET /cart?id=3 HTTP/1.1","request_method":"GET","uri":"/cart","status":"503","request_time":"0.250","body_bytes_sent":"12"}"#;
const ENVOY: &str = r#"{"start_time":"2026-12-03T14:00:00.123Z","method":"POST","path":"/pay?x=1","response_code":200,"duration":42,"upstream_cluster":"payments","upstream_host":"10.0.0.7:8080","x_request_id":"abc"}"#;
const TRAEFIK: &str = r#"{"StartUTC":"2026-12-03T14:00:00.123456789Z","RequestMethod":"GET","RequestPath":"/search","DownstreamStatus":404,"Duration":1500000,"ServiceName":"search@docker","ServiceAddr":"10.0.0.9:80","RouterName":"search@docker"}"#;

#[test]
fn nginx_line_maps_seconds_and_quoted_numbers() {
    insta::assert_snapshot!(map("nginx", None, NGINX).unwrap().to_string());
}

#[test]
fn envoy_line_maps_milliseconds_and_cuts_the_query() {
    insta::assert_snapshot!(map("envoy", None, ENVOY).unwrap().to_string());
}

#[test]
fn traefik_line_maps_nanoseconds() {
    insta::assert_snapshot!(map("traefik", None, TRAEFIK).unwrap().to_string());
}

#[test]
fn the_service_flag_wins_over_the_field() {
    let v = map("nginx", Some("shop"), NGINX).unwrap();
    assert_eq!(v["service"], "shop");
    // The host the service came from otherwise is kept, not lost.
    assert_eq!(v["host"], "checkout");
}

#[test]
fn mapped_lines_pass_telltale_validation() {
    for (format, line) in [("nginx", NGINX), ("envoy", ENVOY), ("traefik", TRAEFIK)] {
        let mapper = Mapper::new(AccessLogFormat::preset(format).unwrap(), format, None);
        let mut out = Vec::new();
        mapper.map_line(line.as_bytes(), 1, &mut out).unwrap();
        let now = 1_900_000_000_000_000;
        let rec = crate::parse_line(&out, 1, now, &crate::Limits::default())
            .unwrap_or_else(|e| panic!("{format}: {e}"));
        let crate::Record::Service(ev) = rec else {
            panic!("{format}: not a service event")
        };
        assert!(ev.latency_ms > 0.0, "{format}");
    }
}

#[test]
fn a_missing_status_names_the_log_field_and_the_format() {
    let e = map(
        "nginx",
        None,
        r#"{"time":"2026-12-03T14:00:00+00:00","host":"a","request_time":"0.1"}"#,
    )
    .unwrap_err();
    assert_eq!(e.line, 7);
    assert_eq!(e.field, Some("status_code"));
    assert_eq!(e.reason, RejectReason::MissingField);
    assert!(e.message.contains("field `status`"), "{e}");
    assert!(e.message.contains("nginx"), "{e}");
}

#[test]
fn bad_values_are_refused_with_the_value() {
    let line = |status: &str, time: &str, latency: &str| {
        format!(
            r#"{{"start_time":{time},"response_code":{status},"duration":{latency},"upstream_cluster":"a"}}"#
        )
    };
    let ok_time = r#""2026-12-03T14:00:00Z""#;
    let e = map("envoy", None, &line("0", ok_time, "1")).unwrap_err();
    assert_eq!(e.field, Some("status_code"));
    assert!(e.message.contains("is 0"), "{e}");
    let e = map("envoy", None, &line("200", r#""yesterday""#, "1")).unwrap_err();
    assert_eq!(e.reason, RejectReason::InvalidTimestamp);
    assert!(e.message.contains("\"yesterday\""), "{e}");
    let e = map("envoy", None, &line("200", ok_time, "-3")).unwrap_err();
    assert_eq!(e.field, Some("latency_ms"));
    assert!(e.message.contains("milliseconds"), "{e}");
    let e = map("envoy", None, "127.0.0.1 - - [03/Dec/2026] \"GET /\" 200").unwrap_err();
    assert_eq!(e.reason, RejectReason::MalformedJson);
    let e = map("envoy", None, "[1]").unwrap_err();
    assert_eq!(e.reason, RejectReason::NotAnObject);
}

#[test]
fn a_dash_service_is_refused_with_the_fix() {
    let e = map(
        "nginx",
        None,
        r#"{"time":"2026-12-03T14:00:00+00:00","host":"-","status":200,"request_time":0.1}"#,
    )
    .unwrap_err();
    assert_eq!(e.reason, RejectReason::EmptyServiceName);
    assert!(e.message.contains("--service"), "{e}");
}

#[test]
fn custom_mapping_with_nested_fields_and_epoch_time() {
    let format = AccessLogFormat {
        service: "api".into(),
        timestamp_field: "ts".into(),
        timestamp_format: TimestampFormat::UnixSeconds,
        status_field: "http.status".into(),
        latency_field: "took_us".into(),
        latency_unit: LatencyUnit::Micros,
        endpoint_field: "http.route".into(),
        ..AccessLogFormat::default()
    };
    let mapper = Mapper::new(format, "myapp", None);
    let mut out = Vec::new();
    mapper
        .map_line(
            br#"{"ts":1796306400.5,"http":{"status":201,"route":"/x"},"took_us":2500,"error":"boom"}"#,
            1,
            &mut out,
        )
        .unwrap();
    let v: Value = serde_json::from_slice(&out).unwrap();
    assert_eq!(v["service"], "api");
    assert_eq!(v["timestamp"], "2026-12-03T14:00:00.500000Z");
    assert_eq!(v["status_code"], 201);
    assert_eq!(v["latency_ms"], 2.5);
    assert_eq!(v["endpoint"], "/x");
    // A field named like one of telltale's is kept under another name.
    assert_eq!(v["log.error"], "boom");
    assert!(v.get("error").is_none());
}

#[test]
fn clf_and_integer_epoch_times() {
    for (format, value, want) in [
        (
            TimestampFormat::Clf,
            r#""03/Dec/2026:15:00:00 +0100""#,
            "2026-12-03T14:00:00.000000Z",
        ),
        (
            TimestampFormat::UnixNanos,
            "1796306400123456789",
            "2026-12-03T14:00:00.123456Z",
        ),
        (
            TimestampFormat::UnixMillis,
            r#""1796306400123""#,
            "2026-12-03T14:00:00.123000Z",
        ),
    ] {
        let f = AccessLogFormat {
            service: "a".into(),
            timestamp_field: "t".into(),
            timestamp_format: format,
            ..AccessLogFormat::default()
        };
        let mut out = Vec::new();
        Mapper::new(f, "x", None)
            .map_line(
                format!(r#"{{"t":{value},"status":200,"latency_ms":1}}"#).as_bytes(),
                1,
                &mut out,
            )
            .unwrap();
        let v: Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(v["timestamp"], want, "{format:?}");
    }
}
