//! Which certificate authorities keel trusts.
//!
//! The webpki roots (Mozilla's list, compiled in), plus the certificates of
//! `SSL_CERT_FILE` when it is set (a corporate or test CA, PEM). Added to
//! the webpki roots rather than to the platform verifier: the same roots on
//! every machine whatever its OpenSSL bundle looks like, no dependency on
//! the system store's layout, and the one variable users already set for
//! pip and uv behind a TLS-inspecting proxy keeps working. (The trade-off:
//! a CA installed only in the system store is not trusted unless it is
//! also named by `SSL_CERT_FILE`.)

use std::path::Path;

use ureq::tls::{Certificate, PemItem, RootCerts, TlsConfig};

use crate::Error;

/// The TLS configuration: webpki roots, plus the certificates of `ca_file`.
pub(crate) fn config(ca_file: Option<&Path>) -> Result<TlsConfig, Error> {
    let Some(path) = ca_file else {
        return Ok(TlsConfig::builder().root_certs(RootCerts::WebPki).build());
    };
    let extra = read_certificates(path)?;
    let roots = webpki_root_certs::TLS_SERVER_ROOT_CERTS
        .iter()
        .map(|der| Certificate::from_der(der.as_ref()))
        .chain(extra);
    Ok(TlsConfig::builder()
        .root_certs(RootCerts::from(roots))
        .build())
}

/// The certificates of a PEM file (other PEM items are skipped); an error
/// if it cannot be read, does not parse, or holds none.
fn read_certificates(path: &Path) -> Result<Vec<Certificate<'static>>, Error> {
    let ca_error = |reason: String| Error::CaFile {
        path: path.to_owned(),
        reason,
    };
    let pem = fs_err::read(path).map_err(|e| ca_error(e.to_string()))?;
    let mut certificates = Vec::new();
    for item in ureq::tls::parse_pem(&pem) {
        match item.map_err(|e| ca_error(format!("not valid PEM ({e})")))? {
            PemItem::Certificate(certificate) => certificates.push(certificate),
            _ => continue,
        }
    }
    if certificates.is_empty() {
        return Err(ca_error("holds no PEM certificate".to_owned()));
    }
    Ok(certificates)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// `der` as a PEM certificate.
    pub(crate) fn pem_of(der: &[u8]) -> String {
        use base64::Engine as _;
        let body = base64::engine::general_purpose::STANDARD.encode(der);
        let lines: Vec<&str> = body
            .as_bytes()
            .chunks(64)
            .map(|c| std::str::from_utf8(c).unwrap())
            .collect();
        format!(
            "-----BEGIN CERTIFICATE-----\n{}\n-----END CERTIFICATE-----\n",
            lines.join("\n")
        )
    }

    #[test]
    fn a_missing_or_empty_ca_file_is_an_error_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("missing.pem");
        let error = config(Some(&missing)).unwrap_err().to_string();
        assert!(
            error.contains("missing.pem") && error.contains("SSL_CERT_FILE"),
            "{error}"
        );
        let empty = dir.path().join("empty.pem");
        fs_err::write(&empty, "no certificates here\n").unwrap();
        let error = config(Some(&empty)).unwrap_err().to_string();
        assert!(error.contains("holds no PEM certificate"), "{error}");
        assert!(config(None).is_ok());
    }

    #[test]
    fn the_certificates_of_a_pem_file_are_read_and_other_items_skipped() {
        let der = webpki_root_certs::TLS_SERVER_ROOT_CERTS[0].as_ref();
        let pem = format!("# a comment\n{}", pem_of(der));
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ca.pem");
        fs_err::write(&path, pem.repeat(2)).unwrap();
        let certificates = read_certificates(&path).unwrap();
        assert_eq!(certificates.len(), 2);
        assert_eq!(certificates[0].der(), der);
        assert!(config(Some(&path)).is_ok());
    }
}
