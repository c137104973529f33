//! Readiness: whether every node can do its work now.
//!
//! Nodes that depend on something outside the process (a Kafka broker)
//! hold a [`ReadyFlag`] and set it from what their client reports; the rest
//! are ready from the start. `/ready` on the metrics listener and the
//! `sigfab_ready` gauge read the [`Readiness`] of the run. A transition is
//! logged once, when it happens, so an outage reads as two lines (down, back)
//! rather than one per retry.

use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::sync::{Arc, Mutex};

/// Why a node is not ready, or that it is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum NodeState {
    /// Started, has not reached its dependency yet.
    Starting = 0,
    Ready = 1,
    /// Its dependency went away; the client retries with backoff.
    Unreachable = 2,
    /// Brokers reachable, but the consumer group is not (re)joined yet.
    Joining = 3,
    /// A record failed in a sink and holds its partition's commit: nothing
    /// past it commits until a restart reads it again.
    Blocked = 4,
}

impl NodeState {
    fn from_u8(value: u8) -> NodeState {
        match value {
            1 => NodeState::Ready,
            2 => NodeState::Unreachable,
            3 => NodeState::Joining,
            4 => NodeState::Blocked,
            _ => NodeState::Starting,
        }
    }

    pub fn describe(self) -> &'static str {
        match self {
            NodeState::Starting => "starting: waiting for its brokers",
            NodeState::Ready => "ready",
            NodeState::Unreachable => "brokers unreachable; retrying with backoff",
            NodeState::Joining => "joining its consumer group",
            NodeState::Blocked => {
                "a record failed in a sink and holds its partition's commit; restart to read it again"
            }
        }
    }
}

/// One node's state, shared between the node's client callbacks and the
/// readiness check.
#[derive(Debug)]
pub struct ReadyFlag {
    node: Arc<str>,
    state: AtomicU8,
}

impl ReadyFlag {
    pub fn new(node: &str) -> Arc<ReadyFlag> {
        Arc::new(ReadyFlag {
            node: Arc::from(node),
            state: AtomicU8::new(NodeState::Starting as u8),
        })
    }

    pub fn node(&self) -> &str {
        &self.node
    }

    pub fn state(&self) -> NodeState {
        NodeState::from_u8(self.state.load(Ordering::Acquire))
    }

    /// Records the node's state; logs only when it changes.
    pub fn set(&self, state: NodeState) {
        let before = NodeState::from_u8(self.state.swap(state as u8, Ordering::AcqRel));
        if before == state {
            return;
        }
        match (before, state) {
            (NodeState::Blocked, NodeState::Ready) => {
                tracing::info!(node = %self.node, "ready: no failed record holds a commit any more")
            }
            (_, NodeState::Ready) => tracing::info!(node = %self.node, "ready: brokers reachable"),
            (_, NodeState::Unreachable) => tracing::warn!(
                node = %self.node,
                "not ready: kafka brokers unreachable; retrying with backoff"
            ),
            (_, NodeState::Joining) => {
                tracing::info!(node = %self.node, "not ready: joining the consumer group")
            }
            (_, NodeState::Blocked) => tracing::error!(
                node = %self.node,
                "not ready: a record failed in a sink and holds its partition's commit; restart to read it again"
            ),
            (_, NodeState::Starting) => {}
        }
    }
}

/// The readiness of one run: every registered flag, and whether the run is
/// draining (a draining engine takes no new work, so it is not ready).
#[derive(Debug, Default)]
pub struct Readiness {
    // Registration happens while the plan is built; reads at every scrape.
    flags: Mutex<Vec<Arc<ReadyFlag>>>,
    draining: AtomicBool,
}

impl Readiness {
    /// A new flag for `node`, counted in the run's readiness.
    pub fn register(&self, node: &str) -> Arc<ReadyFlag> {
        let flag = ReadyFlag::new(node);
        self.flags
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .push(flag.clone());
        flag
    }

    /// A new flag that starts ready (for a condition that is fine until
    /// something goes wrong).
    pub fn register_ready(&self, node: &str) -> Arc<ReadyFlag> {
        let flag = self.register(node);
        flag.state.store(NodeState::Ready as u8, Ordering::Release);
        flag
    }

    /// Makes sure `node` has a flag: one that starts ready when the node
    /// registered none (it depends on nothing outside the process), so every
    /// node shows in `sigfab_node_ready`.
    pub fn cover(&self, node: &str) {
        let known = self
            .flags
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .iter()
            .any(|f| &*f.node == node);
        if !known {
            self.register_ready(node);
        }
    }

    pub fn set_draining(&self) {
        self.draining.store(true, Ordering::Release);
    }

    /// (node, state) of every registered flag.
    pub fn states(&self) -> Vec<(Arc<str>, NodeState)> {
        self.flags
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .iter()
            .map(|f| (f.node.clone(), f.state()))
            .collect()
    }

    /// Ready when not draining and every flag is ready; otherwise the
    /// reasons, one per line.
    pub fn check(&self) -> Result<(), Vec<String>> {
        let mut reasons: Vec<String> = self
            .states()
            .into_iter()
            .filter(|(_, state)| *state != NodeState::Ready)
            .map(|(node, state)| format!("node '{node}': {}", state.describe()))
            .collect();
        if self.draining.load(Ordering::Acquire) {
            reasons.push("draining: the engine is stopping".to_string());
        }
        if reasons.is_empty() {
            Ok(())
        } else {
            Err(reasons)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ready_only_when_every_flag_is_ready_and_not_draining() {
        let readiness = Readiness::default();
        assert_eq!(readiness.check(), Ok(()), "nothing registered: ready");
        let source = readiness.register("in");
        let sink = readiness.register("out");
        let reasons = readiness.check().unwrap_err();
        assert_eq!(reasons.len(), 2);
        assert!(reasons[0].contains("'in'") && reasons[0].contains("starting"));
        source.set(NodeState::Ready);
        sink.set(NodeState::Ready);
        assert_eq!(readiness.check(), Ok(()));
        sink.set(NodeState::Unreachable);
        let reasons = readiness.check().unwrap_err();
        assert_eq!(
            reasons,
            vec!["node 'out': brokers unreachable; retrying with backoff".to_string()]
        );
        sink.set(NodeState::Ready);
        let commits = readiness.register_ready("in.commits");
        assert_eq!(
            readiness.check(),
            Ok(()),
            "a flag registered ready counts as ready"
        );
        commits.set(NodeState::Blocked);
        assert!(readiness.check().unwrap_err()[0].contains("holds its partition's commit"));
        commits.set(NodeState::Ready);
        readiness.set_draining();
        assert_eq!(
            readiness.check().unwrap_err(),
            vec!["draining: the engine is stopping".to_string()]
        );
    }
}
