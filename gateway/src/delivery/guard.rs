//! The outbound (SSRF) guard: webhook urls are user input, so without it anyone who may create a
//! webhook could make the gateway call its own admin port, the cloud metadata service
//! (169.254.169.254) or hosts on the private network, and read the answers in the attempt log.
//!
//! Destinations in loopback, private, link-local, CGNAT, multicast, broadcast/reserved and
//! unspecified ranges are refused unless they fall inside an operator allow-list
//! (`GATEWAY_ALLOWED_NETWORKS`). IPv6 forms that embed an IPv4 address (IPv4-mapped
//! `::ffff:a.b.c.d`, IPv4-compatible `::a.b.c.d`, NAT64 `64:ff9b::a.b.c.d`) are judged by the
//! embedded address.
//!
//! Two checks are needed because reqwest only calls a resolver for names:
//! - [`OutboundGuard::check_url`] for IP-literal hosts (reqwest connects to them directly);
//! - the [`reqwest::dns::Resolve`] implementation for names: it resolves, then checks every
//!   *answer*, so a public name pointing at a private address (or DNS rebinding) is caught at
//!   connect time. Refused answers are dropped; if none is left the lookup fails with an error
//!   naming each refused address. Redirects must stay disabled in the client (a redirect would be
//!   followed without [`OutboundGuard::check_url`]).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;

use ipnet::IpNet;
use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use url::{Host, Url};

/// Why a destination was refused. The messages name the address and the reason, because they are
/// written into the attempt log for the operator.
#[derive(Debug, thiserror::Error)]
pub enum GuardError {
    #[error(
        "destination {ip} is refused: {class} address (allow it with GATEWAY_ALLOWED_NETWORKS)"
    )]
    Refused { ip: IpAddr, class: &'static str },
    #[error("{host} resolves only to refused addresses: {}", list_refused(.refused))]
    AllRefused {
        host: String,
        refused: Vec<(IpAddr, &'static str)>,
    },
    #[error("{host} resolved to no addresses")]
    NoAddresses { host: String },
    #[error("resolving {host} failed")]
    Resolve {
        host: String,
        #[source]
        source: std::io::Error,
    },
    #[error("url scheme `{0}` is not allowed (only http and https)")]
    Scheme(String),
    #[error("url has no host")]
    NoHost,
}

fn list_refused(refused: &[(IpAddr, &'static str)]) -> String {
    refused
        .iter()
        .map(|(ip, class)| format!("{ip} ({class})"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Refuses non-public destinations unless allow-listed. Cheap to clone (the list is shared).
#[derive(Debug, Clone, Default)]
pub struct OutboundGuard {
    allowed: Arc<[IpNet]>,
}

impl OutboundGuard {
    /// A guard that lets through only public addresses and those inside `allowed`.
    pub fn new(allowed: Vec<IpNet>) -> Self {
        OutboundGuard {
            allowed: allowed.into(),
        }
    }

    /// Allows `ip` when it is public or allow-listed; otherwise says which class refused it.
    pub fn check_ip(&self, ip: IpAddr) -> Result<(), GuardError> {
        let Some(class) = classify(ip) else {
            return Ok(());
        };
        // Allowing 127.0.0.0/8 also allows ::ffff:127.0.0.1: both reach the same host.
        let embedded = embedded_v4(ip).map(IpAddr::V4);
        let allowed = |ip: IpAddr| self.allowed.iter().any(|net| net.contains(&ip));
        if allowed(ip) || embedded.is_some_and(allowed) {
            return Ok(());
        }
        Err(GuardError::Refused { ip, class })
    }

    /// Checks a url before sending: http(s) only, and IP-literal hosts are judged here because
    /// reqwest never passes them to the resolver. Names pass; the resolver checks their answers.
    pub fn check_url(&self, url: &Url) -> Result<(), GuardError> {
        if !matches!(url.scheme(), "http" | "https") {
            return Err(GuardError::Scheme(url.scheme().to_string()));
        }
        match url.host() {
            None => Err(GuardError::NoHost),
            Some(Host::Ipv4(ip)) => self.check_ip(IpAddr::V4(ip)),
            Some(Host::Ipv6(ip)) => self.check_ip(IpAddr::V6(ip)),
            Some(Host::Domain(_)) => Ok(()),
        }
    }

    /// Keeps the allowed answers of a lookup for `host`; fails, naming every refused address, when
    /// none is left.
    pub fn filter_addrs(
        &self,
        host: &str,
        addrs: impl IntoIterator<Item = SocketAddr>,
    ) -> Result<Vec<SocketAddr>, GuardError> {
        let mut ok = vec![];
        let mut refused = vec![];
        for addr in addrs {
            match self.check_ip(addr.ip()) {
                Ok(()) => ok.push(addr),
                Err(GuardError::Refused { ip, class }) => refused.push((ip, class)),
                Err(other) => return Err(other),
            }
        }
        match (ok.is_empty(), refused.is_empty()) {
            (false, _) => Ok(ok),
            (true, true) => Err(GuardError::NoAddresses {
                host: host.to_string(),
            }),
            (true, false) => Err(GuardError::AllRefused {
                host: host.to_string(),
                refused,
            }),
        }
    }
}

impl Resolve for OutboundGuard {
    /// Resolves with the system resolver (tokio's `lookup_host`), then filters the answers.
    fn resolve(&self, name: Name) -> Resolving {
        let guard = self.clone();
        let host = name.as_str().to_string();
        Box::pin(async move {
            let answers = tokio::net::lookup_host((host.as_str(), 0))
                .await
                .map_err(|source| GuardError::Resolve {
                    host: host.clone(),
                    source,
                })?;
            let addrs = guard.filter_addrs(&host, answers)?;
            Ok(Box::new(addrs.into_iter()) as Addrs)
        })
    }
}

/// Finds a guard refusal in an error's source chain (reqwest wraps the resolver's error), so the
/// worker can record it as a refusal rather than a transport failure.
pub fn find_refusal<'a>(err: &'a (dyn std::error::Error + 'static)) -> Option<&'a GuardError> {
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(err);
    while let Some(e) = cur {
        if let Some(g) = e.downcast_ref::<GuardError>()
            && matches!(
                g,
                GuardError::Refused { .. } | GuardError::AllRefused { .. }
            )
        {
            return Some(g);
        }
        cur = e.source();
    }
    None
}

/// Parses `GATEWAY_ALLOWED_NETWORKS`: comma-separated CIDRs; a bare IP means just that address
/// (/32 or /128). Blank entries are ignored, so an empty value allows nothing extra.
pub fn parse_allowed(s: &str) -> Result<Vec<IpNet>, String> {
    s.split(',')
        .map(str::trim)
        .filter(|e| !e.is_empty())
        .map(|entry| {
            entry
                .parse::<IpNet>()
                .or_else(|_| entry.parse::<IpAddr>().map(IpNet::from))
                .map_err(|_| {
                    format!(
                        "GATEWAY_ALLOWED_NETWORKS: `{entry}` is neither a CIDR nor an IP address"
                    )
                })
        })
        .collect()
}

/// The IPv4 address an IPv6 address stands for, for the forms that reach an IPv4 host.
fn embedded_v4(ip: IpAddr) -> Option<Ipv4Addr> {
    let IpAddr::V6(v6) = ip else { return None };
    if let Some(v4) = v6.to_ipv4_mapped() {
        return Some(v4);
    }
    let s = v6.segments();
    let o = v6.octets();
    let tail = Ipv4Addr::new(o[12], o[13], o[14], o[15]);
    match s[..6] {
        // IPv4-compatible (deprecated), but not :: and ::1 which are IPv6's own.
        [0, 0, 0, 0, 0, 0] if !matches!(s[6..], [0, 0] | [0, 1]) => Some(tail),
        // NAT64 well-known prefix: a translator would connect to the embedded address.
        [0x64, 0xff9b, 0, 0, 0, 0] => Some(tail),
        _ => None,
    }
}

/// Why an address is not public, or `None` if it is.
fn classify(ip: IpAddr) -> Option<&'static str> {
    match ip {
        IpAddr::V4(v4) => classify_v4(v4),
        IpAddr::V6(v6) => match embedded_v4(ip) {
            Some(v4) => classify_v4(v4),
            None => classify_v6(v6),
        },
    }
}

fn classify_v4(ip: Ipv4Addr) -> Option<&'static str> {
    let o = ip.octets();
    Some(match o {
        _ if ip.is_unspecified() || o[0] == 0 => "unspecified",
        _ if ip.is_loopback() => "loopback",
        _ if ip.is_private() => "private",
        // Includes the cloud metadata service 169.254.169.254.
        _ if ip.is_link_local() => "link-local",
        [100, b, ..] if (64..128).contains(&b) => "CGNAT (shared address space)",
        _ if ip.is_multicast() => "multicast",
        _ if ip.is_broadcast() => "broadcast",
        // 240.0.0.0/4: reserved, never a real destination.
        [240..=255, ..] => "reserved",
        _ => return None,
    })
}

fn classify_v6(ip: Ipv6Addr) -> Option<&'static str> {
    let first = ip.segments()[0];
    Some(match first {
        _ if ip.is_unspecified() => "unspecified",
        _ if ip.is_loopback() => "loopback",
        _ if ip.is_multicast() => "multicast",
        _ if first & 0xfe00 == 0xfc00 => "private (unique local)",
        _ if first & 0xffc0 == 0xfe80 => "link-local",
        // fec0::/10, deprecated site-local: private in practice.
        _ if first & 0xffc0 == 0xfec0 => "private (site-local)",
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn refuses_non_public_addresses() {
        let guard = OutboundGuard::new(vec![]);
        for (addr, class) in [
            ("127.0.0.1", "loopback"),
            ("10.0.0.1", "private"),
            ("172.16.5.4", "private"),
            ("192.168.1.1", "private"),
            ("169.254.169.254", "link-local"),
            ("100.64.0.1", "CGNAT (shared address space)"),
            ("0.0.0.0", "unspecified"),
            ("224.0.0.1", "multicast"),
            ("255.255.255.255", "broadcast"),
            ("::1", "loopback"),
            ("::", "unspecified"),
            ("fd00::1", "private (unique local)"),
            ("fe80::1", "link-local"),
            ("ff02::1", "multicast"),
            ("::ffff:127.0.0.1", "loopback"),
            ("::ffff:169.254.169.254", "link-local"),
            ("::10.0.0.1", "private"),
            ("64:ff9b::7f00:1", "loopback"),
        ] {
            match guard.check_ip(ip(addr)) {
                Err(GuardError::Refused { ip: got, class: c }) => {
                    assert_eq!((got, c), (ip(addr), class), "{addr}");
                }
                other => panic!("{addr}: {other:?}"),
            }
        }
        let msg = guard
            .check_ip(ip("169.254.169.254"))
            .unwrap_err()
            .to_string();
        assert!(msg.contains("169.254.169.254"), "{msg}");
    }

    #[test]
    fn allows_public_addresses() {
        let guard = OutboundGuard::new(vec![]);
        for addr in [
            "93.184.216.34",
            "8.8.8.8",
            "100.128.0.1",
            "172.32.0.1",
            "2606:4700::1111",
            "::ffff:8.8.8.8",
        ] {
            guard
                .check_ip(ip(addr))
                .unwrap_or_else(|e| panic!("{addr}: {e}"));
        }
    }

    #[test]
    fn allow_list_opens_ranges_including_mapped_forms() {
        let guard = OutboundGuard::new(parse_allowed("127.0.0.0/8").unwrap());
        guard.check_ip(ip("127.0.0.1")).unwrap();
        guard.check_ip(ip("::ffff:127.0.0.1")).unwrap();
        assert!(guard.check_ip(ip("10.0.0.1")).is_err());
        assert!(guard.check_ip(ip("::1")).is_err());
    }

    #[test]
    fn check_url_judges_ip_literals_and_schemes() {
        let guard = OutboundGuard::new(vec![]);
        let url = |s: &str| Url::parse(s).unwrap();
        assert!(matches!(
            guard.check_url(&url("http://127.0.0.1:8080/x")),
            Err(GuardError::Refused { .. })
        ));
        assert!(matches!(
            guard.check_url(&url("http://[::1]/")),
            Err(GuardError::Refused { .. })
        ));
        assert!(matches!(
            guard.check_url(&url("http://[::ffff:7f00:1]/")),
            Err(GuardError::Refused { .. })
        ));
        // WHATWG parsing turns these spellings into IPv4 literals too.
        assert!(matches!(
            guard.check_url(&url("http://0x7f.1/")),
            Err(GuardError::Refused { .. })
        ));
        assert!(matches!(
            guard.check_url(&url("http://2130706433/")),
            Err(GuardError::Refused { .. })
        ));
        assert!(matches!(
            guard.check_url(&url("file:///etc/passwd")),
            Err(GuardError::Scheme(_))
        ));
        guard.check_url(&url("https://93.184.216.34/hook")).unwrap();
        guard.check_url(&url("https://example.com/hook")).unwrap();
    }

    #[test]
    fn filter_keeps_allowed_answers_and_names_refused_ones() {
        let guard = OutboundGuard::new(vec![]);
        let sa = |s: &str| SocketAddr::new(ip(s), 443);
        let kept = guard
            .filter_addrs("mixed.example", [sa("10.0.0.1"), sa("93.184.216.34")])
            .unwrap();
        assert_eq!(kept, vec![sa("93.184.216.34")]);
        let err = guard
            .filter_addrs("evil.example", [sa("10.0.0.1"), sa("::1")])
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "evil.example resolves only to refused addresses: 10.0.0.1 (private), ::1 (loopback)"
        );
        assert!(matches!(
            guard.filter_addrs("empty.example", []),
            Err(GuardError::NoAddresses { .. })
        ));
    }

    #[tokio::test]
    async fn resolver_refuses_localhost_unless_allowed() {
        let guard = OutboundGuard::new(vec![]);
        let err = match guard.resolve("localhost".parse().unwrap()).await {
            Ok(addrs) => panic!("resolved to {:?}", addrs.collect::<Vec<_>>()),
            Err(e) => e,
        };
        let msg = err.to_string();
        assert!(
            msg.contains("localhost") && msg.contains("127.0.0.1"),
            "{msg}"
        );
        assert!(find_refusal(err.as_ref()).is_some());

        let allowed = OutboundGuard::new(parse_allowed("127.0.0.0/8").unwrap());
        let addrs: Vec<_> = allowed
            .resolve("localhost".parse().unwrap())
            .await
            .unwrap()
            .collect();
        assert!(!addrs.is_empty());
        assert!(
            addrs.iter().all(|a| a.ip().is_loopback() && a.is_ipv4()),
            "{addrs:?}"
        );
    }

    #[test]
    fn parse_allowed_accepts_cidrs_and_bare_ips() {
        let nets = parse_allowed(" 127.0.0.0/8, 10.1.2.3 ,::1,, fd00::/8 ").unwrap();
        let want: Vec<IpNet> = ["127.0.0.0/8", "10.1.2.3/32", "::1/128", "fd00::/8"]
            .iter()
            .map(|s| s.parse().unwrap())
            .collect();
        assert_eq!(nets, want);
        assert_eq!(parse_allowed("").unwrap(), vec![]);
        let err = parse_allowed("10.0.0.0/8,intranet").unwrap_err();
        assert!(
            err.contains("GATEWAY_ALLOWED_NETWORKS") && err.contains("intranet"),
            "{err}"
        );
    }
}
