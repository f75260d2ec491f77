//! Reading a provider's JSON reply into only the parts a tool reads ([`Reads`]): kept values are
//! parsed by serde_json, everything else is skipped without being allocated, objects and arrays by
//! [`super::skip`] a block at a time. A reply cut short, with trailing data, a broken string or a
//! malformed kept value is refused; inside a skipped container only what `skip` checks is checked.
//! Where a node carries a [`Plan`] ([`Reads::project_at`]), its object, or each item of its list, is
//! read straight into the tool's projection instead of into a pruned copy.

use serde_json::{Map, Value};

use super::Reads;
use super::plan::{self, Plan, Step};
use super::skip;

/// Why a reply is not JSON, and where.
#[derive(Debug, thiserror::Error, PartialEq)]
#[error("{what} at byte {at}")]
pub struct Malformed {
    pub what: &'static str,
    pub at: usize,
}

/// Deeper than this is refused (serde_json's limit too): arrays are transparent to [`Reads`], so
/// `[[[[…` would otherwise recurse as deep as a reply cares to nest.
const MAX_DEPTH: usize = 128;

pub(super) fn parse(reads: &Reads, bytes: &[u8]) -> Result<Value, Malformed> {
    let mut reader = Reader { bytes, at: 0 };
    let value = reader.value(reads, 0)?;
    reader.whitespace();
    if reader.at != bytes.len() {
        return Err(reader.fault("trailing characters"));
    }
    Ok(value)
}

struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl Reader<'_> {
    fn fault(&self, what: &'static str) -> Malformed {
        Malformed { what, at: self.at }
    }

    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.at).copied()
    }

    fn whitespace(&mut self) {
        while let Some(b' ' | b'\n' | b'\r' | b'\t') = self.peek() {
            self.at += 1;
        }
    }

    fn expect(&mut self, byte: u8, what: &'static str) -> Result<(), Malformed> {
        self.whitespace();
        if self.peek() != Some(byte) {
            return Err(self.fault(what));
        }
        self.at += 1;
        Ok(())
    }

    fn value(&mut self, reads: &Reads, depth: usize) -> Result<Value, Malformed> {
        if depth > MAX_DEPTH {
            return Err(self.fault("nested too deep"));
        }
        self.whitespace();
        if let Some(plan) = &reads.plan {
            return self.planned(plan, reads, depth);
        }
        self.pruned(reads, depth)
    }

    /// The value here without a projection of this node's own.
    fn pruned(&mut self, reads: &Reads, depth: usize) -> Result<Value, Malformed> {
        if !reads.whole {
            match self.peek() {
                Some(b'{') => return self.object(reads, depth),
                Some(b'[') => return self.array(reads, depth),
                _ => {}
            }
        }
        self.kept()
    }

    /// The value at a node with a [`Plan`]: the projected object or array of projected items; anything
    /// else is read pruned and comes out as [`super::project`] (or, for a list, the tool's shaping)
    /// would make it.
    fn planned(&mut self, plan: &Plan, reads: &Reads, depth: usize) -> Result<Value, Malformed> {
        match (plan.list, self.peek()) {
            (false, Some(b'{')) => self.projected(plan, depth),
            (true, Some(b'[')) => {
                let mut items = Vec::new();
                self.elements(|reader| {
                    items.push(match reader.peek() {
                        Some(b'{') => reader.projected(plan, depth + 1)?,
                        _ => super::project(&reader.value(reads, depth + 1)?, &plan.fields),
                    });
                    Ok(())
                })?;
                Ok(Value::Array(items))
            }
            (true, _) => self.pruned(reads, depth),
            (false, _) => {
                let value = self.pruned(reads, depth)?;
                Ok(if value.is_null() {
                    value
                } else {
                    super::project(&value, &plan.fields)
                })
            }
        }
    }

    /// The object opening here, projected by `plan`.
    fn projected(&mut self, plan: &Plan, depth: usize) -> Result<Value, Malformed> {
        let mut out = Map::new();
        self.project_into(plan, &mut out, depth)?;
        Ok(Value::Object(out))
    }

    fn project_into(
        &mut self,
        plan: &Plan,
        out: &mut Map<String, Value>,
        depth: usize,
    ) -> Result<(), Malformed> {
        if depth > MAX_DEPTH {
            return Err(self.fault("nested too deep"));
        }
        self.members(|reader, key| {
            reader.whitespace();
            match plan.step(key) {
                Some(Step::Inner(inner)) if reader.peek() == Some(b'{') => {
                    reader.project_into(inner, out, depth + 1)
                }
                Some(Step::Taken { fields, reads }) => {
                    let value = reader.value(reads, depth + 1)?;
                    plan::emit(fields, value, out);
                    Ok(())
                }
                Some(Step::Inner(_)) | None => reader.skip(),
            }
        })
    }

    /// A value kept whole. Strings without escapes (nearly all) are taken as they are.
    fn kept(&mut self) -> Result<Value, Malformed> {
        let start = self.at;
        if self.peek() == Some(b'"') {
            if !self.string()? {
                let text =
                    std::str::from_utf8(&self.bytes[start + 1..self.at - 1]).map_err(|_| {
                        Malformed {
                            what: "invalid UTF-8 in a string",
                            at: start,
                        }
                    })?;
                return Ok(Value::String(text.to_owned()));
            }
        } else {
            self.skip()?;
            // Literals and integers (ids, counts) without a serde_json deserializer each.
            let raw = &self.bytes[start..self.at];
            match raw {
                b"true" => return Ok(Value::Bool(true)),
                b"false" => return Ok(Value::Bool(false)),
                b"null" => return Ok(Value::Null),
                _ => {}
            }
            if let Some(n) = integer(raw) {
                return Ok(n);
            }
        }
        serde_json::from_slice(&self.bytes[start..self.at]).map_err(|_| Malformed {
            what: "invalid value",
            at: start,
        })
    }

    fn object(&mut self, reads: &Reads, depth: usize) -> Result<Value, Malformed> {
        let mut out = Map::new();
        self.members(|reader, key| match reads.kept(key) {
            Some((key, below)) => {
                let value = reader.value(below, depth + 1)?;
                out.insert(key.to_owned(), value);
                Ok(())
            }
            None => {
                reader.whitespace();
                reader.skip()
            }
        })?;
        Ok(Value::Object(out))
    }

    /// Reads the object opening here, calling `member` with each key once its `:` is read; `member`
    /// reads or skips the value.
    fn members(
        &mut self,
        mut member: impl FnMut(&mut Self, &[u8]) -> Result<(), Malformed>,
    ) -> Result<(), Malformed> {
        let bytes = self.bytes;
        self.at += 1;
        self.whitespace();
        if self.peek() == Some(b'}') {
            self.at += 1;
            return Ok(());
        }
        loop {
            self.whitespace();
            if self.peek() != Some(b'"') {
                return Err(self.fault("expected a key"));
            }
            let start = self.at;
            let escaped = self.string()?;
            let quoted = &bytes[start..self.at];
            let decoded;
            // Not checked for UTF-8: a kept key is compared byte for byte with a catalog key, which is
            // UTF-8, and a skipped key is never read. Only keys with escapes (rare) are decoded.
            let key = if escaped {
                decoded = serde_json::from_slice::<String>(quoted).map_err(|_| Malformed {
                    what: "invalid key",
                    at: start,
                })?;
                decoded.as_bytes()
            } else {
                &quoted[1..quoted.len() - 1]
            };
            self.expect(b':', "expected `:`")?;
            member(self, key)?;
            self.whitespace();
            match self.peek() {
                Some(b',') => self.at += 1,
                Some(b'}') => {
                    self.at += 1;
                    return Ok(());
                }
                _ => return Err(self.fault("expected `,` or `}`")),
            }
        }
    }

    fn array(&mut self, reads: &Reads, depth: usize) -> Result<Value, Malformed> {
        let mut out = Vec::new();
        self.elements(|reader| {
            out.push(reader.value(reads, depth + 1)?);
            Ok(())
        })?;
        Ok(Value::Array(out))
    }

    /// Reads the array opening here, calling `element` at each element (after its whitespace);
    /// `element` reads it.
    fn elements(
        &mut self,
        mut element: impl FnMut(&mut Self) -> Result<(), Malformed>,
    ) -> Result<(), Malformed> {
        self.at += 1;
        self.whitespace();
        if self.peek() == Some(b']') {
            self.at += 1;
            return Ok(());
        }
        loop {
            self.whitespace();
            element(self)?;
            self.whitespace();
            match self.peek() {
                Some(b',') => self.at += 1,
                Some(b']') => {
                    self.at += 1;
                    return Ok(());
                }
                _ => return Err(self.fault("expected `,` or `]`")),
            }
        }
    }

    /// Skips one value starting here.
    fn skip(&mut self) -> Result<(), Malformed> {
        match self.peek() {
            Some(b'"') => self.string().map(drop),
            Some(b'{' | b'[') => match skip::container(self.bytes, self.at) {
                Ok(end) => {
                    self.at = end;
                    Ok(())
                }
                Err(at) => Err(Malformed {
                    what: "malformed or unfinished object or array",
                    at,
                }),
            },
            Some(b't') => self.word(b"true"),
            Some(b'f') => self.word(b"false"),
            Some(b'n') => self.word(b"null"),
            Some(b'-' | b'0'..=b'9') => self.number(),
            _ => Err(self.fault("expected a value")),
        }
    }

    fn word(&mut self, word: &[u8]) -> Result<(), Malformed> {
        if self.bytes.get(self.at..self.at + word.len()) != Some(word) {
            return Err(self.fault("expected a value"));
        }
        self.at += word.len();
        Ok(())
    }

    fn digits(&mut self) -> usize {
        let start = self.at;
        while let Some(b'0'..=b'9') = self.peek() {
            self.at += 1;
        }
        self.at - start
    }

    fn number(&mut self) -> Result<(), Malformed> {
        if self.peek() == Some(b'-') {
            self.at += 1;
        }
        match self.peek() {
            Some(b'0') => self.at += 1,
            Some(b'1'..=b'9') => {
                self.digits();
            }
            _ => return Err(self.fault("invalid number")),
        }
        if self.peek() == Some(b'.') {
            self.at += 1;
            if self.digits() == 0 {
                return Err(self.fault("invalid number"));
            }
        }
        if let Some(b'e' | b'E') = self.peek() {
            self.at += 1;
            if let Some(b'+' | b'-') = self.peek() {
                self.at += 1;
            }
            if self.digits() == 0 {
                return Err(self.fault("invalid number"));
            }
        }
        Ok(())
    }

    /// Skips the string opening here, 16 or 8 bytes at a time between escapes; says whether it had
    /// any.
    fn string(&mut self) -> Result<bool, Malformed> {
        self.at += 1;
        let mut escaped = false;
        loop {
            self.at = plain_until(self.bytes, self.at);
            match self.peek() {
                None => return Err(self.fault("unfinished string")),
                Some(b'"') => {
                    self.at += 1;
                    return Ok(escaped);
                }
                Some(b'\\') => {
                    escaped = true;
                    match self.bytes.get(self.at + 1) {
                        Some(b'u') => {
                            let hex = self.bytes.get(self.at + 2..self.at + 6);
                            if !hex.is_some_and(|h| h.iter().all(u8::is_ascii_hexdigit)) {
                                return Err(self.fault("invalid escape"));
                            }
                            self.at += 6;
                        }
                        Some(&c) if skip_escape(c) => self.at += 2,
                        _ => return Err(self.fault("invalid escape")),
                    }
                }
                Some(0..=0x1f) => return Err(self.fault("control character in a string")),
                Some(_) => self.at += 1,
            }
        }
    }
}

/// From `at`, the index of the first quote, backslash or control character, or of one of the last
/// bytes, which the caller reads one at a time: 16 bytes at a time with SSE2 (x86_64's baseline, one
/// compare for a whole key), else `plain_until_by_words`.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
fn plain_until(bytes: &[u8], mut at: usize) -> usize {
    use std::arch::x86_64::*;
    while at + 16 <= bytes.len() {
        // SAFETY: SSE2 is part of the x86_64 baseline; the load reads the 16 bytes from `at`, in
        // bounds by the loop's condition.
        let found = unsafe {
            let v = _mm_loadu_si128(bytes.as_ptr().add(at).cast());
            let quote = _mm_cmpeq_epi8(v, _mm_set1_epi8(b'"' as i8));
            let backslash = _mm_cmpeq_epi8(v, _mm_set1_epi8(b'\\' as i8));
            let control = _mm_cmpeq_epi8(_mm_min_epu8(v, _mm_set1_epi8(0x1f)), v);
            _mm_movemask_epi8(_mm_or_si128(_mm_or_si128(quote, backslash), control)) as u32
        };
        if found != 0 {
            return at + found.trailing_zeros() as usize;
        }
        at += 16;
    }
    at
}

#[cfg(not(target_arch = "x86_64"))]
fn plain_until(bytes: &[u8], at: usize) -> usize {
    plain_until_by_words(bytes, at)
}

/// [`plain_until`] 8 bytes at a time in a `u64`, for CPUs other than x86_64 (and tests).
#[cfg(any(test, not(target_arch = "x86_64")))]
fn plain_until_by_words(bytes: &[u8], mut at: usize) -> usize {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    while let Some(chunk) = bytes.get(at..at + 8) {
        let w = u64::from_le_bytes(chunk.try_into().expect("8 bytes"));
        let quote = w ^ (ONES * u64::from(b'"'));
        let backslash = w ^ (ONES * u64::from(b'\\'));
        // High bit of each byte that is a quote, a backslash or below 0x20 (the lowest one exact).
        let found = ((quote.wrapping_sub(ONES) & !quote)
            | (backslash.wrapping_sub(ONES) & !backslash)
            | (w.wrapping_sub(ONES * 0x20) & !w))
            & HIGH;
        if found != 0 {
            return at + (found.trailing_zeros() / 8) as usize;
        }
        at += 8;
    }
    at
}

/// A JSON integer of at most 18 digits (so it always fits an i64), as serde_json would read it; `None`
/// for anything else (a fraction, an exponent, a longer number, `-0`), which serde_json then reads.
fn integer(raw: &[u8]) -> Option<Value> {
    let digits = raw.strip_prefix(b"-").unwrap_or(raw);
    if digits.is_empty() || digits.len() > 18 || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let n = digits
        .iter()
        .fold(0i64, |n, d| n * 10 + i64::from(d - b'0'));
    Some(if raw[0] == b'-' {
        // serde_json reads `-0` as the float -0.0.
        if n == 0 {
            return None;
        }
        Value::from(-n)
    } else {
        Value::from(n)
    })
}

fn skip_escape(byte: u8) -> bool {
    matches!(byte, b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't')
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn special(b: u8) -> bool {
        b == b'"' || b == b'\\' || b < 0x20
    }

    proptest! {
        /// Both scans stop at the first special byte, or only where too few bytes are left for
        /// their width, and never pass a special byte.
        #[test]
        fn scans_stop_at_the_first_special_byte(
            bytes in proptest::collection::vec(
                prop_oneof![8 => Just(b'a'), 1 => Just(b'"'), 1 => Just(b'\\'), 1 => Just(0x1f_u8), 1 => Just(0xe9_u8)],
                0..80,
            ),
            start in 0usize..80,
        ) {
            let start = start.min(bytes.len());
            for (at, width) in [(plain_until(&bytes, start), 16), (plain_until_by_words(&bytes, start), 8)] {
                prop_assert!(bytes[start..at].iter().all(|&b| !special(b)), "{at}");
                prop_assert!(at == bytes.len() || special(bytes[at]) || at + width > bytes.len(), "{at}");
            }
        }
    }
}
