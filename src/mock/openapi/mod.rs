//! The mock serves every operation of OpenAPI 3.x and Swagger 2.0
//! documents: loaded as they are published (flaws warned about, not
//! fatal), matched by method and path template, requests checked as the
//! document says (400 `request_invalid` naming every problem, 415 for a
//! body of a media type it does not document), answered with the
//! operation's example or a value generated from its schema. Whatever a
//! document holds, loading and checking are bounded: YAML aliases expand
//! to at most two million values, a check costs at most a few schema
//! visits per byte of the value, a generated value at most 20,000.

mod check;
mod document;
mod load;
mod model;
mod respond;
mod schema;
mod yaml;

pub use model::Operations;
pub(crate) use respond::{RequestProblems, serve};
