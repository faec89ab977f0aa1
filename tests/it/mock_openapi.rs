//! The mock serving Armor's published API documents (trimmed or written
//! for these tests in `tests/fixtures/openapi/`, with the flaws real ones
//! have): every operation answers a valid signed request, examples as
//! written, generated bodies that fit their schema, `Prefer`, every kind
//! of request violation, 404 and 405, the warnings, and documents that
//! cannot be loaded.
#![cfg(feature = "mock")]

use crate::common;

use std::path::PathBuf;

use armor_psk::Signer;
use armor_psk::mock::{MockArmorServer, Operations};
use serde_json::{Value, json};

fn fixtures(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

async fn server() -> MockArmorServer {
    serving(fixtures("openapi")).await
}

/// The mock serving the documents at `path`.
async fn serving(path: PathBuf) -> MockArmorServer {
    MockArmorServer::builder()
        .openapi(&path)
        .unwrap_or_else(|error| panic!("{} loads: {error}", path.display()))
        .start()
        .await
        .unwrap()
}

use common::web::Reply;

/// A signed request, from a blocking client off the runtime: no
/// X-Account-Context unless given (the seed client's way), except on the
/// containers API, which documents it as required.
async fn call(
    server: &MockArmorServer,
    method: &str,
    target: &str,
    body: Option<Value>,
    headers: &[(&str, &str)],
) -> Reply {
    let signer: Signer = server.key().signer();
    let bytes = body
        .map(|body| body.to_string().into_bytes())
        .unwrap_or_default();
    let path = target.split('?').next().unwrap();
    let mut request = http::Request::builder()
        .method(method)
        .uri(format!("{}{target}", server.url()))
        .header("authorization", signer.sign(method, path, &bytes));
    if !bytes.is_empty() {
        request = request.header("content-type", "application/json");
    }
    let given = |name: &str| headers.iter().any(|(n, _)| n.eq_ignore_ascii_case(name));
    if path.starts_with("/containers") && !given("x-account-context") {
        request = request.header("x-account-context", "1024");
    }
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    common::web::exchange_async(request.body(bytes).unwrap()).await
}

#[tokio::test]
async fn every_operation_answers_a_valid_signed_request() {
    let server = server().await;
    let valid: [(&str, &str, Option<Value>, u16); 8] = [
        ("GET", "/tickets/42", None, 200),
        ("GET", "/tickets/ABC-1/comments?limit=10", None, 200),
        ("GET", "/tickets/42/history", None, 200),
        ("DELETE", "/tickets/ABC-1/history", None, 204),
        (
            "POST",
            "/tickets",
            Some(json!({"title": "Disk full", "priority": "high"})),
            201,
        ),
        ("GET", "/apps/7/tiers", None, 200),
        ("GET", "/vms", None, 200),
        ("GET", "/containers/accounts", None, 200),
    ];
    for (method, target, body, status) in valid {
        let reply = call(&server, method, target, body, &[]).await;
        assert_eq!(reply.status, status, "{method} {target}: {}", reply.body);
    }
    let reply = call(
        &server,
        "POST",
        "/containers/accounts",
        Some(json!({"name": "Initech", "tier": "standard"})),
        &[],
    )
    .await;
    assert_eq!(reply.status, 201, "{}", reply.body);
    let reply = call(
        &server,
        "GET",
        "/containers/clusters/9f0c2d1e-0b6a-4a43-9d1c-2f6b1f8a7c55?verbose=true",
        None,
        &[],
    )
    .await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    // The built-in routes still answer first.
    let me = call(&server, "GET", "/me", None, &[]).await;
    assert_eq!(me.status, 200);
    assert!(me.body["user"].is_object(), "{}", me.body);
}

#[tokio::test]
async fn examples_are_served_as_written_and_schemas_give_fitting_values() {
    let server = server().await;
    let comments = call(&server, "GET", "/tickets/ABC-1/comments?limit=5", None, &[]).await;
    assert_eq!(
        comments.body,
        json!({"items": [{"id": 7, "body": "Looking into it"}], "total": 1})
    );
    assert_eq!(
        comments.headers.get("content-type").unwrap(),
        "application/json"
    );
    let account = call(&server, "GET", "/containers/accounts", None, &[]).await;
    assert_eq!(
        account.body,
        json!({"id": 1024, "name": "Acme", "tier": "standard", "clusters": 2})
    );
    // From the schema: every property, in its type and format.
    let ticket = call(&server, "GET", "/tickets/42", None, &[]).await;
    assert_eq!(
        ticket.body,
        json!({"id": 0, "title": "string", "priority": "low", "created": "2026-01-01T00:00:00Z"})
    );
    let cluster = call(
        &server,
        "GET",
        "/containers/clusters/9f0c2d1e-0b6a-4a43-9d1c-2f6b1f8a7c55",
        None,
        &[],
    )
    .await;
    assert_eq!(cluster.body["id"], "00000000-0000-4000-8000-000000000000");
    assert_eq!(cluster.body["state"], "running");
    assert!(
        cluster.body["parent"].is_object(),
        "recursion is bounded: {}",
        cluster.body
    );
    let tiers = call(&server, "GET", "/apps/7/tiers", None, &[]).await;
    assert_eq!(
        tiers.body,
        json!([{"id": 0, "name": "string", "vmCount": 0}])
    );
    // The same every time.
    assert_eq!(
        call(&server, "GET", "/tickets/42", None, &[]).await.body,
        ticket.body
    );
}

#[tokio::test]
async fn prefer_picks_another_documented_response() {
    let server = server().await;
    let missing = call(
        &server,
        "GET",
        "/tickets/42",
        None,
        &[("prefer", "code=404")],
    )
    .await;
    assert_eq!(missing.status, 404);
    assert_eq!(
        missing.body,
        json!({"ErrorCode": "NotFound", "Message": "No such ticket"})
    );
    let big = call(
        &server,
        "GET",
        "/containers/accounts",
        None,
        &[("prefer", "example=big")],
    )
    .await;
    assert_eq!(big.status, 200);
    assert_eq!(big.body["name"], "Globex");
    let undocumented = call(
        &server,
        "GET",
        "/tickets/42",
        None,
        &[("prefer", "code=418")],
    )
    .await;
    assert_eq!(undocumented.status, 404);
    assert_eq!(undocumented.body["error"], "no_such_response");
}

/// The `in` and name (or pointer) of each problem of a 400.
fn problems(reply: &Reply) -> Vec<(String, String)> {
    assert_eq!(reply.status, 400, "{}", reply.body);
    assert_eq!(reply.body["error"], "request_invalid", "{}", reply.body);
    reply.body["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|problem| {
            let at = problem
                .get("name")
                .or_else(|| problem.get("pointer"))
                .unwrap();
            (
                problem["in"].as_str().unwrap().to_owned(),
                at.as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

#[tokio::test]
async fn each_kind_of_violation_is_a_400_naming_it() {
    let server = server().await;
    let path = call(&server, "GET", "/apps/abc/tiers", None, &[]).await;
    assert_eq!(problems(&path), [("path".into(), "appId".into())]);
    let missing_query = call(&server, "GET", "/tickets/ABC-1/comments", None, &[]).await;
    assert_eq!(problems(&missing_query), [("query".into(), "limit".into())]);
    let typed_query = call(
        &server,
        "GET",
        "/tickets/ABC-1/comments?limit=ten",
        None,
        &[],
    )
    .await;
    assert_eq!(problems(&typed_query), [("query".into(), "limit".into())]);
    let boolean = call(
        &server,
        "GET",
        "/containers/clusters/9f0c2d1e-0b6a-4a43-9d1c-2f6b1f8a7c55?verbose=maybe",
        None,
        &[],
    )
    .await;
    assert_eq!(problems(&boolean), [("query".into(), "verbose".into())]);
    let header = call(
        &server,
        "GET",
        "/containers/accounts",
        None,
        &[("x-account-context", "abc")],
    )
    .await;
    assert_eq!(
        problems(&header),
        [("header".into(), "x-account-context".into())]
    );
    let body = call(
        &server,
        "POST",
        "/tickets",
        Some(json!({"title": 5, "priority": "urgent", "watchers": [1, "two"]})),
        &[],
    )
    .await;
    assert_eq!(
        problems(&body),
        [
            ("body".into(), "/priority".into()),
            ("body".into(), "/title".into()),
            ("body".into(), "/watchers/1".into()),
        ]
    );
    let required = call(
        &server,
        "POST",
        "/containers/accounts",
        Some(json!({"tier": "standard"})),
        &[],
    )
    .await;
    assert_eq!(problems(&required), [("body".into(), "/name".into())]);
    let no_body = call(&server, "POST", "/tickets", None, &[]).await;
    assert_eq!(problems(&no_body), [("body".into(), "".into())]);
    // The journal keeps them.
    let journal = server.journal();
    let last = journal.last().unwrap();
    assert_eq!(last.status, 400);
    assert_eq!(last.request_errors, ["body : a body is required"]);
}

#[tokio::test]
async fn unknown_paths_are_404_and_other_methods_405_with_allow() {
    let server = server().await;
    let unknown = call(&server, "GET", "/nowhere/at/all", None, &[]).await;
    assert_eq!(unknown.status, 404);
    assert_eq!(unknown.body["error"], "no_such_operation");
    let other = call(&server, "PUT", "/tickets/42", None, &[]).await;
    assert_eq!(other.status, 405, "{}", other.body);
    assert_eq!(other.headers.get("allow").unwrap(), "GET");
    // Two templates share a position under other names: both methods.
    let history = call(&server, "PATCH", "/tickets/42/history", None, &[]).await;
    assert_eq!(history.headers.get("allow").unwrap(), "DELETE, GET");
    // Still behind ARMOR-PSK.
    let url = format!("{}/tickets/42", server.url());
    let unsigned = common::web::exchange_async(common::web::request("GET", &url, &[])).await;
    assert_eq!(unsigned.status, 401);
}

#[tokio::test]
async fn the_operations_are_listed_and_the_flaws_warned_about() {
    let mut operations = Operations::default();
    operations.load(fixtures("openapi")).unwrap();
    assert_eq!(operations.len(), 10);
    let warnings = operations.warnings().join("\n");
    for expected in [
        "1 × empty $ref",
        "1 × $ref to a definition that does not exist (treated as any value) (first: #/definitions/PagedResultSet%5BComment%5D)",
        "1 × examples contradict their schema",
        "1 × one path position is named differently",
        "operations declare security schemes other than ARMOR-PSK",
    ] {
        assert!(warnings.contains(expected), "{expected:?} in:\n{warnings}");
    }
    let server = server().await;
    let url = format!("{}/__mock/operations", server.url());
    let listing = common::web::exchange_async(common::web::request("GET", &url, &[]))
        .await
        .body;
    let listing = listing.as_array().unwrap();
    assert_eq!(listing.len(), 10);
    assert!(listing.contains(&json!({
        "method": "GET",
        "path": "/containers/accounts",
        "operation_id": "getAccountDetails",
        "source": "armor-containers-openapi.yml",
    })));
}

#[test]
fn documents_that_cannot_be_served_are_errors_naming_the_file() {
    for (file, expected) in [
        ("garbage.yaml", "neither JSON"),
        ("empty.json", "empty"),
        ("not-openapi.json", "neither an OpenAPI 3.x document"),
    ] {
        let mut operations = Operations::default();
        let error = operations
            .load(fixtures("openapi-bad").join(file))
            .unwrap_err()
            .to_string();
        assert!(error.contains(file), "{error}");
        assert!(error.contains(expected), "{error}");
    }
}

/// A signed request with the body bytes and `Content-Type` given as they
/// are.
async fn call_raw(
    server: &MockArmorServer,
    method: &str,
    target: &str,
    content_type: Option<&str>,
    bytes: &[u8],
    headers: &[(&str, &str)],
) -> Reply {
    let signer: Signer = server.key().signer();
    let path = target.split('?').next().unwrap();
    let mut request = http::Request::builder()
        .method(method)
        .uri(format!("{}{target}", server.url()))
        .header("authorization", signer.sign(method, path, bytes));
    if let Some(content_type) = content_type {
        request = request.header("content-type", content_type);
    }
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    common::web::exchange_async(request.body(bytes.to_vec()).unwrap()).await
}

async fn strict_server() -> MockArmorServer {
    serving(fixtures("openapi-strict")).await
}

/// Bodies by media type: JSON and form bodies checked against the same
/// schema (bounds, lengths, pattern, `additionalProperties`, array sizes,
/// `uniqueItems`, exclusive bounds), each problem named; a media type the
/// operation does not document is 415 naming the documented ones.
#[tokio::test]
async fn bodies_are_checked_by_their_media_type() {
    let server = strict_server().await;
    const JSON: Option<&str> = Some("application/json");
    const FORM: Option<&str> = Some("application/x-www-form-urlencoded");
    let valid: [(Option<&str>, &[u8]); 4] = [
        (JSON, br#"{"name": "web", "port": 443, "tags": ["a", "b"]}"#),
        (
            Some("application/json; charset=utf-8"),
            br#"{"name": "web", "port": 1}"#,
        ),
        (FORM, b"name=web&port=443&ratio=0.5&tags=a&tags=b"),
        (FORM, b"port=65535&name=abcdefgh"),
    ];
    for (content_type, body) in valid {
        let reply = call_raw(&server, "POST", "/rules", content_type, body, &[]).await;
        assert_eq!(
            reply.status,
            201,
            "{content_type:?} {}: {}",
            String::from_utf8_lossy(body),
            reply.body
        );
    }
    let invalid: [(Option<&str>, &[u8], &str); 9] = [
        (JSON, br#"{"name": "web", "port": 0}"#, "/port"),
        (JSON, br#"{"name": "web", "port": 65536}"#, "/port"),
        (JSON, br#"{"name": "we", "port": 1}"#, "/name"),
        (JSON, br#"{"name": "Web", "port": 1}"#, "/name"),
        (JSON, br#"{"name": "web", "port": 1, "extra": 1}"#, "/extra"),
        (
            JSON,
            br#"{"name": "web", "port": 1, "tags": ["a", "a"]}"#,
            "/tags/1",
        ),
        (JSON, br#"{"name": "web", "port": 1, "ratio": 0}"#, "/ratio"),
        (FORM, b"name=web&port=http", "/port"),
        (FORM, b"name=web", "/port"),
    ];
    for (content_type, body, pointer) in invalid {
        let reply = call_raw(&server, "POST", "/rules", content_type, body, &[]).await;
        let found = problems(&reply);
        assert!(
            found
                .iter()
                .any(|(place, at)| place == "body" && at == pointer),
            "{}: {found:?}",
            String::from_utf8_lossy(body)
        );
    }
    // multipart/form-data, fields read as their properties' types.
    const MULTIPART: Option<&str> = Some("multipart/form-data; boundary=XyZ");
    let part = |name: &str, value: &str| {
        format!("--XyZ\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n")
    };
    let valid = format!(
        "{}{}{}--XyZ--\r\n",
        part("name", "web"),
        part("port", "443"),
        part("tags", "a")
    );
    let reply = call_raw(&server, "POST", "/rules", MULTIPART, valid.as_bytes(), &[]).await;
    assert_eq!(reply.status, 201, "{valid}: {}", reply.body);
    let cases = [
        (
            format!("{}{}--XyZ--\r\n", part("name", "web"), part("port", "http")),
            "/port",
        ),
        (format!("{}--XyZ--\r\n", part("name", "web")), "/port"),
        (format!("{}{}", part("name", "web"), part("port", "1")), ""),
    ];
    for (body, pointer) in cases {
        let reply = call_raw(&server, "POST", "/rules", MULTIPART, body.as_bytes(), &[]).await;
        assert_eq!(reply.status, 400, "{body}: {}", reply.body);
        assert!(
            problems(&reply)
                .iter()
                .any(|(place, at)| place == "body" && at == pointer),
            "{body}: {}",
            reply.body
        );
    }
    let reply = call_raw(&server, "POST", "/rules", Some("text/csv"), b"web,443", &[]).await;
    assert_eq!(reply.status, 415, "{}", reply.body);
    assert_eq!(reply.body["error"], "unsupported_media_type");
    let message = reply.body["errors"][0]["message"].as_str().unwrap();
    assert!(
        message.contains("application/json")
            && message.contains("application/x-www-form-urlencoded"),
        "{message}"
    );
}

/// A document's example that contradicts its schema is served as written
/// (it is what the API documents), and `Prefer: dynamic=true` (Prism's)
/// asks for a value generated from the schema instead. A Swagger answer
/// without a schema still carries the type the operation produces.
#[tokio::test]
async fn prefer_dynamic_generates_from_the_schema_past_a_contradicting_example() {
    let dir = std::env::temp_dir().join(format!("armor-psk-dynamic-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("contradicting-openapi.yml");
    std::fs::write(
        &file,
        r#"openapi: 3.0.3
info: {title: t, version: "1"}
paths:
  /ports:
    get:
      responses:
        "200":
          description: ports
          content:
            application/json:
              schema: {type: array, minItems: 1, items: {type: integer, minimum: 5, maximum: 9}}
              example: {"port": 1}
"#,
    )
    .unwrap();
    let swagger = dir.join("swagger.json");
    std::fs::write(
        &swagger,
        r#"{"swagger": "2.0", "info": {"title": "t", "version": "1"},
            "produces": ["application/json", "text/json"],
            "paths": {"/go": {"post": {"responses": {"200": {"description": "done"}}}}}}"#,
    )
    .unwrap();
    let server = serving(dir.clone()).await;
    let written = call(&server, "GET", "/ports", None, &[]).await;
    assert_eq!(written.body, json!({"port": 1}));
    let generated = call(
        &server,
        "GET",
        "/ports",
        None,
        &[("prefer", "dynamic=true")],
    )
    .await;
    let items = generated
        .body
        .as_array()
        .expect("an array, as the schema says");
    assert!(!items.is_empty());
    assert!(
        items
            .iter()
            .all(|item| item.as_i64().is_some_and(|n| (5..=9).contains(&n))),
        "{}",
        generated.body
    );
    let done = call(&server, "POST", "/go", None, &[]).await;
    assert_eq!(done.status, 200);
    assert_eq!(done.headers["content-type"], "application/json");
    let _ = std::fs::remove_dir_all(&dir);
}

/// An answer documented as text is sent as text with its type, and a
/// refusal takes the 4xx the operation documents (422 here, not 400).
#[tokio::test]
async fn answers_take_the_documented_media_type_and_refusal_status() {
    let server = strict_server().await;
    const JSON: Option<&str> = Some("application/json");
    let reply = call_raw(&server, "POST", "/notes", JSON, br#"{"text": "hi"}"#, &[]).await;
    assert_eq!(reply.status, 201, "{}", reply.text);
    assert_eq!(reply.headers["content-type"], "text/plain");
    assert_eq!(reply.text, "noted");
    let reply = call_raw(&server, "POST", "/notes", JSON, br#"{"note": "hi"}"#, &[]).await;
    assert_eq!(reply.status, 422, "{}", reply.text);
    assert_eq!(reply.body["error"], "request_invalid");
    let reply = call_raw(&server, "POST", "/notes", Some("text/csv"), b"hi", &[]).await;
    assert_eq!(reply.status, 422, "415 is not documented: {}", reply.text);
    assert_eq!(reply.body["error"], "unsupported_media_type");
    // Every answer has a Content-Type.
    let reply = call_raw(&server, "DELETE", "/notes", None, b"", &[]).await;
    assert_eq!(reply.status, 405);
    assert_eq!(reply.headers["allow"], "POST");
    assert!(reply.headers.contains_key("content-type"));
}

/// Parameters: a required header left out, a header of the wrong format,
/// a query array joined by commas with an item out of bounds or too many
/// items, a cookie too short: each a 400 naming it.
#[tokio::test]
async fn parameters_are_checked_with_their_style() {
    let server = strict_server().await;
    let id = "6f1c2b3a-9d8e-4f70-8a6b-5c4d3e2f1a0b";
    let ok = call_raw(
        &server,
        "GET",
        "/rules?ids=1,2,3",
        None,
        b"",
        &[("x-request-id", id), ("cookie", "session=abcd")],
    )
    .await;
    assert_eq!(ok.status, 200, "{}", ok.body);
    type Case<'a> = (&'a str, Vec<(&'a str, &'a str)>, (&'a str, &'a str));
    let cases: [Case; 5] = [
        ("/rules", vec![], ("header", "X-Request-Id")),
        (
            "/rules",
            vec![("x-request-id", "not-a-uuid")],
            ("header", "X-Request-Id"),
        ),
        (
            "/rules?ids=1,0",
            vec![("x-request-id", id)],
            ("query", "ids"),
        ),
        (
            "/rules?ids=1,2,3,4",
            vec![("x-request-id", id)],
            ("query", "ids"),
        ),
        (
            "/rules",
            vec![("x-request-id", id), ("cookie", "session=abc")],
            ("cookie", "session"),
        ),
    ];
    for (target, headers, (place, name)) in cases {
        let reply = call_raw(&server, "GET", target, None, b"", &headers).await;
        let found = problems(&reply);
        assert!(
            found.contains(&(place.to_owned(), name.to_owned())),
            "{target} {headers:?}: {found:?}"
        );
    } // X-Account-Context where a document declares it required: required
    // (the built-in routes act on the primary account without it).
    let containers = self::server().await;
    let reply = call_raw(&containers, "GET", "/containers/accounts", None, b"", &[]).await;
    assert_eq!(
        problems(&reply),
        [("header".to_owned(), "x-account-context".to_owned())]
    );
}

/// A folder tree 30 deep under a `oneOf` whose first choice fails only
/// after checking the children (a billion schema visits): answered 400
/// naming the budget, at once; the mock answers the next request.
#[tokio::test]
async fn a_recursive_one_of_thirty_deep_is_answered_within_the_budget() {
    let server = strict_server().await;
    let mut node = json!({"children": []});
    for _ in 0..30 {
        node = json!({"children": [node]});
    }
    let body = node.to_string();
    let reply = call_raw(
        &server,
        "POST",
        "/tree",
        Some("application/json"),
        body.as_bytes(),
        &[],
    )
    .await;
    assert_eq!(reply.status, 400, "{}", reply.body);
    let message = reply.body["errors"][0]["message"].as_str().unwrap();
    assert!(message.contains("too costly"), "{message}");
    let shallow = json!({"children": [{"size": 1}, {"children": []}]}).to_string();
    let reply = call_raw(
        &server,
        "POST",
        "/tree",
        Some("application/json"),
        shallow.as_bytes(),
        &[],
    )
    .await;
    assert_eq!(reply.status, 204, "{}", reply.body);
}

/// A schema whose `allOf` lists itself (directly and through another)
/// loads, answers with a bounded value and checks a body in bounded time.
#[tokio::test]
async fn an_all_of_that_lists_itself_loads_and_answers() {
    let dir = std::env::temp_dir().join(format!("armor-psk-allof-loop-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("loop-openapi.json");
    std::fs::write(
        &file,
        serde_json::to_string(&json!({
            "openapi": "3.0.3",
            "info": {"title": "loop", "version": "1"},
            "paths": {"/loop": {
                "get": {"responses": {"200": {"description": "a loop", "content": {
                    "application/json": {"schema": {"$ref": "#/components/schemas/Loop"}}}}}},
                "post": {
                    "requestBody": {"required": true, "content": {
                        "application/json": {"schema": {"$ref": "#/components/schemas/Ping"}}}},
                    "responses": {"204": {"description": "taken"}}}}},
            "components": {"schemas": {
                "Loop": {"allOf": [{"$ref": "#/components/schemas/Loop"}, {"type": "object"}]},
                "Ping": {"allOf": [{"$ref": "#/components/schemas/Pong"}]},
                "Pong": {"allOf": [{"$ref": "#/components/schemas/Ping"}], "type": "object"}}}
        }))
        .unwrap(),
    )
    .unwrap();
    let started = std::time::Instant::now();
    let server = serving(file.clone()).await;
    let answer = call(&server, "GET", "/loop", None, &[]).await;
    assert_eq!(answer.status, 200, "{}", answer.text);
    assert!(answer.body.is_object(), "{}", answer.text);
    let taken = call(&server, "POST", "/loop", Some(json!({"a": 1})), &[]).await;
    assert_eq!(taken.status, 204, "{}", taken.text);
    let refused = call(&server, "POST", "/loop", Some(json!([1])), &[]).await;
    assert_eq!(refused.status, 400, "{}", refused.text);
    assert!(started.elapsed() < std::time::Duration::from_secs(10));
    let _ = std::fs::remove_dir_all(&dir);
}

/// A directory of documents beside a hidden file and a report of another
/// kind (as Armor's repository has): the documents load, the two others
/// are skipped with a warning each.
#[test]
fn a_directory_skips_hidden_files_and_files_that_are_not_documents() {
    let dir = std::env::temp_dir().join(format!("armor-psk-openapi-dir-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::copy(
        fixtures("openapi-strict/armor-rules-openapi.yml"),
        dir.join("armor-rules-openapi.yml"),
    )
    .unwrap();
    std::fs::write(dir.join(".refine-report.json"), r#"{"refined": 3}"#).unwrap();
    std::fs::write(dir.join("report.json"), r#"{"checked": ["a"]}"#).unwrap();
    let mut operations = Operations::default();
    operations.load(&dir).expect("the directory loads");
    assert_eq!(operations.len(), 4);
    let warnings = operations.warnings().join("\n");
    assert!(warnings.contains("hidden files skipped"), "{warnings}");
    assert!(
        warnings.contains("not OpenAPI or Swagger documents skipped"),
        "{warnings}"
    );
    assert!(warnings.contains("report.json"), "{warnings}");
    // Nothing to serve at all is still an error.
    let mut none = Operations::default();
    assert!(none.load(fixtures("openapi-bad")).is_err());
    let _ = std::fs::remove_dir_all(&dir);
}
