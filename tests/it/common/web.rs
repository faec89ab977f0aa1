//! One HTTP exchange from a blocking client (ureq) that takes any method
//! and treats no status as an error: the tests of the mock and the CLI.

use serde_json::Value;

/// The status, headers and body of one exchange.
pub struct Reply {
    pub status: u16,
    pub headers: http::HeaderMap,
    pub text: String,
    /// The body as JSON, or as a JSON string when it is not JSON.
    pub body: Value,
}

/// Sends `request` and reads the whole answer.
pub fn exchange(request: http::Request<Vec<u8>>) -> Reply {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .allow_non_standard_methods(true)
        .build()
        .into();
    let mut response = agent.run(request).expect("HTTP exchange");
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let text = response.body_mut().read_to_string().unwrap_or_default();
    let body = serde_json::from_str(&text).unwrap_or_else(|_| Value::String(text.clone()));
    Reply {
        status,
        headers,
        text,
        body,
    }
}

/// [`exchange`] off the async runtime's threads.
pub async fn exchange_async(request: http::Request<Vec<u8>>) -> Reply {
    tokio::task::spawn_blocking(move || exchange(request))
        .await
        .expect("the exchange's thread")
}

/// A bodiless request: `method` on `url` with `headers`.
pub fn request(method: &str, url: &str, headers: &[(&str, &str)]) -> http::Request<Vec<u8>> {
    let mut request = http::Request::builder().method(method).uri(url);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    request.body(Vec::new()).expect("a valid request")
}
