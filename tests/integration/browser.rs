//! The console in a real browser (Debian's chromium through chromedriver, over
//! WebDriver): an owner signs in, finds a customer by part of a name, reads the
//! timeline, finds the failed send and retries it once the data is fixed, unsubscribes
//! a customer and sees their next send skipped, and signs out. Screenshots of each page at 1280 and 375
//! px go to `target/console-shots/`, to be looked at.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::{ClientBuilder, Locator};

use crate::console_harness::{PASSWORD, start_console_with_a_failure};

struct Driver(Child);

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// chromedriver on a port of its own, or `None` (and a note) where it is not installed
/// outside CI; under CI its absence fails the test.
fn chromedriver() -> Option<(Driver, u16)> {
    if !std::path::Path::new("/usr/bin/chromedriver").exists() {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI needs chromium and chromium-driver"
        );
        crate::helpers::skipping("the browser test: no /usr/bin/chromedriver");
        return None;
    }
    let port = crate::helpers::free_port();
    let child = Command::new("/usr/bin/chromedriver")
        .arg(format!("--port={port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("chromedriver starts");
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "chromedriver never listened");
        std::thread::sleep(Duration::from_millis(100));
    }
    Some((Driver(child), port))
}

fn shots_dir() -> std::path::PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target"));
    let dir = target.join("console-shots");
    std::fs::create_dir_all(&dir).expect("shots dir");
    dir
}

/// Saves the page at both widths, then leaves the window wide.
async fn shoot(browser: &fantoccini::Client, name: &str) {
    for width in [1280, 375] {
        browser.set_window_size(width, 1000).await.expect("resize");
        let png = browser.screenshot().await.expect("screenshot");
        std::fs::write(shots_dir().join(format!("{name}-{width}.png")), png).expect("save");
    }
    browser.set_window_size(1280, 1000).await.expect("resize");
}

/// The text of `css` on the page at `url`, loaded again until `ready` says it is what
/// was waited for (the daemon acts in its own time), or as it is after 20 s.
async fn text_after_reloads(
    browser: &fantoccini::Client,
    url: &str,
    css: &str,
    ready: impl Fn(&str) -> bool,
) -> String {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        browser.goto(url).await.expect("goto");
        let found = text_when(browser, css, |t| !t.is_empty()).await;
        if ready(&found) || Instant::now() > deadline {
            return found;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// The text of `css` once `ready` says it is what was waited for (a click's page may
/// still be loading), or as it is after 10 s.
async fn text_when(
    browser: &fantoccini::Client,
    css: &str,
    ready: impl Fn(&str) -> bool,
) -> String {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let found = match browser.find(Locator::Css(css)).await {
            Ok(element) => element.text().await.unwrap_or_default(),
            Err(_) => String::new(),
        };
        if ready(&found) || Instant::now() > deadline {
            return found;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[test]
fn an_owner_answers_what_happened_with_a_customer_in_a_browser() {
    let Some((_driver, driver_port)) = chromedriver() else {
        return;
    };
    let console = start_console_with_a_failure();
    let ws = &console.ws;
    let port = console.port;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async move {
        let mut caps = serde_json::Map::new();
        caps.insert(
            "goog:chromeOptions".into(),
            serde_json::json!({
                "binary": "/usr/bin/chromium",
                "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--window-size=1280,1000"],
            }),
        );
        let connector = hyper_util::client::legacy::connect::HttpConnector::new();
        let browser = ClientBuilder::new(connector)
            .capabilities(caps)
            .connect(&format!("http://127.0.0.1:{driver_port}"))
            .await
            .expect("a browser session");
        let base = format!("http://127.0.0.1:{port}");

        // No session: the console sends the browser to sign in.
        browser.goto(&format!("{base}/console/")).await.expect("goto");
        assert!(browser.current_url().await.unwrap().path().ends_with("/console/signin"));
        shoot(&browser, "signin").await;
        browser.find(Locator::Id("password")).await.unwrap().send_keys(PASSWORD).await.unwrap();
        browser.find(Locator::Css("main button[type=submit]")).await.unwrap().click().await.unwrap();
        assert_eq!(text_when(&browser, "h1", |t| t == "Summary").await, "Summary");
        shoot(&browser, "summary").await;

        // Find the customer by a part of her name, from the send log.
        browser.wait().for_element(Locator::LinkText("Send log")).await.unwrap().click().await.unwrap();
        let search = browser.wait().for_element(Locator::Css("input[name=q]")).await.unwrap();
        search.send_keys("ingr").await.unwrap();
        browser.find(Locator::Css("form.filters button")).await.unwrap().click().await.unwrap();
        let table = text_when(&browser, "table", |t| {
            t.contains("Ingrid Berg") && !t.contains("Mei Chen")
        })
        .await;
        assert!(table.contains("Ingrid Berg") && table.contains("sent"), "{table}");
        assert!(!table.contains("Mei Chen"), "{table}");
        shoot(&browser, "sends").await;

        // Her page: the thank-you that went out, her events, her channels.
        browser.wait().for_element(Locator::LinkText("Ingrid Berg")).await.unwrap().click().await.unwrap();
        assert_eq!(text_when(&browser, "h1", |t| t == "Ingrid Berg").await, "Ingrid Berg");
        let log = text_when(&browser, "#log + .table-wrap", |t| t.contains("thanks")).await;
        assert!(log.contains("thanks") && log.contains("sent"), "{log}");
        shoot(&browser, "contact").await;

        // The failed send: filtered by status, its reason says what is missing.
        browser.goto(&format!("{base}/console/sends")).await.unwrap();
        let status = browser.wait().for_element(Locator::Css("select[name=status]")).await.unwrap();
        status.select_by_value("failed").await.unwrap();
        browser.find(Locator::Css("form.filters button")).await.unwrap().click().await.unwrap();
        let failed = text_when(&browser, "table", |t| {
            t.contains("Olu Adeyemi") && !t.contains("Ingrid Berg")
        })
        .await;
        assert!(failed.contains("Olu Adeyemi") && failed.contains("failed") && failed.contains("item"), "{failed}");
        assert!(!failed.contains("Ingrid Berg"), "only failed rows: {failed}");
        shoot(&browser, "failed").await;

        // The inquiry's item is put right in the data; then one press of "Retry now".
        ws.write("fixed.csv", &format!("id,contact_id,kind,at,item\nQ-7,K-7,inquiry,{},walnut table\n", crate::helpers::two_days_ago().yesterday().unwrap().yesterday().unwrap()));
        let fixed = ws.tickler(&["import", "events", "fixed.csv"]);
        assert_eq!(fixed.code, 0, "{}", fixed.stderr);
        browser.find(Locator::XPath("//button[text()='Retry now']")).await.unwrap().click().await.unwrap();
        let log = text_after_reloads(&browser, &format!("{base}/console/contacts/K-7"), "#log + .table-wrap", |t| {
            t.contains("sent") && !t.contains("failed")
        })
        .await;
        assert!(log.contains("nudge") && log.contains("sent") && !log.contains("failed"), "{log}");
        let subjects: Vec<String> = std::fs::read_dir(ws.path("state/outbox"))
            .expect("outbox")
            .map(|f| std::fs::read_to_string(f.unwrap().path()).unwrap())
            .filter_map(|m| m.lines().find(|l| l.starts_with("Subject:")).map(str::to_owned))
            .collect();
        assert!(subjects.iter().any(|s| s == "Subject: Still thinking about walnut table?"), "{subjects:?}");

        // A customer with a thank-you planned: unsubscribed, that send will be skipped.
        browser.goto(&format!("{base}/console/contacts/K-6")).await.unwrap();
        let next = text_when(&browser, "#next + .table-wrap", |t| t.contains("goes out")).await;
        assert!(next.contains("thanks") && next.contains("goes out"), "{next}");
        browser.wait().for_element(Locator::XPath("//button[text()='Unsubscribe']")).await.unwrap().click().await.unwrap();
        let channels = text_when(&browser, ".channels", |t| t.contains("opted out")).await;
        assert!(channels.contains("email: opted out"), "{channels}");
        let next = text_when(&browser, "#next + .table-wrap", |t| t.contains("skipped")).await;
        assert!(next.contains("would be skipped: the customer opted out of this channel"), "{next}");
        shoot(&browser, "opted-out").await;

        // The skipped row of another customer says why.
        browser.goto(&format!("{base}/console/sends?status=skipped")).await.unwrap();
        let skipped = text_when(&browser, "table", |t| t.contains("Mei Chen")).await;
        assert!(skipped.contains("Mei Chen") && skipped.contains("opted out of this channel"), "{skipped}");

        for (name, path) in [("plan", "/console/plan?days=30"), ("cadences", "/console/cadences")] {
            browser.goto(&format!("{base}{path}")).await.unwrap();
            let heading = text_when(&browser, "h1", |t| !t.is_empty()).await;
            assert!(heading == "Plan" || heading == "Follow-ups", "{path}: {heading}");
            shoot(&browser, name).await;
        }

        // The unsubscribe above put the address on the suppression list, from the summary.
        browser.goto(&format!("{base}/console/")).await.unwrap();
        browser.wait().for_element(Locator::Css("a[href=\"/console/suppressions\"]")).await.unwrap().click().await.unwrap();
        let list = text_when(&browser, "table", |t| t.contains("x@example.org")).await;
        assert!(list.contains("x@example.org") && list.contains("unsubscribed"), "{list}");
        shoot(&browser, "suppressions").await;

        // Signing out: the console is closed again.
        browser.wait().for_element(Locator::Css(".signout button")).await.unwrap().click().await.unwrap();
        text_when(&browser, "h1", |t| t == "Sign in").await;
        browser.goto(&format!("{base}/console/sends")).await.unwrap();
        assert!(browser.current_url().await.unwrap().path().ends_with("/console/signin"));
        browser.close().await.expect("close");
    });
}
