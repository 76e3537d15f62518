//! aiosmtpd with AUTH and TLS (a test CA made with openssl) on a free port, for the
//! delivery and deliverability tests.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// aiosmtpd with AUTH and TLS; counts what it accepts.
pub struct AuthServer {
    child: Child,
    pub port: u16,
    accepted: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    /// Login attempts the server saw.
    pub logins: std::sync::Arc<std::sync::atomic::AtomicUsize>,
}

impl AuthServer {
    /// Starts the server, or returns `None` when python3-aiosmtpd or openssl is missing
    /// (which fails the test under CI, where .ci/run installs them).
    pub fn start(dir: &Path, mode: &str) -> Option<AuthServer> {
        AuthServer::start_with_cert(dir, mode, "server.pem", "server.key")
    }

    /// [`AuthServer::start`] presenting `cert` (made with the test CA's files).
    pub fn start_with_cert(dir: &Path, mode: &str, cert: &str, key: &str) -> Option<AuthServer> {
        let have = |program: &str, args: &[&str]| {
            Command::new(program)
                .args(args)
                .output()
                .is_ok_and(|o| o.status.success())
        };
        if !have("/usr/bin/python3", &["-c", "import aiosmtpd"]) || !have("openssl", &["version"]) {
            assert!(
                std::env::var_os("CI").is_none(),
                "python3-aiosmtpd and openssl are needed; .ci/run installs them"
            );
            crate::helpers::skipping(
                "its checks: python3-aiosmtpd or openssl is not installed (apt-get install python3-aiosmtpd openssl)",
            );
            return None;
        }
        if !dir.join("ca.pem").exists() {
            crate::helpers::make_certificates(dir);
        }
        let port = crate::helpers::free_port();
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/support/auth_smtpd.py");
        let mut child = Command::new("/usr/bin/python3")
            .arg(script)
            .args([&port.to_string(), cert, key, "tickler", "s3cret pass", mode])
            .current_dir(dir)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("python3 with aiosmtpd (apt-get install python3-aiosmtpd)");
        let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
        let first = lines.next().and_then(Result::ok).unwrap_or_default();
        assert_eq!(
            first, "ready",
            "aiosmtpd did not start (is python3-aiosmtpd installed?)"
        );
        let accepted = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let logins = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let (counter, login_counter) = (accepted.clone(), logins.clone());
        std::thread::spawn(move || {
            for line in lines.map_while(Result::ok) {
                let counter = match line.as_str() {
                    "message" => &counter,
                    "auth" => &login_counter,
                    _ => continue,
                };
                counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            }
        });
        Some(AuthServer {
            child,
            port,
            accepted,
            logins,
        })
    }

    pub fn accepted(&self) -> usize {
        // The reader thread may lag the server by a moment.
        std::thread::sleep(Duration::from_millis(200));
        self.accepted.load(std::sync::atomic::Ordering::SeqCst)
    }
}

impl Drop for AuthServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
