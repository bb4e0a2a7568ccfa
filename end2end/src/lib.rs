//! Helpers for tests that run the real `grouplab` binary.
//!
//! [`TestServer`] starts the server with its own embedded broker on free ports, its own progress
//! database, and the labs and built front end of this workspace, and kills it when dropped.
//! [`Browser`] (`browser.rs`) starts Debian's `chromedriver` and a headless Chromium session;
//! [`LabClient`] (`lab_client.rs`) keeps a lab's view over its websocket as the page does.
//! [`external`] runs Lab 04's snippets as the learner's own consumers.
//! Every wait polls for a condition under a deadline.

use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::{Context, bail};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

mod browser;
mod dashboard;
pub mod external;
mod lab_client;

pub use browser::{Browser, kill_group, shown_received, wait_until_live};
pub use dashboard::Dashboard;
pub use lab_client::{LabClient, encoded_len};

/// How long the server may take to start: the broker, the clients, the router.
pub const START_DEADLINE: Duration = Duration::from_secs(60);

/// A free port on the loopback interface.
pub fn free_addr() -> SocketAddr {
    let probe = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind a free port");
    probe.local_addr().expect("local address")
}

/// The lowest port of the range the kernel picks outgoing connections' ports from
/// (`ip_local_port_range`; Linux's default starts at 32768).
fn ephemeral_start() -> u16 {
    std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|range| range.split_whitespace().next()?.parse().ok())
        .unwrap_or(32_768)
}

/// The first of `count` consecutive loopback ports that are free now, from a spread-out start
/// (a test's learners' brokers need a range). The range lies below the kernel's ephemeral ports
/// where it can: a port checked free there stays free while the server's clients connect, where
/// one in the ephemeral range can become an outgoing connection's port before the broker binds
/// it ("address already in use", seen once in `classroom` at 40 learners).
pub fn free_port_range(count: u16) -> u16 {
    const LOWEST: u16 = 20_000;
    let seed = std::process::id() as u16 ^ free_addr().port();
    let spread = match ephemeral_start().saturating_sub(LOWEST.saturating_add(count)) {
        0 => 30_000,
        below => below,
    };
    for attempt in 0..200u16 {
        let first = LOWEST + (seed.wrapping_add(attempt.wrapping_mul(97)) % spread);
        let free = (first..first + count)
            .all(|port| TcpListener::bind((Ipv4Addr::LOCALHOST, port)).is_ok());
        if free {
            return first;
        }
    }
    panic!("no {count} consecutive free ports were found");
}

/// The workspace's root folder.
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("end2end lives one folder below the workspace root")
        .to_path_buf()
}

/// A binary built by cargo for this workspace, found next to the test executable's folder.
pub fn workspace_binary(name: &str) -> anyhow::Result<PathBuf> {
    let exe = std::env::current_exe()?;
    exe.ancestors()
        .skip(1)
        .take(2)
        .map(|dir| dir.join(name))
        .find(|candidate| candidate.is_file())
        .with_context(|| {
            format!("`{name}` is not built: run `cargo build --bins` (the test command does)")
        })
}

/// The built front end: `site/` in the cargo target folder this test executable was built in.
pub fn site_root() -> anyhow::Result<PathBuf> {
    let exe = std::env::current_exe()?;
    exe.ancestors()
        .map(|dir| dir.join("site"))
        .find(|site| site.join("pkg").join("grouplab.js").is_file())
        .context("the front end is not built: run `cargo xtask site` (the test command does)")
}

/// Polls `check` every 100 ms until it returns `Some`, or fails after `deadline`.
pub async fn poll_until<T, F, Fut>(
    what: &str,
    deadline: Duration,
    mut check: F,
) -> anyhow::Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let until = tokio::time::Instant::now() + deadline;
    loop {
        if let Some(value) = check().await {
            return Ok(value);
        }
        if tokio::time::Instant::now() >= until {
            bail!("timed out after {deadline:?} waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// How a test server is started, where it differs from the defaults.
#[derive(Default)]
struct Launch {
    /// Where to listen; a free loopback port if `None`.
    bind: Option<SocketAddr>,
    /// The consumer program; grouplab's own if `None`.
    consumer: Option<PathBuf>,
    /// The labs folder; the workspace's `labs/` if `None`.
    labs: Option<PathBuf>,
    /// Added to the server's environment.
    env: Vec<(String, std::ffi::OsString)>,
}

/// A running `grouplab` server.
pub struct TestServer {
    child: Child,
    pub addr: SocketAddr,
    pub broker: SocketAddr,
    log: ServerLog,
}

impl TestServer {
    /// Starts a server whose progress lives in `data_dir`.
    pub async fn start(data_dir: &Path) -> anyhow::Result<Self> {
        Self::start_with(data_dir, &[]).await
    }

    /// Starts a server with extra command-line arguments.
    pub async fn start_with(data_dir: &Path, extra: &[&str]) -> anyhow::Result<Self> {
        Self::launch(data_dir, Launch::default(), extra).await
    }

    /// Starts a server listening on `bind` (such as `0.0.0.0:port`); tests reach it on loopback.
    pub async fn start_at(
        data_dir: &Path,
        bind: SocketAddr,
        extra: &[&str],
    ) -> anyhow::Result<Self> {
        let launch = Launch {
            bind: Some(bind),
            ..Launch::default()
        };
        Self::launch(data_dir, launch, extra).await
    }

    /// Starts a server whose instances run `consumer` instead of grouplab's consumer program,
    /// with `env` added to the server's environment (which its instances inherit).
    pub async fn start_with_consumer(
        data_dir: &Path,
        consumer: &Path,
        env: &[(&str, &std::ffi::OsStr)],
        extra: &[&str],
    ) -> anyhow::Result<Self> {
        let launch = Launch {
            consumer: Some(consumer.to_path_buf()),
            env: env
                .iter()
                .map(|(k, v)| ((*k).to_owned(), v.to_os_string()))
                .collect(),
            ..Launch::default()
        };
        Self::launch(data_dir, launch, extra).await
    }

    /// Starts a server that reads its labs from `labs` instead of the workspace's `labs/`.
    pub async fn start_with_labs(
        data_dir: &Path,
        labs: &Path,
        extra: &[&str],
    ) -> anyhow::Result<Self> {
        let launch = Launch {
            labs: Some(labs.to_path_buf()),
            ..Launch::default()
        };
        Self::launch(data_dir, launch, extra).await
    }

    /// Starts the server as `launch` says, on free ports of its own choosing where it does not
    /// name them. A port found free a moment ago can be taken in between (by any process's
    /// outgoing connection), so a start that fails because an address is in use is tried again,
    /// on fresh ports where possible.
    async fn launch(data_dir: &Path, launch: Launch, extra: &[&str]) -> anyhow::Result<Self> {
        const ATTEMPTS: usize = 3;
        let consumer = match &launch.consumer {
            Some(consumer) => consumer.clone(),
            None => workspace_binary("grouplab-consumer")?,
        };
        let labs = launch
            .labs
            .clone()
            .unwrap_or_else(|| workspace_root().join("labs"));
        let env: Vec<(&str, &std::ffi::OsStr)> = launch
            .env
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_os_str()))
            .collect();
        let mut attempt = 1;
        loop {
            let bind = launch.bind.unwrap_or_else(free_addr);
            match Self::launch_once(data_dir, bind, &consumer, &labs, &env, extra).await? {
                Ok(server) => return Ok(server),
                Err(()) if attempt < ATTEMPTS => attempt += 1,
                Err(()) => bail!("grouplab found its addresses in use {ATTEMPTS} times"),
            }
        }
    }

    /// One start: `Ok(Err(()))` when it failed because an address was in use.
    async fn launch_once(
        data_dir: &Path,
        bind: SocketAddr,
        consumer: &Path,
        labs: &Path,
        env: &[(&str, &std::ffi::OsStr)],
        extra: &[&str],
    ) -> anyhow::Result<Result<Self, ()>> {
        let addr = if bind.ip().is_unspecified() {
            SocketAddr::from((Ipv4Addr::LOCALHOST, bind.port()))
        } else {
            bind
        };
        let broker = free_addr();
        let mut child = Command::new(workspace_binary("grouplab")?)
            .arg("--addr")
            .arg(bind.to_string())
            .arg("--broker-addr")
            .arg(broker.to_string())
            .arg("--initial-rebalance-delay-ms")
            .arg("300")
            .arg("--labs-dir")
            .arg(labs)
            .arg("--site-root")
            .arg(site_root()?)
            .arg("--data-dir")
            .arg(data_dir)
            .arg("--consumer-program")
            .arg(consumer)
            .args(extra)
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .context("could not start grouplab")?;
        let log = forward_stderr(&mut child);
        let mut server = Self {
            child,
            addr,
            broker,
            log: log.clone(),
        };
        let until = tokio::time::Instant::now() + START_DEADLINE;
        loop {
            if let Ok(Some(status)) = server.child.try_wait() {
                // Let the forwarding thread read the last line.
                tokio::time::sleep(Duration::from_millis(50)).await;
                if log.count("Address already in use") + log.count("is already in use") > 0 {
                    return Ok(Err(()));
                }
                bail!("grouplab exited during start-up with {status}");
            }
            if matches!(server.get("/healthz").await, Ok((200, _))) {
                break;
            }
            if tokio::time::Instant::now() >= until {
                bail!("grouplab did not answer /healthz within {START_DEADLINE:?}");
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        Ok(Ok(server))
    }

    /// A class server's join code, read from the instructor's class page (the access link's `token`).
    pub async fn class_join_code(&self, token: &str) -> anyhow::Result<String> {
        let (status, body) = self.get(&format!("/class?token={token}")).await?;
        anyhow::ensure!(status == 200, "the class page answered {status}: {body}");
        let code = body
            .split("data-testid=\"join-code\"")
            .nth(1)
            .and_then(|rest| rest.split_once('>'))
            .and_then(|(_, rest)| rest.split('<').next())
            .context("the class page shows the code")?;
        Ok(code.to_owned())
    }

    /// Posts the join form as a learner's page does (from its own origin); returns the status
    /// and the cookie (`name=value`) it set, if any.
    pub async fn join_class(
        &self,
        code: &str,
        name: &str,
    ) -> anyhow::Result<(u16, Option<String>)> {
        let origin = format!("Origin: http://{}\r\n", self.addr);
        let (status, head, _) = http_post(
            self.addr,
            "/join",
            &origin,
            &format!("code={code}&name={name}"),
        )
        .await?;
        let cookie = head.lines().find_map(|line| {
            let value = line.strip_prefix("set-cookie: ")?;
            Some(value.split(';').next()?.to_owned())
        });
        Ok((status, cookie))
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    pub fn ws_url(&self, lab: &str) -> String {
        format!("ws://{}/ws/labs/{lab}", self.addr)
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Kills the server with SIGKILL, as a crash or the OOM killer would, and reaps it.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Stops the server with SIGTERM and waits for it to exit.
    pub async fn terminate(&mut self) -> anyhow::Result<()> {
        self.stop_with(nix::sys::signal::Signal::SIGTERM).await
    }

    /// Sends `signal` (SIGTERM, or SIGINT as Ctrl-C does) and waits for the server to exit.
    pub async fn stop_with(&mut self, signal: nix::sys::signal::Signal) -> anyhow::Result<()> {
        use nix::sys::signal::kill;
        use nix::unistd::Pid;
        kill(Pid::from_raw(self.child.id() as i32), signal)?;
        let child = &mut self.child;
        poll_until(
            "the server to exit after a stop signal",
            Duration::from_secs(30),
            || {
                let exited = child.try_wait().ok().flatten().is_some();
                async move { exited.then_some(()) }
            },
        )
        .await
    }

    /// A plain HTTP/1.0 GET, returning the status and body.
    pub async fn get(&self, path: &str) -> anyhow::Result<(u16, String)> {
        let (status, _, body) = self.request(path, "").await?;
        Ok((status, body))
    }

    /// A plain HTTP/1.0 GET with extra header lines (each ending in `\r\n`), returning the
    /// status, the response's header block and its body.
    pub async fn request(
        &self,
        path: &str,
        headers: &str,
    ) -> anyhow::Result<(u16, String, String)> {
        let (status, head, body) = self.fetch(path, headers).await?;
        Ok((status, head, String::from_utf8(body)?))
    }

    /// [`TestServer::request`], with the body as bytes.
    pub async fn fetch(&self, path: &str, headers: &str) -> anyhow::Result<(u16, String, Vec<u8>)> {
        http_fetch(self.addr, path, headers).await
    }
}

/// A plain HTTP/1.0 POST of a form (`body`, URL-encoded) to `path` on `addr`, with extra header
/// lines (each ending in `\r\n`), returning the status, the response's header block and its body.
pub async fn http_post(
    addr: SocketAddr,
    path: &str,
    headers: &str,
    body: &str,
) -> anyhow::Result<(u16, String, String)> {
    let mut stream = tokio::net::TcpStream::connect(addr).await?;
    stream
        .write_all(
            format!(
                "POST {path} HTTP/1.0\r\nHost: {addr}\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n{headers}\r\n{body}",
                body.len()
            )
            .as_bytes(),
        )
        .await?;
    let mut response = Vec::new();
    stream.read_to_end(&mut response).await?;
    let text = String::from_utf8(response)?;
    let (head, body) = text
        .split_once("\r\n\r\n")
        .context("no end of the HTTP header")?;
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .context("no HTTP status line")?;
    Ok((status, head.to_owned(), body.to_owned()))
}

/// A plain HTTP/1.0 GET of `path` from `addr` with extra header lines (each ending in `\r\n`),
/// returning the status, the response's header block and its body.
pub async fn http_fetch(
    addr: SocketAddr,
    path: &str,
    headers: &str,
) -> anyhow::Result<(u16, String, Vec<u8>)> {
    let mut stream = tokio::net::TcpStream::connect(addr).await?;
    stream
        .write_all(format!("GET {path} HTTP/1.0\r\nHost: {addr}\r\n{headers}\r\n").as_bytes())
        .await?;
    let mut response = Vec::new();
    stream.read_to_end(&mut response).await?;
    let split = response
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .context("no end of the HTTP header")?;
    let head = String::from_utf8(response[..split].to_vec())?;
    let body = response[split + 4..].to_vec();
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .context("no HTTP status line")?;
    Ok((status, head, body))
}

impl TestServer {
    /// How many lines of the server's log so far contain `text`.
    pub fn logged(&self, text: &str) -> usize {
        self.log.count(text)
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.kill();
    }
}

/// What a server wrote to stderr (its log), kept for the test to read: the newest lines.
#[derive(Clone, Default)]
struct ServerLog(std::sync::Arc<std::sync::Mutex<std::collections::VecDeque<String>>>);

impl ServerLog {
    /// How many lines are kept; a test's server writes far fewer.
    const KEPT: usize = 20_000;

    fn push(&self, line: String) {
        let mut lines = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if lines.len() == Self::KEPT {
            lines.pop_front();
        }
        lines.push_back(line);
    }

    fn count(&self, text: &str) -> usize {
        let lines = self.0.lock().unwrap_or_else(|e| e.into_inner());
        lines.iter().filter(|line| line.contains(text)).count()
    }
}

/// Copies the child's stderr to the test's, and keeps it for the test to read.
fn forward_stderr(child: &mut Child) -> ServerLog {
    use std::io::BufRead;
    let log = ServerLog::default();
    if let Some(stderr) = child.stderr.take() {
        let kept = log.clone();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stderr)
                .lines()
                .map_while(Result::ok)
            {
                eprintln!("{line}");
                kept.push(line);
            }
        });
    }
    log
}

/// The process ids whose parent is `parent`, read from /proc.
pub fn children_of(parent: u32) -> Vec<u32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(Result::ok)
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| parent_of(*pid) == Some(parent))
        .collect()
}

fn parent_of(pid: u32) -> Option<u32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name is in parentheses and may hold spaces; the fields after it are plain.
    let after = &stat[stat.rfind(')')? + 2..];
    after.split_whitespace().nth(1)?.parse().ok()
}

/// The kernel's state of the IPv4 TCP socket from `local` to `remote`, from /proc/net/tcp:
/// `Some("ESTABLISHED")`, `Some("FIN_WAIT1")` once the side at `local` closed it, and so on.
pub fn tcp_state(local: SocketAddr, remote: SocketAddr) -> Option<&'static str> {
    fn hex(addr: SocketAddr) -> Option<String> {
        let SocketAddr::V4(v4) = addr else {
            return None;
        };
        Some(format!(
            "{:08X}:{:04X}",
            u32::from_le_bytes(v4.ip().octets()),
            v4.port()
        ))
    }
    let (local, remote) = (hex(local)?, hex(remote)?);
    let table = std::fs::read_to_string("/proc/net/tcp").ok()?;
    let state = table.lines().skip(1).find_map(|line| {
        let fields: Vec<&str> = line.split_whitespace().collect();
        (fields.get(1) == Some(&local.as_str()) && fields.get(2) == Some(&remote.as_str()))
            .then(|| fields.get(3).copied())
            .flatten()
    })?;
    Some(match state {
        "01" => "ESTABLISHED",
        "02" => "SYN_SENT",
        "03" => "SYN_RECV",
        "04" => "FIN_WAIT1",
        "05" => "FIN_WAIT2",
        "06" => "TIME_WAIT",
        "07" => "CLOSE",
        "08" => "CLOSE_WAIT",
        "09" => "LAST_ACK",
        "0A" => "LISTEN",
        "0B" => "CLOSING",
        _ => "UNKNOWN",
    })
}

/// A process's resident memory, from /proc.
pub fn resident_kib(pid: u32) -> anyhow::Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .ok_or_else(|| anyhow::anyhow!("no VmRSS for {pid}"))
}

/// A process's CPU time so far (user + system), in clock ticks (100 a second on Linux), from /proc.
pub fn cpu_ticks(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|stat| {
            let after = stat[stat.rfind(')')? + 2..].to_owned();
            let fields: Vec<&str> = after.split_whitespace().collect();
            // utime and stime are fields 14 and 15 of stat, 12 and 13 after the command name.
            Some(fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?)
        })
        .unwrap_or(0)
}

/// The current time in microseconds since the Unix epoch, the clock instances stamp reports with.
pub fn now_us() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as u64)
}

/// Whether a process is still running (a zombie awaiting its parent counts as gone).
pub fn is_running(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|stat| {
            let after = &stat[stat.rfind(')')? + 2..];
            after
                .split_whitespace()
                .next()
                .map(|state| state != "Z" && state != "X")
        })
        .unwrap_or(false)
}
