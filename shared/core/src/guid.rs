//! objectGUID, the anchor of every directory object.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// An Active Directory objectGUID.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Deserialize)]
#[serde(try_from = "String")]
pub struct ObjectGuid([u8; 16]);

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error(
    "invalid objectGUID {0:?}: expected 16 bytes or the form xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx"
)]
pub struct GuidError(pub String);

impl ObjectGuid {
    /// The 16 bytes in the order of the text form.
    pub fn as_bytes(&self) -> &[u8; 16] {
        &self.0
    }

    /// From 16 bytes in the order of the text form (RFC 4122), as an LDAP
    /// server sends an entryUUID in a control.
    pub fn from_bytes(bytes: [u8; 16]) -> Self {
        Self(bytes)
    }

    /// From the 16 bytes of the attribute as AD sends them (mixed endian:
    /// the first three fields little endian).
    pub fn from_ad_bytes(bytes: &[u8]) -> Result<Self, GuidError> {
        let raw: [u8; 16] = bytes
            .try_into()
            .map_err(|_| GuidError(format!("{} bytes", bytes.len())))?;
        let mut b = [0u8; 16];
        b[0..4].copy_from_slice(&[raw[3], raw[2], raw[1], raw[0]]);
        b[4..6].copy_from_slice(&[raw[5], raw[4]]);
        b[6..8].copy_from_slice(&[raw[7], raw[6]]);
        b[8..16].copy_from_slice(&raw[8..16]);
        Ok(Self(b))
    }

    /// The 16 bytes as AD stores them: the inverse of
    /// [`ObjectGuid::from_ad_bytes`].
    pub fn to_ad_bytes(&self) -> [u8; 16] {
        let b = self.0;
        let mut raw = [0u8; 16];
        raw[0..4].copy_from_slice(&[b[3], b[2], b[1], b[0]]);
        raw[4..6].copy_from_slice(&[b[5], b[4]]);
        raw[6..8].copy_from_slice(&[b[7], b[6]]);
        raw[8..16].copy_from_slice(&b[8..16]);
        raw
    }
}

/// Where the dashes of the text form `xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx` are.
const DASHES: [usize; 4] = [8, 13, 18, 23];

impl ObjectGuid {
    /// The text form, lower-case, written without allocating: every
    /// anchor in a record's JSON and in the store's rows goes through it.
    fn text(&self) -> [u8; 36] {
        const HEX: &[u8; 16] = b"0123456789abcdef";
        let mut out = [b'-'; 36];
        let mut at = 0;
        for b in self.0 {
            if DASHES.contains(&at) {
                at += 1;
            }
            out[at] = HEX[usize::from(b >> 4)];
            out[at + 1] = HEX[usize::from(b & 0x0f)];
            at += 2;
        }
        out
    }
}

impl fmt::Display for ObjectGuid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let text = self.text();
        // Hex digits and dashes: ASCII.
        f.write_str(std::str::from_utf8(&text).map_err(|_| fmt::Error)?)
    }
}

impl Serialize for ObjectGuid {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let text = self.text();
        serializer.serialize_str(std::str::from_utf8(&text).map_err(serde::ser::Error::custom)?)
    }
}

impl fmt::Debug for ObjectGuid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ObjectGuid({self})")
    }
}

impl FromStr for ObjectGuid {
    type Err = GuidError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let text = s.as_bytes();
        if text.len() != 36 || DASHES.iter().any(|&at| text[at] != b'-') {
            return Err(GuidError(s.to_owned()));
        }
        let mut digits = [0u8; 32];
        let mut n = 0;
        for (at, &c) in text.iter().enumerate() {
            if !DASHES.contains(&at) {
                digits[n] = c;
                n += 1;
            }
        }
        let mut b = [0u8; 16];
        hex::decode_to_slice(digits, &mut b).map_err(|_| GuidError(s.to_owned()))?;
        Ok(Self(b))
    }
}

impl TryFrom<String> for ObjectGuid {
    type Error = GuidError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ad_bytes_are_mixed_endian() {
        let bytes = [
            0x33, 0x22, 0x11, 0x00, 0x55, 0x44, 0x77, 0x66, 0x88, 0x99, 0xaa, 0xbb, 0xcc, 0xdd,
            0xee, 0xff,
        ];
        let g = ObjectGuid::from_ad_bytes(&bytes).expect("16 bytes");
        assert_eq!(g.to_string(), "00112233-4455-6677-8899-aabbccddeeff");
        assert_eq!(g.to_string().parse::<ObjectGuid>(), Ok(g));
    }

    #[test]
    fn rejects_wrong_lengths() {
        assert!(ObjectGuid::from_ad_bytes(&[0; 15]).is_err());
        assert!("0011-2233".parse::<ObjectGuid>().is_err());
        assert!(
            "zz112233-4455-6677-8899-aabbccddeeff"
                .parse::<ObjectGuid>()
                .is_err()
        );
        for bad in [
            "00112233-4455-6677-8899-aabbccddeeff0",
            "0011223-34455-6677-8899-aabbccddeeff",
            "00112233+4455-6677-8899-aabbccddeeff",
            "00112233-4455-6677-8899-aabbccddeef\u{e9}",
        ] {
            assert!(bad.parse::<ObjectGuid>().is_err(), "{bad}");
        }
    }

    #[test]
    fn text_json_and_parse_agree() {
        let g: ObjectGuid = "00112233-4455-6677-8899-AABBCCDDEEFF"
            .parse()
            .expect("upper case");
        assert_eq!(g.to_string(), "00112233-4455-6677-8899-aabbccddeeff");
        let json = serde_json::to_string(&g).expect("json");
        assert_eq!(json, "\"00112233-4455-6677-8899-aabbccddeeff\"");
        assert_eq!(serde_json::from_str::<ObjectGuid>(&json).expect("back"), g);
    }
}
