use serde_json::Value;

use super::{Doc, schema_types};

/// How deep a value is checked: as deep as serde_json parses (128).
const CHECK_DEPTH: usize = 130;

impl Doc<'_> {
    /// The problems of `value` against `schema`, each as (JSON pointer,
    /// message); none when it fits.
    pub(crate) fn validate(&self, schema: &Value, value: &Value) -> Vec<(String, String)> {
        let mut problems = Vec::new();
        self.validate_at(schema, value, "", 0, &mut problems);
        problems
    }

    fn validate_at(
        &self,
        schema: &Value,
        value: &Value,
        pointer: &str,
        depth: usize,
        problems: &mut Vec<(String, String)>,
    ) {
        if depth > CHECK_DEPTH {
            return;
        }
        let schema = self.deref(schema);
        if value.is_null() && schema.get("nullable").and_then(Value::as_bool) == Some(true) {
            return;
        }
        if let Some(parts) = schema.get("allOf").and_then(Value::as_array) {
            for part in parts {
                self.validate_at(part, value, pointer, depth + 1, problems);
            }
        }
        for choice in ["oneOf", "anyOf"] {
            if let Some(options) = schema.get(choice).and_then(Value::as_array) {
                let fits = options.iter().any(|option| {
                    let mut found = Vec::new();
                    self.validate_at(option, value, pointer, depth + 1, &mut found);
                    found.is_empty()
                });
                if !fits && !options.is_empty() {
                    problems.push((pointer.to_owned(), format!("matches none of {choice}")));
                }
            }
        }
        if let Some(values) = schema.get("enum").and_then(Value::as_array)
            && !values.contains(value)
        {
            let allowed: Vec<String> = values.iter().map(Value::to_string).collect();
            problems.push((
                pointer.to_owned(),
                format!("{value} is not one of {}", allowed.join(", ")),
            ));
            return;
        }
        let Some(expected) = schema_types(schema) else {
            return;
        };
        let actual = value_type(value);
        let fits = expected
            .iter()
            .any(|expected| expected == actual || (expected == "number" && actual == "integer"));
        if !fits {
            problems.push((
                pointer.to_owned(),
                format!("expected {}, got {actual}", expected.join(" or ")),
            ));
            return;
        }
        match value {
            Value::Object(fields) => {
                if let Some(required) = schema.get("required").and_then(Value::as_array) {
                    for name in required.iter().filter_map(Value::as_str) {
                        if !fields.contains_key(name) {
                            problems.push((
                                format!("{pointer}/{}", escape(name)),
                                "required property missing".to_owned(),
                            ));
                        }
                    }
                }
                if let Some(properties) = schema.get("properties").and_then(Value::as_object) {
                    for (name, field) in fields {
                        if let Some(property) = properties.get(name) {
                            let at = format!("{pointer}/{}", escape(name));
                            self.validate_at(property, field, &at, depth + 1, problems);
                        }
                    }
                }
            }
            Value::Array(items) => {
                if let Some(item_schema) = schema.get("items") {
                    for (i, item) in items.iter().enumerate() {
                        let at = format!("{pointer}/{i}");
                        self.validate_at(item_schema, item, &at, depth + 1, problems);
                    }
                }
            }
            _ => {}
        }
    }
}

fn value_type(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(number) if number.is_i64() || number.is_u64() => "integer",
        Value::Number(number) if number.as_f64().is_some_and(|f| f.fract() == 0.0) => "integer",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// A JSON pointer segment.
fn escape(name: &str) -> String {
    name.replace('~', "~0").replace('/', "~1")
}
