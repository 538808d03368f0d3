//! Header hygiene between client and upstream: hop-by-hop headers removed both ways, and the
//! `X-Forwarded-*` headers set on the way in.

use std::net::IpAddr;

use http::header::{self, HeaderMap, HeaderName, HeaderValue};

/// Headers that describe one connection, not the message (RFC 9110 §7.6.1).
const HOP_BY_HOP: [HeaderName; 7] = [
    header::CONNECTION,
    HeaderName::from_static("keep-alive"),
    HeaderName::from_static("proxy-connection"),
    header::PROXY_AUTHENTICATE,
    header::TRAILER,
    header::TRANSFER_ENCODING,
    header::UPGRADE,
];

/// Removes hop-by-hop headers and every header the `Connection` header names. `TE: trailers`
/// is kept (gRPC needs it); any other `TE` is removed.
pub fn strip_hop_by_hop(headers: &mut HeaderMap) {
    if let Some(conn) = headers.get(header::CONNECTION) {
        let named: Vec<HeaderName> = conn
            .to_str()
            .unwrap_or_default()
            .split(',')
            .filter_map(|t| HeaderName::from_bytes(t.trim().as_bytes()).ok())
            .collect();
        for n in named {
            headers.remove(n);
        }
    }
    for h in &HOP_BY_HOP {
        headers.remove(h);
    }
    let te_trailers = headers
        .get(header::TE)
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"trailers"));
    if !te_trailers {
        headers.remove(header::TE);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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

/// Sets `X-Forwarded-For`, `X-Forwarded-Proto` and `Forwarded`: the client's address is
/// appended when `append` (the client is a trusted proxy), and replaces what came otherwise.
pub fn set_forwarded(headers: &mut HeaderMap, client: IpAddr, proto: &'static str, append: bool) {
    static XFF: HeaderName = HeaderName::from_static("x-forwarded-for");
    static XFP: HeaderName = HeaderName::from_static("x-forwarded-proto");
    static FWD: HeaderName = HeaderName::from_static("forwarded");
    let ip = client.to_string();
    let prev = |h: &HeaderMap, n: &HeaderName| -> Option<String> {
        let parts: Vec<&str> = h
            .get_all(n)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .collect();
        (!parts.is_empty()).then(|| parts.join(", "))
    };
    let for_value = if client.is_ipv6() {
        format!("for=\"[{ip}]\";proto={proto}")
    } else {
        format!("for={ip};proto={proto}")
    };
    let (xff, fwd) = if append {
        (
            prev(headers, &XFF).map_or(ip.clone(), |p| format!("{p}, {ip}")),
            prev(headers, &FWD).map_or(for_value.clone(), |p| format!("{p}, {for_value}")),
        )
    } else {
        (ip, for_value)
    };
    if let Ok(v) = HeaderValue::from_str(&xff) {
        headers.insert(&XFF, v);
    }
    if let Ok(v) = HeaderValue::from_str(&fwd) {
        headers.insert(&FWD, v);
    }
    if !append || !headers.contains_key(&XFP) {
        headers.insert(&XFP, HeaderValue::from_static(proto));
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
        set_forwarded(&mut trusted, "10.0.0.9".parse().unwrap(), "http", true);
        assert_eq!(trusted["x-forwarded-for"], "1.2.3.4, 10.0.0.9");
        assert_eq!(trusted["forwarded"], "for=1.2.3.4, for=10.0.0.9;proto=http");
        set_forwarded(&mut h, "::1".parse().unwrap(), "http", false);
        assert_eq!(h["x-forwarded-for"], "::1");
        assert_eq!(h["forwarded"], "for=\"[::1]\";proto=http");
        assert_eq!(h["x-forwarded-proto"], "http");
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
