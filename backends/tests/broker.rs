//! The embedded broker answering as Apache Kafka does, seen by real librdkafka clients: fetches
//! that wake when a message is produced, DescribeGroups that describes each member, topics that
//! grow, watermarks, and frames of every size through its codec.
//!
//! Each test starts its own broker on a free port, with its own topic and group; every wait is a
//! poll for a condition under a deadline.

use std::collections::BTreeSet;
use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::time::{Duration, Instant};

use grouplab_backends::kafka::{Cluster, EmbeddedBroker};
use grouplab_protocol::KeyMode;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::{Message, Offset, TopicPartitionList};

/// The longest any expectation may take.
const DEADLINE: Duration = Duration::from_secs(30);

fn free_addr() -> SocketAddr {
    let probe = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind a free port");
    probe.local_addr().expect("local address")
}

async fn broker_with_topic(topic: &str, partitions: i32) -> (EmbeddedBroker, Cluster) {
    let broker = EmbeddedBroker::start(free_addr(), Duration::from_millis(300))
        .await
        .expect("the embedded broker starts");
    let cluster = Cluster::connect(&broker.bootstrap_servers()).expect("clients are created");
    cluster
        .wait_until_ready(DEADLINE)
        .await
        .expect("the broker answers");
    cluster
        .create_topic(topic, partitions)
        .await
        .expect("the topic is created");
    (broker, cluster)
}

fn consumer(bootstrap: &str, settings: &[(&str, &str)]) -> BaseConsumer {
    let mut config = ClientConfig::new();
    config
        .set("bootstrap.servers", bootstrap)
        .set("group.id", "unused")
        .set("enable.auto.commit", "false")
        .set("log_level", "3");
    for (key, value) in settings {
        config.set(*key, *value);
    }
    config.create().expect("the consumer is created")
}

/// A consumer outside any group, reading `topic`'s partition 0 from its beginning.
fn reader_of_partition_0(bootstrap: &str, topic: &str, settings: &[(&str, &str)]) -> BaseConsumer {
    let reader = consumer(bootstrap, settings);
    let mut assignment = TopicPartitionList::new();
    assignment
        .add_partition_offset(topic, 0, Offset::Beginning)
        .expect("a partition to read");
    reader
        .assign(&assignment)
        .expect("the partition is assigned");
    reader
}

/// Waits until `done` holds, polling every 20 ms, or fails after [`DEADLINE`] saying `what`.
async fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let until = Instant::now() + DEADLINE;
    while !done() {
        assert!(Instant::now() < until, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_parked_fetch_wakes_when_a_message_is_produced() {
    let topic = "wake-topic";
    let (broker, cluster) = broker_with_topic(topic, 1).await;
    // A consumer whose fetches may wait 30 s for data: nisshi alone slept 15 s before it looked
    // again, so a message produced meanwhile arrived 15 s late at best.
    let reader = reader_of_partition_0(
        &broker.bootstrap_servers(),
        topic,
        &[("fetch.wait.max.ms", "30000")],
    );
    let (tx, rx) = std::sync::mpsc::channel();
    let polling = std::thread::spawn(move || {
        let until = Instant::now() + DEADLINE;
        while Instant::now() < until {
            if let Some(Ok(message)) = reader.poll(Duration::from_millis(100)) {
                let _ = tx.send((Instant::now(), message.payload().map(<[u8]>::to_vec)));
                return;
            }
        }
    });
    wait_until("the consumer's fetch to wait for data", || {
        broker.parked_fetches() > 0
    })
    .await;
    let produced_at = Instant::now();
    cluster
        .produce(topic, 1, &KeyMode::None, None, None, 1)
        .await
        .expect("a message is produced");
    let (received_at, payload) = tokio::task::spawn_blocking(move || rx.recv_timeout(DEADLINE))
        .await
        .expect("the waiting thread ends")
        .expect("the parked consumer receives the message");
    polling.join().expect("the polling thread ends");
    assert_eq!(payload.as_deref(), Some(&b"click #1"[..]));
    let waited = received_at - produced_at;
    // Woken by the produce: far sooner than the 15 s nisshi's first sleep would have taken.
    assert!(
        waited < Duration::from_secs(5),
        "the message reached the parked consumer {waited:?} after it was produced"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn describe_groups_names_each_members_client_host_and_assignment() {
    let topic = "described-topic";
    let group = "described-group";
    let (broker, _cluster) = broker_with_topic(topic, 4).await;
    let bootstrap = broker.bootstrap_servers();
    let members: Vec<BaseConsumer> = ["alpha", "beta"]
        .into_iter()
        .map(|client_id| {
            let member = consumer(&bootstrap, &[("group.id", group), ("client.id", client_id)]);
            member.subscribe(&[topic]).expect("the member subscribes");
            member
        })
        .collect();
    // Each member's own view: polled until both own partitions.
    let until = Instant::now() + DEADLINE;
    loop {
        for member in &members {
            let _ = member.poll(Duration::from_millis(50));
        }
        let owned: Vec<usize> = members
            .iter()
            .map(|m| m.assignment().map(|a| a.count()).unwrap_or(0))
            .collect();
        if owned.iter().all(|n| *n > 0) && owned.iter().sum::<usize>() == 4 {
            break;
        }
        assert!(
            Instant::now() < until,
            "the members were not assigned: {owned:?}"
        );
    }
    // DescribeGroups, as `kafka-consumer-groups --describe --members` and admin clients ask it.
    let admin = consumer(&bootstrap, &[]);
    // What a group description says of each member, read on a blocking thread (librdkafka
    // blocks): (state, protocol type, assignor, members as (client id, host, subscription
    // length, assigned partitions)).
    type Member = (String, String, usize, Vec<i32>);
    let described = tokio::task::spawn_blocking(move || {
        let list = admin
            .fetch_group_list(Some(group), Duration::from_secs(10))
            .expect("the group is described");
        let found = list
            .groups()
            .iter()
            .find(|g| g.name() == group)
            .expect("the group is listed");
        let members: Vec<Member> = found
            .members()
            .iter()
            .map(|m| {
                (
                    m.client_id().to_owned(),
                    m.client_host().to_owned(),
                    m.metadata().map_or(0, <[u8]>::len),
                    m.assignment().map(decode_assignment).unwrap_or_default(),
                )
            })
            .collect();
        (
            found.state().to_owned(),
            found.protocol_type().to_owned(),
            found.protocol().to_owned(),
            members,
        )
    })
    .await
    .expect("the describe thread ends");
    let (state, protocol_type, assignor, described) = described;
    assert_eq!(state, "Stable");
    assert_eq!(protocol_type, "consumer");
    assert_eq!(assignor, "range");
    let mut clients = BTreeSet::new();
    let mut partitions = Vec::new();
    for (client_id, host, subscription, assigned) in described {
        assert_eq!(host, "/127.0.0.1", "{client_id}");
        assert!(subscription > 0, "{client_id} has no subscription");
        clients.insert(client_id);
        partitions.extend(assigned);
    }
    assert_eq!(
        clients,
        BTreeSet::from(["alpha".to_owned(), "beta".to_owned()])
    );
    partitions.sort_unstable();
    assert_eq!(partitions, [0, 1, 2, 3], "each partition is assigned once");
    for member in members {
        member.unsubscribe();
    }
}

/// The partitions in a consumer protocol assignment: a version, then topics with partitions.
fn decode_assignment(bytes: &[u8]) -> Vec<i32> {
    let i16_at = |at: usize| i16::from_be_bytes([bytes[at], bytes[at + 1]]);
    let i32_at =
        |at: usize| i32::from_be_bytes([bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]]);
    let mut at = 2;
    let mut partitions = Vec::new();
    for _ in 0..i32_at(at) {
        at += 4;
        at += 2 + usize::try_from(i16_at(at)).expect("a topic name's length");
        let count = i32_at(at);
        for _ in 0..count {
            at += 4;
            partitions.push(i32_at(at));
        }
    }
    partitions
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_topic_grows_and_keeps_its_data_and_offsets_and_its_group_takes_the_new_partitions() {
    let topic = "growing-topic";
    let group = "growing-group";
    let (broker, cluster) = broker_with_topic(topic, 3).await;
    cluster
        .produce(topic, 30, &KeyMode::RoundRobin, None, None, 1)
        .await
        .expect("messages are produced");
    let before = cluster.partitions(topic).await.expect("the partitions");
    assert_eq!(before.len(), 3);
    // A group consumes everything and commits: the offsets must survive the growth.
    let member = consumer(
        &broker.bootstrap_servers(),
        &[
            ("group.id", group),
            ("auto.offset.reset", "earliest"),
            // New partitions are seen at the next metadata refresh, as on Apache Kafka.
            ("topic.metadata.refresh.interval.ms", "500"),
        ],
    );
    member.subscribe(&[topic]).expect("the member subscribes");
    let mut received = 0;
    let until = Instant::now() + DEADLINE;
    while received < 30 {
        assert!(Instant::now() < until, "only {received} of 30 received");
        if let Some(Ok(_)) = member.poll(Duration::from_millis(100)) {
            received += 1;
        }
    }
    member
        .commit_consumer_state(rdkafka::consumer::CommitMode::Sync)
        .expect("the offsets are committed");
    let committed = cluster
        .committed(group, topic, &[0, 1, 2])
        .await
        .expect("the committed offsets");
    assert_eq!(committed, [Some(10), Some(10), Some(10)]);

    // Apache Kafka refuses a count that is not larger.
    assert!(cluster.add_partitions(topic, 3).await.is_err());
    assert!(cluster.add_partitions(topic, 2).await.is_err());
    cluster
        .add_partitions(topic, 5)
        .await
        .expect("the topic grows");
    let after = cluster.partitions(topic).await.expect("the partitions");
    assert_eq!(after.len(), 5);
    for (old, new) in before.iter().zip(&after) {
        assert_eq!(
            (old.log_start, old.log_end),
            (new.log_start, new.log_end),
            "P{} kept its messages",
            old.partition
        );
    }
    assert_eq!((after[3].log_end, after[4].log_end), (0, 0));
    assert_eq!(
        cluster
            .committed(group, topic, &[0, 1, 2])
            .await
            .expect("the committed offsets"),
        committed,
        "committed offsets stay"
    );
    // The member sees the new partitions at its next metadata refresh, and the group assigns
    // them; a message produced to one reaches it.
    let until = Instant::now() + DEADLINE;
    while member.assignment().map(|a| a.count()).unwrap_or(0) < 5 {
        assert!(
            Instant::now() < until,
            "the new partitions were never assigned"
        );
        let _ = member.poll(Duration::from_millis(100));
    }
    cluster
        .produce(topic, 1, &KeyMode::None, Some(4), None, 31)
        .await
        .expect("a message to a new partition");
    let until = Instant::now() + DEADLINE;
    loop {
        assert!(
            Instant::now() < until,
            "the new partition's message never came"
        );
        if let Some(Ok(message)) = member.poll(Duration::from_millis(100)) {
            assert_eq!(message.partition(), 4);
            break;
        }
    }
}

/// The broker's address as a client is told it: the configured host for a client that dialled
/// another address than 127.0.0.1 (here 127.0.0.2, which is loopback too, so nothing listens
/// beyond this machine), and 127.0.0.1 for grouplab's own clients, which dial 127.0.0.1.
#[tokio::test]
async fn a_client_is_told_the_advertised_host_and_grouplabs_own_keep_loopback() {
    let elsewhere = {
        let probe = TcpListener::bind((Ipv4Addr::new(127, 0, 0, 2), 0)).expect("bind 127.0.0.2");
        probe.local_addr().expect("local address")
    };
    let broker = EmbeddedBroker::start_advertising(
        elsewhere,
        Duration::from_millis(300),
        Some("lab.school.example".to_owned()),
    )
    .await
    .expect("the embedded broker starts on 127.0.0.2");
    assert_eq!(
        metadata_brokers(broker.bootstrap_servers()).await,
        [format!("lab.school.example:{}", elsewhere.port())]
    );

    let own = free_addr();
    let broker = EmbeddedBroker::start_advertising(
        own,
        Duration::from_millis(300),
        Some("lab.school.example".to_owned()),
    )
    .await
    .expect("the embedded broker starts on 127.0.0.1");
    assert_eq!(
        metadata_brokers(broker.bootstrap_servers()).await,
        [own.to_string()]
    );
}

/// The brokers a Metadata v1 answer names, asked on one connection. (librdkafka would go on to
/// connect to the named host, which does not resolve here, and time out instead of answering.)
async fn metadata_brokers(bootstrap: String) -> Vec<String> {
    use std::io::{Read, Write};
    tokio::task::spawn_blocking(move || {
        let mut socket = std::net::TcpStream::connect(&bootstrap).expect("connect to the broker");
        socket
            .set_read_timeout(Some(DEADLINE))
            .expect("a read timeout");
        // Metadata (3) v1, correlation id 7, no client id, every topic (a null array).
        let mut request = Vec::new();
        request.extend(3i16.to_be_bytes());
        request.extend(1i16.to_be_bytes());
        request.extend(7i32.to_be_bytes());
        request.extend((-1i16).to_be_bytes());
        request.extend((-1i32).to_be_bytes());
        let size = i32::try_from(request.len()).expect("a small request");
        socket
            .write_all(&size.to_be_bytes())
            .expect("send the size");
        socket.write_all(&request).expect("send the request");
        let mut size = [0; 4];
        socket.read_exact(&mut size).expect("read the size");
        let mut answer = vec![0; usize::try_from(i32::from_be_bytes(size)).expect("a size")];
        socket.read_exact(&mut answer).expect("read the answer");
        let mut at = 0;
        let mut take = |n: usize| {
            at += n;
            &answer[at - n..at]
        };
        assert_eq!(take(4), 7i32.to_be_bytes(), "the answer's correlation id");
        let brokers = i32::from_be_bytes(take(4).try_into().expect("4 bytes"));
        (0..brokers)
            .map(|_| {
                let _node = take(4);
                let length = i16::from_be_bytes(take(2).try_into().expect("2 bytes"));
                let host =
                    String::from_utf8(take(usize::try_from(length).expect("a host")).to_vec())
                        .expect("a UTF-8 host");
                let port = i32::from_be_bytes(take(4).try_into().expect("4 bytes"));
                let rack = i16::from_be_bytes(take(2).try_into().expect("2 bytes"));
                if rack > 0 {
                    take(usize::try_from(rack).expect("a rack"));
                }
                format!("{host}:{port}")
            })
            .collect()
    })
    .await
    .expect("the metadata thread ends")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_topics_watermarks_read_for_all_partitions_at_once_match_librdkafkas_per_partition_reads()
{
    let topic = "watermarked-topic";
    let (broker, cluster) = broker_with_topic(topic, 5).await;
    // Four messages over five partitions leave the last one empty; three more go to P2.
    cluster
        .produce(topic, 4, &KeyMode::RoundRobin, None, None, 1)
        .await
        .expect("messages are produced");
    cluster
        .produce(topic, 3, &KeyMode::RoundRobin, Some(2), None, 5)
        .await
        .expect("messages are produced to P2");
    let read = cluster.partitions(topic).await.expect("the partitions");
    let reference = consumer(&broker.bootstrap_servers(), &[]);
    let expected: Vec<(i32, i64, i64)> = (0..5)
        .map(|partition| {
            let (low, high) = reference
                .fetch_watermarks(topic, partition, DEADLINE)
                .expect("librdkafka reads the watermarks");
            (partition, low, high)
        })
        .collect();
    let got: Vec<(i32, i64, i64)> = read
        .iter()
        .map(|p| (p.partition, p.log_start, p.log_end))
        .collect();
    assert_eq!(got, expected);
    assert_eq!(
        got,
        [(0, 0, 1), (1, 0, 1), (2, 0, 4), (3, 0, 1), (4, 0, 0)],
        "each partition holds what was produced to it"
    );
}

/// The broker decodes and encodes small frames in the connection's task and large ones on the
/// blocking pool (`codec.rs`, over 64 KiB): a message too large for the first way is produced
/// and fetched whole, and so are small ones around it, in order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_larger_than_the_inline_codecs_limit_are_produced_and_fetched_whole() {
    let topic = "large-topic";
    let (broker, cluster) = broker_with_topic(topic, 1).await;
    let large = "x".repeat(200 * 1024);
    for (number, text) in [(1, "small"), (2, large.as_str()), (3, "small again")] {
        cluster
            .produce(topic, 1, &KeyMode::None, None, Some(text), number)
            .await
            .unwrap_or_else(|err| panic!("message {number} is produced: {err}"));
    }
    let reader = reader_of_partition_0(
        &broker.bootstrap_servers(),
        topic,
        &[("fetch.max.bytes", "1048576")],
    );
    let received = tokio::task::spawn_blocking(move || {
        let until = Instant::now() + DEADLINE;
        let mut received: Vec<Vec<u8>> = Vec::new();
        while received.len() < 3 && Instant::now() < until {
            match reader.poll(Duration::from_millis(100)) {
                Some(Ok(message)) => received.push(message.payload().unwrap_or_default().to_vec()),
                Some(Err(err)) => panic!("the consumer failed: {err}"),
                None => {}
            }
        }
        received
    })
    .await
    .expect("the reading thread ends");
    let expected: Vec<Vec<u8>> = [
        "click #1: small".to_owned(),
        format!("click #2: {large}"),
        "click #3: small again".to_owned(),
    ]
    .into_iter()
    .map(String::into_bytes)
    .collect();
    assert_eq!(received.len(), 3, "messages received");
    assert!(received == expected, "the messages arrived changed");
}

/// Bytes no Kafka client sends reach the broker's codec from anyone who can connect: a request
/// whose body does not decode, and a frame too short to name its API. The broker closes that
/// connection and goes on serving everyone else.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_sending_bytes_that_are_not_kafka_is_closed_and_the_broker_serves_on() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    let topic = "after-nonsense";
    let (broker, cluster) = broker_with_topic(topic, 1).await;
    let frames: [&[u8]; 2] = [
        // A Produce v9 request (key 0), correlation id 1, then bytes that are no request body.
        &[
            0, 0, 0, 16, 0, 0, 0, 9, 0, 0, 0, 1, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
        ],
        // Size 1: no room for an API key.
        &[0, 0, 0, 1, 0],
    ];
    for frame in frames {
        let mut stream = tokio::net::TcpStream::connect(broker.bootstrap_servers())
            .await
            .expect("the broker accepts a connection");
        stream.write_all(frame).await.expect("the bytes are sent");
        let mut answer = Vec::new();
        let read = tokio::time::timeout(DEADLINE, stream.read_to_end(&mut answer))
            .await
            .expect("the broker closes the connection");
        assert!(
            read.is_err() || answer.is_empty(),
            "the broker answered {frame:?} with {answer:?}"
        );
    }
    cluster
        .produce(topic, 1, &KeyMode::None, None, Some("still here"), 1)
        .await
        .expect("the broker still takes a real client's produce");
}
