//! Payload masking, RFC 6455 §5.3.
//!
//! `transformed[i] = original[i] ^ key[(offset + i) % 4]`. Masking and unmasking are the same
//! operation. The bulk of the buffer is processed eight bytes at a time with the key widened to a
//! `u64`, the rest four at a time and then byte by byte.

/// XORs `data` in place with the 4-byte masking `key`, starting at key position `offset % 4`.
///
/// `offset` is how many payload bytes of the same frame were already processed, so a frame whose
/// payload arrives in pieces can be unmasked piece by piece. Returns the offset for the next
/// piece.
pub fn apply_mask(data: &mut [u8], key: [u8; 4], offset: usize) -> usize {
    let rotated = rotate_key(key, offset);
    // The key twice over: in memory order, the same 4 bytes then again, whichever the byte
    // order (built from a u32, not byte by byte, which compiled to 20 shifts and ors).
    let word = u64::from(u32::from_ne_bytes(rotated));
    let wide = word | word << 32;
    let mut chunks = data.chunks_exact_mut(8);
    for chunk in &mut chunks {
        let word = u64::from_ne_bytes(chunk.try_into().expect("chunk of 8")) ^ wide;
        chunk.copy_from_slice(&word.to_ne_bytes());
    }
    // The rest is under 8 bytes and starts at a whole key (8 is a multiple of 4): four at a
    // time once, then bytes.
    let rest = chunks.into_remainder();
    let rest = match rest.split_first_chunk_mut::<4>() {
        Some((word, tail)) => {
            *word = (u32::from_ne_bytes(*word) ^ u32::from_ne_bytes(rotated)).to_ne_bytes();
            tail
        }
        None => rest,
    };
    for (byte, key) in rest.iter_mut().zip(rotated) {
        *byte ^= key;
    }
    offset.wrapping_add(data.len())
}

/// The key as seen from payload position `offset`: byte `i` of the result masks position
/// `offset + i`.
fn rotate_key(key: [u8; 4], offset: usize) -> [u8; 4] {
    let mut out = key;
    out.rotate_left(offset & 3);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn naive(data: &mut [u8], key: [u8; 4], offset: usize) {
        for (i, b) in data.iter_mut().enumerate() {
            *b ^= key[(offset + i) % 4];
        }
    }

    #[test]
    fn rfc_example_hello() {
        // RFC 6455 §5.7: a masked "Hello" with key 37 fa 21 3d.
        let mut payload = [0x7f, 0x9f, 0x4d, 0x51, 0x58];
        apply_mask(&mut payload, [0x37, 0xfa, 0x21, 0x3d], 0);
        assert_eq!(&payload, b"Hello");
    }

    #[test]
    fn matches_bytewise_for_every_length_and_offset() {
        let key = [0x12, 0x34, 0x56, 0x78];
        for len in 0..70 {
            for offset in 0..4 {
                let original: Vec<u8> = (0..len as u8).map(|i| i.wrapping_mul(37)).collect();
                let mut fast = original.clone();
                let mut slow = original.clone();
                apply_mask(&mut fast, key, offset);
                naive(&mut slow, key, offset);
                assert_eq!(fast, slow, "len {len} offset {offset}");
            }
        }
    }

    #[test]
    fn piecewise_equals_whole() {
        let key = [9, 8, 7, 6];
        let original: Vec<u8> = (0..100u8).collect();
        let mut whole = original.clone();
        apply_mask(&mut whole, key, 0);
        for split in 0..original.len() {
            let mut pieces = original.clone();
            let (a, b) = pieces.split_at_mut(split);
            let next = apply_mask(a, key, 0);
            apply_mask(b, key, next);
            assert_eq!(pieces, whole, "split at {split}");
        }
    }
}
