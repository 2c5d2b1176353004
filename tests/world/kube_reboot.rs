//! Masters and workers that reboot (SPEC §9) in the world: nodes of an ASG with the fake
//! apiserver as their cluster, the kubelet's credentials where the kubelet writes them after its
//! TLS bootstrap, their Node registered and Ready, and a reboot that does what a real one does
//! to a Kubernetes node: the kubelet stops (the Node goes NotReady), a new boot id, /run emptied,
//! and the kubelet back (Ready).

use anyhow::{ensure, Context, Result};
use tn_agent::kube::kubeconfig::{Cluster, Context as KubeContext, Kubeconfig};
use tn_agent::kube::kubeconfig::{NamedCluster, NamedContext, NamedUser, Preferences, User};
use tn_agent::pki::Ca;

use crate::kube_api::{node_cert, KubeApi};
use crate::reboot::{reboot_mark, Watch};
use crate::{Instance, Node, World};

/// The Kubernetes name of a world node: its IMDS hostname ([`crate::ImdsData::new`]), as the
/// kubelet registers it.
pub fn node_name(node: &Node) -> String {
    format!("ip-{}.ec2.internal", node.ip.to_string().replace('.', "-"))
}

/// A master or worker for `instance`: config of `role` pointing at `api` with a `[reboot]`
/// whose command leaves [`reboot_mark`] and that looks every second (plus `reboot_extra` lines
/// in that table), the kubelet's kubeconfig and client certificate (signed by `ca`, the
/// cluster CA the fake trusts), a first boot id, and its Node, Ready, in the fake.
pub fn kube_node(
    world: &World,
    api: &KubeApi,
    ca: &Ca,
    instance: &Instance,
    role: &str,
    reboot_extra: &str,
) -> Result<Node> {
    let node = world.node(instance, "")?;
    // Masters name the etcd ASG (their bootstrap needs it; the reboot does not).
    let etcd = match role {
        "master" => "[etcd]\nasg = \"etcd\"\n",
        _ => "",
    };
    node.write_config(&world.config(
        role,
        &format!(
            "{etcd}[kubernetes]\nversion = \"v1.31.4\"\napiserver = \"{}\"\n{}{reboot_extra}\n",
            api.url(),
            reboot_table(&node)
        ),
    ))?;
    let name = node_name(&node);
    write_kubelet_credentials(&node, api, ca, &name)?;
    api.add_node(&name, &[])?;
    Ok(node)
}

/// The `[reboot]` table of a world node (to end its config with, more keys may follow): look
/// every second, reboot by leaving [`reboot_mark`].
pub fn reboot_table(node: &Node) -> String {
    format!(
        "[reboot]\ncheck_interval = \"1s\"\ncommand = [\"/bin/sh\", \"-c\", \"touch {}\"]\n",
        reboot_mark(node).display()
    )
}

/// What the kubelet leaves after its TLS bootstrap: `/etc/kubernetes/kubelet.conf` naming the
/// CA file and `/var/lib/kubelet/pki/kubelet-client-current.pem` (certificate and key in one
/// file), paths under the node's root as every path a node's files carry.
pub fn write_kubelet_credentials(node: &Node, api: &KubeApi, ca: &Ca, name: &str) -> Result<()> {
    let leaf = node_cert(ca, name)?;
    let pem = node.path("/var/lib/kubelet/pki/kubelet-client-current.pem");
    let ca_file = node.path("/etc/kubernetes/pki/ca.crt");
    for (path, body) in [
        (&pem, format!("{}{}", leaf.cert_pem, leaf.key_pem)),
        (&ca_file, api.ca_pem().to_string()),
    ] {
        std::fs::create_dir_all(path.parent().expect("a parent"))?;
        std::fs::write(path, body)?;
    }
    let config = Kubeconfig {
        api_version: "v1".into(),
        kind: "Config".into(),
        clusters: vec![NamedCluster {
            name: "default-cluster".into(),
            cluster: Cluster {
                server: api.url(),
                certificate_authority_data: None,
                certificate_authority: Some(ca_file.display().to_string()),
            },
        }],
        users: vec![NamedUser {
            name: "default-auth".into(),
            user: User {
                client_certificate: Some(pem.display().to_string()),
                client_key: Some(pem.display().to_string()),
                ..User::default()
            },
        }],
        contexts: vec![NamedContext {
            name: "default-context".into(),
            context: KubeContext {
                cluster: "default-cluster".into(),
                user: "default-auth".into(),
            },
        }],
        current_context: "default-context".into(),
        preferences: Preferences::default(),
    };
    let path = node.path("/etc/kubernetes/kubelet.conf");
    std::fs::create_dir_all(path.parent().expect("a parent"))?;
    std::fs::write(path, config.to_yaml())?;
    Ok(())
}

/// Asks for a reboot, as update_engine's postinstall would.
pub fn request_reboot(node: &Node) -> Result<()> {
    let run = node.run(&["reboot", "request"])?;
    ensure!(run.code == 0, "reboot request: {}", run.stderr);
    Ok(())
}

/// What a reboot does to a node whose watch ran the reboot command: the watch has exited, the
/// kubelet stops (NotReady), a new boot id, /run emptied, the kubelet starts again (Ready). The
/// caller restarts the watch, as systemd would.
pub fn simulate_kube_reboot(node: &Node, api: &KubeApi, watch: &mut Watch) -> Result<()> {
    let name = node_name(node);
    for _ in 0..100 {
        if watch.exited()?.is_some() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    ensure!(
        watch.exited()? == Some(true),
        "the watch did not exit 0 after its reboot command:\n{}",
        watch.log()
    );
    api.set_ready(&name, false)?;
    std::fs::remove_file(reboot_mark(node)).context("the reboot mark")?;
    let _ = std::fs::remove_file(node.path("/run/reboot-required"));
    node.new_boot()?;
    api.set_ready(&name, true)?;
    Ok(())
}
