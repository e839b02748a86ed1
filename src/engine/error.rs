//! The one error type of the engine, and the one table of the codes every
//! dialect answers: code, usual HTTP status, default message, the codes it
//! falls back to, and the finer message keys ("details") it can carry.
//! Codes travel between engine, dialect and HTTP as these enums, never as
//! strings; a dialect file names them by their wire name.

use std::time::Duration;

use crate::store::StoreError;

/// One row per code: `Variant = "wire_name", status, "default message",
/// [fallbacks tried after it], [details a failure of it can carry]`.
macro_rules! error_codes {
    ($( $variant:ident = $name:literal, $status:literal, $message:literal,
        [$($fallback:ident),*], [$($detail:ident),*]; )*) => {
        /// Every error a dialect can answer.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum ErrorCode { $($variant),* }

        impl ErrorCode {
            pub const ALL: &[ErrorCode] = &[$(Self::$variant),*];

            /// The name a dialect file maps (`[errors] <name> = ...`).
            pub fn as_str(self) -> &'static str {
                match self { $(Self::$variant => $name),* }
            }

            /// The HTTP status it stands for. Forward-auth always answers
            /// with it, whatever status a dialect's own routes use.
            pub fn usual_status(self) -> u16 {
                match self { $(Self::$variant => $status),* }
            }

            /// The text `{{message}}` takes when the dialect has none.
            pub fn default_message(self) -> &'static str {
                match self { $(Self::$variant => $message),* }
            }

            /// Codes whose answer serves when this one has none, in order
            /// (before the dialect's `default`).
            pub fn fallbacks(self) -> &'static [ErrorCode] {
                match self { $(Self::$variant => &[$(Self::$fallback),*]),* }
            }

            /// The finer message keys a failure of this code can carry;
            /// none: the code is its own message key.
            pub fn details(self) -> &'static [Detail] {
                match self { $(Self::$variant => &[$(Detail::$detail),*]),* }
            }
        }
    };
}

error_codes! {
    MalformedRequest = "malformed_request", 400, "Malformed request", [],
        [NoBody, InvalidBody, UnsupportedEncoding, MissingField, WrongType, UnknownField,
         PatternMismatch];
    UnknownUser = "unknown_user", 401, "Invalid credentials", [InvalidCredentials], [];
    WrongPassword = "wrong_password", 401, "Invalid credentials", [InvalidCredentials], [];
    InvalidCredentials = "invalid_credentials", 401, "Invalid credentials", [], [];
    AccountInactive = "account_inactive", 401, "Account is not activated", [], [];
    EmailUnverified = "email_unverified", 403, "Email is not verified", [], [];
    MissingToken = "missing_token", 401, "Missing credentials", [InvalidToken], [];
    InvalidToken = "invalid_token", 401, "Invalid token", [],
        [TokenInvalid, TokenExpired, TokenRevoked, TokenWrongType];
    Forbidden = "forbidden", 403, "Forbidden", [], [];
    LockedOut = "locked_out", 429, "Too many failed attempts, retry in {{retry_after}} seconds", [], [];
    Unavailable = "unavailable", 503, "Service temporarily unavailable", [], [];
    Internal = "internal", 500, "Internal server error", [], [];
    // The upstream proxy's own failures; a dialect that does not map them
    // answers as it answers an outage.
    BadGateway = "bad_gateway", 502, "Bad gateway", [Unavailable], [];
    GatewayTimeout = "gateway_timeout", 504, "Gateway timeout", [Unavailable], [];
    NotFound = "not_found", 404, "Not found", [], [];
    MethodNotAllowed = "method_not_allowed", 405, "Method not allowed", [], [];
    PayloadTooLarge = "payload_too_large", 413, "Request body too large", [], [];
    RequestTimeout = "request_timeout", 408, "Request timed out", [MalformedRequest], [];
}

/// One row per detail: `Variant = "wire_name", "default message"`.
macro_rules! details {
    ($( $variant:ident = $name:literal, $message:literal; )*) => {
        /// A message key more precise than its error code.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum Detail { $($variant),* }

        impl Detail {
            pub const ALL: &[Detail] = &[$(Self::$variant),*];

            pub fn as_str(self) -> &'static str {
                match self { $(Self::$variant => $name),* }
            }

            pub fn default_message(self) -> &'static str {
                match self { $(Self::$variant => $message),* }
            }
        }
    };
}

details! {
    NoBody = "no_body", "Missing request body";
    InvalidBody = "invalid_body", "Request body is not valid";
    UnsupportedEncoding = "unsupported_encoding", "Unsupported content type";
    MissingField = "missing_field", "Missing field: {{field}}";
    UnknownField = "unknown_field", "Unknown field: {{field}}";
    WrongType = "wrong_type", "Field {{field}} must be a {{expected}}";
    PatternMismatch = "pattern_mismatch", "Field {{field}} must match {{pattern}}";
    TokenInvalid = "token_invalid", "Invalid token";
    TokenExpired = "token_expired", "Token has expired";
    TokenRevoked = "token_revoked", "Token has been revoked";
    TokenWrongType = "token_wrong_type", "Wrong token type";
}

/// A message key: an error code, or a detail of one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum MessageKey {
    Code(ErrorCode),
    Detail(Detail),
}

impl MessageKey {
    /// Every message key, codes first, in table order.
    pub fn all() -> impl Iterator<Item = MessageKey> {
        let codes = ErrorCode::ALL.iter().copied().map(Self::Code);
        codes.chain(Detail::ALL.iter().copied().map(Self::Detail))
    }

    pub fn parse(name: &str) -> Option<Self> {
        Self::all().find(|key| key.as_str() == name)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Code(code) => code.as_str(),
            Self::Detail(detail) => detail.as_str(),
        }
    }

    pub fn default_message(self) -> &'static str {
        match self {
            Self::Code(code) => code.default_message(),
            Self::Detail(detail) => detail.default_message(),
        }
    }
}

/// Why a presented token was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenProblem {
    /// Bad signature, unknown `kid`, wrong algorithm, issuer, audience or tenant, garbage.
    Invalid,
    Expired,
    Revoked,
    /// A refresh token where an access token was expected, or the reverse.
    WrongType,
}

impl TokenProblem {
    /// The detail a dialect can give its own text for.
    pub fn detail(self) -> Detail {
        match self {
            Self::Invalid => Detail::TokenInvalid,
            Self::Expired => Detail::TokenExpired,
            Self::Revoked => Detail::TokenRevoked,
            Self::WrongType => Detail::TokenWrongType,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error("malformed request")]
    MalformedRequest,
    #[error("unknown user")]
    UnknownUser,
    #[error("wrong password")]
    WrongPassword,
    #[error("invalid credentials")]
    InvalidCredentials,
    #[error("account inactive")]
    AccountInactive,
    #[error("email unverified")]
    EmailUnverified,
    #[error("missing token")]
    MissingToken,
    #[error("invalid token ({0:?})")]
    InvalidToken(TokenProblem),
    /// The credential is valid but not for this company.
    #[error("forbidden")]
    Forbidden,
    #[error("locked out for {retry_after:?}")]
    LockedOut { retry_after: Duration },
    /// The store cannot answer, or the gateway is saturated.
    #[error("unavailable: {0}")]
    Unavailable(String),
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

impl EngineError {
    /// The code a dialect answers it with.
    pub fn code(&self) -> ErrorCode {
        match self {
            Self::MalformedRequest => ErrorCode::MalformedRequest,
            Self::UnknownUser => ErrorCode::UnknownUser,
            Self::WrongPassword => ErrorCode::WrongPassword,
            Self::InvalidCredentials => ErrorCode::InvalidCredentials,
            Self::AccountInactive => ErrorCode::AccountInactive,
            Self::EmailUnverified => ErrorCode::EmailUnverified,
            Self::MissingToken => ErrorCode::MissingToken,
            Self::InvalidToken(_) => ErrorCode::InvalidToken,
            Self::Forbidden => ErrorCode::Forbidden,
            Self::LockedOut { .. } => ErrorCode::LockedOut,
            Self::Unavailable(_) => ErrorCode::Unavailable,
            Self::Internal(_) => ErrorCode::Internal,
        }
    }

    /// What is known more precisely than the code.
    pub fn detail(&self) -> Option<Detail> {
        match self {
            Self::InvalidToken(problem) => Some(problem.detail()),
            _ => None,
        }
    }

    /// Whole seconds to wait, rounded up, for `locked_out`.
    pub fn retry_after_secs(&self) -> Option<u64> {
        match self {
            Self::LockedOut { retry_after } => Some(retry_after.as_millis().div_ceil(1000) as u64),
            _ => None,
        }
    }
}

pub type EngineResult<T> = Result<T, EngineError>;

impl From<StoreError> for EngineError {
    fn from(error: StoreError) -> Self {
        Self::Unavailable(error.0)
    }
}
