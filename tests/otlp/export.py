"""Sends spans and log records to telltale with the real OpenTelemetry SDK exporters
(OTLP/HTTP protobuf, OTLP/gRPC), for crates/telltale/tests/it/otlp.rs.

    python3 tests/otlp/export.py --now-ns NS --minutes 20 --fail-last 5 \
        --service checkout --traces-http https://127.0.0.1:PORT/v1/traces [--ca ca.pem]
    ... --traces-grpc https://127.0.0.1:PORT   (gRPC; http:// for plaintext)
    ... --logs-http http://127.0.0.1:PORT/v1/logs

The spans are made by the SDK's tracer with explicit start and end times: per minute of
the `--minutes` before `--now-ns`, ten SERVER spans 6 s apart (40 ms each; every tenth
300 ms), answered 200, or 503 with status ERROR in the last `--fail-last` minutes; and one
CLIENT and one INTERNAL span a minute, which are not requests of the service. With
`--logs-http` the same requests are log records instead (status and duration as HTTP
semantic-convention attributes). Prints one JSON object: what was sent (counts, a few
trace ids) and each export's result; exits 1 unless every export succeeded.
"""

import argparse
import json
import sys

from opentelemetry._logs import LogRecord, SeverityNumber
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import InMemoryLogRecordExporter, SimpleLogRecordProcessor
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, Status, StatusCode

MINUTE_NS = 60_000_000_000
MS_NS = 1_000_000
PER_MINUTE = 10
CHUNK = 200


def requests(now_ns, minutes, fail_last):
    """(start_ns, duration_ns, status) of every request, oldest first."""
    out = []
    for m in range(minutes, 0, -1):
        failing = m <= fail_last
        for i in range(PER_MINUTE):
            start = now_ns - m * MINUTE_NS + i * 6_000 * MS_NS
            duration = (300 if i == PER_MINUTE - 1 else 40) * MS_NS
            out.append((start, duration, 503 if failing else 200))
    return out


def resource(service):
    return Resource.create(
        {"service.name": service, "service.instance.id": "pod-7", "cloud.region": "eu-west-1"}
    )


def make_spans(args):
    mem = InMemorySpanExporter()
    provider = TracerProvider(resource=resource(args.service))
    provider.add_span_processor(SimpleSpanProcessor(mem))
    tracer = provider.get_tracer("telltale-it")
    for n, (start, duration, status) in enumerate(requests(args.now_ns, args.minutes, args.fail_last)):
        span = tracer.start_span(
            "POST /cart",
            kind=SpanKind.SERVER,
            start_time=start,
            attributes={
                "http.request.method": "POST",
                "http.route": "/cart",
                "http.response.status_code": status,
            },
        )
        if status >= 500:
            span.set_status(Status(StatusCode.ERROR, "upstream failed"))
        span.end(end_time=start + duration)
        if n % PER_MINUTE == 0:
            for kind in (SpanKind.CLIENT, SpanKind.INTERNAL):
                other = tracer.start_span("db query", kind=kind, start_time=start + MS_NS)
                other.end(end_time=start + 2 * MS_NS)
    spans = mem.get_finished_spans()
    servers = [s for s in spans if s.kind == SpanKind.SERVER]
    return spans, {
        "server_spans": len(servers),
        "other_spans": len(spans) - len(servers),
        "trace_ids": [format(s.context.trace_id, "032x") for s in servers[:3]],
    }


def make_logs(args):
    mem = InMemoryLogRecordExporter()
    provider = LoggerProvider(resource=resource(args.service))
    provider.add_log_record_processor(SimpleLogRecordProcessor(mem))
    logger = provider.get_logger("telltale-it")
    for start, duration, status in requests(args.now_ns, args.minutes, args.fail_last):
        logger.emit(
            LogRecord(
                timestamp=start,
                body=f"POST /cart {status}",
                severity_number=SeverityNumber.ERROR if status >= 500 else SeverityNumber.INFO,
                attributes={
                    "http.request.method": "POST",
                    "http.route": "/cart",
                    "http.response.status_code": status,
                    "http.server.request.duration": duration / 1e9,
                },
            )
        )
    # A record that is not a request (no status code): skipped, not an event.
    logger.emit(LogRecord(timestamp=args.now_ns, body="cache warmed", severity_number=SeverityNumber.INFO))
    records = mem.get_finished_logs()
    return records, {"log_records": len(records)}


def in_chunks(items):
    return [items[i : i + CHUNK] for i in range(0, len(items), CHUNK)]


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--now-ns", type=int, required=True)
    p.add_argument("--minutes", type=int, default=20)
    p.add_argument("--fail-last", type=int, default=5)
    p.add_argument("--service", required=True)
    p.add_argument("--traces-http")
    p.add_argument("--traces-grpc")
    p.add_argument("--logs-http")
    p.add_argument("--ca", help="CA file the server's certificate is checked against")
    p.add_argument("--token", help="bearer token (Authorization header / gRPC metadata)")
    args = p.parse_args()
    headers = {"authorization": f"Bearer {args.token}"} if args.token else None

    results = []
    summary = {}
    if args.traces_http or args.traces_grpc:
        spans, summary = make_spans(args)
        if args.traces_http:
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

            exporter = OTLPSpanExporter(
                endpoint=args.traces_http, certificate_file=args.ca, headers=headers, timeout=30
            )
        else:
            import grpc
            from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter

            secure = args.traces_grpc.startswith("https://")
            credentials = None
            if secure:
                with open(args.ca, "rb") as f:
                    credentials = grpc.ssl_channel_credentials(root_certificates=f.read())
            exporter = OTLPSpanExporter(
                endpoint=args.traces_grpc,
                insecure=not secure,
                credentials=credentials,
                headers=headers,
                timeout=30,
            )
        for chunk in in_chunks(spans):
            results.append(exporter.export(chunk).name)
        exporter.shutdown()
    if args.logs_http:
        from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter

        records, more = make_logs(args)
        summary.update(more)
        exporter = OTLPLogExporter(
            endpoint=args.logs_http, certificate_file=args.ca, headers=headers, timeout=30
        )
        for chunk in in_chunks(records):
            results.append(exporter.export(chunk).name)
        exporter.shutdown()
    summary["results"] = results
    print(json.dumps(summary))
    sys.exit(0 if results and all(r == "SUCCESS" for r in results) else 1)


if __name__ == "__main__":
    main()
