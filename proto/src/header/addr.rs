//! name-addr / addr-spec values (From, To, Contact, Route, Record-Route;
//! RFC 3261 §20.10 and §25): display name, URI and header parameters.

use crate::syntax::{
    Params, SyntaxError, is_token_byte, is_ws, quoted_end, skip_ws, unexpected, unquote,
};
use crate::uri::{Uri, UriError};
use std::borrow::Cow;

/// A `(name-addr / addr-spec) *(SEMI param)` value, borrowed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NameAddr<'a> {
    /// The display name as written (quoted string with quotes, or tokens).
    pub display: Option<&'a str>,
    /// The URI text (inside `<>` when `angle`).
    pub uri: &'a str,
    /// Whether the URI was enclosed in `<>`.
    pub angle: bool,
    /// Header parameters after the URI (tag, expires, q, lr is a URI param).
    pub params: Params<'a>,
}

impl<'a> NameAddr<'a> {
    /// Parses one value, checking the URI.
    pub fn parse(s: &'a str) -> Result<NameAddr<'a>, SyntaxError> {
        Self::parse_with(s, |_, _| Ok(()))
    }

    /// Checks the structure of one value (display name, `<>`, header
    /// parameters such as tag) but not the URI: what an element that only
    /// reads the tag needs (RFC 3261 §16.3 step 1).
    pub(crate) fn check_params(s: &str) -> Result<(), SyntaxError> {
        NameAddr::split(s, |_, _| Ok(())).map(drop)
    }

    /// Like [`NameAddr::parse`], checking each header parameter in the same pass.
    fn parse_with(
        s: &'a str,
        check: impl FnMut(&'a str, Option<&'a str>) -> Result<(), SyntaxError>,
    ) -> Result<NameAddr<'a>, SyntaxError> {
        let na = Self::split(s, check)?;
        Uri::validate(na.uri)?;
        Ok(na)
    }

    fn split(
        s: &'a str,
        check: impl FnMut(&'a str, Option<&'a str>) -> Result<(), SyntaxError>,
    ) -> Result<NameAddr<'a>, SyntaxError> {
        let b = s.as_bytes();
        let start = skip_ws(s, 0);
        if start >= b.len() {
            return Err(SyntaxError::Empty);
        }
        let (display, lt) = if b[start] == b'"' {
            let e = quoted_end(s, start)?;
            let lt = skip_ws(s, e);
            if b.get(lt) != Some(&b'<') {
                return Err(unexpected(s, lt, "'<' after the display name"));
            }
            (Some(&s[start..e]), Some(lt))
        } else {
            // A display name is tokens, so a '<' that opens a name-addr
            // comes before any ';' or '"' of the parameters.
            match b[start..]
                .iter()
                .position(|&c| matches!(c, b'<' | b';' | b'"'))
                .map(|p| start + p)
                .filter(|&p| b[p] == b'<')
            {
                Some(lt) => {
                    // display-name = *(token LWS)
                    let dn = &s[start..lt];
                    if let Some(p) = dn.bytes().position(|c| !(is_token_byte(c) || is_ws(c))) {
                        return Err(unexpected(s, start + p, "token in display name"));
                    }
                    let dn = crate::syntax::trim_ws(dn);
                    ((!dn.is_empty()).then_some(dn), Some(lt))
                }
                None => (None, None),
            }
        };
        match lt {
            Some(lt) => {
                let gt = match memchr::memchr(b'>', &b[lt..]) {
                    Some(p) => lt + p,
                    None => return Err(SyntaxError::UnterminatedAngle(lt)),
                };
                let params = Params::parse_with(s, gt + 1, check)?;
                Ok(NameAddr {
                    display,
                    uri: &s[lt + 1..gt],
                    angle: true,
                    params,
                })
            }
            None => {
                // addr-spec without <>: parameters after it belong to the
                // header, and it may not contain ',', '?' or ';' (§20).
                let end = b[start..]
                    .iter()
                    .position(|&c| c == b';' || is_ws(c))
                    .map_or(b.len(), |p| start + p);
                let uri = &s[start..end];
                if let Some(p) = uri.bytes().position(|c| c == b'?' || c == b',') {
                    return Err(unexpected(s, start + p, "'<>' around a URI with headers"));
                }
                let params = Params::parse_with(s, end, check)?;
                Ok(NameAddr {
                    display: None,
                    uri,
                    angle: false,
                    params,
                })
            }
        }
    }

    /// The parsed URI.
    pub fn parsed_uri(&self) -> Result<Uri, UriError> {
        Uri::parse(self.uri)
    }

    /// The display name with quotes and escapes removed.
    pub fn display_name(&self) -> Option<Cow<'a, str>> {
        self.display.map(|d| {
            if d.starts_with('"') {
                unquote(d)
            } else {
                Cow::Borrowed(d)
            }
        })
    }

    /// The tag parameter (From/To).
    pub fn tag(&self) -> Option<&'a str> {
        self.params.get("tag").flatten()
    }
}

/// One Contact value: `*` or an address with parameters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Contact<'a> {
    /// `Contact: *` (only valid in REGISTER with `Expires: 0`).
    Star,
    /// A contact address.
    Addr(NameAddr<'a>),
}

impl<'a> Contact<'a> {
    /// Parses one contact-param or `*`, validating expires and q.
    pub fn parse(s: &'a str) -> Result<Contact<'a>, SyntaxError> {
        if crate::syntax::trim_ws(s) == "*" {
            return Ok(Contact::Star);
        }
        let na = NameAddr::parse_with(s, |name, value| {
            if name.eq_ignore_ascii_case("expires") {
                crate::header::values::delta_seconds(value.unwrap_or(""))?;
            } else if name.eq_ignore_ascii_case("q") {
                parse_q(value.unwrap_or(""))?;
            }
            Ok(())
        })?;
        Ok(Contact::Addr(na))
    }

    /// The address, unless this is `*`.
    pub fn addr(&self) -> Option<&NameAddr<'a>> {
        match self {
            Contact::Star => None,
            Contact::Addr(a) => Some(a),
        }
    }

    /// The expires parameter.
    pub fn expires(&self) -> Option<u32> {
        self.addr()?.params.get("expires")??.parse().ok()
    }

    /// The q parameter in thousandths (q=0.5 → 500).
    pub fn q(&self) -> Option<u16> {
        parse_q(self.addr()?.params.get("q")??).ok()
    }

    /// `+sip.instance` (RFC 5626), unquoted.
    pub fn instance(&self) -> Option<Cow<'a, str>> {
        self.addr()?.params.get("+sip.instance")?.map(unquote)
    }

    /// `reg-id` (RFC 5626).
    pub fn reg_id(&self) -> Option<u32> {
        self.addr()?.params.get("reg-id")??.parse().ok()
    }
}

/// qvalue = ( "0" [ "." 0*3DIGIT ] ) / ( "1" [ "." 0*3("0") ] ), in thousandths.
pub(crate) fn parse_q(v: &str) -> Result<u16, SyntaxError> {
    let v = crate::syntax::trim_ws(v);
    let bad = || unexpected(v, 0, "qvalue between 0 and 1 with up to 3 decimals");
    let (int, frac) = v.split_once('.').unwrap_or((v, ""));
    if frac.len() > 3 || !frac.bytes().all(|c| c.is_ascii_digit()) {
        return Err(bad());
    }
    let f: u16 = format!("{frac:0<3}").parse().map_err(|_| bad())?;
    match int {
        "0" => Ok(f),
        "1" if f == 0 => Ok(1000),
        _ => Err(bad()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forms() {
        let a = NameAddr::parse(
            r#""J Rosenberg \\\""       <sip:jdrosen@example.com> ;  tag = 98asjd8"#,
        )
        .unwrap();
        assert_eq!(a.display_name().unwrap(), "J Rosenberg \\\"");
        assert_eq!(a.uri, "sip:jdrosen@example.com");
        assert_eq!(a.tag(), Some("98asjd8"));
        let a = NameAddr::parse("caller<sip:caller@example.com>;tag=323").unwrap();
        assert_eq!(a.display_name().unwrap(), "caller");
        let a =
            NameAddr::parse("sip:vivekg@chair-dnrc.example.com ;   tag    = 1918181833n").unwrap();
        assert!(!a.angle);
        assert_eq!(a.tag(), Some("1918181833n"));
        let a =
            NameAddr::parse("token1~` token2'+_ token3*%!.- <sip:mundane@example.com>").unwrap();
        assert_eq!(a.display, Some("token1~` token2'+_ token3*%!.-"));
    }

    #[test]
    fn rejects() {
        for bad in [
            "\"Mr. J. User <sip:j.user@example.com>",
            "< sip:t.watson@example.org >",
            "Watson, Thomas <sip:t.watson@example.org>",
            "sip:user@example.com?Route=%3Csip:sip.example.com%3E",
            "\"Joe\" <sip:joe@example.org>;;;;",
            "<sip:x@y",
            "",
        ] {
            assert!(NameAddr::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn contact_params() {
        let c =
            Contact::parse("<sip:a@b>;expires=3600;q=0.7;+sip.instance=\"<urn:uuid:1>\";reg-id=1")
                .unwrap();
        assert_eq!(c.expires(), Some(3600));
        assert_eq!(c.q(), Some(700));
        assert_eq!(c.instance().unwrap(), "<urn:uuid:1>");
        assert_eq!(c.reg_id(), Some(1));
        assert_eq!(Contact::parse(" * ").unwrap(), Contact::Star);
        assert!(Contact::parse("<sip:a@b>;expires=280297596632815").is_err());
        assert!(Contact::parse("<sip:a@b>;q=1.5").is_err());
    }
}
