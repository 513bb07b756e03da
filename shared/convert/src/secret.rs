//! A sealed bind password on the bus (a collector's job).

use dirsync_core::SealedSecret;
use dirsync_proto::bus;

pub fn sealed_to_bus(s: SealedSecret) -> bus::SealedSecret {
    bus::SealedSecret {
        key_id: s.key_id,
        nonce: s.nonce,
        ciphertext: s.ciphertext,
    }
}

pub fn sealed_from_bus(s: bus::SealedSecret) -> SealedSecret {
    SealedSecret {
        key_id: s.key_id,
        nonce: s.nonce,
        ciphertext: s.ciphertext,
    }
}
