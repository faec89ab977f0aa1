//! The tower plumbing: [`ArmorPskLayer`](crate::ArmorPskLayer) and
//! [`ArmorPsk`](crate::ArmorPsk), the future, the bodies and what the layer
//! tells operators. The checks themselves live in
//! `protocol`.

pub(crate) mod body;
pub(crate) mod future;
#[allow(clippy::module_inception)]
pub(crate) mod layer;
pub(crate) mod response;
pub(crate) mod service;
pub(crate) mod telemetry;
