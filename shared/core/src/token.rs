//! API tokens: `dst_<id>_<secret>`. The store keeps the id and a SHA-256
//! of the secret, never the secret.

use rand::RngCore;
use sha2::{Digest, Sha256};

/// A token as handed to its holder, once.
pub struct NewToken {
    pub id: String,
    pub secret_hash: String,
    /// The whole token; show it once and forget it.
    pub token: secrecy::SecretString,
}

pub fn generate() -> NewToken {
    let mut id = [0u8; 8];
    let mut secret = [0u8; 32];
    rand::rng().fill_bytes(&mut id);
    rand::rng().fill_bytes(&mut secret);
    let (id, secret) = (hex::encode(id), hex::encode(secret));
    NewToken {
        secret_hash: hash(&secret),
        token: secrecy::SecretString::from(format!("dst_{id}_{secret}")),
        id,
    }
}

pub fn hash(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

/// (id, secret) of a well-formed token.
pub fn parse(token: &str) -> Option<(&str, &str)> {
    let rest = token.strip_prefix("dst_")?;
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
}
