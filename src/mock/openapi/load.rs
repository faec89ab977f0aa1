//! Loading an OpenAPI 3 or Swagger 2 document into [`Operations`]: its
//! paths and parameters, its bodies and answers, and what cannot be served
//! (warned about, never guessed).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde_json::{Value, json};

use super::document::{answers, check_refs, server_path};
use super::model::{Body, Operation, Operations, Param, Place, Segment};
use super::schema::Doc;
use crate::mock::error::FileError;

/// The HTTP methods an OpenAPI path item may hold.
const METHODS: [&str; 9] = [
    "get", "put", "post", "delete", "options", "head", "patch", "trace", "query",
];

/// Whether a file that does not load stops a directory's loading.
enum Kind {
    /// Not an OpenAPI or Swagger document (or one with nothing to serve):
    /// skipped in a directory, with a warning.
    NotADocument,
    /// A document that cannot be served, or a file that cannot be read.
    Unservable,
}

impl Operations {
    /// Loads `path`: a `*.json`/`*.yaml`/`*.yml` file, or a directory of
    /// them (in name order). In a directory, hidden files are skipped, and
    /// so is a file that is not an OpenAPI or Swagger document (a report, a
    /// configuration), each with a warning; one that is, but cannot be
    /// served, is an error as when named alone.
    ///
    /// # Errors
    /// A file that is not JSON or YAML, or is neither OpenAPI 3.x nor
    /// Swagger 2.0 (named in the error); a directory with no document.
    /// Flaws in a document are warnings ([`warnings`](Self::warnings)),
    /// never errors.
    pub fn load(&mut self, path: impl AsRef<Path>) -> Result<(), FileError> {
        let path = path.as_ref();
        if !path.is_dir() {
            return self.load_file(path).map_err(|(error, _)| error);
        }
        let mut files: Vec<PathBuf> = std::fs::read_dir(path)
            .map_err(|error| FileError::caused(path, "cannot read the directory", error))?
            .filter_map(Result::ok)
            .map(|entry| entry.path())
            .filter(|file| {
                file.extension()
                    .and_then(|ext| ext.to_str())
                    .is_some_and(|ext| matches!(ext, "json" | "yaml" | "yml"))
            })
            .collect();
        files.sort();
        let mut loaded = 0;
        for file in files {
            let hidden = file
                .file_name()
                .and_then(|name| name.to_str())
                .is_some_and(|name| name.starts_with('.'));
            if hidden {
                self.warn("hidden files skipped", file.display().to_string());
                continue;
            }
            match self.load_file(&file) {
                Ok(()) => loaded += 1,
                Err((error, Kind::NotADocument)) => {
                    self.warn(
                        "files that are not OpenAPI or Swagger documents skipped",
                        error.describe(),
                    );
                }
                Err((error, Kind::Unservable)) => return Err(error),
            }
        }
        if loaded == 0 {
            return Err(FileError::new(
                path,
                "no OpenAPI or Swagger document in this directory",
            ));
        }
        Ok(())
    }

    fn warn(&mut self, kind: &str, example: String) {
        let entry = self.warnings.entry(kind.to_owned()).or_insert((0, example));
        entry.0 += 1;
    }

    /// Loads one file; an error says whether it is no document at all
    /// (skipped in a directory) or a document that cannot be served.
    fn load_file(&mut self, file: &Path) -> Result<(), (FileError, Kind)> {
        let not_a_document = |problem: String| (FileError::new(file, problem), Kind::NotADocument);
        let unservable = |problem: String| (FileError::new(file, problem), Kind::Unservable);
        let text = std::fs::read_to_string(file).map_err(|error| {
            (
                FileError::caused(file, "cannot read", error),
                Kind::Unservable,
            )
        })?;
        if text.trim().is_empty() {
            return Err(not_a_document("the file is empty".into()));
        }
        let json_looking = text.trim_start().starts_with(['{', '[']);
        let document: Value = match serde_json::from_str(&text) {
            Ok(value) => value,
            // JSON that does not parse is not tried as YAML (a deep one
            // would take long): its JSON error is the answer.
            Err(json_error) if json_looking => {
                let error = FileError::caused(file, "not JSON", json_error);
                return Err((error, Kind::NotADocument));
            }
            Err(json_error) => match super::yaml::from_str(&text) {
                Ok(yaml) => yaml,
                Err(yaml_error) => {
                    return Err(not_a_document(format!(
                        "neither JSON ({json_error}) nor YAML ({yaml_error})"
                    )));
                }
            },
        };
        let source = file.file_name().map_or_else(
            || file.display().to_string(),
            |name| name.to_string_lossy().into_owned(),
        );
        let version = if let Some(version) = document.get("openapi").and_then(Value::as_str) {
            if !version.starts_with('3') {
                return Err(unservable(format!(
                    "OpenAPI {version} is not supported (3.x)"
                )));
            }
            3
        } else if document.get("swagger").and_then(Value::as_str) == Some("2.0") {
            2
        } else {
            return Err(not_a_document(
                "neither an OpenAPI 3.x document (`openapi: 3...`) nor a Swagger 2.0 one \
                 (`swagger: \"2.0\"`)"
                    .into(),
            ));
        };
        let Some(paths) = document.get("paths").and_then(Value::as_object) else {
            return Err(not_a_document("no `paths`".into()));
        };
        let index = self.documents.len();
        let base = if version == 3 {
            document
                .pointer("/servers/0/url")
                .and_then(Value::as_str)
                .map(server_path)
                .unwrap_or_default()
        } else {
            document
                .get("basePath")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .trim_end_matches('/')
                .to_owned()
        };
        let doc = Doc { root: &document };
        let mut found = Vec::new();
        let mut warnings = Vec::new();
        check_refs(&document, "", &doc, &mut warnings);
        for (template, item) in paths {
            let item = doc.deref(item);
            let shared = item.get("parameters").and_then(Value::as_array);
            for method in METHODS {
                let Some(operation) = item.get(method) else {
                    continue;
                };
                let full = format!("{base}{template}");
                let mut params = Vec::new();
                let mut body = None;
                // Swagger 2.0: the media types the operation consumes, and
                // its form fields (`in: formData`) as one object.
                let consumes: Vec<String> = operation
                    .get("consumes")
                    .or_else(|| document.get("consumes"))
                    .and_then(Value::as_array)
                    .map(|types| {
                        types
                            .iter()
                            .filter_map(Value::as_str)
                            .map(str::to_ascii_lowercase)
                            .collect()
                    })
                    .unwrap_or_default();
                let mut form = serde_json::Map::new();
                let mut form_required = Vec::new();
                let mut form_has_file = false;
                for raw in shared.into_iter().flatten().chain(
                    operation
                        .get("parameters")
                        .and_then(Value::as_array)
                        .into_iter()
                        .flatten(),
                ) {
                    let param = doc.deref(raw);
                    let name = param
                        .get("name")
                        .and_then(Value::as_str)
                        .unwrap_or_default();
                    let required = param
                        .get("required")
                        .and_then(Value::as_bool)
                        .unwrap_or(false);
                    let place = match param.get("in").and_then(Value::as_str) {
                        Some("path") => Place::Path,
                        Some("query") => Place::Query,
                        Some("header") => Place::Header,
                        Some("cookie") => Place::Cookie,
                        Some("body") => {
                            let schema = param.get("schema").cloned().unwrap_or(Value::Null);
                            let types = if consumes.is_empty() {
                                vec!["application/json".to_owned()]
                            } else {
                                consumes.clone()
                            };
                            body = Some(Body {
                                required,
                                media: types.into_iter().map(|t| (t, schema.clone())).collect(),
                            });
                            continue;
                        }
                        Some("formData") => {
                            form_has_file |=
                                param.get("type").and_then(Value::as_str) == Some("file");
                            form.insert(name.to_owned(), swagger_schema(param));
                            if required {
                                form_required.push(json!(name));
                            }
                            continue;
                        }
                        _ => continue,
                    };
                    // Swagger 2.0 puts the type on the parameter itself.
                    let schema = param
                        .get("schema")
                        .cloned()
                        .unwrap_or_else(|| swagger_schema(param));
                    let joined_by = query_separator(param, version);
                    params.retain(|existing: &Param| {
                        !(existing.name == name && existing.place == place)
                    });
                    params.push(Param {
                        name: name.to_owned(),
                        place,
                        required: required || place == Place::Path,
                        schema,
                        joined_by,
                    });
                }
                if !form.is_empty() && body.is_none() {
                    let schema =
                        json!({"type": "object", "properties": form, "required": form_required});
                    let mut types: Vec<String> = consumes
                        .iter()
                        .filter(|t| t.contains("form"))
                        .cloned()
                        .collect();
                    if types.is_empty() {
                        types.push(if form_has_file {
                            "multipart/form-data".to_owned()
                        } else {
                            "application/x-www-form-urlencoded".to_owned()
                        });
                    }
                    body = Some(Body {
                        required: !form_required.is_empty(),
                        media: types.into_iter().map(|t| (t, schema.clone())).collect(),
                    });
                }
                if let Some(request_body) = operation.get("requestBody").map(|b| doc.deref(b)) {
                    let required = request_body
                        .get("required")
                        .and_then(Value::as_bool)
                        .unwrap_or(false);
                    if let Some(content) = request_body.get("content").and_then(Value::as_object)
                        && !content.is_empty()
                    {
                        body = Some(Body {
                            required,
                            media: content
                                .iter()
                                .map(|(media, holder)| {
                                    let schema = doc.deref(holder).get("schema").cloned();
                                    (media.to_ascii_lowercase(), schema.unwrap_or(Value::Null))
                                })
                                .collect(),
                        });
                    }
                }
                let answers = answers(&doc, operation, version, &full, &mut warnings);
                if let Some(schemes) = operation
                    .get("security")
                    .or_else(|| document.get("security"))
                    .and_then(Value::as_array)
                {
                    let names: Vec<&str> = schemes
                        .iter()
                        .filter_map(Value::as_object)
                        .flat_map(|scheme| scheme.keys().map(String::as_str))
                        .filter(|name| !name.to_ascii_lowercase().contains("psk"))
                        .collect();
                    if !names.is_empty() {
                        warnings.push((
                            "operations declare security schemes other than ARMOR-PSK; served behind ARMOR-PSK".to_owned(),
                            format!("{} {full}: {}", method.to_uppercase(), names.join(", ")),
                        ));
                    }
                }
                found.push(Operation {
                    method: method.to_uppercase(),
                    segments: segments(&full),
                    path: full,
                    operation_id: operation
                        .get("operationId")
                        .and_then(Value::as_str)
                        .map(str::to_owned),
                    source: source.clone(),
                    document: index,
                    params,
                    body,
                    answers,
                });
            }
        }
        // The same position named differently in two templates.
        for (i, a) in found.iter().enumerate() {
            for b in &found[i + 1..] {
                if a.segments.len() == b.segments.len() && a.path != b.path {
                    let clash = a.segments.iter().zip(&b.segments).all(|pair| match pair {
                        (Segment::Literal(x), Segment::Literal(y)) => x == y,
                        (Segment::Param(_), Segment::Param(_)) => true,
                        _ => false,
                    });
                    if clash {
                        warnings.push((
                            "one path position is named differently in two templates (served by the first)".to_owned(),
                            format!("{} and {}", a.path, b.path),
                        ));
                    }
                }
            }
        }
        for (kind, example) in warnings {
            let entry = self.warnings.entry(kind).or_insert((0, example));
            entry.0 += 1;
        }
        self.documents.push(Arc::new(document));
        self.operations.extend(found);
        Ok(())
    }
}

fn segments(path: &str) -> Vec<Segment> {
    path.split('/')
        .filter(|segment| !segment.is_empty())
        .map(
            |segment| match segment.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
                Some(name) => Segment::Param(name.to_owned()),
                None => Segment::Literal(segment.to_owned()),
            },
        )
        .collect()
}

/// A Swagger 2.0 parameter's schema, from the fields it carries itself.
fn swagger_schema(param: &Value) -> Value {
    const FIELDS: [&str; 16] = [
        "type",
        "format",
        "enum",
        "items",
        "minimum",
        "maximum",
        "exclusiveMinimum",
        "exclusiveMaximum",
        "multipleOf",
        "minLength",
        "maxLength",
        "pattern",
        "minItems",
        "maxItems",
        "uniqueItems",
        "default",
    ];
    let mut schema = serde_json::Map::new();
    for field in FIELDS {
        if let Some(value) = param.get(field) {
            schema.insert(field.to_owned(), value.clone());
        }
    }
    // A file field is a string on the wire.
    if schema.get("type").and_then(Value::as_str) == Some("file") {
        schema.insert("type".to_owned(), json!("string"));
    }
    Value::Object(schema)
}

/// How an array query parameter is written: `None` for the name repeated
/// (OpenAPI's `form` with `explode`, its default; Swagger's `multi`), or
/// the separator its items are joined by.
fn query_separator(param: &Value, version: u8) -> Option<char> {
    if version == 2 {
        return match param.get("collectionFormat").and_then(Value::as_str) {
            Some("multi") => None,
            Some("ssv") => Some(' '),
            Some("tsv") => Some('\t'),
            Some("pipes") => Some('|'),
            _ => Some(','),
        };
    }
    let style = param.get("style").and_then(Value::as_str).unwrap_or("form");
    let explode = param
        .get("explode")
        .and_then(Value::as_bool)
        .unwrap_or(style == "form");
    match (style, explode) {
        (_, true) => None,
        ("spaceDelimited", false) => Some(' '),
        ("pipeDelimited", false) => Some('|'),
        _ => Some(','),
    }
}
