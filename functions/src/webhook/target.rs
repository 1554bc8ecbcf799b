//! Where a webhook may point: an `https` URL whose host resolves only to public addresses.
//!
//! A webhook makes the control plane send requests to a URL a workspace chose, so without
//! these checks it would be a way into the deployment's own network (server-side request
//! forgery): the cloud metadata service at `169.254.169.254`, loopback, private ranges. The URL
//! is checked when it is saved and again, resolved afresh, before every delivery; the
//! connection then goes to the very address that was checked (no second lookup a rebinding DNS
//! server could answer differently), and redirects are never followed. Plain `http` to a
//! loopback address is accepted only when the deployment allows it (the local stack).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use reqwest::Url;

/// Longest URL accepted.
pub const MAX_URL_LEN: usize = 2048;

/// Why a URL is refused (the message names the rule, never an internal address it resolved to
/// beyond what the caller wrote).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TargetError {
    /// Not a URL, too long, or with parts a webhook URL cannot have.
    #[error(
        "must be an absolute https URL of at most 2048 characters, without credentials or fragment"
    )]
    Malformed,
    /// `http` (or another scheme) where only `https` is allowed.
    #[error("must use https")]
    NotHttps,
    /// The host is, or resolves to, an address that is not public.
    #[error(
        "must point to a public address; {0} is not one (loopback, private, link-local and reserved ranges are refused)"
    )]
    NotPublic(IpAddr),
    /// The host does not resolve.
    #[error("its host does not resolve")]
    Unresolvable,
}

/// Parses `url` and checks its form: absolute, `https` (or `http` to a loopback host when
/// `allow_loopback`), a host, no user info, no fragment.
///
/// # Errors
/// [`TargetError::Malformed`] or [`TargetError::NotHttps`].
pub fn parse(url: &str, allow_loopback: bool) -> Result<Url, TargetError> {
    if url.len() > MAX_URL_LEN {
        return Err(TargetError::Malformed);
    }
    let u = Url::parse(url).map_err(|_| TargetError::Malformed)?;
    if u.host_str().is_none_or(str::is_empty)
        || !u.username().is_empty()
        || u.password().is_some()
        || u.fragment().is_some()
    {
        return Err(TargetError::Malformed);
    }
    match u.scheme() {
        "https" => Ok(u),
        "http" if allow_loopback && literal_ip(&u).is_some_and(|ip| ip.is_loopback()) => Ok(u),
        "http" if allow_loopback && u.host_str() == Some("localhost") => Ok(u),
        _ => Err(TargetError::NotHttps),
    }
}

/// The host of `u` when it is an IP literal (the URL parser has already normalised other
/// spellings of an IPv4 address, such as `2852039166`, to dotted form).
fn literal_ip(u: &Url) -> Option<IpAddr> {
    let host = u.host_str()?;
    host.strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host)
        .parse()
        .ok()
}

/// Resolves `u`'s host and checks every address it resolves to; the address to connect to.
/// All must pass, so a name with one public and one private address is refused.
///
/// # Errors
/// [`TargetError::Unresolvable`] or [`TargetError::NotPublic`].
pub async fn resolve(u: &Url, allow_loopback: bool) -> Result<SocketAddr, TargetError> {
    let port = u.port_or_known_default().ok_or(TargetError::Malformed)?;
    let addrs: Vec<SocketAddr> = match literal_ip(u) {
        Some(ip) => vec![SocketAddr::new(ip, port)],
        None => {
            let host = u.host_str().ok_or(TargetError::Malformed)?;
            tokio::net::lookup_host((host, port))
                .await
                .map_err(|_| TargetError::Unresolvable)?
                .collect()
        }
    };
    let first = *addrs.first().ok_or(TargetError::Unresolvable)?;
    for a in &addrs {
        let ip = a.ip();
        let loopback_ok = allow_loopback && ip.is_loopback();
        if !loopback_ok && !is_public(ip) {
            return Err(TargetError::NotPublic(ip));
        }
    }
    Ok(first)
}

/// Whether `ip` is a public unicast address: not loopback, private, link-local (the cloud
/// metadata service), shared (CGNAT), multicast, documentation, benchmarking or reserved, and
/// no IPv6 form that embeds or tunnels such an IPv4 address.
#[must_use]
pub fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(a) => public_v4(a),
        IpAddr::V6(a) => public_v6(a),
    }
}

fn public_v4(a: Ipv4Addr) -> bool {
    let [o0, o1, o2, _] = a.octets();
    !(a.is_unspecified()
        || a.is_loopback()
        || a.is_private()
        || a.is_link_local()
        || a.is_broadcast()
        || a.is_multicast()
        || a.is_documentation()
        || o0 == 0
        || (o0 == 100 && (64..128).contains(&o1)) // shared address space (CGNAT)
        || (o0 == 192 && o1 == 0 && o2 == 0) // IETF protocol assignments
        || (o0 == 192 && o1 == 88 && o2 == 99) // 6to4 relay anycast
        || (o0 == 198 && (18..20).contains(&o1)) // benchmarking
        || o0 >= 240) // reserved
}

fn public_v6(a: Ipv6Addr) -> bool {
    if let Some(v4) = a.to_ipv4_mapped() {
        return public_v4(v4);
    }
    let s = a.segments();
    let embedded = |hi: u16, lo: u16| Ipv4Addr::from((u32::from(hi) << 16) | u32::from(lo));
    if a.is_unspecified() || a.is_loopback() || a.is_multicast() {
        return false;
    }
    match s[0] {
        0xfc00..=0xfdff => false,                                    // unique local
        0xfe80..=0xfebf => false,                                    // link-local
        0xfec0..=0xfeff => false,                                    // site-local (deprecated)
        0x2001 if s[1] == 0x0db8 => false,                           // documentation
        0x2001 if s[1] == 0 => false,                                // Teredo tunnels
        0x2002 => public_v4(embedded(s[1], s[2])),                   // 6to4
        0x0064 if s[1] == 0xff9b => public_v4(embedded(s[6], s[7])), // NAT64
        0x0000 => false, // IPv4-compatible and other reserved forms
        0x0100 if s[1..4] == [0, 0, 0] => false, // discard-only
        _ => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn private_loopback_link_local_and_reserved_addresses_are_refused() {
        for s in [
            "127.0.0.1",
            "127.1.2.3",
            "10.0.0.1",
            "172.16.0.1",
            "172.31.255.255",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "100.127.255.255",
            "0.0.0.0",
            "0.1.2.3",
            "255.255.255.255",
            "224.0.0.1",
            "192.0.2.1",
            "198.51.100.7",
            "203.0.113.9",
            "198.18.0.1",
            "240.0.0.1",
            "192.0.0.170",
            "::1",
            "::",
            "fc00::1",
            "fd12:3456::1",
            "fe80::1",
            "ff02::1",
            "2001:db8::1",
            "::ffff:127.0.0.1",
            "::ffff:169.254.169.254",
            "::ffff:10.1.2.3",
            "2002:7f00:1::",
            "2002:a9fe:a9fe::",
            "64:ff9b::a9fe:a9fe",
            "2001::1",
            "::127.0.0.1",
            "fec0::1",
            "100::1",
        ] {
            assert!(!is_public(ip(s)), "{s} must be refused");
        }
    }

    #[test]
    fn public_addresses_pass() {
        for s in [
            "1.1.1.1",
            "8.8.8.8",
            "172.32.0.1",
            "100.128.0.1",
            "198.20.0.1",
            "2606:4700::1111",
            "2a00:1450:4001::200e",
            "::ffff:8.8.8.8",
            "2002:0808:0808::",
            "64:ff9b::808:808",
        ] {
            assert!(is_public(ip(s)), "{s} is public");
        }
    }

    #[test]
    fn only_https_without_credentials_is_accepted_unless_the_local_stack_allows_loopback_http() {
        assert!(parse("https://hooks.example.com/keyward", false).is_ok());
        assert_eq!(
            parse("http://hooks.example.com/", false),
            Err(TargetError::NotHttps)
        );
        assert_eq!(
            parse("ftp://hooks.example.com/", false),
            Err(TargetError::NotHttps)
        );
        assert_eq!(
            parse("http://127.0.0.1:9/x", false),
            Err(TargetError::NotHttps)
        );
        assert!(parse("http://127.0.0.1:9/x", true).is_ok());
        assert!(parse("http://[::1]:9/x", true).is_ok());
        assert_eq!(
            parse("http://example.com/", true),
            Err(TargetError::NotHttps)
        );
        for bad in [
            "https://user:pw@example.com/",
            "https://example.com/#frag",
            "/relative",
            "https://",
            "not a url",
        ] {
            assert_eq!(parse(bad, false), Err(TargetError::Malformed), "{bad}");
        }
        assert_eq!(
            parse(
                &format!("https://example.com/{}", "a".repeat(MAX_URL_LEN)),
                false
            ),
            Err(TargetError::Malformed)
        );
    }

    #[tokio::test]
    async fn resolving_checks_every_address_and_literals_too() {
        let metadata = parse("https://169.254.169.254/latest/meta-data/", false).unwrap();
        assert_eq!(
            resolve(&metadata, false).await,
            Err(TargetError::NotPublic(ip("169.254.169.254")))
        );
        let decimal = parse("https://2852039166/", false).unwrap();
        assert!(matches!(
            resolve(&decimal, false).await,
            Err(TargetError::NotPublic(_))
        ));
        let local = parse("https://localhost/", false).unwrap();
        assert!(matches!(
            resolve(&local, false).await,
            Err(TargetError::NotPublic(_))
        ));
        let allowed = parse("http://127.0.0.1:8080/", true).unwrap();
        assert_eq!(resolve(&allowed, true).await.unwrap().port(), 8080);
    }
}
