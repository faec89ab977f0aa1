//! `MockArmorServer` used the way a client library's test suite would: start
//! it, sign with the crate's `Signer`, call it over HTTP on 127.0.0.1, assert
//! on the answers and on the journal.
#![cfg(feature = "mock")]

use crate::common;

use armor_psk::mock::{AccountContext, ApiKey, Fixtures, MockArmorServer, MockError, Outcome};
use armor_psk::{Identity, Signer};
use axum::Router;
use axum::response::Json;
use axum::routing::get;
use serde_json::{Value, json};

use common::web::Reply;

/// Sends a bodiless request off the runtime.
async fn send(url: String, method: &'static str, headers: Vec<(String, String)>) -> Reply {
    let headers: Vec<(&str, &str)> = headers
        .iter()
        .map(|(name, value)| (name.as_str(), value.as_str()))
        .collect();
    common::web::exchange_async(common::web::request(method, &url, &headers)).await
}

/// A signed GET with `X-Account-Context` when `account` is given.
async fn get_signed(
    server: &MockArmorServer,
    signer: &Signer,
    path: &str,
    account: Option<&str>,
) -> Reply {
    let mut headers = vec![("authorization".to_owned(), signer.sign("GET", path, b""))];
    if let Some(account) = account {
        headers.push(("x-account-context".to_owned(), account.to_owned()));
    }
    send(format!("{}{path}", server.url()), "GET", headers).await
}

fn assert_envelope(reply: &Reply, status: u16, code: &str) {
    assert_eq!(reply.status, status, "{}", reply.body);
    assert_eq!(reply.body["ErrorCode"], code, "{}", reply.body);
    for field in ["Message", "Detail", "ReferenceId"] {
        assert!(
            reply.body[field].is_string(),
            "{field} missing: {}",
            reply.body
        );
    }
}

#[tokio::test]
async fn a_client_calls_me_in_an_account_context_and_the_journal_says_so() {
    let server = MockArmorServer::start().await.unwrap();
    let signer = server.key().signer();

    let me = get_signed(&server, &signer, "/me", Some("1024")).await;
    assert_eq!(me.status, 200, "{}", me.body);
    assert_eq!(me.body["user"]["links"]["userId"], 4922);
    assert_eq!(me.body["user"]["username"], "john.doe@armor.com");
    assert_eq!(me.body["accounts"][0]["id"], 1024);
    assert_eq!(me.body["accounts"][1]["accountType"], "Partner Customer");
    assert!(me.body["permissions"]["1025"].is_array());
    assert_eq!(me.body["features"][0]["feature"], "AA-CORE.LOG-MANAGEMENT");

    let other = get_signed(&server, &signer, "/me", Some("2048")).await;
    assert_envelope(&other, 403, "AccountContextForbidden");

    let journal = server.journal();
    assert_eq!(journal.len(), 2);
    assert_eq!(journal[0].method, "GET");
    assert_eq!(journal[0].path, "/me");
    assert_eq!(journal[0].key_id.as_deref(), Some(server.key().key_id()));
    assert_eq!(journal[0].account_context.as_deref(), Some("1024"));
    assert_eq!((journal[0].status, journal[0].accepted()), (200, true));
    assert_eq!((journal[1].status, journal[1].accepted()), (403, true));
    assert_eq!(journal[1].reason(), Some("AccountContextForbidden"));

    server.clear_journal();
    assert!(server.journal().is_empty());
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn signature_failures_are_armors_401s_and_journaled_with_their_code() {
    let server = MockArmorServer::start().await.unwrap();
    let wrong = Signer::new(server.key().key_id(), "not the secret").unwrap();
    let reply = get_signed(&server, &wrong, "/me", Some("1024")).await;
    assert_eq!(reply.status, 401);
    assert_eq!(reply.body["error"], "invalid_signature");
    assert!(reply.body["Message"].is_string());

    let header = server.key().signer().sign("GET", "/me", b"");
    let headers = vec![
        ("authorization".to_owned(), header),
        ("x-account-context".to_owned(), "1024".to_owned()),
    ];
    let url = format!("{}/me", server.url());
    assert_eq!(send(url.clone(), "GET", headers.clone()).await.status, 200);
    let replay = send(url.clone(), "GET", headers).await;
    assert_eq!(
        (replay.status, &replay.body["error"]),
        (401, &json!("replayed_request"))
    );

    let unsigned = send(url, "GET", vec![]).await;
    assert_eq!(unsigned.status, 401);

    let outcomes: Vec<_> = server
        .journal()
        .into_iter()
        .map(|e| (e.outcome, e.key_id))
        .collect();
    let key = Some(server.key().key_id().to_owned());
    assert_eq!(
        outcomes,
        [
            (Outcome::Rejected("invalid_signature"), key.clone()),
            (Outcome::Accepted, key.clone()),
            (Outcome::Rejected("replayed_request"), key),
            (Outcome::Rejected("missing_authorization"), None),
        ]
    );
}

#[tokio::test]
async fn accounts_routes_and_the_account_context_rules() {
    let server = MockArmorServer::start().await.unwrap();
    let signer = server.key().signer();

    let accounts = get_signed(&server, &signer, "/accounts", Some("1025")).await;
    assert_eq!(accounts.status, 200);
    let ids: Vec<_> = accounts
        .body
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["id"].clone())
        .collect();
    assert_eq!(ids, [json!(1024), json!(1025)]);

    let one = get_signed(&server, &signer, "/accounts/1025", Some("1024")).await;
    assert_eq!(
        (one.status, &one.body["name"]),
        (200, &json!("Armor Internal Customer"))
    );
    assert_envelope(
        &get_signed(&server, &signer, "/accounts/2048", Some("1024")).await,
        403,
        "AccountForbidden",
    );

    assert_envelope(
        &get_signed(&server, &signer, "/me", Some("10x")).await,
        400,
        "InvalidAccountContext",
    );
    assert_envelope(
        &get_signed(&server, &signer, "/me", Some("9999")).await,
        403,
        "AccountContextForbidden",
    );
}

#[tokio::test]
async fn without_account_context_requests_act_on_the_primary_account() {
    let server = MockArmorServer::start().await.unwrap();
    let signer = server.key().signer();
    let me = get_signed(&server, &signer, "/me", None).await;
    assert_eq!(me.status, 200, "{}", me.body);
    let account = get_signed(&server, &signer, "/accounts/1025", None).await;
    assert_eq!(account.status, 200, "{}", account.body);
}

#[tokio::test]
async fn a_required_account_context_is_400_without_it_except_on_me() {
    let server = MockArmorServer::builder()
        .require_account_context()
        .start()
        .await
        .unwrap();
    let signer = server.key().signer();
    let me = get_signed(&server, &signer, "/me", None).await;
    assert_eq!(me.status, 200, "{}", me.body);
    assert_envelope(
        &get_signed(&server, &signer, "/accounts", None).await,
        400,
        "MissingAccountContext",
    );
}

#[tokio::test]
async fn endpoints_forbidden_to_psk_keys_and_unknown_paths() {
    let server = MockArmorServer::start().await.unwrap();
    let signer = server.key().signer();
    for path in [
        "/users/4922/keys",
        "/users/4922/keys/abc",
        "/users/resetpassword",
        "/users/setpassword",
        "/usersecurity",
        "/usersecurity/mfa/reset",
    ] {
        let reply = get_signed(&server, &signer, path, None).await;
        assert_envelope(&reply, 403, "PskNotAllowed");
    }
    let missing = get_signed(&server, &signer, "/no/such/thing", Some("1024")).await;
    assert_envelope(&missing, 404, "NotFound");
    assert!(
        missing.body["Message"]
            .as_str()
            .unwrap()
            .contains("/no/such/thing")
    );

    // Unsigned, the forbidden endpoint is a 401 first: authentication comes before anything.
    let unsigned = send(
        format!("{}/users/resetpassword", server.url()),
        "GET",
        vec![],
    )
    .await;
    assert_eq!(unsigned.status, 401);
}

#[tokio::test]
async fn keys_are_issued_and_revoked_while_it_runs() {
    let server = MockArmorServer::start().await.unwrap();
    let jane = server.issue_key(5100).unwrap();
    assert_eq!(jane.key_id().len(), 36, "a UUID");
    assert!(jane.secret().len() >= 43, "at least 32 bytes of entropy");

    let me = get_signed(&server, &jane.signer(), "/me", Some("2048")).await;
    assert_eq!(
        (me.status, &me.body["user"]["firstName"]),
        (200, &json!("Jane"))
    );
    let johns = get_signed(&server, &jane.signer(), "/me", Some("1024")).await;
    assert_envelope(&johns, 403, "AccountContextForbidden");

    assert!(server.revoke_key(jane.key_id()));
    let revoked = get_signed(&server, &jane.signer(), "/me", Some("2048")).await;
    assert_eq!(
        (revoked.status, &revoked.body["error"]),
        (401, &json!("invalid_signature"))
    );
    assert!(!server.revoke_key(jane.key_id()));

    assert!(matches!(
        server.issue_key(1),
        Err(MockError::UnknownUser(1))
    ));
    assert!(matches!(
        server.add_key(ApiKey::new("bad:id", "x"), 4922),
        Err(MockError::InvalidKeyId(_))
    ));
}

#[tokio::test]
async fn a_shifted_clock_refuses_a_skewed_client_and_tells_its_time() {
    let server = MockArmorServer::start().await.unwrap();
    server.set_clock_offset(3_600);
    let reply = get_signed(&server, &server.key().signer(), "/me", Some("1024")).await;
    assert_eq!(reply.status, 401);
    assert_eq!(reply.body["error"], "timestamp_out_of_window");
    let server_time = reply.body["server_time"].as_u64().unwrap();
    assert!(server_time.abs_diff(server.now()) <= 2, "{server_time}");

    // A client that corrects its clock from server_time gets through.
    let header = server
        .key()
        .signer()
        .sign_at("GET", "/me", b"", "corrected-1", server_time)
        .unwrap();
    let headers = vec![
        ("authorization".to_owned(), header),
        ("x-account-context".to_owned(), "1024".to_owned()),
    ];
    let corrected = send(format!("{}/me", server.url()), "GET", headers).await;
    assert_eq!(corrected.status, 200);
}

#[tokio::test]
async fn custom_routes_get_the_identity_and_the_account_context() {
    let routes = Router::new().route(
        "/widgets",
        get(|identity: Identity, context: AccountContext| async move {
            Json(json!({
                "key_id": identity.key_id(),
                "user": context.user_id,
                "account": context.account.id,
            }))
        }),
    );
    let server = MockArmorServer::builder()
        .key("test-key", "test-secret")
        .routes(routes)
        .start()
        .await
        .unwrap();
    assert!(!server.key_was_generated());
    let signer = Signer::new("test-key", "test-secret").unwrap();
    let reply = get_signed(&server, &signer, "/widgets", Some("1025")).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(
        reply.body,
        json!({"key_id": "test-key", "user": 4922, "account": 1025})
    );
    let refused = get_signed(&server, &signer, "/widgets", Some("2048")).await;
    assert_envelope(&refused, 403, "AccountContextForbidden");
}

#[tokio::test]
async fn fixtures_and_keys_from_a_json_file() {
    let mut fixtures = Fixtures::default();
    fixtures.users.truncate(1);
    fixtures.users[0].user.first_name = "Ada".into();
    fixtures.users[0].accounts.truncate(1);
    let mut json = serde_json::to_value(&fixtures).unwrap();
    json["keys"] = json!([{"keyId": "file-key", "secretKey": "file-secret", "userId": 4922}]);
    let path = std::env::temp_dir().join(format!("armor-psk-fixtures-{}.json", std::process::id()));
    std::fs::write(&path, json.to_string()).unwrap();
    let loaded = Fixtures::from_file(&path).unwrap();
    std::fs::remove_file(&path).unwrap();

    let server = MockArmorServer::builder()
        .fixtures(loaded)
        .start()
        .await
        .unwrap();
    assert_eq!(server.key().key_id(), "file-key");
    let signer = Signer::new("file-key", "file-secret").unwrap();
    let me = get_signed(&server, &signer, "/me", Some("1024")).await;
    assert_eq!(
        (me.status, &me.body["user"]["firstName"]),
        (200, &json!("Ada"))
    );
    assert_eq!(me.body["accounts"].as_array().unwrap().len(), 1);

    assert!(Fixtures::from_json(r#"{"users": [], "extra": 1}"#).is_err());
    assert!(Fixtures::from_file("/nonexistent/fixtures.json").is_err());
}

#[tokio::test]
async fn shutdown_stops_listening_and_debug_hides_secrets() {
    let server = MockArmorServer::builder()
        .key("k", "the-secret-value")
        .start()
        .await
        .unwrap();
    let debug = format!("{server:?} {:?}", server.key());
    assert!(!debug.contains("the-secret-value"), "{debug}");
    let addr = server.addr();
    server.shutdown().await.unwrap();
    assert!(tokio::net::TcpStream::connect(addr).await.is_err());

    let dropped = MockArmorServer::start().await.unwrap();
    let addr = dropped.addr();
    drop(dropped);
    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    assert!(tokio::net::TcpStream::connect(addr).await.is_err());
}

#[tokio::test]
async fn stubs_from_a_directory_answer_after_verification_and_before_the_api() {
    let server = MockArmorServer::builder()
        .stubs_from(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/stubs"))
        .unwrap()
        .stub(
            armor_psk::mock::Stub::new("DELETE", "/tickets/{id}", 204, Value::Null)
                .unwrap()
                .with_header("X-Deleted", "yes"),
        )
        .start()
        .await
        .unwrap();
    let signer = server.key().signer();

    let list = get_signed(&server, &signer, "/tickets/list", None).await;
    assert_eq!(
        (list.status, &list.body),
        (200, &json!([{"id": 1}, {"id": 2}]))
    );
    assert_eq!(list.headers["x-total-count"], "2");
    // `{id}` matches one segment, not two.
    let one = get_signed(&server, &signer, "/tickets/77", None).await;
    assert_eq!(one.body["state"], "open", "{}", one.body);
    let deeper = get_signed(&server, &signer, "/tickets/77/notes", None).await;
    assert_envelope(&deeper, 404, "NotFound");

    // Account-scoped, and ahead of the built-in `/accounts/{id}`.
    let scoped = get_signed(&server, &signer, "/accounts/1024", Some("1025")).await;
    assert_eq!(scoped.body, json!({"stubbed": true, "context": 1025}));
    let built_in = get_signed(&server, &signer, "/accounts/1025", Some("1024")).await;
    assert_eq!(
        built_in.body["name"], "Armor Internal Customer",
        "{}",
        built_in.body
    );
    let vms = get_signed(&server, &signer, "/vms", Some("1025")).await;
    assert_envelope(&vms, 404, "NotFound");
    // A foreign account keeps its 403, stub or not.
    assert_envelope(
        &get_signed(&server, &signer, "/vms", Some("2048")).await,
        403,
        "AccountContextForbidden",
    );

    // Unsigned: the layer answers first.
    let unsigned = send(format!("{}/tickets/list", server.url()), "GET", vec![]).await;
    assert_eq!(unsigned.status, 401);
    let deleted = send(
        format!("{}/tickets/5", server.url()),
        "DELETE",
        vec![(
            "authorization".into(),
            signer.sign("DELETE", "/tickets/5", b""),
        )],
    )
    .await;
    assert_eq!(deleted.status, 204);
    assert_eq!(deleted.headers["x-deleted"], "yes");
}

#[tokio::test]
async fn a_text_stub_is_sent_byte_for_byte_with_its_content_type() {
    let stubs = armor_psk::mock::Stub::from_json(
        r#"[{"method": "GET", "path": "/events", "text": "{\"a\":1}\n{\"a\":2}\n",
             "headers": {"Content-Type": "application/x-ndjson"}},
            {"method": "GET", "path": "/plain", "text": "\ufeffhello"}]"#,
    )
    .unwrap();
    let mut builder = MockArmorServer::builder();
    for stub in stubs {
        builder = builder.stub(stub);
    }
    let server = builder.start().await.unwrap();
    let signer = server.key().signer();
    let events = get_signed(&server, &signer, "/events", None).await;
    assert_eq!(events.text, "{\"a\":1}\n{\"a\":2}\n");
    assert_eq!(events.headers["content-type"], "application/x-ndjson");
    let plain = get_signed(&server, &signer, "/plain", None).await;
    assert_eq!(plain.text, "\u{feff}hello");
    assert_eq!(plain.headers["content-type"], "text/plain; charset=utf-8");
    let both = armor_psk::mock::Stub::from_json(
        r#"{"method": "GET", "path": "/x", "text": "a", "body": {}}"#,
    );
    assert!(
        both.unwrap_err()
            .to_string()
            .contains("cannot both be given")
    );
}

/// One raw HTTP/1.1 exchange with the `Host` and headers given (a browser
/// after DNS rebinding sends its own name); the status and the body.
async fn raw(
    server: &MockArmorServer,
    method: &str,
    path: &str,
    host: &str,
    headers: &[&str],
    body: &str,
) -> (u16, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(server.addr()).await.unwrap();
    let mut request = format!("{method} {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n");
    for header in headers {
        request.push_str(header);
        request.push_str("\r\n");
    }
    request.push_str(&format!("Content-Length: {}\r\n\r\n{body}", body.len()));
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).await.unwrap();
    let status = answer
        .get(9..12)
        .and_then(|code| code.parse().ok())
        .unwrap_or(0);
    let body = answer
        .split_once("\r\n\r\n")
        .map(|(_, body)| body.to_owned())
        .unwrap_or_default();
    (status, body)
}

#[tokio::test]
async fn the_admin_api_answers_loopback_hosts_only() {
    let server = MockArmorServer::start().await.unwrap();
    let routes = [
        ("GET", "/__mock/journal", ""),
        ("DELETE", "/__mock/journal", ""),
        ("POST", "/__mock/keys", r#"{"user_id": 4922}"#),
        ("DELETE", "/__mock/keys/someone", ""),
        ("GET", "/__mock/clock", ""),
        ("POST", "/__mock/clock", r#"{"offset_seconds": 5}"#),
    ];
    for (method, path, body) in routes {
        // A web page's request after DNS rebinding: its own Host, text/plain.
        let (status, answer) = raw(
            &server,
            method,
            path,
            "evil.example:3000",
            &["Content-Type: text/plain"],
            body,
        )
        .await;
        assert_eq!(status, 403, "{method} {path}: {answer}");
        assert!(answer.contains("admin_host_forbidden"), "{answer}");
        assert!(!answer.contains("secret"), "{answer}");
    }
    for host in ["127.0.0.1", "localhost:3000", "[::1]:3000"] {
        let (status, answer) = raw(&server, "GET", "/__mock/clock", host, &[], "").await;
        assert_eq!(status, 200, "{host}: {answer}");
    }
    let (status, answer) = raw(
        &server,
        "POST",
        "/__mock/keys",
        "localhost",
        &["Content-Type: application/json"],
        r#"{"user_id": 4922}"#,
    )
    .await;
    assert_eq!(status, 201, "{answer}");
}

#[tokio::test]
async fn with_an_admin_token_the_admin_api_needs_it() {
    let server = MockArmorServer::builder()
        .admin_token("let-me-in")
        .start()
        .await
        .unwrap();
    let (status, answer) = raw(&server, "GET", "/__mock/journal", "127.0.0.1", &[], "").await;
    assert_eq!(status, 401, "{answer}");
    assert!(answer.contains("admin_token_required"), "{answer}");
    let (status, _) = raw(
        &server,
        "GET",
        "/__mock/journal",
        "127.0.0.1",
        &["Authorization: Bearer wrong"],
        "",
    )
    .await;
    assert_eq!(status, 401);
    let (status, answer) = raw(
        &server,
        "GET",
        "/__mock/journal",
        "127.0.0.1",
        &["Authorization: Bearer let-me-in"],
        "",
    )
    .await;
    assert_eq!(status, 200, "{answer}");
    // The token does not open the door to a foreign host.
    let (status, _) = raw(
        &server,
        "GET",
        "/__mock/journal",
        "evil.example",
        &["Authorization: Bearer let-me-in"],
        "",
    )
    .await;
    assert_eq!(status, 403);
}

#[tokio::test]
async fn the_admin_api_refuses_what_a_web_page_can_send() {
    let server = MockArmorServer::start().await.unwrap();
    // A simple cross-origin request: a loopback Host, text/plain, an Origin.
    let (status, answer) = raw(
        &server,
        "POST",
        "/__mock/clock",
        "127.0.0.1",
        &["Content-Type: text/plain"],
        r#"{"offset_seconds": 5}"#,
    )
    .await;
    assert_eq!(status, 415, "{answer}");
    let (status, answer) = raw(
        &server,
        "POST",
        "/__mock/keys",
        "127.0.0.1",
        &[
            "Content-Type: application/json",
            "Origin: http://evil.example",
        ],
        "{}",
    )
    .await;
    assert_eq!(status, 403, "{answer}");
    assert!(answer.contains("admin_origin_forbidden"), "{answer}");
    // An absolute-form target naming another host, and two Host headers.
    let (status, _) = raw(
        &server,
        "GET",
        "http://evil.example/__mock/journal",
        "localhost",
        &[],
        "",
    )
    .await;
    assert_eq!(status, 403);
    let (status, _) = raw(
        &server,
        "GET",
        "/__mock/journal",
        "localhost",
        &["Host: evil.example"],
        "",
    )
    .await;
    assert_eq!(status, 403);
    let drift = server
        .now()
        .abs_diff(armor_psk::Clock::now(&armor_psk::SystemClock));
    assert!(drift <= 2, "the clock was shifted by {drift} s");
}

#[tokio::test]
async fn the_admin_api_installs_a_given_key_and_adds_stubs_while_it_runs() {
    let server = MockArmorServer::start().await.unwrap();
    let admin = |method: &'static str, path: &str, body: &str| {
        let request = http::Request::builder()
            .method(method)
            .uri(format!("{}/__mock{path}", server.url()))
            .header("content-type", "application/json")
            .body(body.as_bytes().to_vec())
            .unwrap();
        common::web::exchange_async(request)
    };
    let installed = admin(
        "POST",
        "/keys",
        r#"{"key_id": "mine", "secret_key": "my-secret"}"#,
    )
    .await;
    assert_eq!(installed.status, 201, "{}", installed.text);
    assert_eq!(installed.body["key_id"], "mine");
    assert!(installed.body["user"].is_i64());
    assert!(!installed.text.contains("my-secret"));
    let signer = Signer::new("mine", "my-secret").unwrap();
    assert_eq!(get_signed(&server, &signer, "/me", None).await.status, 200);
    let half = admin("POST", "/keys", r#"{"key_id": "mine"}"#).await;
    assert_eq!(half.status, 400, "{}", half.text);

    let added = admin(
        "POST",
        "/stubs",
        r#"[{"method": "GET", "path": "/me", "body": {"stubbed": 1}},
        {"method": "GET", "path": "/vms/{id}", "status": 202, "text": "queued"}]"#,
    )
    .await;
    assert_eq!((added.status, &added.body), (201, &json!({"added": 2})));
    // Ahead of the built-in route.
    assert_eq!(
        get_signed(&server, &signer, "/me", None).await.body,
        json!({"stubbed": 1})
    );
    let vm = get_signed(&server, &signer, "/vms/7", None).await;
    assert_eq!((vm.status, vm.text.as_str()), (202, "queued"));
    let newer = admin(
        "POST",
        "/stubs",
        r#"{"method": "GET", "path": "/me", "body": {"stubbed": 2}}"#,
    )
    .await;
    assert_eq!(newer.status, 201);
    assert_eq!(
        get_signed(&server, &signer, "/me", None).await.body,
        json!({"stubbed": 2})
    );
    let broken = admin("POST", "/stubs", r#"{"method": "GET"}"#).await;
    assert_eq!(broken.status, 400);
    assert!(
        broken.text.contains("`path` is required"),
        "{}",
        broken.text
    );
    assert_eq!(admin("DELETE", "/stubs", "").await.status, 204);
    let me = get_signed(&server, &signer, "/me", None).await;
    assert!(
        me.body["user"].is_object(),
        "the built-in /me again: {}",
        me.body
    );
    server.shutdown().await.unwrap();
}
