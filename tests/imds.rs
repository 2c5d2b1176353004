//! tn-agent's IMDSv2 client against a local fake that checks what the client sent.

use std::net::{IpAddr, Ipv4Addr};
use std::time::{Duration, Instant};

use tn_agent::imds::{Imds, ImdsError};
use tn_agent::retry::{Backoff, RetryError};
use tn_world::{FakeImds, ImdsData};

const LOCAL: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

fn fake() -> FakeImds {
    FakeImds::start(LOCAL, ImdsData::new("i-0abc", Ipv4Addr::new(127, 0, 1, 7))).unwrap()
}

fn client(fake: &FakeImds, deadline: Duration) -> Imds {
    Imds::new(
        &fake.url(),
        Backoff::new(
            Duration::from_millis(20),
            Duration::from_millis(200),
            deadline,
        ),
    )
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

#[test]
fn reads_identity_with_one_token_sent_on_every_request() {
    let fake = fake();
    let imds = client(&fake, Duration::from_secs(5));
    let (doc, id, ip, az, region, host) = rt().block_on(async {
        (
            imds.identity_document().await.unwrap(),
            imds.instance_id().await.unwrap(),
            imds.private_ipv4().await.unwrap(),
            imds.availability_zone().await.unwrap(),
            imds.region().await.unwrap(),
            imds.hostname().await.unwrap(),
        )
    });
    assert_eq!(doc.instance_id, "i-0abc");
    assert_eq!(doc.private_ip, Ipv4Addr::new(127, 0, 1, 7));
    assert_eq!(doc.account_id, "123456789012");
    assert_eq!(id, "i-0abc");
    assert_eq!(ip, Ipv4Addr::new(127, 0, 1, 7));
    assert_eq!(az, "us-east-1a");
    assert_eq!(region, "us-east-1");
    assert_eq!(host, "ip-127-0-1-7.ec2.internal");

    let seen = fake.requests();
    let puts: Vec<_> = seen.iter().filter(|r| r.method == "PUT").collect();
    assert_eq!(puts.len(), 1, "one token for all requests: {seen:#?}");
    assert_eq!(puts[0].path, "/latest/api/token");
    assert_eq!(puts[0].token_ttl.as_deref(), Some("21600"));
    for get in seen.iter().filter(|r| r.method == "GET") {
        let sent = get.token.as_deref().unwrap_or_default();
        assert!(
            sent.starts_with("token-"),
            "GET {} without the token",
            get.path
        );
        assert_eq!(get.status, 200, "{get:?}");
    }
}

#[test]
fn a_rejected_token_is_refreshed() {
    let fake = fake();
    let imds = client(&fake, Duration::from_secs(5));
    let rt = rt();
    rt.block_on(imds.instance_id()).unwrap();
    fake.expire_tokens();
    assert_eq!(rt.block_on(imds.instance_id()).unwrap(), "i-0abc");
    let seen = fake.requests();
    let statuses: Vec<_> = seen
        .iter()
        .map(|r| format!("{} {} {}", r.method, r.path, r.status))
        .collect();
    assert_eq!(
        statuses,
        [
            "PUT /latest/api/token 200",
            "GET /latest/meta-data/instance-id 200",
            "GET /latest/meta-data/instance-id 401",
            "PUT /latest/api/token 200",
            "GET /latest/meta-data/instance-id 200",
        ]
    );
    assert_ne!(seen[1].token, seen[4].token, "a new token is used");
}

#[test]
fn not_found_is_absent_not_an_error() {
    let fake = fake();
    let imds = client(&fake, Duration::from_secs(5));
    let rt = rt();
    assert_eq!(
        rt.block_on(imds.target_lifecycle_state())
            .unwrap()
            .as_deref(),
        Some("InService")
    );
    fake.set_target_lifecycle_state(None);
    assert_eq!(rt.block_on(imds.target_lifecycle_state()).unwrap(), None);
    assert_eq!(
        rt.block_on(imds.get("/latest/meta-data/nothing")).unwrap(),
        None
    );
    let gets = fake
        .requests()
        .iter()
        .filter(|r| r.path == "/latest/meta-data/nothing")
        .count();
    assert_eq!(gets, 1, "a 404 is not retried");
    // A value the agent needs is an error when absent, naming it.
    fake.fail_next(404, 1);
    let err = rt.block_on(imds.instance_id()).unwrap_err();
    assert_eq!(
        err.to_string(),
        "instance metadata /latest/meta-data/instance-id has no value on this instance"
    );
}

#[test]
fn server_errors_are_retried_and_client_errors_are_not() {
    let fake = fake();
    let imds = client(&fake, Duration::from_secs(5));
    let rt = rt();
    fake.fail_next(500, 3);
    assert_eq!(rt.block_on(imds.instance_id()).unwrap(), "i-0abc");
    assert_eq!(fake.requests().len(), 5, "3 failures, then token and value");

    let before = fake.requests().len();
    fake.fail_next(403, 1);
    let err = rt.block_on(imds.region()).unwrap_err();
    assert_eq!(fake.requests().len(), before + 1, "403 is not retried");
    assert_eq!(
        format!("{:#}", anyhow::Error::from(err)),
        "asking the instance metadata service for /latest/meta-data/placement/region: \
         instance metadata service answered HTTP 403 to GET /latest/meta-data/placement/region"
    );
}

#[test]
fn waits_for_an_endpoint_that_is_down_for_a_few_seconds() {
    let mut fake = fake();
    let imds = client(&fake, Duration::from_secs(30));
    fake.down();
    let (tx, rx) = std::sync::mpsc::channel();
    let restarter = std::thread::spawn(move || {
        // The outage being simulated: IMDS is away for two seconds.
        std::thread::sleep(Duration::from_secs(2));
        fake.up().unwrap();
        tx.send(Instant::now()).unwrap();
        fake
    });
    let id = rt().block_on(imds.instance_id()).unwrap();
    let fake = restarter.join().unwrap();
    let up_at = rx.recv().unwrap();
    assert_eq!(id, "i-0abc");
    assert!(Instant::now() >= up_at);
    assert_eq!(
        fake.requests().len(),
        2,
        "only the requests after it came up reached it"
    );
}

#[test]
fn gives_up_at_the_deadline_when_the_endpoint_stays_down() {
    let mut fake = fake();
    let imds = client(&fake, Duration::from_millis(800));
    fake.down();
    let start = Instant::now();
    let err = rt().block_on(imds.instance_id()).unwrap_err();
    assert!(start.elapsed() < Duration::from_secs(5));
    let ImdsError::Retried { source, .. } = &err else {
        panic!("{err:?}")
    };
    let RetryError::Exhausted { attempts, last, .. } = source else {
        panic!("{source:?}")
    };
    let attempts = *attempts;
    assert!(attempts >= 2, "{attempts}");
    assert!(matches!(**last, ImdsError::Unreachable { .. }), "{last:?}");
    let text = format!("{:#}", anyhow::Error::from(err));
    assert!(
        text.starts_with(&format!(
            "asking the instance metadata service for /latest/meta-data/instance-id: gave up after {attempts} attempts"
        )),
        "{text}"
    );
    assert!(
        text.contains(&format!(
            "instance metadata service at {} not reachable",
            fake.url()
        )),
        "{text}"
    );
}
