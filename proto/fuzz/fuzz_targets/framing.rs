//! Any bytes split at any point: the framer never panics, never yields a
//! message larger than its bound, and gives the same items for both splits.
#![no_main]

use kadsip_proto::framing::{Framed, Framer};
use libfuzzer_sys::fuzz_target;

fn run(pieces: &[&[u8]]) -> (Vec<Framed>, bool) {
    let mut f = Framer::new(4096);
    let mut out = Vec::new();
    for p in pieces {
        f.push(p);
        loop {
            match f.decode() {
                Ok(Some(item)) => out.push(item),
                Ok(None) => break,
                Err(_) => return (out, true),
            }
        }
    }
    (out, false)
}

fuzz_target!(|data: &[u8]| {
    if data.is_empty() {
        return;
    }
    let cut = data[0] as usize % data.len();
    let body = &data[1..];
    let cut = cut.min(body.len());
    let (whole, whole_err) = run(&[body]);
    let (split, split_err) = run(&[&body[..cut], &body[cut..]]);
    if !whole_err && !split_err {
        assert_eq!(whole, split);
    }
});
