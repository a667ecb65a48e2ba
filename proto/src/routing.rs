//! The overlay outcome → SIP answer table of DESIGN.md, in one place. RFC
//! 7904 leaves it open; kadsip answers 404 / 480 / 408 / 503 from what the
//! lookup found and says why in `Warning: 399 <node> "<reason>"`.

use crate::status::StatusCode;
use crate::warning::{WarnCode, Warning};

/// What the overlay found for a request's target.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Live binding(s) on other nodes: forward over the overlay.
    Found,
    /// Registered on this node: deliver directly.
    Local,
    /// The lookup completed and no record exists.
    NotFound,
    /// A record exists but has no unexpired contact.
    Offline,
    /// The record's node could not be reached.
    Unreachable,
    /// The lookup did not complete within its deadline.
    LookupTimedOut,
    /// Forwarded, but no final response before Timer B/C/F.
    NoFinalResponse,
    /// The node has no overlay peers.
    NoPeers,
    /// The overlay link to the callee's node is full (RFC 3261 §21.5.4).
    Congested,
}

/// A locally generated failure: status, the overlay's reason, Retry-After.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    /// The status to answer with.
    pub status: StatusCode,
    /// The reason in words, for the Warning header.
    pub reason: &'static str,
    /// Retry-After seconds, when known.
    pub retry_after: Option<u32>,
}

impl Outcome {
    /// `None` when the request is forwarded or delivered; else the answer.
    pub fn failure(self) -> Option<Failure> {
        let f = |status, reason, retry_after| {
            Some(Failure {
                status,
                reason,
                retry_after,
            })
        };
        match self {
            Outcome::Found | Outcome::Local => None,
            Outcome::NotFound => f(
                StatusCode::NOT_FOUND,
                "no record for this AOR in the overlay",
                None,
            ),
            Outcome::Offline => f(
                StatusCode::TEMPORARILY_UNAVAILABLE,
                "AOR known to the overlay but has no live contact",
                Some(60),
            ),
            Outcome::Unreachable => f(
                StatusCode::TEMPORARILY_UNAVAILABLE,
                "the callee's node is unreachable",
                Some(30),
            ),
            Outcome::LookupTimedOut => f(
                StatusCode::REQUEST_TIMEOUT,
                "overlay lookup timed out",
                None,
            ),
            Outcome::NoFinalResponse => f(
                StatusCode::REQUEST_TIMEOUT,
                "no final response from the callee before the timer expired",
                None,
            ),
            Outcome::NoPeers => f(
                StatusCode::SERVICE_UNAVAILABLE,
                "this node has no overlay peers",
                Some(30),
            ),
            Outcome::Congested => f(
                StatusCode::SERVICE_UNAVAILABLE,
                "the overlay link to the callee's node is congested",
                Some(1),
            ),
        }
    }
}

impl Failure {
    /// The Warning value naming `agent` (this node).
    pub fn warning(&self, agent: &str) -> Warning {
        Warning::new(WarnCode::MISCELLANEOUS_WARNING, agent, self.reason)
    }
}

/// §16.7 best response among the final responses of all branches: any 6xx,
/// else the lowest class (3xx before 4xx before 5xx), preferring within 4xx
/// the codes a UAC can act on (401, 407, 415, 420, 484).
pub fn best_response(codes: &[u16]) -> Option<usize> {
    let rank = |c: u16| -> (u8, u8, u16) {
        let class = match c / 100 {
            6 => 0,
            3 => 1,
            4 => 2,
            5 => 3,
            _ => 4,
        };
        let actionable = u8::from(!matches!(c, 401 | 407 | 415 | 420 | 484));
        // 503 is converted to 500 upstream (§16.7 step 6), rank it last.
        let unavailable = u8::from(c == 503);
        (class, actionable + unavailable, c)
    };
    codes
        .iter()
        .enumerate()
        .min_by_key(|(_, c)| rank(**c))
        .map(|(i, _)| i)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table() {
        assert_eq!(Outcome::Found.failure(), None);
        assert_eq!(Outcome::Local.failure(), None);
        assert_eq!(Outcome::NotFound.failure().unwrap().status.as_u16(), 404);
        assert_eq!(Outcome::Offline.failure().unwrap().status.as_u16(), 480);
        assert_eq!(Outcome::Unreachable.failure().unwrap().status.as_u16(), 480);
        assert_eq!(
            Outcome::LookupTimedOut.failure().unwrap().status.as_u16(),
            408
        );
        assert_eq!(
            Outcome::NoFinalResponse.failure().unwrap().status.as_u16(),
            408
        );
        let c = Outcome::Congested.failure().unwrap();
        assert_eq!((c.status.as_u16(), c.retry_after), (503, Some(1)));
        let p = Outcome::NoPeers.failure().unwrap();
        assert_eq!((p.status.as_u16(), p.retry_after), (503, Some(30)));
        assert_eq!(
            p.warning("12D3KooWx").to_string(),
            "399 12D3KooWx \"this node has no overlay peers\""
        );
    }

    #[test]
    fn best() {
        assert_eq!(best_response(&[486, 603, 404]), Some(1));
        assert_eq!(best_response(&[500, 404]), Some(1));
        assert_eq!(best_response(&[404, 401]), Some(1));
        assert_eq!(best_response(&[503, 500]), Some(1));
        assert_eq!(best_response(&[302, 404]), Some(0));
        assert_eq!(best_response(&[]), None);
    }
}
