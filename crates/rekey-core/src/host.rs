//! Which hosts are local, so that a connection to them may go without TLS
//! (every store, target and verifier applies the same rule).

use std::net::IpAddr;

/// Whether `host` is this machine: `localhost`, a loopback address
/// (`127.0.0.0/8`, `::1`, with or without brackets) or a Unix-socket path
/// (starting with `/`). Connections to such a host never cross a network, so
/// they may be plaintext without an opt-out. Any other name, even one that
/// resolves to a loopback address, is treated as remote.
///
/// ```
/// use rekey_core::is_local_host;
/// assert!(is_local_host("127.0.0.1") && is_local_host("[::1]") && is_local_host("LOCALHOST"));
/// assert!(is_local_host("/var/run/postgresql"));
/// assert!(!is_local_host("db.internal") && !is_local_host("localhost.example.com") && !is_local_host("10.0.0.1"));
/// ```
pub fn is_local_host(host: &str) -> bool {
    if host.starts_with('/') || host.eq_ignore_ascii_case("localhost") {
        return true;
    }
    let bare = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')).unwrap_or(host);
    bare.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// How an HTTP connection is protected, by the rule every HTTP client of
/// rekey applies (the Vault and AWS stores, the http verifier): TLS, or plain
/// `http://` only to this machine or with an explicit, warned opt-out
/// (`allow_insecure_http`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HttpTransport {
    /// `https://`.
    Tls,
    /// `http://` to this machine ([`is_local_host`]): never crosses a network.
    LocalPlain,
    /// `http://` to another host, allowed by the opt-out: worth a warning.
    InsecurePlain,
}

/// Why [`http_transport`] refuses a URL.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HttpTransportError {
    /// `http://` to another host without the opt-out.
    #[error(
        "refusing plain http:// to {host}: it would cross the network unencrypted; use https:// or set allow_insecure_http = true"
    )]
    PlainToRemote {
        /// The host.
        host: String,
    },
    /// Neither `http` nor `https`.
    #[error("unsupported URL scheme `{scheme}` (use https)")]
    Scheme {
        /// The scheme.
        scheme: String,
    },
}

/// Applies the transport rule to a parsed URL's `scheme` and `host`.
///
/// ```
/// use rekey_core::{HttpTransport, http_transport};
/// assert_eq!(http_transport("https", "vault.example.com", false), Ok(HttpTransport::Tls));
/// assert_eq!(http_transport("http", "127.0.0.1", false), Ok(HttpTransport::LocalPlain));
/// assert!(http_transport("http", "vault.example.com", false).is_err());
/// assert_eq!(http_transport("http", "vault.example.com", true), Ok(HttpTransport::InsecurePlain));
/// assert!(http_transport("ftp", "127.0.0.1", true).is_err());
/// ```
pub fn http_transport(
    scheme: &str,
    host: &str,
    allow_insecure_http: bool,
) -> Result<HttpTransport, HttpTransportError> {
    match scheme {
        "https" => Ok(HttpTransport::Tls),
        "http" if is_local_host(host) => Ok(HttpTransport::LocalPlain),
        "http" if allow_insecure_http => Ok(HttpTransport::InsecurePlain),
        "http" => Err(HttpTransportError::PlainToRemote { host: host.to_owned() }),
        other => Err(HttpTransportError::Scheme { scheme: other.to_owned() }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_names_addresses_and_sockets_are_local() {
        for h in ["localhost", "Localhost", "127.0.0.1", "127.1.2.3", "::1", "[::1]", "/tmp/sock"] {
            assert!(is_local_host(h), "{h}");
        }
        for h in ["", "db", "localhost.", "mylocalhost", "128.0.0.1", "0.0.0.0", "[::2]", "::ffff:10.0.0.1", "tmp/sock"]
        {
            assert!(!is_local_host(h), "{h}");
        }
    }
}
