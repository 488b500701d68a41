//! Where receivers may be reached: the network policy for delivery
//! destinations ([`DestinationPolicy`]), the name resolution that enforces
//! it at connect time, and the check made when a receiver is created
//! ([`check_destination`]).
//!
//! A receiver is chosen by whoever may write receivers, and what it answers
//! is visible to whoever may read deliveries; without a policy, a receiver
//! pointed at a cloud metadata service or an internal host would make this
//! process fetch from it. Every address a host name resolves to is checked
//! when the connection is made, so a name that resolves differently later
//! (DNS rebinding) is still caught.

use std::error::Error;
use std::fmt;
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use hyper_util::client::legacy::connect::dns::Name;
use ipnet::{IpNet, Ipv4Net, Ipv6Net};

use crate::config::check_url;
use crate::{NotifyError, ReceiverConfig};

/// What a refusal says the operator can do about it.
pub(crate) const ALLOW_HINT: &str = "receivers may not target loopback, private, link-local or \
     metadata addresses unless the operator allows the range \
     (serve --allow-receiver-network CIDR)";

/// Longest wait for a name lookup in [`check_destination`].
const CHECK_RESOLVE_TIMEOUT: Duration = Duration::from_secs(10);

/// Which addresses receivers may be reached at.
///
/// A public unicast address is always allowed. Any other — loopback,
/// unspecified, private, link-local (where cloud metadata services answer,
/// 169.254.169.254), shared/carrier-grade NAT (100.64.0.0/10, Alibaba
/// Cloud's 100.100.100.200), unique-local (fc00::/7, AWS's fd00:ec2::254),
/// multicast, broadcast, documentation, benchmarking and reserved ranges,
/// and the IPv4-mapped, IPv4-compatible and NAT64 (64:ff9b::/96) IPv6
/// forms of those — only when it lies in one of the ranges the operator
/// allowed. The default allows nothing extra.
///
/// ```no_run
/// use pilothouse_notify::DestinationPolicy;
///
/// let policy = DestinationPolicy::new(vec!["10.20.0.0/16".parse().expect("a CIDR")]);
/// assert!(policy.allows("8.8.8.8".parse().expect("an IP")));
/// assert!(policy.allows("10.20.1.2".parse().expect("an IP")));
/// assert!(!policy.allows("10.30.1.2".parse().expect("an IP")));
/// assert!(!policy.allows("169.254.169.254".parse().expect("an IP")));
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DestinationPolicy {
    allowed: Vec<IpNet>,
}

impl DestinationPolicy {
    /// A policy that also allows the non-public addresses in `allowed`
    /// (for example an internal network where a webhook receiver runs).
    pub fn new(allowed: Vec<IpNet>) -> Self {
        Self { allowed }
    }

    /// The non-public ranges allowed besides public addresses.
    pub fn allowed(&self) -> &[IpNet] {
        &self.allowed
    }

    /// Whether a receiver may be reached at `ip`: a public unicast address
    /// always, any other only inside an allowed range. An IPv6 form of an
    /// IPv4 address is also allowed when the IPv4 address inside is.
    pub fn allows(&self, ip: IpAddr) -> bool {
        self.refusal(ip).is_none()
    }

    /// What `ip` is (`a loopback address`) when the policy refuses it.
    pub(crate) fn refusal(&self, ip: IpAddr) -> Option<&'static str> {
        let what = non_public(ip)?;
        let inside = |ip: IpAddr| self.allowed.iter().any(|net| net.contains(&ip));
        let allowed = inside(ip) || embedded_ipv4(ip).is_some_and(|v4| inside(IpAddr::V4(v4)));
        (!allowed).then_some(what)
    }
}

/// An IPv4 range that is not public unicast, and what an address in it is.
const fn v4(a: u8, b: u8, c: u8, d: u8, prefix: u8, what: &'static str) -> (Ipv4Net, &'static str) {
    (Ipv4Net::new_assert(Ipv4Addr::new(a, b, c, d), prefix), what)
}

/// An IPv6 range that is not public unicast, and what an address in it is.
const fn v6(segments: [u16; 8], prefix: u8, what: &'static str) -> (Ipv6Net, &'static str) {
    let [a, b, c, d, e, f, g, h] = segments;
    (
        Ipv6Net::new_assert(Ipv6Addr::new(a, b, c, d, e, f, g, h), prefix),
        what,
    )
}

const LOOPBACK: &str = "a loopback address";
const UNSPECIFIED: &str = "an unspecified address";
const PRIVATE: &str = "a private address";
const LINK_LOCAL: &str = "a link-local address (where cloud metadata services answer)";
const SHARED: &str = "a shared (carrier-grade NAT) address";
const UNIQUE_LOCAL: &str = "a unique-local (private) address";
const MULTICAST: &str = "a multicast address";
const DOCUMENTATION: &str = "a documentation address";
const BENCHMARKING: &str = "a benchmarking address";
const RESERVED: &str = "a reserved address";

/// IPv4 ranges that are not public unicast (IANA's special-purpose
/// registry, RFC 6890). The first range holding an address names it, so a
/// range comes before any wider one that holds it.
const NON_PUBLIC_V4: &[(Ipv4Net, &str)] = &[
    // "this network" (RFC 1122); connecting to 0.0.0.0 reaches this host
    v4(0, 0, 0, 0, 8, UNSPECIFIED),
    // private networks (RFC 1918)
    v4(10, 0, 0, 0, 8, PRIVATE),
    // shared address space for carrier-grade NAT (RFC 6598); Alibaba
    // Cloud's metadata service answers at 100.100.100.200
    v4(100, 64, 0, 0, 10, SHARED),
    // loopback (RFC 1122)
    v4(127, 0, 0, 0, 8, LOOPBACK),
    // link-local (RFC 3927); the metadata service of AWS, GCP, Azure and
    // others answers at 169.254.169.254
    v4(169, 254, 0, 0, 16, LINK_LOCAL),
    // private networks (RFC 1918)
    v4(172, 16, 0, 0, 12, PRIVATE),
    // IETF protocol assignments (RFC 6890), DS-Lite among them
    v4(192, 0, 0, 0, 24, RESERVED),
    // documentation, TEST-NET-1 (RFC 5737)
    v4(192, 0, 2, 0, 24, DOCUMENTATION),
    // 6to4 relay anycast, deprecated (RFC 7526)
    v4(192, 88, 99, 0, 24, RESERVED),
    // private networks (RFC 1918)
    v4(192, 168, 0, 0, 16, PRIVATE),
    // benchmarking (RFC 2544)
    v4(198, 18, 0, 0, 15, BENCHMARKING),
    // documentation, TEST-NET-2 (RFC 5737)
    v4(198, 51, 100, 0, 24, DOCUMENTATION),
    // documentation, TEST-NET-3 (RFC 5737)
    v4(203, 0, 113, 0, 24, DOCUMENTATION),
    // multicast (RFC 5771)
    v4(224, 0, 0, 0, 4, MULTICAST),
    // limited broadcast (RFC 919), inside the reserved range below
    v4(255, 255, 255, 255, 32, "the broadcast address"),
    // reserved for future use (RFC 1112)
    v4(240, 0, 0, 0, 4, RESERVED),
];

/// IPv6 ranges that are not public unicast (IANA's special-purpose
/// registry). The forms that carry an IPv4 address — IPv4-mapped
/// (`::ffff:0:0/96`), IPv4-compatible (`::/96`) and NAT64 (`64:ff9b::/96`)
/// — are not listed: the IPv4 address inside is looked up instead.
const NON_PUBLIC_V6: &[(Ipv6Net, &str)] = &[
    // unspecified (RFC 4291); connecting to :: reaches this host
    v6([0, 0, 0, 0, 0, 0, 0, 0], 128, UNSPECIFIED),
    // loopback (RFC 4291)
    v6([0, 0, 0, 0, 0, 0, 0, 1], 128, LOOPBACK),
    // local-use IPv4/IPv6 translation (RFC 8215)
    v6([0x64, 0xff9b, 1, 0, 0, 0, 0, 0], 48, RESERVED),
    // discard-only (RFC 6666)
    v6([0x100, 0, 0, 0, 0, 0, 0, 0], 64, RESERVED),
    // IETF protocol assignments (RFC 2928): Teredo, benchmarking, ORCHID
    v6([0x2001, 0, 0, 0, 0, 0, 0, 0], 23, RESERVED),
    // documentation (RFC 3849)
    v6([0x2001, 0xdb8, 0, 0, 0, 0, 0, 0], 32, DOCUMENTATION),
    // 6to4 (RFC 3056), deprecated; it embeds an IPv4 address that is not
    // looked into, so all of it is refused
    v6([0x2002, 0, 0, 0, 0, 0, 0, 0], 16, RESERVED),
    // documentation (RFC 9637)
    v6([0x3fff, 0, 0, 0, 0, 0, 0, 0], 20, DOCUMENTATION),
    // segment routing (SRv6) SIDs (RFC 9602)
    v6([0x5f00, 0, 0, 0, 0, 0, 0, 0], 16, RESERVED),
    // unique-local (RFC 4193); AWS's metadata service answers at
    // fd00:ec2::254
    v6([0xfc00, 0, 0, 0, 0, 0, 0, 0], 7, UNIQUE_LOCAL),
    // link-local (RFC 4291)
    v6([0xfe80, 0, 0, 0, 0, 0, 0, 0], 10, LINK_LOCAL),
    // site-local, deprecated (RFC 3879)
    v6([0xfec0, 0, 0, 0, 0, 0, 0, 0], 10, PRIVATE),
    // multicast (RFC 4291)
    v6([0xff00, 0, 0, 0, 0, 0, 0, 0], 8, MULTICAST),
];

/// What `ip` is when it is not a public unicast address.
fn non_public(ip: IpAddr) -> Option<&'static str> {
    let v4 = |ip: Ipv4Addr| {
        NON_PUBLIC_V4
            .iter()
            .find(|(net, _)| net.contains(&ip))
            .map(|(_, what)| *what)
    };
    match ip {
        IpAddr::V4(ip) => v4(ip),
        IpAddr::V6(ip) => NON_PUBLIC_V6
            .iter()
            .find(|(net, _)| net.contains(&ip))
            .map(|(_, what)| *what)
            .or_else(|| embedded_ipv4(IpAddr::V6(ip)).and_then(v4)),
    }
}

/// The IPv4 address inside an IPv4-mapped (`::ffff:a.b.c.d`),
/// IPv4-compatible (`::a.b.c.d`) or NAT64 (`64:ff9b::a.b.c.d`) IPv6 address.
fn embedded_ipv4(ip: IpAddr) -> Option<Ipv4Addr> {
    let IpAddr::V6(ip) = ip else {
        return None;
    };
    let [a, b, c, d, e, f, _, _] = ip.segments();
    let carries_ipv4 = matches!(
        (a, b, c, d, e, f),
        (0, 0, 0, 0, 0, 0xffff) | (0, 0, 0, 0, 0, 0) | (0x64, 0xff9b, 0, 0, 0, 0)
    );
    let [.., w, x, y, z] = ip.octets();
    carries_ipv4.then(|| Ipv4Addr::new(w, x, y, z))
}

/// What an address the policy refused is, for messages.
pub(crate) fn describe(ip: IpAddr) -> &'static str {
    non_public(ip).unwrap_or("an address outside the allowed ranges")
}

/// An IP address written as a host (`127.0.0.1`, `[::1]`, `::1`).
pub(crate) fn literal_ip(host: &str) -> Option<IpAddr> {
    let bare = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    bare.parse().ok()
}

/// Why a host's addresses cannot be used.
#[derive(Debug)]
pub(crate) enum Unreachable {
    /// The name did not resolve, or to no address.
    Lookup(io::Error),
    /// It is, or resolves to, an address the policy refuses.
    Refused(IpAddr),
}

/// The addresses of `host` (a name or an IP literal) on `port`, when the
/// policy allows every one of them. One refused address refuses the host:
/// the allowed ones are not picked out of a mixed answer.
pub(crate) async fn resolve(
    host: &str,
    port: u16,
    policy: &DestinationPolicy,
) -> Result<Vec<SocketAddr>, Unreachable> {
    let addresses: Vec<SocketAddr> = match literal_ip(host) {
        Some(ip) => vec![SocketAddr::new(ip, port)],
        None => tokio::net::lookup_host((host, port))
            .await
            .map_err(Unreachable::Lookup)?
            .collect(),
    };
    if addresses.is_empty() {
        return Err(Unreachable::Lookup(io::Error::new(
            io::ErrorKind::NotFound,
            "the name resolves to no address",
        )));
    }
    if let Some(refused) = addresses.iter().find(|a| !policy.allows(a.ip())) {
        return Err(Unreachable::Refused(refused.ip()));
    }
    Ok(addresses)
}

/// The error the HTTP resolver fails with for a refused address; found
/// again in the HTTP client's error by [`refused_address`].
#[derive(Debug)]
struct RefusedAddress(IpAddr);

impl fmt::Display for RefusedAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "refused to connect to {}, {}", self.0, describe(self.0))
    }
}

impl Error for RefusedAddress {}

/// The refused address behind an HTTP client error, if a refusal caused it.
pub(crate) fn refused_address(error: &(dyn Error + 'static)) -> Option<IpAddr> {
    let mut next = Some(error);
    while let Some(e) = next {
        if let Some(RefusedAddress(ip)) = e.downcast_ref::<RefusedAddress>() {
            return Some(*ip);
        }
        next = e.source();
    }
    None
}

/// The HTTP client's name resolver: [`resolve`] under the policy, so every
/// new connection is checked when it is made.
#[derive(Debug, Clone)]
pub(crate) struct CheckedResolver {
    policy: Arc<DestinationPolicy>,
}

impl CheckedResolver {
    pub(crate) fn new(policy: DestinationPolicy) -> Self {
        Self {
            policy: Arc::new(policy),
        }
    }
}

type BoxError = Box<dyn Error + Send + Sync>;

impl tower::Service<Name> for CheckedResolver {
    type Response = std::vec::IntoIter<SocketAddr>;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, BoxError>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, name: Name) -> Self::Future {
        let policy = Arc::clone(&self.policy);
        Box::pin(async move {
            // the connector puts the URL's port on each address
            match resolve(name.as_str(), 0, &policy).await {
                Ok(addresses) => Ok(addresses.into_iter()),
                Err(Unreachable::Lookup(e)) => Err(e.into()),
                Err(Unreachable::Refused(ip)) => Err(RefusedAddress(ip).into()),
            }
        })
    }
}

/// Checks, when a receiver is created or changed, that its host — the
/// URL's for Slack and webhooks, `smtp_host` for email — resolves and that
/// the policy allows every address it resolves to. Runs
/// [`ReceiverConfig::validate`] first.
///
/// The error names the field (`url`, `smtp_host`) and says why: what kind
/// of address it is (the address itself only when the URL gave it), or
/// that the name cannot be resolved. This is a
/// courtesy to whoever configures the receiver; deliveries check again
/// whenever they connect.
pub async fn check_destination(
    config: &ReceiverConfig,
    policy: &DestinationPolicy,
) -> Result<(), NotifyError> {
    config.validate()?;
    let (field, host, port) = match config {
        ReceiverConfig::Slack { url, .. } | ReceiverConfig::Webhook { url, .. } => {
            let url = check_url("url", url)?;
            let host = url.host_str().unwrap_or_default().to_owned();
            ("url", host, url.port_or_known_default().unwrap_or(443))
        }
        ReceiverConfig::Email {
            smtp_host,
            smtp_port,
            ..
        } => ("smtp_host", smtp_host.clone(), *smtp_port),
    };
    let literal = literal_ip(&host).is_some();
    match tokio::time::timeout(CHECK_RESOLVE_TIMEOUT, resolve(&host, port, policy)).await {
        Ok(Ok(_)) => Ok(()),
        // a name's address is not echoed: it would tell internal DNS
        Ok(Err(Unreachable::Refused(ip))) if literal => Err(NotifyError::invalid(
            field,
            format!("is {ip}, {}; {ALLOW_HINT}", describe(ip)),
        )),
        Ok(Err(Unreachable::Refused(ip))) => Err(NotifyError::invalid(
            field,
            format!("resolves to {}; {ALLOW_HINT}", describe(ip)),
        )),
        Ok(Err(Unreachable::Lookup(e))) => Err(NotifyError::invalid(
            field,
            format!("cannot be resolved ({e})"),
        )),
        Err(_elapsed) => Err(NotifyError::invalid(
            field,
            "cannot be resolved (the lookup timed out)",
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Checks that a policy allowing `allowed` answers `expected` for
    /// `address`.
    fn check(address: &str, allowed: &[&str], expected: bool) {
        let ip: IpAddr = address.parse().expect("an IP address");
        let allowed = allowed
            .iter()
            .map(|net| net.parse().expect("a CIDR"))
            .collect();
        let policy = DestinationPolicy::new(allowed);
        assert_eq!(
            policy.allows(ip),
            expected,
            "{address} under {:?} ({:?})",
            policy.allowed(),
            non_public(ip)
        );
    }

    #[test]
    fn public_unicast_addresses_are_allowed() {
        for address in [
            "8.8.8.8",
            "1.1.1.1",
            "100.63.255.255",
            "100.128.0.0",
            "172.15.255.255",
            "172.32.0.0",
            "192.0.1.1",
            "192.169.0.1",
            "198.17.255.255",
            "198.20.0.0",
            "223.255.255.255",
            "2606:4700::1111",
            "2001:4860:4860::8888",
            "2a00:1450::1",
            "::ffff:8.8.8.8",
            "64:ff9b::808:808",
        ] {
            check(address, &[], true);
        }
    }

    #[test]
    fn non_public_addresses_are_refused_by_default() {
        for address in [
            // unspecified, "this network"
            "0.0.0.0",
            "0.1.2.3",
            "::",
            // loopback
            "127.0.0.1",
            "127.255.255.254",
            "::1",
            // private
            "10.0.0.1",
            "172.16.0.1",
            "172.31.255.255",
            "192.168.1.1",
            // link-local, cloud metadata
            "169.254.0.1",
            "169.254.169.254",
            "fe80::1",
            "febf::1",
            // shared, carrier-grade NAT; Alibaba Cloud metadata
            "100.64.0.1",
            "100.100.100.200",
            "100.127.255.255",
            // unique-local; AWS IPv6 metadata
            "fc00::1",
            "fd00:ec2::254",
            "fdff::1",
            // site-local
            "fec0::1",
            // multicast
            "224.0.0.1",
            "239.255.255.250",
            "ff02::1",
            // broadcast and reserved
            "255.255.255.255",
            "240.0.0.1",
            "192.0.0.1",
            "192.0.0.170",
            "192.88.99.1",
            "100::1",
            "2001::1",
            "2002:a9fe:a9fe::1",
            "5f00::1",
            "64:ff9b:1::1",
            // benchmarking
            "198.18.0.1",
            "198.19.255.255",
            // documentation
            "192.0.2.1",
            "198.51.100.1",
            "203.0.113.1",
            "2001:db8::1",
            "3fff::1",
            // IPv4-mapped, IPv4-compatible and NAT64 forms
            "::ffff:127.0.0.1",
            "::ffff:10.0.0.1",
            "::ffff:169.254.169.254",
            "::ffff:0.0.0.0",
            "::127.0.0.1",
            "::10.0.0.1",
            "64:ff9b::a9fe:a9fe",
            "64:ff9b::7f00:1",
        ] {
            check(address, &[], false);
        }
    }

    #[test]
    fn allowed_ranges_let_non_public_addresses_through() {
        check("127.0.0.1", &["127.0.0.0/8"], true);
        check("127.0.0.2", &["127.0.0.1/32"], false);
        check("127.0.0.1", &["127.0.0.1/32"], true);
        check("10.20.1.2", &["10.20.0.0/16"], true);
        check("10.30.1.2", &["10.20.0.0/16"], false);
        check("169.254.169.254", &["10.0.0.0/8", "127.0.0.0/8"], false);
        check("::1", &["127.0.0.0/8"], false);
        check("::1", &["::1/128"], true);
        check("fd00:ec2::254", &["fd12::/16"], false);
        check("fd12::5", &["fd12::/16"], true);
        // an IPv6 form of an allowed IPv4 address, and the form itself
        check("::ffff:127.0.0.1", &["127.0.0.0/8"], true);
        check("64:ff9b::a00:1", &["10.0.0.0/8"], true);
        check("::ffff:10.0.0.1", &["::ffff:10.0.0.0/104"], true);
        check("::ffff:10.0.0.1", &["192.168.0.0/16"], false);
        // public addresses need no allowance
        check("8.8.8.8", &["127.0.0.0/8"], true);
    }

    #[test]
    fn refused_addresses_are_described() {
        let describe = |a: &str| describe(a.parse().expect("an IP address"));
        assert_eq!(describe("127.0.0.1"), "a loopback address");
        assert_eq!(
            describe("169.254.169.254"),
            "a link-local address (where cloud metadata services answer)"
        );
        assert_eq!(describe("255.255.255.255"), "the broadcast address");
        assert_eq!(describe("::ffff:10.0.0.1"), "a private address");
        assert_eq!(
            describe("fd00:ec2::254"),
            "a unique-local (private) address"
        );
    }

    #[test]
    fn literals_are_recognized_with_and_without_brackets() {
        assert_eq!(literal_ip("127.0.0.1"), Some(IpAddr::from([127, 0, 0, 1])));
        assert_eq!(literal_ip("[::1]"), Some(IpAddr::V6(Ipv6Addr::LOCALHOST)));
        assert_eq!(literal_ip("::1"), Some(IpAddr::V6(Ipv6Addr::LOCALHOST)));
        assert_eq!(literal_ip("localhost"), None);
        assert_eq!(literal_ip("[localhost]"), None);
    }

    #[tokio::test]
    async fn names_and_literals_are_checked() {
        let policy = DestinationPolicy::default();
        // localhost resolves to loopback only
        assert!(matches!(
            resolve("localhost", 80, &policy).await,
            Err(Unreachable::Refused(ip)) if ip.is_loopback()
        ));
        assert!(matches!(
            resolve("[::1]", 80, &policy).await,
            Err(Unreachable::Refused(ip)) if ip == IpAddr::V6(Ipv6Addr::LOCALHOST)
        ));
        let allowed = DestinationPolicy::new(vec![
            "127.0.0.0/8".parse().expect("a CIDR"),
            "::1/128".parse().expect("a CIDR"),
        ]);
        let addresses = resolve("localhost", 80, &allowed).await.expect("allowed");
        assert!(addresses.iter().all(|a| a.port() == 80), "{addresses:?}");
    }
}
