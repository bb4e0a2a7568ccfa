//! The page's end of the lab websocket.
//!
//! [`Live`] holds the lab's [`LabSnapshot`] as a signal and changes it only with
//! [`LabSnapshot::apply`], the same function the server uses. On the server (`ssr`) nothing
//! connects and the view stays empty; in the browser (`hydrate`) the socket opens after
//! hydration, and reopens with a back-off if it drops.

use grouplab_protocol::{ClientCommand, LabSnapshot, Notice, PROTOCOL_VERSION, ServerEvent};
use leptos::prelude::*;

/// How the page's link to the server is doing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LinkStatus {
    Connecting,
    Live,
    /// The socket dropped; the page retries on its own.
    Reconnecting,
    /// The server speaks another protocol version: only a reload helps.
    Outdated,
}

/// A notice with an id, so the learner can dismiss it.
#[derive(Clone, Debug, PartialEq)]
pub struct ShownNotice {
    pub id: u64,
    pub notice: Notice,
}

/// The most notices shown at once; older ones give way.
const MAX_NOTICES: usize = 4;

/// The live state of one lab page, provided as context.
#[derive(Clone, Copy)]
pub struct Live {
    pub view: RwSignal<Option<LabSnapshot>>,
    pub status: RwSignal<LinkStatus>,
    pub notices: RwSignal<Vec<ShownNotice>>,
    /// The browser's clock in epoch milliseconds, ticking for countdowns; 0 on the server.
    pub now: RwSignal<u64>,
    next_notice: StoredValue<u64>,
    #[cfg(feature = "hydrate")]
    socket: StoredValue<Option<web_sys::WebSocket>, LocalStorage>,
}

impl Live {
    /// Creates the live state and, in the browser, connects to the lab's websocket.
    pub fn connect(lab_id: String) -> Self {
        let live = Self {
            view: RwSignal::new(None),
            status: RwSignal::new(LinkStatus::Connecting),
            notices: RwSignal::new(Vec::new()),
            now: RwSignal::new(0),
            next_notice: StoredValue::new(0),
            #[cfg(feature = "hydrate")]
            socket: StoredValue::new_local(None),
        };
        #[cfg(feature = "hydrate")]
        {
            Effect::new(move |_| {
                browser::open(live, lab_id.clone(), 0);
                browser::tick(live);
            });
            // Leaving the page closes its socket, with its handlers removed so it is not reopened.
            on_cleanup(move || {
                live.socket.try_with_value(|socket| {
                    if let Some(socket) = socket {
                        socket.set_onmessage(None);
                        socket.set_onclose(None);
                        let _ = socket.close();
                    }
                });
            });
        }
        #[cfg(not(feature = "hydrate"))]
        let _ = lab_id;
        live
    }

    /// Sends a command; without a connection the learner is told, rather than the click vanishing.
    pub fn send(&self, command: ClientCommand) {
        #[cfg(feature = "hydrate")]
        {
            let sent = self.socket.with_value(|socket| {
                socket.as_ref().is_some_and(|s| {
                    s.ready_state() == web_sys::WebSocket::OPEN
                        && s.send_with_str(&serde_json::to_string(&command).unwrap_or_default())
                            .is_ok()
                })
            });
            if sent {
                return;
            }
        }
        let _ = command;
        self.notify(Notice::error(
            "Not connected to the server",
            "The page is reconnecting; try again in a moment. If this lasts, check that grouplab is still running.",
        ));
    }

    /// Shows a notice. Errors stay until dismissed; confirmations go away after a few seconds.
    pub fn notify(&self, notice: Notice) {
        let id = self.next_notice.get_value();
        self.next_notice.set_value(id + 1);
        #[cfg(feature = "hydrate")]
        if notice.level == grouplab_protocol::NoticeLevel::Info {
            let live = *self;
            set_timeout(move || live.dismiss(id), std::time::Duration::from_secs(5));
        }
        self.notices.update(|notices| {
            notices.push(ShownNotice { id, notice });
            if notices.len() > MAX_NOTICES {
                notices.remove(0);
            }
        });
    }

    pub fn dismiss(&self, id: u64) {
        // The page may be gone by the time a delayed dismissal runs.
        self.notices
            .try_update(|notices| notices.retain(|n| n.id != id));
    }

    /// Applies one event from the server.
    pub fn receive(&self, event: ServerEvent) {
        match event {
            ServerEvent::Notice(notice) => self.notify(notice),
            ServerEvent::Snapshot(snapshot) if snapshot.protocol_version != PROTOCOL_VERSION => {
                self.status.set(LinkStatus::Outdated);
            }
            ServerEvent::Snapshot(snapshot) => {
                self.view.set(Some(*snapshot));
                self.status.set(LinkStatus::Live);
            }
            event => self.view.update(|view| {
                if let Some(view) = view {
                    view.apply(&event);
                }
            }),
        }
    }
}

#[cfg(feature = "hydrate")]
mod browser {
    use std::time::Duration;

    use grouplab_protocol::{Notice, ServerEvent};
    use leptos::prelude::*;
    use wasm_bindgen::JsCast;
    use wasm_bindgen::closure::Closure;
    use web_sys::{CloseEvent, MessageEvent, WebSocket};

    use super::{LinkStatus, Live};

    /// Opens the socket; on close, tries again after a back-off of up to five seconds.
    pub(super) fn open(live: Live, lab_id: String, attempt: u32) {
        let location = window().location();
        let scheme = if location.protocol().as_deref() == Ok("https:") {
            "wss"
        } else {
            "ws"
        };
        let host = location.host().unwrap_or_default();
        let url = format!("{scheme}://{host}/ws/labs/{lab_id}");
        let Ok(socket) = WebSocket::new(&url) else {
            retry(live, lab_id, attempt);
            return;
        };

        let on_message = Closure::<dyn FnMut(MessageEvent)>::new(move |event: MessageEvent| {
            let Some(text) = event.data().as_string() else {
                return;
            };
            match serde_json::from_str::<ServerEvent>(&text) {
                Ok(event) => live.receive(event),
                Err(err) => live.notify(Notice::error(
                    "The page could not read a message from the server",
                    format!("{err}. Reload the page: it may be older than the server."),
                )),
            }
        });
        socket.set_onmessage(Some(on_message.as_ref().unchecked_ref()));
        on_message.forget();

        let on_close = Closure::<dyn FnMut(CloseEvent)>::new(move |_: CloseEvent| {
            if live.status.get_untracked() != LinkStatus::Outdated {
                live.status.set(LinkStatus::Reconnecting);
                let next = if live.view.with_untracked(Option::is_some) {
                    0
                } else {
                    attempt + 1
                };
                retry(live, lab_id.clone(), next);
            }
        });
        socket.set_onclose(Some(on_close.as_ref().unchecked_ref()));
        on_close.forget();

        live.socket.set_value(Some(socket));
    }

    fn retry(live: Live, lab_id: String, attempt: u32) {
        let delay = Duration::from_millis(500 * u64::from(attempt.clamp(1, 10)));
        set_timeout(move || open(live, lab_id, attempt), delay);
    }

    /// Keeps `live.now` current, for countdowns.
    pub(super) fn tick(live: Live) {
        let update = move || live.now.set(js_sys::Date::now() as u64);
        update();
        set_interval(update, Duration::from_millis(200));
    }
}
