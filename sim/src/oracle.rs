//! The ground truth: what the right answer to a call is at the moment it is
//! placed, from what the simulator knows about every user and node.

/// What the simulator knows about one user.
#[derive(Debug, Clone)]
pub struct UserTruth {
    /// Home node.
    pub node: usize,
    /// User part of the AOR.
    pub name: String,
    /// A REGISTER for this AOR was ever answered 200 (the AOR is known).
    pub known: bool,
    /// Registered (200, Expires > 0) with the home node's current incarnation
    /// and not unregistered since.
    pub registered: bool,
}

/// The answer a correct overlay gives.
pub fn expected(user: Option<&UserTruth>, node_alive: bool) -> u16 {
    match user {
        None => 404,
        Some(u) if !u.known => 404,
        Some(u) if u.registered && node_alive => 200,
        Some(_) => 480,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn truth_table() {
        let mut u = UserTruth {
            node: 0,
            name: "a".into(),
            known: false,
            registered: false,
        };
        assert_eq!(expected(None, true), 404);
        assert_eq!(expected(Some(&u), true), 404);
        u.known = true;
        assert_eq!(expected(Some(&u), true), 480, "unregistered");
        u.registered = true;
        assert_eq!(expected(Some(&u), true), 200);
        assert_eq!(expected(Some(&u), false), 480, "node down");
    }
}
