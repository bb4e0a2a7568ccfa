//! The coordinator's rules, driven as librdkafka drives them: each member heartbeats with what
//! it owns, and acts on the answer. After every heartbeat no partition may have two holders.

use super::*;

const T: TopicUuid = [7; 16];
const SESSION: u64 = 10_000;

fn groups() -> Groups {
    Groups::new(Settings {
        session_timeout_ms: SESSION,
        heartbeat_interval_ms: 1_000,
        max_size: usize::MAX,
    })
}

fn topics(partitions: i32) -> Topics {
    Topics::from([("orders".to_owned(), TopicMeta { id: T, partitions })])
}

/// A consumer as librdkafka runs it: its id, its epoch, and what it owns.
#[derive(Clone, Debug)]
struct Client {
    id: String,
    epoch: i32,
    owned: BTreeSet<i32>,
    instance: Option<String>,
}

impl Client {
    fn new(id: &str) -> Self {
        Self {
            id: id.to_owned(),
            epoch: 0,
            owned: BTreeSet::new(),
            instance: None,
        }
    }

    fn request(&self) -> Heartbeat {
        let joining = self.epoch == 0;
        Heartbeat {
            version: 1,
            group_id: "g".to_owned(),
            member_id: self.id.clone(),
            member_epoch: self.epoch,
            instance_id: self.instance.clone(),
            rebalance_timeout_ms: if joining { 300_000 } else { -1 },
            subscribed_topic_names: joining.then(|| vec!["orders".to_owned()]),
            topic_partitions: Some(if self.owned.is_empty() {
                Partitions::new()
            } else {
                Partitions::from([(T, self.owned.clone())])
            }),
            client_id: format!("{}-client", self.id),
            client_host: "/127.0.0.1".to_owned(),
            ..Heartbeat::default()
        }
    }

    /// One heartbeat; the client takes the answer's assignment as what it owns (revoking
    /// first, as librdkafka does, is instant here).
    fn beat(&mut self, groups: &mut Groups, topics: &Topics, now: u64) -> Result<Answer, Refused> {
        let answer = groups.heartbeat(&self.request(), topics, false, now)?;
        self.epoch = answer.member_epoch;
        if let Some(assignment) = &answer.assignment {
            self.owned = assignment.get(&T).cloned().unwrap_or_default();
        }
        assert_one_holder(groups);
        Ok(answer)
    }
}

/// No partition is held by two members, and the ownership index agrees with the members.
#[track_caller]
fn assert_one_holder(groups: &Groups) {
    let group = groups.get("g").expect("the group");
    let mut seen: BTreeMap<i32, &str> = BTreeMap::new();
    for member in group.members.values() {
        for p in held(member).map(|(_, p)| p) {
            if let Some(other) = seen.insert(p, &member.id) {
                panic!("partition {p} held by {other} and {}", member.id);
            }
            assert_eq!(group.owner(T, p), Some(member.id.as_str()));
        }
    }
}

fn group(groups: &Groups) -> &Group {
    groups.get("g").expect("the group exists")
}

fn owned(client: &Client) -> Vec<i32> {
    client.owned.iter().copied().collect()
}

/// Heartbeats every client in turn until none of them changes, and returns how many rounds it took.
fn settle(groups: &mut Groups, clients: &mut [&mut Client], topics: &Topics, now: u64) -> usize {
    for round in 1..=10 {
        let before: Vec<(i32, BTreeSet<i32>)> =
            clients.iter().map(|c| (c.epoch, c.owned.clone())).collect();
        for client in clients.iter_mut() {
            client.beat(groups, topics, now).expect("accepted");
        }
        let after: Vec<(i32, BTreeSet<i32>)> =
            clients.iter().map(|c| (c.epoch, c.owned.clone())).collect();
        if before == after && group(groups).state() == GroupState::Stable {
            return round;
        }
    }
    panic!("the group did not settle")
}

#[test]
fn two_members_join_without_a_barrier_and_share_the_topic() {
    let mut groups = groups();
    let topics = topics(6);
    let (mut a, mut b) = (Client::new("a"), Client::new("b"));
    let first = a.beat(&mut groups, &topics, 0).expect("accepted");
    assert_eq!(first.member_epoch, 1);
    assert_eq!(
        owned(&a),
        [0, 1, 2, 3, 4, 5],
        "alone, it gets everything at once"
    );

    b.beat(&mut groups, &topics, 10).expect("accepted");
    // b is at the new epoch with nothing yet: its partitions are a's until a lets go.
    assert_eq!(b.epoch, 2);
    assert!(b.owned.is_empty());
    assert_eq!(
        group(&groups).members["b"].state,
        MemberState::UnreleasedPartitions
    );
    assert_eq!(group(&groups).epoch, 2);

    settle(&mut groups, &mut [&mut a, &mut b], &topics, 20);
    assert_eq!(owned(&a), [0, 1, 2]);
    assert_eq!(owned(&b), [3, 4, 5]);
    assert_eq!((a.epoch, b.epoch), (2, 2));
}

#[test]
fn a_third_member_gets_only_what_moves_once_its_owners_let_go() {
    let mut groups = groups();
    let topics = topics(6);
    let (mut a, mut b, mut c) = (Client::new("a"), Client::new("b"), Client::new("c"));
    a.beat(&mut groups, &topics, 0).expect("accepted");
    b.beat(&mut groups, &topics, 0).expect("accepted");
    settle(&mut groups, &mut [&mut a, &mut b], &topics, 0);

    c.beat(&mut groups, &topics, 100).expect("accepted");
    assert!(c.owned.is_empty(), "its partitions are still held");
    let seen = group(&groups);
    assert_eq!(seen.state(), GroupState::Reconciling);
    assert_eq!(seen.members["c"].state, MemberState::UnreleasedPartitions);

    // a is asked to let go of one partition; it keeps the others and its epoch.
    let answer = a.beat(&mut groups, &topics, 200).expect("accepted");
    assert_eq!(owned(&a), [0, 1]);
    assert_eq!(
        answer.member_epoch, 2,
        "still at its epoch while it revokes"
    );
    assert_eq!(
        group(&groups).members["a"].state,
        MemberState::UnrevokedPartitions
    );
    // Then it says it did, and reaches the group's epoch.
    a.beat(&mut groups, &topics, 300).expect("accepted");
    assert_eq!(a.epoch, 3);

    settle(&mut groups, &mut [&mut a, &mut b, &mut c], &topics, 400);
    assert_eq!(owned(&a), [0, 1]);
    assert_eq!(owned(&b), [3, 4]);
    assert_eq!(owned(&c), [2, 5]);
}

#[test]
fn a_silent_member_is_fenced_after_its_session_and_a_leaving_one_at_once() {
    let mut groups = groups();
    let topics = topics(4);
    let (mut a, mut b) = (Client::new("a"), Client::new("b"));
    a.beat(&mut groups, &topics, 0).expect("accepted");
    b.beat(&mut groups, &topics, 0).expect("accepted");
    settle(&mut groups, &mut [&mut a, &mut b], &topics, 0);

    // b goes silent; a keeps heartbeating.
    for now in (1_000..SESSION).step_by(1_000) {
        a.beat(&mut groups, &topics, now).expect("accepted");
        assert!(groups.expire(now).is_empty(), "not yet at {now} ms");
    }
    let fenced = groups.expire(SESSION);
    assert_eq!(fenced, [("g".to_owned(), vec!["b".to_owned()])]);
    a.beat(&mut groups, &topics, SESSION + 1).expect("accepted");
    assert_eq!(owned(&a), [0, 1, 2, 3]);

    // A member that leaves (epoch -1) goes at once.
    let mut c = Client::new("c");
    c.beat(&mut groups, &topics, SESSION + 2).expect("accepted");
    settle(&mut groups, &mut [&mut a, &mut c], &topics, SESSION + 3);
    let epoch = group(&groups).epoch;
    c.epoch = -1;
    let answer = c.beat(&mut groups, &topics, SESSION + 4).expect("accepted");
    assert_eq!(answer.member_epoch, -1);
    assert_eq!(group(&groups).epoch, epoch + 1);
    assert!(!group(&groups).members.contains_key("c"));
}

#[test]
fn a_static_member_restarts_within_its_session_without_moving_anything() {
    let mut groups = groups();
    let topics = topics(4);
    let (mut a, mut b) = (Client::new("a"), Client::new("b"));
    b.instance = Some("box-b".to_owned());
    a.beat(&mut groups, &topics, 0).expect("accepted");
    b.beat(&mut groups, &topics, 0).expect("accepted");
    settle(&mut groups, &mut [&mut a, &mut b], &topics, 0);
    let before = owned(&b);
    let epoch = group(&groups).epoch;

    b.epoch = -2;
    b.beat(&mut groups, &topics, 1_000).expect("accepted");
    assert_eq!(group(&groups).epoch, epoch, "no rebalance");

    // The restarted process has a new member id and the same instance id.
    let mut again = Client::new("b2");
    again.instance = Some("box-b".to_owned());
    again.beat(&mut groups, &topics, 5_000).expect("accepted");
    assert_eq!(owned(&again), before, "it is given back what it had");
    assert_eq!(group(&groups).epoch, epoch);
    a.beat(&mut groups, &topics, 5_001).expect("accepted");
    assert_eq!(owned(&a).len(), 2, "the other member kept its partitions");

    // A second process with that instance id while it runs is refused.
    let mut twin = Client::new("b3");
    twin.instance = Some("box-b".to_owned());
    let refused = twin.beat(&mut groups, &topics, 5_002).expect_err("refused");
    assert_eq!(refused.code, code::UNRELEASED_INSTANCE_ID);
}

#[test]
fn epochs_fence_members_that_are_ahead_or_too_far_behind() {
    let mut groups = groups();
    let topics = topics(2);
    let mut a = Client::new("a");
    a.beat(&mut groups, &topics, 0).expect("accepted");
    let mut ahead = a.clone();
    ahead.epoch = 5;
    assert_eq!(
        ahead
            .beat(&mut groups, &topics, 1)
            .expect_err("refused")
            .code,
        code::FENCED_MEMBER_EPOCH
    );
    let mut stranger = Client::new("x");
    stranger.epoch = 3;
    assert_eq!(
        stranger
            .beat(&mut groups, &topics, 1)
            .expect_err("refused")
            .code,
        code::UNKNOWN_MEMBER_ID
    );
}

#[test]
fn commits_must_carry_the_members_current_epoch() {
    let mut groups = groups();
    let topics = topics(2);
    let (mut a, mut b) = (Client::new("a"), Client::new("b"));
    a.beat(&mut groups, &topics, 0).expect("accepted");
    assert_eq!(
        groups.check_offsets(OffsetRequest::Commit, "g", "a", 1),
        Some(Ok(()))
    );
    b.beat(&mut groups, &topics, 0).expect("accepted");
    settle(&mut groups, &mut [&mut a, &mut b], &topics, 0);
    let stale = groups
        .check_offsets(OffsetRequest::Commit, "g", "a", 1)
        .expect("a consumer group")
        .expect_err("refused");
    assert_eq!(stale.code, code::STALE_MEMBER_EPOCH);
    assert_eq!(
        groups.check_offsets(OffsetRequest::Commit, "g", "a", a.epoch),
        Some(Ok(()))
    );
    assert_eq!(
        groups
            .check_offsets(OffsetRequest::Commit, "g", "zed", 2)
            .expect("a consumer group")
            .expect_err("refused")
            .code,
        code::UNKNOWN_MEMBER_ID
    );
    assert_eq!(
        groups.check_offsets(OffsetRequest::Commit, "other", "a", 1),
        None,
        "not a consumer group"
    );
}

#[test]
fn a_topic_that_grows_is_shared_at_the_next_heartbeat() {
    let mut groups = groups();
    let (mut a, mut b) = (Client::new("a"), Client::new("b"));
    let three = topics(3);
    a.beat(&mut groups, &three, 0).expect("accepted");
    b.beat(&mut groups, &three, 0).expect("accepted");
    settle(&mut groups, &mut [&mut a, &mut b], &three, 0);
    let five = topics(5);
    settle(&mut groups, &mut [&mut a, &mut b], &five, 100);
    let mut all: Vec<i32> = owned(&a).into_iter().chain(owned(&b)).collect();
    all.sort();
    assert_eq!(all, [0, 1, 2, 3, 4]);
}

#[test]
fn bad_heartbeats_are_refused_in_kafkas_words() {
    let mut groups = groups();
    let topics = topics(2);
    let check = |groups: &mut Groups, change: &dyn Fn(&mut Heartbeat), code: i16| {
        let mut request = Client::new("a").request();
        change(&mut request);
        let refused = groups
            .heartbeat(&request, &topics, false, 0)
            .expect_err("refused");
        assert_eq!(refused.code, code, "{refused:?}");
    };
    check(&mut groups, &|r| r.member_id.clear(), code::INVALID_REQUEST);
    check(
        &mut groups,
        &|r| r.rebalance_timeout_ms = -1,
        code::INVALID_REQUEST,
    );
    check(&mut groups, &|r| r.member_epoch = -3, code::INVALID_REQUEST);
    check(
        &mut groups,
        &|r| r.server_assignor = Some("sticky".into()),
        code::UNSUPPORTED_ASSIGNOR,
    );
    check(
        &mut groups,
        &|r| r.subscribed_topic_regex = Some("^o.*".into()),
        code::INVALID_REGULAR_EXPRESSION,
    );
    let classic = groups
        .heartbeat(&Client::new("a").request(), &topics, true, 0)
        .expect_err("refused");
    assert_eq!(
        classic.code,
        code::GROUP_ID_NOT_FOUND,
        "a classic group with members"
    );
}

#[test]
fn range_is_chosen_when_members_ask_for_it() {
    let mut groups = groups();
    let topics = topics(4);
    let mut a = Client::new("a");
    let mut request = a.request();
    request.server_assignor = Some("range".to_owned());
    groups
        .heartbeat(&request, &topics, false, 0)
        .expect("accepted");
    a.epoch = 1;
    assert_eq!(group(&groups).assignor(), "range");
}

#[test]
fn an_empty_group_is_forgotten_after_a_minute() {
    let mut groups = groups();
    let topics = topics(2);
    let mut a = Client::new("a");
    a.beat(&mut groups, &topics, 0).expect("accepted");
    a.epoch = -1;
    a.beat(&mut groups, &topics, 1).expect("accepted");
    assert!(groups.expire(2).is_empty());
    assert!(groups.get("g").is_some(), "kept a while");
    let forgotten = groups.expire(2 + EMPTY_GROUP_MS);
    assert_eq!(forgotten, [("g".to_owned(), Vec::new())]);
    assert!(groups.get("g").is_none());
}

#[test]
fn member_ids_are_never_shared_and_a_v0_client_is_given_one() {
    let mut groups = groups();
    let topics = topics(2);
    let mut a = Client::new("a");
    a.beat(&mut groups, &topics, 0).expect("accepted");
    let mut twin = Client::new("a");
    twin.instance = Some("box".to_owned());
    let refused = twin.beat(&mut groups, &topics, 1).expect_err("refused");
    assert_eq!(refused.code, code::INVALID_REQUEST);

    let mut request = Client::new("").request();
    request.version = 0;
    request.instance_id = Some("box-0".to_owned());
    let answer = groups
        .heartbeat(&request, &topics, false, 2)
        .expect("accepted");
    assert!(!answer.member_id.is_empty(), "the broker named it");
}

#[test]
fn a_topic_not_looked_up_keeps_what_the_group_knew_of_it() {
    let mut groups = groups();
    let six = topics(6);
    let mut a = Client::new("a");
    a.beat(&mut groups, &six, 0).expect("accepted");
    let epoch = group(&groups).epoch;
    // A heartbeat that looked up nothing (its subscription is unchanged) moves nothing.
    groups
        .heartbeat_looked_up(
            &Client {
                epoch: a.epoch,
                ..a.clone()
            }
            .request(),
            &Topics::new(),
            &BTreeSet::new(),
            false,
            10,
        )
        .expect("accepted");
    assert_eq!(group(&groups).epoch, epoch);
    assert_eq!(group(&groups).members["a"].assigned[&T].len(), 6);
}

#[test]
fn the_rebalance_timer_starts_again_with_each_round_of_revocations() {
    let mut groups = groups();
    let topics = topics(6);
    let (mut a, mut b) = (Client::new("a"), Client::new("b"));
    a.beat(&mut groups, &topics, 0).expect("accepted");
    b.beat(&mut groups, &topics, 0).expect("accepted");
    // a is asked to let go of three partitions and does not answer: after its rebalance
    // timeout (300 s, from its join) it is fenced, though its session is kept alive by a
    // heartbeat that still claims them.
    let request = |owned: &BTreeSet<i32>, epoch| Heartbeat {
        member_epoch: epoch,
        topic_partitions: Some(Partitions::from([(T, owned.clone())])),
        ..Client::new("a").request()
    };
    let all: BTreeSet<i32> = (0..6).collect();
    let answer = groups
        .heartbeat(&request(&all, a.epoch), &topics, false, 1_000)
        .expect("accepted");
    let deadline = group(&groups).members["a"].rebalance_deadline;
    assert_eq!(deadline.map(|(at, _)| at), Some(1_000 + 300_000));
    groups
        .heartbeat(&request(&all, answer.member_epoch), &topics, false, 5_000)
        .expect("accepted");
    assert_eq!(
        group(&groups).members["a"].rebalance_deadline,
        deadline,
        "the same round"
    );
    // Both keep their sessions alive; a still claims everything.
    groups
        .heartbeat(&request(&all, answer.member_epoch), &topics, false, 299_000)
        .expect("accepted");
    b.beat(&mut groups, &topics, 299_000).expect("accepted");
    assert!(groups.expire(300_500).is_empty(), "not yet");
    assert_eq!(
        groups.expire(301_001),
        [("g".to_owned(), vec!["a".to_owned()])]
    );
}

#[test]
fn offset_fetches_from_members_must_carry_their_epoch() {
    let mut groups = groups();
    let topics = topics(2);
    let mut a = Client::new("a");
    a.beat(&mut groups, &topics, 0).expect("accepted");
    assert_eq!(
        groups.check_offsets(OffsetRequest::Fetch, "g", "a", a.epoch),
        Some(Ok(()))
    );
    assert_eq!(
        groups.check_offsets(OffsetRequest::Fetch, "g", "", -1),
        Some(Ok(())),
        "an admin client"
    );
    let stale = groups
        .check_offsets(OffsetRequest::Fetch, "g", "a", a.epoch - 1)
        .expect("a consumer group")
        .expect_err("refused");
    assert_eq!(stale.code, code::STALE_MEMBER_EPOCH);
    let unknown = groups
        .check_offsets(OffsetRequest::Fetch, "g", "zed", 1)
        .expect("a consumer group")
        .expect_err("refused");
    assert_eq!(unknown.code, code::UNKNOWN_MEMBER_ID);
    assert_eq!(
        groups.check_offsets(OffsetRequest::Fetch, "classic", "m", 3),
        None
    );
}

#[test]
fn a_full_group_refuses_another_member() {
    let mut groups = Groups::new(Settings {
        max_size: 2,
        ..groups().settings
    });
    let topics = topics(2);
    for id in ["a", "b"] {
        Client::new(id)
            .beat(&mut groups, &topics, 0)
            .expect("accepted");
    }
    let refused = Client::new("c")
        .beat(&mut groups, &topics, 0)
        .expect_err("refused");
    assert_eq!(refused.code, code::GROUP_MAX_SIZE_REACHED);
}
