//! How the server's answers map onto [`StoreError`] — in one place.
//!
//! | server answer | `StoreError` | retryable |
//! |---|---|---|
//! | 400 `check-and-set parameter did not match` | `Conflict` | no |
//! | 400 anything else (e.g. `check-and-set parameter required`) | `InvalidInput` | no |
//! | 401 | `Unauthenticated` | no |
//! | 403 with a token the server still accepts (`lookup-self` works) | `PermissionDenied` | no |
//! | 403 with a token the server rejects (expired, revoked, wrong) | `Unauthenticated` | no |
//! | 404 with no error text (missing secret or version) | `NotFound` | no |
//! | 404 with error text (`no handler for route`: wrong mount) | `InvalidInput` | no |
//! | 405 | `NotSupported` | no |
//! | 412 (Enterprise consistency: index not yet replicated) | `Unavailable` | yes |
//! | 429 | `RateLimited` | yes |
//! | 5xx, 503 sealed / standby | `Unavailable` | yes |
//! | connection refused, reset, DNS, timeout | `Unavailable` | yes |
//! | the server's TLS certificate not trusted | `Other` | no |
//! | an answer that is not Vault's JSON | `Other` | no |
//!
//! OpenBao and Vault answer `403 permission denied` both for a bad token and
//! for a good token without the capability. The store tells them apart by
//! asking `auth/token/lookup-self` (one extra request, only after a 403):
//! every token may look itself up through the `default` policy, so a 403
//! there means the token itself is not accepted. A token created without the
//! `default` policy is therefore reported as `Unauthenticated`.
//!
//! No message carries a response body: only the status, Vault's `errors`
//! strings (which never echo request data) and transport error text.

use rekey_core::StoreError;
use vaultrs::error::ClientError;

/// A failed request, reduced to what the mapping needs.
#[derive(Debug)]
pub(crate) enum Failure {
    /// The server answered with an error status.
    Api { code: u16, errors: Vec<String> },
    /// The request did not get an answer (refused, reset, timeout).
    Transport(String),
    /// The server's TLS certificate was not accepted: a setting to fix, not
    /// a transient failure.
    Tls(String),
    /// The server's answer could not be understood.
    Response(String),
    /// Something on this side (settings, request building).
    Local(String),
}

impl Failure {
    pub(crate) fn is_cas_mismatch(&self) -> bool {
        matches!(self, Self::Api { code: 400, errors } if errors.iter().any(|e| e.contains("check-and-set parameter did not match")))
    }

    fn transport(msg: String) -> Self {
        if msg.contains("certificate") { Self::Tls(msg) } else { Self::Transport(msg) }
    }

    pub(crate) fn is_status(&self, status: u16) -> bool {
        matches!(self, Self::Api { code, .. } if *code == status)
    }
}

impl From<ClientError> for Failure {
    fn from(e: ClientError) -> Self {
        use rustify::errors::ClientError as Rest;
        match e {
            ClientError::APIError { code, errors } => Self::Api { code, errors },
            ClientError::RestClientError { source } => match source {
                // An error status whose body was not Vault's `{"errors": [..]}`
                // (e.g. a proxy's HTML page): keep the status, drop the body.
                Rest::ServerResponseError { code, .. } => Self::Api { code, errors: Vec::new() },
                Rest::RequestError { source, .. } => Self::transport(format!("{source:#}")),
                Rest::ResponseError { source } => Self::Transport(format!("{source:#}")),
                // The parse errors carry the response body, which may hold a
                // secret: never keep it.
                Rest::ResponseParseError { .. } | Rest::ResponseConversionError { .. } => {
                    Self::Response("the server's answer could not be parsed".to_owned())
                }
                other => Self::Local(other.to_string()),
            },
            ClientError::JsonParseError { .. } => {
                Self::Response("the server's answer had an unexpected shape".to_owned())
            }
            ClientError::ResponseEmptyError | ClientError::ResponseDataEmptyError => {
                Self::Response("the server's answer had no data".to_owned())
            }
            ClientError::FileReadError { path, source } => Self::Local(format!("cannot read {path}: {source}")),
            ClientError::ParseCertificateError { path, .. } => {
                Self::Local(format!("{path} is not a PEM certificate bundle"))
            }
            other => Self::Local(other.to_string()),
        }
    }
}

impl From<reqwest::Error> for Failure {
    fn from(e: reqwest::Error) -> Self {
        let mut msg = e.to_string();
        let mut src = std::error::Error::source(&e);
        while let Some(s) = src {
            msg.push_str(": ");
            msg.push_str(&s.to_string());
            src = s.source();
        }
        if e.is_builder() { Self::Local(msg) } else { Self::transport(msg) }
    }
}

/// THE mapping from a failed request to a [`StoreError`] (see the module
/// docs for the table). `path` is the secret the request was about.
///
/// A compare-and-swap mismatch becomes a `Conflict` without the versions;
/// callers that know them fill them in.
pub(crate) fn to_store_error(f: &Failure, path: Option<&str>) -> StoreError {
    let path_s = || path.unwrap_or("").to_owned();
    match f {
        Failure::Api { code, errors } => {
            let text = if errors.is_empty() { String::new() } else { format!(": {}", errors.join("; ")) };
            match *code {
                400 if f.is_cas_mismatch() => StoreError::Conflict { path: path_s(), expected: None, actual: None },
                400 => StoreError::invalid(format!("the server rejected the request (400){text}")),
                401 => StoreError::Unauthenticated { message: format!("the server rejected the token (401){text}") },
                403 => StoreError::PermissionDenied {
                    path: path.map(str::to_owned),
                    message: format!("the token may not do this (403){text}"),
                },
                404 if errors.is_empty() => StoreError::NotFound { path: path_s(), what: None },
                404 => StoreError::invalid(format!("no such endpoint (404){text}; is the mount a KV version 2 mount?")),
                405 => {
                    StoreError::NotSupported { message: format!("the server does not allow this method (405){text}") }
                }
                412 => StoreError::unavailable(format!("the server is not yet consistent (412){text}")),
                429 => StoreError::RateLimited {
                    message: format!("the server throttled the request (429){text}"),
                    retry_after: None,
                },
                503 if errors.iter().any(|e| e.contains("sealed")) => {
                    StoreError::unavailable(format!("the server is sealed (503){text}"))
                }
                500..=599 => StoreError::unavailable(format!("server error ({code}){text}")),
                _ => StoreError::Other { message: format!("unexpected status {code}{text}"), source: None },
            }
        }
        Failure::Transport(msg) => StoreError::unavailable(format!("no answer from the server: {msg}")),
        Failure::Tls(msg) => StoreError::Other {
            message: format!("the server's TLS certificate was refused (set ca_cert to trust its CA): {msg}"),
            source: None,
        },
        Failure::Response(msg) => StoreError::Other { message: msg.clone(), source: None },
        Failure::Local(msg) => StoreError::invalid(msg.clone()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn api(code: u16, errors: &[&str]) -> Failure {
        Failure::Api { code, errors: errors.iter().map(|s| (*s).to_owned()).collect() }
    }

    #[test]
    fn every_status_maps_to_its_variant() {
        let p = Some("a/b");
        let cases: &[(Failure, &str, bool)] = &[
            (api(400, &["check-and-set parameter did not match the current version"]), "conflict", false),
            (api(400, &["check-and-set parameter required for this call"]), "invalid_input", false),
            (api(401, &[]), "unauthenticated", false),
            (api(403, &["permission denied"]), "permission_denied", false),
            (api(404, &[]), "not_found", false),
            (api(404, &["no handler for route \"nope/data/x\""]), "invalid_input", false),
            (api(405, &[]), "not_supported", false),
            (api(412, &[]), "unavailable", true),
            (api(429, &[]), "rate_limited", true),
            (api(500, &["internal error"]), "unavailable", true),
            (api(502, &[]), "unavailable", true),
            (api(503, &["Vault is sealed"]), "unavailable", true),
            (Failure::Transport("connection refused".into()), "unavailable", true),
            (Failure::transport("invalid peer certificate: UnknownIssuer".into()), "other", false),
            (Failure::Response("bad json".into()), "other", false),
            (Failure::Local("bad".into()), "invalid_input", false),
        ];
        for (f, kind, retry) in cases {
            let e = to_store_error(f, p);
            assert_eq!(e.kind(), *kind, "{f:?} -> {e}");
            assert_eq!(e.is_retryable(), *retry, "{f:?} -> {e}");
        }
        assert!(to_store_error(&api(503, &["Vault is sealed"]), p).to_string().contains("sealed"));
    }
}
