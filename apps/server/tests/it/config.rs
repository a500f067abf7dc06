//! Start-up configuration: every problem named with its setting and fix.

use clerk_instant_server::config::{Mode, ServerArgs};
use service_config::ServiceArgs;

const PK_LIVE: &str = "pk_live_Y2xlcmsuZXhhbXBsZS5jb20k";
const APP: &str = "11111111-2222-4333-8444-555555555555";

fn base() -> ServerArgs {
    ServerArgs {
        listen: Some("127.0.0.1:8787".into()),
        log_format: "text".into(),
        log_level: "info".into(),
        body_limit: 64 * 1024,
        request_timeout: 10,
        session_revalidate: 60,
        max_sessions: 100_000,
        header_read_timeout: 10,
        idle_timeout: 60,
        max_connections: 1024,
        shutdown_timeout: 15,
        sign_in_lock: 15,
        user_deleted_policy: "delete-user".into(),
        ..ServerArgs::default()
    }
}

fn configured() -> ServerArgs {
    with(ServiceArgs {
        clerk_publishable_key: Some(PK_LIVE.into()),
        instant_app_id: Some(APP.into()),
        clerk_authorized_parties: vec!["https://app.example.com".into()],
        ..ServiceArgs::default()
    })
}

/// The base options with these Clerk and InstantDB settings.
fn with(service: ServiceArgs) -> ServerArgs {
    ServerArgs { service, ..base() }
}

/// The configured settings changed by `tweak`.
fn configured_with(tweak: impl FnOnce(&mut ServiceArgs)) -> ServerArgs {
    let mut args = configured();
    tweak(&mut args.service);
    args
}

#[test]
fn dev_means_the_local_stack_and_full_settings_mean_real_services() {
    let dev = ServerArgs {
        dev: true,
        ..base()
    };
    assert!(matches!(dev.resolve(), Ok(Mode::Dev(_))));
    assert_eq!(dev.resolve().unwrap().as_str(), "dev");
    let Ok(Mode::Configured(settings)) = configured().resolve() else {
        panic!("a publishable key and an app id are enough");
    };
    assert_eq!(
        settings.service.instant_api_uri,
        "https://api.instantdb.com"
    );
    assert_eq!(settings.service.strategy.as_str(), "id-token");
    assert!(settings.service.secret_key.is_none());
    assert_eq!(
        Mode::Configured(settings).as_str(),
        "configured",
        "the start-up log and /readyz say so"
    );
}

#[test]
fn each_bad_setting_is_named_with_its_fix() {
    let cases: Vec<(&str, ServerArgs)> = vec![
        (
            "only a publishable key",
            with(ServiceArgs {
                clerk_publishable_key: Some(PK_LIVE.into()),
                ..ServiceArgs::default()
            }),
        ),
        (
            "a secret key where the publishable key goes, and a bad app id",
            with(ServiceArgs {
                clerk_publishable_key: Some("sk_test_abc".into()),
                instant_app_id: Some("my-app".into()),
                ..ServiceArgs::default()
            }),
        ),
        (
            "test secret key with a live publishable key",
            configured_with(|s| s.clerk_secret_key = Some("sk_test_abc".into())),
        ),
        (
            "admin strategy without an admin token",
            configured_with(|s| s.strategy = Some("admin".into())),
        ),
        (
            "unknown strategy and a bad API URI",
            configured_with(|s| {
                s.strategy = Some("magic".into());
                s.instant_api_uri = Some("api.instantdb.com".into());
            }),
        ),
        ("no settings at all, and no --dev", base()),
        (
            "settings given empty (a compose file's ${X} with X unset)",
            with(ServiceArgs {
                clerk_publishable_key: Some(String::new()),
                instant_app_id: Some(" ".into()),
                clerk_authorized_parties: vec![String::new()],
                ..ServiceArgs::default()
            }),
        ),
        (
            "--dev with Clerk and InstantDB settings",
            ServerArgs {
                dev: true,
                ..configured()
            },
        ),
        (
            "--dev on every address",
            ServerArgs {
                dev: true,
                listen: Some("0.0.0.0:8787".into()),
                ..base()
            },
        ),
        (
            "--dev on a LAN address",
            ServerArgs {
                dev: true,
                listen: Some("192.168.1.20:8787".into()),
                ..base()
            },
        ),
        (
            "a live key with no authorized parties",
            configured_with(|s| s.clerk_authorized_parties.clear()),
        ),
        (
            "authorized parties with a path or a query",
            configured_with(|s| {
                s.clerk_authorized_parties = vec![
                    "https://app.example.com/dashboard".into(),
                    "https://app.example.com/?from=mail".into(),
                ];
            }),
        ),
        (
            "* among origins",
            configured_with(|s| {
                s.clerk_authorized_parties = vec!["*".into(), "https://app.example.com".into()];
            }),
        ),
        (
            "a private key as the JWT key, and an authorized party that is not an origin",
            configured_with(|s| {
                s.clerk_jwt_key =
                    Some("-----BEGIN PRIVATE KEY-----\nMIIB\n-----END PRIVATE KEY-----".into());
                s.clerk_authorized_parties = vec!["app.example.com".into()];
            }),
        ),
        (
            "listen address, log format, timeout, an empty user-deleted policy",
            ServerArgs {
                listen: Some("localhost".into()),
                log_format: "xml".into(),
                request_timeout: 0,
                user_deleted_policy: String::new(),
                ..configured()
            },
        ),
    ];
    let mut transcript = String::new();
    for (case, args) in cases {
        let error = args.resolve().expect_err(case);
        transcript.push_str(&format!("## {case}\n{error}\n\n"));
    }
    insta::assert_snapshot!(transcript);
}

#[test]
fn the_binary_refuses_bad_configuration_with_exit_code_2() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_clerk-instant-server"))
        .env_clear()
        .env("CLERK_PUBLISHABLE_KEY", "pk_test_bm90LWEtaG9zdA")
        .env("INSTANT_APP_ID", APP)
        .env("INSTANT_APP_ADMIN_TOKEN", "hunter2-secret")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("hunter2"), "a secret reached the output");
    insta::assert_snapshot!(stderr);
}
