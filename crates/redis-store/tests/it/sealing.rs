//! What a reader of Redis sees, and what the store does with values it did not seal.

use auth_core::{SessionStore, UserLink};
use instant_client::Uuid;
use redis_store::Sealing;

use crate::support::{
    PREFIX, clerk_user, contains, everything, keys, now, raw, redis, session, store, store_with,
    token,
};

#[tokio::test]
async fn a_reader_of_redis_finds_no_refresh_token_and_no_email() {
    let redis = redis().await;
    let store = store(&redis);
    let t = now();
    for n in 0..5 {
        store
            .insert(&format!("sess_{n}"), session(n, n, t, 600), t)
            .await
            .unwrap();
        store
            .link_user(
                &clerk_user(n),
                UserLink::new(
                    Uuid::from_u128(u128::from(n)),
                    Some(format!("person.{n}@example.com")),
                ),
                t,
                t + 600,
            )
            .await
            .unwrap();
    }
    let held = everything(&mut raw(&redis).await).await;
    assert!(held.len() > 10, "{} values", held.len());
    for value in &held {
        for n in 0..5 {
            assert!(!contains(value, &token(n)), "a refresh token in the clear");
            assert!(
                !contains(value, &format!("person.{n}@")),
                "an email in the clear"
            );
        }
    }

    // The opt-out writes them in the clear: the check above can fail.
    let plain = store_with(&redis, Sealing::Plaintext);
    plain
        .insert("sess_plain", session(9, 9, t, 600), t)
        .await
        .unwrap();
    let held = everything(&mut raw(&redis).await).await;
    assert!(held.iter().any(|v| contains(v, &token(9))));
}

async fn exists(con: &mut redis::aio::MultiplexedConnection, key: &str) -> bool {
    let n: i64 = redis::cmd("EXISTS")
        .arg(key)
        .query_async(con)
        .await
        .unwrap();
    n == 1
}

#[tokio::test]
async fn a_tampered_session_is_absent_and_removed() {
    let redis = redis().await;
    let store = store(&redis);
    let mut con = raw(&redis).await;
    let t = now();
    store
        .insert("sess_a", session(1, 1, t, 600), t)
        .await
        .unwrap();
    // Read once: the store keeps it opened, and must not serve that once the value
    // changed.
    assert_eq!(
        store.get("sess_a", t).await.unwrap(),
        Some(session(1, 1, t, 600))
    );
    let key = format!("{PREFIX}s:sess_a");
    let mut blob: Vec<u8> = redis::cmd("HGET")
        .arg(&key)
        .arg("v")
        .query_async(&mut con)
        .await
        .unwrap();
    let last = blob.len() - 1;
    blob[last] ^= 1;
    let _: () = redis::cmd("HSET")
        .arg(&key)
        .arg("v")
        .arg(&blob)
        .query_async(&mut con)
        .await
        .unwrap();

    assert!(store.get("sess_a", t).await.unwrap().is_none());
    assert!(!exists(&mut con, &key).await, "removed");
    assert_eq!(store.len().await.unwrap(), 0, "out of the expiry set too");
    assert!(store.sessions_of(&clerk_user(1)).await.unwrap().is_empty());
    // The slot is free for a real session.
    assert!(
        store
            .insert_if_absent("sess_a", session(1, 2, t, 600), t)
            .await
            .unwrap()
            .is_ok()
    );
}

#[tokio::test]
async fn a_session_copied_under_another_key_does_not_open() {
    let redis = redis().await;
    let store = store(&redis);
    let mut con = raw(&redis).await;
    let t = now();
    store
        .insert("sess_victim", session(1, 1, t, 600), t)
        .await
        .unwrap();
    store
        .insert("sess_attacker", session(2, 2, t, 600), t)
        .await
        .unwrap();
    let victim: Vec<u8> = redis::cmd("HGET")
        .arg(format!("{PREFIX}s:sess_victim"))
        .arg("v")
        .query_async(&mut con)
        .await
        .unwrap();
    let _: () = redis::cmd("HSET")
        .arg(format!("{PREFIX}s:sess_attacker"))
        .arg("v")
        .arg(victim)
        .query_async(&mut con)
        .await
        .unwrap();
    assert!(store.get("sess_attacker", t).await.unwrap().is_none());
    // A live entry that does not open does not block a new sign-in either.
    let won = store
        .insert_if_absent("sess_attacker", session(2, 3, t, 600), t)
        .await
        .unwrap();
    assert!(won.is_ok());
    assert_eq!(
        store
            .get("sess_victim", t)
            .await
            .unwrap()
            .unwrap()
            .refresh_token
            .expose(),
        token(1)
    );
}

#[tokio::test]
async fn a_keyed_store_refuses_a_planted_plaintext_session() {
    let redis = redis().await;
    let keyed = store(&redis);
    let planter = store_with(&redis, Sealing::Plaintext);
    let t = now();
    planter
        .insert("sess_a", session(1, 1, t, 600), t)
        .await
        .unwrap();
    assert!(planter.get("sess_a", t).await.unwrap().is_some());
    assert!(keyed.get("sess_a", t).await.unwrap().is_none());
    assert!(
        planter.get("sess_a", t).await.unwrap().is_none(),
        "and removed it"
    );
    // A link too.
    let link = UserLink::new(Uuid::from_u128(1), None);
    planter.link_user("user_1", link, t, t + 60).await.unwrap();
    assert_eq!(keyed.user_link("user_1", t).await.unwrap(), None);
    assert_eq!(
        planter.user_link("user_1", t).await.unwrap(),
        None,
        "removed"
    );
}

#[tokio::test]
async fn keys_rotate_the_new_one_seals_and_the_old_one_still_opens() {
    let redis = redis().await;
    let old = store_with(&redis, Sealing::Keys(keys(&[1])));
    let rotated = store_with(&redis, Sealing::Keys(keys(&[2, 1])));
    let stranger = store_with(&redis, Sealing::Keys(keys(&[3])));
    let t = now();
    old.insert("sess_old", session(1, 1, t, 600), t)
        .await
        .unwrap();
    assert_eq!(
        rotated
            .get("sess_old", t)
            .await
            .unwrap()
            .unwrap()
            .refresh_token
            .expose(),
        token(1)
    );
    rotated
        .insert("sess_new", session(1, 2, t, 600), t)
        .await
        .unwrap();
    assert!(rotated.get("sess_new", t).await.unwrap().is_some());
    // Sealed with key 2: a replica still on the old list (key 1 only), as during a
    // rolling rotation, cannot open it. It must not remove it either (its InstantDB
    // token would live on with no entry holding it): the call fails, retry later,
    // and the session stays for the replicas that have the key.
    let refused = |error: auth_core::StoreError| {
        let text = std::error::Error::source(&error).map(ToString::to_string);
        assert!(
            text.as_deref()
                .is_some_and(|t| t.contains("sealed with a key this replica does not have")),
            "{text:?}"
        );
    };
    refused(old.get("sess_new", t).await.unwrap_err());
    refused(old.lookup("sess_new", &[], t).await.unwrap_err());
    let racing = old
        .insert_if_absent("sess_new", session(1, 5, t, 600), t)
        .await;
    refused(racing.unwrap_err());
    assert_eq!(
        rotated
            .get("sess_new", t)
            .await
            .unwrap()
            .unwrap()
            .refresh_token
            .expose(),
        token(2),
        "still there, unchanged"
    );
    // A store with the wrong key opens nothing, and removes nothing.
    refused(stranger.get("sess_old", t).await.unwrap_err());
    assert!(old.get("sess_old", t).await.unwrap().is_some());
    old.link_user(&clerk_user(1), UserLink::new(Uuid::nil(), None), t, t + 600)
        .await
        .unwrap();
    refused(stranger.user_link(&clerk_user(1), t).await.unwrap_err());
    assert!(old.user_link(&clerk_user(1), t).await.unwrap().is_some());
}

#[tokio::test]
async fn a_replica_can_tell_at_start_up_that_its_keys_differ() {
    let redis = redis().await;
    let first = store_with(&redis, Sealing::Keys(keys(&[1])));
    let t = now();
    assert_eq!(first.foreign_seals(50).await.unwrap().sampled, 0, "empty");
    for n in 0..5 {
        first
            .insert(&format!("sess_{n}"), session(1, n, t, 600), t)
            .await
            .unwrap();
    }
    let wrong = store_with(&redis, Sealing::Keys(keys(&[2])));
    let found = wrong.foreign_seals(3).await.unwrap();
    assert_eq!((found.sampled, found.foreign), (3, 3));
    let id = found.key_ids.iter().next().unwrap().clone();
    assert_eq!(found.key_ids.len(), 1);
    assert!(
        format!("{:?}", keys(&[1])).contains(&id),
        "names key 1 by its id"
    );
    // A replica that has the key (rotating, or the same list) finds nothing foreign.
    for right in [keys(&[1]), keys(&[2, 1]), keys(&[1, 2])] {
        let found = store_with(&redis, Sealing::Keys(right))
            .foreign_seals(50)
            .await;
        assert_eq!(found.unwrap().foreign, 0);
    }
    let plain = store_with(&redis, Sealing::Plaintext)
        .foreign_seals(50)
        .await;
    assert_eq!(plain.unwrap().foreign, 5, "sealed, and it has no key");
    // Nothing was changed by looking.
    assert_eq!(first.len().await.unwrap(), 5);
}

#[tokio::test]
async fn a_sweep_leaves_an_expired_session_it_cannot_sign_out_to_one_that_can() {
    let redis = redis().await;
    let first = store_with(&redis, Sealing::Keys(keys(&[1])));
    let t = now();
    first
        .insert("sess_old", session(1, 1, t - 100, 50), t - 100)
        .await
        .unwrap();
    first
        .insert("sess_gone", session(1, 2, t - 100, 50), t - 100)
        .await
        .unwrap();
    first.remove("sess_gone").await.unwrap();
    // Expired, but sealed with key 1: a replica on key 2 cannot sign its token out,
    // so it leaves it (due again a minute later), and ends the sweep.
    let wrong = store_with(&redis, Sealing::Keys(keys(&[2])));
    assert!(wrong.sweep(t).await.unwrap().is_empty());
    assert!(
        store_with(&redis, Sealing::Plaintext)
            .sweep(t)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(first.len().await.unwrap(), 1, "still stored");
    // A replica with the key sweeps it, from then on, and gets its token to sign out.
    assert!(first.sweep(t).await.unwrap().is_empty(), "not due yet");
    let swept = first.sweep(t + 60).await.unwrap();
    assert_eq!(swept.len(), 1);
    assert_eq!(swept[0].refresh_token.expose(), token(1));
    assert!(first.is_empty().await.unwrap());
}
