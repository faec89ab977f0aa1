//! The operations a loaded document serves: parameters, bodies, answers
//! and path templates, as plain values.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde_json::{Value, json};

/// Where a parameter is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Place {
    Path,
    Query,
    Header,
    Cookie,
}

impl Place {
    pub(super) fn name(self) -> &'static str {
        match self {
            Self::Path => "path",
            Self::Query => "query",
            Self::Header => "header",
            Self::Cookie => "cookie",
        }
    }
}

#[derive(Debug, Clone)]
pub(super) struct Param {
    pub(super) name: String,
    pub(super) place: Place,
    pub(super) required: bool,
    pub(super) schema: Value,
    /// How an array is written in a query: `form` with `explode` (the
    /// name repeated, OpenAPI's default and Swagger's `multi`), or joined
    /// by this separator (`,` for `explode: false` and Swagger's `csv`).
    pub(super) joined_by: Option<char>,
}

/// A documented request body.
#[derive(Debug, Clone)]
pub(super) struct Body {
    pub(super) required: bool,
    /// Its media types (lowercase, as documented) and their schemas
    /// (`Null`: none given), in document order.
    pub(super) media: Vec<(String, Value)>,
}

#[derive(Debug, Clone)]
pub(super) struct Answer {
    pub(super) status: u16,
    /// Named examples, in document order (`example` is named "default").
    pub(super) examples: Vec<(String, Value)>,
    pub(super) schema: Option<Value>,
    /// The media type it is sent as (a JSON one where the document lists
    /// one), `None` when the document gives it no body.
    pub(super) media: Option<String>,
}

#[derive(Debug, Clone)]
pub(super) enum Segment {
    Literal(String),
    Param(String),
}

/// One operation of one document.
#[derive(Debug, Clone)]
pub(super) struct Operation {
    pub(super) method: String,
    pub(super) path: String,
    pub(super) segments: Vec<Segment>,
    pub(super) operation_id: Option<String>,
    pub(super) source: String,
    pub(super) document: usize,
    pub(super) params: Vec<Param>,
    pub(super) body: Option<Body>,
    pub(super) answers: Vec<Answer>,
}

/// The operations of every document loaded, and what was wrong with them.
#[derive(Debug, Clone, Default)]
pub struct Operations {
    pub(super) documents: Vec<Arc<Value>>,
    pub(super) operations: Vec<Operation>,
    pub(super) warnings: BTreeMap<String, (usize, String)>,
}

impl Operations {
    /// How many operations are served.
    pub fn len(&self) -> usize {
        self.operations.len()
    }

    /// Whether none is.
    pub fn is_empty(&self) -> bool {
        self.operations.is_empty()
    }

    /// One line per kind of flaw found: how many, and the first.
    pub fn warnings(&self) -> Vec<String> {
        self.warnings
            .iter()
            .map(|(kind, (count, example))| format!("{count} × {kind} (first: {example})"))
            .collect()
    }

    /// What is served, as `GET /__mock/operations` lists it.
    pub fn listing(&self) -> Value {
        Value::Array(
            self.operations
                .iter()
                .map(|operation| {
                    json!({
                        "method": operation.method,
                        "path": operation.path,
                        "operation_id": operation.operation_id,
                        "source": operation.source,
                    })
                })
                .collect(),
        )
    }
}
