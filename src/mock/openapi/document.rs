//! Reading an operation's answers out of a document: the server's path,
//! the example or schema each response documents, and a check that every
//! `$ref` resolves within a bounded number of steps.

use serde_json::Value;

use super::model::Answer;
use super::schema::{Doc, RefProblem};

/// The path of a server URL (`https://host/containers` → `/containers`).
pub(super) fn server_path(url: &str) -> String {
    let rest = url.split_once("://").map_or(url, |(_, rest)| {
        rest.find('/').map_or("", |slash| &rest[slash..])
    });
    rest.trim_end_matches('/').to_owned()
}

/// Schema checks an example may cost at load (past it, it counts as
/// contradicting its schema).
const LOAD_BUDGET: u64 = 100_000;

/// The media type and its object of a `content` map: the first JSON one,
/// or the first.
fn media_entry(holder: &Value) -> Option<(&String, &Value)> {
    let content = holder.get("content")?.as_object()?;
    content
        .iter()
        .find(|(media, _)| media.contains("json"))
        .or_else(|| content.iter().next())
}

/// Swagger's media type for an operation's responses: of its `produces`
/// (or the document's), the first JSON one or the first.
fn produces<'a>(doc: &Doc<'a>, operation: &'a Value) -> Option<&'a str> {
    let listed = operation
        .get("produces")
        .or_else(|| doc.root.get("produces"))?
        .as_array()?;
    let types = listed.iter().filter_map(Value::as_str);
    types
        .clone()
        .find(|media| media.contains("json"))
        .or_else(|| types.clone().next())
}

pub(super) fn answers(
    doc: &Doc<'_>,
    operation: &Value,
    version: u8,
    path: &str,
    warnings: &mut Vec<(String, String)>,
) -> Vec<Answer> {
    let Some(responses) = operation.get("responses").and_then(Value::as_object) else {
        return Vec::new();
    };
    let mut answers = Vec::new();
    for (code, response) in responses {
        let status = match code.parse::<u16>() {
            Ok(status) => status,
            Err(_) if code == "default" => continue,
            Err(_) => continue,
        };
        let response = doc.deref(response);
        let (mut examples, schema, media_type) = if version == 3 {
            let entry = media_entry(response);
            let media = entry.map(|(_, media)| media);
            let mut examples = Vec::new();
            if let Some(example) = media.and_then(|media| media.get("example")) {
                examples.push(("default".to_owned(), example.clone()));
            }
            if let Some(named) = media
                .and_then(|media| media.get("examples"))
                .and_then(Value::as_object)
            {
                for (name, example) in named {
                    let example = doc.deref(example);
                    if let Some(value) = example.get("value") {
                        examples.push((name.clone(), value.clone()));
                    }
                }
            }
            (
                examples,
                media.and_then(|media| media.get("schema")).cloned(),
                entry.map(|(media_type, _)| media_type.clone()),
            )
        } else {
            let mut examples = Vec::new();
            if let Some(named) = response.get("examples").and_then(Value::as_object) {
                for (media, example) in named {
                    if media.contains("json") {
                        examples.push(("default".to_owned(), example.clone()));
                    }
                }
            }
            let schema = response.get("schema").cloned();
            // What the operation produces, whether or not this answer has
            // a schema; JSON for a schema where nothing is listed.
            let media_type = produces(doc, operation)
                .or(schema.as_ref().map(|_| "application/json"))
                .map(str::to_owned);
            (examples, schema, media_type)
        };
        if let Some(schema) = &schema {
            for (name, example) in &examples {
                if !doc.validate(schema, example, LOAD_BUDGET).is_empty() {
                    warnings.push((
                        "examples contradict their schema (the example is served)".to_owned(),
                        format!("{path} {status} example {name:?}"),
                    ));
                }
            }
        }
        examples.dedup_by(|a, b| a.0 == b.0);
        answers.push(Answer {
            status,
            examples,
            schema,
            media: media_type,
        });
    }
    answers.sort_by_key(|answer| answer.status);
    answers
}

/// Every `$ref` in the document that does not resolve, as a warning.
pub(super) fn check_refs(
    value: &Value,
    at: &str,
    doc: &Doc<'_>,
    warnings: &mut Vec<(String, String)>,
) {
    match value {
        Value::Object(fields) => {
            if let Some(reference) = fields.get("$ref").and_then(Value::as_str) {
                match doc.resolve(reference) {
                    Ok(_) => {}
                    Err(RefProblem::Empty) => warnings.push((
                        "empty $ref (treated as any value)".to_owned(),
                        at.to_owned(),
                    )),
                    Err(RefProblem::Missing(name)) => warnings.push((
                        "$ref to a definition that does not exist (treated as any value)"
                            .to_owned(),
                        name,
                    )),
                    Err(RefProblem::External(name)) => warnings.push((
                        "$ref to another document (not followed; treated as any value)".to_owned(),
                        name,
                    )),
                }
            }
            for (name, field) in fields {
                check_refs(field, &format!("{at}/{name}"), doc, warnings);
            }
        }
        Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                check_refs(item, &format!("{at}/{i}"), doc, warnings);
            }
        }
        _ => {}
    }
}
