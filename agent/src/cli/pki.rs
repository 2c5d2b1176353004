//! `tn-agent pki ...`: the cluster's CAs and keys, made on an operator's workstation.

use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use clap::{Args, Subcommand};

use super::Globals;
use crate::aws::Aws;
use crate::config::Settings;
use crate::exit::BadInput;
use crate::pki::encryption::EncryptionKey;
use crate::pki::init::{self, FileSpec, Generated, Inputs, Overrides, FILES};
use crate::pki::token::BootstrapToken;
use crate::store::{Object, Store};

#[derive(Debug, Subcommand)]
pub enum Pki {
    /// Create the cluster's CAs, service-account keys, bootstrap token and an admin kubeconfig
    /// in a directory (replaces tls-gen.sh); with --upload also put them in the state bucket.
    ///
    /// Values not given as flags come from a node's config file (--config), which is read only
    /// when --cluster is not given, or --upload is without --bucket. Nothing is written when
    /// any file or object is already there, unless --force.
    Init(Init),
}

/// `pki init`'s flags.
#[derive(Debug, Args)]
pub struct Init {
    /// Directory to write the files into (created 0700 when missing).
    #[arg(long, value_name = "DIR")]
    out: PathBuf,

    /// Cluster name, [a-z0-9-]{1,32}: CA names and the S3 prefix <cluster>/pki/.
    #[arg(long, value_name = "NAME")]
    cluster: Option<String>,

    /// Internal DNS zone; the admin kubeconfig's server is https://kubernetes.<DOMAIN>:443.
    #[arg(long, value_name = "DOMAIN")]
    internal_domain: Option<String>,

    /// The cluster's addressing plan (0-254). Checked only: nothing made here depends on it.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u8).range(0..=254))]
    vpc_number: Option<u8>,

    /// The admin kubeconfig's server, https://host[:port] (overrides --internal-domain).
    #[arg(long, value_name = "URL")]
    apiserver: Option<String>,

    /// Replace files in DIR and objects in the bucket that already exist. On a running cluster
    /// this breaks every node that trusts the old CAs.
    #[arg(long)]
    force: bool,

    /// Also put everything but the admin files in the state bucket at <cluster>/pki/ (region
    /// from AWS_REGION, credentials from the SDK's default chain).
    #[arg(long)]
    upload: bool,

    /// The state bucket for --upload (default: state_bucket from the config file).
    #[arg(long, value_name = "NAME", requires = "upload")]
    bucket: Option<String>,

    /// Make only a new bootstrap token: replace DIR/bootstrap-token and, with --upload, the
    /// bucket's (its Secret expires a year after it is stored; docs/pki.md says what follows).
    #[arg(long, conflicts_with = "force")]
    rotate_bootstrap_token: bool,

    /// Make only the Secrets encryption key, for a cluster whose PKI predates it: write
    /// DIR/secrets-encryption-key and, with --upload, create the bucket's only if it has none
    /// (a key is never replaced: Secrets encrypted with it would become unreadable).
    #[arg(long, conflicts_with_all = ["force", "rotate_bootstrap_token"])]
    add_encryption_key: bool,
}

impl Pki {
    pub async fn run(self, globals: &Globals) -> Result<u8> {
        match self {
            Pki::Init(init) => init.run(globals).await,
        }
    }
}

/// Where `--upload` puts the files.
struct Target {
    aws: Aws,
    bucket: String,
}

/// Where one object of a cluster goes: the bucket and the cluster's prefix.
struct OwnedStore {
    target: Target,
    cluster: String,
}

impl OwnedStore {
    fn store(&self) -> Store<'_> {
        Store::new(&self.target.aws, &self.target.bucket, &self.cluster)
    }
}

impl Init {
    async fn run(self, globals: &Globals) -> Result<u8> {
        if self.rotate_bootstrap_token {
            return self.rotate_token(globals).await;
        }
        if self.add_encryption_key {
            return self.add_key(globals).await;
        }
        let inputs = self.inputs(globals)?;
        let target = if self.upload {
            Some(upload_target(inputs.bucket.clone()).await?)
        } else {
            None
        };
        self.refuse_existing_files()?;
        if let Some(target) = &target {
            refuse_existing_objects(target, &inputs, self.force).await?;
        }
        let generated = init::generate(&inputs).context("generating the cluster's PKI")?;
        init::write_all(&self.out, &generated)?;
        println!("wrote {} files to {}:", FILES.len(), self.out.display());
        for (spec, body) in generated.iter() {
            println!(
                "  {:<20} {:o}  {}",
                spec.name,
                spec.mode,
                init::describe(spec, body)
            );
        }
        println!("admin kubeconfig server: {}", inputs.apiserver);
        if let Some(target) = &target {
            upload(target, &inputs, &generated, self.force)
                .await
                .with_context(|| {
                    format!(
                        "uploading to s3://{}/{}/pki/ (the files are in {})",
                        target.bucket,
                        inputs.cluster,
                        self.out.display()
                    )
                })?;
        }
        Ok(crate::exit::OK)
    }

    /// `--rotate-bootstrap-token`: a new token in DIR, and in the bucket with --upload
    /// (replacing the object; bucket versioning keeps the old one).
    async fn rotate_token(&self, globals: &Globals) -> Result<u8> {
        let upload = self.one_object_store(globals).await?;
        let token = BootstrapToken::generate(&mut rand::rng());
        let body = format!("{}\n", token.token());
        let path = init::write_one(&self.out, init::file_spec("bootstrap-token"), &body)?;
        println!(
            "wrote a new bootstrap token (id {}) to {}",
            token.id(),
            path.display()
        );
        if let Some(upload) = &upload {
            let store = upload.store();
            let object = Object::BootstrapToken;
            store
                .put(object, body.into_bytes())
                .await
                .with_context(|| {
                    format!(
                        "uploading {} (the token is in {})",
                        store.url(object),
                        path.display()
                    )
                })?;
            println!("uploaded {}", store.url(object));
        }
        println!(
            "next: on each master `systemctl restart tn-agent-bootstrap` and apply \
             /etc/kubernetes/addons/tls-bootstrap.yaml; then delete the old token's Secret \
             (docs/pki.md, \"Rotating the bootstrap token\")"
        );
        Ok(crate::exit::OK)
    }

    /// `--add-encryption-key`: a new Secrets encryption key in DIR (never over an existing
    /// file), and with --upload in the bucket, only if it has none.
    async fn add_key(&self, globals: &Globals) -> Result<u8> {
        let upload = self.one_object_store(globals).await?;
        let store = upload.as_ref().map(OwnedStore::store);
        let name = "secrets-encryption-key";
        let path = self.out.join(name);
        if path.symlink_metadata().is_ok() {
            return Err(BadInput(format!(
                "{} already exists; nothing was written (a key is never replaced)",
                path.display()
            ))
            .into());
        }
        let object = Object::EncryptionKey;
        if let Some(store) = &store {
            let exists = store
                .exists(object)
                .await
                .with_context(|| format!("checking {}", store.url(object)))?;
            if exists {
                bail!(
                    "{} already exists; nothing was written or uploaded (a key is never \
                     replaced: every Secret encrypted with it would become unreadable)",
                    store.url(object)
                );
            }
        }
        let body = format!("{}\n", EncryptionKey::generate(&mut rand::rng()).base64());
        init::write_one(&self.out, init::file_spec(name), &body)?;
        println!("wrote a new Secrets encryption key to {}", path.display());
        if let Some(store) = &store {
            let created = store
                .put_if_absent(object, body.into_bytes())
                .await
                .with_context(|| format!("uploading {}", store.url(object)))?;
            if !created {
                bail!(
                    "{} appeared during the upload and was left as it is; {} is not the \
                     cluster's key",
                    store.url(object),
                    path.display()
                );
            }
            println!("uploaded {}", store.url(object));
        }
        println!(
            "next: on each master `systemctl restart tn-agent-bootstrap`; the apiserver then \
             encrypts Secrets as they are written (docs/kubernetes.md, \"Secrets at rest\")"
        );
        Ok(crate::exit::OK)
    }

    /// For the commands that make one object: where `--upload` puts it (`None` without
    /// `--upload`). Needs only the cluster and the bucket, not the API server.
    async fn one_object_store(&self, globals: &Globals) -> Result<Option<OwnedStore>> {
        let (flags, config) = self.flags_and_config(globals)?;
        let (cluster, bucket) = init::resolve_cluster(&flags, config.as_ref())?;
        if !self.upload {
            return Ok(None);
        }
        let target = upload_target(bucket).await?;
        Ok(Some(OwnedStore {
            target,
            cluster: cluster.as_str().to_string(),
        }))
    }

    fn inputs(&self, globals: &Globals) -> Result<Inputs> {
        let (flags, config) = self.flags_and_config(globals)?;
        Ok(init::resolve(&flags, config.as_ref())?)
    }

    /// The flags, and the config file when they leave the cluster or the bucket open.
    fn flags_and_config(&self, globals: &Globals) -> Result<(Overrides, Option<Settings>)> {
        let flags = Overrides {
            cluster: self.cluster.clone(),
            internal_domain: self.internal_domain.clone(),
            vpc_number: self.vpc_number,
            apiserver: self.apiserver.clone(),
            bucket: self.bucket.clone(),
        };
        let config = match (&flags.cluster, self.upload && flags.bucket.is_none()) {
            (None, _) => Some(load_config(
                globals,
                "no cluster name: pass --cluster NAME, or a node config file with --config PATH",
            )?),
            (Some(_), true) => Some(load_config(
                globals,
                "--upload needs the state bucket: pass --bucket NAME, or a node config file \
                 with --config PATH",
            )?),
            (Some(_), false) => None,
        };
        Ok((flags, config))
    }

    /// Exit 2 naming the files, before anything is generated, unless --force.
    fn refuse_existing_files(&self) -> Result<()> {
        let found = init::existing(&self.out)
            .context(BadInput(format!("cannot use --out {}", self.out.display())))?;
        if found.is_empty() || self.force {
            return Ok(());
        }
        Err(BadInput(format!(
            "{} already exist{}: {}; nothing was written (--force replaces them)",
            plural(found.len(), "file"),
            if found.len() == 1 { "s" } else { "" },
            list(&found)
        ))
        .into())
    }
}

fn load_config(globals: &Globals, why: &str) -> Result<Settings> {
    globals.load_config().context(BadInput(why.to_string()))
}

/// The bucket and the region, checked before anything else happens.
async fn upload_target(bucket: Option<String>) -> Result<Target> {
    let bucket = bucket.ok_or_else(|| {
        BadInput("--upload needs the state bucket: pass --bucket NAME".to_string())
    })?;
    let region = std::env::var("AWS_REGION")
        .ok()
        .filter(|r| !r.is_empty())
        .ok_or_else(|| {
            BadInput(
                "--upload needs the bucket's region: set AWS_REGION (a workstation has no \
                 instance metadata to ask)"
                    .to_string(),
            )
        })?;
    Ok(Target {
        aws: Aws::connect(&region).await,
        bucket,
    })
}

/// The PKI object a file of `pki init` is uploaded as.
fn object_of(spec: &FileSpec) -> Object {
    Object::pki_file(spec.name).expect("every uploaded file is a PKI object of the state bucket")
}

/// Exit 1 naming the objects that exist, before anything is generated, unless `force`.
async fn refuse_existing_objects(target: &Target, inputs: &Inputs, force: bool) -> Result<()> {
    if force {
        return Ok(());
    }
    let store = Store::new(&target.aws, &target.bucket, inputs.cluster.as_str());
    let mut found = Vec::new();
    for spec in FILES.iter().filter(|f| f.upload) {
        let object = object_of(spec);
        let exists = store
            .exists(object)
            .await
            .with_context(|| format!("checking {}", store.url(object)))?;
        if exists {
            found.push(store.key(object));
        }
    }
    if !found.is_empty() {
        bail!(
            "s3://{}/ already has {}: {}; nothing was written or uploaded (the cluster has its \
             PKI already; --force replaces it, which breaks every node that trusts the old CAs)",
            target.bucket,
            plural(found.len(), "object"),
            found.join(", ")
        );
    }
    Ok(())
}

/// Puts every uploadable file; without `force` only where no object exists
/// (`If-None-Match: *`), naming those that appeared since the check.
async fn upload(
    target: &Target,
    inputs: &Inputs,
    generated: &Generated,
    force: bool,
) -> Result<()> {
    let store = Store::new(&target.aws, &target.bucket, inputs.cluster.as_str());
    let mut raced = Vec::new();
    for (spec, body) in generated.iter().filter(|(s, _)| s.upload) {
        let object = object_of(spec);
        let body = body.as_bytes().to_vec();
        let context = || format!("uploading {}", store.url(object));
        if force {
            store.put(object, body).await.with_context(context)?;
        } else if !store
            .put_if_absent(object, body)
            .await
            .with_context(context)?
        {
            raced.push(store.key(object));
            continue;
        }
        println!("uploaded {}", store.url(object));
    }
    if !raced.is_empty() {
        bail!(
            "s3://{}/ got {} from someone else during the upload, left as they are: {}",
            target.bucket,
            plural(raced.len(), "object"),
            raced.join(", ")
        );
    }
    Ok(())
}

/// `1 file`, `3 files`.
fn plural(n: usize, what: &str) -> String {
    match n {
        1 => format!("1 {what}"),
        n => format!("{n} {what}s"),
    }
}

fn list(paths: &[PathBuf]) -> String {
    paths
        .iter()
        .map(|p| p.display().to_string())
        .collect::<Vec<_>>()
        .join(", ")
}
