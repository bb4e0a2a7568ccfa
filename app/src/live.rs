//! The page's end of the lab websocket.
//!
//! [`Live`] holds the lab's [`LabSnapshot`] as a signal and changes it only with
//! [`LabSnapshot::apply`], the same function the server uses. On the server (`ssr`) nothing
//! connects and the view stays empty; in the browser (`hydrate`) the socket opens after
//! hydration, and reopens with a capped exponential back-off ([`backoff`]) if it drops; the
//! back-off starts over only after a connection has stayed up. Leaving the page closes the
//! socket and clears every timer it set.

use grouplab_protocol::{
    ClientCommand, LabSnapshot, Notice, NoticeLevel, PROTOCOL_VERSION, ServerEvent,
};
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
/// A connection that stayed up this long starts the back-off over when it drops.
#[cfg_attr(not(feature = "hydrate"), allow(dead_code))]
const STAYED_UP_MS: f64 = 10_000.0;

/// Sends `message` as one JSON text frame if `socket` is open; whether it went.
#[cfg(feature = "hydrate")]
pub(crate) fn send_json(
    socket: Option<&web_sys::WebSocket>,
    message: &impl serde::Serialize,
) -> bool {
    socket.is_some_and(|s| {
        s.ready_state() == web_sys::WebSocket::OPEN
            && serde_json::to_string(message).is_ok_and(|json| s.send_with_str(&json).is_ok())
    })
}

/// How long a notice stays before it goes by itself; errors stay until dismissed.
#[cfg_attr(not(feature = "hydrate"), allow(dead_code))]
pub fn shown_for(level: NoticeLevel) -> Option<std::time::Duration> {
    match level {
        NoticeLevel::Info => Some(std::time::Duration::from_secs(5)),
        // Long enough to read a problem that the instance's card also shows.
        NoticeLevel::Warning => Some(std::time::Duration::from_secs(12)),
        NoticeLevel::Error => None,
    }
}

/// How long to wait before reconnect attempt `attempt` (counted from 1): 0.5 s, doubling,
/// at most 10 s, so a server that is down for long is not hammered and one that restarts
/// quickly is found quickly.
pub fn backoff(attempt: u32) -> std::time::Duration {
    let doublings = attempt.saturating_sub(1).min(5);
    std::time::Duration::from_millis((500u64 << doublings).min(10_000))
}

/// The live state of one lab page, provided as context.
#[derive(Clone, Copy)]
pub struct Live {
    pub view: RwSignal<Option<LabSnapshot>>,
    /// Told when a batch of messages changed the counts in `view`. Batches come up to 250 times a
    /// second, so they change `view` without telling its readers: only what shows the counts
    /// listens here, and the rest of the page is not rendered again for each batch.
    pub counted: Trigger,
    /// Told when a batch brought messages to show in the feed.
    pub fed: Trigger,
    pub status: RwSignal<LinkStatus>,
    pub notices: RwSignal<Vec<ShownNotice>>,
    /// The browser's clock in epoch milliseconds, ticking for countdowns; 0 on the server.
    pub now: RwSignal<u64>,
    /// An instructor's view of a learner's lab: every control that acts is left out.
    pub read_only: bool,
    next_notice: StoredValue<u64>,
    #[cfg(feature = "hydrate")]
    socket: StoredValue<Option<web_sys::WebSocket>, LocalStorage>,
    /// The pending reconnect and the clock's ticker, cleared when the page goes away.
    #[cfg(feature = "hydrate")]
    timers: StoredValue<(Option<TimeoutHandle>, Option<IntervalHandle>), LocalStorage>,
}

impl Live {
    /// Creates the live state and, in the browser, connects to the lab's websocket at
    /// `socket_path` (`/ws/labs/{lab}`, or an instructor's read-only view of a learner's lab).
    pub fn connect(socket_path: String, read_only: bool) -> Self {
        let live = Self {
            read_only,
            view: RwSignal::new(None),
            counted: Trigger::new(),
            fed: Trigger::new(),
            status: RwSignal::new(LinkStatus::Connecting),
            notices: RwSignal::new(Vec::new()),
            now: RwSignal::new(0),
            next_notice: StoredValue::new(0),
            #[cfg(feature = "hydrate")]
            socket: StoredValue::new_local(None),
            #[cfg(feature = "hydrate")]
            timers: StoredValue::new_local((None, None)),
        };
        #[cfg(feature = "hydrate")]
        {
            Effect::new(move |_| {
                browser::open(live, socket_path.clone(), 0);
                browser::tick(live);
            });
            // Leaving the page closes its socket, with its handlers removed so it is not reopened,
            // and clears its timers, so nothing runs for a page that is gone.
            on_cleanup(move || {
                live.socket.try_with_value(|socket| {
                    if let Some(socket) = socket {
                        socket.set_onopen(None);
                        socket.set_onmessage(None);
                        socket.set_onclose(None);
                        let _ = socket.close();
                    }
                });
                live.timers.try_with_value(|(retry, ticker)| {
                    retry.iter().for_each(|t| t.clear());
                    ticker.iter().for_each(|t| t.clear());
                });
            });
        }
        #[cfg(not(feature = "hydrate"))]
        let _ = socket_path;
        live
    }

    /// Sends a command; without a connection the learner is told, rather than the click vanishing.
    pub fn send(&self, command: ClientCommand) {
        #[cfg(feature = "hydrate")]
        {
            if self
                .socket
                .with_value(|socket| send_json(socket.as_ref(), &command))
            {
                return;
            }
        }
        let _ = command;
        self.notify(Notice::error(
            "Not connected to the server",
            "The page is reconnecting; try again in a moment. If this lasts, check that grouplab is still running.",
        ));
    }

    /// Shows a notice. Errors stay until dismissed; the others go away by themselves.
    pub fn notify(&self, notice: Notice) {
        let id = self.next_notice.get_value();
        self.next_notice.set_value(id + 1);
        #[cfg(feature = "hydrate")]
        if let Some(shown_for) = shown_for(notice.level) {
            let live = *self;
            set_timeout(move || live.dismiss(id), shown_for);
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
                mark_live();
            }
            // A new version of the lab serves: its instructions are rendered on the server.
            ServerEvent::LabChanged {
                reloaded: true,
                problem: None,
            } => reload_page(),
            ServerEvent::Messages(ref batch) => {
                let sampled = !batch.sample.is_empty();
                self.view.update_untracked(|view| {
                    if let Some(view) = view {
                        view.apply(&event);
                    }
                });
                self.counted.notify();
                if sampled {
                    self.fed.notify();
                }
            }
            event => self.view.update(|view| {
                if let Some(view) = view {
                    view.apply(&event);
                }
            }),
        }
    }
}

/// Loads the page again, to show a new version of the lab.
fn reload_page() {
    #[cfg(feature = "hydrate")]
    if let Some(window) = web_sys::window() {
        let _ = window.location().reload();
    }
}

/// Marks the moment the page first shows the live lab (`performance.mark("grouplab-live")`),
/// for the load benchmark and the browser's own performance tools.
fn mark_live() {
    #[cfg(feature = "hydrate")]
    if let Some(performance) = web_sys::window().and_then(|w| w.performance())
        && performance.get_entries_by_name("grouplab-live").length() == 0
    {
        let _ = performance.mark("grouplab-live");
    }
}

#[cfg(feature = "hydrate")]
pub(crate) mod browser {
    use std::time::Duration;

    use grouplab_protocol::{Notice, ServerEvent};
    use leptos::prelude::*;
    use wasm_bindgen::JsCast;
    use wasm_bindgen::closure::Closure;
    use web_sys::{CloseEvent, MessageEvent, WebSocket};

    use std::cell::Cell;
    use std::rc::Rc;

    use super::{LinkStatus, Live, STAYED_UP_MS, backoff};

    /// The websocket address of `path` on the server that served the page.
    pub(crate) fn socket_url(path: &str) -> String {
        let location = window().location();
        let scheme = if location.protocol().as_deref() == Ok("https:") {
            "wss"
        } else {
            "ws"
        };
        format!("{scheme}://{}{path}", location.host().unwrap_or_default())
    }

    /// Opens the socket; on close, tries again after [`backoff`]. `attempt` counts the failed
    /// attempts since the last connection that stayed up.
    pub(super) fn open(live: Live, socket_path: String, attempt: u32) {
        let Ok(socket) = WebSocket::new(&socket_url(&socket_path)) else {
            retry(live, socket_path, attempt + 1);
            return;
        };

        let opened_at = Rc::new(Cell::new(None::<f64>));
        let on_open = Closure::<dyn FnMut(web_sys::Event)>::new({
            let opened_at = Rc::clone(&opened_at);
            move |_: web_sys::Event| opened_at.set(Some(js_sys::Date::now()))
        });
        socket.set_onopen(Some(on_open.as_ref().unchecked_ref()));
        on_open.forget();

        let on_message = Closure::<dyn FnMut(MessageEvent)>::new(move |event: MessageEvent| {
            let Some(text) = event.data().as_string() else {
                return;
            };
            let bench = bench_log();
            let received_us = bench.as_ref().map(|_| now_us());
            match serde_json::from_str::<ServerEvent>(&text) {
                Ok(event) => {
                    let reported = bench.as_ref().and_then(|_| reported_span(live, &event));
                    live.receive(event);
                    if let (Some(log), Some(received_us), Some(reported)) =
                        (bench, received_us, reported)
                    {
                        note_applied(log, reported, received_us);
                    }
                }
                Err(err) => live.notify(Notice::error(
                    "The page could not read a message from the server",
                    format!("{err}. Reload the page: it may be older than the server."),
                )),
            }
        });
        socket.set_onmessage(Some(on_message.as_ref().unchecked_ref()));
        on_message.forget();

        let on_close = Closure::<dyn FnMut(CloseEvent)>::new(move |_: CloseEvent| {
            if live.status.try_get_untracked() == Some(LinkStatus::Outdated) {
                return;
            }
            live.status.try_set(LinkStatus::Reconnecting);
            let stayed_up = opened_at
                .get()
                .is_some_and(|at| js_sys::Date::now() - at >= STAYED_UP_MS);
            let next = if stayed_up { 1 } else { attempt + 1 };
            retry(live, socket_path.clone(), next);
        });
        socket.set_onclose(Some(on_close.as_ref().unchecked_ref()));
        on_close.forget();

        live.socket.set_value(Some(socket));
    }

    /// The latency benchmark's log, if it asked for one by setting `window.grouplabBench` to an
    /// array. The page then appends `[kind, first reported µs, last reported µs, received µs,
    /// applied µs, count]` for every event that carries a consumer's or the broker's time;
    /// `count` is the number of messages a batch counted (1 for other events).
    fn bench_log() -> Option<js_sys::Array> {
        js_sys::Reflect::get(&window(), &"grouplabBench".into())
            .ok()?
            .dyn_into()
            .ok()
    }

    /// What an event says about when its consumer reports were written. An instance's card sent
    /// again (for its poll count, its lag) with a report the page already has is not logged again.
    fn reported_span(live: Live, event: &ServerEvent) -> Option<Reported> {
        match event {
            ServerEvent::Instance(view)
                if view.reported_at_us > 0
                    && live.view.with_untracked(|shown| {
                        shown
                            .as_ref()
                            .and_then(|shown| shown.instance(view.id))
                            .is_none_or(|before| before.reported_at_us != view.reported_at_us)
                    }) =>
            {
                let kind = if view.partitions.is_empty() {
                    "instance"
                } else {
                    "instance-assigned"
                };
                Some((kind, view.reported_at_us, view.reported_at_us, 1))
            }
            ServerEvent::Group(group) if group.decided_at_us > 0 => {
                Some(("group", group.decided_at_us, group.decided_at_us, 1))
            }
            ServerEvent::Messages(batch) => batch.reported_us.map(|span| {
                let count = batch.received.iter().map(|(_, n)| n).sum();
                ("messages", span.first, span.last, count)
            }),
            _ => None,
        }
    }

    /// Logs the event once the view has applied it: the task runs after the effects the change
    /// woke, which update the page.
    fn note_applied(log: js_sys::Array, (kind, first, last, count): Reported, received: f64) {
        leptos::task::spawn_local(async move {
            let entry = js_sys::Array::of5(
                &kind.into(),
                &(first as f64).into(),
                &(last as f64).into(),
                &received.into(),
                &now_us().into(),
            );
            entry.push(&(count as f64).into());
            log.push(&entry);
        });
    }

    /// An event's kind for the benchmark, its first and last reported time (µs) and its count.
    type Reported = (&'static str, u64, u64, u64);

    /// The wall clock in microseconds, as precisely as the browser gives it.
    fn now_us() -> f64 {
        window()
            .performance()
            .map_or(js_sys::Date::now() * 1000.0, |p| {
                (p.time_origin() + p.now()) * 1000.0
            })
    }

    fn retry(live: Live, socket_path: String, attempt: u32) {
        let handle =
            set_timeout_with_handle(move || open(live, socket_path, attempt), backoff(attempt));
        live.timers
            .try_update_value(|(retry, _)| *retry = handle.ok());
    }

    /// Keeps `live.now` current, for countdowns.
    pub(super) fn tick(live: Live) {
        let update = move || {
            live.now.try_set(js_sys::Date::now() as u64);
        };
        update();
        let handle = set_interval_with_handle(update, Duration::from_millis(200));
        live.timers
            .try_update_value(|(_, ticker)| *ticker = handle.ok());
    }
}

#[cfg(test)]
mod tests {
    use grouplab_protocol::NoticeLevel;

    use super::{backoff, shown_for};

    #[test]
    fn only_errors_stay_until_dismissed_and_warnings_outlast_confirmations() {
        assert_eq!(shown_for(NoticeLevel::Error), None);
        let info = shown_for(NoticeLevel::Info).expect("confirmations go by themselves");
        let warning = shown_for(NoticeLevel::Warning).expect("warnings go by themselves");
        assert!(warning > info, "{warning:?} vs {info:?}");
    }

    #[test]
    fn reconnects_back_off_exponentially_up_to_ten_seconds() {
        let delays: Vec<u64> = (1..=8).map(|n| backoff(n).as_millis() as u64).collect();
        assert_eq!(
            delays,
            [500, 1_000, 2_000, 4_000, 8_000, 10_000, 10_000, 10_000]
        );
        assert_eq!(backoff(0).as_millis(), 500);
        assert_eq!(backoff(u32::MAX).as_millis(), 10_000);
    }
}
