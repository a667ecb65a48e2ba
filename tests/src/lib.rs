//! kadsip-tests support.
