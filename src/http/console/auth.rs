//! Who may see the console: one password (an Argon2id hash in the store's meta), the
//! sessions it opens (kept in memory: a restart signs everyone out), each with its own
//! CSRF token, and the lockout after repeated wrong passwords.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use argon2::Argon2;
use argon2::password_hash::rand_core::{OsRng, RngCore};
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use sha2::{Digest, Sha256};

/// The meta key the password's hash is stored under.
pub const PASSWORD_KEY: &str = "console_password";
/// A session unused this long is gone.
const IDLE: Duration = Duration::from_secs(12 * 3600);
/// Wrong passwords within `WINDOW` that lock sign-in for `WINDOW`.
const TRIES: usize = 5;
const WINDOW: Duration = Duration::from_secs(60);
/// Sessions kept at once; the oldest goes first.
const MAX_SESSIONS: usize = 64;
/// Longest password taken (Argon2 hashes any length; this bounds the work).
pub const MAX_PASSWORD: usize = 1024;
/// Shortest password `console passwd` accepts.
pub const MIN_PASSWORD: usize = 10;

/// The Argon2id hash (PHC string) of `password`.
pub fn hash(password: &str) -> anyhow::Result<String> {
    let salt = SaltString::generate(&mut OsRng);
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| anyhow::anyhow!("cannot hash the password: {e}"))
}

/// Whether `password` matches the stored `phc` hash.
fn verify(phc: &str, password: &str) -> bool {
    PasswordHash::new(phc).is_ok_and(|parsed| {
        Argon2::default()
            .verify_password(password.as_bytes(), &parsed)
            .is_ok()
    })
}

/// 32 random bytes as hex: a session id or a CSRF token.
fn token() -> String {
    let mut bytes = [0u8; 32];
    OsRng.fill_bytes(&mut bytes);
    hex::encode(bytes)
}

/// Tokens compared by their digests, so that the time taken says nothing of how much
/// of a guess was right.
fn same(a: &str, b: &str) -> bool {
    Sha256::digest(a.as_bytes()) == Sha256::digest(b.as_bytes())
}

struct Session {
    csrf: String,
    last_seen: Instant,
}

/// A signed-in browser, as a request shows it.
#[derive(Clone, Debug)]
pub struct SignedIn {
    pub csrf: String,
}

impl SignedIn {
    /// Whether a form's token is this session's.
    pub fn allows(&self, form_token: &str) -> bool {
        same(&self.csrf, form_token)
    }
}

#[derive(Default)]
pub struct Gate {
    /// By the digest of the session id, so that memory holds no usable cookie.
    sessions: Mutex<HashMap<String, Session>>,
    failures: Mutex<Vec<Instant>>,
}

/// How a sign-in ended.
pub enum SignIn {
    /// The new session's id, for the cookie.
    Opened(String),
    Wrong,
    Locked,
}

impl Gate {
    /// The session of `id`, if it is live; using it keeps it alive.
    pub fn session(&self, id: &str) -> Option<SignedIn> {
        let key = hex_digest(id);
        let mut sessions = self.sessions.lock().unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        sessions.retain(|_, s| now.duration_since(s.last_seen) < IDLE);
        let session = sessions.get_mut(&key)?;
        session.last_seen = now;
        Some(SignedIn {
            csrf: session.csrf.clone(),
        })
    }

    /// Checks `password` against the stored hash (`None`: no password set).
    pub fn sign_in(&self, stored: Option<&str>, password: &str) -> SignIn {
        let now = Instant::now();
        {
            let mut failures = self.failures.lock().unwrap_or_else(|p| p.into_inner());
            failures.retain(|at| now.duration_since(*at) < WINDOW);
            if failures.len() >= TRIES {
                return SignIn::Locked;
            }
        }
        let right =
            password.len() <= MAX_PASSWORD && stored.is_some_and(|phc| verify(phc, password));
        if !right {
            let mut failures = self.failures.lock().unwrap_or_else(|p| p.into_inner());
            failures.push(now);
            return if failures.len() >= TRIES {
                SignIn::Locked
            } else {
                SignIn::Wrong
            };
        }
        let id = token();
        let mut sessions = self.sessions.lock().unwrap_or_else(|p| p.into_inner());
        if sessions.len() >= MAX_SESSIONS
            && let Some(oldest) = sessions
                .iter()
                .min_by_key(|(_, s)| s.last_seen)
                .map(|(k, _)| k.clone())
        {
            sessions.remove(&oldest);
        }
        sessions.insert(
            hex_digest(&id),
            Session {
                csrf: token(),
                last_seen: now,
            },
        );
        SignIn::Opened(id)
    }

    pub fn sign_out(&self, id: &str) {
        let mut sessions = self.sessions.lock().unwrap_or_else(|p| p.into_inner());
        sessions.remove(&hex_digest(id));
    }
}

fn hex_digest(text: &str) -> String {
    hex::encode(Sha256::digest(text.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_right_password_opens_a_session_and_five_wrong_ones_lock() {
        let phc = hash("correct horse battery").unwrap();
        assert!(phc.starts_with("$argon2id$"), "{phc}");
        let gate = Gate::default();
        let SignIn::Opened(id) = gate.sign_in(Some(&phc), "correct horse battery") else {
            panic!("the right password did not sign in");
        };
        let session = gate.session(&id).expect("a live session");
        assert!(session.allows(&session.csrf));
        assert!(!session.allows("forged"));
        assert!(gate.session("not-a-session").is_none());
        for _ in 0..4 {
            assert!(matches!(gate.sign_in(Some(&phc), "guess"), SignIn::Wrong));
        }
        assert!(matches!(gate.sign_in(Some(&phc), "guess"), SignIn::Locked));
        // Locked even for the right password, until the minute is over.
        assert!(matches!(
            gate.sign_in(Some(&phc), "correct horse battery"),
            SignIn::Locked
        ));
        gate.sign_out(&id);
        assert!(gate.session(&id).is_none());
    }

    #[test]
    fn no_password_set_signs_nobody_in() {
        let gate = Gate::default();
        assert!(matches!(gate.sign_in(None, ""), SignIn::Wrong));
    }
}
