//! AWS APIs: the autoscaling group and its instances (AutoScaling + EC2) and the state bucket (S3).
//!
//! Endpoints, credentials and region follow the SDK's standard conventions (SPEC §3); the seam
//! for tests is `AWS_ENDPOINT_URL`. Throttling, 5xx and network errors are retried by the SDK's
//! standard retry (exponential backoff with full jitter, 200 ms doubling to 5 s, 8 attempts);
//! errors such as AccessDenied or validation are not retried. Not the adaptive mode: its rate
//! limiter is new in every process and, after one throttling answer, holds the next attempt
//! for seconds, which a short-lived bootstrap only pays for.

use std::net::Ipv4Addr;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_config::{BehaviorVersion, Region};
use aws_smithy_http_client::tls;
use aws_smithy_runtime_api::client::http::SharedHttpClient;
use serde::{Deserialize, Serialize};

/// An AWS call that failed, with the SDK's whole error context.
#[derive(Debug, thiserror::Error)]
pub enum AwsError {
    #[error("AWS {operation} failed{}", code.as_deref().map(|c| format!(" ({c})")).unwrap_or_default())]
    Api {
        operation: &'static str,
        /// The service's error code (`AccessDenied`, `ValidationError`, ...), when it sent one.
        code: Option<String>,
        /// The SDK's error, with its own chain (service message, HTTP status, dispatch failure).
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    #[error("instance {0} is not in any autoscaling group")]
    NotInAsg(String),
    #[error("autoscaling group {0:?} does not exist")]
    NoSuchAsg(String),
    #[error("s3://{bucket}/{key} does not exist")]
    NoSuchObject { bucket: String, key: String },
}

impl AwsError {
    /// Whether a later try may succeed without anyone changing anything: the request never got
    /// an answer (network, timeout), or AWS was throttling or failing (5xx). Not a refusal
    /// (access denied, validation), not a missing object or group.
    pub fn is_transient(&self) -> bool {
        const TRANSIENT: [&str; 10] = [
            "Throttling",
            "ThrottlingException",
            "RequestLimitExceeded",
            "SlowDown",
            "ServiceUnavailable",
            "InternalError",
            "InternalFailure",
            "RequestTimeout",
            "RequestTimeoutException",
            "Unavailable",
        ];
        match self {
            AwsError::Api { code: None, .. } => true,
            AwsError::Api { code: Some(c), .. } => TRANSIENT.contains(&c.as_str()),
            _ => false,
        }
    }

    fn api<E, R>(operation: &'static str, err: aws_sdk_ec2::error::SdkError<E, R>) -> Self
    where
        E: std::error::Error + aws_sdk_ec2::error::ProvideErrorMetadata + Send + Sync + 'static,
        R: std::fmt::Debug + Send + Sync + 'static,
    {
        AwsError::Api {
            operation,
            code: err.code().map(str::to_string),
            source: Box::new(err),
        }
    }

    /// The service's error code, if the service answered with one.
    pub fn code(&self) -> Option<&str> {
        match self {
            AwsError::Api { code, .. } => code.as_deref(),
            _ => None,
        }
    }
}

use aws_sdk_ec2::error::ProvideErrorMetadata;

/// One instance of an autoscaling group, as AutoScaling and EC2 see it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AsgInstance {
    pub instance_id: String,
    /// AutoScaling lifecycle state: `Pending`, `Pending:Wait`, `InService`, `Terminating`, ...
    pub lifecycle_state: String,
    /// AutoScaling health: `Healthy` or `Unhealthy`.
    pub health_status: String,
    pub availability_zone: String,
    /// From EC2; `None` when EC2 no longer knows the instance.
    pub private_ip: Option<Ipv4Addr>,
    /// From EC2, RFC 3339.
    pub launch_time: Option<String>,
    /// From EC2: `pending`, `running`, `shutting-down`, `terminated`, ...
    pub ec2_state: Option<String>,
}

impl AsgInstance {
    pub fn in_service(&self) -> bool {
        self.lifecycle_state == "InService"
    }

    /// Whether the instance is gone or on its way out for good (AutoScaling terminating it,
    /// EC2 shutting it down or no longer knowing it). A stopped instance is not gone: it may
    /// start again with its etcd data (SPEC §7.3).
    pub fn gone(&self) -> bool {
        self.lifecycle_state.starts_with("Terminat")
            || matches!(
                self.ec2_state.as_deref(),
                None | Some("shutting-down" | "terminated")
            )
    }

    /// Whether the instance is leaving or gone, or stopped: not one to seed, serve or ask.
    pub fn leaving(&self) -> bool {
        self.lifecycle_state.starts_with("Terminat")
            || matches!(
                self.ec2_state.as_deref(),
                Some("shutting-down" | "terminated" | "stopping" | "stopped")
            )
    }
}

/// An autoscaling group and its instances, sorted by instance id.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AsgView {
    pub name: String,
    pub desired_capacity: i32,
    pub min_size: i32,
    pub max_size: i32,
    pub instances: Vec<AsgInstance>,
}

impl AsgView {
    pub fn instance(&self, id: &str) -> Option<&AsgInstance> {
        self.instances.iter().find(|i| i.instance_id == id)
    }
}

/// The AWS services the agent calls.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Service {
    AutoScaling = 0,
    Ec2 = 1,
    S3 = 2,
}

impl Service {
    const ALL: [Service; 3] = [Service::AutoScaling, Service::Ec2, Service::S3];

    fn name(self) -> &'static str {
        match self {
            Service::AutoScaling => "autoscaling",
            Service::Ec2 => "ec2",
            Service::S3 => "s3",
        }
    }
}

/// Clients for the AWS services the agent uses, counting the API requests it sends.
#[derive(Clone)]
pub struct Aws {
    ec2: aws_sdk_ec2::Client,
    autoscaling: aws_sdk_autoscaling::Client,
    s3: aws_sdk_s3::Client,
    page_size: i32,
    /// Requests sent, by service (indexed by [`Service`]).
    calls: Arc<[AtomicU32; 3]>,
    /// S3 keys read with GetObject, in order (for `state.json` and tests).
    fetched: Arc<Mutex<Vec<String>>>,
}

/// Timeouts for S3 calls that move a snapshot (a part of up to 512 MiB, the completion of a
/// multipart upload of many parts): the defaults (10 s an attempt) suit small objects only.
fn transfer_timeouts() -> aws_sdk_s3::config::Builder {
    aws_sdk_s3::config::Builder::default().timeout_config(
        TimeoutConfig::builder()
            .connect_timeout(Duration::from_secs(3))
            .operation_attempt_timeout(Duration::from_secs(300))
            .operation_timeout(Duration::from_secs(900))
            .build(),
    )
}

/// Largest page DescribeInstances allows.
const MAX_PAGE: i32 = 1000;
/// Most values one EC2 filter takes.
const MAX_FILTER_VALUES: usize = 200;

/// The SDK's HTTPS client, trusting the system's roots, with ring for TLS: the TLS library the
/// agent's other clients (etcd, the apiserver) use, so the binary carries one.
pub fn https_client() -> SharedHttpClient {
    aws_smithy_http_client::Builder::new()
        .tls_provider(tls::Provider::Rustls(
            tls::rustls_provider::CryptoMode::Ring,
        ))
        .build_https()
}

impl Aws {
    /// Clients for `region`, with credentials and endpoints from the SDK's default chain.
    pub async fn connect(region: &str) -> Self {
        let conf = aws_config::defaults(BehaviorVersion::latest())
            .http_client(https_client())
            .region(Region::new(region.to_string()))
            .retry_config(
                RetryConfig::standard()
                    .with_max_attempts(8)
                    .with_initial_backoff(Duration::from_millis(200))
                    .with_max_backoff(Duration::from_secs(5)),
            )
            .timeout_config(
                TimeoutConfig::builder()
                    .connect_timeout(Duration::from_secs(3))
                    .operation_attempt_timeout(Duration::from_secs(10))
                    .operation_timeout(Duration::from_secs(60))
                    .build(),
            )
            .load()
            .await;
        // A custom S3 endpoint (a local test server, a VPC endpoint by IP) cannot take bucket
        // names as host names: address buckets by path there.
        let path_style = ["AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL"]
            .iter()
            .any(|v| std::env::var_os(v).is_some_and(|s| !s.is_empty()));
        Self::from_sdk_config(&conf, path_style)
    }

    /// Clients from an SDK configuration made elsewhere (tests point one at a local server).
    pub fn from_sdk_config(conf: &aws_config::SdkConfig, s3_path_style: bool) -> Self {
        let s3_conf = aws_sdk_s3::config::Builder::from(conf)
            .force_path_style(s3_path_style)
            .build();
        Aws {
            ec2: aws_sdk_ec2::Client::new(conf),
            autoscaling: aws_sdk_autoscaling::Client::new(conf),
            s3: aws_sdk_s3::Client::from_conf(s3_conf),
            page_size: MAX_PAGE,
            calls: Arc::new([AtomicU32::new(0), AtomicU32::new(0), AtomicU32::new(0)]),
            fetched: Arc::new(Mutex::new(Vec::new())),
        }
    }

    /// Page size for DescribeInstances (5 to 1000); tests make it small to exercise paging.
    pub fn with_page_size(mut self, size: i32) -> Self {
        self.page_size = size.clamp(5, MAX_PAGE);
        self
    }

    /// How many AWS API requests this client has sent (pages count one each; SDK retries of one
    /// request do not).
    pub fn calls(&self) -> u32 {
        self.calls.iter().map(|c| c.load(Ordering::Relaxed)).sum()
    }

    /// [`Aws::calls`] by service (`autoscaling`, `ec2`, `s3`), services not called left out.
    pub fn calls_by_service(&self) -> std::collections::BTreeMap<String, u32> {
        Service::ALL
            .iter()
            .map(|s| {
                (
                    s.name().to_string(),
                    self.calls[*s as usize].load(Ordering::Relaxed),
                )
            })
            .filter(|(_, n)| *n > 0)
            .collect()
    }

    /// The S3 keys this client has asked for with GetObject, in order, each once (whether or not
    /// the object existed).
    pub fn fetched_keys(&self) -> Vec<String> {
        let mut keys = self.fetched.lock().expect("fetched-keys lock").clone();
        let mut seen = std::collections::HashSet::new();
        keys.retain(|k| seen.insert(k.clone()));
        keys
    }

    fn count(&self, service: Service) {
        self.calls[service as usize].fetch_add(1, Ordering::Relaxed);
    }

    /// An object of the state bucket; `None` when there is no such key.
    pub async fn get_object(&self, bucket: &str, key: &str) -> Result<Option<Vec<u8>>, AwsError> {
        Ok(self
            .get_object_dated(bucket, key)
            .await?
            .map(|(bytes, _)| bytes))
    }

    /// An object of the state bucket and when it was stored (S3's `Last-Modified`, when
    /// given); `None` when there is no such key.
    pub async fn get_object_dated(
        &self,
        bucket: &str,
        key: &str,
    ) -> Result<Option<(Vec<u8>, Option<std::time::SystemTime>)>, AwsError> {
        Ok(self
            .fetch(bucket, key)
            .await?
            .map(|f| (f.bytes, f.stored_at)))
    }

    /// GetObject of a whole object, recorded in [`Aws::fetched_keys`]; `None` when there is no
    /// such key.
    async fn fetch(&self, bucket: &str, key: &str) -> Result<Option<Fetched>, AwsError> {
        self.count(Service::S3);
        self.fetched
            .lock()
            .expect("fetched-keys lock")
            .push(key.to_string());
        let out = match self.s3.get_object().bucket(bucket).key(key).send().await {
            Ok(out) => out,
            Err(e) if e.as_service_error().is_some_and(|e| e.is_no_such_key()) => return Ok(None),
            Err(e) => return Err(AwsError::api("GetObject", e)),
        };
        let stored_at = out
            .last_modified
            .and_then(|t| std::time::SystemTime::try_from(t).ok());
        let etag = out.e_tag.unwrap_or_default();
        let body = out.body.collect().await.map_err(|e| AwsError::Api {
            operation: "GetObject",
            code: None,
            source: Box::new(e),
        })?;
        Ok(Some(Fetched {
            bytes: body.into_bytes().to_vec(),
            stored_at,
            etag,
        }))
    }

    /// An object that must exist.
    pub async fn get_required(&self, bucket: &str, key: &str) -> Result<Vec<u8>, AwsError> {
        self.get_object(bucket, key)
            .await?
            .ok_or_else(|| AwsError::NoSuchObject {
                bucket: bucket.to_string(),
                key: key.to_string(),
            })
    }

    /// Creates `key` only if it does not exist yet (`If-None-Match: *`): `Ok(true)` when this
    /// call created it, `Ok(false)` when someone else already had.
    pub async fn put_object_if_absent(
        &self,
        bucket: &str,
        key: &str,
        body: Vec<u8>,
    ) -> Result<bool, AwsError> {
        self.count(Service::S3);
        let result = self
            .s3
            .put_object()
            .bucket(bucket)
            .key(key)
            .if_none_match("*")
            .content_type("application/json")
            .body(body.into())
            .send()
            .await;
        match result {
            Ok(_) => Ok(true),
            Err(e)
                if matches!(
                    e.code(),
                    Some("PreconditionFailed" | "ConditionalRequestConflict")
                ) =>
            {
                Ok(false)
            }
            Err(e) => Err(AwsError::api("PutObject", e)),
        }
    }

    /// Writes `key`, replacing whatever is there (with the timeouts of a transfer: the body
    /// may be a whole snapshot below the multipart size).
    pub async fn put_object(&self, bucket: &str, key: &str, body: Vec<u8>) -> Result<(), AwsError> {
        self.count(Service::S3);
        self.s3
            .put_object()
            .bucket(bucket)
            .key(key)
            .body(body.into())
            .customize()
            .config_override(transfer_timeouts())
            .send()
            .await
            .map_err(|e| AwsError::api("PutObject", e))?;
        Ok(())
    }

    /// Whether `key` exists (HeadObject). Without `s3:ListBucket` S3 answers 403, not 404, for
    /// a missing key, which is an error here.
    pub async fn object_exists(&self, bucket: &str, key: &str) -> Result<bool, AwsError> {
        self.count(Service::S3);
        match self.s3.head_object().bucket(bucket).key(key).send().await {
            Ok(_) => Ok(true),
            Err(e) if e.as_service_error().is_some_and(|e| e.is_not_found()) => Ok(false),
            Err(e) => Err(AwsError::api("HeadObject", e)),
        }
    }

    /// Every key under `prefix` with its size, in S3's (lexical) order: ListObjectsV2, paged.
    pub async fn list_keys(
        &self,
        bucket: &str,
        prefix: &str,
    ) -> Result<Vec<(String, u64)>, AwsError> {
        let mut keys = Vec::new();
        let mut next: Option<String> = None;
        loop {
            self.count(Service::S3);
            let out = self
                .s3
                .list_objects_v2()
                .bucket(bucket)
                .prefix(prefix)
                .set_continuation_token(next.take())
                .send()
                .await
                .map_err(|e| AwsError::api("ListObjectsV2", e))?;
            keys.extend(out.contents().iter().filter_map(|o| {
                Some((
                    o.key()?.to_string(),
                    o.size().unwrap_or_default().max(0) as u64,
                ))
            }));
            match out.next_continuation_token() {
                Some(token) if out.is_truncated() == Some(true) => next = Some(token.to_string()),
                _ => return Ok(keys),
            }
        }
    }

    /// Deletes `keys` (DeleteObjects, up to 1000 a request). A key S3 could not delete is an
    /// error naming it.
    pub async fn delete_keys(&self, bucket: &str, keys: &[String]) -> Result<(), AwsError> {
        use aws_sdk_s3::types::{Delete, ObjectIdentifier};
        for chunk in keys.chunks(1000) {
            self.count(Service::S3);
            let objects = chunk
                .iter()
                .map(|k| ObjectIdentifier::builder().key(k).build())
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| AwsError::Api {
                    operation: "DeleteObjects",
                    code: None,
                    source: Box::new(e),
                })?;
            let delete = Delete::builder()
                .set_objects(Some(objects))
                .quiet(true)
                .build()
                .map_err(|e| AwsError::Api {
                    operation: "DeleteObjects",
                    code: None,
                    source: Box::new(e),
                })?;
            let out = self
                .s3
                .delete_objects()
                .bucket(bucket)
                .delete(delete)
                .send()
                .await
                .map_err(|e| AwsError::api("DeleteObjects", e))?;
            if let Some(err) = out.errors().first() {
                return Err(AwsError::Api {
                    operation: "DeleteObjects",
                    code: err.code().map(str::to_string),
                    source: format!(
                        "s3://{bucket}/{}: {}",
                        err.key().unwrap_or_default(),
                        err.message().unwrap_or_default()
                    )
                    .into(),
                });
            }
        }
        Ok(())
    }

    /// Starts a multipart upload of `key`; its upload id.
    pub async fn create_multipart(&self, bucket: &str, key: &str) -> Result<String, AwsError> {
        self.count(Service::S3);
        let out = self
            .s3
            .create_multipart_upload()
            .bucket(bucket)
            .key(key)
            .send()
            .await
            .map_err(|e| AwsError::api("CreateMultipartUpload", e))?;
        out.upload_id()
            .map(str::to_string)
            .ok_or_else(|| AwsError::Api {
                operation: "CreateMultipartUpload",
                code: None,
                source: "the answer has no upload id".into(),
            })
    }

    /// Uploads part `number` (from 1) of a multipart upload; the part's ETag.
    pub async fn upload_part(
        &self,
        bucket: &str,
        key: &str,
        upload_id: &str,
        number: i32,
        body: Vec<u8>,
    ) -> Result<String, AwsError> {
        self.count(Service::S3);
        let out = self
            .s3
            .upload_part()
            .bucket(bucket)
            .key(key)
            .upload_id(upload_id)
            .part_number(number)
            .body(body.into())
            .customize()
            .config_override(transfer_timeouts())
            .send()
            .await
            .map_err(|e| AwsError::api("UploadPart", e))?;
        out.e_tag()
            .map(str::to_string)
            .ok_or_else(|| AwsError::Api {
                operation: "UploadPart",
                code: None,
                source: format!("the answer for part {number} has no ETag").into(),
            })
    }

    /// Completes a multipart upload from its parts' `(number, ETag)`: only now is the object
    /// visible.
    pub async fn complete_multipart(
        &self,
        bucket: &str,
        key: &str,
        upload_id: &str,
        parts: &[(i32, String)],
    ) -> Result<(), AwsError> {
        use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart};
        self.count(Service::S3);
        let parts = parts
            .iter()
            .map(|(n, etag)| CompletedPart::builder().part_number(*n).e_tag(etag).build())
            .collect();
        self.s3
            .complete_multipart_upload()
            .bucket(bucket)
            .key(key)
            .upload_id(upload_id)
            .multipart_upload(
                CompletedMultipartUpload::builder()
                    .set_parts(Some(parts))
                    .build(),
            )
            .customize()
            .config_override(transfer_timeouts())
            .send()
            .await
            .map_err(|e| AwsError::api("CompleteMultipartUpload", e))?;
        Ok(())
    }

    /// Aborts a multipart upload: S3 drops the parts uploaded so far.
    pub async fn abort_multipart(
        &self,
        bucket: &str,
        key: &str,
        upload_id: &str,
    ) -> Result<(), AwsError> {
        self.count(Service::S3);
        self.s3
            .abort_multipart_upload()
            .bucket(bucket)
            .key(key)
            .upload_id(upload_id)
            .send()
            .await
            .map_err(|e| AwsError::api("AbortMultipartUpload", e))?;
        Ok(())
    }

    /// An object's body as a stream, with its size when S3 gives it; `None` when there is no
    /// such key. For objects too large to hold in memory.
    pub async fn get_object_stream(
        &self,
        bucket: &str,
        key: &str,
    ) -> Result<Option<(aws_sdk_s3::primitives::ByteStream, Option<u64>)>, AwsError> {
        self.count(Service::S3);
        let request = self
            .s3
            .get_object()
            .bucket(bucket)
            .key(key)
            .customize()
            .config_override(transfer_timeouts());
        match request.send().await {
            Ok(out) => {
                let size = out.content_length().and_then(|n| u64::try_from(n).ok());
                Ok(Some((out.body, size)))
            }
            Err(e) if e.as_service_error().is_some_and(|e| e.is_no_such_key()) => Ok(None),
            Err(e) => Err(AwsError::api("GetObject", e)),
        }
    }

    /// An object and its ETag; `None` when there is no such key.
    pub async fn get_object_tagged(
        &self,
        bucket: &str,
        key: &str,
    ) -> Result<Option<(Vec<u8>, String)>, AwsError> {
        Ok(self.fetch(bucket, key).await?.map(|f| (f.bytes, f.etag)))
    }

    /// Replaces `key` only if its ETag is still `etag` (`If-Match`): `Ok(false)` when it changed
    /// (or vanished) since it was read.
    pub async fn put_object_if_match(
        &self,
        bucket: &str,
        key: &str,
        body: Vec<u8>,
        etag: &str,
    ) -> Result<bool, AwsError> {
        self.count(Service::S3);
        let result = self
            .s3
            .put_object()
            .bucket(bucket)
            .key(key)
            .if_match(etag)
            .content_type("application/json")
            .body(body.into())
            .send()
            .await;
        match result {
            Ok(_) => Ok(true),
            Err(e)
                if matches!(
                    e.code(),
                    Some("PreconditionFailed" | "ConditionalRequestConflict" | "NoSuchKey")
                ) =>
            {
                Ok(false)
            }
            Err(e) => Err(AwsError::api("PutObject", e)),
        }
    }

    /// The autoscaling group `instance_id` belongs to.
    pub async fn asg_of(&self, instance_id: &str) -> Result<String, AwsError> {
        self.count(Service::AutoScaling);
        let out = self
            .autoscaling
            .describe_auto_scaling_instances()
            .instance_ids(instance_id)
            .send()
            .await
            .map_err(|e| AwsError::api("DescribeAutoScalingInstances", e))?;
        out.auto_scaling_instances()
            .first()
            .and_then(|i| i.auto_scaling_group_name())
            .map(str::to_string)
            .ok_or_else(|| AwsError::NotInAsg(instance_id.to_string()))
    }

    /// Completes the pending termination lifecycle action of `instance_id` in `asg` for the
    /// hook named `hook` with CONTINUE, so the ASG goes on terminating it without waiting for
    /// the hook's timeout. Other hooks (another team's drain, a log shipper) are left to their
    /// owners. Returns the hooks completed: `hook`, or none when the group has no such
    /// termination hook.
    pub async fn complete_termination(
        &self,
        asg: &str,
        instance_id: &str,
        hook: &str,
    ) -> Result<Vec<String>, AwsError> {
        self.count(Service::AutoScaling);
        let hooks = self
            .autoscaling
            .describe_lifecycle_hooks()
            .auto_scaling_group_name(asg)
            .send()
            .await
            .map_err(|e| AwsError::api("DescribeLifecycleHooks", e))?;
        let wanted = hook;
        let mut done = Vec::new();
        for hook in hooks.lifecycle_hooks() {
            if hook.lifecycle_transition() != Some("autoscaling:EC2_INSTANCE_TERMINATING") {
                continue;
            }
            let Some(name) = hook.lifecycle_hook_name().filter(|n| *n == wanted) else {
                continue;
            };
            self.count(Service::AutoScaling);
            self.autoscaling
                .complete_lifecycle_action()
                .auto_scaling_group_name(asg)
                .lifecycle_hook_name(name)
                .instance_id(instance_id)
                .lifecycle_action_result("CONTINUE")
                .send()
                .await
                .map_err(|e| AwsError::api("CompleteLifecycleAction", e))?;
            done.push(name.to_string());
        }
        Ok(done)
    }

    /// The group and its instances: one DescribeAutoScalingGroups call, then DescribeInstances
    /// for exactly those instances (paged), never an account-wide scan.
    pub async fn describe_asg(&self, name: &str) -> Result<AsgView, AwsError> {
        self.count(Service::AutoScaling);
        let out = self
            .autoscaling
            .describe_auto_scaling_groups()
            .auto_scaling_group_names(name)
            .send()
            .await
            .map_err(|e| AwsError::api("DescribeAutoScalingGroups", e))?;
        let group = out
            .auto_scaling_groups()
            .iter()
            .find(|g| g.auto_scaling_group_name() == Some(name))
            .ok_or_else(|| AwsError::NoSuchAsg(name.to_string()))?;
        let mut instances: Vec<AsgInstance> = group
            .instances()
            .iter()
            .filter_map(|i| {
                Some(AsgInstance {
                    instance_id: i.instance_id()?.to_string(),
                    lifecycle_state: i
                        .lifecycle_state()
                        .map(|s| s.as_str().to_string())
                        .unwrap_or_default(),
                    health_status: i.health_status().unwrap_or_default().to_string(),
                    availability_zone: i.availability_zone().unwrap_or_default().to_string(),
                    private_ip: None,
                    launch_time: None,
                    ec2_state: None,
                })
            })
            .collect();
        instances.sort_by(|a, b| a.instance_id.cmp(&b.instance_id));
        let ids: Vec<String> = instances.iter().map(|i| i.instance_id.clone()).collect();
        for chunk in ids.chunks(MAX_FILTER_VALUES) {
            for found in self.describe_instances(chunk).await? {
                if let Some(i) = instances
                    .iter_mut()
                    .find(|i| i.instance_id == found.instance_id)
                {
                    i.private_ip = found.private_ip;
                    i.launch_time = found.launch_time;
                    i.ec2_state = found.ec2_state;
                }
            }
        }
        Ok(AsgView {
            name: name.to_string(),
            desired_capacity: group.desired_capacity().unwrap_or_default(),
            min_size: group.min_size().unwrap_or_default(),
            max_size: group.max_size().unwrap_or_default(),
            instances,
        })
    }

    /// Which of `ids` EC2 says are terminated or does not know at all: only those may lose
    /// what they hold (a stopped or stopping instance is alive, SPEC §7.3 and §9).
    pub async fn gone_instances(&self, ids: &[String]) -> Result<Vec<String>, AwsError> {
        let mut gone = Vec::new();
        for chunk in ids.chunks(MAX_FILTER_VALUES) {
            let facts = self.describe_instances(chunk).await?;
            gone.extend(
                chunk
                    .iter()
                    .filter(|id| {
                        facts
                            .iter()
                            .find(|f| &f.instance_id == *id)
                            .is_none_or(|f| f.ec2_state.as_deref() == Some("terminated"))
                    })
                    .cloned(),
            );
        }
        Ok(gone)
    }

    async fn describe_instances(&self, ids: &[String]) -> Result<Vec<Ec2Facts>, AwsError> {
        let mut facts = Vec::new();
        let mut next: Option<String> = None;
        loop {
            self.count(Service::Ec2);
            let out = self
                .ec2
                .describe_instances()
                .filters(
                    aws_sdk_ec2::types::Filter::builder()
                        .name("instance-id")
                        .set_values(Some(ids.to_vec()))
                        .build(),
                )
                .max_results(self.page_size)
                .set_next_token(next.take())
                .send()
                .await
                .map_err(|e| AwsError::api("DescribeInstances", e))?;
            for inst in out.reservations().iter().flat_map(|r| r.instances()) {
                let Some(id) = inst.instance_id() else {
                    continue;
                };
                facts.push(Ec2Facts {
                    instance_id: id.to_string(),
                    private_ip: inst.private_ip_address().and_then(|ip| ip.parse().ok()),
                    launch_time: inst.launch_time().and_then(|t| {
                        t.fmt(aws_sdk_ec2::primitives::DateTimeFormat::DateTime)
                            .ok()
                    }),
                    ec2_state: inst
                        .state()
                        .and_then(|s| s.name())
                        .map(|n| n.as_str().to_string()),
                });
            }
            match out.next_token() {
                Some(token) if !token.is_empty() => next = Some(token.to_string()),
                _ => return Ok(facts),
            }
        }
    }
}

/// A whole object as GetObject gave it.
struct Fetched {
    bytes: Vec<u8>,
    stored_at: Option<std::time::SystemTime>,
    etag: String,
}

struct Ec2Facts {
    instance_id: String,
    private_ip: Option<Ipv4Addr>,
    launch_time: Option<String>,
    ec2_state: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn api(code: Option<&str>) -> AwsError {
        AwsError::Api {
            operation: "GetObject",
            code: code.map(str::to_string),
            source: Box::new(std::io::Error::other("x")),
        }
    }

    #[test]
    fn no_answer_throttling_and_5xx_are_transient_refusals_are_not() {
        assert!(api(None).is_transient(), "no answer at all");
        for code in [
            "Throttling",
            "RequestLimitExceeded",
            "SlowDown",
            "InternalError",
        ] {
            assert!(api(Some(code)).is_transient(), "{code}");
        }
        for code in ["AccessDenied", "ValidationError", "NoSuchBucket"] {
            assert!(!api(Some(code)).is_transient(), "{code}");
        }
        assert!(!AwsError::NoSuchAsg("x".into()).is_transient());
    }
}
