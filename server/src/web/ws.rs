//! The lab websocket: decode commands, forward them to the session, encode events. Nothing else.
//!
//! Each socket gets a send task and a receive task. The send task writes the snapshot, then every
//! broadcast event, then anything meant for this page only (notices about its own commands). A page
//! that falls behind the broadcast gets a fresh snapshot instead of a silently incomplete view.

use axum::extract::ws::{Message, Utf8Bytes, WebSocket};
use futures::{SinkExt, StreamExt};
use grouplab_protocol::{ClientCommand, Notice, ServerEvent};
use tokio::sync::{broadcast, mpsc};
use tokio_util::sync::CancellationToken;
use tracing::debug;

use crate::session::SessionHandle;

/// The largest frame a page may send; commands are a few hundred bytes.
pub const MAX_FRAME_BYTES: usize = 64 * 1024;
/// How long one frame may take to go out before the page is taken for gone and its socket
/// closed. A page that stops reading costs the server one blocked task and its socket buffers
/// until then, and never holds back other pages: they read the lab's broadcast on their own,
/// and a page that falls behind it gets a fresh snapshot instead of a backlog.
pub const SEND_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(15);

/// Whose page a socket serves.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Viewer {
    /// The lab's learner: their commands act.
    Learner,
    /// A class's instructor looking at a learner's lab: the same events, and no command acts.
    Instructor,
}

/// Serves one page's socket until either side closes, or `ended` is cancelled (its learner was
/// shut out of the class).
pub async fn serve(
    socket: WebSocket,
    session: SessionHandle,
    ended: CancellationToken,
    viewer: Viewer,
) {
    let Some((snapshot, events)) = session.subscribe().await else {
        return;
    };
    // The instructor's view is not one of the learner's pages on the dashboard: counted from
    // when it subscribed until both its tasks (and so its subscription) are gone.
    let _observing = (viewer == Viewer::Instructor).then(|| session.observe());
    let (sink, stream) = socket.split();
    let (direct, direct_inbox) = mpsc::channel::<ServerEvent>(64);

    let mut send_task = tokio::spawn(send_events(
        sink,
        session.clone(),
        ServerEvent::Snapshot(Box::new(snapshot)),
        events,
        direct_inbox,
    ));
    let mut receive_task = tokio::spawn(receive_commands(stream, session, direct, viewer));
    tokio::select! {
        _ = &mut send_task => {
            receive_task.abort();
            let _ = receive_task.await;
        }
        _ = &mut receive_task => {
            send_task.abort();
            let _ = send_task.await;
        }
        () = ended.cancelled() => {
            send_task.abort();
            receive_task.abort();
            let _ = send_task.await;
            let _ = receive_task.await;
        }
    }
}

async fn send_events(
    mut sink: futures::stream::SplitSink<WebSocket, Message>,
    session: SessionHandle,
    first: ServerEvent,
    mut events: broadcast::Receiver<ServerEvent>,
    mut direct: mpsc::Receiver<ServerEvent>,
) {
    let mut next = Some(first);
    loop {
        if let Some(event) = next.take() {
            let json = serde_json::to_string(&event).expect("events always serialize");
            match tokio::time::timeout(
                SEND_TIMEOUT,
                sink.send(Message::Text(Utf8Bytes::from(json))),
            )
            .await
            {
                Ok(Ok(())) => {}
                Ok(Err(_)) => return,
                Err(_) => {
                    debug!("a page stopped reading its socket; closing it");
                    return;
                }
            }
        }
        next = tokio::select! {
            // Broadcast first: a notice for this page must not overtake the change it talks about,
            // and the session always broadcasts a change before it replies.
            biased;
            received = events.recv() => match received {
                Ok(event) => Some(event),
                Err(broadcast::error::RecvError::Lagged(missed)) => {
                    debug!(missed, "a page fell behind; sending it a fresh snapshot");
                    let Some((snapshot, fresh)) = session.subscribe().await else { return };
                    events = fresh;
                    Some(ServerEvent::Snapshot(Box::new(snapshot)))
                }
                Err(broadcast::error::RecvError::Closed) => {
                    let _ = sink.send(Message::Close(None)).await;
                    return;
                }
            },
            Some(event) = direct.recv() => Some(event),
        };
    }
}

async fn receive_commands(
    mut stream: futures::stream::SplitStream<WebSocket>,
    session: SessionHandle,
    direct: mpsc::Sender<ServerEvent>,
    viewer: Viewer,
) {
    while let Some(Ok(message)) = stream.next().await {
        let command = match message {
            Message::Text(text) => decode(&text),
            Message::Binary(_) => Err(unreadable("it was binary, and grouplab speaks JSON text")),
            Message::Close(_) => return,
            Message::Ping(_) | Message::Pong(_) => continue,
        };
        match command {
            Ok(command) if viewer == Viewer::Instructor && command != ClientCommand::Resync => {
                let notice = Notice::info(
                    "This view is read-only",
                    "You are looking at a learner's lab: act on it from the class's dashboard.",
                );
                if direct.send(ServerEvent::Notice(notice)).await.is_err() {
                    return;
                }
            }
            Ok(command) => {
                if !session.command(command, direct.clone()).await {
                    return;
                }
            }
            Err(notice) => {
                if direct.send(ServerEvent::Notice(notice)).await.is_err() {
                    return;
                }
            }
        }
    }
}

/// Decodes one command; a frame that is not one becomes a notice for the page that sent it.
pub fn decode(text: &str) -> Result<ClientCommand, Notice> {
    serde_json::from_str(text).map_err(|err| unreadable(&err.to_string()))
}

fn unreadable(why: &str) -> Notice {
    Notice::error(
        "The server could not understand the page",
        format!(
            "A message from this page was ignored ({why}). If you did not send it yourself, reload the page: it may be older than the server."
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn malformed_frames_become_notices() {
        for frame in [
            "",
            "{",
            "[]",
            r#"{"command":"explode"}"#,
            r#"{"command":"create_topic","topic":"t"}"#,
        ] {
            let notice = decode(frame).expect_err(frame);
            assert!(notice.detail.contains("ignored"), "{frame}: {notice:?}");
        }
        assert_eq!(
            decode(r#"{"command":"open_hint"}"#),
            Ok(ClientCommand::OpenHint)
        );
    }
}
