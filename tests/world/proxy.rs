//! The world's AWS front door: a proxy in front of moto that every node reaches through
//! `AWS_ENDPOINT_URL`. It records every call with the access key id that signed it (a node's
//! names its role, see `iam.rs`) and the status it got, for assertions and for the IAM check,
//! and counts calls by the app id in their User-Agent (nodes of one role share a key); answers
//! the two AutoScaling lifecycle-action calls moto does not implement (CompleteLifecycleAction,
//! RecordLifecycleActionHeartbeat answer HTTP 500 there) itself; can answer chosen AutoScaling
//! actions or S3 paths with an error (throttling, access denied), or a random share of one
//! service's calls (a throttling storm); can forward a request and then drop its reply (the
//! connection closes with no answer, as when a reply is lost on the way); and forwards the
//! rest to moto. moto 5.2's answer to S3's CompleteMultipartUpload has the wrong root element
//! (`CompleteMultipartUploadResponse`, where S3 and the SDK say
//! `CompleteMultipartUploadResult`): the proxy renames it.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{mpsc, Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use anyhow::{anyhow, Context, Result};
use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper::{Request, Response};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tn_agent::http::{HttpClient, Timeouts};

use crate::form::decode;

/// One call's form parameters (`Action`, ...; the AWS query protocol's).
pub type Call = HashMap<String, String>;

/// One call the proxy saw.
#[derive(Debug, Clone)]
pub struct Seen {
    /// The access key id in its SigV4 `Authorization` header (empty if unsigned).
    pub credential: String,
    /// The service in its credential scope: `s3`, `ec2`, `autoscaling`.
    pub service: String,
    pub method: String,
    pub path_and_query: String,
    pub form: Call,
    /// The keys an S3 `DeleteObjects` body names.
    pub delete_keys: Vec<String>,
    /// The HTTP status it was answered with (the proxy's own or moto's).
    pub status: u16,
}

/// An error to answer instead of forwarding: to an AutoScaling action (query protocol) or to
/// requests whose path contains a string (S3, REST).
#[derive(Debug, Clone)]
struct Fault {
    action: Option<String>,
    path: Option<String>,
    status: u16,
    code: String,
    left: u32,
}

/// An error to answer to a random share of one service's calls: each call of `service` gets it
/// with probability `fraction`, drawn from a generator seeded by the caller, so a run's draws
/// are the same every time (which call gets which draw still depends on the order calls
/// arrive in). A count of the next calls would hit whichever nodes come first; a share hits
/// every node of a storm alike, retries included.
struct RandomFault {
    service: String,
    fraction: f64,
    status: u16,
    code: String,
    rng: StdRng,
}

/// Requests to forward and then leave unanswered: `method` on paths containing `path`.
#[derive(Debug, Clone)]
struct LostReply {
    method: String,
    path: String,
    left: u32,
}

#[derive(Default)]
struct Shared {
    calls: Mutex<Vec<Seen>>,
    faults: Mutex<Vec<Fault>>,
    random_faults: Mutex<Vec<RandomFault>>,
    /// Calls answered with an injected error, of any kind.
    injected: Mutex<u32>,
    /// Calls by the app id in their User-Agent.
    by_app: Mutex<HashMap<String, u32>>,
    drops: Mutex<Vec<LostReply>>,
    dropped: Mutex<u32>,
}

/// The reply was dropped on purpose: hyper closes the connection without an answer.
#[derive(Debug)]
struct ReplyDropped;

impl std::fmt::Display for ReplyDropped {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("reply dropped by the test world")
    }
}

impl std::error::Error for ReplyDropped {}

pub struct AwsProxy {
    addr: SocketAddr,
    shared: Arc<Shared>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl AwsProxy {
    pub fn start(moto_endpoint: &str) -> Result<Self> {
        let shared = Arc::new(Shared::default());
        let (stop_tx, mut stop_rx) = tokio::sync::oneshot::channel::<()>();
        let (bound_tx, bound_rx) = mpsc::channel::<std::io::Result<SocketAddr>>();
        let upstream = moto_endpoint.trim_end_matches('/').to_string();
        let for_server = shared.clone();
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            rt.block_on(async move {
                let listener = match tokio::net::TcpListener::bind("127.0.0.1:0").await {
                    Ok(l) => {
                        let _ = bound_tx.send(l.local_addr());
                        l
                    }
                    Err(e) => {
                        let _ = bound_tx.send(Err(e));
                        return;
                    }
                };
                let http = HttpClient::plain(Timeouts {
                    connect: Duration::from_secs(5),
                    request: Duration::from_secs(600),
                });
                loop {
                    tokio::select! {
                        _ = &mut stop_rx => return,
                        accepted = listener.accept() => {
                            let Ok((stream, _)) = accepted else { continue };
                            let (http, upstream, shared) =
                                (http.clone(), upstream.clone(), for_server.clone());
                            tokio::spawn(async move {
                                let svc = hyper::service::service_fn(move |req| {
                                    let (http, upstream, shared) =
                                        (http.clone(), upstream.clone(), shared.clone());
                                    async move {
                                        handle(req, &http, &upstream, &shared)
                                            .await
                                            .ok_or(ReplyDropped)
                                    }
                                });
                                let _ = hyper::server::conn::http1::Builder::new()
                                    .serve_connection(hyper_util::rt::TokioIo::new(stream), svc)
                                    .await;
                            });
                        }
                    }
                }
            });
        });
        let addr = bound_rx
            .recv()
            .map_err(|_| anyhow!("AutoScaling proxy thread died"))?
            .context("binding the AutoScaling proxy")?;
        Ok(AwsProxy {
            addr,
            shared,
            stop: Some(stop_tx),
            thread: Some(thread),
        })
    }

    /// The endpoint, for `AWS_ENDPOINT_URL`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Every call seen so far, in order.
    pub fn seen(&self) -> Vec<Seen> {
        self.shared.calls.lock().unwrap().clone()
    }

    /// The form parameters of every call seen so far, in order.
    pub fn calls(&self) -> Vec<Call> {
        self.seen().into_iter().map(|s| s.form).collect()
    }

    /// The calls signed by `credential` so far, in order.
    pub fn seen_from(&self, credential: &str) -> Vec<Seen> {
        let mut seen = self.seen();
        seen.retain(|s| s.credential == credential);
        seen
    }

    /// The calls seen so far of one action.
    pub fn calls_of(&self, action: &str) -> Vec<Call> {
        let mut calls = self.calls();
        calls.retain(|c| c.get("Action").map(String::as_str) == Some(action));
        calls
    }

    /// Answers the next `count` calls of `action` with HTTP `status` and error `code`
    /// (`Throttling` with 400, `AccessDenied` with 403, ...).
    pub fn fail_next(&self, action: &str, status: u16, code: &str, count: u32) {
        self.shared.faults.lock().unwrap().push(Fault {
            action: Some(action.into()),
            path: None,
            status,
            code: code.into(),
            left: count,
        });
    }

    /// Forwards the next `count` requests with `method` whose path contains `path` to moto, then
    /// closes the connection without an answer: the request took effect, its reply is lost.
    pub fn drop_reply(&self, method: &str, path: &str, count: u32) {
        self.shared.drops.lock().unwrap().push(LostReply {
            method: method.into(),
            path: path.into(),
            left: count,
        });
    }

    /// Answers a random `fraction` (0 to 1) of the calls to `service` (`s3`, `ec2`,
    /// `autoscaling`) with HTTP `status` and error `code` (`SlowDown` with 503, `Throttling`
    /// with 400, ...), each call drawn from a generator seeded with `seed`, until
    /// [`AwsProxy::clear_faults`]. Counted faults ([`AwsProxy::fail_next`],
    /// [`AwsProxy::fail_path`]) come first.
    pub fn fail_fraction(&self, service: &str, fraction: f64, status: u16, code: &str, seed: u64) {
        self.shared.random_faults.lock().unwrap().push(RandomFault {
            service: service.into(),
            fraction: fraction.clamp(0.0, 1.0),
            status,
            code: code.into(),
            rng: StdRng::seed_from_u64(seed),
        });
    }

    /// Forgets the counted faults not used up yet and the random ones.
    pub fn clear_faults(&self) {
        self.shared.faults.lock().unwrap().clear();
        self.shared.random_faults.lock().unwrap().clear();
    }

    /// How many calls were answered with an injected error so far, of any kind.
    pub fn faults_injected(&self) -> u32 {
        *self.shared.injected.lock().unwrap()
    }

    /// How many calls each caller made so far, by the app id its SDK puts in the User-Agent
    /// (`app/<id>`, set with `AWS_SDK_UA_APP_ID`); calls without one are left out. Nodes of
    /// one role sign with the same key: this tells them apart.
    pub fn calls_by_app(&self) -> HashMap<String, u32> {
        self.shared.by_app.lock().unwrap().clone()
    }

    /// How many replies were dropped so far.
    pub fn replies_dropped(&self) -> u32 {
        *self.shared.dropped.lock().unwrap()
    }

    /// Answers the next `count` S3 requests whose path and query contain `path` with HTTP
    /// `status` and error `code` (`AccessDenied` with 403, ...).
    pub fn fail_path(&self, path: &str, status: u16, code: &str, count: u32) {
        self.shared.faults.lock().unwrap().push(Fault {
            action: None,
            path: Some(path.into()),
            status,
            code: code.into(),
            left: count,
        });
    }
}

impl Drop for AwsProxy {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

async fn handle(
    req: Request<Incoming>,
    http: &HttpClient,
    upstream: &str,
    shared: &Shared,
) -> Option<Response<Full<Bytes>>> {
    let (parts, body) = req.into_parts();
    let body = body
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    let path_and_query = parts
        .uri
        .path_and_query()
        .map_or("/", |p| p.as_str())
        .to_string();
    let (credential, service) = signer(&parts.headers);
    if let Some(app) = app_id(&parts.headers) {
        *shared.by_app.lock().unwrap().entry(app).or_default() += 1;
    }
    let mut seen = Seen {
        form: if service == "s3" {
            Call::new()
        } else {
            form_params(&body)
        },
        delete_keys: if service == "s3" && has_param(&path_and_query, "delete") {
            xml_values(&body, "Key")
        } else {
            Vec::new()
        },
        credential,
        service,
        method: parts.method.to_string(),
        path_and_query,
        status: 0,
    };
    let action = seen.form.get("Action").cloned().unwrap_or_default();
    let (status, response) =
        answer(&parts, body, &seen.service, &action, http, upstream, shared).await;
    seen.status = status;
    shared.calls.lock().unwrap().push(seen);
    response
}

/// The answer to one call: its status, and the response (none when the reply is dropped).
async fn answer(
    parts: &hyper::http::request::Parts,
    body: Bytes,
    service: &str,
    action: &str,
    http: &HttpClient,
    upstream: &str,
    shared: &Shared,
) -> (u16, Option<Response<Full<Bytes>>>) {
    let path = parts.uri.path();
    let path_and_query = parts.uri.path_and_query().map_or("/", |p| p.as_str());
    if let Some((status, code)) = take_fault(shared, service, action, path_and_query) {
        let xml = error_body(service, &code);
        return (
            status,
            Some(
                Response::builder()
                    .status(status)
                    .header("content-type", "application/xml")
                    .body(Full::new(Bytes::from(xml)))
                    .unwrap(),
            ),
        );
    }
    if action == "CompleteLifecycleAction" || action == "RecordLifecycleActionHeartbeat" {
        let xml = format!(
            "<{action}Response xmlns=\"http://autoscaling.amazonaws.com/doc/2011-01-01/\">\
             <{action}Result/><ResponseMetadata><RequestId>tn-world</RequestId>\
             </ResponseMetadata></{action}Response>"
        );
        return (
            200,
            Some(
                Response::builder()
                    .header("content-type", "text/xml")
                    .body(Full::new(Bytes::from(xml)))
                    .unwrap(),
            ),
        );
    }
    let drop_reply = take_drop(shared, parts.method.as_str(), path);
    let url = format!("{upstream}{path_and_query}");
    let mut forward = Request::builder().method(parts.method.clone()).uri(url);
    for (name, value) in parts.headers.iter() {
        if name != "host" && name != "content-length" {
            forward = forward.header(name, value);
        }
    }
    match http.send(forward.body(body).expect("a request")).await {
        Ok(resp) => {
            let status = resp.status();
            let headers = resp.headers().clone();
            let mut bytes = resp.into_body();
            if parts.method == hyper::Method::POST && path_and_query.contains("uploadId=") {
                bytes = Bytes::from(
                    String::from_utf8_lossy(&bytes)
                        .replace(
                            "CompleteMultipartUploadResponse",
                            "CompleteMultipartUploadResult",
                        )
                        .into_bytes(),
                );
            }
            let mut out = Response::builder().status(status.as_u16());
            // Every header but the connection's own (the body is sent whole again).
            for (name, value) in headers.iter() {
                if !matches!(
                    name.as_str(),
                    "content-length" | "transfer-encoding" | "connection" | "keep-alive"
                ) {
                    out = out.header(name, value);
                }
            }
            let response = out.body(Full::new(bytes)).unwrap();
            (status.as_u16(), (!drop_reply).then_some(response))
        }
        Err(e) => (
            502,
            (!drop_reply).then(|| {
                Response::builder()
                    .status(502)
                    .body(Full::new(Bytes::from(format!("forwarding to moto: {e}"))))
                    .unwrap()
            }),
        ),
    }
}

/// The access key id and the service of a SigV4 `Authorization` header
/// (`AWS4-HMAC-SHA256 Credential=<key>/<date>/<region>/<service>/aws4_request, ...`).
fn signer(headers: &hyper::HeaderMap) -> (String, String) {
    let auth = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let scope = auth
        .split("Credential=")
        .nth(1)
        .and_then(|rest| rest.split([',', ' ']).next())
        .unwrap_or_default();
    let mut parts = scope.split('/');
    let key = parts.next().unwrap_or_default().to_string();
    let service = parts.nth(2).unwrap_or_default().to_string();
    (key, service)
}

/// The app id in a request's `x-amz-user-agent` (`... app/<id>`), if it has one.
fn app_id(headers: &hyper::HeaderMap) -> Option<String> {
    headers
        .get("x-amz-user-agent")
        .and_then(|v| v.to_str().ok())?
        .split(' ')
        .find_map(|part| part.strip_prefix("app/"))
        .map(str::to_string)
}

/// An injected error's body in the service's own format (S3's `Error`, EC2's `Response`,
/// AutoScaling's `ErrorResponse`): each SDK client finds the error code only in its own, and
/// tells throttling by the code.
fn error_body(service: &str, code: &str) -> String {
    const MESSAGE: &str = "injected by the test world";
    match service {
        "s3" => format!(
            "<Error><Code>{code}</Code><Message>{MESSAGE}</Message>\
             <RequestId>tn-world</RequestId></Error>"
        ),
        "ec2" => format!(
            "<Response><Errors><Error><Code>{code}</Code><Message>{MESSAGE}</Message></Error>\
             </Errors><RequestID>tn-world</RequestID></Response>"
        ),
        _ => format!(
            "<ErrorResponse xmlns=\"http://autoscaling.amazonaws.com/doc/2011-01-01/\">\
             <Error><Type>Sender</Type><Code>{code}</Code><Message>{MESSAGE}</Message></Error>\
             <RequestId>tn-world</RequestId></ErrorResponse>"
        ),
    }
}

/// Whether a query string has parameter `name` (with a value or without).
fn has_param(path_and_query: &str, name: &str) -> bool {
    let query = path_and_query.split_once('?').map_or("", |(_, q)| q);
    query
        .split('&')
        .any(|p| p.split_once('=').map_or(p, |(k, _)| k) == name)
}

/// The text of every `<tag>` element in an XML body (S3's `DeleteObjects` keys), unescaped.
fn xml_values(body: &[u8], tag: &str) -> Vec<String> {
    let text = String::from_utf8_lossy(body);
    let (open, close) = (format!("<{tag}>"), format!("</{tag}>"));
    text.split(&open)
        .skip(1)
        .filter_map(|rest| rest.split_once(&close).map(|(value, _)| value))
        .map(|v| {
            v.replace("&lt;", "<")
                .replace("&gt;", ">")
                .replace("&quot;", "\"")
                .replace("&apos;", "'")
                .replace("&amp;", "&")
        })
        .collect()
}

/// Whether this request's reply is to be dropped (and one fewer is left to drop).
fn take_drop(shared: &Shared, method: &str, path: &str) -> bool {
    let mut drops = shared.drops.lock().unwrap();
    let Some(d) = drops
        .iter_mut()
        .find(|d| d.left > 0 && d.method == method && path.contains(&d.path))
    else {
        return false;
    };
    d.left -= 1;
    *shared.dropped.lock().unwrap() += 1;
    true
}

/// The error to answer a request with, if a fault matches it: a counted one that is not used
/// up, else a random one whose draw hits. Each answer is counted in `Shared::injected`.
fn take_fault(shared: &Shared, service: &str, action: &str, path: &str) -> Option<(u16, String)> {
    let fault = take_counted(shared, action, path).or_else(|| draw_random(shared, service))?;
    *shared.injected.lock().unwrap() += 1;
    Some(fault)
}

/// The counted fault matching a request, if any is left (and one fewer left).
fn take_counted(shared: &Shared, action: &str, path: &str) -> Option<(u16, String)> {
    let mut faults = shared.faults.lock().unwrap();
    let fault = faults.iter_mut().find(|f| {
        f.left > 0
            && (f.action.as_deref() == Some(action)
                || f.path.as_deref().is_some_and(|p| path.contains(p)))
    })?;
    fault.left -= 1;
    Some((fault.status, fault.code.clone()))
}

/// The random fault for `service` whose draw for this call hits, if any.
fn draw_random(shared: &Shared, service: &str) -> Option<(u16, String)> {
    let mut faults = shared.random_faults.lock().unwrap();
    let fault = faults.iter_mut().find(|f| f.service == service)?;
    let fraction = fault.fraction;
    fault
        .rng
        .random_bool(fraction)
        .then(|| (fault.status, fault.code.clone()))
}

/// `application/x-www-form-urlencoded` pairs (the AWS query protocol).
fn form_params(body: &[u8]) -> Call {
    String::from_utf8_lossy(body)
        .split('&')
        .filter_map(|pair| {
            let (k, v) = pair.split_once('=')?;
            Some((decode(k), decode(v)))
        })
        .collect()
}
