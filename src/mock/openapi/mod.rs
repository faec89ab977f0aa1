//! The mock serves every operation of OpenAPI 3.x and Swagger 2.0
//! documents: loaded as they are published (flaws warned about, not
//! fatal), matched by method and path template, requests checked as the
//! document says (400 `request_invalid` naming every problem), answered
//! with the operation's example or a value generated from its schema.

mod check;
mod document;
mod load;
mod model;
mod respond;
mod schema;

pub use load::OpenApiError;
pub use model::Operations;
pub(crate) use respond::{RequestProblems, serve};
