//! Headless Chromium driven over WebDriver (fantoccini) for the console's browser tests.
//!
//! [`Browser::start`] finds `chromedriver` and `chromium` (Debian's `chromium` and
//! `chromium-driver`, installed by `.ci/run`); when they are absent it prints that the test was
//! skipped and returns `None`, unless `GATEWAY_TEST_REQUIRE_BROWSER=1` (then it panics). One
//! Chromium at a time in the whole test binary (a static lock), every wait bounded, and the
//! chromedriver process group (with the Chromium it started) killed on drop, pass or panic.
//!
//! [`Browser::axe`] injects axe-core (installed by `scripts/test-deps.sh` into `.tools/`) and
//! returns its critical and serious violations.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::wd::TimeoutConfiguration;
use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{Value, json};

/// Page loads, scripts and element waits give up after this; a hung browser fails the test.
pub const WAIT: Duration = Duration::from_secs(15);

/// One Chromium at a time: browser tests hold this for their whole run.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

const CHROMIUM: &[&str] = &["/usr/bin/chromium", "/usr/bin/chromium-browser"];

/// A critical or serious accessibility violation axe-core found.
#[derive(Debug, Clone)]
pub struct Violation {
    pub id: String,
    pub impact: String,
    pub help: String,
    /// CSS selectors of the offending elements.
    pub targets: Vec<String>,
}

/// A headless Chromium session behind its own chromedriver.
pub struct Browser {
    client: Option<Client>,
    driver: Child,
    _profile: tempfile::TempDir,
    _turn: tokio::sync::MutexGuard<'static, ()>,
}

fn find_on_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .map(|d| d.join(name))
        .chain(std::iter::once(Path::new("/usr/bin").join(name)))
        .find(|p| p.is_file())
}

fn required() -> bool {
    std::env::var("GATEWAY_TEST_REQUIRE_BROWSER").as_deref() == Ok("1")
}

/// The workspace's `target/` directory.
fn target_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../target")
}

/// Where `scripts/test-deps.sh` puts axe-core.
fn axe_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../.tools/node_modules/axe-core/axe.min.js")
}

fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind a free port");
    l.local_addr().unwrap().port()
}

impl Browser {
    /// Starts chromedriver and a headless Chromium, or `None` (printed) when they are not installed.
    pub async fn start() -> Option<Browser> {
        let driver = find_on_path("chromedriver");
        let chromium = CHROMIUM.iter().map(PathBuf::from).find(|p| p.is_file());
        let (Some(driver), Some(chromium)) = (driver, chromium) else {
            assert!(
                !required(),
                "chromium/chromedriver not installed and GATEWAY_TEST_REQUIRE_BROWSER=1 \
                 (apt-get install chromium chromium-driver)"
            );
            eprintln!("skipped: chromium/chromedriver not installed");
            return None;
        };
        let turn = ONE_AT_A_TIME.lock().await;
        let profile = tempfile::tempdir().expect("profile dir");
        let port = free_port();
        let log = std::fs::File::create(profile.path().join("chromedriver.log")).ok();
        let mut cmd = Command::new(&driver);
        cmd.arg(format!("--port={port}"))
            .arg("--allowed-ips=127.0.0.1")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log.map(Stdio::from).unwrap_or_else(Stdio::null));
        // Its own process group, so that drop can kill chromedriver and every Chromium process.
        std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
        let child = cmd.spawn().expect("spawn chromedriver");
        let mut b = Browser {
            client: None,
            driver: child,
            _profile: profile,
            _turn: turn,
        };
        let url = format!("http://127.0.0.1:{port}");
        wait_driver_ready(&url).await;
        let user_data = b._profile.path().join("chromium");
        let caps = json!({
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": chromium,
                "args": [
                    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                    "--window-size=1280,900", "--no-first-run", "--disable-extensions",
                    "--disable-background-networking", "--disable-sync",
                    format!("--user-data-dir={}", user_data.display()),
                ],
            },
        });
        let Value::Object(caps) = caps else {
            unreachable!()
        };
        let connector = hyper_util::client::legacy::connect::HttpConnector::new();
        let client = tokio::time::timeout(
            Duration::from_secs(60),
            ClientBuilder::new(connector)
                .capabilities(caps)
                .connect(&url),
        )
        .await
        .expect("Chromium started within 60 s")
        .expect("WebDriver session");
        client
            .update_timeouts(TimeoutConfiguration::new(
                Some(WAIT),
                Some(WAIT),
                Some(Duration::ZERO),
            ))
            .await
            .expect("set WebDriver timeouts");
        b.client = Some(client);
        Some(b)
    }

    pub fn client(&self) -> &Client {
        self.client.as_ref().expect("client")
    }

    /// Opens `url` (bounded by the page-load timeout).
    pub async fn goto(&self, url: &str) {
        bounded("goto", self.client().goto(url))
            .await
            .unwrap_or_else(|e| panic!("goto {url}: {e}"));
    }

    /// Waits (bounded) until an element matching `css` is present, and returns it.
    pub async fn wait_for(&self, css: &str) -> fantoccini::elements::Element {
        self.client()
            .wait()
            .at_most(WAIT)
            .for_element(Locator::Css(css))
            .await
            .unwrap_or_else(|e| panic!("no element {css} within {WAIT:?}: {e}"))
    }

    /// The visible text of the first element matching `css` (waited for).
    pub async fn text(&self, css: &str) -> String {
        let el = self.wait_for(css).await;
        bounded("text", el.text())
            .await
            .unwrap_or_else(|e| panic!("text of {css}: {e}"))
    }

    /// Waits (bounded) until the text of `css` contains `needle`; returns the text.
    pub async fn wait_for_text(&self, css: &str, needle: &str) -> String {
        let deadline = Instant::now() + WAIT;
        loop {
            let found = match self.client().find(Locator::Css(css)).await {
                Ok(el) => el.text().await.unwrap_or_default(),
                Err(_) => String::new(),
            };
            if found.contains(needle) {
                return found;
            }
            assert!(
                Instant::now() < deadline,
                "{css} did not contain {needle:?} within {WAIT:?}; it reads {found:?}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Replaces the value of the input matching `css`.
    pub async fn fill(&self, css: &str, value: &str) {
        let el = self.wait_for(css).await;
        bounded("clear", el.clear())
            .await
            .unwrap_or_else(|e| panic!("clear {css}: {e}"));
        bounded("send_keys", el.send_keys(value))
            .await
            .unwrap_or_else(|e| panic!("type into {css}: {e}"));
    }

    pub async fn click(&self, css: &str) {
        let el = self.wait_for(css).await;
        bounded("click", el.click())
            .await
            .unwrap_or_else(|e| panic!("click {css}: {e}"));
    }

    /// The page's HTML as the browser holds it now.
    pub async fn source(&self) -> String {
        bounded("source", self.client().source())
            .await
            .expect("page source")
    }

    /// Runs `script` in the page (bounded) and returns what it returns.
    pub async fn execute(&self, script: &str) -> Value {
        bounded("execute", self.client().execute(script, vec![]))
            .await
            .unwrap_or_else(|e| panic!("script failed: {e}\n{script}"))
    }

    /// The current value of the input (or textarea, or select) matching `css` (waited for): what
    /// the page's JavaScript put there, which the page's source does not show.
    pub async fn value(&self, css: &str) -> String {
        self.wait_for(css).await;
        let v = self
            .execute(&format!("return document.querySelector({css:?}).value;"))
            .await;
        v.as_str().unwrap_or_default().to_string()
    }

    /// The whole document as the browser holds it now (`outerHTML`, after every script ran).
    pub async fn dom(&self) -> String {
        let v = self
            .execute("return document.documentElement.outerHTML;")
            .await;
        v.as_str().unwrap_or_default().to_string()
    }

    /// The signed-in page's CSRF token (its `<meta name="csrf-token">`).
    pub async fn csrf(&self) -> String {
        let v = self
            .execute("var m = document.querySelector('meta[name=csrf-token]'); return m ? m.content : '';")
            .await;
        let t = v.as_str().unwrap_or_default().to_string();
        assert!(!t.is_empty(), "the page has no CSRF token");
        t
    }

    /// The value of a cookie of the current page (HttpOnly ones too), if set.
    pub async fn cookie(&self, name: &str) -> Option<String> {
        let all = bounded("cookies", self.client().get_all_cookies())
            .await
            .expect("cookies");
        all.iter()
            .find(|c| c.name() == name)
            .map(|c| c.value().to_string())
    }

    /// Saves a PNG of the window to `target/screenshots/<name>.png` and returns its path.
    pub async fn screenshot(&self, name: &str) -> PathBuf {
        let png = bounded("screenshot", self.client().screenshot())
            .await
            .expect("screenshot");
        assert!(
            png.starts_with(b"\x89PNG"),
            "the screenshot of {name} is not a PNG"
        );
        let dir = target_dir().join("screenshots");
        std::fs::create_dir_all(&dir).expect("screenshots dir");
        let path = dir.join(format!("{name}.png"));
        std::fs::write(&path, png).expect("write screenshot");
        path
    }

    /// Runs axe-core on the current page; returns its critical and serious violations. Panics
    /// when axe-core is not installed and GATEWAY_TEST_REQUIRE_BROWSER=1; otherwise prints that
    /// the check was skipped and returns none.
    pub async fn axe(&self, name: &str) -> Vec<Violation> {
        let path = axe_path();
        let Ok(source) = std::fs::read_to_string(&path) else {
            assert!(
                !required(),
                "axe-core is not installed at {} (run ./scripts/test-deps.sh) and \
                 GATEWAY_TEST_REQUIRE_BROWSER=1",
                path.display()
            );
            eprintln!(
                "skipped accessibility check of {name}: axe-core not installed (./scripts/test-deps.sh)"
            );
            return Vec::new();
        };
        bounded("inject axe-core", self.client().execute(&source, vec![]))
            .await
            .expect("inject axe-core");
        let run = "const done = arguments[arguments.length - 1];\n\
                   axe.run(document, { resultTypes: ['violations'] })\n\
                     .then(r => done({ violations: r.violations }))\n\
                     .catch(e => done({ error: String(e) }));";
        let out = bounded("axe.run", self.client().execute_async(run, vec![]))
            .await
            .expect("axe.run");
        if let Some(e) = out.get("error") {
            panic!("axe-core failed on {name}: {e}");
        }
        let all = out["violations"].as_array().cloned().unwrap_or_default();
        all.iter()
            .filter(|v| matches!(v["impact"].as_str(), Some("critical" | "serious")))
            .map(|v| Violation {
                id: v["id"].as_str().unwrap_or_default().to_string(),
                impact: v["impact"].as_str().unwrap_or_default().to_string(),
                help: v["help"].as_str().unwrap_or_default().to_string(),
                targets: v["nodes"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|n| n["target"].to_string())
                    .collect(),
            })
            .collect()
    }

    /// Fails the test when axe-core finds a critical or serious violation on the current page.
    pub async fn assert_accessible(&self, name: &str) {
        let found = self.axe(name).await;
        assert!(
            found.is_empty(),
            "axe-core found critical/serious accessibility violations on {name}: {found:#?}"
        );
    }

    /// Ends the WebDriver session politely, then stops chromedriver (drop does the rest).
    pub async fn close(mut self) {
        if let Some(c) = self.client.take() {
            let _ = tokio::time::timeout(Duration::from_secs(10), c.close()).await;
        }
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        // The whole group: chromedriver and the Chromium processes it started.
        let pid = rustix::process::Pid::from_child(&self.driver);
        let _ = rustix::process::kill_process_group(pid, rustix::process::Signal::KILL);
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

/// A WebDriver command that must answer within [`WAIT`] (plus slack).
async fn bounded<T, E: std::fmt::Display>(
    what: &str,
    fut: impl std::future::Future<Output = Result<T, E>>,
) -> Result<T, String> {
    match tokio::time::timeout(WAIT + Duration::from_secs(5), fut).await {
        Ok(r) => r.map_err(|e| e.to_string()),
        Err(_) => Err(format!(
            "{what}: no answer from the browser within {WAIT:?}"
        )),
    }
}

async fn wait_driver_ready(url: &str) {
    let client = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Ok(r) = client.get(format!("{url}/status")).send().await
            && r.status().is_success()
        {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "chromedriver did not answer on {url} within 20 s"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
