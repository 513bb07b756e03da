//! API tokens, `dst_<id>_<secret>`, and admin console sessions,
//! `dss_<id>_<secret>`. The store keeps the id and a SHA-256 of the
//! secret, never the secret.

use rand::RngCore;
use sha2::{Digest, Sha256};

/// A token as handed to its holder, once.
pub struct NewToken {
    pub id: String,
    pub secret_hash: String,
    /// The whole token; show it once and forget it.
    pub token: secrecy::SecretString,
}

/// A new API token.
impl NewToken {
    /// The secret part of the token.
    pub fn secret(&self) -> &str {
        use secrecy::ExposeSecret;
        self.token
            .expose_secret()
            .rsplit('_')
            .next()
            .unwrap_or_default()
    }
}

pub fn generate() -> NewToken {
    generate_with("dst")
}

/// A new console session (the value of its cookie).
pub fn generate_session() -> NewToken {
    generate_with("dss")
}

fn generate_with(prefix: &str) -> NewToken {
    let mut id = [0u8; 8];
    let mut secret = [0u8; 32];
    rand::rng().fill_bytes(&mut id);
    rand::rng().fill_bytes(&mut secret);
    let (id, secret) = (hex::encode(id), hex::encode(secret));
    NewToken {
        secret_hash: hash(&secret),
        token: secrecy::SecretString::from(format!("{prefix}_{id}_{secret}")),
        id,
    }
}

pub fn hash(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

/// (id, secret) of a well-formed API token.
pub fn parse(token: &str) -> Option<(&str, &str)> {
    parse_with("dst_", token)
}

/// (id, secret) of a well-formed console session.
pub fn parse_session(session: &str) -> Option<(&str, &str)> {
    parse_with("dss_", session)
}

/// The console's CSRF token of a session: derived from the session's
/// secret, which only the browser's HttpOnly cookie and the gateway see,
/// so it is never stored and a page of another origin cannot know it.
pub fn csrf_of(session_secret: &str) -> String {
    hex::encode(Sha256::digest(
        format!("dirsync-console-csrf\0{session_secret}").as_bytes(),
    ))
}

fn parse_with<'a>(prefix: &str, token: &'a str) -> Option<(&'a str, &'a str)> {
    let rest = token.strip_prefix(prefix)?;
    let (id, secret) = rest.split_once('_')?;
    let hexy = |s: &str, n: usize| s.len() == n && s.chars().all(|c| c.is_ascii_hexdigit());
    (hexy(id, 16) && hexy(secret, 64)).then_some((id, secret))
}

#[cfg(test)]
mod tests {
    use secrecy::ExposeSecret;

    use super::*;

    #[test]
    fn round_trip_and_rejects() {
        let t = generate();
        let (id, secret) = parse(t.token.expose_secret()).expect("well formed");
        assert_eq!(id, t.id);
        assert_eq!(hash(secret), t.secret_hash);
        assert!(parse("dst_abc_def").is_none());
        assert!(parse("Bearer x").is_none());
        assert!(parse(&format!("dst_{}_{}", "z".repeat(16), "0".repeat(64))).is_none());
    }

    #[test]
    fn sessions_are_not_tokens() {
        let s = generate_session();
        let (id, secret) = parse_session(s.token.expose_secret()).expect("well formed");
        assert_eq!((id, hash(secret)), (s.id.as_str(), s.secret_hash.clone()));
        assert!(parse(s.token.expose_secret()).is_none());
        assert!(parse_session(generate().token.expose_secret()).is_none());
        assert_eq!(s.secret(), secret);
        assert_ne!(csrf_of(secret), csrf_of("other"));
        assert_ne!(
            csrf_of(secret),
            s.secret_hash,
            "the CSRF token is not the stored hash"
        );
    }
}
