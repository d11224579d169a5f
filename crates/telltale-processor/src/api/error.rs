//! Every error an HTTP client of the processor can get, and the one place where each
//! becomes a status code ([`ApiError::status`]) and a JSON body `{"error": "..."}` (with
//! `"field"` when one field of the request is at fault).

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use crate::pipeline::PipelineError;

/// Everything that can go wrong for a client, with its status code.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// Tokens are configured and the request has none or a wrong one.
    #[error("missing or invalid bearer token: send `Authorization: Bearer <token>`")]
    Unauthorized,
    /// The token is configured but of a role that may not ingest (a read-only token).
    #[error("this token may only read: ingest needs a write or admin token")]
    Forbidden,
    /// The body (or its decompressed form) is over the limit.
    #[error("request body is over the limit of {limit} bytes: send smaller batches")]
    BodyTooLarge {
        /// The limit in bytes.
        limit: usize,
    },
    /// A `Content-Encoding` other than gzip or identity.
    #[error("unsupported Content-Encoding {0:?}: send gzip or no encoding")]
    UnsupportedEncoding(String),
    /// A `Content-Type` the route does not take (OTLP/HTTP: protobuf or JSON).
    #[error("unsupported Content-Type {0:?}: send application/x-protobuf or application/json")]
    UnsupportedMediaType(String),
    /// The body could not be read or decompressed.
    #[error("could not read the request body: {0}")]
    BadBody(String),
    /// The pipeline is shutting down.
    #[error("the processor is shutting down; retry against another instance or later")]
    Unavailable,
    /// The write-ahead log cannot be written (a full or failing disk): not accepted.
    #[error(
        "the processor cannot write its write-ahead log (disk full or failing); the batch was not accepted: retry after the Retry-After delay"
    )]
    Storage,
    /// Too much in flight: refused before reading the body, so memory stays bounded.
    #[error("the processor is overloaded ({reason}); retry after the Retry-After delay")]
    Overloaded {
        /// `memory` (in-flight body bytes) or `queue` (batches waiting for a worker).
        reason: &'static str,
    },
    /// A change that needs the admin role, with a token of a lesser one.
    #[error("this token may not change monitors: it needs an admin token")]
    AdminRequired,
    /// A field of the request is not valid (`field` names it).
    #[error("`{field}`: {message}")]
    InvalidField {
        /// The field: `url`, `every`, …
        field: &'static str,
        /// What is wrong and what is allowed.
        message: String,
    },
    /// The request body is JSON but not the object the route takes.
    #[error("{0}")]
    Unprocessable(String),
    /// The body is not JSON (`Content-Type` other than `application/json`).
    #[error("send the body as JSON with Content-Type: application/json")]
    NotJson,
    /// The change conflicts with what exists (a duplicate; a monitor of the config file).
    #[error("{message}")]
    Conflict {
        /// The field at fault.
        field: &'static str,
        /// What exists.
        message: String,
    },
    /// What the path names does not exist.
    #[error("{message}")]
    NotFound {
        /// The field (path segment) at fault.
        field: &'static str,
        /// What was looked for.
        message: String,
    },
    /// A bug or an unexpected failure.
    #[error("internal error: {0}")]
    Internal(String),
}

impl ApiError {
    /// The one place errors become status codes.
    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::Unauthorized => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden => StatusCode::FORBIDDEN,
            ApiError::BodyTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::UnsupportedEncoding(_) | ApiError::UnsupportedMediaType(_) => {
                StatusCode::UNSUPPORTED_MEDIA_TYPE
            }
            ApiError::BadBody(_) | ApiError::InvalidField { .. } => StatusCode::BAD_REQUEST,
            ApiError::AdminRequired => StatusCode::FORBIDDEN,
            ApiError::Unprocessable(_) => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::NotJson => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::Conflict { .. } => StatusCode::CONFLICT,
            ApiError::NotFound { .. } => StatusCode::NOT_FOUND,
            ApiError::Unavailable | ApiError::Storage => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Overloaded { .. } => StatusCode::TOO_MANY_REQUESTS,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

impl ApiError {
    /// The same errors for gRPC clients (OTLP/gRPC), and in the `google.rpc.Status` body
    /// of OTLP/HTTP errors: the one place they become gRPC codes. Clients retry
    /// `UNAVAILABLE` and `RESOURCE_EXHAUSTED` (the 503 and 429 of HTTP).
    pub fn grpc_code(&self) -> tonic::Code {
        match self {
            ApiError::Unauthorized => tonic::Code::Unauthenticated,
            ApiError::Forbidden | ApiError::AdminRequired => tonic::Code::PermissionDenied,
            ApiError::Conflict { .. } => tonic::Code::AlreadyExists,
            ApiError::NotFound { .. } => tonic::Code::NotFound,
            ApiError::InvalidField { .. } | ApiError::Unprocessable(_) | ApiError::NotJson => {
                tonic::Code::InvalidArgument
            }
            ApiError::BodyTooLarge { .. }
            | ApiError::UnsupportedEncoding(_)
            | ApiError::UnsupportedMediaType(_)
            | ApiError::BadBody(_) => tonic::Code::InvalidArgument,
            ApiError::Unavailable | ApiError::Storage => tonic::Code::Unavailable,
            ApiError::Overloaded { .. } => tonic::Code::ResourceExhausted,
            ApiError::Internal(_) => tonic::Code::Internal,
        }
    }
}

impl From<PipelineError> for ApiError {
    fn from(e: PipelineError) -> Self {
        match e {
            PipelineError::WriterGone => ApiError::Unavailable,
            PipelineError::WalFailed => ApiError::Storage,
            other => ApiError::Internal(other.to_string()),
        }
    }
}

impl ApiError {
    /// The field at fault, for the body's `"field"`.
    pub fn field(&self) -> Option<&'static str> {
        match self {
            ApiError::InvalidField { field, .. }
            | ApiError::Conflict { field, .. }
            | ApiError::NotFound { field, .. } => Some(field),
            _ => None,
        }
    }
}

impl From<telltale_monitor::RegistryError> for ApiError {
    fn from(e: telltale_monitor::RegistryError) -> Self {
        use telltale_monitor::RegistryError as R;
        match e {
            R::Invalid(spec) => ApiError::InvalidField {
                field: spec.field,
                message: spec.message,
            },
            e @ R::Duplicate { .. } => ApiError::Conflict {
                field: "url",
                message: e.to_string(),
            },
            e @ R::FromConfig { .. } => ApiError::Conflict {
                field: "id",
                message: e.to_string(),
            },
            e @ R::NotFound(_) => ApiError::NotFound {
                field: "id",
                message: e.to_string(),
            },
            R::Store(e) => ApiError::Internal(e.to_string()),
        }
    }
}

#[derive(Serialize)]
struct ErrorBody {
    error: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    field: Option<&'static str>,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        let mut resp = (
            status,
            Json(ErrorBody {
                error: self.to_string(),
                field: self.field(),
            }),
        )
            .into_response();
        match self {
            ApiError::Unauthorized => {
                resp.headers_mut()
                    .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            }
            ApiError::Unavailable | ApiError::Storage => {
                resp.headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from_static("5"));
            }
            ApiError::Overloaded { .. } => {
                resp.headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
            }
            _ => {}
        }
        resp
    }
}
