//! [`Browser`]: Debian's chromedriver and a headless Chromium session at a 1280×720 viewport.

use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::Context;

use crate::{free_addr, poll_until};

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

/// Waits until the lab page in `page` says its link to the server is live.
pub async fn wait_until_live(page: &fantoccini::Client, deadline: Duration) -> anyhow::Result<()> {
    poll_until("the lab page to be live", deadline, || async {
        let status = page
            .find(fantoccini::Locator::Css("[data-testid='link-status']"))
            .await
            .ok()?
            .text()
            .await
            .ok()?;
        (status == "live").then_some(())
    })
    .await
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
