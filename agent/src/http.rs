//! HTTP for the agent's own endpoints: the instance metadata service (plain HTTP), etcd's peer
//! ports and the apiserver (TLS, trusting the cluster's CA alone, with a client certificate).
//!
//! The AWS SDK's client is built on hyper, hyper-util and rustls with ring; this one is made of
//! the same parts, so the binary carries one HTTP stack and one TLS library. These endpoints are
//! inside the VPC or on the instance, so no proxy is ever used for them. A whole request (the
//! connection, the request and the reply's body) is bounded by one timeout; the connection by a
//! shorter one.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::{BodyExt, Full};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

/// A request that got no whole reply; `request` is its method and URL.
#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    #[error("{request}")]
    Send {
        request: String,
        #[source]
        source: Box<hyper_util::client::legacy::Error>,
    },
    #[error("{request}: reading the reply")]
    Body {
        request: String,
        #[source]
        source: hyper::Error,
    },
    #[error("{request}: no complete reply within {timeout:?}")]
    Timeout { request: String, timeout: Duration },
}

/// Certificates and a key that cannot make a TLS client.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("the certificate authority is not PEM certificates")]
    CaNotPem(#[source] rustls::pki_types::pem::Error),
    #[error("the certificate authority holds no certificate")]
    NoCa,
    #[error("the client certificate is not PEM")]
    CertNotPem(#[source] rustls::pki_types::pem::Error),
    #[error("no client certificate")]
    NoCert,
    #[error("no private key beside the client certificate")]
    NoKey(#[source] rustls::pki_types::pem::Error),
    #[error("the TLS library refused them")]
    Rustls(#[source] rustls::Error),
}

/// How long a connection and a whole request may take.
#[derive(Debug, Clone, Copy)]
pub struct Timeouts {
    pub connect: Duration,
    pub request: Duration,
}

/// A client with a connection pool; cheap to clone (clones share the pool).
#[derive(Clone)]
pub struct HttpClient {
    inner: Arc<Inner>,
    timeouts: Timeouts,
}

enum Inner {
    Plain(Client<HttpConnector, Full<Bytes>>),
    Tls(Client<HttpsConnector<HttpConnector>, Full<Bytes>>),
}

impl HttpClient {
    /// A client for `http://` URLs.
    pub fn plain(timeouts: Timeouts) -> HttpClient {
        HttpClient {
            inner: Arc::new(Inner::Plain(pool().build(connector(timeouts)))),
            timeouts,
        }
    }

    /// A client for `https://` URLs: servers must show a certificate issued by a CA in
    /// `ca_pem` (one or more PEM certificates; the system's roots are not trusted), and the
    /// client shows the certificate chain and private key in `identity_pem`, if given.
    pub fn tls(
        ca_pem: &[u8],
        identity_pem: Option<&[u8]>,
        timeouts: Timeouts,
    ) -> Result<HttpClient, TlsError> {
        let config = client_config(ca_pem, identity_pem)?;
        let https = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(config)
            .https_only()
            .enable_http1()
            .wrap_connector({
                // The TLS connector checks the scheme itself (https only).
                let mut tcp = connector(timeouts);
                tcp.enforce_http(false);
                tcp
            });
        Ok(HttpClient {
            inner: Arc::new(Inner::Tls(pool().build(https))),
            timeouts,
        })
    }

    /// A GET of `url` with no headers.
    pub async fn get(&self, url: &str) -> Result<Response<Bytes>, HttpError> {
        self.send(Request::get(url).body(Bytes::new()).expect("a GET request"))
            .await
    }

    /// Sends `request` and reads the whole reply, within the request timeout. Any status is a
    /// reply: the caller decides what it means.
    pub async fn send(&self, request: Request<Bytes>) -> Result<Response<Bytes>, HttpError> {
        let what = format!("{} {}", request.method(), request.uri());
        let request = request.map(Full::new);
        let exchange = async {
            let reply = match &*self.inner {
                Inner::Plain(client) => client.request(request).await,
                Inner::Tls(client) => client.request(request).await,
            };
            let reply = reply.map_err(|source| HttpError::Send {
                request: what.clone(),
                source: Box::new(source),
            })?;
            let (parts, body) = reply.into_parts();
            let body = body.collect().await.map_err(|source| HttpError::Body {
                request: what.clone(),
                source,
            })?;
            Ok(Response::from_parts(parts, body.to_bytes()))
        };
        let timeout = self.timeouts.request;
        tokio::time::timeout(timeout, exchange)
            .await
            .unwrap_or_else(|_| {
                Err(HttpError::Timeout {
                    request: what,
                    timeout,
                })
            })
    }
}

fn pool() -> hyper_util::client::legacy::Builder {
    let mut builder = Client::builder(TokioExecutor::new());
    builder.pool_idle_timeout(Duration::from_secs(30));
    builder
}

fn connector(timeouts: Timeouts) -> HttpConnector {
    let mut http = HttpConnector::new();
    http.set_connect_timeout(Some(timeouts.connect));
    http.set_nodelay(true);
    http
}

fn client_config(
    ca_pem: &[u8],
    identity_pem: Option<&[u8]>,
) -> Result<rustls::ClientConfig, TlsError> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(ca_pem) {
        roots
            .add(cert.map_err(TlsError::CaNotPem)?)
            .map_err(TlsError::Rustls)?;
    }
    if roots.is_empty() {
        return Err(TlsError::NoCa);
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(TlsError::Rustls)?
        .with_root_certificates(roots);
    let Some(identity_pem) = identity_pem else {
        return Ok(config.with_no_client_auth());
    };
    let chain = CertificateDer::pem_slice_iter(identity_pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(TlsError::CertNotPem)?;
    if chain.is_empty() {
        return Err(TlsError::NoCert);
    }
    let key = PrivateKeyDer::from_pem_slice(identity_pem).map_err(TlsError::NoKey)?;
    config
        .with_client_auth_cert(chain, key)
        .map_err(TlsError::Rustls)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn timeouts() -> Timeouts {
        Timeouts {
            connect: Duration::from_millis(300),
            request: Duration::from_millis(500),
        }
    }

    #[test]
    fn tls_material_that_cannot_work_is_named() {
        let ca = crate::pki::Ca::generate("test-ca").unwrap();
        let leaf = ca
            .issue(&crate::pki::LeafRequest {
                common_name: "n1".into(),
                organization: None,
                dns_names: vec![],
                ips: vec![],
                usages: vec![crate::pki::Usage::ClientAuth],
            })
            .unwrap();
        let identity = format!("{}{}", leaf.cert_pem, leaf.key_pem);
        let ca_pem = ca.cert_pem().as_bytes();
        assert!(HttpClient::tls(ca_pem, Some(identity.as_bytes()), timeouts()).is_ok());
        assert!(HttpClient::tls(ca_pem, None, timeouts()).is_ok());
        let err = |ca: &[u8], identity: &str| {
            HttpClient::tls(ca, Some(identity.as_bytes()), timeouts())
                .err()
                .map(|e| e.to_string())
        };
        assert_eq!(
            err(b"", &identity).as_deref(),
            Some("the certificate authority holds no certificate")
        );
        assert_eq!(
            err(ca_pem, &leaf.key_pem).as_deref(),
            Some("no client certificate")
        );
        assert_eq!(
            err(ca_pem, &leaf.cert_pem).as_deref(),
            Some("no private key beside the client certificate")
        );
    }

    /// Nothing listens: the error names the request; a server that never answers is cut off
    /// at the request timeout.
    #[tokio::test]
    async fn failures_name_the_request() {
        let client = HttpClient::plain(timeouts());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let silent = format!("http://{}/quiet", listener.local_addr().unwrap());
        let closed = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            format!("http://{}/x", l.local_addr().unwrap())
        };
        let err = client.get(&closed).await.unwrap_err();
        assert!(matches!(err, HttpError::Send { .. }), "{err:?}");
        assert_eq!(err.to_string(), format!("GET {closed}"));
        // A plain client never sends an https:// request in the clear.
        let https = silent.replace("http://", "https://");
        let err = client.get(&https).await.unwrap_err();
        assert!(
            crate::exit::one_line(&err).contains("invalid URL, scheme is not http"),
            "{err:?}"
        );
        let err = client.get(&silent).await.unwrap_err();
        assert_eq!(
            err.to_string(),
            format!("GET {silent}: no complete reply within 500ms")
        );
    }
}
