//! The Clerk and InstantDB settings, the server's own (`service_config::ServiceArgs`:
//! the same flags and environment names), and the clients and broker built from them.

use std::io::Read as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use auth_core::{BrokerConfig, SessionBroker, StoreLimits};
use clap::Args;
use service_config::{Clients, ServiceConfig};

use crate::report::{Failure, describe};

/// The server's Clerk and InstantDB settings (`clerk-instant-server --help`), flattened
/// into every command that talks to the two services.
#[derive(Debug, Clone, Default, Args)]
#[command(next_help_heading = "Clerk and InstantDB (the server's settings)")]
// The settings' own group is `ServiceArgs` already: this wrapper adds none.
#[group(skip)]
pub(crate) struct ServiceArgs {
    #[command(flatten)]
    settings: service_config::ServiceArgs,
    /// Read the Clerk secret key from FILE, or from stdin with -, instead of
    /// CLERK_SECRET_KEY (a value given as --clerk-secret-key is visible in `ps` and
    /// shell history).
    #[arg(long, value_name = "FILE|-", conflicts_with = "clerk_secret_key")]
    clerk_secret_key_file: Option<PathBuf>,
    /// Read the InstantDB admin token from FILE, or from stdin with -, instead of
    /// INSTANT_APP_ADMIN_TOKEN (a value given as --instant-app-admin-token is visible in
    /// `ps` and shell history).
    #[arg(long, value_name = "FILE|-", conflicts_with = "instant_admin_token")]
    instant_admin_token_file: Option<PathBuf>,
    /// The server's session store: with SESSION_STORE_URL set, `sign-in` reuses and
    /// stores the servers' InstantDB sessions and `sign-out` is honoured by them.
    #[command(flatten)]
    store: service_config::StoreArgs,
}

/// Checked settings, the clients built from them and a broker over those clients.
pub(crate) struct Service {
    /// The checked settings.
    pub(crate) config: ServiceConfig,
    /// The verifier and the InstantDB and Clerk clients.
    pub(crate) clients: Clients,
    /// The broker, over the servers' store when SESSION_STORE_URL is set, else an
    /// in-memory store that lives as long as the command.
    pub(crate) broker: SessionBroker,
    /// The store chosen.
    pub(crate) store: service_config::StoreChoice,
}

impl Service {
    /// Whether the store is the servers' (shared): sessions signed in here are theirs
    /// too, so a one-shot command keeps them.
    pub(crate) fn shared_store(&self) -> bool {
        !matches!(self.store, service_config::StoreChoice::Memory)
    }
}

impl ServiceArgs {
    /// How many of these settings are read from stdin (`-`).
    pub(crate) fn stdin_reads(&self) -> usize {
        [&self.clerk_secret_key_file, &self.instant_admin_token_file]
            .into_iter()
            .filter(|file| file.as_deref().is_some_and(is_stdin))
            .count()
    }

    /// The settings, with the secrets given as files read.
    fn settings(&self) -> Result<service_config::ServiceArgs, Failure> {
        let mut settings = self.settings.clone();
        if let Some(file) = &self.clerk_secret_key_file {
            settings.clerk_secret_key = Some(read_secret(file, "the Clerk secret key")?);
        }
        if let Some(file) = &self.instant_admin_token_file {
            settings.instant_admin_token = Some(read_secret(file, "the InstantDB admin token")?);
        }
        Ok(settings)
    }

    /// Checks every setting (all problems at once) and builds the clients and broker.
    /// No network call is made.
    pub(crate) fn connect(&self) -> Result<Service, Failure> {
        Self::connect_with(&self.settings()?, &self.store)
    }

    /// [`ServiceArgs::connect`] for `doctor`, which checks what it can: when one of the
    /// two required settings (the publishable key, the app id) is not given at all, a
    /// stand-in takes its place and [`Unset`] says which, so that the checks needing it
    /// are skipped. A setting given with a wrong value, or a misnamed one
    /// (`NEXT_PUBLIC_…`), is still a configuration failure; so is giving neither.
    pub(crate) fn connect_partial(&self) -> Result<(Service, Unset), Failure> {
        let mut settings = self.settings()?;
        let unset = Unset {
            publishable_key: settings.clerk_publishable_key.is_none(),
            instant_app_id: settings.instant_app_id.is_none(),
        };
        let misnamed = !settings.misnamed(|name| std::env::var_os(name)).is_empty();
        if misnamed || (unset.publishable_key && unset.instant_app_id) {
            // The full check names every problem.
            return Self::connect_with(&settings, &self.store).map(|s| (s, Unset::default()));
        }
        if unset.publishable_key {
            // Of the kind of the secret key, if one is given: the check that both keys
            // are of one instance must not fail against the stand-in.
            let live = settings
                .clerk_secret_key
                .as_deref()
                .is_some_and(|sk| sk.trim().starts_with("sk_live_"));
            let kind = if live {
                clerk_jwt::InstanceKind::Production
            } else {
                clerk_jwt::InstanceKind::Development
            };
            let stand_in =
                clerk_jwt::PublishableKey::for_host(kind, STAND_IN_HOST).map_err(|e| {
                    Failure::setup_because("making a stand-in publishable key failed", &e)
                })?;
            settings.clerk_publishable_key = Some(stand_in.as_str().to_owned());
            if live && settings.clerk_authorized_parties.is_empty() {
                settings.clerk_authorized_parties =
                    vec![service_config::ANY_AUTHORIZED_PARTY.to_owned()];
            }
        }
        if unset.instant_app_id {
            settings.instant_app_id = Some(STAND_IN_APP_ID.to_owned());
        }
        Self::connect_with(&settings, &self.store).map(|s| (s, unset))
    }

    fn connect_with(
        settings: &service_config::ServiceArgs,
        store: &service_config::StoreArgs,
    ) -> Result<Service, Failure> {
        let (config, store) = match (
            settings.resolve_in(|name| std::env::var_os(name)),
            store.resolve(),
        ) {
            (Ok(config), Ok(store)) => (config, store),
            (Err(mut problems), Err(more)) => {
                problems.extend(more);
                return Err(Failure::config(problems));
            }
            (Err(problems), _) | (_, Err(problems)) => return Err(Failure::config(problems)),
        };
        let clients = config
            .build_clients()
            .map_err(|e| Failure::setup(describe(&e)))?;
        let broker = SessionBroker::new(
            BrokerConfig::new(config.strategy.clone())
                .refuse_for(clients.verifier.max_token_lifetime() + clients.verifier.leeway()),
            Arc::new(clients.verifier.clone()),
            Arc::new(clients.instant.clone()),
            clients.clerk_port(),
            store.build(StoreLimits::default()),
        );
        Ok(Service {
            config,
            clients,
            broker,
            store,
        })
    }
}

/// The host of the stand-in publishable key [`ServiceArgs::connect_partial`] uses; never
/// called (`.invalid` resolves nowhere).
const STAND_IN_HOST: &str = "clerk.doctor.invalid";
/// The stand-in app id [`ServiceArgs::connect_partial`] uses; never called.
const STAND_IN_APP_ID: &str = "00000000-0000-4000-8000-000000000000";

/// Which required settings `doctor` found not given (a stand-in took their place).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Unset {
    /// CLERK_PUBLISHABLE_KEY: nothing about Clerk tokens can be checked.
    pub(crate) publishable_key: bool,
    /// INSTANT_APP_ID: nothing about InstantDB can be checked.
    pub(crate) instant_app_id: bool,
}

impl Unset {
    /// Why a check of the Clerk instance (keys, tokens) is skipped, if it is.
    pub(crate) fn clerk(&self) -> Option<&'static str> {
        self.publishable_key.then_some(
            "CLERK_PUBLISHABLE_KEY is not set: set it (Clerk dashboard, API keys) to check the Clerk instance and tokens",
        )
    }

    /// Why a check of the InstantDB app is skipped, if it is.
    pub(crate) fn instant(&self) -> Option<&'static str> {
        self.instant_app_id.then_some(
            "INSTANT_APP_ID is not set: set it (Instant dashboard) to check the InstantDB app",
        )
    }
}

/// Whether a file argument means stdin.
pub(crate) fn is_stdin(path: &Path) -> bool {
    path.as_os_str() == "-"
}

/// The most bytes read for a secret.
const MAX_SECRET: u64 = 64 * 1024;

/// A secret (`what`) from `file`, or from stdin when it is `-`, trimmed. Its text never
/// reaches a message.
pub(crate) fn read_secret(file: &Path, what: &str) -> Result<String, Failure> {
    let mut text = String::new();
    let (read, from) = if is_stdin(file) {
        let read = std::io::stdin().take(MAX_SECRET).read_to_string(&mut text);
        (read, "stdin".to_owned())
    } else {
        let read =
            std::fs::File::open(file).and_then(|f| f.take(MAX_SECRET).read_to_string(&mut text));
        (read, file.display().to_string())
    };
    read.map_err(|e| Failure::usage_because(&format!("reading {what} from {from} failed"), &e))?;
    let secret = text.trim();
    if secret.is_empty() {
        return Err(Failure::usage(format!("{from} holds no {what}")));
    }
    Ok(secret.to_owned())
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Debug, Parser)]
    struct Cli {
        #[command(flatten)]
        service: ServiceArgs,
    }

    #[test]
    fn the_settings_are_listed_under_their_own_heading() {
        let help = Cli::command_help();
        let heading = help
            .find("Clerk and InstantDB (the server's settings):")
            .expect(&help);
        let flag = help.find("--clerk-publishable-key").expect(&help);
        assert!(heading < flag, "{help}");
    }

    impl Cli {
        fn command_help() -> String {
            use clap::CommandFactory as _;
            Cli::command().render_help().to_string()
        }
    }
}
