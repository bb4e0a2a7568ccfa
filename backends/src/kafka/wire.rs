//! What grouplab reads of Kafka's wire formats itself: the consumer protocol's assignment bytes,
//! which both the embedded broker's stored groups and DescribeGroups hand over, member ids, a
//! request's API key, and the reader of Kafka's encodings that ConsumerGroupHeartbeat requests
//! are read with too.

use grouplab_protocol::TopicPartition;

/// A request frame's API key (`[size:4][api_key:2]…`), read without decoding the rest: the
/// embedded broker's layers look at it on every request. `None` for a frame too short to hold one.
pub fn api_key_of(frame: &[u8]) -> Option<i16> {
    Reader::new(frame.get(4..)?).i16()
}

/// A member id is `{client id}-{uuid}`: without a recorded client id, take everything before the uuid.
pub fn client_id_of(member_id: &str) -> &str {
    const UUID_LEN: usize = 36;
    member_id
        .len()
        .checked_sub(UUID_LEN + 1)
        .and_then(|end| member_id.get(..end))
        .unwrap_or(member_id)
}

/// Decodes a consumer group member's assignment, as a consumer's leader writes it in SyncGroup
/// (Kafka's `ConsumerProtocolAssignment`): a version, then topics with their partitions, then
/// user data, which is ignored. Both the embedded broker and DescribeGroups hand over these bytes.
pub fn decode_assignment(bytes: &[u8]) -> Option<Vec<TopicPartition>> {
    if bytes.is_empty() {
        return Some(Vec::new());
    }
    let mut reader = Reader::new(bytes);
    let _version = reader.i16()?;
    let topics = reader.i32()?;
    let mut partitions = Vec::new();
    for _ in 0..topics.max(0) {
        let len = usize::try_from(reader.i16()?).ok()?;
        let topic = std::str::from_utf8(reader.take(len)?).ok()?.to_owned();
        let count = reader.i32()?;
        for _ in 0..count.max(0) {
            partitions.push(TopicPartition::new(&topic, reader.i32()?));
        }
    }
    partitions.sort();
    Some(partitions)
}

/// Reads Kafka's encodings from a frame or a field; every read checks the bytes left, so a
/// length that claims more than there is fails instead of allocating.
pub(super) struct Reader<'a> {
    bytes: &'a [u8],
}

impl<'a> Reader<'a> {
    pub(super) fn new(bytes: &'a [u8]) -> Self {
        Self { bytes }
    }

    pub(super) fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if self.bytes.len() < n {
            return None;
        }
        let (head, tail) = self.bytes.split_at(n);
        self.bytes = tail;
        Some(head)
    }

    pub(super) fn i16(&mut self) -> Option<i16> {
        Some(i16::from_be_bytes(self.take(2)?.try_into().ok()?))
    }

    pub(super) fn i32(&mut self) -> Option<i32> {
        Some(i32::from_be_bytes(self.take(4)?.try_into().ok()?))
    }

    fn uvarint(&mut self) -> Option<u64> {
        let mut value = 0u64;
        for shift in (0..64).step_by(7) {
            let byte = *self.take(1)?.first()?;
            value |= u64::from(byte & 0x7f) << shift;
            if byte & 0x80 == 0 {
                return Some(value);
            }
        }
        None
    }

    /// A compact (flexible-version) length: `None` for null; never more than the bytes left.
    pub(super) fn compact_length(&mut self) -> Option<Option<usize>> {
        let n = self.uvarint()?;
        if n == 0 {
            return Some(None);
        }
        let n = usize::try_from(n - 1).ok()?;
        (n <= self.bytes.len()).then_some(Some(n))
    }

    fn utf8(&mut self, len: usize) -> Option<String> {
        std::str::from_utf8(self.take(len)?).ok().map(str::to_owned)
    }

    pub(super) fn compact_nullable_string(&mut self) -> Option<Option<String>> {
        match self.compact_length()? {
            None => Some(None),
            Some(len) => self.utf8(len).map(Some),
        }
    }

    pub(super) fn compact_string(&mut self) -> Option<String> {
        self.compact_nullable_string()?
    }

    /// A non-flexible nullable string (a request header's client id): an int16 length, -1 for null.
    pub(super) fn nullable_string(&mut self) -> Option<Option<String>> {
        let len = self.i16()?;
        if len < 0 {
            return Some(None);
        }
        self.utf8(usize::try_from(len).ok()?).map(Some)
    }

    /// Skips a flexible version's tagged fields.
    pub(super) fn skip_tags(&mut self) -> Option<()> {
        let count = self.uvarint()?;
        for _ in 0..count {
            let _tag = self.uvarint()?;
            let size = usize::try_from(self.uvarint()?).ok()?;
            self.take(size)?;
        }
        Some(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_requests_api_key_is_read_after_its_size() {
        // [size][api_key = 68][api_version = 1][correlation id]…
        let frame = [0, 0, 0, 8, 0, 68, 0, 1, 0, 0, 0, 7];
        assert_eq!(api_key_of(&frame), Some(68));
        assert_eq!(api_key_of(&frame[..5]), None);
        assert_eq!(api_key_of(&[]), None);
    }

    #[test]
    fn client_ids_are_read_from_member_ids() {
        assert_eq!(
            client_id_of("rdkafka-5f0c3b8e-8c55-4a1d-a3f1-6f4c2c1b2a90"),
            "rdkafka"
        );
        assert_eq!(
            client_id_of("my-app-1-5f0c3b8e-8c55-4a1d-a3f1-6f4c2c1b2a90"),
            "my-app-1"
        );
        assert_eq!(client_id_of("short"), "short");
    }

    #[track_caller]
    fn check_decode(bytes: &[u8], expected: Option<&[(&str, i32)]>) {
        let decoded = decode_assignment(bytes);
        let expected = expected.map(|e| {
            e.iter()
                .map(|(t, p)| TopicPartition::new(*t, *p))
                .collect::<Vec<_>>()
        });
        assert_eq!(decoded, expected);
    }

    #[test]
    fn assignments_decode_from_the_consumer_protocol() {
        #[rustfmt::skip]
        let two_topics = [
            0, 1,                   // version 1
            0, 0, 0, 2,             // two topics
            0, 1, b'b', 0, 0, 0, 1, 0, 0, 0, 4,
            0, 1, b'a', 0, 0, 0, 2, 0, 0, 0, 2, 0, 0, 0, 0,
            0, 0, 0, 0,             // empty user data
        ];
        check_decode(&two_topics, Some(&[("a", 0), ("a", 2), ("b", 4)]));
        check_decode(&[], Some(&[]));
        check_decode(&[0, 0, 0, 0, 0, 0], Some(&[]));
        check_decode(&[0, 0, 0, 0, 0, 1, 0, 5, b'x'], None);
    }
}
