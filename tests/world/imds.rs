//! A fake IMDSv2 for one simulated node: answers for that node's instance id and IP, records
//! what clients sent, and can go down and come back on the same address.

use std::collections::HashSet;
use std::convert::Infallible;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::{mpsc, Arc, Mutex};
use std::thread::JoinHandle;

use anyhow::{anyhow, Context, Result};
use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::{Request, Response};

/// What the fake answers.
#[derive(Debug, Clone)]
pub struct ImdsData {
    pub instance_id: String,
    pub private_ip: Ipv4Addr,
    pub hostname: String,
    pub availability_zone: String,
    pub region: String,
    pub account_id: String,
    /// `autoscaling/target-lifecycle-state`; `None` answers 404.
    pub target_lifecycle_state: Option<String>,
}

impl ImdsData {
    pub fn new(instance_id: &str, private_ip: Ipv4Addr) -> Self {
        ImdsData {
            instance_id: instance_id.to_string(),
            private_ip,
            hostname: format!(
                "ip-{}.ec2.internal",
                private_ip.to_string().replace('.', "-")
            ),
            availability_zone: "us-east-1a".into(),
            region: "us-east-1".into(),
            account_id: "123456789012".into(),
            target_lifecycle_state: Some("InService".into()),
        }
    }
}

/// One request as the fake saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SeenRequest {
    pub method: String,
    pub path: String,
    /// `X-aws-ec2-metadata-token` sent with it.
    pub token: Option<String>,
    /// `X-aws-ec2-metadata-token-ttl-seconds` sent with it.
    pub token_ttl: Option<String>,
    /// The status the fake answered.
    pub status: u16,
}

#[derive(Default)]
struct Faults {
    /// Answer this status to the next N requests.
    fail_next: Option<(u16, u32)>,
}

struct Shared {
    data: Mutex<ImdsData>,
    tokens: Mutex<HashSet<String>>,
    seen: Mutex<Vec<SeenRequest>>,
    faults: Mutex<Faults>,
}

/// A running fake IMDS. Dropping it stops it.
pub struct FakeImds {
    addr: SocketAddr,
    shared: Arc<Shared>,
    server: Option<Server>,
}

struct Server {
    stop: tokio::sync::oneshot::Sender<()>,
    thread: JoinHandle<()>,
}

impl FakeImds {
    /// Starts a fake on `ip` (a free port) answering with `data`.
    pub fn start(ip: IpAddr, data: ImdsData) -> Result<Self> {
        let shared = Arc::new(Shared {
            data: Mutex::new(data),
            tokens: Mutex::new(HashSet::new()),
            seen: Mutex::new(Vec::new()),
            faults: Mutex::new(Faults::default()),
        });
        let (server, addr) = serve(SocketAddr::new(ip, 0), shared.clone())?;
        Ok(FakeImds {
            addr,
            shared,
            server: Some(server),
        })
    }

    /// The base URL, for `AWS_EC2_METADATA_SERVICE_ENDPOINT`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Every request seen so far.
    pub fn requests(&self) -> Vec<SeenRequest> {
        self.shared.seen.lock().unwrap().clone()
    }

    /// Makes every token issued so far invalid (as if they had expired): the next request
    /// with one gets 401.
    pub fn expire_tokens(&self) {
        self.shared.tokens.lock().unwrap().clear();
    }

    /// Answers `status` to the next `count` requests, whatever they are.
    pub fn fail_next(&self, status: u16, count: u32) {
        self.shared.faults.lock().unwrap().fail_next = Some((status, count));
    }

    /// What `local-hostname` answers (IMDS may list several names, space-separated).
    pub fn set_hostname(&self, hostname: &str) {
        self.shared.data.lock().unwrap().hostname = hostname.to_string();
    }

    pub fn set_target_lifecycle_state(&self, state: Option<&str>) {
        self.shared.data.lock().unwrap().target_lifecycle_state = state.map(str::to_string);
    }

    /// Stops listening: connections are refused until [`FakeImds::up`].
    pub fn down(&mut self) {
        if let Some(server) = self.server.take() {
            let _ = server.stop.send(());
            let _ = server.thread.join();
        }
    }

    /// Listens again on the same address.
    pub fn up(&mut self) -> Result<()> {
        if self.server.is_none() {
            let (server, _) = serve(self.addr, self.shared.clone())?;
            self.server = Some(server);
        }
        Ok(())
    }
}

impl Drop for FakeImds {
    fn drop(&mut self) {
        self.down();
    }
}

/// Binds `addr` and serves on a thread of its own, so the fake answers while the caller blocks.
fn serve(addr: SocketAddr, shared: Arc<Shared>) -> Result<(Server, SocketAddr)> {
    let (stop_tx, mut stop_rx) = tokio::sync::oneshot::channel::<()>();
    let (bound_tx, bound_rx) = mpsc::channel::<std::io::Result<SocketAddr>>();
    let thread = std::thread::Builder::new()
        .name(format!("fake-imds-{addr}"))
        .spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            rt.block_on(async move {
                let listener = match bind(addr) {
                    Ok(l) => {
                        let _ = bound_tx.send(l.local_addr());
                        l
                    }
                    Err(e) => {
                        let _ = bound_tx.send(Err(e));
                        return;
                    }
                };
                loop {
                    tokio::select! {
                        _ = &mut stop_rx => return,
                        accepted = listener.accept() => {
                            let Ok((stream, _)) = accepted else { continue };
                            let shared = shared.clone();
                            tokio::spawn(async move {
                                let io = hyper_util::rt::TokioIo::new(stream);
                                let svc = hyper::service::service_fn(move |req| {
                                    let shared = shared.clone();
                                    async move { Ok::<_, Infallible>(answer(&shared, req)) }
                                });
                                let _ = hyper::server::conn::http1::Builder::new()
                                    .serve_connection(io, svc)
                                    .await;
                            });
                        }
                    }
                }
            });
        })
        .context("starting the fake IMDS thread")?;
    let bound = bound_rx
        .recv()
        .map_err(|_| anyhow!("fake IMDS thread died"))?
        .with_context(|| format!("binding the fake IMDS to {addr}"))?;
    Ok((
        Server {
            stop: stop_tx,
            thread,
        },
        bound,
    ))
}

fn bind(addr: SocketAddr) -> std::io::Result<tokio::net::TcpListener> {
    let socket = tokio::net::TcpSocket::new_v4()?;
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(64)
}

fn answer(shared: &Shared, req: Request<Incoming>) -> Response<Full<Bytes>> {
    let header = |name: &str| {
        req.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };
    let mut seen = SeenRequest {
        method: req.method().to_string(),
        path: req.uri().path().to_string(),
        token: header("x-aws-ec2-metadata-token"),
        token_ttl: header("x-aws-ec2-metadata-token-ttl-seconds"),
        status: 0,
    };
    let (status, body, ttl) = route(shared, &seen);
    seen.status = status;
    shared.seen.lock().unwrap().push(seen);
    let mut resp = Response::builder().status(status);
    if let Some(ttl) = ttl {
        resp = resp.header("x-aws-ec2-metadata-token-ttl-seconds", ttl);
    }
    resp.body(Full::new(Bytes::from(body))).unwrap()
}

fn route(shared: &Shared, req: &SeenRequest) -> (u16, String, Option<String>) {
    {
        let mut faults = shared.faults.lock().unwrap();
        if let Some((status, left)) = faults.fail_next {
            faults.fail_next = (left > 1).then_some((status, left - 1));
            return (status, String::new(), None);
        }
    }
    if req.path == "/latest/api/token" {
        if req.method != "PUT" {
            return (405, String::new(), None);
        }
        let ttl = req.token_ttl.as_deref().and_then(|t| t.parse::<u32>().ok());
        return match ttl {
            Some(ttl @ 1..=21600) => {
                let token = format!("token-{:016x}", rand::random::<u64>());
                shared.tokens.lock().unwrap().insert(token.clone());
                (200, token, Some(ttl.to_string()))
            }
            _ => (400, "missing or invalid token TTL".into(), None),
        };
    }
    // IMDSv2 only, as with HttpTokens=required.
    let valid = req
        .token
        .as_ref()
        .is_some_and(|t| shared.tokens.lock().unwrap().contains(t));
    if !valid {
        return (401, String::new(), None);
    }
    if req.method != "GET" {
        return (405, String::new(), None);
    }
    let d = shared.data.lock().unwrap().clone();
    let value = match req.path.as_str() {
        "/latest/meta-data/instance-id" => Some(d.instance_id.clone()),
        "/latest/meta-data/local-ipv4" => Some(d.private_ip.to_string()),
        "/latest/meta-data/local-hostname" | "/latest/meta-data/hostname" => {
            Some(d.hostname.clone())
        }
        "/latest/meta-data/placement/availability-zone" => Some(d.availability_zone.clone()),
        "/latest/meta-data/placement/region" => Some(d.region.clone()),
        "/latest/meta-data/autoscaling/target-lifecycle-state" => d.target_lifecycle_state.clone(),
        "/latest/dynamic/instance-identity/document" => Some(
            serde_json::json!({
                "accountId": d.account_id,
                "architecture": "x86_64",
                "availabilityZone": d.availability_zone,
                "imageId": "ami-12c6146b",
                "instanceId": d.instance_id,
                "instanceType": "t3.small",
                "pendingTime": "2026-11-24T00:00:00Z",
                "privateIp": d.private_ip.to_string(),
                "region": d.region,
                "version": "2017-09-30"
            })
            .to_string(),
        ),
        _ => None,
    };
    match value {
        Some(v) => (200, v, None),
        None => (404, String::new(), None),
    }
}
