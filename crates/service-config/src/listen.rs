//! Where a server listens: `host:port`, with the host an IP address or a name
//! (`localhost:8787`), resolved once at start-up.

use std::net::{SocketAddr, ToSocketAddrs as _};

/// Why a listen address is not usable. The resolver's error is the
/// [`source`](std::error::Error::source), printed once.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ListenAddrError {
    /// Not `host:port`, or the port is not a number up to 65535.
    #[error("{0:?} is not a host and port")]
    NotHostAndPort(String),
    /// The host name did not resolve.
    #[error("the host of {address:?} could not be resolved")]
    Unresolved {
        /// The address as given.
        address: String,
        /// The resolver's answer.
        #[source]
        source: std::io::Error,
    },
    /// The host name resolved to no address.
    #[error("the host of {0:?} resolves to no address")]
    NoAddress(String),
}

/// Resolves `text` (`127.0.0.1:8787`, `[::1]:8787`, `localhost:8787`,
/// `0.0.0.0:8787`) to the one address to bind. A name that resolves to several
/// addresses gives its first IPv4 one (`localhost` is then 127.0.0.1, which every
/// client tries), else its first.
///
/// ```
/// let addr = service_config::resolve_listen_addr("localhost:8787").unwrap();
/// assert!(addr.ip().is_loopback());
/// assert_eq!(addr.port(), 8787);
/// assert!(service_config::resolve_listen_addr("localhost").is_err());
/// ```
pub fn resolve_listen_addr(text: &str) -> Result<SocketAddr, ListenAddrError> {
    let text = text.trim();
    if let Ok(addr) = text.parse::<SocketAddr>() {
        return Ok(addr);
    }
    // A port is required, and a number: `ToSocketAddrs` would say "invalid socket
    // address" for both, which names neither.
    let port_given = text
        .rsplit_once(':')
        .is_some_and(|(host, port)| !host.is_empty() && port.parse::<u16>().is_ok());
    if !port_given {
        return Err(ListenAddrError::NotHostAndPort(text.to_owned()));
    }
    let addrs: Vec<SocketAddr> = text
        .to_socket_addrs()
        .map_err(|source| ListenAddrError::Unresolved {
            address: text.to_owned(),
            source,
        })?
        .collect();
    addrs
        .iter()
        .find(|addr| addr.is_ipv4())
        .or_else(|| addrs.first())
        .copied()
        .ok_or_else(|| ListenAddrError::NoAddress(text.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_and_host_names_resolve() {
        for (text, expected) in [
            ("127.0.0.1:8787", "127.0.0.1:8787"),
            (" [::1]:9000 ", "[::1]:9000"),
            ("0.0.0.0:80", "0.0.0.0:80"),
            ("localhost:8787", "127.0.0.1:8787"),
        ] {
            assert_eq!(
                resolve_listen_addr(text).unwrap(),
                expected.parse::<SocketAddr>().unwrap(),
                "{text}"
            );
        }
    }

    #[test]
    fn a_missing_or_bad_port_is_named() {
        for text in [
            "localhost",
            "localhost:",
            ":8787",
            "localhost:99999",
            "127.0.0.1",
        ] {
            let error = resolve_listen_addr(text).unwrap_err();
            assert!(
                matches!(error, ListenAddrError::NotHostAndPort(_)),
                "{text}: {error:?}"
            );
            assert_eq!(
                error.to_string(),
                format!("{text:?} is not a host and port")
            );
        }
    }
}
