//! Instructions per request, counted by callgrind: a 200 B request through
//! the layer without a replay store, the bare inner service, and the crypto
//! floor. Unlike time, the count does not move with the machine's load.
//!
//! `cargo bench --bench instructions` runs itself under
//! `valgrind --tool=callgrind` twice per form (1,000 and 11,000 requests)
//! and divides the difference by 10,000, so start-up and warm-up cancel
//! out. The layer's added cost is (layer − bare) ÷ floor, as in the
//! `layer` bench. Needs `valgrind` on the `PATH`.

mod common;

use std::hint::black_box;
use std::process::Command;

use armor_psk::{ArmorPskLayer, ManualClock, keys::MemoryKeyStore};
use bytes::Bytes;
use common::{Fixture, KEY_ID, NOW, NoReplayStore, PATH, SECRET, inner};
use http::Request;
use http_body_util::Full;
use tower::{Layer, ServiceExt, service_fn};

const FORMS: [&str; 3] = ["bare", "layer", "floor"];
const FEW: u64 = 1_000;
const MANY: u64 = 11_000;

fn request(fixture: &mut Fixture, body: &Bytes) -> Request<Full<Bytes>> {
    Request::post(PATH)
        .header("authorization", fixture.header())
        .body(Full::new(body.clone()))
        .unwrap()
}

/// Runs `count` requests of `form` (the child process).
fn run(form: &str, count: u64) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let mut fixture = Fixture::new(200);
    let body = Bytes::from(fixture.body.clone());
    let layer = ArmorPskLayer::new(MemoryKeyStore::new().with_key(KEY_ID, SECRET))
        .with_clock(ManualClock::new(NOW))
        .with_replay_store(NoReplayStore)
        .layer(service_fn(inner));
    let bare = service_fn(inner);
    for _ in 0..count {
        let status = match form {
            "bare" => {
                let request = request(&mut fixture, &body);
                runtime.block_on(bare.oneshot(request)).unwrap().status()
            }
            "layer" => {
                let request = request(&mut fixture, &body);
                runtime
                    .block_on(layer.clone().oneshot(request))
                    .unwrap()
                    .status()
            }
            "floor" => {
                black_box(fixture.floor());
                http::StatusCode::OK
            }
            other => panic!("unknown form {other}"),
        };
        assert_eq!(status, 200);
    }
}

/// Instructions callgrind counts for `count` requests of `form`, and the
/// calls to `malloc` and `realloc` it saw.
fn count(form: &str, count: u64) -> (u64, u64) {
    let me = std::env::current_exe().unwrap();
    let out = std::env::temp_dir().join(format!("armor-psk-callgrind-{}", std::process::id()));
    let output = Command::new("valgrind")
        .arg("--tool=callgrind")
        .arg(format!("--callgrind-out-file={}", out.display()))
        .arg(me)
        .args(["--child", form, &count.to_string()])
        .output()
        .expect("valgrind on the PATH");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "valgrind failed: {stderr}");
    let instructions = stderr
        .lines()
        .find_map(|line| line.split("Collected :").nth(1))
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or_else(|| panic!("no instruction count in: {stderr}"));
    let profile = std::fs::read_to_string(&out).unwrap();
    let _ = std::fs::remove_file(&out);
    (instructions, allocations(&profile))
}

/// The calls to libc's `malloc` and `realloc` in a callgrind profile: the
/// `calls=` line after each `cfn=` naming them. Callgrind names a function
/// in full once, in an `fn=` or a `cfn=` line (`cfn=(7) malloc`), then by
/// its number alone (`cfn=(7)`).
fn allocations(profile: &str) -> u64 {
    let mut ids = std::collections::HashSet::new();
    let mut counting = false;
    let mut total = 0;
    for line in profile.lines() {
        let callee = line.strip_prefix("cfn=");
        if let Some(function) = callee.or_else(|| line.strip_prefix("fn=")) {
            let (id, name) = function.split_once(' ').unwrap_or((function, ""));
            if name == "malloc" || name == "realloc" {
                ids.insert(id.to_owned());
            }
            counting = callee.is_some() && ids.contains(id);
        } else if let Some(calls) = line.strip_prefix("calls=") {
            if counting {
                let n = calls.split(' ').next().and_then(|n| n.parse::<u64>().ok());
                total += n.expect("calls=<count> <target>");
            }
            counting = false;
        }
    }
    total
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if let Some(at) = args.iter().position(|arg| arg == "--child") {
        run(&args[at + 1], args[at + 2].parse().unwrap());
        return;
    }
    println!("instructions per 200 B request (callgrind, ({MANY} − {FEW}) requests)");
    println!("  form   instructions  allocations");
    let per_request: Vec<f64> = FORMS
        .iter()
        .map(|form| {
            let (few, few_allocations) = count(form, FEW);
            let (many, many_allocations) = count(form, MANY);
            let n = (many - few) as f64 / (MANY - FEW) as f64;
            let allocations = (many_allocations - few_allocations) as f64 / (MANY - FEW) as f64;
            println!("  {form:<6} {n:>12.0}  {allocations:>11.1}");
            n
        })
        .collect();
    let [bare, layer, floor] = per_request[..] else {
        unreachable!("three forms")
    };
    println!(
        "  added by the layer without a store, ÷ floor: {:.2}",
        (layer - bare) / floor
    );
}
