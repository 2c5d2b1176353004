//! A node's last bootstrap as the tests ask about it: its decisions, from `state.json` read as
//! tn-agent's own `BootState` (`Node::state`).

use tn_world::Node;

/// What the node's last bootstrap decided, in order (each decision's `what`).
pub fn decisions(node: &Node) -> Vec<String> {
    node.state()
        .unwrap()
        .decisions
        .into_iter()
        .map(|d| d.what)
        .collect()
}

/// Why the node's last bootstrap decided `what` (its first such decision); panics when it did
/// not.
pub fn why(node: &Node, what: &str) -> String {
    let state = node.state().unwrap();
    let found = state.decisions.into_iter().find(|d| d.what == what);
    found
        .unwrap_or_else(|| panic!("{} did not decide {what:?}", node.id))
        .why
}
