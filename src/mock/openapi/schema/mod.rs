//! JSON Schema as OpenAPI and Swagger documents use it: `$ref`s resolved
//! in the document, values generated from a schema (deterministic), and
//! values checked against one within a work budget (the keywords in
//! `validate`), with a JSON pointer per problem.

mod pattern;
mod validate;

pub(crate) use validate::budget_for;

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
        let mut left = GENERATED;
        self.generate_at(schema, 0, &mut left)
    }

    fn generate_at(&self, schema: &Value, depth: usize, left: &mut u64) -> Value {
        let schema = self.deref(schema);
        *left = left.saturating_sub(1);
        if depth > DEPTH || *left == 0 {
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
                match self.generate_at(part, depth + 1, left) {
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
                return self.generate_at(first, depth + 1, left);
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
                        object.insert(name.clone(), self.generate_at(property, depth + 1, left));
                    }
                }
                Value::Object(object)
            }
            Some("array") => match schema.get("items") {
                Some(items) if depth < DEPTH => {
                    let count = schema
                        .get("minItems")
                        .and_then(Value::as_u64)
                        .unwrap_or(1)
                        .clamp(1, 16);
                    let item = self.generate_at(items, depth + 1, left);
                    Value::Array(vec![item; count as usize])
                }
                _ => {
                    let count = schema.get("minItems").and_then(Value::as_u64).unwrap_or(0);
                    Value::Array(vec![Value::Null; count.min(16) as usize])
                }
            },
            Some("integer") => json!(number_within(schema, true) as i64),
            Some("number") => json!(number_within(schema, false)),
            Some("boolean") => json!(true),
            Some("string") => json!(fit_length(
                schema,
                match schema.get("format").and_then(Value::as_str) {
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
                }
            )),
            Some("null") => Value::Null,
            _ => Value::Null,
        }
    }
}

static EMPTY: Value = Value::Null;

/// Schemas visited to generate one value: past it, the smallest values
/// (a very wide schema, many levels deep, stays small).
const GENERATED: u64 = 20_000;

/// A number within the schema's bounds (inclusive or exclusive, OpenAPI
/// 3.0's flags or 3.1's numbers), a multiple of its `multipleOf`, as near
/// zero as they allow.
fn number_within(schema: &Value, whole: bool) -> f64 {
    let get = |name: &str| schema.get(name).and_then(Value::as_f64);
    let flag = |name: &str| schema.get(name).and_then(Value::as_bool) == Some(true);
    let step = get("multipleOf").filter(|s| *s > 0.0).unwrap_or(1.0);
    let (mut low, mut high) = (f64::NEG_INFINITY, f64::INFINITY);
    if let Some(minimum) = get("minimum") {
        low = if flag("exclusiveMinimum") {
            minimum + step
        } else {
            minimum
        };
    }
    if let Some(minimum) = get("exclusiveMinimum") {
        low = low.max(minimum + step);
    }
    if let Some(maximum) = get("maximum") {
        high = if flag("exclusiveMaximum") {
            maximum - step
        } else {
            maximum
        };
    }
    if let Some(maximum) = get("exclusiveMaximum") {
        high = high.min(maximum - step);
    }
    let mut value = 0.0f64.clamp(low.min(high), high.max(low));
    value = (value / step).ceil() * step;
    if value > high {
        value = ((high / step).floor() * step).max(low);
    }
    if whole { value.round() } else { value }
}

/// `text` padded or cut to the schema's lengths.
fn fit_length(schema: &Value, text: &str) -> String {
    let least = schema
        .get("minLength")
        .and_then(Value::as_u64)
        .unwrap_or(0)
        .min(4_096) as usize;
    let most = schema
        .get("maxLength")
        .and_then(Value::as_u64)
        .map_or(usize::MAX, |n| n as usize);
    let mut text: String = text.chars().take(most).collect();
    while text.chars().count() < least {
        text.push('x');
    }
    text
}

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

/// `%XX` escapes decoded (a `$ref` to `PagedResultSet%5BTicket%5D`).
pub(crate) fn percent_decode(text: &str) -> String {
    percent_encoding::percent_decode_str(text)
        .decode_utf8_lossy()
        .into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percent_decoding_decodes_escapes_and_keeps_the_rest() {
        assert_eq!(
            percent_decode("PagedResultSet%5BTicket%5D"),
            "PagedResultSet[Ticket]"
        );
        assert_eq!(percent_decode("50%"), "50%");
        assert_eq!(percent_decode("%zz"), "%zz");
    }

    use super::validate::OVER_BUDGET;

    const BUDGET: u64 = 1_000_000;

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
            doc.validate(&schema, &value, BUDGET).is_empty(),
            "{:?}",
            doc.validate(&schema, &value, BUDGET)
        );
        let problems = doc.validate(
            &schema,
            &json!({"id": "seven", "state": "lost", "tags": [1]}),
            BUDGET,
        );
        let pointers: Vec<&str> = problems
            .iter()
            .map(|(pointer, _)| pointer.as_str())
            .collect();
        assert_eq!(pointers, ["/id", "/state", "/tags/0"], "{problems:?}");
        let problems = doc.validate(&schema, &json!({}), BUDGET);
        assert_eq!(problems.len(), 2, "{problems:?}");
    }

    /// A folder tree as `oneOf` [file, folder], both looking inside (the
    /// file fails on its missing size only after its children are
    /// checked): checking is exponential in the tree's depth. Depth 30 (a few
    /// hundred bytes, a billion schema visits) stops at the budget with
    /// one problem naming it; depth 6 is checked in full.
    #[test]
    fn a_recursive_one_of_is_checked_within_its_budget() {
        let root = json!({"definitions": {
            "Node": {"oneOf": [{"$ref": "#/definitions/File"}, {"$ref": "#/definitions/Folder"}]},
            "Folder": {"type": "object", "properties": {
                "children": {"type": "array", "items": {"$ref": "#/definitions/Node"}}}},
            "File": {"type": "object", "required": ["size"], "properties": {
                "size": {"type": "integer"},
                "children": {"type": "array", "items": {"$ref": "#/definitions/Node"}}}}
        }});
        let doc = Doc { root: &root };
        let tree = |depth: usize| {
            let mut node = json!({"children": []});
            for _ in 0..depth {
                node = json!({"children": [node]});
            }
            node
        };
        let schema = json!({"$ref": "#/definitions/Node"});
        let deep = tree(30);
        let bytes = deep.to_string().len();
        let problems = doc.validate(&schema, &deep, budget_for(bytes));
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert!(problems[0].1.starts_with(OVER_BUDGET), "{problems:?}");
        let shallow = tree(6);
        let problems = doc.validate(&schema, &shallow, budget_for(shallow.to_string().len()));
        assert!(problems.is_empty(), "{problems:?}");
    }

    #[test]
    fn the_keywords_armor_documents_use_are_checked() {
        let root = json!({});
        let doc = Doc { root: &root };
        let cases = [
            (
                json!({"type": "integer", "minimum": 1, "maximum": 10}),
                json!(0),
                json!(10),
            ),
            // `oneOf`: exactly one (2 fits both, 1 only the first).
            (
                json!({"oneOf": [{"type": "integer"}, {"minimum": 2}]}),
                json!(2),
                json!(1),
            ),
            (
                json!({"anyOf": [{"type": "integer"}, {"type": "boolean"}]}),
                json!("a"),
                json!(true),
            ),
            (
                json!({"type": "integer", "minimum": 1, "exclusiveMinimum": true}),
                json!(1),
                json!(2),
            ),
            (
                json!({"type": "number", "exclusiveMaximum": 5}),
                json!(5),
                json!(4.5),
            ),
            (
                json!({"type": "integer", "multipleOf": 5}),
                json!(7),
                json!(15),
            ),
            (
                json!({"type": "integer", "format": "int32"}),
                json!(2_147_483_648_i64),
                json!(-2_147_483_648_i64),
            ),
            (
                json!({"type": "string", "minLength": 2, "maxLength": 3}),
                json!("abcd"),
                json!("ab"),
            ),
            (
                json!({"type": "string", "pattern": "^[A-Z]{3}-[0-9]+$"}),
                json!("abc-1"),
                json!("ABC-12"),
            ),
            (
                json!({"type": "string", "format": "uuid"}),
                json!("not-a-uuid"),
                json!("6f1c2b3a-9d8e-4f70-8a6b-5c4d3e2f1a0b"),
            ),
            (
                json!({"type": "string", "format": "date-time"}),
                json!("2026-13-01T00:00:00Z"),
                json!("2026-12-03T12:30:00.5+01:00"),
            ),
            (
                json!({"type": "string", "format": "email"}),
                json!("no at sign"),
                json!("a@b.example"),
            ),
            (
                json!({"type": "array", "minItems": 1, "maxItems": 2}),
                json!([]),
                json!([1, 2]),
            ),
            (
                json!({"type": "array", "uniqueItems": true}),
                json!([{"a": 1}, {"a": 1}]),
                json!([1, 2]),
            ),
            (
                json!({"type": "object", "additionalProperties": false, "properties": {"a": {}}}),
                json!({"b": 1}),
                json!({"a": 1}),
            ),
            (
                json!({"type": "object", "additionalProperties": {"type": "integer"}}),
                json!({"b": "x"}),
                json!({"b": 1}),
            ),
            (
                json!({"type": "object", "maxProperties": 1}),
                json!({"a": 1, "b": 2}),
                json!({"a": 1}),
            ),
            (json!({"const": "fixed"}), json!("other"), json!("fixed")),
            (json!({"type": ["string", "null"]}), json!(1), json!(null)),
            (
                json!({"type": "string", "nullable": true}),
                json!(1),
                json!(null),
            ),
            (json!({"not": {"type": "string"}}), json!("s"), json!(1)),
        ];
        for (schema, wrong, right) in cases {
            assert!(
                !doc.validate(&schema, &wrong, BUDGET).is_empty(),
                "{schema} accepted {wrong}"
            );
            let problems = doc.validate(&schema, &right, BUDGET);
            assert!(
                problems.is_empty(),
                "{schema} refused {right}: {problems:?}"
            );
            // What the mock generates for it fits it too (a pattern is
            // matched by the document's example, when it gives one).
            if schema.get("not").is_none() && schema.get("pattern").is_none() {
                let generated = doc.generate(&schema);
                let problems = doc.validate(&schema, &generated, BUDGET);
                assert!(
                    problems.is_empty(),
                    "{schema} generated {generated}: {problems:?}"
                );
            }
        }
    }

    /// A schema a hundred properties wide at every level: generating from
    /// it stays within its budget rather than filling memory.
    #[test]
    fn a_very_wide_schema_generates_a_bounded_value() {
        let properties: serde_json::Map<String, Value> = (0..100)
            .map(|i| (format!("p{i}"), json!({"$ref": "#/definitions/Wide"})))
            .collect();
        let required: Vec<String> = properties.keys().cloned().collect();
        let root = json!({"definitions": {"Wide": {"type": "object", "properties": properties, "required": required}}});
        let doc = Doc { root: &root };
        let value = doc.generate(&json!({"$ref": "#/definitions/Wide"}));
        let size = value.to_string().len();
        assert!(size < 2_000_000, "{size} bytes");
    }

    #[test]
    fn a_schema_that_refers_to_itself_is_checked_without_end() {
        let root = json!({"definitions": {"Loop": {"oneOf": [{"$ref": "#/definitions/Loop"}]}}});
        let doc = Doc { root: &root };
        let _ = doc.validate(
            &json!({"$ref": "#/definitions/Loop"}),
            &json!({"a": 1}),
            BUDGET,
        );
        let mut deep = json!(1);
        for _ in 0..120 {
            deep = json!({"next": deep});
        }
        let chain = json!({"definitions": {"Node": {"type": "object", "properties": {"next": {"$ref": "#/definitions/Node"}}}}});
        let doc = Doc { root: &chain };
        let problems = doc.validate(&json!({"$ref": "#/definitions/Node"}), &deep, BUDGET);
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
