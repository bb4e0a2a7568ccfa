//! Where the embedded broker tells a client it is.
//!
//! A Kafka client connects to its bootstrap address only to ask where the brokers are, then
//! connects to what Metadata, FindCoordinator and DescribeCluster name. A broker that named the
//! address it listens on would tell a learner's laptop to connect to `0.0.0.0` or to itself, so
//! the embedded broker names the address each client dialled, as a broker with one listener per
//! network would: a client that reached it at 10.0.0.5 is told 10.0.0.5. Behind a name or a NAT,
//! where the dialled address is not the one learners reach, `--advertised-host` names it instead
//! for every client but those on 127.0.0.1, which are grouplab's own (its admin client and the
//! page's instances) or a learner's on this machine, for whom 127.0.0.1 always works.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use nisshi_sans_io::{Body, Frame, FrameInput};
use nisshi_service::FrameRouteService;
use rama::Service;
use rama::extensions::Extension;

/// The local address a broker connection was accepted on: the one its client dialled.
#[derive(Clone, Copy, Debug)]
pub(super) struct DialedAddr(pub(super) SocketAddr);

impl Extension for DialedAddr {}

/// The host a client that dialled `dialed` is told the broker is at.
pub(super) fn advertised_host(dialed: IpAddr, configured: Option<&str>) -> String {
    let own =
        dialed == IpAddr::V4(Ipv4Addr::LOCALHOST) || dialed == IpAddr::V6(Ipv6Addr::LOCALHOST);
    match configured {
        Some(host) if !own => host.to_owned(),
        _ => dialed.to_string(),
    }
}

/// nisshi's answer with the broker's address replaced by the one this client reaches it at.
#[derive(Clone, Debug)]
pub(super) struct AdvertisedRoute {
    pub(super) nisshi: FrameRouteService<nisshi_broker::Error>,
    pub(super) configured: Option<String>,
}

impl Service<FrameInput> for AdvertisedRoute {
    type Output = Frame;
    type Error = nisshi_broker::Error;

    async fn serve(&self, request: FrameInput) -> Result<Frame, Self::Error> {
        let dialed = request.extensions.get_ref::<DialedAddr>().copied();
        let mut frame = self.nisshi.serve(request).await?;
        if let Some(DialedAddr(dialed)) = dialed {
            let host = advertised_host(dialed.ip(), self.configured.as_deref());
            frame.body = readdress(frame.body, &host, i32::from(dialed.port()));
        }
        Ok(frame)
    }
}

/// Puts `host:port` wherever the answer names this broker (the embedded broker is node 1 and the
/// only node, so every broker in an answer is this one).
fn readdress(body: Body, host: &str, port: i32) -> Body {
    match body {
        Body::MetadataResponse(mut metadata) => {
            for broker in metadata.brokers.iter_mut().flatten() {
                broker.host = host.to_owned();
                broker.port = port;
            }
            Body::MetadataResponse(metadata)
        }
        Body::FindCoordinatorResponse(mut found) => {
            // Versions before 4 answer one coordinator at the top level; later ones a list.
            if found.host.is_some() {
                found.host = Some(host.to_owned());
                found.port = Some(port);
            }
            for coordinator in found.coordinators.iter_mut().flatten() {
                if !coordinator.host.is_empty() {
                    coordinator.host = host.to_owned();
                    coordinator.port = port;
                }
            }
            Body::FindCoordinatorResponse(found)
        }
        Body::DescribeClusterResponse(mut cluster) => {
            for broker in cluster.brokers.iter_mut().flatten() {
                broker.host = host.to_owned();
                broker.port = port;
            }
            Body::DescribeClusterResponse(cluster)
        }
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_client_is_told_the_address_it_dialled_unless_a_host_is_configured() {
        let lan = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 5));
        let other_loopback = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2));
        assert_eq!(advertised_host(lan, None), "10.0.0.5");
        assert_eq!(advertised_host(other_loopback, None), "127.0.0.2");
        assert_eq!(advertised_host(lan, Some("lab.school")), "lab.school");
        assert_eq!(
            advertised_host(other_loopback, Some("lab.school")),
            "lab.school"
        );
        // grouplab's own clients, and a learner's on this machine, keep 127.0.0.1.
        let own = IpAddr::V4(Ipv4Addr::LOCALHOST);
        assert_eq!(advertised_host(own, Some("lab.school")), "127.0.0.1");
        assert_eq!(
            advertised_host(IpAddr::V6(Ipv6Addr::LOCALHOST), None),
            "::1"
        );
    }
}
