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
