//! The Clerk and InstantDB settings, the server's own (`service_config::ServiceArgs`:
//! the same flags and environment names), and the clients and broker built from them.

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
}

impl ServiceArgs {
    /// Checks every setting (all problems at once) and builds the clients and broker.
    /// No network call is made.
    pub(crate) fn connect(&self) -> Result<Service, Failure> {
        let (config, store) = match (self.settings.resolve(), self.store.resolve()) {
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
            BrokerConfig::new(config.strategy.clone()),
            Arc::new(clients.verifier.clone()),
            Arc::new(clients.instant.clone()),
            clients.clerk_port(),
            store.build(StoreLimits::default()),
        );
        Ok(Service {
            config,
            clients,
            broker,
        })
    }
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
