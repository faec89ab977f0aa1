//! The tower plumbing: the layer, its service, future and bodies, and what
//! it tells operators. The checks themselves live in `protocol`; this
//! module only orders them around a request.

pub(crate) mod body;
pub(crate) mod config;
pub(crate) mod future;
pub(crate) mod layer;
mod refusal;
pub(crate) mod response;
pub(crate) mod service;
pub(crate) mod telemetry;
