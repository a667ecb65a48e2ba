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
/// `gen-value` characters outside quotes: token, plus `[`, `]`, `:` of IPv6 hosts.
pub const GEN_VALUE: u16 = 1 << 10;
/// Characters of a Via sent-by host before it is checked: alphanum, `-`, `.`, `_`.
pub const VIA_HOST: u16 = 1 << 11;

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
    if m & TOKEN != 0 || matches!(b, b'[' | b']' | b':') {
        m |= GEN_VALUE;
    }
    if alnum || matches!(b, b'-' | b'.' | b'_') {
        m |= VIA_HOST;
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

/// Index of the first byte at or after `i` that is in none of the classes
/// in `mask` (or `b.len()`). Eight bytes are tested per step without a
/// branch each, since most runs (host names, branches, tags) are long.
#[inline(always)]
pub fn span(b: &[u8], mut i: usize, mask: u16) -> usize {
    while let Some(chunk) = b.get(i..i + 8) {
        let all = chunk.iter().fold(mask, |acc, &c| acc & TABLE[c as usize]);
        if all & mask == 0 {
            break;
        }
        i += 8;
    }
    while i < b.len() && is(b[i], mask) {
        i += 1;
    }
    i
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
        assert!(is(b':', GEN_VALUE) && is(b'a', GEN_VALUE) && !is(b';', GEN_VALUE));
        assert!(is(b'_', VIA_HOST) && !is(b'_', HOSTNAME));
    }

    #[test]
    fn spans() {
        assert_eq!(span(b"", 0, TOKEN), 0);
        assert_eq!(span(b"abc;", 0, TOKEN), 3);
        assert_eq!(span(b"abc;", 4, TOKEN), 4);
        assert_eq!(span(b"branch=z9hG4bK776asdhds;x", 7, TOKEN), 23);
        assert_eq!(span(b"0123456789abcdef", 0, TOKEN), 16);
        assert_eq!(span(b"0123456789abcdef ", 0, TOKEN), 16);
        assert_eq!(span(b"01234567 9abcdef", 0, TOKEN), 8);
    }
}
