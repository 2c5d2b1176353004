//! What a drain does with each pod on the node (SPEC §9, step 3): pure, so that the rules read in
//! one place. Evicted through the Eviction API, never deleted: a pod whose PodDisruptionBudget
//! refuses stays until the budget allows it or the drain gives up.

use crate::kube::client::PodView;

/// The pods of a node sorted by what the drain does with them.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct DrainPlan<'a> {
    /// To evict now.
    pub evict: Vec<&'a PodView>,
    /// Being deleted (evicted before, or by someone else): the drain waits until they are gone.
    pub terminating: Vec<&'a PodView>,
    /// Left where they are: DaemonSet pods (their controller ignores `unschedulable` and would
    /// put them back), mirror pods of static pods (the kubelet owns them; the API cannot evict
    /// them), and finished pods (nothing runs).
    pub left: Vec<&'a PodView>,
}

impl DrainPlan<'_> {
    /// Nothing to evict and nothing still terminating: the node is drained.
    pub fn done(&self) -> bool {
        self.evict.is_empty() && self.terminating.is_empty()
    }
}

/// Sorts `pods`. Pods without a controller are evicted too (kubectl would want `--force`): a
/// node must be able to reboot, and the Eviction API still honours their budgets.
pub fn plan(pods: &[PodView]) -> DrainPlan<'_> {
    let mut plan = DrainPlan::default();
    for pod in pods {
        if pod.mirror || pod.controller_kind.as_deref() == Some("DaemonSet") || pod.finished() {
            plan.left.push(pod);
        } else if pod.terminating {
            plan.terminating.push(pod);
        } else {
            plan.evict.push(pod);
        }
    }
    plan
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(name: &str) -> PodView {
        PodView {
            namespace: "default".into(),
            name: name.into(),
            controller_kind: Some("ReplicaSet".into()),
            mirror: false,
            phase: "Running".into(),
            terminating: false,
            ready: true,
            annotations: Default::default(),
        }
    }

    #[test]
    fn daemonsets_mirrors_and_finished_pods_stay_terminating_ones_are_waited_for() {
        let pods = vec![
            pod("web"),
            PodView {
                controller_kind: Some("DaemonSet".into()),
                ..pod("ds")
            },
            PodView {
                mirror: true,
                controller_kind: Some("Node".into()),
                ..pod("mirror")
            },
            PodView {
                phase: "Succeeded".into(),
                ..pod("job")
            },
            PodView {
                phase: "Failed".into(),
                ..pod("failed")
            },
            PodView {
                terminating: true,
                ..pod("going")
            },
            PodView {
                controller_kind: None,
                phase: "Pending".into(),
                ..pod("bare")
            },
        ];
        let p = plan(&pods);
        let names = |v: &[&PodView]| v.iter().map(|p| p.name.clone()).collect::<Vec<_>>();
        assert_eq!(names(&p.evict), ["web", "bare"]);
        assert_eq!(names(&p.terminating), ["going"]);
        assert_eq!(names(&p.left), ["ds", "mirror", "job", "failed"]);
        assert!(!p.done());
        assert!(plan(&pods[1..5]).done());
    }
}
