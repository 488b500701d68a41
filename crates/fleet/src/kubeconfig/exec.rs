//! What the allow-listed exec credential plugins may be asked to do, and the
//! servers they may hand credentials to.
//!
//! An exec plugin runs with the service's own cloud identity. Two rules keep
//! an uploaded kubeconfig from turning that identity against the fleet:
//! - the plugin may only issue a token, with arguments whose shape is known:
//!   its subcommand first (`kubelogin get-token`, `aws-iam-authenticator
//!   token`; for `aws`, only known global options before `eks get-token`),
//!   each option known as a flag or as taking a value;
//! - the token goes only to a server whose URL matches one of the operator's
//!   endpoint patterns for that plugin ([`ExecServerPattern`]): an EKS token is
//!   for `https://*.eks.amazonaws.com`, not for a host of the uploader's
//!   choosing.

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

/// The endpoint patterns of [`KubeconfigPolicy::default`](super::KubeconfigPolicy):
/// the public API server host names of each managed Kubernetes service.
pub const DEFAULT_EXEC_SERVER_PATTERNS: [(&str, &str); 7] = [
    // <id>.gr7.<region>.eks.amazonaws.com and its siblings
    ("aws", "https://*.eks.amazonaws.com"),
    ("aws", "https://*.eks.amazonaws.com.cn"),
    ("aws-iam-authenticator", "https://*.eks.amazonaws.com"),
    ("aws-iam-authenticator", "https://*.eks.amazonaws.com.cn"),
    // <dns-prefix>.hcp.<region>.azmk8s.io, <name>.privatelink.<region>.azmk8s.io
    ("kubelogin", "https://*.azmk8s.io"),
    // the DNS-based control-plane endpoints of GKE; IP endpoints only when
    // the operator lists them
    ("gke-gcloud-auth-plugin", "https://*.gke.goog"),
    // the Connect gateway, for clusters reached through a fleet membership
    (
        "gke-gcloud-auth-plugin",
        "https://connectgateway.googleapis.com",
    ),
];

/// One operator rule: exec plugin `plugin` may hand its credentials to API
/// servers whose URL matches `pattern`.
///
/// Written `PLUGIN=PATTERN` (the form of `serve --exec-server-pattern`), a
/// pattern is `https://HOST[:PORT]`:
/// - `HOST` is a DNS name whose labels may be `*`, each `*` standing for one
///   or more whole labels (`https://*.azmk8s.io` matches
///   `https://a.hcp.eastus.azmk8s.io`, not `https://evilazmk8s.io`), or an IP
///   address, which matches only itself (a `*` never matches an IP address);
/// - `PORT` is a number or `*`; without it, only 443 matches.
///
/// Paths of server URLs are not compared.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecServerPattern {
    /// The exec plugin's command name.
    pub plugin: String,
    pattern: ServerPattern,
}

impl ExecServerPattern {
    /// A rule for `plugin`; `pattern` as described on the type.
    pub fn new(plugin: &str, pattern: &str) -> Result<Self, String> {
        if plugin.is_empty() || plugin.contains(['/', '\\', '=']) {
            return Err(format!("`{plugin}` is not a bare plugin command name"));
        }
        Ok(Self {
            plugin: plugin.to_owned(),
            pattern: pattern.parse()?,
        })
    }

    /// The built-in rules ([`DEFAULT_EXEC_SERVER_PATTERNS`]).
    pub fn defaults() -> Vec<Self> {
        DEFAULT_EXEC_SERVER_PATTERNS
            .iter()
            .map(|(plugin, pattern)| Self::new(plugin, pattern).expect("a valid built-in pattern"))
            .collect()
    }

    /// The pattern as written.
    pub fn pattern(&self) -> &str {
        &self.pattern.text
    }

    /// Whether `server` (an `https://` URL) matches the pattern.
    pub fn matches(&self, server: &str) -> bool {
        self.pattern.matches(server)
    }
}

impl FromStr for ExecServerPattern {
    type Err = String;

    /// `PLUGIN=PATTERN`.
    fn from_str(text: &str) -> Result<Self, String> {
        let (plugin, pattern) = text
            .split_once('=')
            .ok_or_else(|| format!("`{text}` is not PLUGIN=PATTERN"))?;
        Self::new(plugin.trim(), pattern.trim())
    }
}

impl fmt::Display for ExecServerPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}={}", self.plugin, self.pattern.text)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct ServerPattern {
    text: String,
    host: HostPattern,
    /// `None`: any port.
    port: Option<u16>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum HostPattern {
    Ip(IpAddr),
    /// Lowercase labels; `*` is a wildcard label.
    Dns(Vec<String>),
}

impl FromStr for ServerPattern {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        let bad = |why: &str| format!("endpoint pattern `{text}`: {why}");
        let rest = text
            .strip_prefix("https://")
            .ok_or_else(|| bad("must start with https://"))?;
        if rest.contains(['/', '?', '#', '@']) {
            return Err(bad("names only https://HOST[:PORT], without path or user"));
        }
        let (host, port) = split_host_port(rest).ok_or_else(|| bad("has no host"))?;
        let port = match port {
            None => Some(443),
            Some("*") => None,
            Some(port) => Some(port.parse().map_err(|_| bad("has a bad port"))?),
        };
        if host.contains(':') && !rest.starts_with('[') {
            return Err(bad(
                "an IPv6 address goes in brackets, as in https://[::1]:6443",
            ));
        }
        let host = match host.parse::<IpAddr>() {
            Ok(ip) => HostPattern::Ip(ip),
            Err(_)
                if host
                    .split('.')
                    .all(|label| label == "*" || label.bytes().all(|b| b.is_ascii_digit())) =>
            {
                return Err(bad(
                    "IP endpoints are listed one by one (a `*` never matches an IP address)",
                ));
            }
            Err(_) => {
                let labels: Vec<String> = host.split('.').map(str::to_ascii_lowercase).collect();
                let valid = labels.iter().all(|label| {
                    label == "*"
                        || (!label.is_empty()
                            && label
                                .bytes()
                                .all(|b| b.is_ascii_alphanumeric() || b == b'-'))
                });
                if !valid {
                    return Err(bad("the host must be DNS labels or `*`, or an IP address"));
                }
                // a pattern must pin something: `https://*` or `*.*` would
                // hand tokens to any host
                if labels.iter().filter(|label| *label != "*").count() < 2 {
                    return Err(bad(
                        "must name at least a domain and its parent (e.g. https://*.example.com)",
                    ));
                }
                HostPattern::Dns(labels)
            }
        };
        Ok(Self {
            text: text.to_owned(),
            host,
            port,
        })
    }
}

impl ServerPattern {
    fn matches(&self, server: &str) -> bool {
        // parsed as kube parses the server it connects to, so that the host
        // judged here is the host the token goes to
        let Ok(uri) = server.trim().parse::<http::Uri>() else {
            return false;
        };
        if uri.scheme_str() != Some("https") {
            return false;
        }
        let Some(authority) = uri.authority() else {
            return false;
        };
        if authority.as_str().contains('@') {
            return false;
        }
        let port = authority.port_u16().unwrap_or(443);
        if self.port.is_some_and(|wanted| wanted != port) {
            return false;
        }
        let host = authority.host();
        let literal = host
            .strip_prefix('[')
            .and_then(|h| h.strip_suffix(']'))
            .unwrap_or(host)
            .parse::<IpAddr>();
        match (&self.host, literal) {
            (HostPattern::Ip(ip), Ok(address)) => *ip == address,
            (HostPattern::Dns(labels), Err(_)) => {
                let domain = host.trim_end_matches('.').to_ascii_lowercase();
                let labels_ok = domain.split('.').all(|label| {
                    !label.is_empty()
                        && label
                            .bytes()
                            .all(|b| b.is_ascii_alphanumeric() || b == b'-')
                });
                let host: Vec<&str> = domain.split('.').collect();
                labels_ok && labels_match(labels, &host)
            }
            _ => false,
        }
    }
}

/// `*` matches one or more whole labels.
fn labels_match(pattern: &[String], host: &[&str]) -> bool {
    match pattern.split_first() {
        None => host.is_empty(),
        Some((first, rest)) if first == "*" => {
            (1..=host.len()).any(|taken| labels_match(rest, &host[taken..]))
        }
        Some((first, rest)) => {
            host.first().is_some_and(|label| label == first) && labels_match(rest, &host[1..])
        }
    }
}

/// `host[:port]`, IPv6 in brackets.
fn split_host_port(text: &str) -> Option<(&str, Option<&str>)> {
    if let Some(bracketed) = text.strip_prefix('[') {
        let (host, after) = bracketed.split_once(']')?;
        return match after {
            "" => Some((host, None)),
            _ => Some((host, Some(after.strip_prefix(':')?))),
        };
    }
    let (host, port) = match text.rsplit_once(':') {
        Some((host, port)) => (host, Some(port)),
        None => (text, None),
    };
    (!host.is_empty()).then_some((host, port))
}

/// How an allow-listed plugin must be invoked, for the plugins we know.
struct Invocation {
    /// The words that must come first (after the known global options).
    subcommand: &'static [&'static str],
    /// Global options that may come before the subcommand and take no value.
    flags: &'static [&'static str],
    /// Global options that may come before the subcommand and take a value
    /// (`--region us-east-1` or `--region=us-east-1`).
    valued: &'static [&'static str],
    /// The accepted form, for errors.
    expected: &'static str,
}

fn invocation(command: &str) -> Option<Invocation> {
    match command {
        "aws" => Some(Invocation {
            subcommand: &["eks", "get-token"],
            // not --debug (it logs the signed request and the credentials),
            // --endpoint-url or --no-verify-ssl: nothing a token needs
            flags: &[
                "--no-paginate",
                "--no-sign-request",
                "--no-cli-pager",
                "--cli-auto-prompt",
                "--no-cli-auto-prompt",
            ],
            valued: &[
                "--region",
                "--profile",
                "--output",
                "--query",
                "--color",
                "--cli-read-timeout",
                "--cli-connect-timeout",
                "--cli-binary-format",
            ],
            expected: "aws [--region R] [--profile P] … eks get-token …",
        }),
        "aws-iam-authenticator" => Some(Invocation {
            subcommand: &["token"],
            flags: &[],
            valued: &[],
            expected: "aws-iam-authenticator token …",
        }),
        "kubelogin" => Some(Invocation {
            subcommand: &["get-token"],
            flags: &[],
            valued: &[],
            expected: "kubelogin get-token …",
        }),
        _ => None,
    }
}

/// Checks the arguments of a known plugin; `Err` holds the accepted form.
/// Plugins we do not know (allowed by the operator) are not checked here.
pub(super) fn check_arguments(command: &str, args: &[String]) -> Result<(), &'static str> {
    let Some(invocation) = invocation(command) else {
        return Ok(());
    };
    let mut rest = args.iter().map(String::as_str);
    let mut next = rest.next();
    // known global options, each a flag or with its value
    while let Some(arg) = next.filter(|arg| arg.starts_with('-')) {
        let name = arg.split_once('=').map_or(arg, |(name, _)| name);
        if invocation.flags.contains(&arg) {
        } else if invocation.valued.contains(&name) {
            if !arg.contains('=') && rest.next().is_none() {
                return Err(invocation.expected);
            }
        } else {
            return Err(invocation.expected);
        }
        next = rest.next();
    }
    for word in invocation.subcommand {
        if next != Some(word) {
            return Err(invocation.expected);
        }
        next = rest.next();
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(pattern: &str, server: &str, expected: bool) {
        let rule = ExecServerPattern::new("aws", pattern).expect(pattern);
        assert_eq!(rule.matches(server), expected, "{pattern} vs {server}");
    }

    #[test]
    fn endpoint_patterns() {
        let eks = "https://*.eks.amazonaws.com";
        check(eks, "https://ABC123.gr7.us-east-1.eks.amazonaws.com", true);
        check(
            eks,
            "https://abc123.yl4.eu-west-1.eks.amazonaws.com:443",
            true,
        );
        check(
            eks,
            "https://abc123.yl4.eu-west-1.eks.amazonaws.com/k8s",
            true,
        );
        check(eks, "https://abc.eks.amazonaws.com:8443", false);
        check(eks, "https://eks.amazonaws.com", false);
        check(eks, "https://evil-eks.amazonaws.com", false);
        check(eks, "https://x.eks.amazonaws.com.evil.example", false);
        check(eks, "https://evil.example.com", false);
        check(eks, "http://abc.gr7.us-east-1.eks.amazonaws.com", false);
        check(eks, "https://52.1.2.3", false);
        check(eks, "https://abc.gr7.us-east-1.eks.amazonaws.com.", true);
        check(eks, "https://evil.example.com?.eks.amazonaws.com", false);
        check(eks, "https://evil.example.com#.eks.amazonaws.com", false);
        check(eks, "https://a.eks.amazonaws.com@evil.example.com", false);
        check(eks, "https://evil.example.com\\@a.eks.amazonaws.com", false);
        check(eks, "https://evil_host.eks.amazonaws.com", false);
        check(
            "https://*.gr7.*.eks.amazonaws.com",
            "https://a.gr7.us-east-1.eks.amazonaws.com",
            true,
        );
        check(
            "https://*.gr7.*.eks.amazonaws.com",
            "https://a.yl4.us-east-1.eks.amazonaws.com",
            false,
        );
        check(
            "https://*.azmk8s.io",
            "https://aks-dns-1a2b.hcp.eastus.azmk8s.io",
            true,
        );
        check("https://*.azmk8s.io", "https://evilazmk8s.io", false);
        check("https://127.0.0.1:*", "https://127.0.0.1:34567", true);
        check("https://127.0.0.1:*", "https://127.0.0.2:34567", false);
        check("https://127.0.0.1", "https://127.0.0.1:6443", false);
        check("https://[::1]:6443", "https://[::1]:6443", true);
        check("https://10.0.0.5:443", "https://10.0.0.5", true);
        check(
            "https://api.example.com:6443",
            "https://API.example.com:6443",
            true,
        );
        for bad in [
            "http://*.example.com",
            "https://*",
            "https://*.*",
            "https://*.com",
            "https://a.example.com/path",
            "https://user@a.example.com",
            "https://a.example.com:x",
            "https://a_b.example.com",
            "https://10.0.0.*",
            "https://::1",
        ] {
            assert!(ExecServerPattern::new("aws", bad).is_err(), "{bad}");
        }
        assert!("aws".parse::<ExecServerPattern>().is_err());
        assert!(
            "/bin/aws=https://*.example.com"
                .parse::<ExecServerPattern>()
                .is_err()
        );
        let parsed: ExecServerPattern = "kubelogin=https://*.azmk8s.io".parse().unwrap();
        assert_eq!(parsed.plugin, "kubelogin");
        assert_eq!(parsed.to_string(), "kubelogin=https://*.azmk8s.io");
        assert_eq!(ExecServerPattern::defaults().len(), 7);
    }

    #[test]
    fn plugin_arguments_are_known() {
        let check = |command: &str, args: &[&str], ok: bool| {
            let args: Vec<String> = args.iter().map(|a| (*a).to_owned()).collect();
            assert_eq!(
                check_arguments(command, &args).is_ok(),
                ok,
                "{command} {args:?}"
            );
        };
        check(
            "kubelogin",
            &["get-token", "--login", "spn", "--server-id", "x"],
            true,
        );
        // a boolean flag taken as one with a value let another subcommand through
        check(
            "kubelogin",
            &["--logtostderr", "remove-tokens", "get-token"],
            false,
        );
        check("kubelogin", &["-v", "5", "get-token"], false);
        check("kubelogin", &["remove-tokens"], false);
        check("kubelogin", &[], false);
        check("aws", &["eks", "get-token", "--cluster-name", "prod"], true);
        check(
            "aws",
            &[
                "--region",
                "us-east-1",
                "eks",
                "get-token",
                "--cluster-name",
                "p",
            ],
            true,
        );
        check(
            "aws",
            &["--region=us-east-1", "--no-cli-pager", "eks", "get-token"],
            true,
        );
        check("aws", &["--no-paginate", "s3", "eks", "get-token"], false);
        // flags that log credentials or send the request elsewhere
        check("aws", &["--debug", "eks", "get-token"], false);
        check(
            "aws",
            &["--endpoint-url", "https://evil.example", "eks", "get-token"],
            false,
        );
        check("aws", &["--no-verify-ssl", "eks", "get-token"], false);
        check("aws", &["--no-such-flag", "x", "eks", "get-token"], false);
        check("aws", &["--region"], false);
        check("aws", &["eks", "update-kubeconfig"], false);
        check("aws", &["s3", "cp", "s3://bucket/key", "-"], false);
        check("aws-iam-authenticator", &["token", "-i", "prod"], true);
        check("aws-iam-authenticator", &["-i", "prod", "token"], false);
        check(
            "gke-gcloud-auth-plugin",
            &["--use_application_default_credentials"],
            true,
        );
    }
}
