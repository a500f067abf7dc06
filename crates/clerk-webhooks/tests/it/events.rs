//! Clerk's event payloads, from realistic fixtures signed as Svix signs them.

use clerk_webhooks::{
    Delivery, Envelope, Error, Event, JsonProblem, SessionStatus, VerificationStatus,
};

use crate::support::{ID, SECRET, TIMESTAMP, at, fixture, signed, verifier};

/// The fixture, signed and verified: the path a real delivery takes.
fn deliver(name: &str) -> Delivery {
    let body = fixture(name);
    verifier(SECRET)
        .verify(&signed(SECRET, ID, TIMESTAMP, &body), &body, at(0))
        .unwrap_or_else(|e| panic!("{name}: {e}"))
}

#[test]
fn user_created_carries_the_full_user() {
    let delivery = deliver("user.created");
    assert_eq!(
        delivery.instance_id.as_deref(),
        Some("ins_2Y9sxNdnjHDtZxBkOxDu4v7nkVJ")
    );
    assert_eq!(delivery.occurred_at_ms, Some(1_654_012_591_835));
    let Event::UserCreated(user) = &delivery.event else {
        panic!("{:?}", delivery.event)
    };
    assert_eq!(user.id, "user_29w83sxmDNGwOuEthce5gg56FcC");
    assert_eq!(user.primary_email_address(), Some("example@example.org"));
    let email = user.primary_email().unwrap();
    assert!(email.is_verified());
    let verification = email.verification.as_ref().unwrap();
    assert_eq!(verification.strategy.as_deref(), Some("ticket"));
    assert!(!verification.is_oauth());
    assert_eq!(user.external_id.as_deref(), Some("567772"));
    assert_eq!(user.username, None);
    assert_eq!(
        (user.created_at, user.updated_at),
        (Some(1_654_012_591_514), Some(1_654_012_591_835))
    );
    assert!(!user.banned && !user.locked);
    assert_eq!(
        delivery.event.user_id(),
        Some("user_29w83sxmDNGwOuEthce5gg56FcC")
    );
    assert_eq!(delivery.event.session_id(), None);
}

#[test]
fn user_updated_names_the_new_primary_email_among_several() {
    let Event::UserUpdated(user) = deliver("user.updated").event else {
        panic!()
    };
    assert_eq!(user.email_addresses.len(), 3);
    assert_eq!(user.primary_email_address(), Some("new@example.org"));
    let primary = user.primary_email().unwrap();
    assert!(primary.verification.as_ref().unwrap().is_oauth());
    // `verification: null`, `locked: null`, `last_sign_in_at: null` read as absent.
    let pending = &user.email_addresses[2];
    assert_eq!(pending.verification, None);
    assert!(!pending.is_verified());
    assert!(!user.locked);
    assert_eq!(user.last_sign_in_at, None);
    assert_eq!(user.username.as_deref(), Some("example"));
}

#[test]
fn user_deleted_has_an_id_and_no_email() {
    let delivery = deliver("user.deleted");
    let Event::UserDeleted(deleted) = &delivery.event else {
        panic!()
    };
    assert_eq!(
        deleted.id.as_deref(),
        Some("user_29wBMCtzATuFJut8jO2VNTVekS4")
    );
    assert_eq!(deleted.object.as_deref(), Some("user"));
    assert!(deleted.deleted);
    assert_eq!(
        delivery.event.user_id(),
        Some("user_29wBMCtzATuFJut8jO2VNTVekS4")
    );
    // Clerk may leave the id out.
    let envelope =
        Envelope::from_json(br#"{"type":"user.deleted","data":{"deleted":true}}"#).unwrap();
    assert_eq!(envelope.event.user_id(), None);
    assert_eq!(envelope.instance_id, None);
}

#[test]
fn every_session_event_carries_the_session() {
    for (name, status, ends) in [
        ("session.created", SessionStatus::Active, false),
        ("session.ended", SessionStatus::Ended, true),
        ("session.removed", SessionStatus::Removed, true),
        ("session.revoked", SessionStatus::Revoked, true),
    ] {
        let event = deliver(name).event;
        assert_eq!(event.event_type(), name);
        assert_eq!(event.ends_session(), ends, "{name}");
        let session = event.session().unwrap();
        assert_eq!(session.id, "sess_2Y9sxW0DUGxjAevrpNgTVIMFNwR");
        assert_eq!(session.user_id, "user_2Y9sxUxTOq4mIwjLwB5c7XQDuJV");
        assert_eq!(
            session.client_id.as_deref(),
            Some("client_2Y9sxQ3ECu5gtmTdeF1JHyK0SEJ")
        );
        assert_eq!(session.status.as_ref(), Some(&status));
        assert_eq!(session.expire_at, Some(1_698_702_974_000));
        assert_eq!(session.last_active_organization_id, None);
        assert_eq!(event.user_id(), Some("user_2Y9sxUxTOq4mIwjLwB5c7XQDuJV"));
        let matched = match &event {
            Event::SessionCreated(_) => "session.created",
            Event::SessionEnded(_) => "session.ended",
            Event::SessionRemoved(_) => "session.removed",
            Event::SessionRevoked(_) => "session.revoked",
            other => panic!("{other:?}"),
        };
        assert_eq!(matched, name);
    }
}

#[test]
fn an_unknown_type_is_kept_whole() {
    let delivery = deliver("organization.created");
    assert!(delivery.event.is_unknown());
    assert_eq!(delivery.event.event_type(), "organization.created");
    assert!(!Event::KNOWN_TYPES.contains(&"organization.created"));
    let Event::Unknown { data, .. } = &delivery.event else {
        panic!()
    };
    assert_eq!(data["slug"], "acme-inc");
    assert_eq!(delivery.event.user_id(), None);
}

#[test]
fn unknown_enum_values_and_fields_are_kept_or_ignored() {
    let Event::SessionRevoked(session) = deliver("session.unknown-status").event else {
        panic!()
    };
    assert_eq!(
        session.status,
        Some(SessionStatus::Other("suspended_for_review".into()))
    );
    assert_eq!(session.status.unwrap().as_str(), "suspended_for_review");
    assert_eq!(session.abandon_at, None);
    let envelope = Envelope::from_json(
        br#"{"type":"user.updated","data":{"id":"user_1","primary_email_address_id":"idn_1",
        "email_addresses":[{"id":"idn_1","email_address":"a@b.c","verification":{"status":"quarantined","strategy":"passkey_magic"}}]}}"#,
    )
    .unwrap();
    let Event::UserUpdated(user) = envelope.event else {
        panic!()
    };
    let verification = user.primary_email().unwrap().verification.clone().unwrap();
    assert_eq!(
        verification.status,
        Some(VerificationStatus::Other("quarantined".into()))
    );
    assert!(!user.primary_email().unwrap().is_verified());
}

#[test]
fn a_body_that_is_not_a_clerk_event_is_refused_by_position_and_kind() {
    let invalid = |event_type, problem, line, column| Error::InvalidPayload {
        event_type,
        problem,
        line,
        column,
    };
    for (body, expected) in [
        (&br#"{"type":"user.created""#[..], invalid(None, JsonProblem::Eof, 1, 22)),
        (b"not json", invalid(None, JsonProblem::Syntax, 1, 2)),
        (br#"{"data":{}}"#, invalid(None, JsonProblem::Shape, 1, 11)),
        (br#"{"type":7,"data":{}}"#, invalid(None, JsonProblem::Shape, 1, 9)),
        (br#"{"type":"organization.created"}"#, invalid(None, JsonProblem::Shape, 1, 31)),
        // A known type whose data lacks what the effect needs.
        (
            b"{\"type\":\"session.revoked\",\n\"data\":{\"id\":\"sess_secret_looking_1\"}}",
            invalid(Some("session.revoked"), JsonProblem::Shape, 2, 37),
        ),
        (
            br#"{"type":"user.created","data":{"id":"user_1","email_addresses":"leaked@example.com"}}"#,
            invalid(Some("user.created"), JsonProblem::Shape, 1, 83),
        ),
    ] {
        let err = Envelope::from_json(body).unwrap_err();
        assert_eq!(err, expected, "{}", String::from_utf8_lossy(body));
        assert!(err.is_refused());
        let text = err.to_string();
        assert!(!text.contains("leaked") && !text.contains("sess_secret"), "{text}");
    }
}
