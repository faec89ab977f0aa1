//! The mock serving Armor's published API documents (trimmed or written
//! for these tests in `tests/fixtures/openapi/`, with the flaws real ones
//! have): every operation answers a valid signed request, examples as
//! written, generated bodies that fit their schema, `Prefer`, every kind
//! of request violation, 404 and 405, the warnings, and documents that
//! cannot be loaded.
#![cfg(feature = "mock")]

mod common;

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
    MockArmorServer::builder()
        .openapi(fixtures("openapi"))
        .expect("the fixture documents load")
        .start()
        .await
        .unwrap()
}

use common::web::Reply;

/// A signed request (the seed client's way: no X-Account-Context unless
/// given), from a blocking client off the runtime.
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
    assert_eq!(last.request_errors, ["body : a JSON body is required"]);
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
