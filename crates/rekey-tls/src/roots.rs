//! Trust anchors: the platform's root certificates, or a PEM CA file.

use std::path::Path;
use std::sync::{Arc, OnceLock};

use rustls::RootCertStore;
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;

use crate::error::TlsSetupError;

/// The platform's root certificates, loaded on first use and kept for the
/// life of the process (reading them costs a few hundred file reads). A
/// failed load is not kept, so a machine whose roots appear later recovers.
pub(crate) fn platform_roots() -> Result<Arc<RootCertStore>, TlsSetupError> {
    static ROOTS: OnceLock<Arc<RootCertStore>> = OnceLock::new();
    if let Some(roots) = ROOTS.get() {
        return Ok(roots.clone());
    }
    let loaded = rustls_native_certs::load_native_certs();
    let mut store = RootCertStore::empty();
    // Unparsable platform certificates are skipped, as browsers do; only an
    // empty result is an error.
    store.add_parsable_certificates(loaded.certs);
    if store.is_empty() {
        let why = loaded.errors.first().map(|e| format!(" ({e})")).unwrap_or_default();
        return Err(TlsSetupError::new(format!(
            "no trusted root certificates found on this machine{why}: install the platform's CA \
             certificates (e.g. the ca-certificates package) or give a CA file"
        )));
    }
    Ok(ROOTS.get_or_init(|| Arc::new(store)).clone())
}

/// The certificates of the PEM file at `path` (one or several `CERTIFICATE`
/// blocks; anything else in the file is ignored) as trust anchors.
pub(crate) fn ca_file_roots(path: &Path) -> Result<RootCertStore, TlsSetupError> {
    let shown = path.display();
    let bytes = std::fs::read(path)
        .map_err(|e| TlsSetupError::new(format!("cannot read the CA file {shown}: {}", e.kind())))?;
    let mut store = RootCertStore::empty();
    for (i, cert) in CertificateDer::pem_slice_iter(&bytes).enumerate() {
        let cert = cert.map_err(|e| TlsSetupError::new(format!("the CA file {shown} is not valid PEM: {e}")))?;
        store.add(cert).map_err(|e| {
            TlsSetupError::new(format!(
                "certificate {} of the CA file {shown} is not a usable CA certificate: {e}",
                i + 1
            ))
        })?;
    }
    if store.is_empty() {
        return Err(TlsSetupError::new(format!(
            "the CA file {shown} holds no PEM certificate (expected `-----BEGIN CERTIFICATE-----` blocks)"
        )));
    }
    Ok(store)
}

/// Checks that `path` is a usable CA file, without keeping it.
pub(crate) fn check_ca_file(path: &Path) -> Result<usize, TlsSetupError> {
    ca_file_roots(path).map(|s| s.len())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::error::tests::{TEST_CA_PEM, temp_file};

    #[test]
    fn a_pem_file_with_several_certificates_loads_them_all() {
        let two = format!("# a comment\n{TEST_CA_PEM}\n{TEST_CA_PEM}");
        let f = temp_file("two.pem", two.as_bytes());
        assert_eq!(ca_file_roots(&f).unwrap().len(), 2);
        assert_eq!(check_ca_file(&f).unwrap(), 2);
    }

    #[test]
    fn bad_ca_files_are_clear_errors() {
        let missing = std::env::temp_dir().join("rekey-tls-no-such-file.pem");
        let e = ca_file_roots(&missing).unwrap_err().to_string();
        assert!(e.contains("cannot read the CA file") && e.contains("not found"), "{e}");

        let empty = temp_file("empty.pem", b"");
        let e = ca_file_roots(&empty).unwrap_err().to_string();
        assert!(e.contains("holds no PEM certificate"), "{e}");

        let key_only =
            temp_file("key.pem", b"-----BEGIN PRIVATE KEY-----\nMC4CAQAwBQYDK2VwBCIEIBvY\n-----END PRIVATE KEY-----\n");
        let e = ca_file_roots(&key_only).unwrap_err().to_string();
        assert!(e.contains("holds no PEM certificate"), "{e}");
        assert!(!e.contains("MC4CAQ"), "file contents never appear: {e}");

        let garbage =
            temp_file("garbage.pem", b"-----BEGIN CERTIFICATE-----\n!!!not base64!!!\n-----END CERTIFICATE-----\n");
        let e = ca_file_roots(&garbage).unwrap_err().to_string();
        assert!(e.contains("not valid PEM"), "{e}");

        let not_x509 =
            temp_file("notx509.pem", b"-----BEGIN CERTIFICATE-----\naGVsbG8gd29ybGQ=\n-----END CERTIFICATE-----\n");
        let e = ca_file_roots(&not_x509).unwrap_err().to_string();
        assert!(e.contains("certificate 1 of the CA file") && e.contains("not a usable CA certificate"), "{e}");
    }

    #[test]
    fn platform_roots_are_loaded_once() {
        // The test machines have Debian's ca-certificates.
        let a = platform_roots().unwrap();
        let b = platform_roots().unwrap();
        assert!(!a.is_empty());
        assert!(Arc::ptr_eq(&a, &b));
    }
}
