//! Who may drive a lab: the websocket accepts only the page's own origin and the origins the
//! operator lists (`--allowed-origin`).
//!
//! Binding to 127.0.0.1 does not protect a lab on its own: any web page the learner opens can ask
//! the learner's browser to open a websocket to 127.0.0.1 (cross-site websocket hijacking), and a
//! hostile name can be pointed at 127.0.0.1 (DNS rebinding). Browsers always send `Origin` on a
//! websocket handshake and the `Host` they dialled, so both are checked against the names this
//! server answers to. A client that sends no `Origin` is not a browser, so no web page drives it.

use std::net::SocketAddr;

/// The `host[:port]` names this server answers to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SiteAccess {
    hosts: Vec<String>,
}

/// Why a handshake was refused, for the server log and the HTTP answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Refused {
    #[error(
        "this page was opened under a name grouplab does not answer to; open it at the address grouplab printed"
    )]
    UnknownHost,
    #[error(
        "a page from another site may not drive this lab; start grouplab with --allowed-origin to allow it"
    )]
    ForeignOrigin,
}

/// An `--allowed-origin` that is not `http(s)://host[:port]`.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("`{0}` is not an origin: write it as http://host:port or https://host")]
pub struct BadOrigin(pub String);

impl SiteAccess {
    /// The names for a server listening on `addr`, and the `allowed` origins.
    pub fn new(addr: SocketAddr, allowed: &[String]) -> Result<Self, BadOrigin> {
        let port = addr.port();
        let mut hosts = vec![match addr {
            SocketAddr::V4(v4) => format!("{}:{port}", v4.ip()),
            SocketAddr::V6(v6) => format!("[{}]:{port}", v6.ip()),
        }];
        if addr.ip().is_loopback() || addr.ip().is_unspecified() {
            hosts.extend([
                format!("127.0.0.1:{port}"),
                format!("localhost:{port}"),
                format!("[::1]:{port}"),
            ]);
        }
        for origin in allowed {
            hosts.push(
                host_of(origin)
                    .ok_or_else(|| BadOrigin(origin.clone()))?
                    .to_owned(),
            );
        }
        for host in &mut hosts {
            host.make_ascii_lowercase();
        }
        hosts.dedup();
        Ok(Self { hosts })
    }

    /// Whether a websocket handshake with these headers may drive a lab.
    pub fn check(&self, host: Option<&str>, origin: Option<&str>) -> Result<(), Refused> {
        let known = |name: &str| self.hosts.iter().any(|h| h.eq_ignore_ascii_case(name));
        if !host.is_some_and(known) {
            return Err(Refused::UnknownHost);
        }
        match origin {
            None => Ok(()),
            Some(origin) if host_of(origin).is_some_and(known) => Ok(()),
            Some(_) => Err(Refused::ForeignOrigin),
        }
    }
}

/// `host[:port]` of an `http(s)://host[:port]` origin.
fn host_of(origin: &str) -> Option<&str> {
    let rest = origin
        .strip_prefix("http://")
        .or_else(|| origin.strip_prefix("https://"))?;
    let host = rest.strip_suffix('/').unwrap_or(rest);
    (!host.is_empty() && !host.contains(['/', '@', '?', '#', ' '])).then_some(host)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[track_caller]
    fn check(
        access: &SiteAccess,
        host: Option<&str>,
        origin: Option<&str>,
        expected: Result<(), Refused>,
    ) {
        assert_eq!(
            access.check(host, origin),
            expected,
            "host {host:?}, origin {origin:?}"
        );
    }

    #[test]
    fn only_the_pages_own_origin_may_drive_a_loopback_lab() {
        let access = SiteAccess::new("127.0.0.1:3000".parse().expect("an address"), &[])
            .expect("no origins to read");
        let page = Some("127.0.0.1:3000");
        check(&access, page, Some("http://127.0.0.1:3000"), Ok(()));
        check(
            &access,
            Some("localhost:3000"),
            Some("http://localhost:3000"),
            Ok(()),
        );
        check(
            &access,
            Some("LOCALHOST:3000"),
            Some("http://localhost:3000"),
            Ok(()),
        );
        check(&access, page, None, Ok(()));
        check(
            &access,
            page,
            Some("http://evil.example"),
            Err(Refused::ForeignOrigin),
        );
        check(
            &access,
            page,
            Some("http://127.0.0.1:3001"),
            Err(Refused::ForeignOrigin),
        );
        check(&access, page, Some("null"), Err(Refused::ForeignOrigin));
        // DNS rebinding: a hostile name resolved to 127.0.0.1 is same-origin with itself.
        check(
            &access,
            Some("evil.example:3000"),
            Some("http://evil.example:3000"),
            Err(Refused::UnknownHost),
        );
        check(&access, None, None, Err(Refused::UnknownHost));
    }

    #[test]
    fn listed_origins_are_allowed_and_bad_ones_refused_at_start() {
        let classroom = SiteAccess::new(
            "192.0.2.7:3000".parse().expect("an address"),
            &["https://lab.school.example".to_owned()],
        )
        .expect("a good origin");
        check(
            &classroom,
            Some("192.0.2.7:3000"),
            Some("http://192.0.2.7:3000"),
            Ok(()),
        );
        check(
            &classroom,
            Some("lab.school.example"),
            Some("https://lab.school.example"),
            Ok(()),
        );
        check(
            &classroom,
            Some("localhost:3000"),
            None,
            Err(Refused::UnknownHost),
        );
        assert_eq!(
            SiteAccess::new(
                "127.0.0.1:1".parse().expect("an address"),
                &["lab.example".into()]
            ),
            Err(BadOrigin("lab.example".into()))
        );
    }
}
