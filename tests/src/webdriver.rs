//! A small WebDriver client over HTTP (reqwest), driving Debian's headless `chromium` through
//! `chromedriver`, or Debian's `firefox-esr` through `geckodriver` (built from crates.io by
//! `cargo xtask bootstrap`): enough for the console's browser test (navigate, find, click, type,
//! run scripts, screenshots, the page's errors). No browser download, no heavy crate.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use base64::Engine as _;
use serde_json::{Value, json};

use crate::process::{Managed, free_port, wait_for_port};

/// The W3C element reference key.
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

/// WebDriver's key code for Escape.
pub const ESCAPE: &str = "\u{E00C}";

/// Which browser.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Engine {
    /// Debian's `chromium` through `chromedriver`.
    Chromium,
    /// Debian's `firefox-esr` through `geckodriver`.
    Firefox,
}

impl Engine {
    /// Lowercase name (directories, messages).
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Self::Chromium => "chromium",
            Self::Firefox => "firefox",
        }
    }
}

/// Collects the page's uncaught errors, rejections and CSP violations from the moment it runs
/// (Firefox's driver has no console-log endpoint), and returns those seen so far.
const ERROR_HOOK: &str = "if (!window.__keywardErrors) {
  window.__keywardErrors = [];
  const keep = (m) => window.__keywardErrors.push(String(m));
  addEventListener('error', (e) => keep(e.message || e.type));
  addEventListener('unhandledrejection', (e) => keep(`unhandled rejection: ${e.reason}`));
  addEventListener('securitypolicyviolation', (e) => keep(`CSP: ${e.violatedDirective} ${e.blockedURI}`));
}
return window.__keywardErrors;";

/// A driver process and one browser session, both ended on drop.
#[derive(Debug)]
pub struct Browser {
    base: String,
    session: String,
    http: reqwest::Client,
    driver: Managed,
    engine: Engine,
}

/// An element of the page.
#[derive(Debug, Clone)]
pub struct Element(String);

impl Element {
    /// The element as a script argument.
    #[must_use]
    pub fn reference(&self) -> Value {
        json!({ ELEMENT: self.0 })
    }
}

/// One line of the browser's console.
#[derive(Debug, Clone)]
pub struct LogEntry {
    pub level: String,
    pub message: String,
}

impl Browser {
    /// Starts the driver of `engine` (logging to `log`) and a headless session of 1280×900.
    ///
    /// # Errors
    /// When the browser or its driver is missing (`cargo xtask bootstrap` installs them) or the
    /// session cannot be created.
    pub async fn start(engine: Engine, log: &Path) -> Result<Self> {
        let (driver_bin, caps) = match engine {
            Engine::Chromium => chromium_caps()?,
            Engine::Firefox => firefox_caps()?,
        };
        let port = free_port()?;
        let mut cmd = Command::new(driver_bin);
        cmd.arg(format!("--port={port}"));
        let mut driver = Managed::spawn(engine.name(), cmd, log)?;
        let mut driver = tokio::task::spawn_blocking(move || {
            wait_for_port(&mut driver, port, Duration::from_secs(20)).map(|()| driver)
        })
        .await??;
        let base = format!("http://127.0.0.1:{port}");
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(60))
            .build()?;
        let answer: Value = http
            .post(format!("{base}/session"))
            .json(&caps)
            .send()
            .await
            .context("creating a WebDriver session")?
            .json()
            .await?;
        let Some(session) = answer["value"]["sessionId"].as_str() else {
            driver.check_running()?;
            bail!("{} refused the session: {answer}", engine.name());
        };
        let browser = Self {
            base,
            session: session.to_owned(),
            http,
            driver,
            engine,
        };
        browser
            .cmd("POST", "timeouts", json!({"script": 60_000, "implicit": 0}))
            .await?;
        browser
            .cmd("POST", "window/rect", json!({"width": 1280, "height": 900}))
            .await?;
        Ok(browser)
    }

    async fn cmd(&self, method: &str, path: &str, body: Value) -> Result<Value> {
        let url = format!("{}/session/{}/{path}", self.base, self.session);
        let req = match method {
            "GET" => self.http.get(&url),
            "DELETE" => self.http.delete(&url),
            _ => self.http.post(&url).json(&body),
        };
        let answer: Value = req
            .send()
            .await
            .with_context(|| format!("WebDriver {method} {path}"))?
            .json()
            .await
            .with_context(|| format!("WebDriver {method} {path}: not JSON"))?;
        if let Some(error) = answer["value"]["error"].as_str() {
            bail!(
                "WebDriver {method} {path}: {error}: {}",
                answer["value"]["message"].as_str().unwrap_or_default()
            );
        }
        Ok(answer["value"].clone())
    }

    /// Opens `url`.
    ///
    /// # Errors
    /// When the driver fails.
    pub async fn goto(&self, url: &str) -> Result<()> {
        self.cmd("POST", "url", json!({"url": url})).await.map(drop)
    }

    /// The address bar's URL.
    ///
    /// # Errors
    /// When the driver fails.
    pub async fn url(&self) -> Result<String> {
        Ok(self
            .cmd("GET", "url", Value::Null)
            .await?
            .as_str()
            .unwrap_or_default()
            .to_owned())
    }

    /// The first element matching `css` now, if any.
    ///
    /// # Errors
    /// When the driver fails.
    pub async fn try_find(&self, css: &str) -> Result<Option<Element>> {
        let found = self
            .cmd(
                "POST",
                "elements",
                json!({"using": "css selector", "value": css}),
            )
            .await?;
        Ok(found
            .as_array()
            .and_then(|a| a.first())
            .and_then(|e| e[ELEMENT].as_str())
            .map(|id| Element(id.to_owned())))
    }

    /// Waits (up to 30 s) for an element matching `css` that is displayed.
    ///
    /// # Errors
    /// When none appears in time.
    pub async fn find(&self, css: &str) -> Result<Element> {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(e) = self.try_find(css).await?
                && self.displayed(&e).await.unwrap_or(false)
            {
                return Ok(e);
            }
            if Instant::now() > deadline {
                bail!("no visible element matches {css:?} after 30 s");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Waits (up to 30 s) until `script` (a function body) returns a truthy value; returns it.
    ///
    /// # Errors
    /// When it stays falsy.
    pub async fn wait_until(&self, what: &str, script: &str, args: Value) -> Result<Value> {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let v = self.execute(script, args.clone()).await?;
            if !(v.is_null() || v == false || v == "") {
                return Ok(v);
            }
            if Instant::now() > deadline {
                bail!("waited 30 s for {what}");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    async fn displayed(&self, e: &Element) -> Result<bool> {
        Ok(self
            .cmd("GET", &format!("element/{}/displayed", e.0), Value::Null)
            .await?
            .as_bool()
            .unwrap_or(false))
    }

    /// Clicks `e`.
    ///
    /// # Errors
    /// When the driver fails (e.g. something else would receive the click).
    pub async fn click(&self, e: &Element) -> Result<()> {
        self.cmd("POST", &format!("element/{}/click", e.0), json!({}))
            .await
            .map(drop)
    }

    /// Clicks the first visible element matching `css`.
    ///
    /// # Errors
    /// When there is none or the click fails.
    pub async fn click_css(&self, css: &str) -> Result<()> {
        let e = self.find(css).await?;
        self.click(&e).await
    }

    /// Replaces the value of the field matching `css` with `text`, as typed keys.
    ///
    /// # Errors
    /// When there is no such field.
    pub async fn fill(&self, css: &str, text: &str) -> Result<()> {
        let e = self.find(css).await?;
        self.cmd("POST", &format!("element/{}/clear", e.0), json!({}))
            .await?;
        self.type_into(&e, text).await
    }

    /// Sends `text` as key presses to `e`.
    ///
    /// # Errors
    /// When the driver fails.
    pub async fn type_into(&self, e: &Element, text: &str) -> Result<()> {
        self.cmd(
            "POST",
            &format!("element/{}/value", e.0),
            json!({"text": text}),
        )
        .await
        .map(drop)
    }

    /// The rendered text of `e`.
    ///
    /// # Errors
    /// When the driver fails.
    pub async fn text(&self, e: &Element) -> Result<String> {
        Ok(self
            .cmd("GET", &format!("element/{}/text", e.0), Value::Null)
            .await?
            .as_str()
            .unwrap_or_default()
            .to_owned())
    }

    /// Presses `keys` in whatever has the focus.
    ///
    /// # Errors
    /// When the driver fails.
    pub async fn press(&self, keys: &str) -> Result<()> {
        let actions: Vec<Value> = keys
            .chars()
            .flat_map(|c| {
                [
                    json!({"type": "keyDown", "value": c.to_string()}),
                    json!({"type": "keyUp", "value": c.to_string()}),
                ]
            })
            .collect();
        self.cmd(
            "POST",
            "actions",
            json!({"actions": [{"type": "key", "id": "keyboard", "actions": actions}]}),
        )
        .await?;
        self.cmd("DELETE", "actions", Value::Null).await.map(drop)
    }

    /// Runs `script` (a function body; `arguments` holds `args`) in the page and returns its value.
    ///
    /// # Errors
    /// When the script throws or the driver fails.
    pub async fn execute(&self, script: &str, args: Value) -> Result<Value> {
        self.cmd(
            "POST",
            "execute/sync",
            json!({"script": script, "args": args}),
        )
        .await
    }

    /// Runs `script` whose last argument is the callback that ends it.
    ///
    /// # Errors
    /// When the script throws, times out, or the driver fails.
    pub async fn execute_async(&self, script: &str, args: Value) -> Result<Value> {
        self.cmd(
            "POST",
            "execute/async",
            json!({"script": script, "args": args}),
        )
        .await
    }

    /// Writes a PNG of the viewport to `path`.
    ///
    /// # Errors
    /// When the driver fails or the file cannot be written.
    pub async fn screenshot(&self, path: &Path) -> Result<PathBuf> {
        let b64 = self.cmd("GET", "screenshot", Value::Null).await?;
        let png = base64::engine::general_purpose::STANDARD
            .decode(b64.as_str().unwrap_or_default())
            .context("the screenshot is not base64")?;
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        std::fs::write(path, png).with_context(|| format!("writing {}", path.display()))?;
        Ok(path.to_owned())
    }

    /// The browser console's entries since the last call (chromedriver's `goog:loggingPrefs`).
    ///
    /// # Errors
    /// When the driver fails.
    pub async fn console_log(&self) -> Result<Vec<LogEntry>> {
        if self.engine == Engine::Firefox {
            let seen = self.execute(ERROR_HOOK, json!([])).await?;
            return Ok(seen
                .as_array()
                .into_iter()
                .flatten()
                .map(|m| LogEntry {
                    level: "SEVERE".to_owned(),
                    message: m.as_str().unwrap_or_default().to_owned(),
                })
                .collect());
        }
        let entries = self
            .cmd("POST", "se/log", json!({"type": "browser"}))
            .await?;
        Ok(entries
            .as_array()
            .into_iter()
            .flatten()
            .map(|e| LogEntry {
                level: e["level"].as_str().unwrap_or_default().to_owned(),
                message: e["message"].as_str().unwrap_or_default().to_owned(),
            })
            .collect())
    }

    /// Ends the session and the driver.
    pub async fn quit(mut self) {
        let _ = self.cmd("DELETE", "", Value::Null).await;
        self.driver.stop();
    }
}

fn which(program: &str) -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|p| p.join(program))
            .find(|p| p.is_file())
    })
}

/// chromedriver and the capabilities of a headless Chromium session.
fn chromium_caps() -> Result<(PathBuf, Value)> {
    let chromium = which("chromium").or_else(|| which("chromium-browser")).context(
        "no `chromium` on PATH: run `cargo xtask bootstrap` (apt-get install chromium chromium-driver)",
    )?;
    let driver = which("chromedriver").context(
        "no `chromedriver` on PATH: run `cargo xtask bootstrap` (apt-get install chromium-driver)",
    )?;
    let caps = json!({"capabilities": {"alwaysMatch": {
        "browserName": "chrome",
        "goog:chromeOptions": {
            "binary": chromium,
            "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                     "--window-size=1280,900", "--no-first-run", "--disable-extensions",
                     "--disable-background-networking", "--disable-sync", "--lang=en-US"],
        },
        "goog:loggingPrefs": {"browser": "ALL"},
    }}});
    Ok((driver, caps))
}

/// geckodriver (from the bootstrap's tools directory, else PATH) and the capabilities of a
/// headless Firefox session that stays off the network (no updates, telemetry or studies).
fn firefox_caps() -> Result<(PathBuf, Value)> {
    let firefox = which("firefox-esr").or_else(|| which("firefox")).context(
        "no `firefox-esr` on PATH: run `cargo xtask bootstrap` (apt-get install firefox-esr)",
    )?;
    let driver = crate::paths::tools_dir()
        .ok()
        .and_then(|tools| std::fs::read_dir(tools).ok())
        .into_iter()
        .flatten()
        .filter_map(std::result::Result::ok)
        .filter(|e| e.file_name().to_string_lossy().starts_with("geckodriver-"))
        .map(|e| e.path().join("bin/geckodriver"))
        .find(|p| p.is_file())
        .or_else(|| which("geckodriver"))
        .context("no `geckodriver`: run `cargo xtask bootstrap` (it builds it from crates.io)")?;
    let caps = json!({"capabilities": {"alwaysMatch": {
        "browserName": "firefox",
        "moz:firefoxOptions": {
            "binary": firefox,
            "args": ["-headless"],
            "prefs": {
                "intl.accept_languages": "en-US",
                "app.update.enabled": false,
                "datareporting.policy.dataSubmissionEnabled": false,
                "toolkit.telemetry.enabled": false,
                "app.normandy.enabled": false,
                "browser.shell.checkDefaultBrowser": false,
            },
        },
    }}});
    Ok((driver, caps))
}
