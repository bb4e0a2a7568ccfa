//! Who may drive a lab: the websocket accepts only the page's own origin and the origins the
//! operator lists (`--allowed-origin`).
//!
//! Binding to 127.0.0.1 does not protect a lab on its own: any web page the learner opens can ask
//! the learner's browser to open a websocket to 127.0.0.1 (cross-site websocket hijacking), and a
//! hostile name can be pointed at 127.0.0.1 (DNS rebinding). Browsers always send `Origin` on a
//! websocket handshake and the `Host` they dialled, so both are checked against the names this
//! server answers to. A client that sends no `Origin` is not a browser, so no web page drives it.
//!
//! Listening where other machines can reach it needs `--public` and an access token: the link
//! `/?token=…` sets an HttpOnly, SameSite=Strict cookie, and every request but `/healthz` must
//! carry it. Then the names are not checked (a class reaches the server by any name), but the
//! origin must still be the page's own.

use std::net::SocketAddr;

/// The `host[:port]` names this server answers to, and its access token when it is public.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SiteAccess {
    hosts: Vec<String>,
    token: Option<String>,
    /// Whether other machines reach it (then it answers to any name). A class on loopback has
    /// a token (the instructor's) and still checks names.
    reachable: bool,
}

/// The cookie that carries the access token.
pub const TOKEN_COOKIE: &str = "grouplab_token";

/// Why grouplab will not listen where it was asked to.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ExposureError {
    #[error(
        "{0} can be reached from other machines, and anyone who reaches it could start processes and delete the lab's topics. To serve a class, start grouplab with --public (it then asks every visitor for an access link); to keep it to this machine, use --addr 127.0.0.1:3000."
    )]
    NotLoopback(SocketAddr),
    #[error("the access token must be at least 16 letters, digits, `-` or `_`")]
    WeakToken,
    #[error(
        "the embedded broker's address {0} can be reached from other machines, and the broker asks nobody who they are: anyone who reaches it could read, write and delete the lab's topics. To let a class's laptops run their own consumers, start grouplab with --public; to keep it to this machine, use --broker-addr 127.0.0.1:9092."
    )]
    BrokerNotLoopback(SocketAddr),
    #[error(
        "--advertised-host `{0}` is not a host name or an address: use letters, digits, `.` and `-` (lab.school.example), or an IP address"
    )]
    AdvertisedHost(String),
}

/// Checks where the embedded broker listens and what it tells clients it is: beyond loopback
/// only with `public`, as for the page.
pub fn check_broker_exposure(
    broker_addr: SocketAddr,
    public: bool,
    advertised_host: Option<&str>,
) -> Result<(), ExposureError> {
    if !broker_addr.ip().is_loopback() && !public {
        return Err(ExposureError::BrokerNotLoopback(broker_addr));
    }
    if let Some(host) = advertised_host {
        let name = !host.is_empty()
            && host.len() <= 253
            && host.split('.').all(|label| {
                !label.is_empty() && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
            });
        if !name && host.parse::<std::net::IpAddr>().is_err() {
            return Err(ExposureError::AdvertisedHost(host.to_owned()));
        }
    }
    Ok(())
}

/// The access token a server listening on `addr` needs: none on loopback; on any other address,
/// only with `public`, and then the one given or a fresh random one.
pub fn access_token(
    addr: SocketAddr,
    public: bool,
    given: Option<String>,
) -> Result<Option<String>, ExposureError> {
    if addr.ip().is_loopback() && !public {
        return Ok(None);
    }
    if !public {
        return Err(ExposureError::NotLoopback(addr));
    }
    match given {
        Some(token)
            if token.len() >= 16
                && token
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_')) =>
        {
            Ok(Some(token))
        }
        Some(_) => Err(ExposureError::WeakToken),
        None => Ok(Some(uuid::Uuid::new_v4().simple().to_string())),
    }
}

/// The value of the cookie `name` in a `Cookie` header.
pub fn cookie_value<'a>(cookies: Option<&'a str>, name: &str) -> Option<&'a str> {
    cookies
        .into_iter()
        .flat_map(|c| c.split(';'))
        .find_map(|pair| {
            let (key, value) = pair.trim().split_once('=')?;
            (key == name).then_some(value)
        })
}

/// Whether a request may go on, and whether it should set the token cookie.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Admission {
    Admitted,
    /// It came with the access link: admit it and set the cookie for the page's later requests.
    AdmittedSetCookie,
    Refused,
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
        Self::with_token(addr, allowed, None)
    }

    /// As [`SiteAccess::new`], for a server that asks every visitor for `token`.
    pub fn with_token(
        addr: SocketAddr,
        allowed: &[String],
        token: Option<String>,
    ) -> Result<Self, BadOrigin> {
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
        let reachable = token.is_some() && !addr.ip().is_loopback();
        Ok(Self {
            hosts,
            token,
            reachable,
        })
    }

    pub fn token(&self) -> Option<&str> {
        self.token.as_deref()
    }

    /// Whether a request with this `Cookie` header and `token` query parameter may go on.
    pub fn admit(&self, cookies: Option<&str>, query_token: Option<&str>) -> Admission {
        let Some(token) = &self.token else {
            return Admission::Admitted;
        };
        let from_cookie = cookie_value(cookies, TOKEN_COOKIE);
        if from_cookie.is_some_and(|value| same(value, token)) {
            Admission::Admitted
        } else if query_token.is_some_and(|value| same(value, token)) {
            Admission::AdmittedSetCookie
        } else {
            Admission::Refused
        }
    }

    /// Whether a websocket handshake with these headers may drive a lab.
    pub fn check(&self, host: Option<&str>, origin: Option<&str>) -> Result<(), Refused> {
        let listed = |name: &str| self.hosts.iter().any(|h| h.eq_ignore_ascii_case(name));
        // A public server is reached by whatever name a class uses, and its cookie already
        // keeps out other sites; the page's own origin is then the name it was reached by.
        let public = self.reachable;
        let known = |name: &str| {
            listed(name) || (public && host.is_some_and(|h| h.eq_ignore_ascii_case(name)))
        };
        if !public && !host.is_some_and(listed) {
            return Err(Refused::UnknownHost);
        }
        match origin {
            None => Ok(()),
            Some(origin) if host_of(origin).is_some_and(known) => Ok(()),
            Some(_) => Err(Refused::ForeignOrigin),
        }
    }
}

/// Compares without stopping at the first difference, so the time taken does not tell how much
/// of a guessed token was right.
fn same(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
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
    fn only_loopback_may_be_served_without_public_and_a_token() {
        let loopback: SocketAddr = "127.0.0.1:3000".parse().expect("an address");
        let everywhere: SocketAddr = "0.0.0.0:3000".parse().expect("an address");
        assert_eq!(access_token(loopback, false, None), Ok(None));
        let broker_everywhere: SocketAddr = "0.0.0.0:9092".parse().expect("an address");
        assert_eq!(
            check_broker_exposure(broker_everywhere, false, None),
            Err(ExposureError::BrokerNotLoopback(broker_everywhere))
        );
        assert_eq!(check_broker_exposure(broker_everywhere, true, None), Ok(()));
        assert_eq!(
            check_broker_exposure(
                "127.0.0.1:9092".parse().expect("an address"),
                false,
                Some("lab.school.example")
            ),
            Ok(())
        );
        assert_eq!(
            check_broker_exposure(broker_everywhere, true, Some("10.0.0.5")),
            Ok(())
        );
        for bad in ["", "a b", "lab..school", "host:9092", "$(reboot)"] {
            assert_eq!(
                check_broker_exposure(broker_everywhere, true, Some(bad)),
                Err(ExposureError::AdvertisedHost(bad.to_owned())),
                "{bad:?}"
            );
        }
        assert_eq!(
            access_token(everywhere, false, None),
            Err(ExposureError::NotLoopback(everywhere))
        );
        let strong = "a-strong_token-0123456789".to_owned();
        assert_eq!(
            access_token(everywhere, true, Some(strong.clone())),
            Ok(Some(strong))
        );
        assert_eq!(
            access_token(everywhere, true, Some("short".into())),
            Err(ExposureError::WeakToken)
        );
        let made = access_token(everywhere, true, None).expect("a token is made");
        assert!(made.is_some_and(|t| t.len() == 32));
    }

    #[test]
    fn a_public_server_admits_the_link_then_the_cookie_and_nothing_else() {
        let token = "0123456789abcdef0123".to_owned();
        let access = SiteAccess::with_token(
            "0.0.0.0:3000".parse().expect("an address"),
            &[],
            Some(token.clone()),
        )
        .expect("no origins to read");
        assert_eq!(access.admit(None, None), Admission::Refused);
        assert_eq!(access.admit(None, Some("guess")), Admission::Refused);
        assert_eq!(
            access.admit(None, Some(&token)),
            Admission::AdmittedSetCookie
        );
        let cookie = format!("theme=dark; {TOKEN_COOKIE}={token}");
        assert_eq!(access.admit(Some(&cookie), None), Admission::Admitted);
        assert_eq!(
            access.admit(Some(&format!("{TOKEN_COOKIE}=wrong")), None),
            Admission::Refused
        );
        // Reached by the classroom's name: the page's own origin is that name.
        check(
            &access,
            Some("lab.local:3000"),
            Some("http://lab.local:3000"),
            Ok(()),
        );
        check(
            &access,
            Some("lab.local:3000"),
            Some("http://evil.example"),
            Err(Refused::ForeignOrigin),
        );
        let private = SiteAccess::new("127.0.0.1:3000".parse().expect("an address"), &[])
            .expect("no origins to read");
        assert_eq!(private.admit(None, None), Admission::Admitted);
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
