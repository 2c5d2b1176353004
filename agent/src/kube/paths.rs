//! Where the Kubernetes files are on a node (SPEC §6), as on a real node: taken under `--root`
//! when written, and written root-prefixed into the files that refer to them.

/// Certificates and keys of the control plane and the kubelet.
pub const PKI_DIR: &str = "/etc/kubernetes/pki";
/// Static pod manifests the kubelet runs (masters).
pub const MANIFESTS_DIR: &str = "/etc/kubernetes/manifests";

/// The cluster CA certificate (every node).
pub const CA_CERT: &str = "/etc/kubernetes/pki/ca.crt";
/// The cluster CA key: on masters only, for the controller-manager's CSR signer.
pub const CA_KEY: &str = "/etc/kubernetes/pki/ca.key";
/// The etcd CA certificate, to verify etcd's serving certificates (masters).
pub const ETCD_CA_CERT: &str = "/etc/kubernetes/pki/etcd/ca.crt";
/// The front-proxy CA certificate (masters).
pub const FRONT_PROXY_CA_CERT: &str = "/etc/kubernetes/pki/front-proxy-ca.crt";
/// The service-account token signing key and its public half (masters).
pub const SA_KEY: &str = "/etc/kubernetes/pki/sa.key";
pub const SA_PUB: &str = "/etc/kubernetes/pki/sa.pub";

/// The kubelet's configuration file (KubeletConfiguration).
pub const KUBELET_CONFIG: &str = "/var/lib/kubelet/config.yaml";
/// The kubelet unit's `EnvironmentFile=`: its flags.
pub const KUBELET_ENV: &str = "/etc/kubernetes/kubelet.env";
/// The kubelet's kubeconfig: written by the agent on masters, by the kubelet's TLS bootstrap on
/// workers.
pub const KUBELET_KUBECONFIG: &str = "/etc/kubernetes/kubelet.conf";
/// The workers' bootstrap kubeconfig (the bootstrap token).
pub const BOOTSTRAP_KUBECONFIG: &str = "/etc/kubernetes/bootstrap-kubelet.conf";
/// Kubeconfigs of the controller-manager and the scheduler (masters).
pub const CONTROLLER_MANAGER_KUBECONFIG: &str = "/etc/kubernetes/controller-manager.conf";
pub const SCHEDULER_KUBECONFIG: &str = "/etc/kubernetes/scheduler.conf";
/// The bootstrap token's Secret and the TLS bootstrap RBAC, for an operator to apply (masters).
pub const TLS_BOOTSTRAP_ADDON: &str = "/etc/kubernetes/addons/tls-bootstrap.yaml";

/// Static pod manifests.
pub const APISERVER_MANIFEST: &str = "/etc/kubernetes/manifests/kube-apiserver.yaml";
pub const CONTROLLER_MANAGER_MANIFEST: &str =
    "/etc/kubernetes/manifests/kube-controller-manager.yaml";
pub const SCHEDULER_MANIFEST: &str = "/etc/kubernetes/manifests/kube-scheduler.yaml";

/// A leaf certificate and its key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LeafFiles {
    pub cert: &'static str,
    pub key: &'static str,
}

/// The apiserver's serving certificate.
pub const APISERVER: LeafFiles = LeafFiles {
    cert: "/etc/kubernetes/pki/apiserver.crt",
    key: "/etc/kubernetes/pki/apiserver.key",
};
/// The apiserver's client certificate for etcd (signed by the etcd CA).
pub const APISERVER_ETCD_CLIENT: LeafFiles = LeafFiles {
    cert: "/etc/kubernetes/pki/apiserver-etcd-client.crt",
    key: "/etc/kubernetes/pki/apiserver-etcd-client.key",
};
/// The apiserver's client certificate for the kubelets.
pub const APISERVER_KUBELET_CLIENT: LeafFiles = LeafFiles {
    cert: "/etc/kubernetes/pki/apiserver-kubelet-client.crt",
    key: "/etc/kubernetes/pki/apiserver-kubelet-client.key",
};
/// The apiserver's client certificate as the front proxy (signed by the front-proxy CA).
pub const FRONT_PROXY_CLIENT: LeafFiles = LeafFiles {
    cert: "/etc/kubernetes/pki/front-proxy-client.crt",
    key: "/etc/kubernetes/pki/front-proxy-client.key",
};
/// The controller-manager's client certificate (also embedded in its kubeconfig).
pub const CONTROLLER_MANAGER: LeafFiles = LeafFiles {
    cert: "/etc/kubernetes/pki/controller-manager.crt",
    key: "/etc/kubernetes/pki/controller-manager.key",
};
/// The scheduler's client certificate (also embedded in its kubeconfig).
pub const SCHEDULER: LeafFiles = LeafFiles {
    cert: "/etc/kubernetes/pki/scheduler.crt",
    key: "/etc/kubernetes/pki/scheduler.key",
};
/// A master kubelet's first client certificate (also embedded in its kubeconfig); the kubelet
/// rotates it from there.
pub const KUBELET_CLIENT: LeafFiles = LeafFiles {
    cert: "/etc/kubernetes/pki/kubelet-client.crt",
    key: "/etc/kubernetes/pki/kubelet-client.key",
};
