//! The IAM policies in docs/iam/: they load in Terraform as documented, and the world's check
//! of every node's calls against them (tests/world/iam.rs) fails the test whose node made a call
//! its role's policy does not allow.

use std::panic::AssertUnwindSafe;

use tn_world::iam::{self, role_key, Policy};
use tn_world::World;

use crate::support::{terraform_console, terraform_installed};

const ROLES: [&str; 4] = ["etcd", "master", "operator", "worker"];

fn policy_text(role: &str) -> String {
    std::fs::read_to_string(iam::policy_dir().join(format!("{role}.json"))).unwrap()
}

/// Every role has a policy the world's matcher can judge whole (it refuses anything it does not
/// model), with no template variable but `bucket` and `cluster`.
#[test]
fn every_role_has_a_policy_the_matcher_understands() {
    for role in ROLES {
        let policy = Policy::load(&iam::policy_dir(), role, "b", "c")
            .unwrap_or_else(|e| panic!("{role}: {e:#}"));
        assert!(!policy.statements.is_empty(), "{role}");
        assert!(policy_text(role).contains("${bucket}"), "{role}");
    }
}

/// `templatefile()` renders each file to the JSON our substitution gives (so
/// `aws_iam_policy.policy = templatefile(...)` loads what the tests checked), where Terraform is
/// installed.
#[test]
fn terraform_renders_each_policy_as_the_tests_read_it() {
    if !terraform_installed() {
        eprintln!("terraform is not installed: policies checked by the local matcher only");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let renders: Vec<String> = ROLES
        .iter()
        .map(|role| {
            format!(
                "jsonencode(jsondecode(templatefile(\"{}\", {{ bucket = \"prod-tn-state\", \
                 cluster = \"prod\" }})))",
                iam::policy_dir()
                    .join(format!("{role}.json"))
                    .canonicalize()
                    .unwrap()
                    .display()
            )
        })
        .collect();
    let line = terraform_console(dir.path(), &format!("jsonencode([{}])", renders.join(", ")));
    // The console prints the string as an HCL string literal: a JSON string is the same.
    let list: String = serde_json::from_str(&line).unwrap();
    let rendered: Vec<String> = serde_json::from_str(&list).unwrap();
    assert_eq!(rendered.len(), ROLES.len());
    for (role, theirs) in ROLES.iter().zip(rendered) {
        let ours = policy_text(role)
            .replace("${bucket}", "prod-tn-state")
            .replace("${cluster}", "prod");
        let ours: serde_json::Value = serde_json::from_str(&ours).unwrap();
        let theirs: serde_json::Value = serde_json::from_str(&theirs).unwrap();
        assert_eq!(theirs, ours, "{role}");
    }
}

/// A call signed with a worker's key that its policy does not allow (reading the cluster CA's
/// key) is named by the world, and dropping the world fails the test; the same world's allowed
/// calls (the operator's upload, the worker's CA certificate) are not named.
#[test]
fn a_call_the_role_may_not_make_fails_the_test_that_made_it() {
    let world = World::start().unwrap();
    world.init_pki().unwrap();
    let creds = aws_sdk_s3::config::Credentials::new(role_key("worker"), "x", None, None, "t");
    let s3 = aws_sdk_s3::Client::from_conf(
        aws_sdk_s3::config::Builder::from(&world.sdk_config)
            .endpoint_url(world.aws.url())
            .credentials_provider(creds)
            .force_path_style(true)
            .build(),
    );
    for key in ["demo/pki/ca.crt", "demo/pki/ca.key"] {
        world
            .block_on(s3.get_object().bucket(&world.bucket).key(key).send())
            .unwrap();
    }
    let violations = world.iam_violations();
    assert_eq!(violations.len(), 1, "{violations:?}");
    assert!(
        violations[0].starts_with(
            "worker: s3:GetObject on arn:aws:s3:::demo-tn-state/demo/pki/ca.key (GET "
        ) && violations[0].ends_with("): not allowed by docs/iam/worker.json"),
        "{violations:?}"
    );
    let dropped = std::panic::catch_unwind(AssertUnwindSafe(move || drop(world)));
    let message = dropped.expect_err("dropping the world fails the test");
    let message = message
        .downcast_ref::<String>()
        .cloned()
        .unwrap_or_default();
    assert!(message.contains("demo/pki/ca.key"), "{message}");
}
