//! The leader lease and its fencing token, on the real store (SQLite, or PostgreSQL in the
//! PostgreSQL pass): only one holder at a time, takeover after expiry, an immediate retake by
//! the same holder, and above all that a planning batch written under a stale generation is
//! refused inside its transaction and leaves nothing behind.

use crate::common::test_database_url;
use chrono::{DateTime, Duration as Span, Utc};
use paperboy::model::{
    EmailAddress, Frequency, Interests, SendTime, SubscriberId, SubscriberStatus, TimeZoneName,
};
use paperboy::store::{NewSubscriber, PlannedDelivery, Store, StoreError};
use std::time::Duration;

const LEASE: &str = "scheduler";
const TTL: Duration = Duration::from_secs(60);

fn t0() -> DateTime<Utc> {
    "2024-10-25T09:00:00Z".parse().unwrap()
}

async fn subscriber(store: &Store, email: &str) -> SubscriberId {
    store
        .add_subscriber(
            &NewSubscriber {
                email: EmailAddress::parse(email).unwrap(),
                status: SubscriberStatus::Active,
                interests: Interests::parse("memory").unwrap(),
                frequency: Frequency::Daily,
                send_time: "07:00".parse::<SendTime>().unwrap(),
                timezone: "UTC".parse::<TimeZoneName>().unwrap(),
                max_papers: paperboy::model::MaxPapers::new(10).unwrap(),
            },
            t0(),
        )
        .await
        .unwrap()
}

/// An empty digest (nothing matched) for `who` on 2024-10-25: the smallest batch there is.
fn plan_for(who: SubscriberId) -> PlannedDelivery {
    PlannedDelivery {
        subscriber_id: who,
        digest_date: "2024-10-25".parse().unwrap(),
        planned_at: t0(),
        message_id: format!("digest.test.{}", who.0),
        papers: Vec::new(),
    }
}

#[tokio::test]
async fn a_stale_generation_cannot_write_a_planning_batch() {
    let dir = tempfile::tempdir().unwrap();
    let (url, _pg) = test_database_url(&dir.path().join("pb.db"));
    let store = Store::open_and_migrate(&url, 4).await.unwrap();
    let ada = subscriber(&store, "ada@example.org").await;
    let bob = subscriber(&store, "bob@example.org").await;

    // A leads; B is refused while A's lease runs.
    let a = store
        .take_leader_lease(LEASE, "a", t0(), TTL)
        .await
        .unwrap()
        .expect("a free lease is taken");
    assert_eq!(a.generation, 1);
    assert!(
        store
            .take_leader_lease(LEASE, "b", t0() + Span::seconds(59), TTL)
            .await
            .unwrap()
            .is_none(),
        "a running lease is not taken by another holder"
    );
    assert!(
        store
            .renew_leader_lease(&a, "a", t0() + Span::seconds(30), TTL)
            .await
            .unwrap()
    );

    // A is "paused" past its expiry; B takes over with the next generation.
    let b = store
        .take_leader_lease(LEASE, "b", t0() + Span::seconds(91), TTL)
        .await
        .unwrap()
        .expect("an expired lease is taken over");
    assert_eq!(b.generation, 2);

    // A resumes and writes the batch it had ranked: refused, nothing of it kept.
    let stale = store.plan_deliveries(&[plan_for(ada)], Some(&a)).await;
    match stale {
        Err(StoreError::Fenced { name, generation }) => {
            assert_eq!((name.as_str(), generation), (LEASE, 1));
        }
        other => panic!("a stale generation must be fenced off, got {other:?}"),
    }
    assert!(
        !store
            .renew_leader_lease(&a, "a", t0() + Span::seconds(92), TTL)
            .await
            .unwrap(),
        "the old leader cannot renew either"
    );

    // The current leader writes the same batch. Both deliveries are new, so the fenced batch
    // left nothing behind (the unique key would have turned ada's into `None`).
    let written = store
        .plan_deliveries(&[plan_for(ada), plan_for(bob)], Some(&b))
        .await
        .unwrap();
    assert_eq!(written.len(), 2);
    assert!(
        written.iter().all(Option::is_some),
        "the fenced batch wrote nothing, so both are new: {written:?}"
    );

    // B restarts under the same name: it takes its lease back at once (no wait for expiry),
    // with a new generation that fences off its own earlier life.
    let b2 = store
        .take_leader_lease(LEASE, "b", t0() + Span::seconds(92), TTL)
        .await
        .unwrap()
        .expect("the same holder retakes its own running lease");
    assert_eq!(b2.generation, 3);
    assert!(matches!(
        store.plan_deliveries(&[plan_for(ada)], Some(&b)).await,
        Err(StoreError::Fenced { .. })
    ));

    // A clean stop gives the lease back: another holder need not wait.
    assert!(store.release_leader_lease(&b2, "b").await.unwrap());
    let c = store
        .take_leader_lease(LEASE, "c", t0() + Span::seconds(93), TTL)
        .await
        .unwrap()
        .expect("a released lease is free");
    assert_eq!(c.generation, 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn racing_instances_take_a_free_lease_once() {
    let dir = tempfile::tempdir().unwrap();
    let (url, _pg) = test_database_url(&dir.path().join("pb.db"));
    let store = Store::open_and_migrate(&url, 8).await.unwrap();
    let tasks: Vec<_> = (0..8)
        .map(|i| {
            let store = store.clone();
            tokio::spawn(async move {
                store
                    .take_leader_lease(LEASE, &format!("instance-{i}"), t0(), TTL)
                    .await
                    .unwrap()
            })
        })
        .collect();
    let mut winners = Vec::new();
    for t in tasks {
        if let Some(fence) = t.await.unwrap() {
            winners.push(fence);
        }
    }
    assert_eq!(
        winners.len(),
        1,
        "exactly one of 8 racing instances leads: {winners:?}"
    );
    assert_eq!(winners[0].generation, 1);
}
