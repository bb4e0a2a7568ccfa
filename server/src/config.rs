//! Command-line and environment configuration.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;

/// grouplab: hands-on Kafka consumer-group labs in the browser, against a real broker.
#[derive(Debug, Clone, Parser)]
#[command(version)]
pub struct Config {
    /// Where the web page is served.
    #[arg(long, env = "GROUPLAB_ADDR", default_value = "127.0.0.1:3000")]
    pub addr: SocketAddr,

    /// Use this Kafka cluster (`host:port[,host:port…]`) instead of the embedded broker.
    #[arg(long, env = "KAFKA_BOOTSTRAP_SERVERS")]
    pub bootstrap_servers: Option<String>,

    /// Where the embedded broker listens (ignored with --bootstrap-servers).
    #[arg(long, env = "GROUPLAB_BROKER_ADDR", default_value = "127.0.0.1:9092")]
    pub broker_addr: SocketAddr,

    /// The host name or address learners' machines reach the embedded broker at, told to every
    /// client that did not dial 127.0.0.1 (without it, each is told the address it dialled).
    /// Needed behind a name or a NAT; the broker listens beyond loopback only with --public.
    #[arg(long, env = "GROUPLAB_ADVERTISED_HOST")]
    pub advertised_host: Option<String>,

    /// How long the embedded broker holds a new group's first rebalance for more members, in milliseconds.
    #[arg(
        long,
        env = "GROUPLAB_INITIAL_REBALANCE_DELAY_MS",
        default_value_t = 1000
    )]
    pub initial_rebalance_delay_ms: u64,

    /// The Redis that Redis Streams labs use, as `redis://host:port/`; without one, grouplab
    /// starts its own redis-server on a loopback port when the first such lab is opened.
    #[arg(long, env = "GROUPLAB_REDIS_URL")]
    pub redis_url: Option<String>,

    /// The redis-server program grouplab starts when no --redis-url is given.
    #[arg(long, env = "GROUPLAB_REDIS_PROGRAM", default_value = "redis-server")]
    pub redis_program: PathBuf,

    /// The RabbitMQ that RabbitMQ labs use, as `amqp://user:password@host:port/vhost`; without
    /// one, grouplab starts its own rabbitmq-server on loopback ports when the first such lab is opened.
    #[arg(long, env = "GROUPLAB_AMQP_URL")]
    pub amqp_url: Option<String>,

    /// The management API of the RabbitMQ named by --amqp-url (`http://user:password@host:port`).
    #[arg(
        long,
        env = "GROUPLAB_RABBITMQ_MANAGEMENT_URL",
        default_value = "http://guest:guest@127.0.0.1:15672"
    )]
    pub rabbitmq_management_url: String,

    /// The rabbitmq-server program grouplab starts when no --amqp-url is given (Debian's; the
    /// one in /usr/sbin switches user and cannot use grouplab's folder).
    #[arg(
        long,
        env = "GROUPLAB_RABBITMQ_PROGRAM",
        default_value = "/usr/lib/rabbitmq/bin/rabbitmq-server"
    )]
    pub rabbitmq_program: PathBuf,

    /// Erlang's port mapper, which grouplab runs for its own rabbitmq-server.
    #[arg(long, env = "GROUPLAB_EPMD_PROGRAM", default_value = "epmd")]
    pub epmd_program: PathBuf,

    /// The folder holding the labs.
    #[arg(long, env = "GROUPLAB_LABS_DIR", default_value = "labs")]
    pub labs_dir: PathBuf,

    /// The folder holding the built front end (`pkg/` and the style sheet).
    #[arg(long, env = "GROUPLAB_SITE_ROOT", default_value = "target/site")]
    pub site_root: PathBuf,

    /// Where learners' progress is kept.
    #[arg(long, env = "GROUPLAB_DATA_DIR", default_value = ".grouplab")]
    pub data_dir: PathBuf,

    /// The consumer instance program; by default `grouplab-consumer` beside this program.
    #[arg(long, env = "GROUPLAB_CONSUMER_PROGRAM")]
    pub consumer_program: Option<PathBuf>,

    /// The most consumer instances running at once in one lab.
    #[arg(long, env = "GROUPLAB_MAX_INSTANCES_PER_LAB", default_value_t = 8)]
    pub max_instances_per_lab: usize,

    /// The most consumer instances running at once on this server.
    #[arg(long, env = "GROUPLAB_MAX_INSTANCES", default_value_t = 32)]
    pub max_instances: usize,

    /// Another origin whose pages may drive the labs, such as `https://lab.school.example`
    /// (repeat it, or separate with commas). The page's own address is always allowed.
    #[arg(
        long = "allowed-origin",
        env = "GROUPLAB_ALLOWED_ORIGINS",
        value_delimiter = ','
    )]
    pub allowed_origins: Vec<String>,

    /// Allow --addr to be an address other machines can reach (a classroom server). Every
    /// visitor then needs the access link that grouplab prints.
    #[arg(long)]
    pub public: bool,

    /// The token in the access link of a --public server (at least 16 letters, digits, `-`, `_`);
    /// a random one is made when none is given.
    #[arg(long, env = "GROUPLAB_ACCESS_TOKEN")]
    pub access_token: Option<String>,

    /// Serve a class called NAME: learners join with a code, each with labs, a broker and a
    /// Redis of their own. The access link is then the instructor's.
    #[arg(long = "class", env = "GROUPLAB_CLASS", value_name = "NAME")]
    pub class: Option<String>,

    /// The ports of the learners' own embedded brokers in a class (`FIRST-LAST`), one each,
    /// kept by a learner across restarts; the size of the range is the most learners.
    #[arg(
        long,
        env = "GROUPLAB_LEARNER_PORTS",
        default_value = "9100-9199",
        value_parser = parse_port_range
    )]
    pub learner_ports: PortRange,

    /// The most learners that may join the class.
    #[arg(long, env = "GROUPLAB_MAX_LEARNERS", default_value_t = 60)]
    pub max_learners: usize,

    /// The most consumer instances running at once for one learner in a class, all labs together.
    #[arg(long, env = "GROUPLAB_MAX_INSTANCES_PER_LEARNER", default_value_t = 8)]
    pub max_instances_per_learner: usize,

    /// The most topics one learner's pages may have created at once in a class, all labs
    /// together (Reset deletes a lab's).
    #[arg(long, env = "GROUPLAB_MAX_TOPICS_PER_LEARNER", default_value_t = 24)]
    pub max_topics_per_learner: usize,

    /// The most partitions those topics may have together.
    #[arg(
        long,
        env = "GROUPLAB_MAX_PARTITIONS_PER_LEARNER",
        default_value_t = 128
    )]
    pub max_partitions_per_learner: u32,

    /// The most messages one learner's pages may produce a second in a class, all labs
    /// together (one produce of up to 10,000 may go at once).
    #[arg(long, env = "GROUPLAB_MAX_RATE_PER_LEARNER", default_value_t = std::num::NonZeroU32::new(500).expect("not zero"))]
    pub max_rate_per_learner: std::num::NonZeroU32,
}

/// An inclusive range of ports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PortRange {
    pub first: u16,
    pub last: u16,
}

impl PortRange {
    pub fn len(&self) -> usize {
        usize::from(self.last - self.first) + 1
    }

    pub fn is_empty(&self) -> bool {
        false
    }

    pub fn contains(&self, port: u16) -> bool {
        (self.first..=self.last).contains(&port)
    }
}

fn parse_port_range(text: &str) -> Result<PortRange, String> {
    let bad =
        || format!("`{text}` is not a range of ports: write it as FIRST-LAST, such as 9100-9199");
    let (first, last) = text.split_once('-').ok_or_else(bad)?;
    let first: u16 = first.trim().parse().map_err(|_| bad())?;
    let last: u16 = last.trim().parse().map_err(|_| bad())?;
    if first == 0 || last < first {
        return Err(bad());
    }
    Ok(PortRange { first, last })
}

impl Config {
    /// What one learner's labs may create and produce together in a class.
    pub fn allowance(&self) -> crate::session::AllowanceLimits {
        crate::session::AllowanceLimits {
            topics: self.max_topics_per_learner,
            partitions: self.max_partitions_per_learner,
            messages_per_second: self.max_rate_per_learner,
        }
    }

    pub fn initial_rebalance_delay(&self) -> Duration {
        Duration::from_millis(self.initial_rebalance_delay_ms)
    }

    /// The consumer program: as configured, or found by [`locate_consumer_program`].
    pub fn consumer_program(&self) -> PathBuf {
        self.consumer_program
            .clone()
            .unwrap_or_else(locate_consumer_program)
    }
}

/// `grouplab-consumer` next to the running executable, or next to its folder (test executables
/// live in cargo's `deps/`); failing both, the bare name, to be looked up on the PATH.
pub fn locate_consumer_program() -> PathBuf {
    let name = format!("grouplab-consumer{}", std::env::consts::EXE_SUFFIX);
    let exe = std::env::current_exe().unwrap_or_default();
    exe.ancestors()
        .skip(1)
        .take(2)
        .map(|dir| dir.join(&name))
        .find(|candidate| candidate.is_file())
        .unwrap_or_else(|| PathBuf::from(name))
}

#[cfg(test)]
mod tests {
    use super::{PortRange, parse_port_range};

    #[test]
    fn port_ranges_are_read_or_refused() {
        assert_eq!(
            parse_port_range("9100-9199"),
            Ok(PortRange {
                first: 9100,
                last: 9199
            })
        );
        assert_eq!(parse_port_range("9100-9100").map(|r| r.len()), Ok(1));
        for bad in ["9100", "9199-9100", "0-10", "a-b", "9100-70000", ""] {
            assert!(parse_port_range(bad).is_err(), "{bad}");
        }
    }
}
