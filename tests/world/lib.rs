//! The local AWS world tn-agent's tests and demo run in: moto_server for EC2, AutoScaling and S3
//! (a VPC 127.<n>.0.0/16, so instances get loopback addresses real etcd can bind; each world
//! running at the same time has its own n) behind the world's AWS proxy, one fake IMDSv2
//! per simulated node, and real etcd processes started from the env file a node's bootstrap
//! wrote. Each node has its own `--root`. Everything binds 127.x.x.x and is stopped when the
//! world is dropped, also when a test fails.
//!
//! Nodes sign their AWS calls with a key naming their role. When the world is dropped, every
//! call a node made is checked against its role's policy in `docs/iam/` (`iam.rs`): a call
//! the policy does not allow fails the test. With `TN_IAM_CALLS=<dir>` the IAM requests are
//! also written there, for `tn-iam-check` to find statements no call needed.

pub mod agent;
pub mod cluster;
pub mod dbus;
pub mod etcd;
mod form;
pub mod iam;
pub mod imds;
pub mod kube_api;
pub mod kube_reboot;
pub mod moto;
pub mod process;
pub mod proxy;
pub mod reboot;

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;

use anyhow::{anyhow, bail, Context, Result};
use aws_sdk_autoscaling::types::{LaunchTemplateSpecification, Tag};
use aws_sdk_ec2::types::{RequestLaunchTemplateData, ResourceType, TagSpecification};
use tn_agent::state::BootState;

pub use agent::{agent_bin, Agent, Run};
pub use cluster::{boot_in_parallel, run_at_once, Inspector};
pub use etcd::EtcdProcess;
pub use imds::{FakeImds, ImdsData};
pub use moto::Moto;
pub use proxy::AwsProxy;

/// The workspace's top directory.
pub fn workspace_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ has a parent")
        .to_path_buf()
}

/// Runs the `openssl` command-line tool in `dir` (an independent check of what tn-agent made),
/// panicking with its output when it fails; returns its stdout.
pub fn openssl(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("run openssl");
    assert!(
        out.status.success(),
        "openssl {args:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("openssl prints UTF-8")
}

/// One ASG instance as the world sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Instance {
    pub id: String,
    pub ip: Ipv4Addr,
    pub lifecycle_state: String,
}

pub const REGION: &str = "us-east-1";
pub const AZ: &str = "us-east-1a";

pub struct World {
    /// Holds every node's root and the logs; removed on drop unless `TN_KEEP_WORLD` is set.
    dir: tempfile::TempDir,
    rt: tokio::runtime::Runtime,
    pub moto: Moto,
    /// In front of moto for every node and operator command: records, injects faults.
    pub aws: AwsProxy,
    pub ec2: aws_sdk_ec2::Client,
    pub autoscaling: aws_sdk_autoscaling::Client,
    pub s3: aws_sdk_s3::Client,
    /// SDK configuration pointing at moto, for tests that drive tn-agent's clients directly.
    pub sdk_config: aws_config::SdkConfig,
    pub cluster: String,
    pub bucket: String,
    /// The world's network: VPC 127.<octet>.0.0/16, held exclusively while the world lives.
    net: NetLease,
    vpc_id: String,
    image_id: String,
    subnets: Mutex<HashMap<String, String>>,
    /// Each ASG's tags, by name (the condition keys of calls on it).
    asg_tags: Mutex<HashMap<String, Vec<(String, String)>>>,
}

/// An exclusive claim on the address range 127.<octet>.0.0/16 across every process on the
/// machine (a lock file), so worlds running at the same time never bind the same addresses.
struct NetLease {
    octet: u8,
    _lock: nix::fcntl::Flock<std::fs::File>,
}

impl NetLease {
    fn acquire() -> Result<Self> {
        // Apart from the worlds' own directories, so that cleaning those up leaves the locks.
        let dir = std::env::temp_dir().join(".tn-net-locks");
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        let start = (std::process::id() % 200) as u8;
        for i in 0..254u16 {
            let octet = 1 + ((start as u16 + i) % 254) as u8;
            let path = dir.join(format!("{octet}.lock"));
            let file = std::fs::File::create(&path)
                .with_context(|| format!("creating {}", path.display()))?;
            if let Ok(lock) =
                nix::fcntl::Flock::lock(file, nix::fcntl::FlockArg::LockExclusiveNonblock)
            {
                return Ok(NetLease { octet, _lock: lock });
            }
        }
        bail!("every 127.x.0.0/16 range is in use by another world")
    }
}

impl World {
    /// Starts moto_server with a VPC 127.0.0.0/16 and the cluster's state bucket.
    pub fn start() -> Result<Self> {
        let dir = tempfile::Builder::new()
            .prefix("tn-world-")
            .tempdir()
            .context("creating the world's directory")?;
        if std::env::var_os("TN_KEEP_WORLD").is_some() {
            eprintln!("world directory: {}", dir.path().display());
        }
        let net = NetLease::acquire()?;
        let moto = Moto::start(dir.path().join("moto.log"))?;
        let aws = AwsProxy::start(&moto.endpoint)?;
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()?;
        let conf = rt.block_on(
            aws_config::defaults(aws_config::BehaviorVersion::latest())
                .http_client(tn_agent::aws::https_client())
                .region(aws_config::Region::new(REGION))
                .endpoint_url(&moto.endpoint)
                .credentials_provider(aws_sdk_ec2::config::Credentials::new(
                    "testing", "testing", None, None, "world",
                ))
                .load(),
        );
        let ec2 = aws_sdk_ec2::Client::new(&conf);
        let sdk_config = conf.clone();
        let autoscaling = aws_sdk_autoscaling::Client::new(&conf);
        let s3 = aws_sdk_s3::Client::from_conf(
            aws_sdk_s3::config::Builder::from(&conf)
                .force_path_style(true)
                .build(),
        );
        let cluster = "demo".to_string();
        let bucket = "demo-tn-state".to_string();
        let (vpc_id, image_id) = rt.block_on(async {
            let vpc = ec2
                .create_vpc()
                .cidr_block(format!("127.{}.0.0/16", net.octet))
                .send()
                .await
                .context("creating the VPC")?;
            let vpc_id = vpc
                .vpc()
                .and_then(|v| v.vpc_id())
                .context("VPC without id")?
                .to_string();
            let images = ec2
                .describe_images()
                .owners("amazon")
                .send()
                .await
                .context("listing AMIs")?;
            let image_id = images
                .images()
                .iter()
                .find_map(|i| i.image_id())
                .context("moto has no AMI")?
                .to_string();
            s3.create_bucket()
                .bucket(&bucket)
                .send()
                .await
                .context("creating the state bucket")?;
            anyhow::Ok((vpc_id, image_id))
        })?;
        let keep = std::env::var_os("TN_KEEP_WORLD").is_some();
        let mut dir = dir;
        if keep {
            dir.disable_cleanup(true);
        }
        Ok(World {
            dir,
            rt,
            moto,
            aws,
            ec2,
            autoscaling,
            s3,
            sdk_config,
            net,
            cluster,
            bucket,
            vpc_id,
            image_id,
            subnets: Mutex::new(HashMap::new()),
            asg_tags: Mutex::new(HashMap::new()),
        })
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Runs a future on the world's runtime (the world's API is blocking).
    pub fn block_on<F: std::future::Future>(&self, f: F) -> F::Output {
        self.rt.block_on(f)
    }

    /// The VPC's CIDR, 127.<n>.0.0/16: each world has its own.
    pub fn vpc_cidr(&self) -> String {
        format!("127.{}.0.0/16", self.net.octet)
    }

    /// Where a cluster's fake apiserver listens: an address of the world's own that no instance
    /// has (127.<n>.255.254), and the apiserver's real port 6443. Masters' own apiservers listen
    /// on their addresses and the same port; below the kernel's ephemeral range, that port is
    /// never held there by a listener bound to port 0 (a node's fake IMDS) or by a connection.
    pub fn apiserver_addr(&self) -> std::net::SocketAddr {
        std::net::SocketAddr::new(Ipv4Addr::new(127, self.net.octet, 255, 254).into(), 6443)
    }

    /// Creates an ASG of `size` for `role` (a subnet 127.<n>.<k>.0/24 of its own, a launch
    /// template, the cluster's tags) and returns its instances' ids, sorted.
    pub fn create_asg(&self, name: &str, role: &str, size: i32) -> Result<Vec<String>> {
        let subnet = self.subnet(name)?;
        let template = format!("{name}-lt");
        self.block_on(async {
            self.ec2
                .create_launch_template()
                .launch_template_name(&template)
                .launch_template_data(
                    RequestLaunchTemplateData::builder()
                        .image_id(&self.image_id)
                        .instance_type(aws_sdk_ec2::types::InstanceType::T3Small)
                        .tag_specifications(
                            aws_sdk_ec2::types::LaunchTemplateTagSpecificationRequest::builder()
                                .resource_type(ResourceType::Instance)
                                .tags(ec2_tag("tn:role", role))
                                .build(),
                        )
                        .build(),
                )
                .send()
                .await
                .with_context(|| format!("creating launch template {template}"))?;
            let tag = |k: &str, v: &str| {
                Tag::builder()
                    .key(k)
                    .value(v)
                    .resource_id(name)
                    .resource_type("auto-scaling-group")
                    .propagate_at_launch(true)
                    .build()
            };
            self.autoscaling
                .create_auto_scaling_group()
                .auto_scaling_group_name(name)
                .launch_template(
                    LaunchTemplateSpecification::builder()
                        .launch_template_name(&template)
                        .version("$Latest")
                        .build(),
                )
                .min_size(0)
                .max_size(size.max(1) * 2)
                .desired_capacity(size)
                .vpc_zone_identifier(&subnet)
                .tags(tag("tn:cluster", &self.cluster))
                .tags(tag("tn:role", role))
                .send()
                .await
                .with_context(|| format!("creating autoscaling group {name}"))?;
            anyhow::Ok(())
        })?;
        self.asg_tags.lock().unwrap().insert(
            name.to_string(),
            vec![
                ("tn:cluster".into(), self.cluster.clone()),
                ("tn:role".into(), role.into()),
            ],
        );
        Ok(self
            .asg_instances(name)?
            .into_iter()
            .map(|i| i.id)
            .collect())
    }

    fn subnet(&self, asg: &str) -> Result<String> {
        let mut subnets = self.subnets.lock().unwrap();
        if let Some(id) = subnets.get(asg) {
            return Ok(id.clone());
        }
        let cidr = format!("127.{}.{}.0/24", self.net.octet, subnets.len() + 1);
        let out = self
            .block_on(
                self.ec2
                    .create_subnet()
                    .vpc_id(&self.vpc_id)
                    .cidr_block(&cidr)
                    .availability_zone(AZ)
                    .tag_specifications(
                        TagSpecification::builder()
                            .resource_type(ResourceType::Subnet)
                            .tags(ec2_tag("Name", asg))
                            .build(),
                    )
                    .send(),
            )
            .with_context(|| format!("creating subnet {cidr}"))?;
        let id = out
            .subnet()
            .and_then(|s| s.subnet_id())
            .context("subnet without id")?
            .to_string();
        subnets.insert(asg.to_string(), id.clone());
        Ok(id)
    }

    /// The ASG's instances with their private IPs, sorted by id.
    pub fn asg_instances(&self, name: &str) -> Result<Vec<Instance>> {
        self.block_on(async {
            let out = self
                .autoscaling
                .describe_auto_scaling_groups()
                .auto_scaling_group_names(name)
                .send()
                .await?;
            let group = out
                .auto_scaling_groups()
                .first()
                .ok_or_else(|| anyhow!("no ASG {name}"))?;
            let states: HashMap<String, String> = group
                .instances()
                .iter()
                .map(|i| {
                    (
                        i.instance_id().unwrap_or_default().to_string(),
                        i.lifecycle_state()
                            .map(|s| s.as_str().to_string())
                            .unwrap_or_default(),
                    )
                })
                .collect();
            let mut found = Vec::new();
            if states.is_empty() {
                return Ok(found);
            }
            let out = self
                .ec2
                .describe_instances()
                .set_instance_ids(Some(states.keys().cloned().collect()))
                .send()
                .await?;
            for inst in out.reservations().iter().flat_map(|r| r.instances()) {
                let id = inst.instance_id().unwrap_or_default().to_string();
                let ip = inst
                    .private_ip_address()
                    .context("instance without private IP")?
                    .parse()?;
                found.push(Instance {
                    lifecycle_state: states.get(&id).cloned().unwrap_or_default(),
                    id,
                    ip,
                });
            }
            found.sort_by(|a, b| a.id.cmp(&b.id));
            Ok(found)
        })
    }

    /// The ASG's instances that none of `known` runs on, sorted by id: what it launched since
    /// those nodes were made.
    pub fn instances_besides(&self, asg: &str, known: &[Node]) -> Result<Vec<Instance>> {
        let mut found = self.asg_instances(asg)?;
        found.retain(|i| known.iter().all(|n| n.id != i.id));
        Ok(found)
    }

    /// Sets the ASG's desired capacity; the ASG launches or terminates instances to match.
    pub fn set_desired_capacity(&self, name: &str, desired: i32) -> Result<()> {
        self.block_on(
            self.autoscaling
                .set_desired_capacity()
                .auto_scaling_group_name(name)
                .desired_capacity(desired)
                .send(),
        )
        .with_context(|| format!("setting the desired capacity of {name} to {desired}"))?;
        Ok(())
    }

    /// Terminates an instance the way an ASG health check or an operator would; the ASG
    /// replaces it with a new instance (new id, new IP).
    pub fn terminate(&self, instance_id: &str) -> Result<()> {
        self.terminate_in_asg(instance_id, false)
    }

    /// Scale-in: terminates the instance and lowers the desired capacity.
    pub fn scale_in(&self, instance_id: &str) -> Result<()> {
        self.terminate_in_asg(instance_id, true)
    }

    fn terminate_in_asg(&self, instance_id: &str, decrement: bool) -> Result<()> {
        self.block_on(
            self.autoscaling
                .terminate_instance_in_auto_scaling_group()
                .instance_id(instance_id)
                .should_decrement_desired_capacity(decrement)
                .send(),
        )
        .with_context(|| format!("terminating {instance_id}"))?;
        Ok(())
    }

    /// `tn-agent <args>` as an operator runs it on a workstation against this world: the SDK's
    /// standard variables pointing at the world's AWS, the operator's key for the cluster
    /// `--cluster` names (`docs/iam/operator.json`), `AWS_REGION` set, no IMDS.
    pub fn operator(&self, args: &[&str]) -> Result<Run> {
        let empty = self.dir().join("empty");
        std::fs::write(&empty, "")?;
        let key = match args.iter().position(|a| *a == "--cluster") {
            Some(i) if args.get(i + 1).is_some_and(|c| **c != self.cluster) => {
                iam::role_key_for("operator", args[i + 1])
            }
            _ => iam::role_key("operator"),
        };
        Agent::new()?
            .env("AWS_ENDPOINT_URL", self.aws.url())
            .env("AWS_REGION", REGION)
            .env("AWS_ACCESS_KEY_ID", key)
            .env("AWS_SECRET_ACCESS_KEY", "testing")
            .env("AWS_CONFIG_FILE", &empty)
            .env("AWS_SHARED_CREDENTIALS_FILE", &empty)
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .run(args)
    }

    /// The cluster's whole PKI in the state bucket, made the operator's way:
    /// `tn-agent pki init --upload` into `<world>/operator`.
    pub fn init_pki(&self) -> Result<Run> {
        let out = self.dir().join("operator");
        let run = self.operator(&[
            "pki",
            "init",
            "--out",
            out.to_str().context("world path is UTF-8")?,
            "--cluster",
            &self.cluster,
            "--internal-domain",
            &format!("{}.int", self.cluster),
            "--upload",
            "--bucket",
            &self.bucket,
        ])?;
        if run.code != 0 {
            bail!("pki init --upload exited {}:\n{}", run.code, run.stderr);
        }
        Ok(run)
    }

    /// The config file a node of `role` gets, plus `extra` TOML lines. Failed bootstraps are
    /// not paced (`[bootstrap] retry_max_delay_seconds = 0`): tests run failing bootstraps in a
    /// row on purpose, and the pacing has a test of its own (with a drop-in).
    pub fn config(&self, role: &str, extra: &str) -> String {
        format!(
            "cluster = \"{}\"\nrole = \"{role}\"\nstate_bucket = \"{}\"\ninternal_domain = \"{}.int\"\n{extra}\n[bootstrap]\nretry_max_delay_seconds = 0\n",
            self.cluster, self.bucket, self.cluster
        )
    }

    /// A simulated node for an instance: its root directory with `config` as
    /// `/etc/tn-agent/config.toml`, and a fake IMDS on its private IP.
    pub fn node(&self, instance: &Instance, config: &str) -> Result<Node> {
        let root = self.dir().join("nodes").join(&instance.id);
        let empty_file = self.dir().join("empty");
        std::fs::write(&empty_file, "")?;
        let imds = FakeImds::start(
            IpAddr::V4(instance.ip),
            ImdsData::new(&instance.id, instance.ip),
        )?;
        let node = Node {
            id: instance.id.clone(),
            ip: instance.ip,
            root,
            imds,
            aws_endpoint: self.aws.url(),
            empty_file,
            env: Vec::new(),
        };
        node.write_config(config)?;
        if !node.path(BOOT_ID).exists() {
            node.new_boot()?;
        }
        Ok(node)
    }
}

/// The IAM side of a world: its nodes' and operator's calls against their roles' policies.
impl World {
    /// The IAM requests behind every call signed with a role's key so far, with the role.
    pub fn iam_requests(&self) -> Vec<iam::Record> {
        let tags = self.asg_tags.lock().unwrap().clone();
        let lookup = |name: &str| tags.get(name).cloned().unwrap_or_default();
        let mut out = Vec::new();
        for seen in self.aws.seen() {
            let Some((role, cluster)) = iam::role_of_key(&seen.credential) else {
                continue;
            };
            for request in iam::requests(&seen, &lookup) {
                out.push(iam::Record {
                    role: role.to_string(),
                    bucket: self.bucket.clone(),
                    cluster: cluster.unwrap_or(&self.cluster).to_string(),
                    request,
                });
            }
        }
        out
    }

    /// Each request so far that its role's policy does not allow, one line each.
    pub fn iam_violations(&self) -> Vec<String> {
        iam::violations(&self.iam_requests(), &iam::policy_dir())
    }
}

impl Drop for World {
    /// Fails the test (unless it is failing already) when a call was not allowed; otherwise
    /// writes the IAM requests for `tn-iam-check` when `TN_IAM_CALLS` names a directory.
    fn drop(&mut self) {
        let records = self.iam_requests();
        let violations = iam::violations(&records, &iam::policy_dir());
        if !violations.is_empty() {
            if !std::thread::panicking() {
                panic!(
                    "AWS calls their role's policy does not allow:\n  {}",
                    violations.join("\n  ")
                );
            }
            return;
        }
        if let Some(dir) = std::env::var_os("TN_IAM_CALLS") {
            let name = format!(
                "{}-{}.jsonl",
                std::process::id(),
                self.dir
                    .path()
                    .file_name()
                    .unwrap_or_default()
                    .to_string_lossy()
            );
            if let Err(e) = iam::write_records(&Path::new(&dir).join(name), &records) {
                eprintln!("writing the world's IAM requests: {e:#}");
            }
        }
    }
}

fn ec2_tag(k: &str, v: &str) -> aws_sdk_ec2::types::Tag {
    aws_sdk_ec2::types::Tag::builder().key(k).value(v).build()
}

/// A simulated node: an instance's root directory and fake IMDS.
/// Where the kernel tells a node its boot id (under the node's root).
const BOOT_ID: &str = "/proc/sys/kernel/random/boot_id";

pub struct Node {
    pub id: String,
    pub ip: Ipv4Addr,
    pub root: PathBuf,
    pub imds: FakeImds,
    /// The world's AWS proxy.
    aws_endpoint: String,
    /// Stands in for `~/.aws/config` and `~/.aws/credentials`: nothing from the caller's setup.
    empty_file: PathBuf,
    /// More environment for the agent (e.g. an `AWS_ENDPOINT_URL` where nothing listens).
    pub env: Vec<(String, String)>,
}

impl Node {
    /// Runs `tn-agent --root <root> <args>` to the end, with the environment a node has.
    pub fn run(&self, args: &[&str]) -> Result<Run> {
        self.agent()?.run(args)
    }

    /// `tn-agent --root <root>` with the environment a node has: the SDK's standard variables
    /// pointing at the world's AWS and this node's IMDS, credentials naming the role its config
    /// gives (what its calls are checked against), nothing from the caller's AWS setup.
    pub fn agent(&self) -> Result<Agent> {
        Ok(Agent::new()?
            .root(&self.root)
            .env("AWS_ENDPOINT_URL", &self.aws_endpoint)
            .env("AWS_ACCESS_KEY_ID", iam::role_key(&self.role()))
            .env("AWS_SECRET_ACCESS_KEY", "testing")
            .env("AWS_CONFIG_FILE", &self.empty_file)
            .env("AWS_SHARED_CREDENTIALS_FILE", &self.empty_file)
            .env("AWS_EC2_METADATA_SERVICE_ENDPOINT", self.imds.url())
            .envs(self.env.iter().map(|(k, v)| (k, v))))
    }

    /// The role in the node's config (`unknown` when it has none: no policy allows its calls).
    pub fn role(&self) -> String {
        std::fs::read_to_string(self.path("/etc/tn-agent/config.toml"))
            .ok()
            .and_then(|text| text.parse::<toml::Table>().ok())
            .and_then(|config| config.get("role")?.as_str().map(str::to_string))
            .unwrap_or_else(|| "unknown".into())
    }

    /// Replaces the node's `/etc/tn-agent/config.toml`.
    pub fn write_config(&self, config: &str) -> Result<()> {
        let path = self.path("/etc/tn-agent/config.toml");
        std::fs::create_dir_all(path.parent().unwrap())?;
        std::fs::write(&path, config)?;
        Ok(())
    }

    /// Gives the node a new boot id (`/proc/sys/kernel/random/boot_id` under its root), as the
    /// kernel does at each boot: `boot-1` at the first, another at each one after.
    pub fn new_boot(&self) -> Result<()> {
        let path = self.path(BOOT_ID);
        let old = std::fs::read_to_string(&path).unwrap_or_default();
        let new = match old.trim() {
            "" => "boot-1".to_string(),
            old => format!("{old}-next"),
        };
        std::fs::create_dir_all(path.parent().expect("a parent"))?;
        std::fs::write(&path, format!("{new}\n"))?;
        Ok(())
    }

    /// A node path under this node's root.
    pub fn path(&self, node_path: &str) -> PathBuf {
        self.root.join(node_path.trim_start_matches('/'))
    }

    /// The last bootstrap's `state.json`, read as tn-agent's own type.
    pub fn state(&self) -> Result<BootState> {
        let path = self.path("/var/lib/tn-agent/state.json");
        let text = std::fs::read(&path).with_context(|| format!("reading {}", path.display()))?;
        serde_json::from_slice(&text).with_context(|| format!("parsing {}", path.display()))
    }

    /// Starts etcd from the env file this node's bootstrap wrote.
    pub fn start_etcd(&self) -> Result<EtcdProcess> {
        EtcdProcess::start(
            &self.path("/etc/etcd/etcd.env"),
            &self.root.join("etcd.log"),
        )
    }
}
