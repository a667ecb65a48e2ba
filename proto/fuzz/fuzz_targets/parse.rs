//! Any bytes: parse (strict, and as the node receives) never panics, and
//! whatever parses round-trips.
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
    // What the node runs on every datagram: values it does not check on
    // receipt reach the typed accessors unchecked, which must not panic.
    if let Ok(m) = Message::parse_received(data.to_vec()) {
        let h = m.headers();
        let _ = (
            h.to(),
            h.from(),
            h.contacts(),
            h.expires(),
            h.content_type(),
        );
        if let Some(r) = m.as_request() {
            let _ = r.check();
        }
        let again = Message::parse_received(m.to_bytes()).expect("serialized message reparses");
        assert_eq!(again, m);
    }
});
