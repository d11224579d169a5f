//! Bearer tokens and the roles they carry (issue #14), shared by every HTTP surface that
//! changes state: ingest (`POST /v1/events`, role **write**) and the simulator's control
//! API (`POST /control/*`, role **admin**). Pure: the HTTP layers pass the
//! `Authorization` header's value in and map the answer to 401 or 403.
//!
//! The rule: with no token configured at all, everything is open (a laptop on
//! localhost); once any token is configured, every state-changing route needs a token of
//! its role. An admin token may also write. Reading (status page, `/api/v1/*`,
//! `/metrics`) is open unless closed by config (`server.read_requires_token`); then any
//! configured token may read, and read-only tokens exist for dashboards and scrapers.
//! Tokens are compared in constant time and never printed (`Debug` shows only how many
//! there are).
//!
//! Every route of a server is listed with its [`Access`] in a table ([`RouteAccess`]);
//! the binary's guard checks each request against the table and refuses a route that is
//! not in it, so a new route cannot be served without a rule.

use std::fmt;

/// What a token may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Read the status page, `/api/v1/*` and `/metrics` when reading is closed.
    Read,
    /// Send telemetry (`POST /v1/events`).
    Write,
    /// Change the system's state (the control API, and everything `Write` may do).
    Admin,
}

impl Role {
    /// Whether this role may do what `needs` may: admin may do everything, write may
    /// also read.
    pub fn grants(self, needs: Role) -> bool {
        matches!(
            (self, needs),
            (Role::Admin, _) | (Role::Write, Role::Write | Role::Read) | (Role::Read, Role::Read)
        )
    }

    /// `write` or `admin`, as in messages.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Read => "read",
            Role::Write => "write",
            Role::Admin => "admin",
        }
    }
}

/// Who may use a route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Anyone, always: `/healthz` (load balancers and Kubernetes probes carry no token).
    Open,
    /// Anyone while reading is open; a token of any role once it is closed.
    Read,
    /// A token of this role once any token is configured.
    Needs(Role),
}

/// One route of a server and who may use it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RouteAccess {
    /// `GET`, `POST`, …
    pub method: &'static str,
    /// The route as registered, e.g. `/control/spike`.
    pub path: &'static str,
    /// Who may use it.
    pub access: Access,
}

impl RouteAccess {
    /// A route of `method` and `path` that `access` may use.
    pub const fn new(method: &'static str, path: &'static str, access: Access) -> Self {
        Self {
            method,
            path,
            access,
        }
    }
}

/// A request the binary's guard has authenticated without a bearer token: a single
/// sign-on session, whose cookie it decrypted and whose cross-site (CSRF) check passed.
/// Only the guard sets it, as a request extension (a client cannot send one); a handler
/// that checks a role honours it through [`Tokens::check_or_verified`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Verified(pub Role);

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
    read: Vec<String>,
    write: Vec<String>,
    admin: Vec<String>,
    reads_closed: bool,
}

impl fmt::Debug for Tokens {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Tokens")
            .field("read", &self.read.len())
            .field("write", &self.write.len())
            .field("admin", &self.admin.len())
            .field("reads_closed", &self.reads_closed)
            .finish()
    }
}

impl Tokens {
    /// Write (ingest) and admin tokens; empty strings are ignored.
    pub fn new(write: Vec<String>, admin: Vec<String>) -> Self {
        let keep = |v: Vec<String>| v.into_iter().filter(|t| !t.is_empty()).collect();
        Self {
            read: Vec::new(),
            write: keep(write),
            admin: keep(admin),
            reads_closed: false,
        }
    }

    /// Adds read-only tokens, and closes reading to anyone without a token when
    /// `closed`.
    pub fn with_reads(mut self, read: Vec<String>, closed: bool) -> Self {
        self.read = read.into_iter().filter(|t| !t.is_empty()).collect();
        self.reads_closed = closed;
        self
    }

    /// Whether reading needs a token.
    pub fn reads_closed(&self) -> bool {
        self.reads_closed
    }

    /// Whether any token is configured (then every state-changing route needs one).
    pub fn any(&self) -> bool {
        !self.read.is_empty() || !self.write.is_empty() || !self.admin.is_empty()
    }

    /// May the bearer of `authorization` use a route of `access`?
    pub fn allows(&self, authorization: Option<&str>, access: Access) -> Result<(), Denied> {
        match access {
            Access::Open => Ok(()),
            Access::Read if !self.reads_closed => Ok(()),
            Access::Read => self.check(authorization, Role::Read),
            Access::Needs(role) => self.check(authorization, role),
        }
    }

    /// How many tokens of `role` are configured.
    pub fn count(&self, role: Role) -> usize {
        match role {
            Role::Read => self.read.len(),
            Role::Write => self.write.len(),
            Role::Admin => self.admin.len(),
        }
    }

    /// [`Tokens::check`], except that a request the guard already verified (an SSO
    /// session) is judged by its role alone.
    pub fn check_or_verified(
        &self,
        authorization: Option<&str>,
        verified: Option<Verified>,
        needs: Role,
    ) -> Result<(), Denied> {
        match verified {
            Some(Verified(role)) if role.grants(needs) => Ok(()),
            Some(_) => Err(Denied::Forbidden { needs }),
            None => self.check(authorization, needs),
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
        let (admin, write, read) = (is(&self.admin), is(&self.write), is(&self.read));
        match needs {
            _ if admin => Ok(()),
            Role::Write | Role::Read if write => Ok(()),
            Role::Read if read => Ok(()),
            Role::Admin if write || read => Err(Denied::Forbidden { needs }),
            Role::Write if read => Err(Denied::Forbidden { needs }),
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
    fn a_verified_session_is_judged_by_its_role() {
        let t = tokens();
        let admin = Some(Verified(Role::Admin));
        let read = Some(Verified(Role::Read));
        assert_eq!(t.check_or_verified(None, admin, Role::Admin), Ok(()));
        assert_eq!(
            t.check_or_verified(None, read, Role::Admin),
            Err(Denied::Forbidden { needs: Role::Admin })
        );
        assert_eq!(t.check_or_verified(None, read, Role::Read), Ok(()));
        assert_eq!(
            t.check_or_verified(None, None, Role::Admin),
            Err(Denied::Unauthenticated)
        );
        assert!(Role::Admin.grants(Role::Write) && !Role::Write.grants(Role::Admin));
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
    fn closed_reads_take_a_token_of_any_role_and_read_tokens_may_only_read() {
        let open = tokens();
        assert_eq!(
            open.allows(None, Access::Read),
            Ok(()),
            "reads open by default"
        );
        let t = tokens().with_reads(vec!["dash".into()], true);
        assert_eq!(t.allows(None, Access::Read), Err(Denied::Unauthenticated));
        assert_eq!(t.allows(None, Access::Open), Ok(()), "healthz stays open");
        for who in ["Bearer dash", "Bearer w1", "Bearer adm"] {
            assert_eq!(t.allows(Some(who), Access::Read), Ok(()), "{who}");
        }
        let read = Some("Bearer dash");
        assert_eq!(
            t.allows(read, Access::Needs(Role::Write)),
            Err(Denied::Forbidden { needs: Role::Write })
        );
        assert_eq!(
            t.allows(read, Access::Needs(Role::Admin)),
            Err(Denied::Forbidden { needs: Role::Admin })
        );
        assert_eq!(
            t.allows(Some("Bearer nope"), Access::Read),
            Err(Denied::Unauthenticated)
        );
    }

    #[test]
    fn a_read_token_alone_closes_writes() {
        let t = Tokens::default().with_reads(vec!["dash".into()], false);
        assert!(t.any());
        assert_eq!(
            t.allows(None, Access::Needs(Role::Write)),
            Err(Denied::Unauthenticated)
        );
    }

    #[test]
    fn debug_never_shows_a_token() {
        let t = Tokens::new(vec!["s3cret-w".into()], vec!["s3cret-a".into()]);
        let text = format!("{t:?}");
        assert!(!text.contains("s3cret"), "{text}");
    }
}
