//! JSON Schema as OpenAPI and Swagger documents use it: `$ref`s resolved
//! in the document, values generated from a schema (deterministic), and
//! values checked against one (types, enums, required properties,
//! `allOf`/`oneOf`/`anyOf`, items), with a JSON pointer per problem.

mod validate;

use serde_json::{Map, Value, json};

/// How deep references and nesting are followed when generating (recursive
/// schemas stop there).
const DEPTH: usize = 12;

/// From this depth on, generated objects hold only their required
/// properties.
const OPTIONAL_DEPTH: usize = 4;

/// The document a schema lives in, to resolve its `$ref`s.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Doc<'a> {
    pub(crate) root: &'a Value,
}

/// Why a `$ref` does not resolve.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum RefProblem {
    Empty,
    Missing(String),
    External(String),
}

impl<'a> Doc<'a> {
    /// The value `reference` (`#/components/schemas/X`, URL-encoded or
    /// not) points at.
    pub(crate) fn resolve(&self, reference: &str) -> Result<&'a Value, RefProblem> {
        if reference.is_empty() {
            return Err(RefProblem::Empty);
        }
        let Some(pointer) = reference.strip_prefix('#') else {
            return Err(RefProblem::External(reference.to_owned()));
        };
        let decoded = percent_decode(pointer);
        self.root
            .pointer(&decoded)
            .or_else(|| self.root.pointer(pointer))
            .ok_or_else(|| RefProblem::Missing(reference.to_owned()))
    }

    /// `value` with its own `$ref` followed (a few times at most); an
    /// unresolvable one is an empty schema.
    pub(crate) fn deref(&self, mut value: &'a Value) -> &'a Value {
        for _ in 0..DEPTH {
            match value.get("$ref").and_then(Value::as_str) {
                Some(reference) => match self.resolve(reference) {
                    Ok(target) => value = target,
                    Err(_) => return &EMPTY,
                },
                None => return value,
            }
        }
        &EMPTY
    }

    /// A value that fits `schema`: its example, the first enum value, or
    /// one built from its type and format. The same schema gives the same
    /// value every time.
    pub(crate) fn generate(&self, schema: &Value) -> Value {
        self.generate_at(schema, 0)
    }

    fn generate_at(&self, schema: &Value, depth: usize) -> Value {
        let schema = self.deref(schema);
        if depth > DEPTH {
            // Deep enough: the smallest value of the type, no recursion.
            return match schema_type(schema).as_deref() {
                Some("object") => json!({}),
                Some("array") => json!([]),
                Some("string") => json!("string"),
                Some("integer") => json!(0),
                Some("number") => json!(0.0),
                Some("boolean") => json!(true),
                _ => Value::Null,
            };
        }
        if let Some(example) = schema.get("example") {
            return example.clone();
        }
        if let Some(first) = schema
            .get("examples")
            .and_then(Value::as_array)
            .and_then(|examples| examples.first())
        {
            return first.clone();
        }
        if let Some(value) = schema.get("const") {
            return value.clone();
        }
        if let Some(first) = schema
            .get("enum")
            .and_then(Value::as_array)
            .and_then(|values| values.first())
        {
            return first.clone();
        }
        if let Some(parts) = schema.get("allOf").and_then(Value::as_array) {
            let mut merged = Map::new();
            for part in parts {
                match self.generate_at(part, depth + 1) {
                    Value::Object(fields) => merged.extend(fields),
                    other if merged.is_empty() && parts.len() == 1 => return other,
                    _ => {}
                }
            }
            return Value::Object(merged);
        }
        for choice in ["oneOf", "anyOf"] {
            if let Some(first) = schema
                .get(choice)
                .and_then(Value::as_array)
                .and_then(|options| options.first())
            {
                return self.generate_at(first, depth + 1);
            }
        }
        match schema_type(schema).as_deref() {
            Some("object") => {
                let mut object = Map::new();
                let required: Vec<&str> = schema
                    .get("required")
                    .and_then(Value::as_array)
                    .map(|names| names.iter().filter_map(Value::as_str).collect())
                    .unwrap_or_default();
                if let Some(properties) = schema.get("properties").and_then(Value::as_object) {
                    for (name, property) in properties {
                        // Past a few levels only what is required: a
                        // schema that refers to itself ends.
                        if depth >= OPTIONAL_DEPTH && !required.contains(&name.as_str()) {
                            continue;
                        }
                        object.insert(name.clone(), self.generate_at(property, depth + 1));
                    }
                }
                Value::Object(object)
            }
            Some("array") => match schema.get("items") {
                Some(items) if depth < DEPTH => json!([self.generate_at(items, depth + 1)]),
                _ => json!([]),
            },
            Some("integer") => json!(minimum(schema).unwrap_or(0.0) as i64),
            Some("number") => json!(minimum(schema).unwrap_or(0.0)),
            Some("boolean") => json!(true),
            Some("string") => json!(match schema.get("format").and_then(Value::as_str) {
                Some("date-time") => "2026-01-01T00:00:00Z",
                Some("date") => "2026-01-01",
                Some("time") => "00:00:00Z",
                Some("uuid") => "00000000-0000-4000-8000-000000000000",
                Some("email") => "user@example.com",
                Some("uri" | "url") => "https://example.com/",
                Some("ipv4") => "192.0.2.1",
                Some("ipv6") => "2001:db8::1",
                Some("byte") => "AA==",
                _ => "string",
            }),
            Some("null") => Value::Null,
            _ => Value::Null,
        }
    }
}

static EMPTY: Value = Value::Null;

/// The one type a schema names (the first that is not `null`), or
/// `object` when it only has properties.
pub(crate) fn schema_type(schema: &Value) -> Option<String> {
    schema_types(schema).and_then(|types| types.into_iter().find(|t| t != "null"))
}

fn schema_types(schema: &Value) -> Option<Vec<String>> {
    match schema.get("type") {
        Some(Value::String(name)) => {
            let mut types = vec![name.clone()];
            if schema.get("nullable").and_then(Value::as_bool) == Some(true) {
                types.push("null".to_owned());
            }
            Some(types)
        }
        Some(Value::Array(names)) => Some(
            names
                .iter()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect(),
        ),
        _ if schema.get("properties").is_some() => Some(vec!["object".to_owned()]),
        _ => None,
    }
}

fn minimum(schema: &Value) -> Option<f64> {
    schema.get("minimum").and_then(Value::as_f64)
}

/// `%XX` escapes decoded (a `$ref` to `PagedResultSet%5BTicket%5D`).
pub(crate) fn percent_decode(text: &str) -> String {
    crate::percent::decode(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generates_from_refs_and_validates_what_it_generates() {
        let root = json!({
            "components": {"schemas": {
                "Ticket": {"type": "object", "required": ["id", "state"], "properties": {
                    "id": {"type": "integer", "format": "int32"},
                    "state": {"type": "string", "enum": ["open", "closed"]},
                    "created": {"type": "string", "format": "date-time"},
                    "owner": {"$ref": "#/components/schemas/User"},
                    "tags": {"type": "array", "items": {"type": "string"}},
                    "parent": {"$ref": "#/components/schemas/Ticket"}
                }},
                "User": {"allOf": [{"type": "object", "properties": {"id": {"type": "string", "format": "uuid"}}}]}
            }}
        });
        let doc = Doc { root: &root };
        let schema = json!({"$ref": "#/components/schemas/Ticket"});
        let value = doc.generate(&schema);
        assert_eq!(value["state"], "open");
        assert_eq!(value["created"], "2026-01-01T00:00:00Z");
        assert_eq!(value["owner"]["id"], "00000000-0000-4000-8000-000000000000");
        assert_eq!(doc.generate(&schema), value, "deterministic");
        assert!(
            doc.validate(&schema, &value).is_empty(),
            "{:?}",
            doc.validate(&schema, &value)
        );
        let problems = doc.validate(
            &schema,
            &json!({"id": "seven", "state": "lost", "tags": [1]}),
        );
        let pointers: Vec<&str> = problems
            .iter()
            .map(|(pointer, _)| pointer.as_str())
            .collect();
        assert_eq!(pointers, ["/id", "/state", "/tags/0"], "{problems:?}");
        let problems = doc.validate(&schema, &json!({}));
        assert_eq!(problems.len(), 2, "{problems:?}");
    }

    #[test]
    fn a_schema_that_refers_to_itself_is_checked_without_end() {
        let root = json!({"definitions": {"Loop": {"oneOf": [{"$ref": "#/definitions/Loop"}]}}});
        let doc = Doc { root: &root };
        let _ = doc.validate(&json!({"$ref": "#/definitions/Loop"}), &json!({"a": 1}));
        let mut deep = json!(1);
        for _ in 0..120 {
            deep = json!({"next": deep});
        }
        let chain = json!({"definitions": {"Node": {"type": "object", "properties": {"next": {"$ref": "#/definitions/Node"}}}}});
        let doc = Doc { root: &chain };
        let problems = doc.validate(&json!({"$ref": "#/definitions/Node"}), &deep);
        assert_eq!(
            problems.len(),
            1,
            "the innermost 1 is not an object: {problems:?}"
        );
    }

    #[test]
    fn references_that_do_not_resolve_say_why() {
        let root = json!({"definitions": {"PagedResultSet[Ticket]": {"type": "object"}}});
        let doc = Doc { root: &root };
        assert!(
            doc.resolve("#/definitions/PagedResultSet%5BTicket%5D")
                .is_ok()
        );
        assert_eq!(doc.resolve(""), Err(RefProblem::Empty));
        assert!(matches!(
            doc.resolve("#/definitions/Nope"),
            Err(RefProblem::Missing(_))
        ));
        assert!(
            doc.generate(&json!({"$ref": "#/definitions/Nope"}))
                .is_null()
        );
    }
}
