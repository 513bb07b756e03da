//! Bind passwords at rest: AES-256-GCM under a master key read from a file.
//!
//! The associated data binds a ciphertext to its account and integration,
//! so a ciphertext copied to another row does not decrypt. The key id
//! stored beside it allows rotation.

use std::path::Path;

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use rand::RngCore;
use secrecy::{ExposeSecret, SecretBox, SecretString};
use sha2::{Digest, Sha256};

#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    #[error("cannot read the master key file {path}: {source}")]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "the master key file {path} must hold 64 hexadecimal characters (32 bytes); generate one with `dirsync key generate FILE`"
    )]
    Format { path: String },
    #[error(
        "the secret was sealed with master key {found}, which is not among the keys loaded ({expected}); load the key it was sealed with"
    )]
    WrongKey { expected: String, found: String },
    #[error("the master key files {0} and {1} hold the same key")]
    DuplicateKey(String, String),
    #[error("the secret does not decrypt: it was tampered with, or belongs to another integration")]
    Decrypt,
    #[error("the secret could not be encrypted")]
    Encrypt,
}

/// The 256-bit master key. Its bytes never leave this type.
pub struct MasterKey {
    key: SecretBox<[u8; 32]>,
    id: String,
}

impl std::fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MasterKey")
            .field("id", &self.id)
            .field("key", &"[REDACTED]")
            .finish()
    }
}

/// A sealed secret as stored and carried on the bus.
#[derive(Clone, PartialEq, Eq)]
pub struct SealedSecret {
    pub key_id: String,
    pub nonce: Vec<u8>,
    pub ciphertext: Vec<u8>,
}

impl std::fmt::Debug for SealedSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SealedSecret")
            .field("key_id", &self.key_id)
            .finish_non_exhaustive()
    }
}

impl MasterKey {
    pub fn from_file(path: &Path) -> Result<Self, SecretError> {
        let text = std::fs::read_to_string(path).map_err(|source| SecretError::Read {
            path: path.display().to_string(),
            source,
        })?;
        Self::from_hex(text.trim()).ok_or_else(|| SecretError::Format {
            path: path.display().to_string(),
        })
    }

    pub fn from_hex(hex_key: &str) -> Option<Self> {
        let mut bytes = [0u8; 32];
        hex::decode_to_slice(hex_key, &mut bytes).ok()?;
        let id = hex::encode(&Sha256::digest(bytes)[..4]);
        Some(Self {
            key: SecretBox::new(Box::new(bytes)),
            id,
        })
    }

    /// A fresh random key, hex encoded, for writing to a key file.
    pub fn generate_hex() -> String {
        let mut bytes = [0u8; 32];
        rand::rng().fill_bytes(&mut bytes);
        hex::encode(bytes)
    }

    pub fn id(&self) -> &str {
        &self.id
    }

    fn cipher(&self) -> Aes256Gcm {
        Aes256Gcm::new(self.key.expose_secret().into())
    }

    pub fn seal(&self, plaintext: &SecretString, aad: &str) -> Result<SealedSecret, SecretError> {
        let mut nonce = [0u8; 12];
        rand::rng().fill_bytes(&mut nonce);
        let ciphertext = self
            .cipher()
            .encrypt(
                Nonce::from_slice(&nonce),
                Payload {
                    msg: plaintext.expose_secret().as_bytes(),
                    aad: aad.as_bytes(),
                },
            )
            .map_err(|_| SecretError::Encrypt)?;
        Ok(SealedSecret {
            key_id: self.id.clone(),
            nonce: nonce.to_vec(),
            ciphertext,
        })
    }

    pub fn open(&self, sealed: &SealedSecret, aad: &str) -> Result<SecretString, SecretError> {
        if sealed.key_id != self.id {
            return Err(SecretError::WrongKey {
                expected: self.id.clone(),
                found: sealed.key_id.clone(),
            });
        }
        if sealed.nonce.len() != 12 {
            return Err(SecretError::Decrypt);
        }
        let plain = self
            .cipher()
            .decrypt(
                Nonce::from_slice(&sealed.nonce),
                Payload {
                    msg: &sealed.ciphertext,
                    aad: aad.as_bytes(),
                },
            )
            .map_err(|_| SecretError::Decrypt)?;
        let text = String::from_utf8(plain).map_err(|_| SecretError::Decrypt)?;
        Ok(SecretString::from(text))
    }
}

/// The master keys a process holds: the current key seals every new
/// secret, and each key opens what it sealed. A rotation loads the new key
/// as current and the old one as previous until `dirsync key rotate` has
/// re-sealed every secret under the new one.
pub struct Keyring {
    current: MasterKey,
    previous: Vec<MasterKey>,
}

impl std::fmt::Debug for Keyring {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Keyring")
            .field("current", &self.current.id)
            .field(
                "previous",
                &self
                    .previous
                    .iter()
                    .map(|k| k.id.as_str())
                    .collect::<Vec<_>>(),
            )
            .finish()
    }
}

impl From<MasterKey> for Keyring {
    fn from(current: MasterKey) -> Self {
        Self {
            current,
            previous: Vec::new(),
        }
    }
}

impl Keyring {
    /// The current key and the previous ones; a key given twice is an
    /// error (a previous key file naming the current key is a mistake).
    pub fn new(current: MasterKey, previous: Vec<MasterKey>) -> Result<Self, SecretError> {
        let mut seen = vec![current.id.clone()];
        for k in &previous {
            if seen.contains(&k.id) {
                return Err(SecretError::DuplicateKey(k.id.clone(), k.id.clone()));
            }
            seen.push(k.id.clone());
        }
        Ok(Self { current, previous })
    }

    /// Reads the current key file and the previous ones.
    pub fn from_files(current: &Path, previous: &[impl AsRef<Path>]) -> Result<Self, SecretError> {
        let current_key = MasterKey::from_file(current)?;
        let mut keys: Vec<MasterKey> = Vec::with_capacity(previous.len());
        let mut paths = vec![current.display().to_string()];
        for p in previous {
            let key = MasterKey::from_file(p.as_ref())?;
            let path = p.as_ref().display().to_string();
            if let Some(i) = std::iter::once(&current_key)
                .chain(&keys)
                .position(|k| k.id == key.id)
            {
                return Err(SecretError::DuplicateKey(paths[i].clone(), path));
            }
            paths.push(path);
            keys.push(key);
        }
        Ok(Self {
            current: current_key,
            previous: keys,
        })
    }

    /// The id of the key that seals.
    pub fn id(&self) -> &str {
        &self.current.id
    }

    /// Every key's id, the current one first.
    pub fn ids(&self) -> Vec<&str> {
        std::iter::once(&self.current)
            .chain(&self.previous)
            .map(|k| k.id.as_str())
            .collect()
    }

    pub fn holds(&self, key_id: &str) -> bool {
        self.ids().contains(&key_id)
    }

    pub fn seal(&self, plaintext: &SecretString, aad: &str) -> Result<SealedSecret, SecretError> {
        self.current.seal(plaintext, aad)
    }

    /// Opens a secret with the key that sealed it.
    pub fn open(&self, sealed: &SealedSecret, aad: &str) -> Result<SecretString, SecretError> {
        std::iter::once(&self.current)
            .chain(&self.previous)
            .find(|k| k.id == sealed.key_id)
            .ok_or_else(|| SecretError::WrongKey {
                expected: self.ids().join(", "),
                found: sealed.key_id.clone(),
            })?
            .open(sealed, aad)
    }

    /// The secret sealed under the current key: itself when it already
    /// is, otherwise opened and sealed again (a new nonce).
    pub fn reseal(&self, sealed: &SealedSecret, aad: &str) -> Result<SealedSecret, SecretError> {
        if sealed.key_id == self.current.id {
            return Ok(sealed.clone());
        }
        self.seal(&self.open(sealed, aad)?, aad)
    }
}

/// Associated data for an integration's bind password.
pub fn password_aad(account_id: &str, integration_id: &str) -> String {
    format!("dirsync/bind-password/{account_id}/{integration_id}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seal_open_round_trip_and_aad_binding() {
        let key = MasterKey::from_hex(&MasterKey::generate_hex()).expect("key");
        let secret = SecretString::from("Pa55word!".to_owned());
        let sealed = key.seal(&secret, "a/1").expect("seal");
        assert!(
            !sealed
                .ciphertext
                .windows(9)
                .any(|w| w == b"Pa55word!".as_slice())
        );
        assert_eq!(
            key.open(&sealed, "a/1").expect("open").expose_secret(),
            "Pa55word!"
        );
        assert!(matches!(
            key.open(&sealed, "a/2"),
            Err(SecretError::Decrypt)
        ));
        let other = MasterKey::from_hex(&MasterKey::generate_hex()).expect("key");
        assert!(matches!(
            other.open(&sealed, "a/1"),
            Err(SecretError::WrongKey { .. })
        ));
        assert!(!format!("{key:?}{sealed:?}").contains("Pa55"));
    }

    #[test]
    fn a_keyring_opens_with_every_key_and_seals_with_the_current() {
        let old = MasterKey::from_hex(&MasterKey::generate_hex()).expect("key");
        let old_id = old.id().to_owned();
        let secret = SecretString::from("Pa55word!".to_owned());
        let sealed_old = old.seal(&secret, "a/1").expect("seal");
        let new = MasterKey::from_hex(&MasterKey::generate_hex()).expect("key");
        let ring = Keyring::new(new, vec![old]).expect("ring");
        assert_eq!(ring.ids()[1], old_id);
        assert_eq!(
            ring.open(&sealed_old, "a/1").expect("open").expose_secret(),
            "Pa55word!"
        );
        let resealed = ring.reseal(&sealed_old, "a/1").expect("reseal");
        assert_eq!(resealed.key_id, ring.id());
        assert_ne!(resealed.nonce, sealed_old.nonce);
        assert_eq!(ring.reseal(&resealed, "a/1").expect("same"), resealed);
        // The AAD still binds: a re-seal for another integration fails.
        assert!(matches!(
            ring.reseal(&sealed_old, "a/2"),
            Err(SecretError::Decrypt)
        ));
        // A secret of a key not loaded names both sides.
        let stranger = MasterKey::from_hex(&MasterKey::generate_hex()).expect("key");
        let foreign = stranger.seal(&secret, "a/1").expect("seal");
        let e = ring.open(&foreign, "a/1").expect_err("not loaded");
        assert!(e.to_string().contains(stranger.id()) && e.to_string().contains(ring.id()));
        // The same key twice is a mistake.
        let hex = MasterKey::generate_hex();
        let twice = Keyring::new(
            MasterKey::from_hex(&hex).expect("key"),
            vec![MasterKey::from_hex(&hex).expect("key")],
        );
        assert!(matches!(twice, Err(SecretError::DuplicateKey(..))));
    }

    #[test]
    fn rejects_bad_key_text() {
        assert!(MasterKey::from_hex("abcd").is_none());
        assert!(MasterKey::from_hex(&"zz".repeat(32)).is_none());
    }
}
