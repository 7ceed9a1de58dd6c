//! The nemesis: a seeded schedule of faults, applied to a [`Cluster`] while
//! workloads run.
//!
//! ```text
//!   t=0 ── quiet ──┬─ fault ─┬── quiet ──┬─ fault ──┬── … ── total
//!                  kill 2    restart 2   partition  heal
//!                            (waits until ready)
//! ```
//!
//! One fault at a time, each healed before the next quiet gap, so every
//! step's effect is attributable. The schedule is a pure function of the seed
//! and the node count ([`Nemesis::generate`]); only its timing on a real
//! machine varies between replays.

use std::fmt;
use std::ops::Range;
use std::time::Duration;

use anyhow::{ensure, Result};
use rand::seq::SliceRandom;
use rand::Rng;
use tokio::time::Instant;

use crate::cluster::{Cluster, NodeId};
use crate::seed::Seed;

/// The kinds of fault a schedule may draw from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FaultKind {
    /// SIGKILL a node, restart it afterwards.
    Kill,
    /// SIGSTOP a node, SIGCONT it afterwards.
    Pause,
    /// Split the nodes into two random non-empty sides.
    Partition,
    /// Cut one node off from all others.
    Isolate,
    /// Drop one node's messages to another, not the replies' direction.
    OneWay,
    /// Delay every message between two nodes.
    Delay,
    /// SIGKILL whichever node leads the data group when the fault starts.
    KillLeader,
    /// SIGSTOP the data group's leader (past the election timeout if the
    /// fault lasts long enough), SIGCONT it afterwards.
    PauseLeader,
    /// Cut the data group's leader off from all others.
    IsolateLeader,
    /// Restart every node in turn (SIGKILL, start, wait until ready).
    RollingRestart,
}

impl FaultKind {
    /// Network faults need a second node.
    fn min_nodes(self) -> usize {
        match self {
            FaultKind::Kill | FaultKind::Pause | FaultKind::RollingRestart => 1,
            _ => 2,
        }
    }
}

/// One concrete fault.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Fault {
    Kill(NodeId),
    Pause(NodeId),
    Partition(Vec<NodeId>, Vec<NodeId>),
    Isolate(NodeId),
    OneWay {
        from: NodeId,
        to: NodeId,
    },
    Delay {
        a: NodeId,
        b: NodeId,
        delay: Duration,
    },
    /// Resolved to the current data-group leader when applied.
    KillLeader,
    PauseLeader,
    IsolateLeader,
    RollingRestart,
}

impl fmt::Display for Fault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Fault::Kill(n) => write!(f, "SIGKILL node {n}"),
            Fault::Pause(n) => write!(f, "SIGSTOP node {n}"),
            Fault::Partition(a, b) => write!(f, "partition {a:?} | {b:?}"),
            Fault::Isolate(n) => write!(f, "isolate node {n}"),
            Fault::OneWay { from, to } => write!(f, "drop messages {from}→{to}"),
            Fault::Delay { a, b, delay } => write!(f, "delay {a}↔{b} by {delay:?}"),
            Fault::KillLeader => write!(f, "SIGKILL the leader"),
            Fault::PauseLeader => write!(f, "SIGSTOP the leader"),
            Fault::IsolateLeader => write!(f, "isolate the leader"),
            Fault::RollingRestart => write!(f, "rolling restart of every node"),
        }
    }
}

/// A fault, when it starts (from the start of the schedule) and how long it lasts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Step {
    pub at: Duration,
    pub fault: Fault,
    pub lasts: Duration,
}

/// What a schedule may contain.
#[derive(Clone, Debug)]
pub struct NemesisConfig {
    pub kinds: Vec<FaultKind>,
    /// Quiet time before each fault.
    pub quiet: Range<Duration>,
    /// How long each fault lasts.
    pub fault: Range<Duration>,
    /// No fault starts after this, and each is cut to end by it.
    pub total: Duration,
    /// The range `Delay` faults draw from.
    pub delay: Range<Duration>,
}

impl Default for NemesisConfig {
    fn default() -> Self {
        NemesisConfig {
            kinds: vec![FaultKind::Kill, FaultKind::Pause, FaultKind::Partition, FaultKind::Isolate],
            quiet: Duration::from_millis(500)..Duration::from_secs(2),
            fault: Duration::from_millis(200)..Duration::from_secs(2),
            total: Duration::from_secs(10),
            delay: Duration::from_millis(10)..Duration::from_millis(200),
        }
    }
}

/// A fault schedule.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Nemesis {
    pub steps: Vec<Step>,
}

impl Nemesis {
    /// Draws a schedule for a cluster of `nodes` from `seed`. Kinds that need
    /// more nodes than there are are left out; none left is an error.
    pub fn generate(seed: Seed, nodes: usize, config: &NemesisConfig) -> Result<Nemesis> {
        let kinds: Vec<FaultKind> = config.kinds.iter().copied().filter(|k| k.min_nodes() <= nodes).collect();
        ensure!(!kinds.is_empty(), "none of the fault kinds {:?} applies to {nodes} node(s)", config.kinds);
        ensure!(
            !config.quiet.is_empty() && !config.fault.is_empty() && !config.delay.is_empty(),
            "nemesis ranges must not be empty"
        );
        let mut rng = seed.rng();
        let mut steps = Vec::new();
        let mut t = Duration::ZERO;
        loop {
            t += rng.gen_range(config.quiet.clone());
            if t >= config.total {
                break;
            }
            let lasts = rng.gen_range(config.fault.clone()).min(config.total - t);
            let node = rng.gen_range(1..=nodes);
            let fault = match kinds[rng.gen_range(0..kinds.len())] {
                FaultKind::Kill => Fault::Kill(node),
                FaultKind::Pause => Fault::Pause(node),
                FaultKind::Isolate => Fault::Isolate(node),
                FaultKind::KillLeader => Fault::KillLeader,
                FaultKind::PauseLeader => Fault::PauseLeader,
                FaultKind::IsolateLeader => Fault::IsolateLeader,
                FaultKind::RollingRestart => Fault::RollingRestart,
                FaultKind::Partition => {
                    let mut all: Vec<NodeId> = (1..=nodes).collect();
                    all.shuffle(&mut rng);
                    let cut = rng.gen_range(1..nodes);
                    let (mut a, mut b) = (all[..cut].to_vec(), all[cut..].to_vec());
                    a.sort_unstable();
                    b.sort_unstable();
                    Fault::Partition(a, b)
                }
                kind @ (FaultKind::OneWay | FaultKind::Delay) => {
                    let other = (node + rng.gen_range(0..nodes - 1)) % nodes + 1;
                    if kind == FaultKind::OneWay {
                        Fault::OneWay { from: node, to: other }
                    } else {
                        Fault::Delay { a: node, b: other, delay: rng.gen_range(config.delay.clone()) }
                    }
                }
            };
            steps.push(Step { at: t, fault, lasts });
            t += lasts;
        }
        Ok(Nemesis { steps })
    }

    /// Applies the schedule to `cluster`, starting now: each fault at its
    /// time, healed after it lasted (a killed node is restarted and waited
    /// for). Prints each step to stderr with its time.
    pub async fn run(&self, cluster: &mut Cluster) -> Result<()> {
        let start = Instant::now();
        for step in &self.steps {
            tokio::time::sleep_until(start + step.at).await;
            eprintln!("nemesis {:>7.3}s: {} for {:?}", start.elapsed().as_secs_f64(), step.fault, step.lasts);
            let applied = apply(cluster, &step.fault).await?;
            if applied != step.fault {
                eprintln!("nemesis {:>7.3}s: that is {applied}", start.elapsed().as_secs_f64());
            }
            tokio::time::sleep(step.lasts).await;
            heal(cluster, &applied).await?;
            eprintln!("nemesis {:>7.3}s: healed ({})", start.elapsed().as_secs_f64(), step.fault);
        }
        Ok(())
    }
}

/// Applies `fault`; returns it as applied (leader faults name the node).
async fn apply(cluster: &mut Cluster, fault: &Fault) -> Result<Fault> {
    let resolved = match fault {
        Fault::KillLeader => Fault::Kill(cluster.data_leader().await?),
        Fault::PauseLeader => Fault::Pause(cluster.data_leader().await?),
        Fault::IsolateLeader => Fault::Isolate(cluster.data_leader().await?),
        Fault::RollingRestart => {
            for node in 1..=cluster.len() {
                cluster.restart(node).await?;
            }
            return Ok(Fault::RollingRestart);
        }
        other => other.clone(),
    };
    apply_concrete(cluster, &resolved)?;
    Ok(resolved)
}

fn apply_concrete(cluster: &mut Cluster, fault: &Fault) -> Result<()> {
    match fault {
        Fault::Kill(n) => cluster.kill9(*n),
        Fault::Pause(n) => cluster.pause(*n),
        Fault::Partition(a, b) => cluster.partition(a, b),
        Fault::Isolate(n) => cluster.isolate(*n),
        Fault::OneWay { from, to } => cluster.one_way(*from, *to),
        Fault::Delay { a, b, delay } => cluster.delay_link(*a, *b, *delay),
        // Resolved by `apply` before they get here.
        Fault::KillLeader | Fault::PauseLeader | Fault::IsolateLeader | Fault::RollingRestart => Ok(()),
    }
}

async fn heal(cluster: &mut Cluster, fault: &Fault) -> Result<()> {
    match fault {
        Fault::Kill(n) => cluster.restart(*n).await,
        Fault::Pause(n) => cluster.resume(*n),
        _ => {
            cluster.heal();
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all_kinds() -> NemesisConfig {
        NemesisConfig {
            kinds: vec![
                FaultKind::Kill,
                FaultKind::Pause,
                FaultKind::Partition,
                FaultKind::Isolate,
                FaultKind::OneWay,
                FaultKind::Delay,
            ],
            total: Duration::from_secs(60),
            ..NemesisConfig::default()
        }
    }

    #[test]
    fn the_same_seed_gives_the_same_schedule() {
        let a = Nemesis::generate(Seed::new(5), 3, &all_kinds()).unwrap();
        let b = Nemesis::generate(Seed::new(5), 3, &all_kinds()).unwrap();
        let c = Nemesis::generate(Seed::new(6), 3, &all_kinds()).unwrap();
        assert_eq!(a, b);
        assert_ne!(a, c);
    }

    #[test]
    fn schedules_are_well_formed() {
        let config = all_kinds();
        for seed in 0..50 {
            let nemesis = Nemesis::generate(Seed::new(seed), 3, &config).unwrap();
            assert!(!nemesis.steps.is_empty());
            let mut end = Duration::ZERO;
            for step in &nemesis.steps {
                assert!(step.at >= end + config.quiet.start, "faults do not overlap: {nemesis:?}");
                end = step.at + step.lasts;
                assert!(end <= config.total);
                let in_range = |n: &NodeId| (1..=3).contains(n);
                match &step.fault {
                    Fault::Kill(n) | Fault::Pause(n) | Fault::Isolate(n) => assert!(in_range(n)),
                    Fault::Partition(a, b) => {
                        assert!(!a.is_empty() && !b.is_empty());
                        let mut all: Vec<_> = a.iter().chain(b).copied().collect();
                        all.sort_unstable();
                        assert_eq!(all, vec![1, 2, 3]);
                    }
                    Fault::OneWay { from: x, to: y } | Fault::Delay { a: x, b: y, .. } => {
                        assert!(in_range(x) && in_range(y) && x != y, "{step:?}")
                    }
                    Fault::KillLeader | Fault::PauseLeader | Fault::IsolateLeader | Fault::RollingRestart => {}
                }
            }
        }
    }

    #[test]
    fn network_faults_are_left_out_of_single_node_schedules() {
        let nemesis = Nemesis::generate(Seed::new(1), 1, &all_kinds()).unwrap();
        assert!(nemesis.steps.iter().all(|s| matches!(s.fault, Fault::Kill(1) | Fault::Pause(1))), "{nemesis:?}");
        let network_only = NemesisConfig { kinds: vec![FaultKind::Partition], ..all_kinds() };
        assert!(Nemesis::generate(Seed::new(1), 1, &network_only).is_err());
    }
}
