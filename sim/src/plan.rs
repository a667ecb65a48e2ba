//! The workload and churn plans, drawn from the seed alone before the run
//! starts: the same seed gives the same calls at the same offsets and the
//! same nodes leaving and joining.

use crate::config::Scenario;
use crate::rng::Rng;
use std::time::Duration;

/// Who a planned call is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// A simulated user (by index).
    User(usize),
    /// One of the users who unregistered (by index into that set).
    Offline(usize),
    /// An AOR nobody ever registered.
    Ghost(u32),
}

/// One planned call or MESSAGE.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PlannedCall {
    /// Offset from the start of the workload.
    pub at: Duration,
    /// The calling user (moved to a live node's user at run time if its node is down).
    pub caller: usize,
    /// The callee.
    pub target: Target,
    /// MESSAGE instead of INVITE.
    pub message: bool,
}

/// A node leaving or joining.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ChurnEvent {
    /// Offset from the start of the workload.
    pub at: Duration,
    /// The node.
    pub node: usize,
    /// True: it joins again; false: it leaves.
    pub join: bool,
}

/// Everything decided by the seed.
#[derive(Debug, Clone)]
pub struct Plan {
    /// Users who unregister before the workload (indices).
    pub offline: Vec<usize>,
    /// Calls in time order.
    pub calls: Vec<PlannedCall>,
    /// Churn events in time order.
    pub churn: Vec<ChurnEvent>,
}

impl Plan {
    /// Draws the plan for `s`.
    pub fn new(s: &Scenario) -> Plan {
        let users = s.nodes * s.users_per_node;
        let mut rng = Rng::fork(s.seed, 1);
        let mut offline: Vec<usize> = (0..users).filter(|_| rng.chance(s.offline_users)).collect();
        if users > 1 && offline.len() == users {
            offline.pop();
        }
        let online: Vec<usize> = (0..users).filter(|u| !offline.contains(u)).collect();

        let mut rng = Rng::fork(s.seed, 2);
        let mut calls = Vec::new();
        let mut t = 0.0;
        let end = s.duration.0.as_secs_f64();
        while s.call_rate > 0.0 && !online.is_empty() {
            t += -rng.unit().ln() / s.call_rate;
            if t >= end {
                break;
            }
            let caller = rng.below(users);
            let r = rng.unit();
            let target = if r <= s.unknown_fraction {
                Target::Ghost(rng.next_u64() as u32)
            } else if r <= s.unknown_fraction + s.offline_fraction && !offline.is_empty() {
                Target::Offline(rng.below(offline.len()))
            } else {
                Target::User(online[rng.below(online.len())])
            };
            let message = rng.chance(s.message_fraction);
            calls.push(PlannedCall {
                at: Duration::from_secs_f64(t),
                caller,
                target,
                message,
            });
        }

        let mut churn = Vec::new();
        if let Some((session, down)) = s.churn() {
            // Node 0 is the stable bootstrap node; every other node churns.
            for node in 1..s.nodes {
                let mut rng = Rng::fork(s.seed, 1000 + node as u64);
                // Start each node part-way into a session (stationary churn).
                let mut t = session.sample(&mut rng).mul_f64(rng.unit());
                let mut join = false;
                while t < s.duration.0 {
                    churn.push(ChurnEvent { at: t, node, join });
                    t += if join {
                        session.sample(&mut rng)
                    } else {
                        down.sample(&mut rng)
                    };
                    join = !join;
                }
            }
            churn.sort_by(|a, b| a.at.cmp(&b.at).then(a.node.cmp(&b.node)));
        }
        Plan {
            offline,
            calls,
            churn,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Dur;

    fn scenario(seed: u64) -> Scenario {
        Scenario {
            seed,
            nodes: 50,
            churn_median_session: Some(Dur(Duration::from_secs(10))),
            ..Scenario::default()
        }
    }

    #[test]
    fn the_seed_fixes_the_plan() {
        let (a, b, c) = (
            Plan::new(&scenario(5)),
            Plan::new(&scenario(5)),
            Plan::new(&scenario(6)),
        );
        assert_eq!(a.calls, b.calls);
        assert_eq!(a.churn, b.churn);
        assert_eq!(a.offline, b.offline);
        assert_ne!(a.calls, c.calls);
        assert!(!a.churn.is_empty());
        assert!(a.churn.iter().all(|e| e.node != 0));
    }

    #[test]
    fn the_rate_and_mix_are_respected() {
        let s = Scenario {
            duration: Dur(Duration::from_secs(400)),
            call_rate: 10.0,
            unknown_fraction: 0.1,
            ..Scenario::default()
        };
        let p = Plan::new(&s);
        let n = p.calls.len() as f64;
        assert!((3600.0..4400.0).contains(&n), "{n} calls");
        let ghosts = p
            .calls
            .iter()
            .filter(|c| matches!(c.target, Target::Ghost(_)))
            .count() as f64;
        assert!((0.07..0.13).contains(&(ghosts / n)), "{ghosts}");
        assert!(p.calls.windows(2).all(|w| w[0].at <= w[1].at));
    }
}
