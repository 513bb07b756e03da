//! objectGUID, the anchor of every directory object.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// An Active Directory objectGUID.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct ObjectGuid([u8; 16]);

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error(
    "invalid objectGUID {0:?}: expected 16 bytes or the form xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx"
)]
pub struct GuidError(pub String);

impl ObjectGuid {
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
}

impl fmt::Display for ObjectGuid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let h = hex::encode(self.0);
        write!(
            f,
            "{}-{}-{}-{}-{}",
            &h[0..8],
            &h[8..12],
            &h[12..16],
            &h[16..20],
            &h[20..32]
        )
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
        let parts: Vec<&str> = s.split('-').collect();
        let lens: Vec<usize> = parts.iter().map(|p| p.len()).collect();
        if lens != [8, 4, 4, 4, 12] {
            return Err(GuidError(s.to_owned()));
        }
        let joined: String = parts.concat();
        let mut b = [0u8; 16];
        hex::decode_to_slice(&joined, &mut b).map_err(|_| GuidError(s.to_owned()))?;
        Ok(Self(b))
    }
}

impl TryFrom<String> for ObjectGuid {
    type Error = GuidError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

impl From<ObjectGuid> for String {
    fn from(g: ObjectGuid) -> String {
        g.to_string()
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
    }
}
