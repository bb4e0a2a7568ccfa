//! ConsumerGroupHeartbeat requests read from the frame's bytes.
//!
//! nisshi 0.8.1 knows version 0 only, and closes the connection on any other; librdkafka 2.12
//! sends version 1, which adds `SubscribedTopicRegex`. grouplab reads both versions itself
//! (flexible encoding: compact strings and arrays, tagged fields), before nisshi's codec sees
//! the frame. The answer is the same at both versions, so nisshi encodes it at version 0.

use super::group::{Heartbeat, Partitions};
use crate::kafka::wire::Reader;

/// ConsumerGroupHeartbeat's API key.
pub const HEARTBEAT_KEY: i16 = 68;
/// The versions grouplab reads.
pub const HEARTBEAT_VERSIONS: std::ops::RangeInclusive<i16> = 0..=1;

/// The request header's fields that the answer needs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RequestHeader {
    pub api_key: i16,
    pub api_version: i16,
    pub correlation_id: i32,
    pub client_id: Option<String>,
}

/// Reads the header of a frame (`[size:4]` first) without reading its body.
pub fn peek_header(frame: &[u8]) -> Option<RequestHeader> {
    read_header(&mut Reader::new(frame.get(4..)?))
}

/// The request header: key, version, correlation id and client id (the tagged fields that
/// follow in flexible versions are left to the caller).
fn read_header(reader: &mut Reader<'_>) -> Option<RequestHeader> {
    Some(RequestHeader {
        api_key: reader.i16()?,
        api_version: reader.i16()?,
        correlation_id: reader.i32()?,
        client_id: reader.nullable_string()?,
    })
}

/// Reads a whole ConsumerGroupHeartbeat frame (`[size:4]` first), v0 or v1. `None` if it is
/// malformed; a client that sends that gets its connection closed, as by Kafka.
pub fn read_heartbeat(frame: &[u8]) -> Option<(RequestHeader, Heartbeat)> {
    let mut reader = Reader::new(frame.get(4..)?);
    let header = read_header(&mut reader)?;
    reader.skip_tags()?;
    let RequestHeader {
        api_key,
        api_version,
        ..
    } = header;
    if api_key != HEARTBEAT_KEY || !HEARTBEAT_VERSIONS.contains(&api_version) {
        return None;
    }
    let group_id = reader.compact_string()?;
    let member_id = reader.compact_string()?;
    let member_epoch = reader.i32()?;
    let instance_id = reader.compact_nullable_string()?;
    let rack_id = reader.compact_nullable_string()?;
    let rebalance_timeout_ms = reader.i32()?;
    let subscribed_topic_names = match reader.compact_length()? {
        None => None,
        Some(n) => Some(
            (0..n)
                .map(|_| reader.compact_string())
                .collect::<Option<Vec<_>>>()?,
        ),
    };
    // librdkafka sends an empty pattern when it subscribes by name only; Kafka reads that as
    // no pattern.
    let subscribed_topic_regex = if api_version >= 1 {
        reader.compact_nullable_string()?.filter(|r| !r.is_empty())
    } else {
        None
    };
    let server_assignor = reader.compact_nullable_string()?;
    let topic_partitions = match reader.compact_length()? {
        None => None,
        Some(n) => {
            let mut owned = Partitions::new();
            for _ in 0..n {
                let topic: [u8; 16] = reader.take(16)?.try_into().ok()?;
                let count = reader.compact_length()?.unwrap_or(0);
                let partitions = owned.entry(topic).or_default();
                for _ in 0..count {
                    partitions.insert(reader.i32()?);
                }
                reader.skip_tags()?;
            }
            owned.retain(|_, partitions| !partitions.is_empty());
            Some(owned)
        }
    };
    reader.skip_tags()?;
    let heartbeat = Heartbeat {
        version: api_version,
        group_id,
        member_id,
        member_epoch,
        instance_id,
        rack_id,
        rebalance_timeout_ms,
        subscribed_topic_names,
        subscribed_topic_regex,
        server_assignor,
        topic_partitions,
        client_id: header.client_id.clone().unwrap_or_default(),
        client_host: String::new(),
    };
    Some((header, heartbeat))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Writes a request as librdkafka 2.12 does.
    #[derive(Default)]
    struct Writer(Vec<u8>);

    impl Writer {
        fn i16(&mut self, v: i16) -> &mut Self {
            self.0.extend(v.to_be_bytes());
            self
        }
        fn i32(&mut self, v: i32) -> &mut Self {
            self.0.extend(v.to_be_bytes());
            self
        }
        fn byte(&mut self, v: u8) -> &mut Self {
            self.0.push(v);
            self
        }
        fn compact(&mut self, s: Option<&str>) -> &mut Self {
            match s {
                None => self.byte(0),
                Some(s) => {
                    self.byte(u8::try_from(s.len() + 1).expect("a short string"));
                    self.0.extend(s.as_bytes());
                    self
                }
            }
        }
        fn framed(&self) -> Vec<u8> {
            let mut out = i32::try_from(self.0.len())
                .expect("a short frame")
                .to_be_bytes()
                .to_vec();
            out.extend(&self.0);
            out
        }
    }

    fn header(w: &mut Writer, version: i16) {
        w.i16(HEARTBEAT_KEY).i16(version).i32(7).i16(4);
        w.0.extend(b"app1");
        w.byte(0);
    }

    #[test]
    fn a_joining_v1_heartbeat_is_read_whole() {
        let mut w = Writer::default();
        header(&mut w, 1);
        w.compact(Some("orders"))
            .compact(Some("m-1"))
            .i32(0)
            .compact(None)
            .compact(None)
            .i32(300_000);
        w.byte(2).compact(Some("t")); // one topic name
        w.compact(None); // no regex
        w.compact(Some("range"));
        w.byte(1); // no partitions owned
        w.byte(0);
        let (head, hb) = read_heartbeat(&w.framed()).expect("it reads");
        assert_eq!(head.correlation_id, 7);
        assert_eq!(hb.group_id, "orders");
        assert_eq!(hb.member_id, "m-1");
        assert_eq!(hb.client_id, "app1");
        assert_eq!(hb.subscribed_topic_names, Some(vec!["t".to_owned()]));
        assert_eq!(hb.server_assignor.as_deref(), Some("range"));
        assert_eq!(hb.topic_partitions, Some(Partitions::new()));
        assert_eq!(hb.rebalance_timeout_ms, 300_000);
    }

    #[test]
    fn owned_partitions_are_read_and_v0_has_no_regex() {
        let mut w = Writer::default();
        header(&mut w, 0);
        w.compact(Some("g"))
            .compact(Some("m"))
            .i32(3)
            .compact(Some("box"))
            .compact(None)
            .i32(-1);
        w.compact(None); // names unchanged
        w.compact(None); // assignor unchanged
        w.byte(2);
        w.0.extend([9u8; 16]);
        w.byte(3).i32(0).i32(4);
        w.byte(0);
        w.byte(0);
        let (_, hb) = read_heartbeat(&w.framed()).expect("it reads");
        assert_eq!(hb.instance_id.as_deref(), Some("box"));
        assert_eq!(hb.subscribed_topic_names, None);
        let owned = hb.topic_partitions.expect("owned");
        assert_eq!(
            owned[&[9u8; 16]].iter().copied().collect::<Vec<_>>(),
            [0, 4]
        );
    }

    #[test]
    fn lengths_beyond_the_frame_are_refused() {
        let mut w = Writer::default();
        header(&mut w, 1);
        w.byte(0xff).byte(0xff).byte(0x7f); // a group id claiming 2 MiB
        assert!(read_heartbeat(&w.framed()).is_none());
        let mut w = Writer::default();
        header(&mut w, 2);
        assert!(
            read_heartbeat(&w.framed()).is_none(),
            "a version it does not know"
        );
        assert!(read_heartbeat(&[0, 0, 0, 1, 0]).is_none());
    }
}
