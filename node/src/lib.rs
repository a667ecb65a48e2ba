//! kadsip-node library.
