use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde_json::{Value, json};

use super::document::{answers, check_refs, json_media, server_path};
use super::model::{Operation, Operations, Param, Place, Segment};
use super::schema::Doc;

/// The HTTP methods an OpenAPI path item may hold.
const METHODS: [&str; 9] = [
    "get", "put", "post", "delete", "options", "head", "patch", "trace", "query",
];

/// A document that cannot be served at all: the file and why.
#[derive(Debug, thiserror::Error)]
#[error("{file}: {problem}")]
pub struct OpenApiError {
    file: String,
    problem: String,
}

fn refuse(file: &Path, problem: impl Into<String>) -> OpenApiError {
    OpenApiError {
        file: file.display().to_string(),
        problem: problem.into(),
    }
}

impl Operations {
    /// Loads `path`: a `*.json`/`*.yaml`/`*.yml` file, or a directory of
    /// them (in name order).
    ///
    /// # Errors
    /// A file that is not JSON or YAML, or is neither OpenAPI 3.x nor
    /// Swagger 2.0 (named in the error). Flaws in a document are warnings
    /// ([`warnings`](Self::warnings)), never errors.
    pub fn load(&mut self, path: impl AsRef<Path>) -> Result<(), OpenApiError> {
        let path = path.as_ref();
        let files: Vec<PathBuf> = if path.is_dir() {
            let mut files: Vec<PathBuf> = std::fs::read_dir(path)
                .map_err(|error| refuse(path, error.to_string()))?
                .filter_map(Result::ok)
                .map(|entry| entry.path())
                .filter(|file| {
                    file.extension()
                        .and_then(|ext| ext.to_str())
                        .is_some_and(|ext| matches!(ext, "json" | "yaml" | "yml"))
                })
                .collect();
            files.sort();
            files
        } else {
            vec![path.to_path_buf()]
        };
        for file in files {
            self.load_file(&file)?;
        }
        Ok(())
    }

    fn load_file(&mut self, file: &Path) -> Result<(), OpenApiError> {
        let text =
            std::fs::read_to_string(file).map_err(|error| refuse(file, error.to_string()))?;
        if text.trim().is_empty() {
            return Err(refuse(file, "the file is empty"));
        }
        let json_looking = text.trim_start().starts_with(['{', '[']);
        let document: Value = match serde_json::from_str(&text) {
            Ok(value) => value,
            // JSON that does not parse is not tried as YAML (a deep one
            // would take long): its JSON error is the answer.
            Err(json_error) if json_looking => {
                return Err(refuse(file, format!("not JSON: {json_error}")));
            }
            Err(json_error) => match serde_norway::from_str::<serde_norway::Value>(&text) {
                Ok(yaml) => yaml_to_json(yaml),
                Err(yaml_error) => {
                    return Err(refuse(
                        file,
                        format!("neither JSON ({json_error}) nor YAML ({yaml_error})"),
                    ));
                }
            },
        };
        let source = file.file_name().map_or_else(
            || file.display().to_string(),
            |name| name.to_string_lossy().into_owned(),
        );
        let version = if let Some(version) = document.get("openapi").and_then(Value::as_str) {
            if !version.starts_with('3') {
                return Err(refuse(
                    file,
                    format!("OpenAPI {version} is not supported (3.x)"),
                ));
            }
            3
        } else if document.get("swagger").and_then(Value::as_str) == Some("2.0") {
            2
        } else {
            return Err(refuse(
                file,
                "neither an OpenAPI 3.x document (`openapi: 3...`) nor a Swagger 2.0 one \
                 (`swagger: \"2.0\"`)",
            ));
        };
        let Some(paths) = document.get("paths").and_then(Value::as_object) else {
            return Err(refuse(file, "no `paths`"));
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
                        Some("body") => {
                            body = Some((
                                param.get("schema").cloned().unwrap_or(Value::Null),
                                required,
                            ));
                            continue;
                        }
                        _ => continue,
                    };
                    // Swagger 2.0 puts the type on the parameter itself.
                    let schema = param.get("schema").cloned().unwrap_or_else(|| {
                        let mut schema = serde_json::Map::new();
                        for field in ["type", "format", "enum", "items"] {
                            if let Some(value) = param.get(field) {
                                schema.insert(field.to_owned(), value.clone());
                            }
                        }
                        Value::Object(schema)
                    });
                    params.retain(|existing: &Param| {
                        !(existing.name == name && existing.place == place)
                    });
                    params.push(Param {
                        name: name.to_owned(),
                        place,
                        required: required || place == Place::Path,
                        schema,
                    });
                }
                if let Some(request_body) = operation.get("requestBody").map(|b| doc.deref(b)) {
                    let required = request_body
                        .get("required")
                        .and_then(Value::as_bool)
                        .unwrap_or(false);
                    if let Some(schema) =
                        json_media(request_body).and_then(|media| media.get("schema"))
                    {
                        body = Some((schema.clone(), required));
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

/// YAML's values as JSON's (keys that are numbers, as `200:`, become
/// strings).
fn yaml_to_json(value: serde_norway::Value) -> Value {
    use serde_norway::Value as Yaml;
    match value {
        Yaml::Null => Value::Null,
        Yaml::Bool(flag) => Value::Bool(flag),
        Yaml::Number(number) => {
            if let Some(n) = number.as_i64() {
                json!(n)
            } else if let Some(n) = number.as_u64() {
                json!(n)
            } else {
                json!(number.as_f64().unwrap_or(0.0))
            }
        }
        Yaml::String(text) => Value::String(text),
        Yaml::Sequence(items) => Value::Array(items.into_iter().map(yaml_to_json).collect()),
        Yaml::Mapping(map) => Value::Object(
            map.into_iter()
                .map(|(key, value)| {
                    let key = match key {
                        Yaml::String(text) => text,
                        other => match yaml_to_json(other) {
                            Value::String(text) => text,
                            other => other.to_string(),
                        },
                    };
                    (key, yaml_to_json(value))
                })
                .collect(),
        ),
        Yaml::Tagged(tagged) => yaml_to_json(tagged.value),
    }
}
