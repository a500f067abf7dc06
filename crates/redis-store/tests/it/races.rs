//! Two replicas (two stores on one Redis) racing: one winner each time.

use std::collections::BTreeSet;

use auth_core::{MessageClaim, SessionStore};
use tokio::task::JoinSet;

use crate::support::{now, redis, session, store, token};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn of_many_concurrent_insert_if_absent_from_two_replicas_exactly_one_wins() {
    let redis = redis().await;
    let replicas = [store(&redis), store(&redis)];
    let t = now();
    for round in 0..20u32 {
        let sid = format!("sess_race_{round}");
        let mut tasks = JoinSet::new();
        for contender in 0..16u32 {
            let store = replicas[(contender % 2) as usize].clone();
            let sid = sid.clone();
            let n = round * 100 + contender;
            tasks.spawn(async move {
                let outcome = store
                    .insert_if_absent(&sid, session(1, n, t, 600), t)
                    .await
                    .unwrap();
                (n, outcome)
            });
        }
        let mut winners = Vec::new();
        let mut seen = BTreeSet::new();
        while let Some(joined) = tasks.join_next().await {
            let (n, outcome) = joined.unwrap();
            match outcome {
                Ok(inserted) => {
                    assert!(inserted.displaced.is_empty());
                    winners.push(n);
                }
                Err(existing) => {
                    seen.insert(existing.refresh_token.expose().to_owned());
                }
            }
        }
        assert_eq!(winners.len(), 1, "round {round}: {winners:?}");
        let winner = token(winners[0]);
        assert_eq!(
            seen,
            BTreeSet::from([winner.clone()]),
            "the losers all see the winner"
        );
        let stored = replicas[1].get(&sid, t).await.unwrap().unwrap();
        assert_eq!(stored.refresh_token.expose(), winner);
    }
    assert_eq!(replicas[0].len().await.unwrap(), 20);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_expired_session_goes_to_exactly_one_of_two_sweeping_replicas() {
    let redis = redis().await;
    let replicas = [store(&redis), store(&redis)];
    let t = now();
    for n in 0..450u32 {
        let ttl = if n < 400 { 10 } else { 1000 };
        replicas[(n % 2) as usize]
            .insert(&format!("sess_{n}"), session(n % 7, n, t, ttl), t)
            .await
            .unwrap();
    }
    let mut tasks = JoinSet::new();
    for store in replicas.clone() {
        tasks.spawn(async move {
            let mut mine = Vec::new();
            loop {
                let batch = store.sweep(t + 10).await.unwrap();
                if batch.is_empty() {
                    return mine;
                }
                mine.extend(
                    batch
                        .into_iter()
                        .map(|s| s.refresh_token.expose().to_owned()),
                );
            }
        });
    }
    let mut all = Vec::new();
    while let Some(joined) = tasks.join_next().await {
        all.extend(joined.unwrap());
    }
    let unique: BTreeSet<String> = all.iter().cloned().collect();
    assert_eq!(all.len(), 400, "no session swept twice");
    assert_eq!(unique, (0..400).map(token).collect::<BTreeSet<_>>());
    assert_eq!(replicas[0].len().await.unwrap(), 50, "the live ones stay");
    assert!(replicas[1].get("sess_420", t + 10).await.unwrap().is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn of_concurrent_lockers_and_claimants_one_wins() {
    let redis = redis().await;
    let replicas = [store(&redis), store(&redis)];
    let t = now();
    let mut tasks = JoinSet::new();
    for contender in 0..16u32 {
        let store = replicas[(contender % 2) as usize].clone();
        tasks.spawn(async move {
            let locked = store
                .try_lock("sess_a", &format!("holder_{contender}"), t, t + 30)
                .await
                .unwrap();
            let claim = store
                .claim_message("msg_1", &format!("holder_{contender}"), t, t + 30)
                .await
                .unwrap();
            (locked, claim)
        });
    }
    let (mut locks, mut claims) = (0, 0);
    while let Some(joined) = tasks.join_next().await {
        let (locked, claim) = joined.unwrap();
        locks += usize::from(locked);
        if claim == MessageClaim::Claimed {
            claims += 1;
        } else {
            assert_eq!(claim, MessageClaim::InProgress);
        }
    }
    assert_eq!((locks, claims), (1, 1));
}
