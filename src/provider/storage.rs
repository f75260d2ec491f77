//! Redirects to a provider's long-term storage: where a redirect leads, which targets devgate follows,
//! and a resolver that keeps only public addresses.

use std::net::{IpAddr, SocketAddr};

use url::Url;

pub(super) fn origin_of(url: &Url) -> String {
    url.origin().ascii_serialization()
}

/// Where a redirect leads: the whole URL (for following it) and its origin (all an error names).
pub(super) struct RedirectTarget {
    pub(super) location: Option<Url>,
    pub(super) origin: String,
}

pub(super) fn redirect_target(response: &reqwest::Response) -> RedirectTarget {
    let location = response
        .headers()
        .get(reqwest::header::LOCATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|l| response.url().join(l).ok());
    let origin = location
        .as_ref()
        .map(origin_of)
        .unwrap_or_else(|| "an unknown place".into());
    RedirectTarget { location, origin }
}

/// Whether devgate follows a provider's redirect to `target` as its long-term storage, and if not, why:
/// https only, no credentials in the URL, and no loopback, private or otherwise non-public address —
/// unless the provider's own API base is on loopback (`loopback`: the simulator and tests), when a
/// loopback target is fine, over http too. Names are checked again when resolved ([`PublicOnly`]).
pub fn storage_target(target: &Url, loopback: bool) -> Result<(), &'static str> {
    if !target.username().is_empty() || target.password().is_some() {
        return Err("the URL carries credentials");
    }
    let local = is_loopback_host(target);
    match target.scheme() {
        "https" => {}
        "http" if loopback && local => {}
        _ => return Err("storage is reached over https only"),
    }
    if loopback && local {
        return Ok(());
    }
    match target.host() {
        Some(url::Host::Ipv4(ip)) if !is_public(IpAddr::V4(ip)) => {
            Err("it is a loopback or private address")
        }
        Some(url::Host::Ipv6(ip)) if !is_public(IpAddr::V6(ip)) => {
            Err("it is a loopback or private address")
        }
        Some(url::Host::Domain(name)) if name == "localhost" || name.ends_with(".localhost") => {
            Err("it is a loopback or private address")
        }
        Some(_) => Ok(()),
        None => Err("it names no host"),
    }
}

/// Whether a URL's host is loopback (`127.0.0.0/8`, `::1`, `localhost`).
pub(crate) fn is_loopback_host(url: &Url) -> bool {
    match url.host() {
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        Some(url::Host::Domain(name)) => name == "localhost" || name.ends_with(".localhost"),
        None => false,
    }
}

/// Whether an address is reachable on the public internet: not loopback, private, link-local, shared,
/// unspecified, documentation, benchmarking, multicast or reserved (IPv4 inside IPv6 checked as IPv4).
fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, c, _] = v4.octets();
            !(v4.is_private()
                || v4.is_loopback()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_broadcast()
                || v4.is_documentation()
                || v4.is_multicast()
                || a == 0
                || (a == 100 && (64..128).contains(&b))
                || (a == 192 && b == 0 && c == 0)
                || (a == 198 && (18..20).contains(&b))
                || a >= 240)
        }
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return is_public(IpAddr::V4(v4));
            }
            let s = v6.segments();
            // NAT64 (64:ff9b::/96): the IPv4 address in its last 32 bits decides.
            if s[..6] == [0x64, 0xff9b, 0, 0, 0, 0] {
                let [a, b] = s[6].to_be_bytes();
                let [c, d] = s[7].to_be_bytes();
                return is_public(IpAddr::V4(std::net::Ipv4Addr::new(a, b, c, d)));
            }
            !(v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                || (s[0] & 0xfe00) == 0xfc00
                || (s[0] & 0xffc0) == 0xfe80
                || (s[0] == 0x2001 && s[1] == 0x0db8))
        }
    }
}

/// A resolver for the storage client that keeps only public addresses, so a storage name that
/// resolves into the local network is refused, not reached.
pub(crate) struct PublicOnly;

impl reqwest::dns::Resolve for PublicOnly {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let host = name.as_str().to_string();
        Box::pin(async move {
            let found: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), 0))
                .await?
                .filter(|a| is_public(a.ip()))
                .collect();
            if found.is_empty() {
                return Err(format!("{host} has no public address").into());
            }
            Ok(Box::new(found.into_iter()) as reqwest::dns::Addrs)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn storage_is_public_https_unless_the_api_itself_is_on_loopback() {
        let url = |u: &str| Url::parse(u).unwrap();
        let ok = |u: &str, loopback: bool| storage_target(&url(u), loopback).is_ok();
        let signed = "https://bbuseruploads.s3.amazonaws.com/logs/1?X-Amz-Signature=abc";
        assert!(ok(signed, false) && ok(signed, true));
        for refused in [
            "http://bbuseruploads.s3.amazonaws.com/logs/1",
            "https://127.0.0.1/logs/1",
            "https://localhost:9000/logs/1",
            "https://10.1.2.3/logs/1",
            "https://192.168.0.10/logs/1",
            "https://172.16.5.4/logs/1",
            "https://169.254.169.254/latest/meta-data",
            "https://100.64.0.1/x",
            "https://0.0.0.0/x",
            "https://[::1]/x",
            "https://[fd00::1]/x",
            "https://[fe80::1]/x",
            "https://[::ffff:127.0.0.1]/x",
            "https://[64:ff9b::a00:1]/x",
            "https://user:pass@bbuseruploads.s3.amazonaws.com/x",
            "ftp://bbuseruploads.s3.amazonaws.com/x",
        ] {
            assert!(!ok(refused, false), "{refused} must be refused");
        }
        assert!(
            ok("https://[64:ff9b::808:808]/x", false),
            "NAT64 of a public address"
        );
        // With the API on loopback (the sim), storage on loopback is fine, over http too; private
        // addresses elsewhere and plain http to other hosts still are not.
        assert!(ok("http://127.0.0.1:41000/step-logs/x", true));
        assert!(ok("https://localhost/x", true));
        assert!(!ok("http://10.1.2.3/x", true));
        assert!(!ok("https://10.1.2.3/x", true));
        assert!(!ok("http://bbuseruploads.s3.amazonaws.com/x", true));
    }

    #[tokio::test]
    async fn storage_names_resolve_to_public_addresses_only() {
        use reqwest::dns::Resolve;
        let name = |n: &str| n.parse::<reqwest::dns::Name>().unwrap();
        let refused = PublicOnly.resolve(name("localhost")).await;
        assert!(refused.is_err(), "localhost resolves to loopback only");
    }
}
