//! The store contract, as `MemorySessionStore`'s tests check it, on Redis; and every
//! key carries a TTL.

use auth_core::{Lookup, MessageClaim, Refused, SessionStore, UserLink};
use instant_client::{RefreshToken, Uuid};

use crate::support::{PREFIX, all_keys, clerk_user, now, raw, redis, session, store, token};

#[tokio::test]
async fn a_session_round_trips_whole() {
    let redis = redis().await;
    let store = store(&redis);
    let t = now();
    let mut stored = session(1, 1, t - 30, 600);
    stored.confirmed_at = t - 7;
    store.insert("sess_a", stored.clone(), t).await.unwrap();
    let got = store.get("sess_a", t).await.unwrap().unwrap();
    // InstantDB's answer carried no refresh token here; the store keeps the one
    // token in `refresh_token` only.
    assert_eq!(got, stored);
    assert_eq!(got.user.email.as_deref(), Some("person.1@example.com"));
    assert_eq!(store.kind(), "redis");
    assert!(store.has_room(t).await.unwrap());
    store.ping().await.unwrap();
}

#[tokio::test]
async fn entries_expire() {
    let redis = redis().await;
    let store = store(&redis);
    let t = now();
    store
        .insert("sess_a", session(1, 1, t, 10), t)
        .await
        .unwrap();
    assert!(store.get("sess_a", t + 9).await.unwrap().is_some());
    assert!(store.get("sess_a", t + 10).await.unwrap().is_none());
    assert_eq!(store.len().await.unwrap(), 1, "expired, not yet swept");
    assert!(store.sweep(t + 9).await.unwrap().is_empty());
    let swept = store.sweep(t + 10).await.unwrap();
    assert_eq!(swept.len(), 1);
    assert_eq!(swept[0].refresh_token.expose(), token(1));
    assert_eq!(store.len().await.unwrap(), 0);
    assert!(store.is_empty().await.unwrap());
    assert!(store.sweep(t + 10).await.unwrap().is_empty());
    assert!(store.remove("sess_a").await.unwrap().is_none());
    let left = all_keys(&mut raw(&redis).await).await;
    assert!(
        !left.iter().any(|k| k.starts_with(&format!("{PREFIX}s:"))),
        "{left:?}"
    );
}

#[tokio::test]
async fn replacing_with_another_token_displaces_the_old_one() {
    let redis = redis().await;
    let store = store(&redis);
    let t = now();
    let first = store
        .insert("sess_a", session(1, 1, t, 100), t)
        .await
        .unwrap();
    assert!(first.displaced.is_empty());
    let same = store
        .insert("sess_a", session(1, 1, t + 5, 100), t + 5)
        .await
        .unwrap();
    assert!(same.displaced.is_empty(), "same token: nothing to sign out");
    let other = store
        .insert("sess_a", session(1, 2, t + 6, 100), t + 6)
        .await
        .unwrap();
    assert_eq!(other.displaced.len(), 1);
    assert_eq!(other.displaced[0].refresh_token.expose(), token(1));
    // An expired entry replaced by the same token is handed back too.
    let late = store
        .insert("sess_a", session(1, 2, t + 200, 100), t + 200)
        .await
        .unwrap();
    assert_eq!(late.displaced.len(), 1);
    assert_eq!(store.len().await.unwrap(), 1);
}

#[tokio::test]
async fn insert_if_absent_keeps_the_first_live_session() {
    let redis = redis().await;
    let store = store(&redis);
    let t = now();
    let won = store
        .insert_if_absent("sess_a", session(1, 1, t, 10), t)
        .await
        .unwrap()
        .unwrap();
    assert!(won.displaced.is_empty());
    let lost = store
        .insert_if_absent("sess_a", session(1, 2, t + 1, 10), t + 1)
        .await
        .unwrap();
    assert_eq!(lost.unwrap_err().refresh_token.expose(), token(1));
    // Once expired, the slot is free again and the expired one is handed back.
    let won = store
        .insert_if_absent("sess_a", session(1, 3, t + 20, 10), t + 20)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(won.displaced.len(), 1);
    assert_eq!(won.displaced[0].refresh_token.expose(), token(1));
    assert_eq!(
        store
            .get("sess_a", t + 21)
            .await
            .unwrap()
            .unwrap()
            .refresh_token
            .expose(),
        token(3)
    );
}

#[tokio::test]
async fn a_reconfirmation_moves_up_the_stored_token_only_across_replicas() {
    let redis = redis().await;
    let (a, b) = (store(&redis), store(&redis));
    let t = now();
    let first = RefreshToken::new(token(1)).unwrap();
    assert!(!a.reconfirm("sess_a", &first, t).await.unwrap(), "absent");
    assert!(a.is_empty().await.unwrap(), "nothing is created");
    a.insert("sess_a", session(1, 1, t - 100, 600), t - 100)
        .await
        .unwrap();
    let ttl = |redis| async move {
        let ttl: i64 = redis::cmd("TTL")
            .arg(format!("{PREFIX}s:sess_a"))
            .query_async(&mut raw(redis).await)
            .await
            .unwrap();
        ttl
    };
    let ttl_before = ttl(&redis).await;
    assert!(a.reconfirm("sess_a", &first, t - 40).await.unwrap());
    // Replica b reads it afresh and moves it on, so a's last opened value is stale:
    // a reads again rather than fail.
    assert_eq!(
        b.get("sess_a", t).await.unwrap().unwrap().confirmed_at,
        t - 40
    );
    assert!(b.reconfirm("sess_a", &first, t - 20).await.unwrap());
    assert!(a.reconfirm("sess_a", &first, t - 10).await.unwrap());
    assert!(
        a.reconfirm("sess_a", &first, t - 30).await.unwrap(),
        "never back"
    );
    let stored = b.get("sess_a", t).await.unwrap().unwrap();
    assert_eq!((stored.confirmed_at, stored.expires_at), (t - 10, t + 500));
    assert!(
        ttl(&redis).await <= ttl_before,
        "the key keeps its lifetime"
    );
    // Not for a token replaced meanwhile on another replica, nor past the entry's end.
    b.insert("sess_a", session(1, 2, t - 5, 600), t - 5)
        .await
        .unwrap();
    assert!(!a.reconfirm("sess_a", &first, t).await.unwrap());
    let second = RefreshToken::new(token(2)).unwrap();
    assert!(!a.reconfirm("sess_a", &second, t + 600).await.unwrap());
    let stored = a.get("sess_a", t).await.unwrap().unwrap();
    assert_eq!(
        (stored.refresh_token.expose(), stored.confirmed_at),
        (token(2).as_str(), t - 5)
    );
    b.remove("sess_a").await.unwrap();
    assert!(!a.reconfirm("sess_a", &second, t).await.unwrap());
    assert!(
        a.is_empty().await.unwrap(),
        "a removed session stays removed"
    );
}

#[tokio::test]
async fn remove_hands_back_the_session_expired_or_not() {
    let redis = redis().await;
    let store = store(&redis);
    let t = now();
    store
        .insert("sess_a", session(1, 1, t, 100), t)
        .await
        .unwrap();
    store
        .insert("sess_b", session(1, 2, t - 50, 10), t)
        .await
        .unwrap();
    let a = store.remove("sess_a").await.unwrap().unwrap();
    assert_eq!(a.refresh_token.expose(), token(1));
    let b = store.remove("sess_b").await.unwrap().unwrap();
    assert_eq!(
        b.refresh_token.expose(),
        token(2),
        "expired, still handed back"
    );
    assert!(store.remove("sess_a").await.unwrap().is_none());
    assert_eq!(store.len().await.unwrap(), 0);
    assert!(store.sweep(t + 1000).await.unwrap().is_empty());
    assert!(store.sessions_of(&clerk_user(1)).await.unwrap().is_empty());
}

#[tokio::test]
async fn sessions_of_finds_a_users_sessions_and_prunes_what_left() {
    let redis = redis().await;
    let store = store(&redis);
    let mut con = raw(&redis).await;
    let t = now();
    store
        .insert("sess_a", session(1, 1, t, 100), t)
        .await
        .unwrap();
    store
        .insert("sess_b", session(1, 2, t - 50, 10), t)
        .await
        .unwrap();
    store
        .insert("sess_c", session(2, 3, t, 100), t)
        .await
        .unwrap();
    let mut mine = store.sessions_of(&clerk_user(1)).await.unwrap();
    mine.sort_by(|a, b| a.0.cmp(&b.0));
    let ids: Vec<&str> = mine.iter().map(|(id, _)| id.as_str()).collect();
    assert_eq!(ids, ["sess_a", "sess_b"], "expired or not");
    assert_eq!(mine[1].1.refresh_token.expose(), token(2));

    store.remove("sess_a").await.unwrap();
    let set = format!("{PREFIX}u:{}", clerk_user(1));
    let members: Vec<String> = redis::cmd("SMEMBERS")
        .arg(&set)
        .query_async(&mut con)
        .await
        .unwrap();
    assert_eq!(
        members,
        ["sess_b"],
        "remove takes the id out of the user's set"
    );
    // A member whose session went another way (here: Redis dropped it) is pruned
    // when read.
    let _: () = redis::cmd("SADD")
        .arg(&set)
        .arg("sess_gone")
        .query_async(&mut con)
        .await
        .unwrap();
    let mine = store.sessions_of(&clerk_user(1)).await.unwrap();
    assert_eq!(mine.len(), 1);
    let members: Vec<String> = redis::cmd("SMEMBERS")
        .arg(&set)
        .query_async(&mut con)
        .await
        .unwrap();
    assert_eq!(members, ["sess_b"]);
    assert!(store.sessions_of("user_nobody").await.unwrap().is_empty());
}

#[tokio::test]
async fn links_and_refusals_expire_and_a_later_refusal_wins() {
    let redis = redis().await;
    let store = store(&redis);
    let t = now();
    let link = UserLink::new(Uuid::from_u128(1), Some("a@example.com".into()));
    store
        .link_user("user_1", link.clone(), t, t + 10)
        .await
        .unwrap();
    assert_eq!(
        store.user_link("user_1", t + 9).await.unwrap(),
        Some(link.clone())
    );
    assert_eq!(store.user_link("user_1", t + 10).await.unwrap(), None);
    let other = UserLink::new(Uuid::from_u128(2), None);
    store
        .link_user("user_1", other.clone(), t, t + 10)
        .await
        .unwrap();
    assert_eq!(store.user_link("user_1", t).await.unwrap(), Some(other));
    store.unlink_user("user_1").await.unwrap();
    assert_eq!(store.user_link("user_1", t).await.unwrap(), None);
    // A link already over replaces (forgets) the live one.
    store
        .link_user("user_1", link.clone(), t, t + 10)
        .await
        .unwrap();
    store.link_user("user_1", link, t, t).await.unwrap();
    assert_eq!(store.user_link("user_1", t).await.unwrap(), None);

    let who = Refused::Session("sess_a".into());
    store.refuse(&who, t, t + 90).await.unwrap();
    store.refuse(&who, t + 10, t + 50).await.unwrap();
    let both = [Refused::User("user_1".into()), who.clone()];
    assert!(store.is_refused(&both, t + 89).await.unwrap());
    assert!(!store.is_refused(&both, t + 90).await.unwrap());
    // A later refusal extends an earlier one.
    store.refuse(&who, t, t + 120).await.unwrap();
    assert!(store.is_refused(&both, t + 119).await.unwrap());
    // A session and a user of the same id are different refusals.
    assert!(
        !store
            .is_refused(&[Refused::User("sess_a".into())], t)
            .await
            .unwrap()
    );
    assert!(!store.is_refused(&[], t).await.unwrap());
}

#[tokio::test]
async fn a_message_is_claimed_once_completed_or_released() {
    let redis = redis().await;
    let store = store(&redis);
    let t = now();
    assert_eq!(
        store
            .claim_message("msg_1", "holder_a", t, t + 30)
            .await
            .unwrap(),
        MessageClaim::Claimed
    );
    assert_eq!(
        store
            .claim_message("msg_1", "holder_a", t + 1, t + 31)
            .await
            .unwrap(),
        MessageClaim::InProgress
    );
    store
        .complete_message("msg_1", t + 2, t + 1000)
        .await
        .unwrap();
    assert_eq!(
        store
            .claim_message("msg_1", "holder_a", t + 3, t + 33)
            .await
            .unwrap(),
        MessageClaim::Done
    );
    // Releasing a done message changes nothing.
    assert!(!store.release_message("msg_1", "holder_a").await.unwrap());
    assert_eq!(
        store
            .claim_message("msg_1", "holder_a", t + 3, t + 33)
            .await
            .unwrap(),
        MessageClaim::Done
    );
    // A released claim is free for the next delivery.
    assert_eq!(
        store
            .claim_message("msg_2", "holder_a", t, t + 30)
            .await
            .unwrap(),
        MessageClaim::Claimed
    );
    // Only by its holder.
    assert!(!store.release_message("msg_2", "holder_b").await.unwrap());
    assert!(store.release_message("msg_2", "holder_a").await.unwrap());
    assert_eq!(
        store
            .claim_message("msg_2", "holder_a", t, t + 30)
            .await
            .unwrap(),
        MessageClaim::Claimed
    );
    // A claim never completed lapses at its lease.
    assert_eq!(
        store
            .claim_message("msg_2", "holder_a", t + 29, t + 59)
            .await
            .unwrap(),
        MessageClaim::InProgress
    );
    assert_eq!(
        store
            .claim_message("msg_2", "holder_a", t + 30, t + 60)
            .await
            .unwrap(),
        MessageClaim::Claimed
    );
    // Completing an unclaimed message records it done.
    store.complete_message("msg_3", t, t + 1000).await.unwrap();
    assert_eq!(
        store
            .claim_message("msg_3", "holder_a", t, t + 30)
            .await
            .unwrap(),
        MessageClaim::Done
    );
}

#[tokio::test]
async fn a_lock_has_one_holder_until_released_or_lapsed() {
    let redis = redis().await;
    let store = store(&redis);
    let t = now();
    assert!(store.try_lock("sess_a", "one", t, t + 10).await.unwrap());
    assert!(
        !store
            .try_lock("sess_a", "two", t + 5, t + 15)
            .await
            .unwrap()
    );
    // Only the holder releases it.
    store.unlock("sess_a", "two").await.unwrap();
    assert!(
        !store
            .try_lock("sess_a", "two", t + 5, t + 15)
            .await
            .unwrap()
    );
    store.unlock("sess_a", "one").await.unwrap();
    assert!(
        store
            .try_lock("sess_a", "two", t + 5, t + 15)
            .await
            .unwrap()
    );
    // A holder that never releases blocks the session until its lock lapses.
    assert!(
        !store
            .try_lock("sess_a", "three", t + 14, t + 24)
            .await
            .unwrap()
    );
    assert!(
        store
            .try_lock("sess_a", "three", t + 15, t + 25)
            .await
            .unwrap()
    );
    // The lapsed holder's unlock does not release the new holder's lock.
    store.unlock("sess_a", "two").await.unwrap();
    assert!(
        !store
            .try_lock("sess_a", "four", t + 16, t + 26)
            .await
            .unwrap()
    );
    // Holders with a colon in their name work too.
    assert!(
        store
            .try_lock("sess_b", "host:pid:1", t, t + 10)
            .await
            .unwrap()
    );
    store.unlock("sess_b", "host:pid:1").await.unwrap();
    assert!(store.try_lock("sess_b", "one", t, t + 10).await.unwrap());
}

#[tokio::test]
async fn every_key_is_under_the_prefix_and_has_a_ttl() {
    let redis = redis().await;
    let store = store(&redis);
    let mut con = raw(&redis).await;
    let t = now();
    store
        .insert("sess_a", session(1, 1, t, 3600), t)
        .await
        .unwrap();
    store
        .insert_if_absent("sess_b", session(2, 2, t, 60), t)
        .await
        .unwrap()
        .unwrap();
    store
        .link_user(
            "user_1",
            UserLink::new(Uuid::from_u128(1), None),
            t,
            t + 86_400,
        )
        .await
        .unwrap();
    store
        .refuse(&Refused::Session("sess_x".into()), t, t + 600)
        .await
        .unwrap();
    store
        .refuse(&Refused::User("user_x".into()), t, t + 600)
        .await
        .unwrap();
    store
        .claim_message("msg_1", "holder_a", t, t + 30)
        .await
        .unwrap();
    store
        .claim_message("msg_2", "holder_a", t, t + 30)
        .await
        .unwrap();
    store
        .complete_message("msg_2", t, t + 86_400)
        .await
        .unwrap();
    assert!(store.try_lock("sess_a", "me", t, t + 10).await.unwrap());

    let keys = all_keys(&mut con).await;
    let expected = [
        "expiry",
        "link:user_1",
        "lock:sess_a",
        "msg:msg_1",
        "msg:msg_2",
        "refused:session:sess_x",
        "refused:user:user_x",
        "s:sess_a",
        "s:sess_b",
    ];
    let mut expected: Vec<String> = expected.iter().map(|k| format!("{PREFIX}{k}")).collect();
    expected.push(format!("{PREFIX}u:{}", clerk_user(1)));
    expected.push(format!("{PREFIX}u:{}", clerk_user(2)));
    expected.sort();
    assert_eq!(keys, expected);
    let everything: Vec<String> = redis::cmd("KEYS")
        .arg("*")
        .query_async(&mut con)
        .await
        .unwrap();
    assert_eq!(everything.len(), keys.len(), "nothing outside the prefix");
    for key in &keys {
        let ttl: i64 = redis::cmd("TTL")
            .arg(key)
            .query_async(&mut con)
            .await
            .unwrap();
        assert!(ttl > 0, "{key} has TTL {ttl}");
    }
    let ttl = |key: &str| {
        let mut con = con.clone();
        let key = format!("{PREFIX}{key}");
        async move {
            let ttl: i64 = redis::cmd("TTL")
                .arg(key)
                .query_async(&mut con)
                .await
                .unwrap();
            ttl
        }
    };
    // A session lives until it expires plus the sweep's grace; the expiry set and the
    // user's set at least as long as their longest session.
    let grace = redis_store::SESSION_GRACE_SECS;
    assert!((3600 + grace - 5..=3600 + grace).contains(&ttl("s:sess_a").await));
    assert!((60 + grace - 5..=60 + grace).contains(&ttl("s:sess_b").await));
    assert!(ttl("expiry").await >= 3600 + grace - 5);
    assert!(ttl(&format!("u:{}", clerk_user(1))).await >= 3600 + grace - 5);
    assert!((25..=30).contains(&ttl("msg:msg_1").await));
    assert!(ttl("msg:msg_2").await > 86_000);
    assert!((5..=10).contains(&ttl("lock:sess_a").await));
}

#[tokio::test]
async fn lookup_answers_the_refusals_and_the_session_in_one_call() {
    let redis = redis().await;
    let store = store(&redis);
    let t = now();
    let who = [
        Refused::Session("sess_a".into()),
        Refused::User(clerk_user(1)),
    ];
    assert_eq!(
        store.lookup("sess_a", &who, t).await.unwrap(),
        Lookup::Found(None)
    );
    let stored = session(1, 1, t, 600);
    store.insert("sess_a", stored.clone(), t).await.unwrap();
    assert_eq!(
        store.lookup("sess_a", &who, t).await.unwrap(),
        Lookup::Found(Some(stored.clone()))
    );
    // Expired: absent, as `get` says.
    assert_eq!(
        store.lookup("sess_a", &who, t + 600).await.unwrap(),
        Lookup::Found(None)
    );
    // The user refused: refused, whatever is stored.
    store.refuse(&who[1], t, t + 90).await.unwrap();
    assert_eq!(
        store.lookup("sess_a", &who, t).await.unwrap(),
        Lookup::Refused
    );
    assert_eq!(
        store.lookup("sess_a", &who, t + 90).await.unwrap(),
        Lookup::Found(Some(stored))
    );
    // No refusal asked about: only the session.
    assert!(matches!(
        store.lookup("sess_b", &[], t).await.unwrap(),
        Lookup::Found(None)
    ));
}
