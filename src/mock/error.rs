//! What goes wrong in the mock: [`MockError`] for the server, [`FileError`]
//! for a file it is given (fixtures, stubs, an OpenAPI document).

use std::borrow::Cow;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use crate::boxed::BoxError;

/// Something the mock cannot do.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MockError {
    /// Serving failed.
    #[error("mock server I/O")]
    Io(#[from] std::io::Error),
    /// The address cannot be listened on (in use, not this machine's).
    #[error("cannot listen on {addr}")]
    Listen {
        /// The address asked for.
        addr: SocketAddr,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A file it was given (fixtures, stubs, a document) is unusable.
    #[error(transparent)]
    File(#[from] FileError),
    /// A key id cannot travel in the header.
    #[error("invalid key id {0:?}: it must be 1 to 256 bytes of visible ASCII without a colon")]
    InvalidKeyId(String),
    /// No such user in the fixtures.
    #[error("no user with id {0} in the fixtures")]
    UnknownUser(i64),
    /// A setting the layer refuses (a window over 24 hours).
    #[error(transparent)]
    Config(#[from] crate::protocol::options::ConfigError),
}

/// A file the mock cannot use (fixtures, stubs, an OpenAPI document): which
/// file and what is wrong with it. An I/O or parser error behind it is its
/// [`source`](std::error::Error::source), not part of its text.
///
/// ```
/// use std::error::Error as _;
/// use armor_psk::mock::Stub;
///
/// let error = Stub::from_path("/no/such/stubs.json").unwrap_err();
/// assert_eq!(error.file(), std::path::Path::new("/no/such/stubs.json"));
/// assert_eq!(error.to_string(), "/no/such/stubs.json: cannot read");
/// assert_eq!(
///     error.source().unwrap().downcast_ref::<std::io::Error>().unwrap().kind(),
///     std::io::ErrorKind::NotFound,
/// );
/// ```
#[derive(Debug, thiserror::Error)]
#[error("{}: {problem}", file.display())]
pub struct FileError {
    file: PathBuf,
    problem: Cow<'static, str>,
    #[source]
    source: Option<BoxError>,
}

impl FileError {
    /// `file` is unusable for a reason of its own (a field at fault).
    pub(crate) fn new(file: &Path, problem: impl Into<Cow<'static, str>>) -> Self {
        Self {
            file: file.to_owned(),
            problem: problem.into(),
            source: None,
        }
    }

    /// `file` is unusable because of `source` (it cannot be read, it does
    /// not parse).
    pub(crate) fn caused(
        file: &Path,
        problem: impl Into<Cow<'static, str>>,
        source: impl Into<BoxError>,
    ) -> Self {
        Self {
            source: Some(source.into()),
            ..Self::new(file, problem)
        }
    }

    /// The file (`(text)` for stubs or fixtures given as text).
    pub fn file(&self) -> &Path {
        &self.file
    }

    /// What is wrong with it, without the cause.
    pub fn problem(&self) -> &str {
        &self.problem
    }

    /// The error and its causes on one line, for a warning or an answer.
    pub(crate) fn describe(&self) -> String {
        let first: &dyn std::error::Error = self;
        let chain = std::iter::successors(Some(first), |error| error.source());
        chain
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(": ")
    }
}
