//! Both services together, wired the way a project configures them.

use std::sync::Arc;

use clerk_jwt::Clock;

use crate::{App, ClerkClient, ClerkConfig, InstantConfig, InstantEmulator, LocalClerk, Result};

/// How to run a [`DevStack`].
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct DevStackConfig {
    /// The local Clerk.
    pub clerk: ClerkConfig,
    /// The InstantDB emulator.
    pub instant: InstantConfig,
    /// The title of the app created in the emulator.
    pub app_title: String,
    /// The name of the Clerk client registered in the app (`clerk`).
    pub client_name: String,
    /// Whether the client keeps unverified emails (off, as for new Instant clients).
    pub allow_unverified_email: bool,
}

impl Default for DevStackConfig {
    fn default() -> Self {
        DevStackConfig {
            clerk: ClerkConfig::default(),
            instant: InstantConfig::default(),
            app_title: "devstack".into(),
            client_name: "clerk".into(),
            allow_unverified_email: false,
        }
    }
}

impl DevStackConfig {
    /// Gives both services the same clock.
    #[must_use]
    pub fn clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clerk.clock = Arc::clone(&clock);
        self.instant.clock = clock;
        self
    }

    /// Sets the local Clerk's configuration.
    #[must_use]
    pub fn clerk(mut self, clerk: ClerkConfig) -> Self {
        self.clerk = clerk;
        self
    }

    /// Sets the emulator's configuration.
    #[must_use]
    pub fn instant(mut self, instant: InstantConfig) -> Self {
        self.instant = instant;
        self
    }
}

/// A local Clerk, an InstantDB emulator, and an app whose Clerk client (`clerk`) points
/// at the local Clerk through its publishable key.
///
/// ```
/// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
/// let stack = devstack::DevStack::start(devstack::DevStackConfig::default()).await?;
/// let token = stack.clerk.session_token("alice@example.com")?;
/// // POST {stack.instant.url()}/runtime/oauth/id_token with
/// // {"app_id": stack.app.id, "id_token": token, "client_name": stack.client_name}
/// # let _ = token;
/// stack.shutdown().await;
/// # Ok::<(), devstack::Error>(())
/// # }).unwrap();
/// ```
#[derive(Debug)]
#[non_exhaustive]
pub struct DevStack {
    /// The local Clerk.
    pub clerk: LocalClerk,
    /// The InstantDB emulator.
    pub instant: InstantEmulator,
    /// The app created in the emulator.
    pub app: App,
    /// The Clerk client's name in that app.
    pub client_name: String,
}

impl DevStack {
    /// Starts both services, creates the app and registers the Clerk client.
    pub async fn start(config: DevStackConfig) -> Result<DevStack> {
        let clerk = LocalClerk::start(config.clerk).await?;
        let instant = match InstantEmulator::start(config.instant).await {
            Ok(instant) => instant,
            Err(error) => {
                clerk.shutdown().await;
                return Err(error);
            }
        };
        let app = instant.create_app(&config.app_title);
        let client = ClerkClient::new(config.client_name.clone(), clerk.publishable_key().clone())
            .allow_unverified_email(config.allow_unverified_email);
        instant.add_clerk_client(&app.id, client)?;
        Ok(DevStack {
            clerk,
            instant,
            app,
            client_name: config.client_name,
        })
    }

    /// Stops both services.
    pub async fn shutdown(self) {
        self.instant.shutdown().await;
        self.clerk.shutdown().await;
    }
}
