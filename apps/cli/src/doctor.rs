//! `clerk-instant doctor`: given the server's settings, checks each step a user sets up
//! in the Clerk and Instant dashboards, and prints each as pass, fail or skip with the
//! fix.
//!
//! The checks run in the order the steps are set up, each one alone, so one wrong
//! setting fails one check and not every check after it. A check that cannot run (no
//! sample token, no admin token, no secret key, no publishable key, no app id) is
//! skipped and says why; skipped checks fail nothing (exit 0), a failed check exits 1. Nothing is
//! left behind but, at most, the InstantDB user of the sample token: the refresh token
//! of the trial sign-in is signed out again.

use auth_core::Strategy;
use clap::Args;
use clerk_jwt::Reason;
use instant_client::UserRef;
use serde::Serialize;
use serde_json::{Map, Value, json};

use crate::Outcome;
use crate::report::{Failure, Report, describe};
use crate::service::{Service, ServiceArgs, Unset};
use crate::token::read_required_token;

/// An address no InstantDB app should have: looking it up proves the admin token works.
const MADE_UP_EMAIL: &str = "clerk-instant-doctor@example.com";
/// A session id no Clerk instance has: looking it up proves the secret key works.
const MADE_UP_SESSION: &str = "sess_clerkinstantdoctor000000000000";

const EMAIL_FIX: &str = "in the Clerk dashboard (Sessions, Customize session token) add \"email\": \"{{user.primary_email_address}}\"; users without a primary email address cannot sign in";
const EMAIL_VERIFIED_FIX: &str = "in the Clerk dashboard (Sessions, Customize session token) add \"email_verified\": \"{{user.email_verified}}\", the shortcode alone so that Clerk writes a boolean";
const ADMIN_FIX: &str = "copy the app id and an admin token of the same app from the Instant dashboard (INSTANT_APP_ID, INSTANT_APP_ADMIN_TOKEN)";

#[derive(Debug, Args)]
pub(crate) struct DoctorArgs {
    /// A session token of a test user (your app's getToken(), or `clerk-instant dev
    /// token`), or - to read it from stdin: checks its claims, a sign-in with it and the
    /// secret key against its session.
    #[arg(long, value_name = "TOKEN")]
    token: Option<String>,
    #[command(flatten)]
    service: ServiceArgs,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
enum Status {
    Pass,
    Fail,
    Skip,
}

/// One check, as printed.
#[derive(Debug, Serialize)]
struct Check {
    id: &'static str,
    title: String,
    status: Status,
    detail: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    fix: Option<String>,
}

impl Check {
    fn start(id: &'static str, title: impl Into<String>) -> CheckStart {
        CheckStart {
            id,
            title: title.into(),
        }
    }
}

/// A check's id and title, waiting for its verdict.
struct CheckStart {
    id: &'static str,
    title: String,
}

impl CheckStart {
    fn verdict(self, status: Status, detail: String, fix: Option<String>) -> Check {
        Check {
            id: self.id,
            title: self.title,
            status,
            detail,
            fix,
        }
    }

    fn pass(self, detail: impl Into<String>) -> Check {
        self.verdict(Status::Pass, detail.into(), None)
    }

    fn fail(self, detail: impl Into<String>, fix: impl Into<String>) -> Check {
        self.verdict(Status::Fail, detail.into(), Some(fix.into()))
    }

    fn skip(self, why: impl Into<String>) -> Check {
        self.verdict(Status::Skip, why.into(), None)
    }
}

/// What verifying the sample token found.
enum Sample {
    /// Every rule before the email rules passed; the claims as the token carries them.
    Verified {
        payload: Map<String, Value>,
        /// The email rule that failed, if one did.
        email_rule: Option<(Reason, String)>,
    },
    /// A rule before the email rules failed, or the keys could not be loaded.
    Refused(clerk_jwt::Error),
}

impl Sample {
    async fn verify(service: &Service, token: &str) -> Sample {
        let email_rule = match service.clients.verifier.verify(token).await {
            Ok(_) => None,
            Err(clerk_jwt::Error::Rejected { reason, detail })
                if matches!(reason, Reason::EmailMissing | Reason::EmailUnverified) =>
            {
                // The verifier applies the email rules last: everything else passed.
                Some((reason, detail))
            }
            Err(error) => return Sample::Refused(error),
        };
        match clerk_jwt::inspect(token) {
            Ok(inspection) => Sample::Verified {
                payload: inspection.payload,
                email_rule,
            },
            Err(error) => Sample::Refused(error),
        }
    }

    fn claim(&self, name: &str) -> Option<&str> {
        match self {
            Sample::Verified { payload, .. } => payload.get(name).and_then(Value::as_str),
            Sample::Refused(_) => None,
        }
    }
}

/// Runs `clerk-instant doctor`.
pub(crate) async fn run(args: &DoctorArgs) -> Result<Report, Failure> {
    crate::session::stdin_once(
        args.token.as_deref().unwrap_or_default(),
        args.service.stdin_reads(),
    )?;
    let token = match &args.token {
        Some(arg) => Some(read_required_token(arg)?),
        None => None,
    };
    let (service, unset) = args.service.connect_partial()?;
    let sample = match &token {
        Some(token) if unset.clerk().is_none() => Some(Sample::verify(&service, token).await),
        _ => None,
    };

    let checks = vec![
        publishable_key(&service, unset),
        jwks(&service, unset).await,
        sample_token(sample.as_ref(), unset),
        email(sample.as_ref(), unset),
        email_verified(sample.as_ref(), unset),
        instant_admin(&service, unset).await,
        sign_in(&service, token.as_deref(), sample.as_ref(), unset).await,
        secret_key(&service, sample.as_ref()).await,
        store(&service).await,
    ];

    let count = |status| checks.iter().filter(|c| c.status == status).count();
    let (passed, failed, skipped) = (
        count(Status::Pass),
        count(Status::Fail),
        count(Status::Skip),
    );
    let json = json!({
        "ok": failed == 0,
        "checks": checks,
        "summary": {"passed": passed, "failed": failed, "skipped": skipped},
    });
    let mut text = String::new();
    for check in &checks {
        let status = match check.status {
            Status::Pass => "pass",
            Status::Fail => "FAIL",
            Status::Skip => "skip",
        };
        text.push_str(&format!(
            "{status}  {}\n      {}\n",
            check.title, check.detail
        ));
        if let Some(fix) = &check.fix {
            text.push_str(&format!("      fix: {fix}\n"));
        }
    }
    text.push_str(&format!(
        "\n{passed} passed, {failed} failed, {skipped} skipped\n"
    ));
    let mut report = Report::success(json, text);
    if failed > 0 {
        report.outcome = Outcome::Rejected;
    }
    Ok(report)
}

fn publishable_key(service: &Service, unset: Unset) -> Check {
    let check = Check::start("publishable-key", "the publishable key decodes");
    if let Some(why) = unset.clerk() {
        return check.skip(why);
    }
    // `connect` refused any key that does not decode, listing the problem.
    let pk = &service.config.publishable_key;
    check.pass(format!(
        "{} instance; Frontend API {}, issuer {}",
        pk.kind(),
        pk.frontend_api(),
        pk.issuer()
    ))
}

async fn jwks(service: &Service, unset: Unset) -> Check {
    let check = Check::start("jwks", "the JWKS is reachable and has keys");
    if let Some(why) = unset.clerk() {
        return check.skip(why);
    }
    let Some(remote) = &service.clients.keys else {
        return check.skip(
            "CLERK_JWT_KEY is set: tokens are verified with that key, and the JWKS is not fetched",
        );
    };
    let url = remote.jwks_url().to_owned();
    let fix = format!(
        "check that the publishable key is your instance's (Clerk dashboard, API keys) and that this machine reaches {url}; or set CLERK_JWT_KEY (API keys, JWT public key) to verify without the network",
    );
    match remote.refresh(service.clients.verifier.now()).await {
        Ok(0) => check.fail(format!("{url} has no keys"), fix),
        Ok(1) => check.pass(format!("1 key at {url}")),
        Ok(n) => check.pass(format!("{n} keys at {url}")),
        Err(error) => check.fail(describe(&error), fix),
    }
}

fn sample_token(sample: Option<&Sample>, unset: Unset) -> Check {
    let check = Check::start("token", "the sample token verifies");
    if let Some(why) = unset.clerk() {
        return check.skip(why);
    }
    match sample {
        None => check.skip(
            "no --token given: pass a session token of a test user to check its claims and a sign-in",
        ),
        Some(Sample::Refused(error)) => {
            let detail = match error {
                clerk_jwt::Error::Rejected { reason, detail } => format!("{reason}: {detail}"),
                other => describe(other),
            };
            check.fail(detail, error.hint())
        }
        Some(verified) => check.pass(format!(
            "signed by this instance, unexpired, a session token: user {}, session {}",
            verified.claim("sub").unwrap_or("?"),
            verified.claim("sid").unwrap_or("?")
        )),
    }
}

fn email(sample: Option<&Sample>, unset: Unset) -> Check {
    let check = Check::start("email", "the token carries email");
    if let Some(why) = unset.clerk() {
        return check.skip(why);
    }
    match sample {
        None => check.skip("no --token given"),
        Some(Sample::Refused(_)) => check.skip("the sample token does not verify"),
        Some(Sample::Verified {
            email_rule: Some((Reason::EmailMissing, detail)),
            ..
        }) => check.fail(detail.clone(), EMAIL_FIX),
        Some(verified) => check.pass(format!("email {}", verified.claim("email").unwrap_or("?"))),
    }
}

fn email_verified(sample: Option<&Sample>, unset: Unset) -> Check {
    let check = Check::start("email-verified", "the token carries email_verified: true");
    if let Some(why) = unset.clerk() {
        return check.skip(why);
    }
    let payload = match sample {
        None => return check.skip("no --token given"),
        Some(Sample::Refused(_)) => return check.skip("the sample token does not verify"),
        Some(Sample::Verified { payload, .. }) => payload,
    };
    match payload.get("email_verified") {
        Some(Value::Bool(true)) => check.pass("email_verified is true"),
        Some(Value::Bool(false)) => check.fail(
            "email_verified is false: this user's email address is not verified, so InstantDB keeps no email for them (and the admin strategy refuses them)",
            "verify the user's email address in Clerk, or check with another user",
        ),
        Some(Value::String(s)) if s == "true" => check.fail(
            "email_verified is the string \"true\": InstantDB keeps the email only when it is the boolean true",
            EMAIL_VERIFIED_FIX,
        ),
        None => check.fail(
            "the token has no email_verified claim: InstantDB signs the user in with no email",
            EMAIL_VERIFIED_FIX,
        ),
        Some(_) => check.fail("email_verified is not the boolean true", EMAIL_VERIFIED_FIX),
    }
}

async fn instant_admin(service: &Service, unset: Unset) -> Check {
    let check = Check::start(
        "instant-admin",
        "InstantDB accepts the app id and admin token",
    );
    if let Some(why) = unset.instant() {
        return check.skip(why);
    }
    let instant = &service.clients.instant;
    if !instant.has_admin_token() {
        return check.skip("INSTANT_APP_ADMIN_TOKEN is not set; only the admin strategy needs it");
    }
    let uri = &service.config.instant_api_uri;
    let app = service.config.instant_app_id;
    match instant
        .get_user(&UserRef::Email(MADE_UP_EMAIL.to_owned()))
        .await
    {
        Ok(_) => check.pass(format!(
            "InstantDB at {uri} accepted app {app} and its admin token"
        )),
        Err(error) if error.is_bad_credentials() => check.fail(describe(&error), ADMIN_FIX),
        Err(error) => check.fail(describe(&error), reach_fix(uri)),
    }
}

fn reach_fix(uri: &str) -> String {
    format!(
        "check that INSTANT_API_URI ({uri}) is an InstantDB server this machine reaches; unset it for the hosted API"
    )
}

async fn sign_in(
    service: &Service,
    token: Option<&str>,
    sample: Option<&Sample>,
    unset: Unset,
) -> Check {
    let config = &service.config;
    let check = match &config.strategy {
        Strategy::IdToken { client_name } => Check::start(
            "sign-in",
            format!(
                "InstantDB knows the Clerk client \"{client_name}\" (a sign-in with the sample token succeeds)"
            ),
        ),
        _ => Check::start(
            "sign-in",
            "InstantDB signs the sample user in (admin strategy)",
        ),
    };
    if let Some(why) = unset.clerk().or(unset.instant()) {
        return check.skip(why);
    }
    let token = match (token, sample) {
        (
            Some(token),
            Some(Sample::Verified {
                email_rule: None, ..
            }),
        ) => token,
        (None, _) | (_, None) => {
            return check
                .skip("no --token given: pass a session token of a test user to try a sign-in");
        }
        (_, Some(Sample::Refused(_))) => return check.skip("the sample token does not verify"),
        (_, Some(Sample::Verified { .. })) => {
            return check
                .skip("the server refuses the sample token until the email checks above pass");
        }
    };
    let signed = match service.broker.sign_in(token).await {
        Ok(signed) => signed,
        Err(error) => {
            let fix = sign_in_fix(&error, service);
            let detail = match &error {
                auth_core::Error::Token(clerk_jwt::Error::Rejected { detail, .. }) => {
                    detail.clone()
                }
                other => describe(other),
            };
            return check.fail(detail, fix);
        }
    };
    let email = signed.user.email.as_deref().unwrap_or("no email");
    let created = if signed.created {
        "created now"
    } else {
        "existing"
    };
    let signed_out = match service
        .clients
        .instant
        .sign_out(&signed.refresh_token)
        .await
    {
        Ok(()) => "its refresh token was signed out again".to_owned(),
        Err(error) => format!(
            "signing its refresh token out again failed: {}",
            describe(&error)
        ),
    };
    check.pass(format!(
        "InstantDB user {} ({email}, {created}); {signed_out}",
        signed.user.id
    ))
}

fn sign_in_fix(error: &auth_core::Error, service: &Service) -> String {
    let config = &service.config;
    let pk = config.publishable_key.as_str();
    let client_name = match &config.strategy {
        Strategy::IdToken { client_name } => Some(client_name.as_str()),
        _ => None,
    };
    match (error, client_name) {
        (auth_core::Error::Instant { source, .. }, Some(name))
            if source
                .rejection()
                .is_some_and(|r| r.is_record_not_found("app-oauth-client")) =>
        {
            format!(
                "in the Instant dashboard (Auth), add a Clerk client named \"{name}\" with the publishable key {pk} to app {}, or set INSTANT_CLERK_CLIENT_NAME to the name it has there",
                config.instant_app_id
            )
        }
        (auth_core::Error::Instant { source, .. }, _) if source.is_bad_credentials() => {
            ADMIN_FIX.to_owned()
        }
        (auth_core::Error::Instant { source, .. }, Some(name)) if source.is_rejected() => {
            format!(
                "check the Clerk client \"{name}\" in the Instant dashboard (Auth): its publishable key must be {pk}"
            )
        }
        (auth_core::Error::Instant { .. }, _) => reach_fix(&config.instant_api_uri),
        (auth_core::Error::EmailNotVerified, _) => EMAIL_VERIFIED_FIX.to_owned(),
        (auth_core::Error::Token(error), _) => error.hint().to_owned(),
        _ => "`clerk-instant sign-in` with the same token shows the failure in full".to_owned(),
    }
}

async fn secret_key(service: &Service, sample: Option<&Sample>) -> Check {
    let check = Check::start("secret-key", "the Clerk secret key works");
    let Some(clerk) = &service.clients.clerk else {
        return check.skip("CLERK_SECRET_KEY is not set: sign-out does not revoke Clerk sessions");
    };
    let base = clerk.base_url().to_owned();
    let sid = sample.and_then(|s| s.claim("sid"));
    match clerk.get_session(sid.unwrap_or(MADE_UP_SESSION)).await {
        Ok(session) => check.pass(format!(
            "the Backend API at {base} found session {} ({})",
            session.id,
            session.status.as_str()
        )),
        Err(error) if error.is_not_found() => match sid {
            None => check.pass(format!(
                "the Backend API at {base} accepted the secret key (asked for a made-up session; pass --token to look up a real one)"
            )),
            Some(sid) => check.fail(
                format!(
                    "the Backend API at {base} does not know session {sid}, which the publishable key's instance issued"
                ),
                "use the secret key of the same Clerk instance as the publishable key (Clerk dashboard, API keys); if CLERK_API_URL is set, check it too",
            ),
        },
        Err(error) if error.is_config() => check.fail(
            describe(&error),
            "copy the secret key (sk_test_… or sk_live_…) of this instance from the Clerk dashboard (API keys) into CLERK_SECRET_KEY",
        ),
        Err(error) => check.fail(
            describe(&error),
            format!(
                "check that this machine reaches the Clerk Backend API at {base} (CLERK_API_URL overrides it)"
            ),
        ),
    }
}

/// The servers' shared store, when one is set: Redis answers, and these encryption keys
/// open the newest sessions stored there (a replica with other keys answers 503 for
/// them, and the server refuses to start with them).
async fn store(service: &Service) -> Check {
    let check = Check::start(
        "store",
        "the shared session store answers and these keys open what it holds",
    );
    if !service.shared_store() {
        return check
            .skip("SESSION_STORE_URL is not set: each command keeps its sessions in memory");
    }
    const REACH_FIX: &str =
        "check SESSION_STORE_URL, and that Redis runs and is reachable from here";
    let described = service.store.describe();
    if let Err(error) = service.broker.store().ping().await {
        return check.fail(format!("{described}: {}", describe(&error)), REACH_FIX);
    }
    match service.store.check_keys().await {
        Ok(None) => check.pass(format!(
            "{described} answered, and its newest sessions (up to {}) open with these keys",
            service_config::KEY_CHECK_SAMPLE
        )),
        Ok(Some(problem)) => check.fail(
            format!("{}: {}", problem.setting, problem.message),
            "use the servers' SESSION_STORE_ENCRYPTION_KEY (all of its keys, in its order)",
        ),
        Err(error) => check.fail(format!("{described}: {}", describe(&error)), REACH_FIX),
    }
}
