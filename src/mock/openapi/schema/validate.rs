//! Values checked against a schema, within a work budget: the keywords
//! Armor's documents use (types and type lists, `nullable`, `enum`,
//! `const`, numeric bounds inclusive and exclusive, `multipleOf`, string
//! lengths, `pattern` and formats, array sizes, `uniqueItems`, `required`,
//! `additionalProperties`, property counts, `allOf`/`oneOf`/`anyOf`/`not`).
//! A `oneOf` over recursive schemas can take time exponential in a value's
//! depth: every schema visited costs a step, and past the budget the check
//! stops with one problem naming it.

use std::collections::HashSet;

use serde_json::Value;

use super::{Doc, schema_types};

/// How deep a value is checked: as deep as serde_json parses (128).
const CHECK_DEPTH: usize = 130;

/// Schema checks a value of `bytes` bytes may cost: a few per byte, and a
/// floor for small values under wide schemas.
pub(crate) fn budget_for(bytes: usize) -> u64 {
    10_000 + 16 * bytes as u64
}

/// The problem reported when the budget runs out.
pub(crate) const OVER_BUDGET: &str = "too costly to check against its schema";

struct Check<'d, 'a> {
    doc: &'d Doc<'a>,
    steps: u64,
    budget: u64,
}

impl Check<'_, '_> {
    /// One more schema visited; `false` once over the budget.
    fn step(&mut self) -> bool {
        self.steps += 1;
        self.steps <= self.budget
    }

    fn over(&self) -> bool {
        self.steps > self.budget
    }
}

impl Doc<'_> {
    /// The problems of `value` against `schema`, each as (JSON pointer,
    /// message); none when it fits. At most `budget` schema checks: past
    /// it, one problem saying so ([`OVER_BUDGET`]).
    pub(crate) fn validate(
        &self,
        schema: &Value,
        value: &Value,
        budget: u64,
    ) -> Vec<(String, String)> {
        let mut check = Check {
            doc: self,
            steps: 0,
            budget,
        };
        let mut problems = Vec::new();
        check.at(schema, value, "", 0, &mut problems);
        if check.over() {
            return vec![(
                String::new(),
                format!("{OVER_BUDGET} (over {budget} schema checks)"),
            )];
        }
        problems
    }
}

impl Check<'_, '_> {
    fn at(
        &mut self,
        schema: &Value,
        value: &Value,
        pointer: &str,
        depth: usize,
        problems: &mut Vec<(String, String)>,
    ) {
        if depth > CHECK_DEPTH || !self.step() {
            return;
        }
        let schema = self.doc.deref(schema);
        if value.is_null() && schema.get("nullable").and_then(Value::as_bool) == Some(true) {
            return;
        }
        if let Some(parts) = schema.get("allOf").and_then(Value::as_array) {
            for part in parts {
                self.at(part, value, pointer, depth + 1, problems);
            }
        }
        let mut fits = |option: &Value| {
            let mut found = Vec::new();
            self.at(option, value, pointer, depth + 1, &mut found);
            found.is_empty() && !self.over()
        };
        if let Some(options) = schema.get("anyOf").and_then(Value::as_array)
            && !options.is_empty()
            && !options.iter().any(&mut fits)
        {
            problems.push((pointer.to_owned(), "matches none of anyOf".to_owned()));
        }
        if let Some(options) = schema.get("oneOf").and_then(Value::as_array)
            && !options.is_empty()
        {
            // Exactly one: the second match ends the search.
            let matched = options.iter().filter(|option| fits(option)).take(2).count();
            match matched {
                0 => problems.push((pointer.to_owned(), "matches none of oneOf".to_owned())),
                1 => {}
                _ => problems.push((
                    pointer.to_owned(),
                    "matches more than one of oneOf".to_owned(),
                )),
            }
        }
        if let Some(not) = schema.get("not") {
            let mut found = Vec::new();
            self.at(not, value, pointer, depth + 1, &mut found);
            if found.is_empty() && !self.over() {
                problems.push((
                    pointer.to_owned(),
                    "matches a schema it must not".to_owned(),
                ));
            }
        }
        if self.over() {
            return;
        }
        if let Some(expected) = schema.get("const")
            && expected != value
        {
            problems.push((pointer.to_owned(), format!("{value} is not {expected}")));
            return;
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
        if let Some(expected) = schema_types(schema) {
            let actual = value_type(value);
            let fits = expected.iter().any(|expected| {
                expected == actual || (expected == "number" && actual == "integer")
            });
            if !fits {
                problems.push((
                    pointer.to_owned(),
                    format!("expected {}, got {actual}", expected.join(" or ")),
                ));
                return;
            }
        }
        let mut problem = |message: String| problems.push((pointer.to_owned(), message));
        match value {
            Value::Number(number) => number_problems(schema, number, &mut problem),
            Value::String(text) => string_problems(schema, text, &mut problem),
            _ => {}
        }
        match value {
            Value::Object(fields) => self.object(schema, fields, pointer, depth, problems),
            Value::Array(items) => self.array(schema, items, pointer, depth, problems),
            _ => {}
        }
    }

    fn object(
        &mut self,
        schema: &Value,
        fields: &serde_json::Map<String, Value>,
        pointer: &str,
        depth: usize,
        problems: &mut Vec<(String, String)>,
    ) {
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
        let count = fields.len() as u64;
        if let Some(least) = schema.get("minProperties").and_then(Value::as_u64)
            && count < least
        {
            problems.push((pointer.to_owned(), format!("fewer than {least} properties")));
        }
        if let Some(most) = schema.get("maxProperties").and_then(Value::as_u64)
            && count > most
        {
            problems.push((pointer.to_owned(), format!("more than {most} properties")));
        }
        let properties = schema.get("properties").and_then(Value::as_object);
        let additional = schema.get("additionalProperties");
        for (name, field) in fields {
            let at = format!("{pointer}/{}", escape(name));
            match (properties.and_then(|p| p.get(name)), additional) {
                (Some(property), _) => self.at(property, field, &at, depth + 1, problems),
                (None, Some(Value::Bool(false))) => {
                    problems.push((at, "property not allowed".to_owned()));
                }
                (None, Some(other @ Value::Object(_))) => {
                    self.at(other, field, &at, depth + 1, problems);
                }
                (None, _) => {}
            }
            if self.over() {
                return;
            }
        }
    }

    fn array(
        &mut self,
        schema: &Value,
        items: &[Value],
        pointer: &str,
        depth: usize,
        problems: &mut Vec<(String, String)>,
    ) {
        let count = items.len() as u64;
        if let Some(least) = schema.get("minItems").and_then(Value::as_u64)
            && count < least
        {
            problems.push((pointer.to_owned(), format!("fewer than {least} items")));
        }
        if let Some(most) = schema.get("maxItems").and_then(Value::as_u64)
            && count > most
        {
            problems.push((pointer.to_owned(), format!("more than {most} items")));
        }
        if schema.get("uniqueItems").and_then(Value::as_bool) == Some(true) {
            // Equal values print alike (serde_json keeps a map's keys
            // sorted): one pass, linear in the array's size.
            let mut seen = HashSet::new();
            if let Some(i) = items.iter().position(|item| !seen.insert(canonical(item))) {
                problems.push((
                    format!("{pointer}/{i}"),
                    "repeats an earlier item".to_owned(),
                ));
            }
        }
        if let Some(item_schema) = schema.get("items") {
            for (i, item) in items.iter().enumerate() {
                let at = format!("{pointer}/{i}");
                self.at(item_schema, item, &at, depth + 1, problems);
                if self.over() {
                    return;
                }
            }
        }
    }
}

fn number_problems(schema: &Value, number: &serde_json::Number, problem: &mut impl FnMut(String)) {
    let Some(value) = number.as_f64() else {
        return;
    };
    let bound = |name: &str| schema.get(name).and_then(Value::as_f64);
    // OpenAPI 3.0 and Swagger: `exclusiveMinimum: true` beside `minimum`;
    // 3.1 (JSON Schema 2020-12): `exclusiveMinimum: 5`.
    let flag = |name: &str| schema.get(name).and_then(Value::as_bool) == Some(true);
    if let Some(minimum) = bound("minimum") {
        if flag("exclusiveMinimum") && value <= minimum {
            problem(format!("{value} is not above {minimum}"));
        } else if value < minimum {
            problem(format!("{value} is below the minimum {minimum}"));
        }
    }
    if let Some(maximum) = bound("maximum") {
        if flag("exclusiveMaximum") && value >= maximum {
            problem(format!("{value} is not below {maximum}"));
        } else if value > maximum {
            problem(format!("{value} is above the maximum {maximum}"));
        }
    }
    if let Some(minimum) = bound("exclusiveMinimum")
        && value <= minimum
    {
        problem(format!("{value} is not above {minimum}"));
    }
    if let Some(maximum) = bound("exclusiveMaximum")
        && value >= maximum
    {
        problem(format!("{value} is not below {maximum}"));
    }
    if let Some(step) = bound("multipleOf").filter(|step| *step > 0.0) {
        let ratio = value / step;
        if (ratio - ratio.round()).abs() > 1e-9 * ratio.abs().max(1.0) {
            problem(format!("{value} is not a multiple of {step}"));
        }
    }
    let range = match schema.get("format").and_then(Value::as_str) {
        Some("int32") => Some((f64::from(i32::MIN), f64::from(i32::MAX))),
        Some("int64") => Some((i64::MIN as f64, i64::MAX as f64)),
        _ => None,
    };
    if let Some((low, high)) = range {
        let whole = number.is_i64() || number.is_u64() || value.fract() == 0.0;
        let outside = match (number.as_i64(), number.as_u64()) {
            (Some(n), _) => (n as f64) < low || (n as f64) > high,
            (None, Some(_)) => true,
            _ => value < low || value > high,
        };
        if !whole || outside {
            let format = schema["format"].as_str().unwrap_or_default();
            problem(format!("{value} is not an {format}"));
        }
    }
}

fn string_problems(schema: &Value, text: &str, problem: &mut impl FnMut(String)) {
    let length = text.chars().count() as u64;
    if let Some(least) = schema.get("minLength").and_then(Value::as_u64)
        && length < least
    {
        problem(format!("shorter than {least} characters"));
    }
    if let Some(most) = schema.get("maxLength").and_then(Value::as_u64)
        && length > most
    {
        problem(format!("longer than {most} characters"));
    }
    if let Some(pattern) = schema.get("pattern").and_then(Value::as_str)
        && super::pattern::matches(pattern, text) == Some(false)
    {
        problem(format!("does not match the pattern {pattern}"));
    }
    // A format is checked on what is there: an empty string is the
    // absence of a value. (schemathesis 4.32 generates `""` as a valid
    // `email`, and calls `""` an invalid `date-time` or `uuid`: the two
    // cannot both be met; refusing valid requests is the worse.)
    let format = schema
        .get("format")
        .and_then(Value::as_str)
        .filter(|_| !text.is_empty());
    let fits = match format {
        Some("date-time") => is_date_time(text),
        Some("date") => is_date(text),
        Some("uuid") => is_uuid(text),
        Some("email") => is_email(text),
        _ => true,
    };
    if !fits {
        problem(format!("not a {}", format.unwrap_or_default()));
    }
}

/// `2026-12-03` (RFC 3339 full-date).
fn is_date(text: &str) -> bool {
    let b = text.as_bytes();
    if b.len() != 10 || b[4] != b'-' || b[7] != b'-' {
        return false;
    }
    let digits = |range: std::ops::Range<usize>| {
        b[range.clone()].iter().all(u8::is_ascii_digit).then(|| {
            b[range]
                .iter()
                .fold(0u32, |n, d| n * 10 + u32::from(d - b'0'))
        })
    };
    let (Some(_), Some(month), Some(day)) = (digits(0..4), digits(5..7), digits(8..10)) else {
        return false;
    };
    (1..=12).contains(&month) && (1..=31).contains(&day)
}

/// `2026-12-03T12:30:00Z`, `…T12:30:00.123+01:00` (RFC 3339 date-time).
fn is_date_time(text: &str) -> bool {
    let Some((date, time)) = text.split_once(['T', 't']) else {
        return false;
    };
    if !is_date(date) {
        return false;
    }
    let b = time.as_bytes();
    if b.len() < 9 || b[2] != b':' || b[5] != b':' {
        return false;
    }
    let two = |i: usize| {
        b[i..i + 2]
            .iter()
            .all(u8::is_ascii_digit)
            .then(|| u32::from(b[i] - b'0') * 10 + u32::from(b[i + 1] - b'0'))
    };
    let (Some(hour), Some(minute), Some(second)) = (two(0), two(3), two(6)) else {
        return false;
    };
    if hour > 23 || minute > 59 || second > 60 {
        return false;
    }
    let mut rest = &time[8..];
    if let Some(fraction) = rest.strip_prefix('.') {
        let digits = fraction.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return false;
        }
        rest = &fraction[digits..];
    }
    match rest.as_bytes() {
        [b'Z' | b'z'] => true,
        [b'+' | b'-', h1, h2, b':', m1, m2] => {
            [h1, h2, m1, m2].iter().all(|d| d.is_ascii_digit())
                && (h1 - b'0') * 10 + (h2 - b'0') <= 23
                && (m1 - b'0') * 10 + (m2 - b'0') <= 59
        }
        _ => false,
    }
}

/// `6f1c2b3a-9d8e-4f70-8a6b-5c4d3e2f1a0b`.
fn is_uuid(text: &str) -> bool {
    let b = text.as_bytes();
    b.len() == 36
        && b.iter().enumerate().all(|(i, c)| match i {
            8 | 13 | 18 | 23 => *c == b'-',
            _ => c.is_ascii_hexdigit(),
        })
}

/// `local@domain`: one `@`, neither side empty, no spaces, a dot-free or
/// dotted domain without empty labels.
fn is_email(text: &str) -> bool {
    let Some((local, domain)) = text.rsplit_once('@') else {
        return false;
    };
    !local.is_empty()
        && !domain.is_empty()
        && !text.chars().any(|c| c.is_whitespace() || c.is_control())
        && !local.contains('@')
        && domain.split('.').all(|label| !label.is_empty())
}

/// A value printed so that equal values print alike.
fn canonical(value: &Value) -> String {
    value.to_string()
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
