//! The groups as the broker sees them, and the members grouplab did not start: the learner's own
//! consumers, drawn dashed.

use grouplab_protocol::{GroupProtocol, GroupView, MemberView, MembershipSource};
use leptos::prelude::*;

use super::{colour_class, partition_names, with_view};
use crate::live::Live;

#[component]
pub(super) fn Groups() -> impl IntoView {
    let live = expect_context::<Live>();
    let groups = move || with_view(live, |v| v.groups.clone()).unwrap_or_default();
    view! {
        <div class="groups" data-testid="groups">
            <For each=groups key=|g: &GroupView| format!("{g:?}") let:group>
                <GroupPanel group />
            </For>
        </div>
    }
}

/// A group's state as the broker sees it, and its members that grouplab did not start.
#[component]
fn GroupPanel(group: GroupView) -> impl IntoView {
    let leader = group.leader.as_ref().map(|id| {
        group
            .member(id)
            .map_or_else(|| id.clone(), |m| m.name.clone())
    });
    let mut facts = vec![format!("{} member(s)", group.members.len())];
    match (group.protocol, group.generation) {
        (GroupProtocol::Consumer, epoch) => {
            facts.push("consumer protocol".to_owned());
            if let Some(epoch) = epoch {
                facts.push(format!("group epoch {epoch}"));
            }
            if let Some(epoch) = group.assignment_epoch {
                facts.push(format!("assignment epoch {epoch}"));
            }
        }
        (GroupProtocol::Classic, Some(generation)) => {
            facts.push(format!("generation {generation}"))
        }
        (GroupProtocol::Classic, None) => {}
    }
    if let Some(assignor) = &group.assignor {
        facts.push(format!("assignor {assignor}"));
    }
    if let Some(leader) = leader {
        facts.push(format!("leader {leader}"));
    }
    let source = match group.source {
        MembershipSource::Coordinator => {
            "read from the embedded broker's coordinator as it changes"
        }
        MembershipSource::Described => {
            "read with DescribeGroups from your cluster about once a second"
        }
    };
    // Under the consumer protocol each member moves to its target on its own: who holds what,
    // and where the broker is taking it.
    let reconciling: Vec<(String, u8, String)> = group
        .members
        .iter()
        .filter(|_| group.protocol == GroupProtocol::Consumer)
        .map(|m| {
            let epoch = m
                .member_epoch
                .map_or_else(String::new, |e| format!("epoch {e}: "));
            let text = match &m.target {
                Some(target) => format!(
                    "{epoch}holds {} → target {}",
                    partition_names(&m.partitions),
                    partition_names(target)
                ),
                None => format!("{epoch}holds its target {}", partition_names(&m.partitions)),
            };
            (m.name.clone(), m.colour, text)
        })
        .collect();
    let externals: Vec<MemberView> = group
        .members
        .iter()
        .filter(|m| m.is_external())
        .cloned()
        .collect();
    view! {
        <section class="group" class:idle=group.members.is_empty() data-testid=format!("group-{}", group.name)>
            <header title=source>
                <strong>{group.name.clone()}</strong>
                <span class=format!("state {}", group.state.name().to_lowercase()) data-testid=format!("group-state-{}", group.name)>
                    {group.state.name()}
                </span>
                <span class="muted" data-testid=format!("group-facts-{}", group.name)>{facts.join(" · ")}</span>
            </header>
            {(!reconciling.is_empty()).then(|| view! {
                <ul class="reconcile" data-testid=format!("group-targets-{}", group.name)>
                    {reconciling.into_iter().map(|(name, colour, text)| view! {
                        <li><span class=format!("name {}", colour_class(colour))>{name}</span> " " {text}</li>
                    }).collect_view()}
                </ul>
            })}
            <div class="instances">
                {externals.into_iter().map(|member| view! { <ExternalCard member /> }).collect_view()}
            </div>
        </section>
    }
}

/// A member grouplab did not start: the learner's own consumer, seen only through the broker.
#[component]
fn ExternalCard(member: MemberView) -> impl IntoView {
    let live = expect_context::<Live>();
    let (heartbeat, timeout) = (member.last_heartbeat, member.session_timeout_ms);
    let status = move || {
        let now = live.now.get();
        let (Some(at), true) = (heartbeat, now > 0) else {
            return String::new();
        };
        let silent = now.saturating_sub(at);
        match timeout {
            Some(timeout) if silent > 3_000 => format!(
                "No heartbeat for {:.1} s: removed in {:.1} s unless it speaks (session timeout)",
                silent as f64 / 1000.0,
                u64::from(timeout).saturating_sub(silent) as f64 / 1000.0
            ),
            _ => format!("Last heartbeat {:.1} s ago", silent as f64 / 1000.0),
        }
    };
    let mut about = vec![format!("client.id {}", member.client_id)];
    if let Some(host) = &member.host {
        about.push(format!("host {host}"));
    }
    if let Some(id) = &member.group_instance_id {
        about.push(format!("static member {id}"));
    }
    view! {
        <article
            class=format!("instance external {}", colour_class(member.colour))
            data-testid=format!("member-{}", member.client_id)
            title=format!("member id {}", member.member_id)
        >
            <header>
                <span class="name">{member.name.clone()}</span>
                <span class="state">"your consumer"</span>
            </header>
            <p class="owns">"Owns: " <strong data-testid=format!("member-owns-{}", member.client_id)>{partition_names(&member.partitions)}</strong></p>
            <p class="settings muted">{about.join(" · ")}</p>
            <p class="heartbeat" class:silent=move || status().starts_with("No heartbeat")>{status}</p>
            <p class="muted tip">"Stop it from its terminal: Ctrl-C leaves the group, kill -9 crashes it."</p>
        </article>
    }
}
