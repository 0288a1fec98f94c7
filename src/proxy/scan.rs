//! Byte scans on the request path.

/// Whether `haystack` holds `needle`, eight bytes at a step: header names and values are short,
/// and a byte-at-a-time loop over every name of every request was a measurable share of the
/// per-request instructions.
pub fn contains_byte(haystack: &[u8], needle: u8) -> bool {
    const ONES: u64 = u64::from_ne_bytes([0x01; 8]);
    const HIGHS: u64 = u64::from_ne_bytes([0x80; 8]);
    let pattern = u64::from_ne_bytes([needle; 8]);
    let holds = |word: &[u8]| {
        let mut bytes = [0u8; 8];
        bytes.copy_from_slice(word);
        // A byte of `x` is zero where the word holds `needle`; the classic zero-byte test.
        let x = u64::from_ne_bytes(bytes) ^ pattern;
        x.wrapping_sub(ONES) & !x & HIGHS != 0
    };
    let mut words = haystack.chunks_exact(8);
    if words.any(holds) {
        return true;
    }
    match words.remainder() {
        [] => false,
        // The last eight bytes, overlapping the words already tested: one more step instead of
        // up to seven single bytes.
        _ if haystack.len() >= 8 => holds(&haystack[haystack.len() - 8..]),
        rest => rest.contains(&needle),
    }
}

#[cfg(test)]
mod tests {
    use super::contains_byte;

    #[test]
    fn contains_byte_finds_a_byte_anywhere() {
        for len in 0..40 {
            let plain = vec![b'a'; len];
            assert!(!contains_byte(&plain, b'_'), "{len}");
            for at in 0..len {
                let mut with = plain.clone();
                with[at] = b'_';
                assert!(contains_byte(&with, b'_'), "{len} {at}");
            }
        }
        // Bytes next to the needle's value (borrows in the zero-byte test) are not it.
        assert!(!contains_byte(b"^^^^^^^^````````\x5e", b'_'));
        assert!(contains_byte(b"\xff\xff\xff\xff\xff\xff\xff_", b'_'));
    }
}
