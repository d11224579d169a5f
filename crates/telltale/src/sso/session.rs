//! The cookies of single sign-on, with the `cookie` crate's private jar (AES-256-GCM:
//! encrypted and authenticated, the cookie's name bound in): the session cookie
//! (`telltale_session`: who, which role, until when) and the login cookie
//! (`telltale_login`: state, nonce and PKCE verifier between `/auth/login` and
//! `/auth/callback`, ten minutes at most). Both `HttpOnly`, `SameSite=Lax`, `Path=/`, and
//! `Secure` when telltale is reached over https. The key comes from
//! `server.oidc.session_key_file` or is generated into the data dir on first start. The
//! cross-site check of cookie-signed-in state changes (`same_origin`) lives here too.
//!
//! Place in the data flow: `routes.rs` seals cookies after a sign-in; the guard
//! (`guard.rs`) opens the session cookie of every request.

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

use anyhow::Context;
use axum::http::{HeaderMap, header};
use cookie::{Cookie, CookieJar, Key, SameSite};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use telltale_core::auth::Role;

pub const SESSION_COOKIE: &str = "telltale_session";
pub const LOGIN_COOKIE: &str = "telltale_login";
/// How long a started sign-in may take at the provider.
pub const LOGIN_TTL: Duration = Duration::from_secs(600);
/// Bytes of a generated session key (the private jar needs at least 64).
const KEY_BYTES: usize = 64;

/// A signed-in user, as sealed in the session cookie.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Session {
    /// Random ID of this session (what logout revokes).
    pub sid: String,
    /// The provider's `sub`.
    pub sub: String,
    /// A name for logs and pages.
    pub name: String,
    /// `admin` or `read`.
    pub role: String,
    /// Unix seconds after which the session is over.
    pub exp: i64,
}

impl Session {
    pub fn role(&self) -> Option<Role> {
        match self.role.as_str() {
            "admin" => Some(Role::Admin),
            "read" => Some(Role::Read),
            _ => None,
        }
    }
}

/// The sealing key, whether cookies are `Secure`, and the sessions logged out before
/// their expiry.
pub struct Cookies {
    key: Key,
    secure: bool,
    revoked: Mutex<HashMap<String, i64>>,
}

impl std::fmt::Debug for Cookies {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cookies")
            .field("key", &"<redacted>")
            .field("secure", &self.secure)
            .finish_non_exhaustive()
    }
}

pub fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(text: &str) -> Option<Vec<u8>> {
    let text = text.trim();
    if !text.len().is_multiple_of(2) {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok())
        .collect()
}

/// The session key: `configured` (which must exist), or `sso-session.key` in `data_dir`,
/// generated (mode 0600, written whole under another name and linked into place, so two
/// starts at once agree on one key) when absent.
pub fn load_key(configured: Option<&str>, data_dir: &Path) -> anyhow::Result<Key> {
    let (path, generated) = match configured {
        Some(p) => (PathBuf::from(p), false),
        None => (data_dir.join("sso-session.key"), true),
    };
    if generated && !path.exists() {
        std::fs::create_dir_all(data_dir)
            .with_context(|| format!("creating data dir {}", data_dir.display()))?;
        let mut bytes = [0u8; KEY_BYTES];
        rand::RngCore::fill_bytes(&mut rand::rng(), &mut bytes);
        let tmp = path.with_extension(format!("key.tmp{}", std::process::id()));
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        let mut file = options
            .open(&tmp)
            .with_context(|| format!("creating {}", tmp.display()))?;
        file.write_all(format!("{}\n", hex(&bytes)).as_bytes())
            .and_then(|()| file.sync_all())
            .with_context(|| format!("writing {}", tmp.display()))?;
        // Linking fails if another start got there first: then its key is the one.
        let linked = std::fs::hard_link(&tmp, &path);
        let _ = std::fs::remove_file(&tmp);
        match linked {
            Ok(()) => tracing::info!(path = %path.display(), "generated the SSO session key"),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(e).with_context(|| format!("writing {}", path.display())),
        }
    }
    let what = if generated {
        "the SSO session key".to_owned()
    } else {
        "server.oidc.session_key_file".to_owned()
    };
    let text = std::fs::read_to_string(&path)
        .with_context(|| format!("reading {what} {}", path.display()))?;
    let bytes = unhex(&text)
        .filter(|b| b.len() >= KEY_BYTES)
        .with_context(|| {
            format!(
                "{what} {} must hold at least {KEY_BYTES} random bytes as hex \
             (make one with `openssl rand -hex {KEY_BYTES}`)",
                path.display()
            )
        })?;
    Key::try_from(bytes.as_slice()).map_err(|e| anyhow::anyhow!("{what}: {e}"))
}

impl Cookies {
    pub fn new(key: Key, secure: bool) -> Self {
        Self {
            key,
            secure,
            revoked: Mutex::new(HashMap::new()),
        }
    }

    /// A `Set-Cookie` value carrying `value`, sealed, for `ttl`.
    pub fn seal(&self, name: &'static str, value: &impl Serialize, ttl: Duration) -> String {
        let json = serde_json::to_string(value).unwrap_or_default();
        let cookie = Cookie::build((name, json))
            .http_only(true)
            .same_site(SameSite::Lax)
            .secure(self.secure)
            .path("/")
            .max_age(cookie::time::Duration::seconds(ttl.as_secs() as i64))
            .build();
        let mut jar = CookieJar::new();
        jar.private_mut(&self.key).add(cookie);
        jar.get(name).map(ToString::to_string).unwrap_or_default()
    }

    /// A `Set-Cookie` value that removes cookie `name`.
    pub fn clear(&self, name: &'static str) -> String {
        Cookie::build((name, ""))
            .http_only(true)
            .same_site(SameSite::Lax)
            .secure(self.secure)
            .path("/")
            .max_age(cookie::time::Duration::ZERO)
            .build()
            .to_string()
    }

    /// The value of cookie `name` in the request, if present and sealed with our key.
    pub fn open<T: DeserializeOwned>(&self, headers: &HeaderMap, name: &str) -> Option<T> {
        let mut jar = CookieJar::new();
        for value in headers.get_all(header::COOKIE) {
            let Ok(value) = value.to_str() else { continue };
            for c in Cookie::split_parse(value.to_owned()).flatten() {
                if c.name() == name {
                    jar.add_original(c.into_owned());
                }
            }
        }
        let plain = jar.private(&self.key).get(name)?;
        serde_json::from_str(plain.value()).ok()
    }

    /// The request's session, if sealed by us, not expired and not logged out.
    pub fn session(&self, headers: &HeaderMap) -> Option<Session> {
        let s: Session = self.open(headers, SESSION_COOKIE)?;
        if s.exp <= now() || s.role().is_none() {
            return None;
        }
        let revoked = self.revoked.lock().unwrap_or_else(|p| p.into_inner());
        (!revoked.contains_key(&s.sid)).then_some(s)
    }

    /// Logs `s` out: its cookie is refused from now on (until this process restarts;
    /// the cookie's own expiry bounds it in any case).
    pub fn revoke(&self, s: &Session) {
        let mut revoked = self.revoked.lock().unwrap_or_else(|p| p.into_inner());
        let t = now();
        revoked.retain(|_, exp| *exp > t);
        revoked.insert(s.sid.clone(), s.exp);
    }
}

/// A random ID (128 bits, hex).
pub fn random_id() -> String {
    let mut bytes = [0u8; 16];
    rand::RngCore::fill_bytes(&mut rand::rng(), &mut bytes);
    hex(&bytes)
}

/// The CSRF check of a cookie-signed-in state change: the browser says the request comes
/// from telltale's own `origin` (`Origin`, which browsers send on every `POST`), or,
/// without `Origin`, `Sec-Fetch-Site: same-origin`. Anything else (another site, or a
/// client that sends neither) is refused.
pub fn same_origin(headers: &HeaderMap, origin: &str) -> bool {
    if let Some(o) = headers.get(header::ORIGIN) {
        return o.as_bytes() == origin.as_bytes();
    }
    headers
        .get("sec-fetch-site")
        .is_some_and(|v| v.as_bytes() == b"same-origin")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cookies() -> Cookies {
        Cookies::new(Key::from(&[7u8; 64]), true)
    }

    fn request_with(set_cookie: &str) -> HeaderMap {
        let pair = set_cookie.split(';').next().unwrap();
        let mut h = HeaderMap::new();
        h.insert(header::COOKIE, pair.parse().unwrap());
        h
    }

    fn session(exp: i64) -> Session {
        Session {
            sid: random_id(),
            sub: "u1".into(),
            name: "ann".into(),
            role: "admin".into(),
            exp,
        }
    }

    #[test]
    fn a_sealed_session_opens_with_its_key_only_and_until_it_expires() {
        let c = cookies();
        let s = session(now() + 60);
        let set = c.seal(SESSION_COOKIE, &s, Duration::from_secs(60));
        for attr in ["HttpOnly", "SameSite=Lax", "Secure", "Path=/", "Max-Age=60"] {
            assert!(set.contains(attr), "{attr} in {set}");
        }
        assert!(!set.contains("ann"), "the value is encrypted: {set}");
        assert_eq!(c.session(&request_with(&set)), Some(s.clone()));
        let other = Cookies::new(Key::from(&[8u8; 64]), true);
        assert_eq!(other.session(&request_with(&set)), None, "another key");
        let tampered = set.replacen('=', "=A", 1);
        assert_eq!(c.session(&request_with(&tampered)), None);
        let old = c.seal(SESSION_COOKIE, &session(now() - 1), Duration::from_secs(60));
        assert_eq!(c.session(&request_with(&old)), None, "expired");
        c.revoke(&s);
        assert_eq!(c.session(&request_with(&set)), None, "logged out");
    }

    #[test]
    fn a_cookie_sealed_under_one_name_does_not_open_under_another() {
        let c = cookies();
        let set = c.seal(LOGIN_COOKIE, &session(now() + 60), Duration::from_secs(60));
        let renamed = set.replacen(LOGIN_COOKIE, SESSION_COOKIE, 1);
        assert_eq!(c.session(&request_with(&renamed)), None);
    }

    #[test]
    fn only_the_own_origin_passes_the_csrf_check() {
        let mut h = HeaderMap::new();
        assert!(!same_origin(&h, "https://t.example"), "neither header");
        h.insert("sec-fetch-site", "cross-site".parse().unwrap());
        assert!(!same_origin(&h, "https://t.example"));
        h.insert("sec-fetch-site", "same-origin".parse().unwrap());
        assert!(same_origin(&h, "https://t.example"));
        h.insert(header::ORIGIN, "https://evil.example".parse().unwrap());
        assert!(!same_origin(&h, "https://t.example"), "Origin wins");
        h.insert(header::ORIGIN, "https://t.example".parse().unwrap());
        assert!(same_origin(&h, "https://t.example"));
    }

    #[test]
    fn the_key_file_is_generated_once_and_checked() {
        let dir = tempfile::tempdir().unwrap();
        let a = load_key(None, dir.path()).unwrap();
        let b = load_key(None, dir.path()).unwrap();
        assert_eq!(a.master(), b.master(), "generated once, then read");
        let short = dir.path().join("short.key");
        std::fs::write(&short, "abcd\n").unwrap();
        let err = load_key(Some(short.to_str().unwrap()), dir.path()).unwrap_err();
        assert!(
            format!("{err:#}").contains("openssl rand -hex 64"),
            "{err:#}"
        );
    }
}
