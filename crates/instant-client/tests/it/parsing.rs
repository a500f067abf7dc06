//! Transactions parsed from InstantDB's wire JSON, as a server receives them from a
//! browser: the SDK's bodies in the fixture come back byte for byte, what the builder
//! sends parses back to the same transaction, and every malformed body is refused with
//! a message naming the step and the problem, never a value.

use instant_client::{EntityId, Error, LinkTarget, Transaction, UpdateOptions, Uuid};
use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::{Value, json};

use crate::support::{Server, anonymous_client, refresh_token};

const FIXTURE: &str = include_str!("../fixtures/instant-requests.jsonl");

/// Transact bodies in the fixture this crate refuses, and the message.
const REFUSED: &[(&str, &str)] = &[(
    // Its entity id "x" is a string but not a UUID: InstantDB refuses it too.
    "admin.transact.lookup",
    "step 1: the entity id must be a uuid or an [attribute, value] lookup, got a string that is not a uuid",
)];

/// Stands for user data in the malformed bodies: no message may contain it.
const MARK: &str = "s3cr3t-user-data";

const ID: &str = "00000000-0000-4000-8000-000000000001";

#[derive(Deserialize)]
struct Line {
    label: String,
    path: String,
    body: Box<RawValue>,
}

fn transact_lines() -> Vec<Line> {
    FIXTURE
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str::<Line>(l).unwrap())
        .filter(|l| l.path.starts_with("/admin/transact?"))
        .collect()
}

fn id(n: u8) -> Uuid {
    Uuid::parse_str(&format!("00000000-0000-4000-8000-0000000000{n:02}")).unwrap()
}

/// `detail` of the `InvalidInput` error parsing `body` gives.
fn refusal(body: &str) -> String {
    match Transaction::from_json(body.as_bytes()) {
        Err(Error::InvalidInput { detail, .. }) => detail,
        other => panic!("{body}: {other:?}"),
    }
}

#[test]
fn sdk_transactions_in_the_fixture_round_trip_byte_for_byte() {
    let lines = transact_lines();
    let mut round_tripped = 0;
    for line in &lines {
        let raw = line.body.get();
        let label = &line.label;
        if let Some((_, message)) = REFUSED.iter().find(|(l, _)| l == label) {
            assert_eq!(refusal(raw), *message, "{label}");
            continue;
        }
        let streamed =
            Transaction::from_json(raw.as_bytes()).unwrap_or_else(|e| panic!("{label}: {e}"));
        let value: Value = serde_json::from_str(raw).unwrap();
        let from_value = serde_json::from_value::<Transaction>(value).unwrap();
        assert_eq!(streamed, from_value, "{label}");
        assert_eq!(serde_json::to_string(&streamed).unwrap(), raw, "{label}");
        round_tripped += 1;
    }
    assert!(round_tripped >= 4, "the fixture lost transact lines");
    for (label, _) in REFUSED {
        assert!(
            lines.iter().any(|l| &l.label == label),
            "{label} left the fixture"
        );
    }
}

#[tokio::test]
async fn a_parsed_transaction_is_forwarded_as_received() {
    let line = transact_lines()
        .into_iter()
        .find(|l| l.label == "admin(noAdminToken).asUser(token).transact")
        .unwrap();
    let tx = Transaction::from_json(line.body.get().as_bytes()).unwrap();
    let server = Server::start().await;
    anonymous_client(&server.url())
        .as_refresh_token(refresh_token())
        .transact(&tx)
        .await
        .unwrap();
    assert_eq!(server.take_one().body, line.body.get().as_bytes());
}

#[test]
fn what_the_builder_sends_parses_back_to_the_same_transaction() {
    let builds = [
        Transaction::new(),
        Transaction::new()
            .create("goals", id(1), json!({"title": "Get fit", "priority": 1}))
            .update("goals", id(1), json!({"done": false, "tags": ["a", "b"]}))
            .update_with(
                "goals",
                id(2),
                json!({"title": "only if present"}),
                UpdateOptions::default().upsert(false),
            )
            .merge("goals", id(1), json!({"meta": {"nested": {"x": 1.5}}}))
            .merge_with(
                "goals",
                id(1),
                json!({"meta": {"y": null}}),
                UpdateOptions::default(),
            )
            .link("goals", id(1), "todos", id(10))
            .link("goals", id(1), "todos", vec![id(11), id(12)])
            .unlink("goals", id(1), "todos", Vec::<Uuid>::new())
            .rule_params(
                "goals",
                id(1),
                json!({"inviteCode": "c0de"}).as_object().unwrap().clone(),
            )
            .delete("todos", id(12)),
        Transaction::new()
            .update(
                "profiles",
                EntityId::lookup("email", "alice@example.com"),
                json!({"name": "Alice"}),
            )
            .link(
                "goals",
                id(1),
                "owner",
                EntityId::lookup("email", "alice@example.com"),
            )
            .link(
                "goals",
                id(1),
                "watchers",
                vec![EntityId::lookup("handle", "bob"), EntityId::from(id(3))],
            )
            .delete("profiles", EntityId::lookup("handle", 7))
            .throw_on_missing_attrs(true),
    ];
    for tx in builds {
        let sent = serde_json::to_string(&tx).unwrap();
        let parsed = Transaction::from_json(sent.as_bytes()).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(parsed, tx, "{sent}");
        assert_eq!(serde_json::to_string(&parsed).unwrap(), sent);
    }
}

#[test]
fn parsing_normalizes_only_what_does_not_change_the_meaning() {
    let upper = ID.to_uppercase().replace("0001", "000A");
    let body = format!(
        r#"{{"steps": [["delete", "goals", "{upper}"], ["link", "goals", "{ID}", {{"todos": ["{upper}"], "owner": ["email", "a@b.c"]}}], ["update", "goals", "{ID}", {{"z": 1, "a": 2.0}}]]}}"#
    );
    let tx = Transaction::from_json(body.as_bytes()).unwrap();
    let lower = upper.to_lowercase();
    assert_eq!(
        serde_json::to_string(&tx).unwrap(),
        format!(
            r#"{{"steps":[["delete","goals","{lower}",null],["link","goals","{ID}",{{"owner":["email","a@b.c"],"todos":["{lower}"]}}],["update","goals","{ID}",{{"a":2.0,"z":1}}]],"throw-on-missing-attrs?":false}}"#
        )
    );
}

#[test]
fn entity_ids_link_targets_and_options_parse_on_their_own() {
    let parse_id = |v: Value| serde_json::from_value::<EntityId>(v).map_err(|e| e.to_string());
    assert_eq!(
        parse_id(json!(ID)),
        Ok(EntityId::from(Uuid::parse_str(ID).unwrap()))
    );
    assert_eq!(
        parse_id(json!(["email", "a@b.c"])),
        Ok(EntityId::lookup("email", "a@b.c"))
    );
    assert_eq!(
        parse_id(json!(MARK)),
        Err(
            "an entity id must be a uuid or an [attribute, value] lookup, got a string that is not a uuid"
                .to_owned()
        )
    );

    let target: LinkTarget = serde_json::from_str(&format!(r#"["{ID}", ["handle", 3]]"#)).unwrap();
    assert_eq!(
        target,
        LinkTarget::Many(vec![
            Uuid::parse_str(ID).unwrap().into(),
            EntityId::lookup("handle", 3)
        ])
    );
    assert_eq!(
        serde_json::from_value::<LinkTarget>(json!({"id": MARK}))
            .unwrap_err()
            .to_string(),
        "a link target must be an entity id (a uuid or an [attribute, value] lookup) or an array of them, got an object"
    );

    let opts: UpdateOptions = serde_json::from_str(r#"{"upsert": false}"#).unwrap();
    assert_eq!(opts, UpdateOptions::default().upsert(false));
    assert_eq!(
        serde_json::from_str::<UpdateOptions>("{}").unwrap(),
        UpdateOptions::default()
    );
    assert_eq!(
        serde_json::from_value::<UpdateOptions>(json!({"upsert": null}))
            .unwrap_err()
            .to_string(),
        "option `upsert` must be a boolean, got null"
    );
}

/// Malformed bodies, named. `MARK` and `ID` are substituted.
const MALFORMED: &[(&str, &str)] = &[
    ("not json", r#"{"steps": [}"#),
    ("cut short", r#"{"steps": [["delete", "goals""#),
    ("an array", r#"[["delete", "goals", "ID"]]"#),
    ("a string", r#""MARK""#),
    ("null", "null"),
    ("no steps", "{}"),
    ("only the flag", r#"{"throw-on-missing-attrs?": true}"#),
    ("unknown key", r#"{"steps": [], "MARK": "MARK"}"#),
    ("steps twice", r#"{"steps": [], "steps": []}"#),
    (
        "flag twice",
        r#"{"steps": [], "throw-on-missing-attrs?": true, "throw-on-missing-attrs?": false}"#,
    ),
    ("steps an object", r#"{"steps": {"MARK": "MARK"}}"#),
    ("steps a string", r#"{"steps": "MARK"}"#),
    ("steps a number", r#"{"steps": 12345}"#),
    (
        "flag a string",
        r#"{"steps": [], "throw-on-missing-attrs?": "MARK"}"#,
    ),
    (
        "flag null",
        r#"{"steps": [], "throw-on-missing-attrs?": null}"#,
    ),
    ("step an object", r#"{"steps": [{"MARK": "MARK"}]}"#),
    ("step a string", r#"{"steps": ["MARK"]}"#),
    ("step empty", r#"{"steps": [[]]}"#),
    ("kind a number", r#"{"steps": [[1, "goals", "ID", {}]]}"#),
    (
        "kind unknown",
        r#"{"steps": [["MARK", "goals", "ID", {}]]}"#,
    ),
    (
        "kind in another case",
        r#"{"steps": [["Update", "goals", "ID", {}]]}"#,
    ),
    (
        "create too short",
        r#"{"steps": [["create", "goals", "ID"]]}"#,
    ),
    (
        "update too long",
        r#"{"steps": [["update", "goals", "ID", {}, {}, "MARK"]]}"#,
    ),
    ("merge too short", r#"{"steps": [["merge"]]}"#),
    (
        "link too long",
        r#"{"steps": [["link", "goals", "ID", {"todos": "ID"}, {}]]}"#,
    ),
    (
        "unlink too short",
        r#"{"steps": [["unlink", "goals", "ID"]]}"#,
    ),
    (
        "delete too long",
        r#"{"steps": [["delete", "goals", "ID", null, "MARK"]]}"#,
    ),
    ("delete too short", r#"{"steps": [["delete", "goals"]]}"#),
    (
        "ruleParams too long",
        r#"{"steps": [["ruleParams", "goals", "ID", {}, {}]]}"#,
    ),
    ("etype a number", r#"{"steps": [["update", 7, "ID", {}]]}"#),
    ("etype empty", r#"{"steps": [["update", "", "ID", {}]]}"#),
    ("etype null", r#"{"steps": [["delete", null, "ID"]]}"#),
    (
        "eid not a uuid (fixture)",
        r#"{"steps": [["update", "profiles", "x", {"handle": "MARK"}]]}"#,
    ),
    (
        "eid not a uuid",
        r#"{"steps": [["update", "goals", "MARK", {}]]}"#,
    ),
    (
        "eid a simple uuid",
        r#"{"steps": [["update", "goals", "00000000000040008000000000000001", {}]]}"#,
    ),
    (
        "eid a number",
        r#"{"steps": [["update", "goals", 12345, {}]]}"#,
    ),
    (
        "eid an object",
        r#"{"steps": [["update", "goals", {"MARK": "MARK"}, {}]]}"#,
    ),
    ("eid null", r#"{"steps": [["delete", "goals", null]]}"#),
    (
        "lookup of 3",
        r#"{"steps": [["update", "goals", ["email", "MARK", "MARK"], {}]]}"#,
    ),
    (
        "lookup of 1",
        r#"{"steps": [["update", "goals", ["MARK"], {}]]}"#,
    ),
    (
        "lookup attr a number",
        r#"{"steps": [["update", "goals", [1, "MARK"], {}]]}"#,
    ),
    (
        "lookup attr empty",
        r#"{"steps": [["update", "goals", ["", "MARK"], {}]]}"#,
    ),
    (
        "create attrs a string",
        r#"{"steps": [["create", "goals", "ID", "MARK"]]}"#,
    ),
    (
        "update attrs an array",
        r#"{"steps": [["update", "goals", "ID", ["MARK"]]]}"#,
    ),
    (
        "merge attrs null",
        r#"{"steps": [["merge", "goals", "ID", null]]}"#,
    ),
    (
        "options null",
        r#"{"steps": [["update", "goals", "ID", {}, null]]}"#,
    ),
    (
        "options a string",
        r#"{"steps": [["merge", "goals", "ID", {}, "MARK"]]}"#,
    ),
    (
        "option unknown",
        r#"{"steps": [["update", "goals", "ID", {}, {"MARK": true}]]}"#,
    ),
    (
        "option upsert a string",
        r#"{"steps": [["create", "goals", "ID", {}, {"upsert": "MARK"}]]}"#,
    ),
    (
        "delete with arguments",
        r#"{"steps": [["delete", "goals", "ID", {"MARK": "MARK"}]]}"#,
    ),
    (
        "delete with false",
        r#"{"steps": [["delete", "goals", "ID", false]]}"#,
    ),
    (
        "link arguments an array",
        r#"{"steps": [["link", "goals", "ID", ["MARK"]]]}"#,
    ),
    (
        "link arguments empty",
        r#"{"steps": [["link", "goals", "ID", {}]]}"#,
    ),
    (
        "link label empty",
        r#"{"steps": [["link", "goals", "ID", {"": "ID"}]]}"#,
    ),
    (
        "link target a number",
        r#"{"steps": [["delete", "goals", "ID"], ["link", "goals", "ID", {"MARK": 12345}]]}"#,
    ),
    (
        "link target not a uuid",
        r#"{"steps": [["link", "goals", "ID", {"todos": "MARK"}]]}"#,
    ),
    (
        "link target null",
        r#"{"steps": [["link", "goals", "ID", {"todos": null}]]}"#,
    ),
    (
        "link targets with a bad one",
        r#"{"steps": [["link", "goals", "ID", {"todos": ["ID", "ID", "MARK"]}]]}"#,
    ),
    (
        "link targets with a bad lookup",
        r#"{"steps": [["link", "goals", "ID", {"todos": [["email", "MARK", 1]]}]]}"#,
    ),
    (
        "unlink target an object",
        r#"{"steps": [["unlink", "goals", "ID", {"todos": {"MARK": "MARK"}}]]}"#,
    ),
    (
        "ruleParams an array",
        r#"{"steps": [["ruleParams", "goals", "ID", ["MARK"]]]}"#,
    ),
    (
        "ruleParams null",
        r#"{"steps": [["ruleParams", "goals", "ID", null]]}"#,
    ),
    (
        "third step bad",
        r#"{"steps": [["delete", "goals", "ID"], ["update", "goals", "ID", {"title": "MARK"}], ["update", "goals", "ID", 12345]]}"#,
    ),
];

/// Bodies a `serde_json::Value` cannot hold: not JSON, or a key twice (the last wins).
const NOT_VALUES: &[&str] = &["not json", "cut short", "steps twice", "flag twice"];

#[test]
fn malformed_transactions_are_refused_naming_the_step_and_the_problem() {
    let mut report = Vec::new();
    for (name, body) in MALFORMED {
        let body = body.replace("MARK", MARK).replace("ID", ID);
        let detail = refusal(&body);
        assert!(!detail.contains(MARK), "{name}: {detail}");
        assert!(!detail.contains("12345"), "{name}: {detail}");
        // The same message whichever deserializer reads it.
        if !NOT_VALUES.contains(name) {
            let value: Value = serde_json::from_str(&body).unwrap();
            let err = serde_json::from_value::<Transaction>(value).unwrap_err();
            assert_eq!(err.to_string(), detail, "{name}: from_value");
        }
        let err = Transaction::from_json(body.as_bytes()).unwrap_err();
        assert_eq!(
            err.to_string(),
            format!("invalid input for POST /admin/transact: {detail}")
        );
        report.push(format!("{name}: {detail}"));
    }
    insta::assert_snapshot!(report.join("\n"));
}

#[test]
fn more_than_the_step_limit_is_refused() {
    let step = format!(r#"["update","goals","{ID}",{{"n":1}}]"#);
    let body = |n: usize| format!(r#"{{"steps":[{}]}}"#, vec![step.as_str(); n].join(","));
    let tx = Transaction::from_json(body(Transaction::MAX_STEPS).as_bytes()).unwrap();
    assert_eq!(tx.len(), 1000);
    assert_eq!(
        refusal(&body(Transaction::MAX_STEPS + 1)),
        "too many steps: a transaction has at most 1000"
    );
}
