//! A class's dashboard, for its instructor: how to join (the link, the code, its QR code), a tile
//! per learner, how far the class got in each lab, the actions on one learner or on everyone, and
//! the roster. The board comes over `/class/ws` as it changes; nothing polls.

use grouplab_protocol::EpochMillis;
use grouplab_protocol::class::{
    ActionReport, ClassBoard, ClassCommand, ClassEvent, InstructorAction,
};
use leptos::either::Either;
use leptos::prelude::*;
use serde::{Deserialize, Serialize};

/// What the dashboard page is rendered from.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct ClassPage {
    pub class: String,
    pub code: String,
    /// `http://host/join/CODE`.
    pub link: String,
    pub host: String,
    /// The join link's QR code, an SVG element made by the server.
    pub qr_svg: String,
    pub roster: Vec<RosterEntry>,
    /// The board when the page was rendered.
    pub board: ClassBoard,
}

/// A learner on the roster, with what lets them back in.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct RosterEntry {
    pub id: String,
    pub name: String,
    pub rejoin_code: String,
    pub broker_port: u16,
}

/// The dashboard's live state.
#[derive(Clone, Copy)]
struct Desk {
    board: RwSignal<ClassBoard>,
    report: RwSignal<Option<ActionReport>>,
    connected: RwSignal<bool>,
    #[cfg(feature = "hydrate")]
    socket: StoredValue<Option<web_sys::WebSocket>, LocalStorage>,
}

impl Desk {
    fn act(&self, learner: Option<String>, action: InstructorAction) {
        let command = ClassCommand::Act { learner, action };
        #[cfg(feature = "hydrate")]
        {
            if self
                .socket
                .with_value(|socket| crate::live::send_json(socket.as_ref(), &command))
            {
                return;
            }
        }
        self.report.set(Some(ActionReport {
            action: match &command {
                ClassCommand::Act { action, .. } => action.describe(),
            },
            refused: vec![(
                "everyone".to_owned(),
                "the dashboard is not connected to the server; wait for it to reconnect".to_owned(),
            )],
            ..ActionReport::default()
        }));
    }

    #[cfg_attr(not(feature = "hydrate"), allow(dead_code))]
    fn receive(&self, event: ClassEvent) {
        match event {
            ClassEvent::Board(board) => self.board.set(board),
            ClassEvent::Acted(report) => self.report.set(Some(report)),
        }
    }
}

/// "4 min 05 s", "12 s".
fn duration(ms: u64) -> String {
    let s = ms / 1000;
    match s {
        0..60 => format!("{s} s"),
        60..3600 => format!("{} min {:02} s", s / 60, s % 60),
        _ => format!("{} h {:02} min", s / 3600, (s % 3600) / 60),
    }
}

fn ago(now: EpochMillis, at: Option<EpochMillis>) -> String {
    at.map_or_else(
        || "—".to_owned(),
        |at| format!("{} ago", duration(now.saturating_sub(at))),
    )
}

#[component]
pub fn Dashboard(page: ClassPage) -> impl IntoView {
    let desk = Desk {
        board: RwSignal::new(page.board.clone()),
        report: RwSignal::new(None),
        connected: RwSignal::new(false),
        #[cfg(feature = "hydrate")]
        socket: StoredValue::new_local(None),
    };
    #[cfg(feature = "hydrate")]
    Effect::new(move |_| browser::open(desk, 0));
    let outage = RwSignal::new(20u32);
    let messages = RwSignal::new(50u32);
    let text = RwSignal::new(String::new());
    let to = RwSignal::new(String::new());
    // Who is in the class, which changes only when someone joins or is shut out.
    let learners = Memo::new(move |_| {
        desk.board.with(|b| {
            b.learners
                .iter()
                .map(|l| (l.id.clone(), l.name.clone()))
                .collect::<Vec<_>>()
        })
    });
    let learners = move || learners.get();
    view! {
        <main class="page dashboard" data-testid="dashboard">
            <header class="dashboard-head">
                <h1>"Class " {page.class.clone()}</h1>
                <span class="link-state" data-testid="board-link">{move || if desk.connected.get() { "live" } else { "connecting…" }}</span>
                <span class="join-line">"Join at " <strong>{page.link.clone()}</strong> " · code " <strong class="join-code-small">{page.code.clone()}</strong></span>
                <a href="/">"Your own labs"</a>
            </header>
            // Open while nobody has joined: the poster is for the projector as the class arrives.
            <details class="join-details" open=page.roster.is_empty()>
                <summary>"The join poster, for the projector"</summary>
            <section class="join-poster" aria-label="How to join">
                <div class="join-qr" inner_html=page.qr_svg.clone()></div>
                <div class="join-words">
                    <p>"Join at"</p>
                    <p class="join-link" data-testid="join-link">{page.link.clone()}</p>
                    <p>"or open " <strong>{format!("http://{}/join", page.host)}</strong> " and type the code"</p>
                    <p class="join-code" data-testid="join-code">{page.code.clone()}</p>
                </div>
            </section>
            </details>

            <section class="demos" aria-label="Class-wide actions">
                <h2>"Everyone at once"</h2>
                <div class="demo-row">
                    <button class="danger" data-testid="crash-each" on:click=move |_| desk.act(None, InstructorAction::CrashOne)>
                        "Crash one consumer in each group"
                    </button>
                    <span class="demo">
                        <button class="danger-outline" data-testid="outage-each" on:click=move |_| desk.act(None, InstructorAction::BrokerDown { seconds: outage.get_untracked() })>
                            "Broker down for"
                        </button>
                        <input type="number" min="1" max="120" aria-label="Seconds" prop:value=move || outage.get().to_string()
                            on:input=move |ev| if let Ok(n) = event_target_value(&ev).parse() { outage.set(n) } />
                        " s"
                    </span>
                    <span class="demo">
                        <button class="secondary" data-testid="produce-each" on:click=move |_| desk.act(None, InstructorAction::Produce { count: messages.get_untracked() })>
                            "Produce"
                        </button>
                        <input type="number" min="1" max="1000" aria-label="Messages" prop:value=move || messages.get().to_string()
                            on:input=move |ev| if let Ok(n) = event_target_value(&ev).parse() { messages.set(n) } />
                        " messages into each lab"
                    </span>
                </div>
                <form class="message-row" on:submit=move |ev| {
                    ev.prevent_default();
                    let learner = Some(to.get_untracked()).filter(|to| !to.is_empty());
                    desk.act(learner, InstructorAction::Message { text: text.get_untracked() });
                    text.set(String::new());
                }>
                    <label>"Message to "
                        <select data-testid="message-to" prop:value=move || to.get() on:change=move |ev| to.set(event_target_value(&ev))>
                            <option value="">"everyone"</option>
                            {move || learners().into_iter().map(|(id, name)| view! { <option value=id>{name}</option> }).collect_view()}
                        </select>
                    </label>
                    <input class="message-text" data-testid="message-text" maxlength="500" placeholder="Break until 11:00; save your work."
                        prop:value=move || text.get() on:input=move |ev| text.set(event_target_value(&ev)) />
                    <button type="submit" data-testid="send-message">"Send"</button>
                </form>
                {move || desk.report.get().map(|report| view! { <Report report /> })}
            </section>

            <section aria-label="Learners">
                <h2>{move || {
                    let (online, all, stuck) = desk.board.with(|b| (
                        b.learners.iter().filter(|l| l.online).count(),
                        b.learners.len(),
                        b.learners.iter().filter(|l| l.stuck.is_some()).count(),
                    ));
                    format!("Learners: {online} of {all} online, {stuck} may be stuck")
                }}</h2>
                <ol class="tiles" data-testid="tiles">
                    <For each=learners key=|(id, _)| id.clone() let:learner>
                        <Tile desk id=learner.0.clone() name=learner.1.clone() />
                    </For>
                </ol>
            </section>

            <section aria-label="How far the class got">
                <h2>"Steps passed, lab by lab"</h2>
                <Funnel desk />
            </section>

            <section aria-label="Roster">
                <h2>{format!("Roster ({})", page.roster.len())}</h2>
                <Roster roster=page.roster.clone() />
                <p>
                    "Results: " <a href="/class/results.csv" data-testid="results-csv" download>"every step (CSV)"</a>
                    " · " <a href="/class/results.json" download>"(JSON)"</a>
                    " · " <a href="/class/roster.csv" download>"the roster (CSV)"</a>
                </p>
            </section>
        </main>
    }
}

/// One learner's tile: drawn once, its words following the board, so that its buttons stay the
/// same elements (a click or keyboard focus is never lost to a redraw).
#[component]
fn Tile(desk: Desk, id: String, name: String) -> impl IntoView {
    let tile_id = id.clone();
    let tile = Memo::new(move |_| {
        desk.board
            .with(|b| b.learners.iter().find(|l| l.id == tile_id).cloned())
            .unwrap_or_default()
    });
    let now = Memo::new(move |_| desk.board.with(|b| b.now));
    let lab = Memo::new(move |_| tile.with(|t| t.lab.clone()));
    let watch = Memo::new(move |_| {
        tile.with(|t| {
            t.lab
                .as_ref()
                .map(|lab| format!("/class/learners/{}/labs/{}", t.id, lab.id))
        })
    });
    let stuck = Memo::new(move |_| tile.with(|t| t.stuck.clone()));
    let online = move || tile.with(|t| t.online);
    let step = move || {
        lab.with(|lab| match lab {
            Some(lab) if lab.passed >= lab.steps => format!("all {} steps passed", lab.steps),
            Some(lab) => {
                let on = lab.on_step_since.map_or_else(String::new, |since| {
                    format!(", for {}", duration(now.get().saturating_sub(since)))
                });
                format!("step {} of {}{on}", lab.passed + 1, lab.steps)
            }
            None => String::new(),
        })
    };
    let facts = move || {
        lab.with(|lab| {
            lab.as_ref().map_or_else(String::new, |lab| {
                format!(
                    "hints {}{} · {} instance(s)",
                    lab.hints,
                    if lab.solution {
                        " · solution shown"
                    } else {
                        ""
                    },
                    lab.instances
                )
            })
        })
    };
    let group = move || {
        lab.with(|lab| {
            lab.as_ref().map_or_else(String::new, |lab| {
                let group = lab.group.as_ref().map_or_else(
                    || "no group yet".to_owned(),
                    |(g, state)| format!("{g}: {state}"),
                );
                match lab.lag {
                    Some(lag) => format!("{group} · lag {lag}"),
                    None => group,
                }
            })
        })
    };
    let act = move |action: InstructorAction| desk.act(Some(id.clone()), action);
    let (act_hint, act_pass, act_reset) = (act.clone(), act.clone(), act);
    view! {
        <li class="tile" class:online=online class:stuck=move || stuck.with(Option::is_some) data-testid=format!("tile-{name}")>
            <header>
                <span class="dot" title=move || if online() { "online" } else { "offline" }></span>
                <strong class="tile-name">{name.clone()}</strong>
                {move || stuck.get().map(|why| view! { <span class="stuck-flag" data-testid="stuck" title=why.clone()>"stuck: " {why.clone()}</span> })}
            </header>
            <p class="tile-lab" data-testid="tile-lab">{move || lab.with(|lab| lab.as_ref().map_or_else(|| "no lab opened yet".to_owned(), |lab| lab.title.clone()))}</p>
            <p class="tile-step" data-testid="tile-step">{step}</p>
            <p class="tile-facts" data-testid="tile-facts">{facts}</p>
            <p class="tile-facts" data-testid="tile-group">{group}</p>
            <p class="tile-facts muted">{move || format!("last activity {}", ago(now.get(), tile.with(|t| t.last_activity)))}</p>
            <div class="tile-actions">
                {move || watch.get().map(|href| view! { <a class="button secondary" href=href data-testid="watch">"Watch"</a> })}
                <button class="secondary" data-testid="give-hint" on:click=move |_| act_hint(InstructorAction::Hint)>"Hint"</button>
                <button class="secondary" data-testid="pass-step" on:click=move |_| act_pass(InstructorAction::PassStep)>"Pass step"</button>
                <button class="danger-outline" data-testid="reset-lab" on:click=move |_| act_reset(InstructorAction::Reset)>"Reset"</button>
            </div>
        </li>
    }
}

#[component]
fn Report(report: ActionReport) -> impl IntoView {
    view! {
        <div class="action-report" role="status" data-testid="action-report">
            <strong>{format!("You {}:", report.action)}</strong>
            {(!report.done.is_empty()).then(|| view! {
                <p data-testid="action-done">{report.done.iter().map(|(who, what)| format!("{who}: {what}")).collect::<Vec<_>>().join(" · ")}</p>
            })}
            {(!report.refused.is_empty()).then(|| view! {
                <p class="refused" data-testid="action-refused">"Not for " {report.refused.iter().map(|(who, why)| format!("{who} ({why})")).collect::<Vec<_>>().join(" · ")}</p>
            })}
        </div>
    }
}

#[component]
fn Funnel(desk: Desk) -> impl IntoView {
    view! {
        {move || desk.board.with(|b| {
            if b.funnel.is_empty() {
                return Either::Left(view! { <p class="muted">"Nobody has opened a lab yet."</p> });
            }
            let rows = b.funnel.iter().map(|lab| {
                let opened = lab.opened.max(1);
                view! {
                    <tr data-testid=format!("funnel-{}", lab.lab)>
                        <th scope="row">{lab.title.clone()} <span class="muted">{format!(" ({} opened)", lab.opened)}</span></th>
                        {lab.passed.iter().enumerate().map(|(step, passed)| view! {
                            <td title=format!("step {}: {passed} of {} passed", step + 1, lab.opened)>
                                <span class="bar" style=format!("width:{}%", passed * 100 / opened)></span>
                                <span class="step-no">{format!("step {} ", step + 1)}</span>
                                <strong>{format!("{passed}")}</strong>
                            </td>
                        }).collect_view()}
                    </tr>
                }
            }).collect_view();
            Either::Right(view! { <table class="funnel" data-testid="funnel"><tbody>{rows}</tbody></table> })
        })}
    }
}

#[component]
fn Roster(roster: Vec<RosterEntry>) -> impl IntoView {
    if roster.is_empty() {
        return Either::Left(
            view! { <p class="muted">"Nobody had joined when this page loaded. Reload to see who joined since."</p> },
        );
    }
    Either::Right(view! {
        <table class="roster">
            <thead><tr><th>"Name"</th><th>"Rejoin code"</th><th>"Broker port"</th><th></th></tr></thead>
            <tbody>
                {roster.into_iter().map(|learner| view! {
                    <tr data-testid="learner-row">
                        <td>{learner.name.clone()}</td>
                        <td><code>{learner.rejoin_code.clone()}</code></td>
                        <td>{learner.broker_port}</td>
                        <td>
                            <form method="post" action=format!("/class/learners/{}/revoke", learner.id)>
                                <button class="danger-outline" type="submit" aria-label=format!("Shut out {}", learner.name)>"Shut out"</button>
                            </form>
                        </td>
                    </tr>
                }).collect_view()}
            </tbody>
        </table>
        <p class="muted">"Shutting a learner out stops their cookies and rejoin code, closes their pages and stops their instances and brokers; their name stays taken."</p>
    })
}

#[cfg(feature = "hydrate")]
mod browser {
    use grouplab_protocol::class::ClassEvent;
    use leptos::prelude::*;
    use wasm_bindgen::JsCast;
    use wasm_bindgen::closure::Closure;
    use web_sys::{CloseEvent, MessageEvent, WebSocket};

    use super::Desk;
    use crate::live::backoff;
    use crate::live::browser::socket_url;

    pub(super) fn open(desk: Desk, attempt: u32) {
        let Ok(socket) = WebSocket::new(&socket_url("/class/ws")) else {
            set_timeout(move || open(desk, attempt + 1), backoff(attempt + 1));
            return;
        };
        let on_message = Closure::<dyn FnMut(MessageEvent)>::new(move |event: MessageEvent| {
            if let Some(event) = event
                .data()
                .as_string()
                .and_then(|text| serde_json::from_str::<ClassEvent>(&text).ok())
            {
                desk.connected.try_set(true);
                desk.receive(event);
            }
        });
        socket.set_onmessage(Some(on_message.as_ref().unchecked_ref()));
        on_message.forget();
        let on_close = Closure::<dyn FnMut(CloseEvent)>::new(move |_: CloseEvent| {
            desk.connected.try_set(false);
            let next = attempt + 1;
            set_timeout(move || open(desk, next), backoff(next));
        });
        socket.set_onclose(Some(on_close.as_ref().unchecked_ref()));
        on_close.forget();
        desk.socket.set_value(Some(socket));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_at_a_glance() {
        assert_eq!(duration(0), "0 s");
        assert_eq!(duration(59_999), "59 s");
        assert_eq!(duration(245_000), "4 min 05 s");
        assert_eq!(duration(3_720_000), "1 h 02 min");
        assert_eq!(ago(10_000, Some(4_000)), "6 s ago");
        assert_eq!(ago(10_000, None), "—");
    }
}
