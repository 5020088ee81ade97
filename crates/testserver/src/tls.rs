//! HTTPS for [`Server::start_tls`](crate::Server::start_tls): a throwaway
//! certificate authority made when the server starts, a leaf certificate it
//! signs for `127.0.0.1` and `localhost`, and the rustls server
//! configuration that presents it (ring, the provider keel-download's
//! rustls uses).
//!
//! Nothing is written to disk: a test that wants a client to trust the
//! server writes [`Tls::ca_pem`] where the client looks (`SSL_CERT_FILE`).

use std::io;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;

use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose, SanType,
};
use rustls::ServerConfig;
use rustls::pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};

/// The server's TLS identity and configuration.
#[derive(Debug)]
pub(crate) struct Tls {
    /// What every TLS connection is set up with.
    pub config: Arc<ServerConfig>,
    /// The CA certificate, PEM.
    pub ca_pem: String,
}

impl Tls {
    /// A fresh CA (`keel-testserver CA`), a leaf certificate it signs for
    /// IP `127.0.0.1` and DNS `localhost` (server authentication only), and
    /// a server configuration presenting the leaf and the CA.
    pub fn generate() -> io::Result<Tls> {
        let ca_key = KeyPair::generate().map_err(io::Error::other)?;
        let mut ca_params =
            CertificateParams::new(Vec::<String>::new()).map_err(io::Error::other)?;
        ca_params
            .distinguished_name
            .push(DnType::CommonName, "keel-testserver CA");
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let ca = CertifiedIssuer::self_signed(ca_params, ca_key).map_err(io::Error::other)?;

        let leaf_key = KeyPair::generate().map_err(io::Error::other)?;
        let mut leaf_params =
            CertificateParams::new(vec!["localhost".to_owned()]).map_err(io::Error::other)?;
        leaf_params
            .subject_alt_names
            .push(SanType::IpAddress(IpAddr::V4(Ipv4Addr::LOCALHOST)));
        leaf_params
            .distinguished_name
            .push(DnType::CommonName, "127.0.0.1");
        leaf_params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        leaf_params.use_authority_key_identifier_extension = true;
        let leaf = leaf_params
            .signed_by(&leaf_key, &ca)
            .map_err(io::Error::other)?;

        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(leaf_key.serialize_der()));
        let config = ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(io::Error::other)?
            .with_no_client_auth()
            .with_single_cert(vec![leaf.der().clone(), ca.der().clone()], key)
            .map_err(io::Error::other)?;
        Ok(Tls {
            config: Arc::new(config),
            ca_pem: ca.pem(),
        })
    }
}
