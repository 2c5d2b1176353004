//! The IAM side of the world: what each AWS call a node made asks of IAM, and whether its role's
//! policy in `docs/iam/<role>.json` allows it.
//!
//! Every node signs its calls with an access key id naming its role (`tn-role-etcd`, ...; see
//! [`role_key`]), the world's AWS proxy records them, and [`requests`] turns one recorded call
//! into the IAM requests AWS would evaluate: an action, a resource ARN and the condition keys
//! the call carries. [`Policy`] evaluates them the way IAM does for one identity policy: an
//! explicit `Deny` wins, else an `Allow` whose action, resource and every condition match.
//! Only what the policies use is understood (`Action`, `Resource`, `StringEquals`,
//! `StringLike` and their `IfExists` forms); anything else makes loading the policy fail, so a
//! policy is never judged by rules this matcher does not have.
//!
//! Two S3 rules are modelled on purpose. A GET or HEAD that S3 answers 404 also needs
//! `s3:ListBucket` on the bucket (without it S3 answers 403), and that check carries no
//! `s3:prefix`: a policy that scopes listing by prefix must use `StringLikeIfExists` for it to
//! hold. `DeleteObjects` needs `s3:DeleteObject` on each key it names.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Context, Result};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::form::{decode, decode_path};
use crate::proxy::Seen;

/// The account and region in the ARNs the world's resources have (moto's defaults).
const ACCOUNT: &str = "123456789012";

/// The access key id a node of `role` signs its calls with.
pub fn role_key(role: &str) -> String {
    format!("tn-role-{role}")
}

/// The access key id of `role` acting on `cluster`, another cluster than the world's (an
/// operator uploading another cluster's PKI to the same bucket).
pub fn role_key_for(role: &str, cluster: &str) -> String {
    format!("tn-role-{role}.{cluster}")
}

/// The role an access key id names, and the cluster when it names one, if it is one of
/// [`role_key`]'s or [`role_key_for`]'s.
pub fn role_of_key(key: &str) -> Option<(&str, Option<&str>)> {
    let rest = key.strip_prefix("tn-role-")?;
    Some(match rest.split_once('.') {
        Some((role, cluster)) => (role, Some(cluster)),
        None => (rest, None),
    })
}

/// One IAM request: what IAM evaluates for (part of) one call.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Request {
    /// `s3:GetObject`, `autoscaling:CompleteLifecycleAction`, ...
    pub action: String,
    /// The resource's ARN, or `*` for actions without resource-level permissions.
    pub resource: String,
    /// Condition keys the request carries (`s3:prefix`, `autoscaling:ResourceTag/<key>`).
    pub context: BTreeMap<String, String>,
    /// The call it comes from, for messages: `GET /bucket/key → 404`.
    pub call: String,
}

/// One IAM request a role made in one world (the template variables its policy gets).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    pub role: String,
    pub bucket: String,
    pub cluster: String,
    pub request: Request,
}

/// `docs/iam/` of this workspace.
pub fn policy_dir() -> PathBuf {
    crate::workspace_dir().join("docs").join("iam")
}

/// Each record its role's policy does not allow (or that has no policy), one line each.
pub fn violations(records: &[Record], dir: &Path) -> Vec<String> {
    let mut policies = Policies::new(dir);
    let mut out: Vec<String> = records
        .iter()
        .filter_map(|r| match policies.get(r) {
            Ok(p) if p.allows(&r.request).is_some() => None,
            Ok(_) => Some(format!(
                "{}: {} on {} ({}): not allowed by docs/iam/{}.json",
                r.role, r.request.action, r.request.resource, r.request.call, r.role
            )),
            Err(e) => Some(format!("{}: {}: {e}", r.role, r.request.call)),
        })
        .collect();
    out.sort();
    out.dedup();
    out
}

/// Policies loaded once per (role, bucket, cluster).
pub struct Policies<'a> {
    dir: &'a Path,
    loaded: BTreeMap<(String, String, String), Result<Policy, String>>,
}

impl<'a> Policies<'a> {
    pub fn new(dir: &'a Path) -> Self {
        Policies {
            dir,
            loaded: BTreeMap::new(),
        }
    }

    /// The policy a record is judged by.
    pub fn get(&mut self, r: &Record) -> Result<&Policy, String> {
        let key = (r.role.clone(), r.bucket.clone(), r.cluster.clone());
        let dir = self.dir;
        self.loaded
            .entry(key)
            .or_insert_with(|| {
                Policy::load(dir, &r.role, &r.bucket, &r.cluster).map_err(|e| format!("{e:#}"))
            })
            .as_ref()
            .map_err(Clone::clone)
    }
}

/// Appends records to `path` as JSON lines.
pub fn write_records(path: &Path, records: &[Record]) -> Result<()> {
    use std::io::Write;
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .with_context(|| format!("opening {}", path.display()))?;
    let mut text = String::new();
    for r in records {
        text.push_str(&serde_json::to_string(r)?);
        text.push('\n');
    }
    file.write_all(text.as_bytes())
        .with_context(|| format!("writing {}", path.display()))
}

/// The IAM requests behind one recorded call. `asg_tags` gives an autoscaling group's tags by
/// name (the condition keys of calls on it). A call this does not know is one request with
/// action `unknown:<call>`, which no policy allows: extend the mapping, do not skip it.
pub fn requests(seen: &Seen, asg_tags: &dyn Fn(&str) -> Vec<(String, String)>) -> Vec<Request> {
    let call = format!("{} {} → {}", seen.method, seen.path_and_query, seen.status);
    let one = |action: String, resource: String, context: BTreeMap<String, String>| Request {
        action,
        resource,
        context,
        call: call.clone(),
    };
    match seen.service.as_str() {
        "ec2" | "autoscaling" => {
            let action = seen.form.get("Action").cloned().unwrap_or_default();
            let mut context = BTreeMap::new();
            let resource = match (seen.service.as_str(), action.as_str()) {
                ("autoscaling", "CompleteLifecycleAction" | "RecordLifecycleActionHeartbeat") => {
                    let name = seen
                        .form
                        .get("AutoScalingGroupName")
                        .cloned()
                        .unwrap_or_default();
                    for (k, v) in asg_tags(&name) {
                        context.insert(format!("autoscaling:ResourceTag/{k}"), v);
                    }
                    format!(
                        "arn:aws:autoscaling:{}:{ACCOUNT}:autoScalingGroup:world:autoScalingGroupName/{name}",
                        crate::REGION
                    )
                }
                // The Describe calls have no resource-level permissions.
                (_, a) if a.starts_with("Describe") => "*".to_string(),
                _ => {
                    return vec![one(
                        format!("unknown:{}", seen.service),
                        "*".into(),
                        context,
                    )]
                }
            };
            vec![one(format!("{}:{action}", seen.service), resource, context)]
        }
        "s3" => s3_requests(seen)
            .into_iter()
            .map(|(action, resource, context)| one(action, resource, context))
            .collect(),
        other => vec![one(format!("unknown:{other}"), "*".into(), BTreeMap::new())],
    }
}

/// S3's REST calls (path-style addressing, as the agent uses against a custom endpoint).
fn s3_requests(seen: &Seen) -> Vec<(String, String, BTreeMap<String, String>)> {
    let (path, query) = seen
        .path_and_query
        .split_once('?')
        .unwrap_or((&seen.path_and_query, ""));
    let params: BTreeMap<String, String> = query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (decode(k), decode(v))
        })
        .collect();
    let path = decode_path(path.trim_start_matches('/'));
    let (bucket, key) = path.split_once('/').unwrap_or((&path, ""));
    let bucket_arn = format!("arn:aws:s3:::{bucket}");
    let object_arn = format!("arn:aws:s3:::{bucket}/{key}");
    let has = |p: &str| params.contains_key(p);
    let none = BTreeMap::new;
    let unknown = || {
        vec![(
            format!("unknown:s3 {} {}", seen.method, seen.path_and_query),
            "*".to_string(),
            none(),
        )]
    };
    if key.is_empty() {
        return match seen.method.as_str() {
            "GET" if params.get("list-type").map(String::as_str) == Some("2") => {
                let mut context = none();
                if let Some(prefix) = params.get("prefix") {
                    context.insert("s3:prefix".to_string(), prefix.clone());
                }
                vec![("s3:ListBucket".into(), bucket_arn, context)]
            }
            "POST" if has("delete") => seen
                .delete_keys
                .iter()
                .map(|k| {
                    (
                        "s3:DeleteObject".into(),
                        format!("{bucket_arn}/{k}"),
                        none(),
                    )
                })
                .collect(),
            _ => unknown(),
        };
    }
    let action = match seen.method.as_str() {
        "GET" | "HEAD" if !has("uploadId") && !has("acl") && !has("tagging") => "s3:GetObject",
        "PUT" if !has("acl") && !has("tagging") => "s3:PutObject",
        "POST" if has("uploads") || has("uploadId") => "s3:PutObject",
        "DELETE" if has("uploadId") => "s3:AbortMultipartUpload",
        "DELETE" => "s3:DeleteObject",
        _ => return unknown(),
    };
    let mut out = vec![(action.to_string(), object_arn, none())];
    if action == "s3:GetObject" && seen.status == 404 {
        out.push(("s3:ListBucket".into(), bucket_arn, none()));
    }
    out
}

/// One identity policy, with `${bucket}` and `${cluster}` filled in.
#[derive(Debug, Clone)]
pub struct Policy {
    pub statements: Vec<Statement>,
}

#[derive(Debug, Clone)]
pub struct Statement {
    /// The statement's `Sid`, or its position.
    pub name: String,
    pub allow: bool,
    pub actions: Vec<String>,
    pub resources: Vec<String>,
    /// (operator, key, values): all must hold; a key holds when any value matches.
    pub conditions: Vec<(String, String, Vec<String>)>,
}

/// The parts of a policy one request matched: (statement, action, resource) indexes.
pub type Used = (usize, usize, usize);

impl Policy {
    /// `docs/iam/<role>.json` under `dir`, with the template variables Terraform's
    /// `templatefile` would fill in.
    pub fn load(dir: &Path, role: &str, bucket: &str, cluster: &str) -> Result<Self> {
        let path = dir.join(format!("{role}.json"));
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("reading {}", path.display()))?;
        Self::parse(&text, bucket, cluster).with_context(|| format!("in {}", path.display()))
    }

    pub fn parse(template: &str, bucket: &str, cluster: &str) -> Result<Self> {
        let text = template
            .replace("${bucket}", bucket)
            .replace("${cluster}", cluster);
        if let Some(at) = text.find("${") {
            bail!(
                "unknown template variable at {:?} (known: bucket, cluster)",
                &text[at..text.len().min(at + 20)]
            );
        }
        let doc: Value = serde_json::from_str(&text).context("not JSON")?;
        if doc.get("Version").and_then(Value::as_str) != Some("2012-10-17") {
            bail!("\"Version\" must be \"2012-10-17\"");
        }
        let statements = doc
            .get("Statement")
            .and_then(Value::as_array)
            .context("no \"Statement\" list")?
            .iter()
            .enumerate()
            .map(|(i, s)| statement(i, s))
            .collect::<Result<_>>()?;
        Ok(Policy { statements })
    }

    /// Whether the policy allows `request`, and if so which parts of it did.
    pub fn allows(&self, request: &Request) -> Option<Vec<Used>> {
        let mut used = Vec::new();
        for (i, s) in self.statements.iter().enumerate() {
            let Some(a) = s
                .actions
                .iter()
                .position(|p| glob(&p.to_lowercase(), &request.action.to_lowercase()))
            else {
                continue;
            };
            let Some(r) = s.resources.iter().position(|p| glob(p, &request.resource)) else {
                continue;
            };
            if !s.conditions.iter().all(|c| condition(c, &request.context)) {
                continue;
            }
            if !s.allow {
                return None;
            }
            used.push((i, a, r));
        }
        (!used.is_empty()).then_some(used)
    }
}

fn statement(i: usize, s: &Value) -> Result<Statement> {
    let name = s
        .get("Sid")
        .and_then(Value::as_str)
        .map_or_else(|| format!("statement {}", i + 1), str::to_string);
    let obj = s
        .as_object()
        .ok_or_else(|| anyhow!("{name}: not an object"))?;
    for key in obj.keys() {
        if !["Sid", "Effect", "Action", "Resource", "Condition"].contains(&key.as_str()) {
            bail!("{name}: {key:?} is not understood by the world's IAM matcher");
        }
    }
    let allow = match s.get("Effect").and_then(Value::as_str) {
        Some("Allow") => true,
        Some("Deny") => false,
        other => bail!("{name}: Effect {other:?}"),
    };
    let strings = |field: &str| -> Result<Vec<String>> {
        match s.get(field) {
            Some(Value::String(one)) => Ok(vec![one.clone()]),
            Some(Value::Array(many)) => many
                .iter()
                .map(|v| {
                    v.as_str()
                        .map(str::to_string)
                        .ok_or_else(|| anyhow!("{name}: {field} holds a non-string"))
                })
                .collect(),
            _ => bail!("{name}: no {field}"),
        }
    };
    let mut conditions = Vec::new();
    if let Some(c) = s.get("Condition") {
        let ops = c
            .as_object()
            .ok_or_else(|| anyhow!("{name}: Condition is not an object"))?;
        for (op, keys) in ops {
            if !["StringEquals", "StringLike"].contains(&op.trim_end_matches("IfExists")) {
                bail!(
                    "{name}: condition operator {op} is not understood by the world's IAM matcher"
                );
            }
            let keys = keys
                .as_object()
                .ok_or_else(|| anyhow!("{name}: {op} is not an object"))?;
            for (key, values) in keys {
                let values = match values {
                    Value::String(v) => vec![v.clone()],
                    Value::Array(vs) => vs
                        .iter()
                        .filter_map(|v| v.as_str().map(str::to_string))
                        .collect(),
                    _ => bail!("{name}: {op} {key}: not a string or list"),
                };
                conditions.push((op.clone(), key.clone(), values));
            }
        }
    }
    let (actions, resources) = (strings("Action")?, strings("Resource")?);
    Ok(Statement {
        name,
        allow,
        actions,
        resources,
        conditions,
    })
}

/// One condition against the request's keys (condition key names are case-insensitive).
fn condition(
    (op, key, values): &(String, String, Vec<String>),
    context: &BTreeMap<String, String>,
) -> bool {
    let found = context
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(key))
        .map(|(_, v)| v);
    let Some(found) = found else {
        return op.ends_with("IfExists");
    };
    values
        .iter()
        .any(|v| match op.trim_end_matches("IfExists") {
            "StringEquals" => v == found,
            _ => glob(v, found),
        })
}

/// IAM's wildcards: `*` any run of characters, `?` one.
pub fn glob(pattern: &str, text: &str) -> bool {
    let (p, t): (Vec<char>, Vec<char>) = (pattern.chars().collect(), text.chars().collect());
    let (mut pi, mut ti) = (0, 0);
    let mut back: Option<(usize, usize)> = None;
    while ti < t.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == t[ti]) {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == '*' {
            back = Some((pi, ti));
            pi += 1;
        } else if let Some((bp, bt)) = back {
            pi = bp + 1;
            ti = bt + 1;
            back = Some((bp, bt + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|&c| c == '*')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seen(service: &str, method: &str, path: &str, status: u16) -> Seen {
        Seen {
            credential: role_key("etcd"),
            service: service.into(),
            method: method.into(),
            path_and_query: path.into(),
            form: Default::default(),
            delete_keys: Vec::new(),
            status,
        }
    }

    const POLICY: &str = r#"{"Version": "2012-10-17", "Statement": [
      {"Sid": "Read", "Effect": "Allow", "Action": "s3:GetObject",
       "Resource": ["arn:aws:s3:::${bucket}/${cluster}/pki/ca.crt", "arn:aws:s3:::${bucket}/${cluster}/etcd/*"]},
      {"Sid": "List", "Effect": "Allow", "Action": "s3:ListBucket", "Resource": "arn:aws:s3:::${bucket}",
       "Condition": {"StringLikeIfExists": {"s3:prefix": "${cluster}/etcd/*"}}},
      {"Sid": "Hook", "Effect": "Allow", "Action": "autoscaling:CompleteLifecycleAction",
       "Resource": "arn:aws:autoscaling:*:*:autoScalingGroup:*:autoScalingGroupName/*",
       "Condition": {"StringEquals": {"autoscaling:ResourceTag/tn:cluster": "${cluster}"}}},
      {"Effect": "Deny", "Action": "s3:*", "Resource": "arn:aws:s3:::${bucket}/${cluster}/etcd/secret"}
    ]}"#;

    fn policy() -> Policy {
        Policy::parse(POLICY, "b", "c").unwrap()
    }

    fn no_tags(_: &str) -> Vec<(String, String)> {
        Vec::new()
    }

    fn allowed(s: &Seen, tags: &dyn Fn(&str) -> Vec<(String, String)>) -> bool {
        let p = policy();
        requests(s, tags).iter().all(|r| p.allows(r).is_some())
    }

    #[test]
    fn objects_are_matched_by_arn_with_wildcards() {
        assert!(allowed(
            &seen("s3", "GET", "/b/c/pki/ca.crt", 200),
            &no_tags
        ));
        assert!(allowed(
            &seen("s3", "HEAD", "/b/c/etcd/backups/x/snapshot.db", 200),
            &no_tags
        ));
        assert!(!allowed(
            &seen("s3", "GET", "/b/c/pki/ca.key", 200),
            &no_tags
        ));
        assert!(!allowed(
            &seen("s3", "PUT", "/b/c/pki/ca.crt", 200),
            &no_tags
        ));
        assert!(!allowed(
            &seen("s3", "GET", "/b/other/pki/ca.crt", 200),
            &no_tags
        ));
        // An explicit deny wins over the allow of etcd/*.
        assert!(!allowed(
            &seen("s3", "GET", "/b/c/etcd/secret", 200),
            &no_tags
        ));
    }

    #[test]
    fn a_missing_object_also_needs_list_bucket_and_the_prefix_condition_only_binds_listings() {
        let r = requests(&seen("s3", "GET", "/b/c/etcd/cluster.json", 404), &no_tags);
        assert_eq!(r.len(), 2);
        assert_eq!(r[1].action, "s3:ListBucket");
        assert!(r[1].context.is_empty());
        assert!(allowed(
            &seen("s3", "GET", "/b/c/etcd/cluster.json", 404),
            &no_tags
        ));
        assert!(allowed(
            &seen(
                "s3",
                "GET",
                "/b?list-type=2&prefix=c%2Fetcd%2Fbackups%2F",
                200
            ),
            &no_tags
        ));
        assert!(!allowed(
            &seen("s3", "GET", "/b?list-type=2&prefix=c%2Fpki%2F", 200),
            &no_tags
        ));
        // With a plain StringLike the 404 becomes a 403 in AWS: the matcher says so too.
        let strict = Policy::parse(
            &POLICY.replace("StringLikeIfExists", "StringLike"),
            "b",
            "c",
        )
        .unwrap();
        let r = requests(&seen("s3", "GET", "/b/c/etcd/cluster.json", 404), &no_tags);
        assert!(strict.allows(&r[1]).is_none());
    }

    #[test]
    fn delete_objects_needs_delete_object_on_every_key_and_unknown_calls_are_never_allowed() {
        let mut s = seen("s3", "POST", "/b?delete", 200);
        s.delete_keys = vec!["c/etcd/backups/a/snapshot.db".into()];
        let r = requests(&s, &no_tags);
        assert_eq!(r.len(), 1);
        assert_eq!(r[0].action, "s3:DeleteObject");
        assert_eq!(r[0].resource, "arn:aws:s3:::b/c/etcd/backups/a/snapshot.db");
        let r = requests(&seen("s3", "GET", "/b?versioning", 200), &no_tags);
        assert!(r[0].action.starts_with("unknown:"), "{r:?}");
        assert!(policy().allows(&r[0]).is_none());
    }

    #[test]
    fn lifecycle_actions_are_scoped_by_the_groups_tags() {
        let mut s = seen("autoscaling", "POST", "/", 200);
        s.form
            .insert("Action".into(), "CompleteLifecycleAction".into());
        s.form
            .insert("AutoScalingGroupName".into(), "x-etcd".into());
        let ours = |_: &str| vec![("tn:cluster".to_string(), "c".to_string())];
        let theirs = |_: &str| vec![("tn:cluster".to_string(), "other".to_string())];
        assert!(allowed(&s, &ours));
        assert!(!allowed(&s, &theirs));
        assert!(!allowed(&s, &no_tags));
    }

    #[test]
    fn what_the_matcher_cannot_judge_is_refused_at_load() {
        for bad in [
            POLICY.replace(
                "\"Resource\": \"arn:aws:s3:::${bucket}\"",
                "\"NotResource\": \"x\"",
            ),
            POLICY.replace("StringLikeIfExists", "ArnLike"),
            POLICY.replace("${cluster}/etcd/*", "${region}/etcd/*"),
        ] {
            assert!(Policy::parse(&bad, "b", "c").is_err(), "{bad}");
        }
    }

    #[test]
    fn glob_has_iams_two_wildcards() {
        assert!(glob("a*c", "abbbc"));
        assert!(glob("a?c", "abc"));
        assert!(glob("*", "*"));
        assert!(!glob("a*c", "abd"));
        assert!(!glob("arn:aws:s3:::b/*", "*"));
    }
}
