//! The partition lanes: one table per topic, a row per partition with its log, and per group
//! its owner, committed offset, lag and lag status.

use grouplab_protocol::{LagStatus, TopicPartition, TopicView};
use leptos::either::Either;
use leptos::prelude::*;

use super::{colour_class, with_view};
use crate::live::Live;

#[component]
pub(super) fn Topics() -> impl IntoView {
    let live = expect_context::<Live>();
    // A group that nobody has joined and that has committed nothing adds only dashes: its columns
    // appear once it is used, so a lab with three groups shows the one in play. (The groups'
    // line under the lanes still lists it, as empty.)
    let topics = move || {
        with_view(live, |v| {
            let mut topics = v.topics.clone();
            for topic in &mut topics {
                topic.groups.retain(|offsets| {
                    offsets.committed.iter().any(Option::is_some)
                        || v.group(&offsets.group)
                            .is_some_and(|g| !g.members.is_empty())
                });
            }
            topics
        })
        .unwrap_or_default()
    };
    view! {
        <div class="topics kafka-only">
            <For each=topics key=|t: &TopicView| (t.name.clone(), t.partitions.clone(), t.groups.clone()) let:topic>
                <TopicLanes topic />
            </For>
            <Show when=move || with_view(live, |v| v.topics.is_empty()).unwrap_or(false)>
                <p class="muted">"No topic yet. Create one above."</p>
            </Show>
        </div>
    }
}

#[component]
fn TopicLanes(topic: TopicView) -> impl IntoView {
    let live = expect_context::<Live>();
    let most = topic
        .partitions
        .iter()
        .map(|p| p.log_end)
        .max()
        .unwrap_or(0)
        .max(1);
    let groups: Vec<String> = topic.groups.iter().map(|g| g.group.clone()).collect();
    let name = topic.name.clone();
    let rows = topic
        .partitions
        .iter()
        .map(|lane| {
            let tp = TopicPartition::new(&name, lane.partition);
            let fill = (lane.log_end as f64 / most as f64 * 100.0).round();
            let cells = groups
                .iter()
                .map(|group| {
                    let committed = topic
                        .groups
                        .iter()
                        .find(|g| &g.group == group)
                        .and_then(|g| {
                            let index = topic.partitions.iter().position(|p| p.partition == lane.partition)?;
                            g.committed.get(index).copied().flatten()
                        });
                    let lag = topic.lag(group, lane.partition).unwrap_or(0);
                    let status = {
                        let (group, name, partition) = (group.clone(), name.clone(), lane.partition);
                        move || {
                            with_view(live, |v| {
                                v.lag
                                    .iter()
                                    .find(|l| l.group == group && l.topic == name)
                                    .and_then(|l| l.partitions.iter().find(|p| p.partition == partition))
                                    .map(|p| p.status)
                            })
                            .flatten()
                        }
                    };
                    let (group, tp) = (group.clone(), tp.clone());
                    let owner = move || {
                        with_view(live, |v| v.owner(&group, &tp).map(|o| (o.name.clone(), o.colour, v.is_working(o), o.is_external()))).flatten()
                    };
                    view! {
                        <td class="owner">
                            {move || match owner() {
                                Some((name, colour, alive, external)) => Either::Left(view! {
                                    <span
                                        class=format!("chip {}", colour_class(colour))
                                        class:dead=!alive
                                        class:ext=external
                                        title=if !alive { "owner has crashed: the group has not noticed yet" } else if external { "owner: your own consumer" } else { "owner" }
                                    >
                                        {name}
                                    </span>
                                }),
                                None => Either::Right(view! { <span class="chip none" title="no owner">"—"</span> }),
                            }}
                        </td>
                        <td class="num">{committed.map_or("—".to_owned(), |c| c.to_string())}</td>
                        <td class="num" class:lagging={lag > 0}>
                            {lag}
                            {move || status().filter(|s| !matches!(s, LagStatus::Measuring)).map(|s| view! {
                                <span class=format!("status {}", s.label().to_lowercase()) title="Lag status over the last polls: OK, WARNING (falling behind), STALL (owner stuck), STOP (nobody reading)">{s.label()}</span>
                            })}
                        </td>
                    }
                })
                .collect_view();
            view! {
                <tr data-testid=format!("lane-{}-{}", name, lane.partition)>
                    <th scope="row">{format!("P{}", lane.partition)}</th>
                    <td class="bar"><span style=format!("width:{fill}%")></span></td>
                    <td class="num">{lane.log_end}</td>
                    {cells}
                </tr>
            }
        })
        .collect_view();
    view! {
        <table class="lanes" data-testid=format!("topic-{}", topic.name)>
            <caption>
                <strong>{topic.name.clone()}</strong>
                {format!(" · {} partitions · {} messages", topic.partitions.len(), topic.message_count())}
            </caption>
            <thead>
                <tr>
                    <th>"Partition"</th>
                    <th>"Log"</th>
                    <th class="num">"Log end"</th>
                    {topic.groups.iter().map(|g| view! {
                        <th>{format!("{} owner", g.group)}</th>
                        <th class="num">"Committed"</th>
                        <th class="num">"Lag"</th>
                    }).collect_view()}
                </tr>
            </thead>
            <tbody>{rows}</tbody>
        </table>
    }
}
