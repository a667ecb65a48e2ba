//! RFC 3261 §25.1 character classes as one 256-entry table, so the hot
//! parsing loops test a byte with one load and one mask.

/// `token` characters.
pub const TOKEN: u16 = 1;
/// `word` characters (Call-ID).
pub const WORD: u16 = 1 << 1;
/// `unreserved`.
pub const UNRESERVED: u16 = 1 << 2;
/// `user` characters (unreserved + user-unreserved).
pub const USER: u16 = 1 << 3;
/// `password` characters.
pub const PASSWORD: u16 = 1 << 4;
/// `paramchar` (without escapes).
pub const PARAM: u16 = 1 << 5;
/// `hnv-unreserved` / header characters (without escapes).
pub const HEADER: u16 = 1 << 6;
/// absoluteURI characters after the scheme.
pub const URIC: u16 = 1 << 7;
/// Scheme characters after the first.
pub const SCHEME: u16 = 1 << 8;
/// Hostname characters (alphanum, `-`, `.`).
pub const HOSTNAME: u16 = 1 << 9;

const fn class_of(b: u8) -> u16 {
    let alnum = b.is_ascii_alphanumeric();
    let mut m = 0;
    let unreserved = alnum
        || matches!(
            b,
            b'-' | b'_' | b'.' | b'!' | b'~' | b'*' | b'\'' | b'(' | b')'
        );
    if alnum
        || matches!(
            b,
            b'-' | b'.' | b'!' | b'%' | b'*' | b'_' | b'+' | b'`' | b'\'' | b'~'
        )
    {
        m |= TOKEN | WORD;
    }
    if matches!(
        b,
        b'(' | b')' | b'<' | b'>' | b':' | b'\\' | b'"' | b'/' | b'[' | b']' | b'?' | b'{' | b'}'
    ) {
        m |= WORD;
    }
    if unreserved {
        m |= UNRESERVED | USER | PASSWORD | PARAM | HEADER | URIC;
    }
    if matches!(b, b'&' | b'=' | b'+' | b'$' | b',' | b';' | b'?' | b'/') {
        m |= USER;
    }
    if matches!(b, b'&' | b'=' | b'+' | b'$' | b',') {
        m |= PASSWORD;
    }
    if matches!(b, b'[' | b']' | b'/' | b':' | b'&' | b'+' | b'$') {
        m |= PARAM;
    }
    if matches!(b, b'[' | b']' | b'/' | b'?' | b':' | b'+' | b'$') {
        m |= HEADER;
    }
    if matches!(
        b,
        b';' | b'/' | b'?' | b':' | b'@' | b'&' | b'=' | b'+' | b'$' | b',' | b'[' | b']'
    ) {
        m |= URIC;
    }
    if alnum || matches!(b, b'+' | b'-' | b'.') {
        m |= SCHEME;
    }
    if alnum || matches!(b, b'-' | b'.') {
        m |= HOSTNAME;
    }
    m
}

static TABLE: [u16; 256] = {
    let mut t = [0u16; 256];
    let mut i = 0;
    while i < 256 {
        t[i] = class_of(i as u8);
        i += 1;
    }
    t
};

/// True when `b` is in any of the classes in `mask`.
#[inline(always)]
pub fn is(b: u8, mask: u16) -> bool {
    TABLE[b as usize] & mask != 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classes() {
        assert!(is(b'a', TOKEN) && is(b'~', TOKEN) && !is(b'@', TOKEN));
        assert!(is(b'{', WORD) && !is(b' ', WORD));
        assert!(is(b';', USER) && !is(b';', PASSWORD) && !is(b'@', USER));
        assert!(is(b':', PARAM) && !is(b'?', PARAM) && is(b'?', HEADER));
        assert!(!is(0x80, TOKEN | WORD | USER | URIC));
    }
}
