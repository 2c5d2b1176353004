//! The fake apiserver's TLS: its serving certificate, a client certificate asked for but
//! checked after the handshake (as Go's `tls.RequestClientCert` and kube-apiserver's x509
//! authenticator do), and the user a checked certificate names.

use std::sync::Arc;

use anyhow::{Context, Result};
use base64::Engine as _;
use rustls::client::danger::HandshakeSignatureValid;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::server::WebPkiClientVerifier;
use rustls::{
    DigitallySignedStruct, DistinguishedName, RootCertStore, ServerConfig, SignatureScheme,
};
use tn_agent::pki::Leaf;

/// Who sent the requests of a connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Identity {
    /// A certificate the CA signed for client auth, with a CN.
    User(User),
    /// No certificate, or one that does not verify (the reason, for the test's eyes only: the
    /// client gets a bare 401 as from the real apiserver).
    Unauthenticated(String),
}

impl Identity {
    pub(super) fn user(&self) -> Option<&User> {
        match self {
            Identity::User(u) => Some(u),
            Identity::Unauthenticated(_) => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct User {
    pub name: String,
    /// The certificate's O values and `system:authenticated`.
    pub groups: Vec<String>,
}

/// The server's TLS configuration serving `serving` and the verifier that checks client
/// certificates against `ca_pem` after the handshake.
pub(super) fn server_config(
    ca_pem: &str,
    serving: &Leaf,
) -> Result<(Arc<ServerConfig>, Arc<dyn ClientCertVerifier>)> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(ca_pem.as_bytes()) {
        roots
            .add(cert.context("reading the CA certificate")?)
            .context("adding the CA certificate")?;
    }
    let checker = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone())
        .allow_unauthenticated()
        .build()
        .context("building the client certificate verifier")?;
    let chain = CertificateDer::pem_slice_iter(serving.cert_pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .context("reading the serving certificate")?;
    let key = PrivateKeyDer::from_pem_slice(serving.key_pem.as_bytes())
        .context("reading the serving key")?;
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_client_cert_verifier(Arc::new(RequestClientCert(checker.clone())))
        .with_single_cert(chain, key)
        .context("the serving certificate and key")?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok((Arc::new(config), checker))
}

/// The identity a connection's client certificates give, checked with `checker`.
pub(super) fn identify(
    checker: &dyn ClientCertVerifier,
    certs: Option<&[CertificateDer<'_>]>,
) -> Identity {
    let Some((leaf, intermediates)) = certs.and_then(|c| c.split_first()) else {
        return Identity::Unauthenticated("no client certificate".into());
    };
    if let Err(e) = checker.verify_client_cert(leaf, intermediates, UnixTime::now()) {
        return Identity::Unauthenticated(format!("client certificate: {e}"));
    }
    let pem = format!(
        "-----BEGIN CERTIFICATE-----\n{}\n-----END CERTIFICATE-----\n",
        base64::engine::general_purpose::STANDARD.encode(leaf.as_ref())
    );
    match tn_agent::pki::inspect(&pem) {
        Ok(info) => match info.subject_cn {
            Some(cn) if !cn.is_empty() => {
                let mut groups = info.organizations;
                groups.push("system:authenticated".into());
                Identity::User(User { name: cn, groups })
            }
            _ => Identity::Unauthenticated("client certificate without a CN".into()),
        },
        Err(e) => Identity::Unauthenticated(format!("client certificate: {e}")),
    }
}

/// Asks for a client certificate (hinting the CA), takes any, and checks the handshake's
/// signature with it; [`identify`] checks the certificate itself afterwards, so a bad one
/// gets a 401 rather than a failed handshake.
#[derive(Debug)]
struct RequestClientCert(Arc<dyn ClientCertVerifier>);

impl ClientCertVerifier for RequestClientCert {
    fn offer_client_auth(&self) -> bool {
        true
    }

    fn client_auth_mandatory(&self) -> bool {
        false
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        self.0.root_hint_subjects()
    }

    fn verify_client_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        Ok(ClientCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_verify_schemes()
    }
}
