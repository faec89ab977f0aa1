use std::net::SocketAddr;

use super::fixtures::FixturesError;
use super::stubs::StubError;

/// Something the mock cannot do.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MockError {
    /// Serving failed.
    #[error("mock server I/O: {0}")]
    Io(#[from] std::io::Error),
    /// The address cannot be listened on (in use, not this machine's).
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        /// The address asked for.
        addr: SocketAddr,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The fixtures are unusable.
    #[error(transparent)]
    Fixtures(#[from] FixturesError),
    /// A key id cannot travel in the header.
    #[error("invalid key id {0:?}: it must be non-empty visible ASCII without a colon")]
    InvalidKeyId(String),
    /// No such user in the fixtures.
    #[error("no user with id {0} in the fixtures")]
    UnknownUser(i64),
    /// A setting the layer refuses (a window over 24 hours).
    #[error(transparent)]
    Config(#[from] crate::protocol::options::ConfigError),
    /// A stub file is unusable (named, with the field at fault).
    #[error(transparent)]
    Stubs(#[from] StubError),
}
