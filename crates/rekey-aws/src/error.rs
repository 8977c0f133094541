//! The one place where AWS SDK errors become [`StoreError`]s.
//!
//! | AWS                                                            | `StoreError`          | retryable |
//! |----------------------------------------------------------------|-----------------------|-----------|
//! | `ResourceNotFoundException`                                    | `NotFound`            | no        |
//! | `ResourceExistsException`                                      | `AlreadyExists`       | no        |
//! | `InvalidParameterException` / `InvalidRequestException` on the promoting `UpdateSecretVersionStage` when the expected version is no longer current | `Conflict` (decided by the store after re-listing) | no |
//! | `InvalidParameterException`, `InvalidRequestException`, `ValidationException`, `MalformedPolicyDocumentException`, `PreconditionNotMetException` | `InvalidInput` | no |
//! | `AccessDeniedException`, `DecryptionFailure`, `EncryptionFailure`, HTTP 403 | `PermissionDenied` | no |
//! | `UnrecognizedClientException`, `InvalidClientTokenId`, `ExpiredToken*`, signature errors, missing credentials, HTTP 401 | `Unauthenticated` | no |
//! | `ThrottlingException`, `TooManyRequestsException`, `RequestLimitExceeded`, HTTP 429 | `RateLimited` | yes |
//! | `InternalServiceError`, `ServiceUnavailable`, any HTTP 5xx, connection errors, timeouts | `Unavailable` | yes |
//! | `LimitExceededException` (a Secrets Manager quota, e.g. too many versions) and anything else | `Other` | no |
//!
//! Messages come from the service's error message, the operation and the
//! secret name only. The SDK error itself is never kept as a `source` unless
//! it is a connection error: a response that failed to parse may hold a
//! `GetSecretValue` body, so it is never attached, formatted or logged.

use std::error::Error as StdError;

use aws_sdk_secretsmanager::error::{ProvideErrorMetadata, SdkError};
use rekey_core::{BoxError, StoreError};

/// Service error codes (the `__type` of an AWS JSON error) by class.
const UNAUTHENTICATED_CODES: &[&str] = &[
    "UnrecognizedClientException",
    "InvalidClientTokenId",
    "ExpiredToken",
    "ExpiredTokenException",
    "IncompleteSignature",
    "InvalidSignatureException",
    "MissingAuthenticationToken",
    "SignatureDoesNotMatch",
    "AuthFailure",
    "NotAuthorized",
];
const PERMISSION_CODES: &[&str] = &["AccessDeniedException", "AccessDenied", "DecryptionFailure", "EncryptionFailure"];
const THROTTLING_CODES: &[&str] = &[
    "ThrottlingException",
    "Throttling",
    "TooManyRequestsException",
    "RequestLimitExceeded",
    "RequestThrottled",
    "RequestThrottledException",
    "SlowDown",
];
const UNAVAILABLE_CODES: &[&str] =
    &["InternalServiceError", "InternalFailure", "InternalError", "ServiceUnavailable", "RequestTimeout"];
const INVALID_CODES: &[&str] = &[
    "InvalidParameterException",
    "InvalidRequestException",
    "ValidationException",
    "MalformedPolicyDocumentException",
    "PreconditionNotMetException",
    "InvalidNextTokenException",
];

/// What a failed call was about, for the error message.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Ctx<'a> {
    /// The Secrets Manager operation (`GetSecretValue`, ...).
    pub op: &'static str,
    /// The secret name.
    pub path: &'a str,
    /// What a `ResourceNotFoundException` means here (`None`: the secret).
    pub missing: Option<&'a str>,
}

impl<'a> Ctx<'a> {
    pub(crate) fn new(op: &'static str, path: &'a str) -> Self {
        Self { op, path, missing: None }
    }
    pub(crate) fn missing(mut self, what: &'a str) -> Self {
        self.missing = Some(what);
        self
    }
}

/// The class of a service error, from its code and HTTP status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Class {
    NotFound,
    AlreadyExists,
    Invalid,
    PermissionDenied,
    Unauthenticated,
    RateLimited,
    Unavailable,
    Other,
}

/// Classifies a service error by its code, falling back to the HTTP status.
pub(crate) fn classify(code: Option<&str>, status: Option<u16>) -> Class {
    let code = code.unwrap_or("");
    // Some services send `Namespace#Code`; compare the last part.
    let code = code.rsplit('#').next().unwrap_or(code);
    if code == "ResourceNotFoundException" {
        Class::NotFound
    } else if code == "ResourceExistsException" {
        Class::AlreadyExists
    } else if UNAUTHENTICATED_CODES.contains(&code) {
        Class::Unauthenticated
    } else if PERMISSION_CODES.contains(&code) {
        Class::PermissionDenied
    } else if THROTTLING_CODES.contains(&code) {
        Class::RateLimited
    } else if UNAVAILABLE_CODES.contains(&code) {
        Class::Unavailable
    } else if INVALID_CODES.contains(&code) {
        Class::Invalid
    } else {
        match status {
            Some(429) => Class::RateLimited,
            Some(s) if s >= 500 => Class::Unavailable,
            Some(401) => Class::Unauthenticated,
            Some(403) => Class::PermissionDenied,
            Some(404) => Class::NotFound,
            _ => Class::Other,
        }
    }
}

/// A failed SDK call, reduced to what rekey needs: its class, code and
/// message (never a response body), and a safe source for transport errors.
#[derive(Debug)]
pub(crate) struct AwsFailure {
    pub class: Class,
    pub message: String,
    pub source: Option<BoxError>,
}

impl AwsFailure {
    /// Reduces an SDK error. Consumes it so nothing else can format it.
    pub(crate) fn from_sdk<E>(err: SdkError<E>) -> Self
    where
        E: ProvideErrorMetadata + StdError + Send + Sync + 'static,
    {
        // The source of a timeout or of a construction failure describes the
        // request, never a response; other variants' sources are not read.
        let request_side_source = match &err {
            SdkError::TimeoutError(_) | SdkError::ConstructionFailure(_) => StdError::source(&err).map(chain_text),
            _ => None,
        };
        match err {
            SdkError::ServiceError(se) => {
                let status = se.raw().status().as_u16();
                let e = se.err();
                let code = e.code().map(str::to_owned);
                let message = e.message().map(str::to_owned).unwrap_or_default();
                let message = if message.is_empty() {
                    format!("{} (HTTP {status})", code.as_deref().unwrap_or("unknown error"))
                } else {
                    format!("{}: {message}", code.as_deref().unwrap_or("error"))
                };
                // An HTML error page (moto's 500s) is noise: keep its status only.
                let message = if message.contains("<html") || message.contains("<!doctype") {
                    format!("{} (HTTP {status})", code.as_deref().unwrap_or("server error"))
                } else {
                    message
                };
                Self { class: classify(code.as_deref(), Some(status)), message, source: None }
            }
            SdkError::TimeoutError(_) => Self {
                class: Class::Unavailable,
                message: "the request timed out".to_owned(),
                source: request_side_source.map(BoxError::from),
            },
            SdkError::DispatchFailure(d) => {
                let mut source: Option<BoxError> = None;
                let (class, message) = if let Some(ce) = d.as_connector_error() {
                    if is_credentials_error(ce) {
                        (Class::Unauthenticated, format!("no usable AWS credentials: {}", chain_text(ce)))
                    } else if ce.is_user() {
                        (Class::Other, format!("the request could not be sent: {}", chain_text(ce)))
                    } else if ce.is_timeout() {
                        (Class::Unavailable, format!("timed out talking to Secrets Manager: {}", chain_text(ce)))
                    } else {
                        (Class::Unavailable, format!("could not reach Secrets Manager: {}", chain_text(ce)))
                    }
                } else {
                    (Class::Unavailable, "could not reach Secrets Manager".to_owned())
                };
                if class == Class::Unavailable {
                    source = d.as_connector_error().map(|ce| BoxError::from(chain_text(ce)));
                }
                Self { class, message, source }
            }
            SdkError::ConstructionFailure(_) => {
                // Request construction failed before anything was sent (no
                // region, an invalid parameter). The source only describes
                // the request shape.
                let text = request_side_source.unwrap_or_default();
                let class = if text.to_ascii_lowercase().contains("credential") {
                    Class::Unauthenticated
                } else {
                    Class::Invalid
                };
                Self { class, message: format!("the request could not be built: {text}"), source: None }
            }
            SdkError::ResponseError(r) => {
                // The body failed to parse; it may be a secret value, so it is
                // dropped unread. Only the status is kept.
                let status = r.raw().status().as_u16();
                let class = if status >= 500 { Class::Unavailable } else { Class::Other };
                Self { class, message: format!("unreadable response (HTTP {status})"), source: None }
            }
            _ => Self { class: Class::Other, message: "unknown SDK error".to_owned(), source: None },
        }
    }

    /// Whether this is an `InvalidParameterException` / `InvalidRequestException`
    /// (what a stage move with a stale `RemoveFromVersionId` returns).
    pub(crate) fn is_invalid_request(&self) -> bool {
        self.class == Class::Invalid
    }

    /// Whether this is a server-side failure (5xx and kin).
    pub(crate) fn is_unavailable(&self) -> bool {
        self.class == Class::Unavailable
    }

    /// Whether the service said the resource already exists.
    pub(crate) fn is_already_exists(&self) -> bool {
        self.class == Class::AlreadyExists
    }

    /// The typed error, with the operation and secret name for context.
    pub(crate) fn into_store_error(self, ctx: Ctx<'_>) -> StoreError {
        let Ctx { op, path, missing } = ctx;
        let message = format!("{op} on {path}: {}", self.message);
        match self.class {
            Class::NotFound => StoreError::not_found(path, missing.map(str::to_owned)),
            Class::AlreadyExists => StoreError::AlreadyExists { path: path.to_owned() },
            Class::Invalid => StoreError::invalid(message),
            Class::PermissionDenied => StoreError::PermissionDenied { path: Some(path.to_owned()), message },
            Class::Unauthenticated => StoreError::Unauthenticated { message },
            Class::RateLimited => StoreError::RateLimited { message, retry_after: None },
            Class::Unavailable => StoreError::Unavailable { message, source: self.source },
            Class::Other => StoreError::Other { message, source: self.source },
        }
    }
}

/// Maps an SDK error straight to a [`StoreError`].
pub(crate) fn map_sdk<E>(err: SdkError<E>, ctx: Ctx<'_>) -> StoreError
where
    E: ProvideErrorMetadata + StdError + Send + Sync + 'static,
{
    AwsFailure::from_sdk(err).into_store_error(ctx)
}

/// An error and its sources, joined with `: `.
fn chain_text(err: &(dyn StdError + 'static)) -> String {
    let mut out = err.to_string();
    let mut cur = err.source();
    let mut depth = 0;
    while let Some(s) = cur {
        let t = s.to_string();
        if !out.contains(&t) {
            out.push_str(": ");
            out.push_str(&t);
        }
        cur = s.source();
        depth += 1;
        if depth > 8 {
            break;
        }
    }
    out
}

/// Whether a connector error was caused by failing to load credentials.
fn is_credentials_error(err: &(dyn StdError + 'static)) -> bool {
    let mut cur: Option<&(dyn StdError + 'static)> = Some(err);
    while let Some(e) = cur {
        if e.is::<aws_credential_types::provider::error::CredentialsError>() {
            return true;
        }
        cur = e.source();
    }
    false
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use aws_sdk_secretsmanager::config::http::HttpResponse;
    use aws_sdk_secretsmanager::error::{ConnectorError, ErrorMetadata};
    use aws_sdk_secretsmanager::operation::get_secret_value::GetSecretValueError;
    use aws_sdk_secretsmanager::operation::update_secret_version_stage::UpdateSecretVersionStageError;
    use aws_smithy_types::body::SdkBody;

    fn service_error(code: &str, status: u16) -> SdkError<GetSecretValueError> {
        let meta = ErrorMetadata::builder().code(code).message("the service said so").build();
        let raw = HttpResponse::new(status.try_into().unwrap(), SdkBody::empty());
        SdkError::service_error(GetSecretValueError::generic(meta), raw)
    }

    fn map(code: &str, status: u16) -> StoreError {
        map_sdk(service_error(code, status), Ctx::new("GetSecretValue", "a/b").missing("current version"))
    }

    #[test]
    fn maps_each_service_code() {
        assert!(
            matches!(map("ResourceNotFoundException", 400), StoreError::NotFound { path, what: Some(w) } if path == "a/b" && w == "current version")
        );
        assert!(matches!(map("ResourceExistsException", 400), StoreError::AlreadyExists { .. }));
        assert!(matches!(map("InvalidParameterException", 400), StoreError::InvalidInput { .. }));
        assert!(matches!(map("InvalidRequestException", 400), StoreError::InvalidInput { .. }));
        assert!(matches!(map("AccessDeniedException", 400), StoreError::PermissionDenied { .. }));
        assert!(matches!(map("DecryptionFailure", 400), StoreError::PermissionDenied { .. }));
        assert!(matches!(map("UnrecognizedClientException", 400), StoreError::Unauthenticated { .. }));
        assert!(matches!(map("ExpiredTokenException", 400), StoreError::Unauthenticated { .. }));
        assert!(matches!(map("ThrottlingException", 400), StoreError::RateLimited { .. }));
        assert!(matches!(map("InternalServiceError", 500), StoreError::Unavailable { .. }));
        assert!(matches!(map("LimitExceededException", 400), StoreError::Other { .. }));
        // Unknown codes fall back to the HTTP status.
        assert!(matches!(map("Whatever", 503), StoreError::Unavailable { .. }));
        assert!(matches!(map("Whatever", 429), StoreError::RateLimited { .. }));
        assert!(matches!(map("Whatever", 403), StoreError::PermissionDenied { .. }));
        assert!(matches!(map("Whatever", 401), StoreError::Unauthenticated { .. }));
        assert!(matches!(map("Whatever", 418), StoreError::Other { .. }));
        assert!(matches!(map("aws.protocols#ThrottlingException", 400), StoreError::RateLimited { .. }));
    }

    #[test]
    fn retryable_only_when_transient() {
        assert!(map("ThrottlingException", 400).is_retryable());
        assert!(map("InternalServiceError", 500).is_retryable());
        assert!(!map("InvalidRequestException", 400).is_retryable());
        assert!(!map("AccessDeniedException", 400).is_retryable());
        assert!(!map("ResourceNotFoundException", 400).is_retryable());
    }

    #[test]
    fn stage_mismatch_is_recognised_as_invalid_request() {
        let meta = ErrorMetadata::builder()
            .code("InvalidParameterException")
            .message("Version stage AWSCURRENT not found in version x")
            .build();
        let raw = HttpResponse::new(400.try_into().unwrap(), SdkBody::empty());
        let err = SdkError::service_error(UpdateSecretVersionStageError::generic(meta), raw);
        assert!(AwsFailure::from_sdk(err).is_invalid_request());
    }

    #[test]
    fn transport_failures_are_retryable() {
        let io = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "connection refused");
        let err: SdkError<GetSecretValueError> = SdkError::dispatch_failure(ConnectorError::io(Box::new(io)));
        let mapped = map_sdk(err, Ctx::new("GetSecretValue", "a/b"));
        assert!(matches!(mapped, StoreError::Unavailable { .. }) && mapped.is_retryable(), "{mapped:?}");
        let t: SdkError<GetSecretValueError> = SdkError::timeout_error("attempt timeout");
        assert!(map_sdk(t, Ctx::new("GetSecretValue", "a/b")).is_retryable());
    }

    #[test]
    fn response_bodies_are_never_shown() {
        let body = r#"{"SecretString":"hunter2-body-secret"#;
        let raw = HttpResponse::new(200.try_into().unwrap(), SdkBody::from(body));
        let err: SdkError<GetSecretValueError> = SdkError::response_error("parse failure", raw);
        let mapped = map_sdk(err, Ctx::new("GetSecretValue", "a/b"));
        let shown = format!("{mapped} {mapped:?}");
        assert!(!shown.contains("hunter2"), "{shown}");
    }

    #[test]
    fn html_error_pages_are_reduced_to_their_status() {
        let meta = ErrorMetadata::builder().code("500").message("<!doctype html>\n<html lang=en>...").build();
        let raw = HttpResponse::new(500.try_into().unwrap(), SdkBody::empty());
        let err = SdkError::service_error(GetSecretValueError::generic(meta), raw);
        let mapped = map_sdk(err, Ctx::new("ListSecretVersionIds", "a/b"));
        assert!(mapped.is_retryable());
        assert!(!mapped.to_string().contains("html"), "{mapped}");
    }
}
