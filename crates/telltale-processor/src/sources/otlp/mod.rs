//! The OTLP source: OpenTelemetry traces and logs, over HTTP (`POST /v1/traces`,
//! `POST /v1/logs`, protobuf or JSON, gzip or not) and gRPC (`TraceService/Export`,
//! `LogsService/Export`).
//!
//! ```text
//! OTLP/HTTP body ─▶ http.rs (token, budget, gzip, 415/413) ─┐
//! OTLP/gRPC call ─▶ grpc.rs (token from metadata)  ─────────┤ on the processing pool:
//!                                                           ▼
//!            decode.rs (protobuf / OTLP JSON) ▸ map.rs (spans, log records ▸ JSON lines)
//!                                                           ▼
//!            Pipeline::ingest: the WAL, validation, dead letters, lake, SLOs (as NDJSON)
//!                                                           ▼
//!            the answer once durable: full success, or partial success with the rejected
//!            count and why (the rejected lines are in the dead letter)
//! ```
//!
//! Like every source (see [`crate::sources`]), it maps records to telltale's JSON lines
//! and hands them to the pipeline, so the acknowledgement means what it means for NDJSON:
//! durable in the write-ahead log.

pub mod decode;
pub mod grpc;
pub mod http;
mod ingest;
pub mod map;

pub use ingest::Exported;
use telltale_core::auth::{Access, Role, RouteAccess};

/// Who may use the OTLP/HTTP routes: ingest, so the write role (as `POST /v1/events`).
pub const ROUTES: &[RouteAccess] = &[
    RouteAccess::new("POST", "/v1/traces", Access::Needs(Role::Write)),
    RouteAccess::new("POST", "/v1/logs", Access::Needs(Role::Write)),
];

#[cfg(test)]
mod tests;
