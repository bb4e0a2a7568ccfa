//! Helpers for tests that run the real `grouplab` binary.
//!
//! [`TestServer`] starts the server with its own embedded broker on free ports, its own progress
//! database, and the labs and built front end of this workspace, and kills it when dropped.
//! [`Browser`] starts Debian's `chromedriver` and a headless Chromium session.
//! [`external`] runs Lab 04's snippets as the learner's own consumers.
//! Every wait polls for a condition under a deadline.

use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::{Context, bail};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

pub mod external;

/// How long the server may take to start: the broker, the clients, the router.
pub const START_DEADLINE: Duration = Duration::from_secs(60);

/// A free port on the loopback interface.
pub fn free_addr() -> SocketAddr {
    let probe = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind a free port");
    probe.local_addr().expect("local address")
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
        let in_use = forward_stderr(&mut child);
        let mut server = Self {
            child,
            addr,
            broker,
        };
        let until = tokio::time::Instant::now() + START_DEADLINE;
        loop {
            if let Ok(Some(status)) = server.child.try_wait() {
                // Let the forwarding thread read the last line.
                tokio::time::sleep(Duration::from_millis(50)).await;
                if in_use.load(std::sync::atomic::Ordering::SeqCst) {
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

impl Drop for TestServer {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Copies the child's stderr to the test's, and tells whether it said an address was in use.
fn forward_stderr(child: &mut Child) -> std::sync::Arc<std::sync::atomic::AtomicBool> {
    use std::io::BufRead;
    let in_use = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    if let Some(stderr) = child.stderr.take() {
        let flag = std::sync::Arc::clone(&in_use);
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stderr)
                .lines()
                .map_while(Result::ok)
            {
                if line.contains("Address already in use") || line.contains("is already in use") {
                    flag.store(true, std::sync::atomic::Ordering::SeqCst);
                }
                eprintln!("{line}");
            }
        });
    }
    in_use
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

/// The sum of the received counts the page shows on its instance cards, read in one script.
pub async fn shown_received(page: &fantoccini::Client) -> anyhow::Result<u64> {
    let counts = page
        .execute(
            "return Array.from(document.querySelectorAll(\"[data-testid^='received-']\"))
               .map(e => parseInt(e.textContent.trim(), 10) || 0);",
            vec![],
        )
        .await?;
    let counts: Vec<u64> = serde_json::from_value(counts)?;
    Ok(counts.iter().sum())
}

/// A headless Chromium driven through Debian's chromedriver.
pub struct Browser {
    driver: Child,
    pub client: fantoccini::Client,
    /// chromedriver's and Chromium's temporary files (profile, scoped dirs). Chromium killed
    /// with SIGKILL cannot remove them, so they live here and go when the browser is dropped.
    _scratch: tempfile::TempDir,
}

impl Browser {
    pub async fn start() -> anyhow::Result<Self> {
        let chromedriver =
            std::env::var("CHROMEDRIVER").unwrap_or_else(|_| "/usr/bin/chromedriver".into());
        let chromium = std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
        let port = free_addr().port();
        let scratch = tempfile::Builder::new()
            .prefix("grouplab-browser-")
            .tempdir()
            .context("could not create a temporary directory for Chromium")?;
        // Its own process group, which the Chromium it starts joins: a test or benchmark that
        // fails before `close` kills them all on drop instead of leaving Chromium running.
        let driver = Command::new(&chromedriver)
            .arg(format!("--port={port}"))
            .env("TMPDIR", scratch.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()
            .with_context(|| format!("could not start {chromedriver}: install Debian's chromium-driver (the test command does)"))?;
        let mut browser_args = serde_json::Map::new();
        browser_args.insert(
            "args".into(),
            serde_json::json!([
                "--headless=new",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-dev-shm-usage",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--window-size=1280,900"
            ]),
        );
        browser_args.insert("binary".into(), chromium.into());
        let mut capabilities = serde_json::Map::new();
        capabilities.insert("goog:chromeOptions".into(), browser_args.into());
        let url = format!("http://127.0.0.1:{port}");
        let mut driver = DriverGuard(Some(driver));
        let client = poll_until(
            "chromedriver to accept a session",
            Duration::from_secs(30),
            || {
                let capabilities = capabilities.clone();
                let url = url.clone();
                async move {
                    fantoccini::ClientBuilder::new(
                        hyper_util::client::legacy::connect::HttpConnector::new(),
                    )
                    .capabilities(capabilities)
                    .connect(&url)
                    .await
                    .ok()
                }
            },
        )
        .await?;
        let browser = Self {
            driver: driver.0.take().expect("the driver is still owned"),
            client,
            _scratch: scratch,
        };
        // The pages are looked at as on a 1280×720 screen: the viewport, not the window around it.
        browser.viewport(1280, 720).await?;
        Ok(browser)
    }

    /// Resizes the page's viewport (not the window around it), as a different screen would.
    pub async fn viewport(&self, width: u32, height: u32) -> anyhow::Result<()> {
        let frame = self
            .client
            .execute("return window.outerHeight - window.innerHeight;", vec![])
            .await?
            .as_u64()
            .unwrap_or(0);
        self.client
            .set_window_size(width, height + frame as u32)
            .await?;
        Ok(())
    }

    pub async fn close(mut self) -> anyhow::Result<()> {
        self.client.clone().close().await?;
        kill_group(&mut self.driver);
        Ok(())
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        kill_group(&mut self.driver);
    }
}

/// Kills a child started as a process group's leader and everything in its group (for
/// chromedriver, the Chromium it started), and reaps it.
pub fn kill_group(leader: &mut Child) {
    if let Ok(pid) = i32::try_from(leader.id()) {
        let _ = nix::sys::signal::killpg(
            nix::unistd::Pid::from_raw(pid),
            nix::sys::signal::Signal::SIGKILL,
        );
    }
    let _ = leader.kill();
    let _ = leader.wait();
}

/// Kills chromedriver if the session could not be opened.
struct DriverGuard(Option<Child>);

impl Drop for DriverGuard {
    fn drop(&mut self) {
        if let Some(mut child) = self.0.take() {
            kill_group(&mut child);
        }
    }
}

/// A websocket client that keeps a lab view the way the page does: by applying every event.
pub struct LabClient {
    socket: tokio_tungstenite::WebSocketStream<
        tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>,
    >,
    pub view: Option<grouplab_protocol::LabSnapshot>,
    /// Every notice received, oldest first.
    pub notices: Vec<grouplab_protocol::Notice>,
}

impl LabClient {
    pub async fn connect(server: &TestServer, lab: &str) -> anyhow::Result<Self> {
        let (socket, _) = tokio_tungstenite::connect_async(server.ws_url(lab)).await?;
        Ok(Self {
            socket,
            view: None,
            notices: Vec::new(),
        })
    }

    /// Connects and waits for the snapshot, as a page does before it shows anything.
    pub async fn open(server: &TestServer, lab: &str) -> anyhow::Result<Self> {
        let mut client = Self::connect(server, lab).await?;
        client
            .wait_until("the snapshot", Duration::from_secs(10), |c| {
                c.view.is_some()
            })
            .await?;
        Ok(client)
    }

    pub async fn send(&mut self, command: &grouplab_protocol::ClientCommand) -> anyhow::Result<()> {
        self.send_text(&serde_json::to_string(command)?).await
    }

    pub async fn send_text(&mut self, text: &str) -> anyhow::Result<()> {
        use futures::SinkExt;
        self.socket
            .send(tokio_tungstenite::tungstenite::Message::text(text))
            .await?;
        Ok(())
    }

    pub async fn send_binary(&mut self, bytes: Vec<u8>) -> anyhow::Result<()> {
        use futures::SinkExt;
        self.socket
            .send(tokio_tungstenite::tungstenite::Message::binary(bytes))
            .await?;
        Ok(())
    }

    /// Reads one event and applies it.
    pub async fn next_event(&mut self) -> anyhow::Result<grouplab_protocol::ServerEvent> {
        use futures::StreamExt;
        use grouplab_protocol::ServerEvent;
        loop {
            let message = self
                .socket
                .next()
                .await
                .context("the server closed the socket")??;
            let tokio_tungstenite::tungstenite::Message::Text(text) = message else {
                continue;
            };
            let event: ServerEvent = serde_json::from_str(&text).with_context(|| {
                format!("the server sent an event the protocol cannot read: {text}")
            })?;
            match (&event, &mut self.view) {
                (ServerEvent::Snapshot(snapshot), _) => self.view = Some((**snapshot).clone()),
                (ServerEvent::Notice(notice), _) => self.notices.push(notice.clone()),
                (event, Some(view)) => view.apply(event),
                (event, None) => bail!("an event came before the snapshot: {event:?}"),
            }
            return Ok(event);
        }
    }

    /// Reads events until the view satisfies `done`, failing after `deadline`.
    pub async fn wait_until(
        &mut self,
        what: &str,
        deadline: Duration,
        done: impl Fn(&Self) -> bool,
    ) -> anyhow::Result<()> {
        let until = tokio::time::Instant::now() + deadline;
        while !done(self) {
            match tokio::time::timeout_at(until, self.next_event()).await {
                Ok(result) => {
                    result?;
                }
                Err(_) => bail!(
                    "timed out after {deadline:?} waiting for {what}; notices: {:?}",
                    self.notices
                ),
            }
        }
        Ok(())
    }

    /// Creates a topic and waits until its lanes are in the view.
    pub async fn create_topic(&mut self, topic: &str, partitions: i32) -> anyhow::Result<()> {
        self.send(&grouplab_protocol::ClientCommand::CreateTopic {
            topic: topic.into(),
            partitions,
        })
        .await?;
        self.wait_until(&format!("the lanes of `{topic}`"), START_DEADLINE, |p| {
            p.view().topic(topic).is_some()
        })
        .await
    }

    /// Asks for `count` instances of `group` reading `topic`, with the default settings.
    pub async fn start_instances(
        &mut self,
        group: &str,
        topic: &str,
        count: usize,
    ) -> anyhow::Result<()> {
        for _ in 0..count {
            self.send(&grouplab_protocol::ClientCommand::StartInstance {
                group: group.into(),
                topic: topic.into(),
                settings: grouplab_protocol::ConsumerSettings::default(),
            })
            .await?;
        }
        Ok(())
    }

    /// Asks for one instance of `group` reading `topic`, with these settings.
    pub async fn start_instance(
        &mut self,
        group: &str,
        topic: &str,
        settings: grouplab_protocol::ConsumerSettings,
    ) -> anyhow::Result<()> {
        self.send(&grouplab_protocol::ClientCommand::StartInstance {
            group: group.into(),
            topic: topic.into(),
            settings,
        })
        .await
    }

    /// Starts one instance, waits until it runs (joined, or reading), and gives its id.
    pub async fn start_running(
        &mut self,
        group: &str,
        topic: &str,
        settings: grouplab_protocol::ConsumerSettings,
        deadline: Duration,
    ) -> anyhow::Result<grouplab_protocol::InstanceId> {
        let before: Vec<_> = self.view().instances.iter().map(|i| i.id).collect();
        self.start_instance(group, topic, settings).await?;
        let new = |view: &grouplab_protocol::LabSnapshot| {
            view.instances
                .iter()
                .find(|i| {
                    !before.contains(&i.id) && i.state == grouplab_protocol::InstanceState::Running
                })
                .map(|i| i.id)
        };
        self.wait_until("the new instance running", deadline, |c| {
            new(c.view()).is_some()
        })
        .await?;
        new(self.view()).context("the new instance is gone")
    }

    /// Stops an instance gracefully and waits until its process has exited.
    pub async fn stop_instance(
        &mut self,
        instance: grouplab_protocol::InstanceId,
        deadline: Duration,
    ) -> anyhow::Result<()> {
        self.send(&grouplab_protocol::ClientCommand::StopInstance { instance })
            .await?;
        self.wait_until(&format!("instance {} to stop", instance.0), deadline, |c| {
            c.view().instance(instance).is_some_and(|i| !i.is_alive())
        })
        .await
    }

    /// Produces `count` messages and waits until the topic holds at least `total` of them.
    pub async fn produce(
        &mut self,
        topic: &str,
        count: u32,
        keys: grouplab_protocol::KeyMode,
        partition: Option<i32>,
        total: i64,
    ) -> anyhow::Result<()> {
        self.send(&grouplab_protocol::ClientCommand::Produce {
            topic: topic.into(),
            count,
            keys,
            partition,
            text: None,
        })
        .await?;
        self.wait_until(
            &format!("{total} messages in `{topic}`"),
            START_DEADLINE,
            |c| {
                c.view()
                    .topic(topic)
                    .is_some_and(|t| t.message_count() >= total)
            },
        )
        .await
    }

    /// Waits until step `index` (0-based) of the lab has passed, and returns how long that took;
    /// on timeout the error says what the step's checks saw last.
    pub async fn wait_for_step(
        &mut self,
        index: usize,
        deadline: Duration,
    ) -> anyhow::Result<Duration> {
        let began = std::time::Instant::now();
        let result = self
            .wait_until(&format!("step {}", index + 1), deadline, |c| {
                c.view()
                    .progress
                    .steps
                    .get(index)
                    .is_some_and(|s| s.passed_at.is_some())
            })
            .await;
        if let Err(err) = result {
            let detail = self
                .view()
                .progress
                .steps
                .get(index)
                .map(|s| s.detail.clone())
                .unwrap_or_default();
            bail!("{err}\nthe step's checks said: {detail}");
        }
        Ok(began.elapsed())
    }

    /// Whether exactly `count` instances run, each holding `partitions` partitions by its own
    /// rebalance callbacks: the steady state benchmarks start from.
    pub fn running_evenly(&self, count: usize, partitions: usize) -> bool {
        let running: Vec<_> = self
            .view()
            .instances
            .iter()
            .filter(|i| i.state == grouplab_protocol::InstanceState::Running)
            .collect();
        running.len() == count && running.iter().all(|i| i.partitions.len() == partitions)
    }

    /// Messages received by every instance in the view, counted exactly.
    pub fn received_total(&self) -> u64 {
        self.view().instances.iter().map(|i| i.received).sum()
    }

    pub fn view(&self) -> &grouplab_protocol::LabSnapshot {
        self.view.as_ref().expect("the snapshot arrived")
    }
}

/// The size of an event as the server sends it, in bytes of JSON.
pub fn encoded_len(event: &grouplab_protocol::ServerEvent) -> u64 {
    serde_json::to_string(event).map_or(0, |json| json.len() as u64)
}
