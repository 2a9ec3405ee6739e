//! Plugins in Rust, JavaScript and Python, as a plugin author makes them: `webhook-gateway plugin
//! new` writes a transformer and an authenticator project, the language's own tool builds them
//! (cargo for wasm32-wasip2, componentize-js from .tools/, componentize-py from .venv/), their
//! sample tests pass, `plugin run` runs them from the project folder, and uploaded through the API
//! they shape and sign a real delivery to a local receiver.
//!
//! A missing tool skips its language with a printed reason unless
//! `GATEWAY_TEST_REQUIRE_PLUGIN_LANGS=1` (`.ci/run` sets it; `./scripts/test-deps.sh` installs them).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use hmac::{Hmac, Mac};
use serde_json::json;
use sha2::Sha256;

use super::plugins::upload;
use crate::support::{Receiver, TestGateway};

/// A build of a JS or Python component takes about 30 s here; a release Rust build a few minutes.
const BUILD_LIMIT: Duration = Duration::from_secs(900);
const WAIT: Duration = Duration::from_secs(60);

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The gateway binary, as a user runs it.
fn gateway() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_gateway-under-test"));
    for (k, _) in std::env::vars_os() {
        if k.to_string_lossy().starts_with("GATEWAY_") {
            cmd.env_remove(k);
        }
    }
    cmd
}

/// Runs `cmd` to completion within `limit`, killing it past that; panics unless it succeeds.
/// Returns its stdout.
pub(crate) fn run(mut cmd: Command, limit: Duration, what: &str) -> String {
    let out_file = tempfile::NamedTempFile::new().unwrap();
    let err_file = tempfile::NamedTempFile::new().unwrap();
    cmd.stdin(Stdio::null())
        .stdout(out_file.reopen().unwrap())
        .stderr(err_file.reopen().unwrap());
    let mut child = cmd.spawn().unwrap_or_else(|e| panic!("{what}: {e}"));
    let started = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if started.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{what}: still running after {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let out = std::fs::read_to_string(out_file.path()).unwrap_or_default();
    let err = std::fs::read_to_string(err_file.path()).unwrap_or_default();
    assert!(status.success(), "{what} failed ({status}):\n{out}\n{err}");
    out
}

/// The tool a language's build needs, or `None` after printing why its test is skipped.
fn tool(lang: &str) -> Option<PathBuf> {
    let (path, hint) = match lang {
        "rust" => return Some(PathBuf::from("cargo")),
        "js" => (
            root().join(".tools/node_modules/.bin/componentize-js"),
            "componentize-js",
        ),
        _ => (root().join(".venv/bin/componentize-py"), "componentize-py"),
    };
    let node_ok = lang != "js" || Command::new("node").arg("--version").output().is_ok();
    if path.is_file() && node_ok {
        return Some(path);
    }
    assert!(
        std::env::var("GATEWAY_TEST_REQUIRE_PLUGIN_LANGS").as_deref() != Ok("1"),
        "{hint} is not installed (run ./scripts/test-deps.sh) and GATEWAY_TEST_REQUIRE_PLUGIN_LANGS=1"
    );
    eprintln!("SKIPPED {lang} plugins: {hint} is not installed (./scripts/test-deps.sh)");
    None
}

/// `plugin new` into `parent`, the project's sample test, its build; returns the component.
fn make(lang: &str, role: &str, name: &str, parent: &Path, tool: &Path) -> Vec<u8> {
    let mut new = gateway();
    new.current_dir(parent)
        .args(["plugin", "new", name, "--lang", lang, "--role", role]);
    let said = run(new, Duration::from_secs(60), "plugin new");
    assert!(said.contains("created"), "{said}");
    let dir = parent.join(name);
    let in_dir = |program: &Path| {
        let mut c = Command::new(program);
        c.current_dir(&dir);
        c
    };
    let wasm = match lang {
        "rust" => {
            // One target folder for every Rust project of the run: the SDK and its
            // dependencies compile once.
            let target = parent.join("cargo-target");
            let mut test = in_dir(tool);
            test.env("CARGO_TARGET_DIR", &target).arg("test");
            let said = run(test, BUILD_LIMIT, "cargo test");
            assert!(said.contains("test result: ok. 2 passed"), "{said}");
            let mut build = in_dir(tool);
            build.env("CARGO_TARGET_DIR", &target).args([
                "build",
                "--release",
                "--target",
                "wasm32-wasip2",
            ]);
            run(build, BUILD_LIMIT, "cargo build");
            target.join(format!(
                "wasm32-wasip2/release/{}.wasm",
                name.replace('-', "_")
            ))
        }
        "js" => {
            let test = run(
                {
                    let mut c = in_dir(Path::new("node"));
                    c.arg("--test");
                    c
                },
                Duration::from_secs(120),
                "node --test",
            );
            assert!(
                test.contains("# fail 0") && !test.contains("# pass 0"),
                "{test}"
            );
            // The project's own build script, with componentize-js from .tools/ on the PATH
            // (what `npm install` would bring).
            let bin = tool.parent().unwrap();
            let path = std::env::join_paths(
                std::iter::once(bin.to_path_buf())
                    .chain(std::env::split_paths(&std::env::var_os("PATH").unwrap())),
            )
            .unwrap();
            let mut build = in_dir(Path::new("npm"));
            build.env("PATH", path).args(["run", "build"]);
            run(build, BUILD_LIMIT, "npm run build");
            dir.join(format!("{name}.wasm"))
        }
        _ => {
            let python = root().join(".venv/bin/python");
            let mut test = in_dir(&python);
            test.args(["-m", "unittest"]);
            run(test, Duration::from_secs(120), "python -m unittest");
            let mut build = in_dir(tool);
            build.args(["-d", "wit", "-w", role, "componentize", "app", "-o"]);
            build.arg(format!("{name}.wasm"));
            run(build, BUILD_LIMIT, "componentize-py");
            dir.join(format!("{name}.wasm"))
        }
    };
    std::fs::read(&wasm).unwrap_or_else(|e| panic!("{}: {e}", wasm.display()))
}

/// `plugin run` from the project folder with the README's relative paths.
fn plugin_run(dir: &Path, wasm: &str, extra: &[&str]) -> String {
    let mut cmd = gateway();
    cmd.current_dir(dir).args([
        "plugin",
        "run",
        "--plugin",
        wasm,
        "--event",
        "fixtures/incident_triggered.json",
    ]);
    cmd.args(extra);
    run(cmd, Duration::from_secs(300), "plugin run")
}

fn hmac_hex(key: &str, body: &[u8]) -> String {
    let mut m = Hmac::<Sha256>::new_from_slice(key.as_bytes()).unwrap();
    m.update(body);
    hex::encode(m.finalize().into_bytes())
}

/// The whole path for one language: new, test, build, run, upload, deliver.
async fn language_end_to_end(lang: &str) {
    let Some(tool) = tool(lang) else { return };
    let tmp = tempfile::tempdir().unwrap();
    let parent = tmp.path().to_path_buf();
    let (t_name, a_name) = (format!("{lang}-message"), format!("{lang}-signer"));
    let (transformer, authenticator) = {
        let (p, t, tn, an) = (parent.clone(), tool.clone(), t_name.clone(), a_name.clone());
        let l = lang.to_string();
        tokio::task::spawn_blocking(move || {
            (
                make(&l, "transformer", &tn, &p, &t),
                make(&l, "authenticator", &an, &p, &t),
            )
        })
        .await
        .unwrap()
    };

    // `plugin run` resolves the component and event from the current folder.
    let wasm = format!("{t_name}.wasm");
    std::fs::write(parent.join(&t_name).join(&wasm), &transformer).unwrap();
    let dir = parent.join(&t_name);
    let said = tokio::task::spawn_blocking(move || {
        plugin_run(&dir, &wasm, &["--repeat", "5", "--webhook-name", "langs"])
    })
    .await
    .unwrap();
    assert!(
        said.contains("[TRIGGERED] Sample incident for testing webhooks (Team 2 Service 1)"),
        "{said}"
    );
    assert!(said.contains("calls: 5, per call p50"), "{said}");

    let rx = Receiver::start().await;
    let gw = TestGateway::start().await;
    let (s, p) = upload(&gw, &t_name, "0.1.0", transformer).await;
    assert_eq!(s, 201, "{lang} transformer upload: {p}");
    assert_eq!(p["kind"], "transformer");
    let (s, p) = upload(&gw, &a_name, "0.1.0", authenticator).await;
    assert_eq!(s, 201, "{lang} authenticator upload: {p}");
    assert_eq!(p["kind"], "authenticator");
    gw.create_webhook(json!({
        "name": format!("{lang} chat"), "url": rx.url("/chat"), "trigger_events": ["incident.triggered"],
        "plugins": [{"name": t_name}],
        "secrets": {"partner_key": "k3y-for-the-test"},
        "authenticator": {"name": a_name, "config": {"secret": "partner_key", "header": "X-Partner-Signature"}},
    }))
    .await;
    gw.post_event(&crate::support::fixture(
        "squadcast/incident_triggered.json",
    ))
    .await;
    let got = rx.wait_for(1, WAIT).await;
    let r = &got[0];
    assert_eq!(r.path, "/chat");
    assert_eq!(
        r.json(),
        json!({"text": "[TRIGGERED] Sample incident for testing webhooks (Team 2 Service 1)"}),
        "{lang}"
    );
    let signature = r
        .header("x-partner-signature")
        .unwrap_or_else(|| panic!("{lang}: the authenticator's header is missing"));
    assert_eq!(
        signature,
        format!("sha256={}", hmac_hex("k3y-for-the-test", &r.body)),
        "{lang}: the signature covers the body as sent, with the named secret"
    );
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rust_plugin_new_builds_tests_runs_and_delivers() {
    language_end_to_end("rust").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn javascript_plugin_new_builds_tests_runs_and_delivers() {
    language_end_to_end("js").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_plugin_new_builds_tests_runs_and_delivers() {
    language_end_to_end("python").await;
}

/// `plugin run` through the binary: paths from the current folder, context flags reach the
/// plugin, `--repeat` reports per-call percentiles, and a limit flag is enforced.
#[test]
fn plugin_run_takes_paths_from_the_current_folder_context_flags_and_limits() {
    let tmp = tempfile::tempdir().unwrap();
    let guest = Path::new(gateway::testing::GUESTS_DIR).join("template.wasm");
    std::fs::create_dir_all(tmp.path().join("p")).unwrap();
    std::fs::copy(&guest, tmp.path().join("p/template.wasm")).unwrap();
    std::fs::write(
        tmp.path().join("event.json"),
        r#"{"event_type": "incident_triggered", "message": "m"}"#,
    )
    .unwrap();
    std::fs::write(
        tmp.path().join("config.json"),
        r#"{"body": "{{webhook.name}}|{{webhook.event_type}}|{{webhook.attempt}}|{{webhook.now_ms}}|{{webhook.url}}"}"#,
    )
    .unwrap();
    let args = |extra: &[&str]| {
        let mut cmd = gateway();
        cmd.current_dir(tmp.path()).args([
            "plugin",
            "run",
            "--plugin",
            "p/template.wasm",
            "--event",
            "event.json",
            "--config",
            "config.json",
        ]);
        cmd.args(extra);
        cmd
    };
    let said = run(
        args(&[
            "--webhook-name",
            "ops",
            "--event-type",
            "incident.resolved",
            "--attempt",
            "3",
            "--now-ms",
            "1700000000000",
            "--url",
            "https://hooks.example/x",
            "--repeat",
            "7",
        ]),
        Duration::from_secs(300),
        "plugin run",
    );
    assert!(
        said.contains("ops|incident.resolved|3|1700000000000|https://hooks.example/x"),
        "{said}"
    );
    assert!(said.contains("POST https://hooks.example/x"), "{said}");
    assert!(said.contains("calls: 7, per call p50 "), "{said}");
    assert!(said.contains(" ms, p99 "), "{said}");
    // Fuel is the repeatable cost: the same input costs the same fuel on every call and run.
    let fuel = |text: &str| -> (u64, u64, u64) {
        let line = text
            .lines()
            .find_map(|l| l.strip_prefix("fuel per call: "))
            .unwrap_or_else(|| panic!("no fuel line in {text}"));
        let n: Vec<u64> = line
            .split(|c: char| !c.is_ascii_digit())
            .filter(|w| !w.is_empty())
            .take(3)
            .map(|w| w.parse().unwrap())
            .collect();
        (n[0], n[1], n[2])
    };
    let (p50, min, max) = fuel(&said);
    assert!(p50 > 0 && min == max && p50 == min, "{said}");

    // One call unless --repeat says otherwise.
    let once = run(args(&[]), Duration::from_secs(300), "plugin run");
    assert!(!once.contains("calls:"), "{once}");
    assert!(once.contains("plugin run|incident.triggered|1|"), "{once}");
    assert!(fuel(&once).0 > 0, "{once}");

    // A memory limit below what the plugin needs fails the run, naming the limit.
    let mut tight = args(&["--memory-mib", "1"]);
    let out = tight.output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!out.status.success(), "{text}");
    assert!(text.contains("memory"), "{text}");
}
