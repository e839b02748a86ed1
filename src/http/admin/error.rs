//! The admin API's errors: `{"error": "<code>", "message": "…"}` with the
//! status each stands for, from the engine's, the directory's and a body's
//! failures.

use actix_web::HttpResponse;
use actix_web::http::{StatusCode, header};
use serde::Serialize;
use utoipa::ToSchema;

use crate::dialect::BodyError;
use crate::engine::{DirectoryError, EngineError};

/// Largest JSON body of a single-user route.
pub const MAX_JSON_BYTES: usize = 64 * 1024;

/// An admin API error, as it is answered.
#[derive(Debug)]
pub struct AdminError {
    status: StatusCode,
    code: &'static str,
    message: String,
}

/// Every admin API error body.
#[derive(Serialize, ToSchema)]
pub struct ErrorBody {
    /// `unauthorized`, `not_found`, `malformed_request`, `invalid_request`,
    /// `conflict`, `payload_too_large`, `method_not_allowed`, `unavailable`
    /// or `internal`.
    #[schema(example = "not_found")]
    error: &'static str,
    #[schema(example = "no such user")]
    message: String,
}

impl AdminError {
    pub(super) fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
        }
    }

    pub(super) fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", message)
    }

    pub(super) fn invalid(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid_request", message)
    }

    pub(super) fn malformed(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "malformed_request", message)
    }

    pub(super) fn response(&self) -> HttpResponse {
        let mut answer = HttpResponse::build(self.status);
        if self.status == StatusCode::UNAUTHORIZED {
            answer.insert_header((header::WWW_AUTHENTICATE, "Bearer realm=\"polyauth-admin\""));
        }
        answer.json(ErrorBody {
            error: self.code,
            message: self.message.clone(),
        })
    }
}

impl std::fmt::Display for AdminError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.code, self.message)
    }
}

impl actix_web::ResponseError for AdminError {
    fn status_code(&self) -> StatusCode {
        self.status
    }

    fn error_response(&self) -> HttpResponse {
        self.response()
    }
}

impl From<EngineError> for AdminError {
    fn from(error: EngineError) -> Self {
        match error {
            EngineError::Unavailable(reason) => {
                tracing::warn!(%reason, "admin API: unavailable");
                Self::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "unavailable",
                    "the store or the hashing threads cannot answer now; try again",
                )
            }
            other => {
                tracing::error!(error = %other, "admin API: internal error");
                Self::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "internal",
                    "internal error",
                )
            }
        }
    }
}

impl From<DirectoryError> for AdminError {
    fn from(error: DirectoryError) -> Self {
        match error {
            DirectoryError::Invalid { .. } => Self::invalid(error.to_string()),
            DirectoryError::Conflict(message) => {
                Self::new(StatusCode::CONFLICT, "conflict", message)
            }
            DirectoryError::NotFound => Self::not_found("no such user"),
            DirectoryError::Engine(error) => error.into(),
        }
    }
}

impl From<BodyError> for AdminError {
    fn from(error: BodyError) -> Self {
        match error {
            BodyError::TooLarge => Self::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "payload_too_large",
                format!("the body is larger than {MAX_JSON_BYTES} bytes"),
            ),
            BodyError::TimedOut => Self::new(
                StatusCode::REQUEST_TIMEOUT,
                "request_timeout",
                "the body did not arrive in time",
            ),
            BodyError::Broken => Self::malformed("the body could not be read"),
        }
    }
}

pub type Answer = Result<HttpResponse, AdminError>;
