//! Header hygiene between client and upstream: hop-by-hop headers removed both ways, the
//! client's own `x-sluice-*` headers removed on the way in, and the `X-Forwarded-*` headers
//! set on the way in.

use std::net::IpAddr;

use http::header::{self, HeaderMap, HeaderName, HeaderValue};

/// Headers that describe one connection, not the message (RFC 9110 §7.6.1).
pub const HOP_BY_HOP: [HeaderName; 7] = [
    header::CONNECTION,
    HeaderName::from_static("keep-alive"),
    HeaderName::from_static("proxy-connection"),
    header::PROXY_AUTHENTICATE,
    header::TRAILER,
    header::TRANSFER_ENCODING,
    header::UPGRADE,
];

/// Removes hop-by-hop headers and every header the `Connection` headers name. `TE: trailers`
/// is kept (gRPC needs it); any other `TE` is removed. Looks before it removes: most messages
/// carry none of these, or only `Connection: keep-alive`.
pub fn strip_hop_by_hop(headers: &mut HeaderMap) {
    // which hop-by-hop names are present, one bit each; nothing is allocated unless the
    // Connection header names other headers
    let mut present: u8 = 0;
    let mut te = false;
    for name in headers.keys() {
        if let Some(i) = HOP_BY_HOP.iter().position(|h| h == name) {
            present |= 1 << i;
        } else if name == header::TE {
            te = true;
        }
    }
    if present == 0 && !te {
        return;
    }
    let mut nominated: Vec<HeaderName> = Vec::new();
    for value in headers.get_all(header::CONNECTION) {
        for token in value.as_bytes().split(|&b| b == b',') {
            let token = token.trim_ascii();
            if token.is_empty()
                || HOP_BY_HOP
                    .iter()
                    .any(|h| h.as_str().as_bytes().eq_ignore_ascii_case(token))
            {
                continue;
            }
            if let Ok(n) = HeaderName::from_bytes(token) {
                nominated.push(n);
            }
        }
    }
    if te
        && !headers
            .get_all(header::TE)
            .iter()
            .all(|v| v.as_bytes().eq_ignore_ascii_case(b"trailers"))
    {
        headers.remove(header::TE);
    }
    for (i, name) in HOP_BY_HOP.iter().enumerate() {
        if present & (1 << i) != 0 {
            headers.remove(name);
        }
    }
    for name in nominated {
        headers.remove(name);
    }
}

/// Removes every `x-sluice-*` header a client sent, once the request has been routed: a rule
/// may name one (the preview header), but the upstream never sees one the proxy did not set,
/// so nothing downstream of the proxy can be steered by a client's claim to speak for it.
pub fn strip_own(headers: &mut HeaderMap) {
    let own = |n: &HeaderName| n.as_str().starts_with("x-sluice-");
    if !headers.keys().any(own) {
        return;
    }
    let names: Vec<HeaderName> = headers.keys().filter(|n| own(n)).cloned().collect();
    for name in names {
        headers.remove(name);
    }
}

/// Who a connection's requests come from, worked out once per connection.
#[derive(Debug)]
pub struct Downstream {
    /// The client's address.
    pub addr: std::net::SocketAddr,
    /// The forwarding header values for this client.
    pub forwarding: Forwarding,
}

impl Downstream {
    /// A client at `addr` speaking `proto` ("http" or "https").
    pub fn new(addr: std::net::SocketAddr, proto: &'static str) -> Self {
        Downstream {
            addr,
            forwarding: Forwarding::new(addr.ip(), proto),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_clients_own_headers_go_and_others_stay() {
        let mut h = HeaderMap::new();
        h.insert("x-sluice-preview", HeaderValue::from_static("always"));
        h.append("x-sluice-generation", HeaderValue::from_static("9"));
        h.append("x-sluice-generation", HeaderValue::from_static("10"));
        h.insert("x-sluicey", HeaderValue::from_static("kept"));
        h.insert("x-canary", HeaderValue::from_static("kept"));
        strip_own(&mut h);
        let mut left: Vec<&str> = h.keys().map(HeaderName::as_str).collect();
        left.sort_unstable();
        assert_eq!(left, ["x-canary", "x-sluicey"]);
        let mut none = HeaderMap::new();
        strip_own(&mut none);
        assert!(none.is_empty());
    }

    #[test]
    fn hop_by_hop_and_connection_named_headers_go() {
        let mut h = HeaderMap::new();
        h.insert(header::CONNECTION, "keep-alive, x-secret".parse().unwrap());
        h.insert("keep-alive", "timeout=5".parse().unwrap());
        h.insert("x-secret", "1".parse().unwrap());
        h.insert(header::TRANSFER_ENCODING, "chunked".parse().unwrap());
        h.insert(header::UPGRADE, "websocket".parse().unwrap());
        h.insert(header::TE, "gzip".parse().unwrap());
        h.insert("x-keep", "1".parse().unwrap());
        strip_hop_by_hop(&mut h);
        assert_eq!(h.len(), 1, "{h:?}");
        assert!(h.contains_key("x-keep"));
        // every Connection line counts; TE: trailers stays; nothing to strip changes nothing
        let mut h = HeaderMap::new();
        h.append(header::CONNECTION, "keep-alive".parse().unwrap());
        h.append(header::CONNECTION, "X-One , close".parse().unwrap());
        h.insert("x-one", "1".parse().unwrap());
        h.insert(header::TE, "trailers".parse().unwrap());
        h.insert("x-keep", "1".parse().unwrap());
        strip_hop_by_hop(&mut h);
        let mut names: Vec<&str> = h.keys().map(HeaderName::as_str).collect();
        names.sort_unstable();
        assert_eq!(names, ["te", "x-keep"]);
        let before = h.clone();
        strip_hop_by_hop(&mut h);
        assert_eq!(h, before);
    }

    #[test]
    fn te_trailers_is_kept() {
        let mut h = HeaderMap::new();
        h.insert(header::TE, "trailers".parse().unwrap());
        strip_hop_by_hop(&mut h);
        assert!(h.contains_key(header::TE));
    }
}

/// An address range, `10.0.0.0/8` or a single address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    net: IpAddr,
    prefix: u8,
}

impl Cidr {
    /// Parses `IP` or `IP/PREFIX`.
    pub fn parse(s: &str) -> Option<Self> {
        let (ip, prefix) = match s.split_once('/') {
            Some((ip, p)) => (ip.parse::<IpAddr>().ok()?, p.parse::<u8>().ok()?),
            None => {
                let ip: IpAddr = s.parse().ok()?;
                (ip, if ip.is_ipv4() { 32 } else { 128 })
            }
        };
        let max = if ip.is_ipv4() { 32 } else { 128 };
        (prefix <= max).then_some(Self { net: ip, prefix })
    }

    /// Whether `ip` is in the range.
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
            v4 => v4,
        };
        match (self.net, ip) {
            (IpAddr::V4(n), IpAddr::V4(a)) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix))
                    .unwrap_or(0);
                u32::from(n) & mask == u32::from(a) & mask
            }
            (IpAddr::V6(n), IpAddr::V6(a)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix))
                    .unwrap_or(0);
                u128::from(n) & mask == u128::from(a) & mask
            }
            _ => false,
        }
    }
}

/// The forwarding headers' names: `X-Forwarded-For`, `Forwarded`, `X-Forwarded-Proto`.
pub static FORWARDING_NAMES: [HeaderName; 3] = [
    HeaderName::from_static("x-forwarded-for"),
    HeaderName::from_static("forwarded"),
    HeaderName::from_static("x-forwarded-proto"),
];

/// One client connection's forwarding header values, made once per connection so that a
/// request only copies them.
#[derive(Debug, Clone)]
pub struct Forwarding {
    ip: String,
    for_value: String,
    xff: Option<HeaderValue>,
    fwd: Option<HeaderValue>,
    proto: &'static str,
    /// The three headers as HTTP/1.1 field lines, for a client that writes them itself.
    lines: Vec<u8>,
}

impl Forwarding {
    /// The values for a client at `client` speaking `proto` ("http" or "https").
    pub fn new(client: IpAddr, proto: &'static str) -> Self {
        let ip = client.to_string();
        let for_value = if client.is_ipv6() {
            format!("for=\"[{ip}]\";proto={proto}")
        } else {
            format!("for={ip};proto={proto}")
        };
        let lines = format!(
            "x-forwarded-for: {ip}\r\nforwarded: {for_value}\r\nx-forwarded-proto: {proto}\r\n"
        )
        .into_bytes();
        Forwarding {
            xff: HeaderValue::from_str(&ip).ok(),
            fwd: HeaderValue::from_str(&for_value).ok(),
            ip,
            for_value,
            proto,
            lines,
        }
    }

    /// Sets `X-Forwarded-For`, `X-Forwarded-Proto` and `Forwarded`: the client's address is
    /// appended when `append` (the client is a trusted proxy), and replaces what came
    /// otherwise.
    pub fn apply(&self, headers: &mut HeaderMap, append: bool) {
        let [xff_name, fwd_name, xfp_name] = &FORWARDING_NAMES;
        let joined = |h: &HeaderMap, n: &HeaderName, own: &str| -> Option<HeaderValue> {
            let parts: Vec<&str> = h
                .get_all(n)
                .iter()
                .filter_map(|v| v.to_str().ok())
                .collect();
            if parts.is_empty() {
                return None;
            }
            HeaderValue::from_str(&format!("{}, {own}", parts.join(", "))).ok()
        };
        let (xff, fwd) = if append {
            (
                joined(headers, xff_name, &self.ip).or_else(|| self.xff.clone()),
                joined(headers, fwd_name, &self.for_value).or_else(|| self.fwd.clone()),
            )
        } else {
            (self.xff.clone(), self.fwd.clone())
        };
        if let Some(v) = xff {
            headers.insert(xff_name, v);
        }
        if let Some(v) = fwd {
            headers.insert(fwd_name, v);
        }
        if !append || !headers.contains_key(xfp_name) {
            headers.insert(xfp_name, HeaderValue::from_static(self.proto));
        }
    }
}

/// The forwarding headers one request is to carry, set by whichever client sends it: the
/// HTTP/1.1 client writes them as it writes the head ([`ToForward::replacing_lines`]), the
/// others have them put in the header map ([`ToForward::apply`]).
#[derive(Debug, Clone, Copy)]
pub struct ToForward<'a> {
    /// The client connection's values.
    pub forwarding: &'a Forwarding,
    /// The client is a trusted proxy: its values are appended to.
    pub append: bool,
}

impl ToForward<'_> {
    /// Puts the headers in `headers`.
    pub fn apply(&self, headers: &mut HeaderMap) {
        self.forwarding.apply(headers, self.append);
    }

    /// The field lines that replace whatever forwarding headers came, for a client writing
    /// the head itself (which leaves [`FORWARDING_NAMES`] out of the map); `None` when what
    /// came is appended to, which needs [`ToForward::apply`].
    pub fn replacing_lines(&self) -> Option<&[u8]> {
        (!self.append).then_some(self.forwarding.lines.as_slice())
    }
}

/// Refuses request framing that two parsers could read differently (request smuggling):
/// both `Content-Length` and `Transfer-Encoding`, differing `Content-Length`s, or a
/// `Transfer-Encoding` other than exactly `chunked`.
pub fn check_framing(headers: &HeaderMap) -> Result<(), &'static str> {
    let te: Vec<&HeaderValue> = headers.get_all(header::TRANSFER_ENCODING).iter().collect();
    let cl: Vec<&HeaderValue> = headers.get_all(header::CONTENT_LENGTH).iter().collect();
    if !te.is_empty() && !cl.is_empty() {
        return Err("both Content-Length and Transfer-Encoding");
    }
    if cl.windows(2).any(|w| w[0] != w[1]) {
        return Err("differing Content-Length headers");
    }
    if let Some(v) = cl.first()
        && (v.as_bytes().is_empty() || !v.as_bytes().iter().all(u8::is_ascii_digit))
    {
        return Err("a Content-Length that is not a number");
    }
    if te.len() > 1
        || te
            .first()
            .is_some_and(|v| !v.as_bytes().eq_ignore_ascii_case(b"chunked"))
    {
        return Err("a Transfer-Encoding other than chunked");
    }
    Ok(())
}

/// Refuses a request whose host two readers could take differently (RFC 9112 §3.2 and
/// §3.2.2, RFC 9113 §8.3.1): several `Host` fields, none on HTTP/1.1, one that is not a
/// host and port, a `Connection` header naming `Host` (stripping it would forward a request
/// without one), and an HTTP/2 `:authority` that differs from `host`. A request that passes
/// is routed by its URI's authority when it has one (absolute form, HTTP/2) and by `Host`
/// otherwise; the caller then sets `Host` to that authority, so the upstream is told the
/// host the request was routed by.
pub fn check_host(
    version: http::Version,
    uri: &http::Uri,
    headers: &HeaderMap,
) -> Result<(), &'static str> {
    let mut hosts = headers.get_all(header::HOST).iter();
    let host = hosts.next();
    if hosts.next().is_some() {
        return Err("several Host headers");
    }
    if let Some(h) = host
        && !valid_host(h.as_bytes())
    {
        return Err("a Host header that is not a host and port");
    }
    if version == http::Version::HTTP_11 && host.is_none() {
        return Err("an HTTP/1.1 request without a Host header");
    }
    let names_host = |v: &HeaderValue| {
        v.as_bytes()
            .split(|&b| b == b',')
            .any(|t| t.trim_ascii().eq_ignore_ascii_case(b"host"))
    };
    if headers.get_all(header::CONNECTION).iter().any(names_host) {
        return Err("a Connection header naming Host");
    }
    if version >= http::Version::HTTP_2
        && let (Some(h), Some(a)) = (host, uri.authority())
        && !h.as_bytes().eq_ignore_ascii_case(a.as_str().as_bytes())
    {
        return Err(":authority and Host disagree");
    }
    Ok(())
}

/// Whether a `Host` value is `host[:port]` (RFC 9110 §7.2): a registered name or IPv4 address
/// of name characters, or an IPv6 literal in brackets, then digits after one colon. No user
/// information, path, space or control character.
pub fn valid_host(v: &[u8]) -> bool {
    let (name, port) = if let Some(rest) = v.strip_prefix(b"[") {
        let Some(end) = rest.iter().position(|&b| b == b']') else {
            return false;
        };
        let (literal, after) = rest.split_at(end);
        if literal.is_empty()
            || !literal
                .iter()
                .all(|b| b.is_ascii_hexdigit() || matches!(b, b':' | b'.'))
        {
            return false;
        }
        match &after[1..] {
            [] => return true,
            [b':', port @ ..] => (&b"x"[..], port),
            _ => return false,
        }
    } else {
        match v.iter().position(|&b| b == b':') {
            Some(i) => (&v[..i], &v[i + 1..]),
            None => (v, &b""[..]),
        }
    };
    let name_ok = !name.is_empty() && name.iter().all(|&b| HOST_NAME_BYTES[usize::from(b)]);
    name_ok && port.len() <= 5 && port.iter().all(u8::is_ascii_digit)
}

/// The bytes of a registered name or IPv4 address in a `Host` (RFC 3986 `reg-name`:
/// unreserved, sub-delims and `%`), one lookup a byte on the request path.
static HOST_NAME_BYTES: [bool; 256] = {
    let mut t = [false; 256];
    let mut b = 0;
    while b < 256 {
        t[b] = (b as u8).is_ascii_alphanumeric();
        b += 1;
    }
    let others = b"-._~!$&'()*+,;=%";
    let mut i = 0;
    while i < others.len() {
        t[others[i] as usize] = true;
        i += 1;
    }
    t
};

#[cfg(test)]
mod host_tests {
    use super::*;
    use http::Version;

    fn map(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (n, v) in pairs {
            h.append(
                HeaderName::from_bytes(n.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        h
    }

    fn check(version: Version, uri: &str, pairs: &[(&str, &str)]) -> Result<(), &'static str> {
        check_host(version, &uri.parse().unwrap(), &map(pairs))
    }

    #[test]
    fn one_valid_host_passes() {
        let v11 = Version::HTTP_11;
        assert_eq!(check(v11, "/", &[("host", "shop.example")]), Ok(()));
        assert_eq!(check(v11, "/", &[("host", "127.0.0.1:8080")]), Ok(()));
        assert_eq!(check(v11, "/", &[("host", "[::1]:8080")]), Ok(()));
        assert_eq!(check(v11, "/", &[("host", "[::1]")]), Ok(()));
        assert_eq!(
            check(v11, "http://a.example/x", &[("host", "b.example")]),
            Ok(()),
            "absolute form: routed by the target, Host replaced by the caller"
        );
        assert_eq!(
            check(Version::HTTP_10, "/", &[]),
            Ok(()),
            "HTTP/1.0 may omit it"
        );
        assert_eq!(
            check(
                Version::HTTP_11,
                "/",
                &[("host", "a"), ("connection", "keep-alive")]
            ),
            Ok(())
        );
    }

    #[test]
    fn ambiguous_hosts_are_refused() {
        let v11 = Version::HTTP_11;
        assert_eq!(
            check(v11, "/", &[("host", "a.example"), ("host", "b.example")]),
            Err("several Host headers")
        );
        assert_eq!(
            check(v11, "/", &[]),
            Err("an HTTP/1.1 request without a Host header")
        );
        assert_eq!(
            check(v11, "/", &[("host", "a"), ("connection", "close, Host")]),
            Err("a Connection header naming Host")
        );
        for bad in [
            "", "a b", "user@a", "a/b", "a:80:90", "a:http", "[::1", "[zz]", "[::1]x",
        ] {
            assert_eq!(
                check(v11, "/", &[("host", bad)]),
                Err("a Host header that is not a host and port"),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn http2_authority_and_host_must_agree() {
        let v2 = Version::HTTP_2;
        assert_eq!(check(v2, "http://a.example/", &[]), Ok(()));
        assert_eq!(
            check(v2, "http://a.example/", &[("host", "A.example")]),
            Ok(())
        );
        assert_eq!(
            check(v2, "http://a.example/", &[("host", "b.example")]),
            Err(":authority and Host disagree")
        );
        assert_eq!(check(v2, "/", &[]), Ok(()), "neither: routed by no host");
    }
}

#[cfg(test)]
mod forwarding_tests {
    use super::*;

    #[test]
    fn cidrs_match_their_ranges() {
        let c = Cidr::parse("10.0.0.0/8").unwrap();
        assert!(c.contains("10.1.2.3".parse().unwrap()));
        assert!(!c.contains("11.0.0.1".parse().unwrap()));
        assert!(c.contains("::ffff:10.0.0.1".parse().unwrap()));
        assert!(
            Cidr::parse("127.0.0.1")
                .unwrap()
                .contains("127.0.0.1".parse().unwrap())
        );
        assert!(Cidr::parse("::1").unwrap().contains("::1".parse().unwrap()));
        assert!(
            Cidr::parse("0.0.0.0/0")
                .unwrap()
                .contains("8.8.8.8".parse().unwrap())
        );
        assert!(Cidr::parse("10.0.0.0/33").is_none());
        assert!(Cidr::parse("nope").is_none());
    }

    #[test]
    fn forwarded_headers_append_only_for_trusted_clients() {
        let mut h = HeaderMap::new();
        h.insert("x-forwarded-for", "1.2.3.4".parse().unwrap());
        h.insert("forwarded", "for=1.2.3.4".parse().unwrap());
        let mut trusted = h.clone();
        Forwarding::new("10.0.0.9".parse().unwrap(), "http").apply(&mut trusted, true);
        assert_eq!(trusted["x-forwarded-for"], "1.2.3.4, 10.0.0.9");
        assert_eq!(trusted["forwarded"], "for=1.2.3.4, for=10.0.0.9;proto=http");
        let mut first = HeaderMap::new();
        Forwarding::new("10.0.0.9".parse().unwrap(), "https").apply(&mut first, true);
        assert_eq!(first["x-forwarded-for"], "10.0.0.9");
        assert_eq!(first["forwarded"], "for=10.0.0.9;proto=https");
        assert_eq!(first["x-forwarded-proto"], "https");
        Forwarding::new("::1".parse().unwrap(), "http").apply(&mut h, false);
        assert_eq!(h["x-forwarded-for"], "::1");
        assert_eq!(h["forwarded"], "for=\"[::1]\";proto=http");
        assert_eq!(h["x-forwarded-proto"], "http");
    }

    #[test]
    fn the_replacing_lines_say_what_apply_puts_in_the_map() {
        for (ip, proto) in [("10.0.0.9", "http"), ("::1", "https")] {
            let f = Forwarding::new(ip.parse().unwrap(), proto);
            let mut applied = HeaderMap::new();
            applied.insert("x-forwarded-for", "1.2.3.4".parse().unwrap());
            f.apply(&mut applied, false);
            let to = ToForward {
                forwarding: &f,
                append: false,
            };
            let lines = String::from_utf8(to.replacing_lines().unwrap().to_vec()).unwrap();
            let mut from_lines = HeaderMap::new();
            for line in lines.split_terminator("\r\n") {
                let (name, value) = line.split_once(": ").unwrap();
                from_lines.append(
                    HeaderName::from_bytes(name.as_bytes()).unwrap(),
                    value.parse().unwrap(),
                );
            }
            assert_eq!(from_lines, applied);
            assert!(FORWARDING_NAMES.iter().all(|n| applied.contains_key(n)));
            let appending = ToForward {
                forwarding: &f,
                append: true,
            };
            assert!(appending.replacing_lines().is_none());
        }
    }

    #[test]
    fn ambiguous_framing_is_refused() {
        let mk = |pairs: &[(&str, &str)]| {
            let mut h = HeaderMap::new();
            for (k, v) in pairs {
                h.append(
                    HeaderName::from_bytes(k.as_bytes()).unwrap(),
                    v.parse().unwrap(),
                );
            }
            check_framing(&h)
        };
        assert!(mk(&[("content-length", "5")]).is_ok());
        assert!(mk(&[("transfer-encoding", "chunked")]).is_ok());
        assert!(mk(&[("transfer-encoding", "Chunked")]).is_ok());
        assert!(mk(&[("content-length", "5"), ("content-length", "5")]).is_ok());
        assert!(mk(&[("content-length", "5"), ("transfer-encoding", "chunked")]).is_err());
        assert!(mk(&[("content-length", "5"), ("content-length", "6")]).is_err());
        assert!(mk(&[("content-length", "+5")]).is_err());
        assert!(mk(&[("transfer-encoding", "xchunked")]).is_err());
        assert!(mk(&[("transfer-encoding", "chunked, identity")]).is_err());
        assert!(
            mk(&[
                ("transfer-encoding", "chunked"),
                ("transfer-encoding", "chunked")
            ])
            .is_err()
        );
        assert!(mk(&[]).is_ok());
    }
}
