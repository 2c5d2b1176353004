//! EC2 instance metadata, IMDSv2 only: a session token (PUT), refreshed on 401; 404 means absent.
//!
//! The seam for tests is the base URL, taken from `AWS_EC2_METADATA_SERVICE_ENDPOINT` as the SDK
//! does.

use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::Request;
use serde::Deserialize;
use tokio::sync::Mutex;

use crate::http::{HttpClient, HttpError, Timeouts};
use crate::retry::{retry, Backoff, RetryError, Step};

/// Where IMDS is on every EC2 instance.
pub const DEFAULT_ENDPOINT: &str = "http://169.254.169.254";
/// The standard variable that moves it (AWS SDKs and CLI read the same one).
pub const ENDPOINT_ENV: &str = "AWS_EC2_METADATA_SERVICE_ENDPOINT";
const TOKEN_TTL_HEADER: &str = "X-aws-ec2-metadata-token-ttl-seconds";
const TOKEN_HEADER: &str = "X-aws-ec2-metadata-token";

#[derive(Debug, thiserror::Error)]
pub enum ImdsError {
    #[error("instance metadata service at {endpoint} not reachable")]
    Unreachable {
        endpoint: String,
        #[source]
        source: HttpError,
    },
    #[error("instance metadata service answered HTTP {status} to {method} {path}")]
    Status {
        method: &'static str,
        path: String,
        status: u16,
    },
    #[error("instance metadata {path} has no value on this instance")]
    Missing { path: String },
    #[error("cannot make the request for {path} to the instance metadata service at {endpoint:?}")]
    Request {
        endpoint: String,
        path: String,
        #[source]
        source: http::Error,
    },
    #[error("instance metadata {path} is not text: {why}")]
    NotText {
        path: String,
        why: std::str::Utf8Error,
    },
    #[error("instance metadata {path} is not valid: {why}")]
    Invalid { path: String, why: String },
    #[error("asking the instance metadata service for {path}")]
    Retried {
        path: String,
        #[source]
        source: RetryError<Box<ImdsError>>,
    },
}

/// The instance identity document (`/latest/dynamic/instance-identity/document`): the fields
/// the agent uses.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct IdentityDocument {
    pub instance_id: String,
    pub private_ip: Ipv4Addr,
    pub availability_zone: String,
    pub region: String,
    pub account_id: String,
    #[serde(default)]
    pub instance_type: Option<String>,
    #[serde(default)]
    pub image_id: Option<String>,
}

struct Token {
    value: String,
    renew_at: Instant,
}

/// An IMDSv2 client. Cheap to share by reference; the token is cached inside.
pub struct Imds {
    http: HttpClient,
    endpoint: String,
    token: Mutex<Option<Token>>,
    token_ttl: Duration,
    policy: Backoff,
}

impl Imds {
    /// Default retry policy: IMDS may be slow to answer for a few seconds after boot.
    pub const DEFAULT_POLICY: Backoff = Backoff::new(
        Duration::from_millis(200),
        Duration::from_secs(2),
        Duration::from_secs(60),
    );

    /// A client for the endpoint in `AWS_EC2_METADATA_SERVICE_ENDPOINT`, else the standard one.
    pub fn from_env() -> Self {
        let endpoint = std::env::var(ENDPOINT_ENV)
            .ok()
            .filter(|e| !e.trim().is_empty())
            .unwrap_or_else(|| DEFAULT_ENDPOINT.to_string());
        Self::new(&endpoint, Self::DEFAULT_POLICY)
    }

    /// [`Imds::from_env`] with another retry policy.
    pub fn with_policy_from_env(policy: Backoff) -> Self {
        let mut imds = Self::from_env();
        imds.policy = policy;
        imds
    }

    pub fn new(endpoint: &str, policy: Backoff) -> Self {
        let http = HttpClient::plain(Timeouts {
            connect: Duration::from_secs(1),
            request: Duration::from_secs(3),
        });
        Imds {
            http,
            endpoint: endpoint.trim_end_matches('/').to_string(),
            token: Mutex::new(None),
            token_ttl: Duration::from_secs(6 * 3600),
            policy,
        }
    }

    /// The token lifetime asked for (default 6 h); the client renews it before then.
    pub fn with_token_ttl(mut self, ttl: Duration) -> Self {
        self.token_ttl = ttl;
        self
    }

    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    pub async fn instance_id(&self) -> Result<String, ImdsError> {
        self.required("/latest/meta-data/instance-id").await
    }

    pub async fn private_ipv4(&self) -> Result<Ipv4Addr, ImdsError> {
        let path = "/latest/meta-data/local-ipv4";
        let text = self.required(path).await?;
        text.trim().parse().map_err(|e| ImdsError::Invalid {
            path: path.into(),
            why: format!("{text:?} is not an IPv4 address ({e})"),
        })
    }

    pub async fn availability_zone(&self) -> Result<String, ImdsError> {
        self.required("/latest/meta-data/placement/availability-zone")
            .await
    }

    pub async fn region(&self) -> Result<String, ImdsError> {
        self.required("/latest/meta-data/placement/region").await
    }

    /// The instance's private DNS name. IMDS may list several, space-separated (a VPC with
    /// more than one DHCP domain name): the first is used, and it must be a DNS name, since it
    /// goes into certificates and the kubelet's flags.
    pub async fn hostname(&self) -> Result<String, ImdsError> {
        let path = "/latest/meta-data/local-hostname";
        let text = self.required(path).await?;
        first_hostname(&text).ok_or_else(|| ImdsError::Invalid {
            path: path.into(),
            why: format!("{text:?} does not start with a DNS name"),
        })
    }

    pub async fn identity_document(&self) -> Result<IdentityDocument, ImdsError> {
        let path = "/latest/dynamic/instance-identity/document";
        let text = self.required(path).await?;
        serde_json::from_str(&text).map_err(|e| ImdsError::Invalid {
            path: path.into(),
            why: e.to_string(),
        })
    }

    /// The state the ASG is moving this instance to (`InService`, `Terminated`, `Warmed:*`);
    /// `None` when the instance is not in an ASG with lifecycle hooks.
    pub async fn target_lifecycle_state(&self) -> Result<Option<String>, ImdsError> {
        self.get("/latest/meta-data/autoscaling/target-lifecycle-state")
            .await
    }

    async fn required(&self, path: &str) -> Result<String, ImdsError> {
        match self.get(path).await? {
            Some(v) if !v.trim().is_empty() => Ok(v.trim().to_string()),
            _ => Err(ImdsError::Missing { path: path.into() }),
        }
    }

    /// One metadata value: `Ok(None)` on 404. Retried on network errors, 5xx, 429 and 401
    /// (after dropping the token); not on other 4xx.
    pub async fn get(&self, path: &str) -> Result<Option<String>, ImdsError> {
        retry(&self.policy, |_| self.get_once(path))
            .await
            .map_err(|source| ImdsError::Retried {
                path: path.into(),
                source,
            })
    }

    async fn get_once(&self, path: &str) -> Result<Option<String>, Step<Box<ImdsError>>> {
        let token = self.token().await?;
        let request = Request::get(format!("{}{}", self.endpoint, path))
            .header(TOKEN_HEADER, token)
            .body(Bytes::new());
        let resp = self.send(request, path).await?;
        let status = resp.status().as_u16();
        match status {
            200 => text(path, resp.into_body()).map(Some).map_err(Step::Stop),
            404 => Ok(None),
            401 => {
                tracing::debug!("IMDS token rejected; requesting a new one");
                *self.token.lock().await = None;
                Err(Step::Retry(status_error("GET", path, status)))
            }
            _ => Err(classify(status_error("GET", path, status), status)),
        }
    }

    async fn token(&self) -> Result<String, Step<Box<ImdsError>>> {
        let mut cached = self.token.lock().await;
        if let Some(t) = cached.as_ref().filter(|t| Instant::now() < t.renew_at) {
            return Ok(t.value.clone());
        }
        let path = "/latest/api/token";
        let request = Request::put(format!("{}{}", self.endpoint, path))
            .header(TOKEN_TTL_HEADER, self.token_ttl.as_secs().to_string())
            .body(Bytes::new());
        let resp = self.send(request, path).await?;
        let status = resp.status().as_u16();
        if status != 200 {
            return Err(classify(status_error("PUT", path, status), status));
        }
        let value = text(path, resp.into_body()).map_err(Step::Stop)?;
        // Renew well before the token expires.
        let renew_at = Instant::now() + self.token_ttl.mul_f64(0.8);
        *cached = Some(Token {
            value: value.clone(),
            renew_at,
        });
        Ok(value)
    }

    /// One request; a failure to get any reply is retried.
    async fn send(
        &self,
        request: http::Result<Request<Bytes>>,
        path: &str,
    ) -> Result<http::Response<Bytes>, Step<Box<ImdsError>>> {
        let request = request.map_err(|source| {
            Step::Stop(Box::new(ImdsError::Request {
                endpoint: self.endpoint.clone(),
                path: path.into(),
                source,
            }))
        })?;
        self.http.send(request).await.map_err(|source| {
            Step::Retry(Box::new(ImdsError::Unreachable {
                endpoint: self.endpoint.clone(),
                source,
            }))
        })
    }
}

/// A reply's body as text.
fn text(path: &str, body: Bytes) -> Result<String, Box<ImdsError>> {
    match String::from_utf8(body.into()) {
        Ok(text) => Ok(text),
        Err(e) => Err(Box::new(ImdsError::NotText {
            path: path.into(),
            why: e.utf8_error(),
        })),
    }
}

fn status_error(method: &'static str, path: &str, status: u16) -> Box<ImdsError> {
    Box::new(ImdsError::Status {
        method,
        path: path.into(),
        status,
    })
}

fn classify<E>(err: E, status: u16) -> Step<E> {
    if status == 429 || status >= 500 {
        Step::Retry(err)
    } else {
        Step::Stop(err)
    }
}

/// The first of the space-separated names IMDS gives, lowercased, when it is a DNS name.
fn first_hostname(text: &str) -> Option<String> {
    let first = text.split_whitespace().next()?.to_ascii_lowercase();
    crate::config::is_dns_name(&first).then_some(first)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_hostname_is_used_and_must_be_a_dns_name() {
        let cases = [
            (
                "ip-10-0-1-12.ec2.internal",
                Some("ip-10-0-1-12.ec2.internal"),
            ),
            (
                "ip-10-0-1-12.ec2.internal\n",
                Some("ip-10-0-1-12.ec2.internal"),
            ),
            (
                "ip-10-0-1-12.prod.int ip-10-0-1-12.ec2.internal",
                Some("ip-10-0-1-12.prod.int"),
            ),
            (
                "IP-10-0-1-12.EC2.Internal",
                Some("ip-10-0-1-12.ec2.internal"),
            ),
            ("", None),
            ("bad_name.ec2.internal", None),
            ("-lead.example", None),
            ("a..b", None),
        ];
        for (text, want) in cases {
            assert_eq!(first_hostname(text).as_deref(), want, "{text:?}");
        }
    }
}
