//! Bearer tokens and the roles they carry (issue #14), shared by every HTTP surface that
//! changes state: ingest (`POST /v1/events`, role **write**) and the simulator's control
//! API (`POST /control/*`, role **admin**). Pure: the HTTP layers pass the
//! `Authorization` header's value in and map the answer to 401 or 403.
//!
//! The rule: with no token configured at all, everything is open (a laptop on
//! localhost); once any token is configured, every state-changing route needs a token of
//! its role. An admin token may also write. Tokens are compared in constant time and
//! never printed (`Debug` shows only how many there are).

use std::fmt;

/// What a token may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Send telemetry (`POST /v1/events`).
    Write,
    /// Change the system's state (the control API, and everything `Write` may do).
    Admin,
}

impl Role {
    /// `write` or `admin`, as in messages.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Write => "write",
            Role::Admin => "admin",
        }
    }
}

/// Why a request was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Denied {
    /// No token, or one that is not configured: 401.
    Unauthenticated,
    /// A configured token of a role that may not do this: 403.
    Forbidden {
        /// The role the route needs.
        needs: Role,
    },
}

/// The configured tokens, by role.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Tokens {
    write: Vec<String>,
    admin: Vec<String>,
}

impl fmt::Debug for Tokens {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Tokens")
            .field("write", &self.write.len())
            .field("admin", &self.admin.len())
            .finish()
    }
}

impl Tokens {
    /// Write (ingest) and admin tokens; empty strings are ignored.
    pub fn new(write: Vec<String>, admin: Vec<String>) -> Self {
        let keep = |v: Vec<String>| v.into_iter().filter(|t| !t.is_empty()).collect();
        Self {
            write: keep(write),
            admin: keep(admin),
        }
    }

    /// Whether any token is configured (then every state-changing route needs one).
    pub fn any(&self) -> bool {
        !self.write.is_empty() || !self.admin.is_empty()
    }

    /// How many tokens of `role` are configured.
    pub fn count(&self, role: Role) -> usize {
        match role {
            Role::Write => self.write.len(),
            Role::Admin => self.admin.len(),
        }
    }

    /// May the bearer of `authorization` (the header's value, if sent) act as `needs`?
    pub fn check(&self, authorization: Option<&str>, needs: Role) -> Result<(), Denied> {
        if !self.any() {
            return Ok(());
        }
        let Some(token) = authorization.and_then(bearer) else {
            return Err(Denied::Unauthenticated);
        };
        let is = |list: &[String]| list.iter().fold(false, |hit, k| hit | same(k, token));
        let (admin, write) = (is(&self.admin), is(&self.write));
        match needs {
            _ if admin => Ok(()),
            Role::Write if write => Ok(()),
            Role::Admin if write => Err(Denied::Forbidden { needs }),
            _ => Err(Denied::Unauthenticated),
        }
    }
}

/// The token of an `Authorization: Bearer <token>` value.
fn bearer(value: &str) -> Option<&str> {
    value
        .strip_prefix("Bearer ")
        .or_else(|| value.strip_prefix("bearer "))
        .map(str::trim)
        .filter(|t| !t.is_empty())
}

/// Compares without an early exit on the first differing byte, so timing does not reveal
/// a prefix.
fn same(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tokens() -> Tokens {
        Tokens::new(vec!["w1".into(), "w2".into()], vec!["adm".into()])
    }

    #[test]
    fn no_tokens_leave_everything_open() {
        let t = Tokens::default();
        assert!(!t.any());
        assert_eq!(t.check(None, Role::Admin), Ok(()));
    }

    #[test]
    fn each_role_gets_what_it_may_do_and_a_reason_when_not() {
        let t = tokens();
        let w = Some("Bearer w2");
        let a = Some("Bearer adm");
        assert_eq!(
            t.check(w, Role::Write),
            Ok(()),
            "rotation: either write token"
        );
        assert_eq!(t.check(a, Role::Write), Ok(()), "admin may write");
        assert_eq!(t.check(a, Role::Admin), Ok(()));
        assert_eq!(
            t.check(w, Role::Admin),
            Err(Denied::Forbidden { needs: Role::Admin })
        );
        for bad in [
            None,
            Some("Bearer nope"),
            Some("adm"),
            Some("Bearer "),
            Some("Basic adm"),
        ] {
            assert_eq!(
                t.check(bad, Role::Admin),
                Err(Denied::Unauthenticated),
                "{bad:?}"
            );
            assert_eq!(
                t.check(bad, Role::Write),
                Err(Denied::Unauthenticated),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn an_admin_token_alone_closes_ingest_too() {
        let t = Tokens::new(Vec::new(), vec!["adm".into()]);
        assert_eq!(t.check(None, Role::Write), Err(Denied::Unauthenticated));
    }

    #[test]
    fn debug_never_shows_a_token() {
        let t = Tokens::new(vec!["s3cret-w".into()], vec!["s3cret-a".into()]);
        let text = format!("{t:?}");
        assert!(!text.contains("s3cret"), "{text}");
    }
}
