//! Skipping a JSON object or array a tool does not read, 64 bytes at a time: most of a provider's
//! reply (links, avatars, repository blocks, descriptions) is skipped, and skipping it byte by byte
//! was a third of devgate's CPU per call.
//!
//! Each block gives bit masks of its quotes, backslashes, brackets and control characters (AVX2 where
//! the CPU has it, else SSE2 on x86_64, which every x86_64 CPU has; a plain loop elsewhere). Escaped
//! bytes follow an odd run of backslashes; the bytes inside strings are the prefix XOR of the unescaped
//! quotes; brackets outside strings are counted until the depth returns to zero. What this checks in a
//! skipped container: brackets balance, strings end, hold no control character and escape only what
//! JSON allows, and nothing outside a string is a backslash. It does not check the grammar between
//! strings (a `tru`, a missing comma or a `]` closing a `{`): those parts are never read, and a reply
//! cut short or with a broken string is still refused.

/// Bit `i` of each mask is byte `i` of a 64-byte block.
#[derive(Default)]
struct Masks {
    quote: u64,
    backslash: u64,
    /// `{` or `[`.
    open: u64,
    /// `}` or `]`.
    close: u64,
    /// Bytes below 0x20.
    control: u64,
}

#[cfg(target_arch = "x86_64")]
#[inline(always)]
fn masks(block: &[u8; 64]) -> Masks {
    use std::arch::x86_64::*;
    let mut m = Masks::default();
    // SAFETY: SSE2 is part of the x86_64 baseline, so these instructions exist on every CPU this
    // build runs on; each load reads 16 bytes at offset 0, 16, 32 or 48 of the 64-byte block.
    unsafe {
        for k in 0..4 {
            let v = _mm_loadu_si128(block.as_ptr().add(16 * k).cast());
            let bits = |x: __m128i| (_mm_movemask_epi8(x) as u16 as u64) << (16 * k);
            // `[` and `]` differ from `{` and `}` only in bit 0x20.
            let folded = _mm_or_si128(v, _mm_set1_epi8(0x20));
            m.quote |= bits(_mm_cmpeq_epi8(v, _mm_set1_epi8(b'"' as i8)));
            m.backslash |= bits(_mm_cmpeq_epi8(v, _mm_set1_epi8(b'\\' as i8)));
            m.open |= bits(_mm_cmpeq_epi8(folded, _mm_set1_epi8(b'{' as i8)));
            m.close |= bits(_mm_cmpeq_epi8(folded, _mm_set1_epi8(b'}' as i8)));
            m.control |= bits(_mm_cmpeq_epi8(_mm_min_epu8(v, _mm_set1_epi8(0x1f)), v));
        }
    }
    m
}

#[cfg(not(target_arch = "x86_64"))]
fn masks(block: &[u8; 64]) -> Masks {
    let mut m = Masks::default();
    for (i, &c) in block.iter().enumerate() {
        let bit = 1u64 << i;
        match c {
            b'"' => m.quote |= bit,
            b'\\' => m.backslash |= bit,
            b'{' | b'[' => m.open |= bit,
            b'}' | b']' => m.close |= bit,
            0..=0x1f => m.control |= bit,
            _ => {}
        }
    }
    m
}

/// Bit `i` is the XOR of bits `0..=i`: between an opening quote (included) and its closing quote.
#[inline(always)]
fn prefix_xor(mut x: u64) -> u64 {
    for shift in [1, 2, 4, 8, 16, 32] {
        x ^= x << shift;
    }
    x
}

/// The bytes that follow an odd run of backslashes. `carry` says the block's first byte is escaped
/// by the previous block's last backslash, and is set for the next block.
#[inline(always)]
fn escaped(backslash: u64, carry: &mut u64) -> u64 {
    const EVEN: u64 = 0x5555_5555_5555_5555;
    let backslash = backslash & !*carry;
    let follows = (backslash << 1) | *carry;
    // Runs starting on an odd bit, added to the backslashes, carry past their run; the parity of
    // where each run ends then says which bytes after a run are escaped.
    let odd_starts = backslash & !EVEN & !follows;
    let (even_ends, overflow) = odd_starts.overflowing_add(backslash);
    *carry = u64::from(overflow);
    (EVEN ^ (even_ends << 1)) & follows
}

fn valid_escape(byte: u8) -> bool {
    matches!(
        byte,
        b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't' | b'u'
    )
}

/// Skips the object or array opening at `start`: the index just past its closing bracket, or the
/// index of the first fault (the input's length when it ends first). On x86_64 CPUs with AVX2,
/// carry-less multiplication and POPCNT (nearly all since 2013) a block takes half the compares, one
/// multiply for the string mask and one instruction per bracket count ([`wide`]; without POPCNT,
/// which AVX2 does not imply to the compiler, each count was a dozen instructions); elsewhere
/// [`portable`].
pub(super) fn container(bytes: &[u8], start: usize) -> Result<usize, usize> {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2")
        && std::arch::is_x86_feature_detected!("pclmulqdq")
        && std::arch::is_x86_feature_detected!("popcnt")
    {
        // SAFETY: this CPU has the three features, checked just above.
        return unsafe { wide::container(bytes, start) };
    }
    portable(bytes, start)
}

/// [`container`] with SSE2 (the x86_64 baseline) or a plain loop.
fn portable(bytes: &[u8], start: usize) -> Result<usize, usize> {
    scan(bytes, start, masks, prefix_xor)
}

#[cfg(target_arch = "x86_64")]
mod wide {
    use std::arch::x86_64::*;

    use super::Masks;

    /// [`super::container`] compiled for AVX2, PCLMULQDQ and POPCNT.
    #[target_feature(enable = "avx2,pclmulqdq,popcnt")]
    pub(super) fn container(bytes: &[u8], start: usize) -> Result<usize, usize> {
        super::scan(bytes, start, |block| masks(block), |x| prefix_xor(x))
    }

    #[inline]
    #[target_feature(enable = "avx2")]
    fn masks(block: &[u8; 64]) -> Masks {
        let mut m = Masks::default();
        for k in 0..2 {
            // SAFETY: reads 32 bytes at offset 0 or 32 of the 64-byte block.
            let v = unsafe { _mm256_loadu_si256(block.as_ptr().add(32 * k).cast()) };
            let bits = |x: __m256i| (_mm256_movemask_epi8(x) as u32 as u64) << (32 * k);
            let folded = _mm256_or_si256(v, _mm256_set1_epi8(0x20));
            m.quote |= bits(_mm256_cmpeq_epi8(v, _mm256_set1_epi8(b'"' as i8)));
            m.backslash |= bits(_mm256_cmpeq_epi8(v, _mm256_set1_epi8(b'\\' as i8)));
            m.open |= bits(_mm256_cmpeq_epi8(folded, _mm256_set1_epi8(b'{' as i8)));
            m.close |= bits(_mm256_cmpeq_epi8(folded, _mm256_set1_epi8(b'}' as i8)));
            m.control |= bits(_mm256_cmpeq_epi8(
                _mm256_min_epu8(v, _mm256_set1_epi8(0x1f)),
                v,
            ));
        }
        m
    }

    /// The prefix XOR as one carry-less multiplication by all ones.
    #[inline]
    #[target_feature(enable = "pclmulqdq")]
    fn prefix_xor(x: u64) -> u64 {
        let product = _mm_clmulepi64_si128(_mm_set_epi64x(0, x as i64), _mm_set1_epi8(-1), 0);
        _mm_cvtsi128_si64(product) as u64
    }
}

/// The scan itself, for the block masks and prefix XOR given; inlined into each caller so it is
/// compiled with that caller's instructions.
#[inline(always)]
fn scan(
    bytes: &[u8],
    start: usize,
    masks: impl Fn(&[u8; 64]) -> Masks,
    prefix_xor: impl Fn(u64) -> u64,
) -> Result<usize, usize> {
    let mut depth = 0usize;
    let mut in_string = 0u64;
    let mut carry = 0u64;
    let mut at = start;
    let mut tail = [b' '; 64];
    while at < bytes.len() {
        let block: &[u8; 64] = match bytes.get(at..at + 64) {
            Some(block) => block.try_into().expect("64 bytes"),
            None => {
                let rest = &bytes[at..];
                tail[..rest.len()].copy_from_slice(rest);
                tail[rest.len()..].fill(b' ');
                &tail
            }
        };
        let m = masks(block);
        let escaped = if m.backslash | carry != 0 {
            escaped(m.backslash, &mut carry)
        } else {
            0
        };
        let strings = prefix_xor(m.quote & !escaped) ^ in_string;
        in_string = ((strings as i64) >> 63) as u64;
        let open = m.open & !strings;
        let close = m.close & !strings;
        // Where the container ends, if in this block: faults after it belong to the caller.
        let mut upto = !0u64;
        let mut end = None;
        let closes = close.count_ones() as usize;
        if closes < depth {
            depth = depth + open.count_ones() as usize - closes;
        } else {
            let mut brackets = open | close;
            while brackets != 0 {
                let bit = brackets & brackets.wrapping_neg();
                if open & bit != 0 {
                    depth += 1;
                } else {
                    depth -= 1;
                    if depth == 0 {
                        upto = bit | (bit - 1);
                        end = Some(at + bit.trailing_zeros() as usize + 1);
                        break;
                    }
                }
                brackets ^= bit;
            }
        }
        let faults = ((m.control & strings) | (m.backslash & !strings)) & upto;
        let mut first_fault = if faults != 0 {
            faults.trailing_zeros() as usize
        } else {
            64
        };
        let mut escapes = escaped & upto;
        while escapes != 0 {
            let i = escapes.trailing_zeros() as usize;
            if i >= first_fault {
                break;
            }
            if !valid_escape(block[i]) {
                first_fault = i;
            }
            escapes &= escapes - 1;
        }
        if first_fault < 64 {
            return Err((at + first_fault).min(bytes.len()));
        }
        if let Some(end) = end {
            return Ok(end);
        }
        at += 64;
    }
    Err(bytes.len())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// The same checks, a byte at a time.
    fn reference(bytes: &[u8], start: usize) -> Result<usize, usize> {
        let (mut depth, mut in_string, mut escape) = (0usize, false, false);
        for (i, &c) in bytes.iter().enumerate().skip(start) {
            if in_string {
                if escape {
                    if !valid_escape(c) {
                        return Err(i);
                    }
                    escape = false;
                    continue;
                }
                match c {
                    b'\\' => escape = true,
                    b'"' => in_string = false,
                    0..=0x1f => return Err(i),
                    _ => {}
                }
            } else {
                match c {
                    b'\\' => return Err(i),
                    b'"' => in_string = true,
                    b'{' | b'[' => depth += 1,
                    b'}' | b']' => {
                        depth -= 1;
                        if depth == 0 {
                            return Ok(i + 1);
                        }
                    }
                    _ => {}
                }
            }
        }
        Err(bytes.len())
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(3_000))]
        /// Quotes, backslashes and brackets mixed densely, across block boundaries: the blocks find
        /// the same end, or fail where the byte loop does.
        #[test]
        fn blocks_agree_with_a_byte_loop(
            lead in 0usize..70,
            body in proptest::collection::vec(prop_oneof![
                30 => prop::sample::select(b"abu/ ,:".to_vec()),
                10 => Just(b'"'),
                10 => Just(b'\\'),
                4 => prop::sample::select(b"{[".to_vec()),
                3 => prop::sample::select(b"}]".to_vec()),
                1 => prop::sample::select(b"\n\x01q".to_vec()),
            ], 0..400),
        ) {
            let mut bytes = vec![b' '; lead];
            bytes.push(b'{');
            bytes.extend(body);
            prop_assert_eq!(container(&bytes, lead), reference(&bytes, lead));
            prop_assert_eq!(portable(&bytes, lead), reference(&bytes, lead));
        }

        /// Well-formed JSON: the end found is where serde_json's value ends.
        #[test]
        fn ends_where_a_value_ends(value in super::super::tests::json_value(), pretty: bool) {
            let text = if pretty {
                serde_json::to_vec_pretty(&serde_json::json!([value, 1])).unwrap()
            } else {
                serde_json::to_vec(&serde_json::json!({"k": [value], "z": "\\\""})).unwrap()
            };
            prop_assert_eq!(container(&text, 0), Ok(text.len()));
            prop_assert_eq!(portable(&text, 0), Ok(text.len()));
        }
    }

    #[test]
    fn refuses_what_a_skipped_part_must_not_hold() {
        for (bad, at) in [
            (&br#"{"a": "x"#[..], 8),
            (br#"{"a": "\q"}"#, 8),
            (b"{\"a\": \"\x01\"}", 7),
            (br#"{"a": \"x"}"#, 6),
            (br#"{"a": [1, 2}"#, 12),
        ] {
            assert_eq!(
                container(bad, 0),
                Err(at),
                "{}",
                String::from_utf8_lossy(bad)
            );
            assert_eq!(portable(bad, 0), Err(at));
        }
    }
}
