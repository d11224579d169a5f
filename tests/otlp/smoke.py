"""Manual smoke test of OTLP ingest with the real OpenTelemetry SDK exporters (HTTP protobuf
and gRPC): python3 tests/otlp/smoke.py HTTP_ADDR GRPC_ADDR against
`telltale process --listen HTTP_ADDR --otlp-grpc-listen GRPC_ADDR`. Exits after printing
each export result. Not yet driven by crates/telltale/tests/it (to do: otlp.rs)."""
import sys, time
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, Status, StatusCode
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter as HttpExp
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter as GrpcExp
from opentelemetry.sdk.trace.export import SpanExportResult
mem = InMemorySpanExporter()
p = TracerProvider(resource=Resource.create({"service.name": "smoke"}))
p.add_span_processor(SimpleSpanProcessor(mem))
t = p.get_tracer("smoke")
now = time.time_ns()
s = t.start_span("GET /x", kind=SpanKind.SERVER, start_time=now - 250_000_000, attributes={"http.response.status_code": 503, "http.route": "/x"})
s.set_status(Status(StatusCode.ERROR)); s.end(end_time=now)
s = t.start_span("call", kind=SpanKind.CLIENT, start_time=now - 1000, attributes={}); s.end(end_time=now)
spans = mem.get_finished_spans()
print("http", HttpExp(endpoint=f"http://{sys.argv[1]}/v1/traces").export(spans))
print("grpc", GrpcExp(endpoint=f"http://{sys.argv[2]}", insecure=True).export(spans))
