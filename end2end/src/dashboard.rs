//! [`Dashboard`]: a class instructor's dashboard socket, kept as the dashboard page keeps it.

use std::time::Duration;

use anyhow::Context;

use crate::{START_DEADLINE, TestServer};

/// The instructor's dashboard socket, keeping the latest board and the latest action's report.
pub struct Dashboard {
    socket: tokio_tungstenite::WebSocketStream<
        tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>,
    >,
    pub board: grouplab_protocol::class::ClassBoard,
    pub reports: Vec<grouplab_protocol::class::ActionReport>,
}

impl Dashboard {
    /// Opens the dashboard's socket with the instructor's `token`, and waits for the first board.
    pub async fn open(server: &TestServer, token: &str) -> anyhow::Result<Self> {
        use tokio_tungstenite::tungstenite::client::IntoClientRequest;
        let mut request = format!("ws://{}/class/ws", server.addr).into_client_request()?;
        request
            .headers_mut()
            .insert("Cookie", format!("grouplab_token={token}").parse()?);
        let (socket, _) = tokio_tungstenite::connect_async(request).await?;
        let mut dashboard = Self {
            socket,
            board: Default::default(),
            reports: Vec::new(),
        };
        dashboard.next().await?;
        Ok(dashboard)
    }

    /// Reads one event: a board, or an action's report.
    pub async fn next(&mut self) -> anyhow::Result<()> {
        use futures::StreamExt;
        use grouplab_protocol::class::ClassEvent;
        loop {
            let message = self.socket.next().await.context("the dashboard closed")??;
            let tokio_tungstenite::tungstenite::Message::Text(text) = message else {
                continue;
            };
            match serde_json::from_str::<ClassEvent>(&text)? {
                ClassEvent::Board(board) => self.board = board,
                ClassEvent::Acted(report) => self.reports.push(report),
            }
            return Ok(());
        }
    }

    /// Waits until the board satisfies `done`.
    pub async fn wait_until(
        &mut self,
        what: &str,
        deadline: Duration,
        done: impl Fn(&grouplab_protocol::class::ClassBoard) -> bool,
    ) -> anyhow::Result<()> {
        let until = tokio::time::Instant::now() + deadline;
        while !done(&self.board) {
            tokio::time::timeout_at(until, self.next())
                .await
                .with_context(|| format!("waiting for {what}; the board: {:?}", self.board))??;
        }
        Ok(())
    }

    /// Acts on one learner (or everyone) and waits for the report.
    pub async fn act(
        &mut self,
        learner: Option<&str>,
        action: grouplab_protocol::class::InstructorAction,
    ) -> anyhow::Result<grouplab_protocol::class::ActionReport> {
        use futures::SinkExt;
        let command = grouplab_protocol::class::ClassCommand::Act {
            learner: learner.map(str::to_owned),
            action,
        };
        self.socket
            .send(tokio_tungstenite::tungstenite::Message::text(
                serde_json::to_string(&command)?,
            ))
            .await?;
        let reported = self.reports.len();
        let until = tokio::time::Instant::now() + START_DEADLINE;
        while self.reports.len() == reported {
            tokio::time::timeout_at(until, self.next())
                .await
                .context("waiting for the action's report")??;
        }
        self.reports.last().cloned().context("a report")
    }

    pub fn tile(&self, name: &str) -> Option<&grouplab_protocol::class::LearnerTile> {
        self.board.learners.iter().find(|l| l.name == name)
    }
}
