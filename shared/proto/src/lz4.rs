//! An encoded message compressed as one LZ4 block, its encoded length
//! first (u32, little-endian): how collectors send `ObjectBatch`es
//! (`CollectorEvent.batch_lz4`) and how the reconciler stages them.

/// The longest encoded message a block may expand to: a batch is at most
/// half a megabyte encoded, so anything near this is not a batch.
pub const MAX_DECODED: usize = 16 << 20;

/// Why a block cannot be read.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum Lz4Error {
    #[error("an LZ4 block needs its 4-byte length first; it has {0} bytes")]
    Short(usize),
    #[error("an LZ4 block says it expands to {0} bytes, more than the {MAX_DECODED} a message may")]
    TooLarge(usize),
    #[error("the LZ4 block is corrupt: {0}")]
    Corrupt(String),
}

/// Compresses an encoded message.
pub fn compress(encoded: &[u8]) -> Vec<u8> {
    lz4_flex::block::compress_prepend_size(encoded)
}

/// The encoded message a block holds.
pub fn decompress(block: &[u8]) -> Result<Vec<u8>, Lz4Error> {
    let (len, data) = block
        .split_first_chunk::<4>()
        .ok_or(Lz4Error::Short(block.len()))?;
    let len = u32::from_le_bytes(*len) as usize;
    if len > MAX_DECODED {
        return Err(Lz4Error::TooLarge(len));
    }
    let mut out = vec![0; len];
    let written = lz4_flex::block::decompress_into(data, &mut out)
        .map_err(|e| Lz4Error::Corrupt(e.to_string()))?;
    if written != len {
        return Err(Lz4Error::Corrupt(format!(
            "it expands to {written} bytes, not the {len} it says"
        )));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_block_gives_back_what_was_compressed() {
        let encoded: Vec<u8> = (0..10_000u32)
            .flat_map(|i| (i % 251).to_le_bytes())
            .collect();
        let block = compress(&encoded);
        assert!(block.len() < encoded.len() / 2, "repetitive input shrinks");
        assert_eq!(decompress(&block), Ok(encoded));
        assert_eq!(decompress(&compress(b"")), Ok(Vec::new()));
    }

    #[test]
    fn a_bad_block_is_an_error_that_says_why() {
        assert_eq!(decompress(b"\x05\0"), Err(Lz4Error::Short(2)));
        let huge = (u32::MAX).to_le_bytes();
        assert_eq!(
            decompress(&huge),
            Err(Lz4Error::TooLarge(u32::MAX as usize))
        );
        let mut block = compress(b"hello, hello, hello, hello");
        block.truncate(block.len() - 3);
        assert!(matches!(decompress(&block), Err(Lz4Error::Corrupt(_))));
        // A length that does not match what the block holds.
        let mut block = compress(b"hello, hello, hello, hello");
        block[0] += 1;
        assert!(matches!(decompress(&block), Err(Lz4Error::Corrupt(_))));
    }
}
