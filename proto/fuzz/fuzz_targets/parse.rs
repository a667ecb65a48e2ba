//! Any bytes: parse never panics, and whatever parses round-trips.
#![no_main]

use kadsip_proto::Message;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(m) = Message::parse(data.to_vec()) {
        let _ = m.check();
        let _ = m.headers().via();
        let _ = m.headers().contacts();
        let _ = m.headers().warnings();
        let again = Message::parse(m.to_bytes()).expect("serialized message reparses");
        assert_eq!(again, m);
    }
});
