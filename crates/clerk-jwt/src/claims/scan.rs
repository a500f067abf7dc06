//! A one-pass scanner that sorts a payload into [`RawClaims`] without serde: the hot
//! path of every verification.
//!
//! It handles what Clerk sends (strings, small integers, booleans, `null`, the `o`
//! object and the `fva` pair) itself, borrowing every string without escapes from the
//! payload, and hands the rare shapes to `serde_json` value by value: nested arrays
//! and objects (found by their brackets, then parsed strictly as one value), numbers
//! with a fraction, an exponent or more than 18 digits, an `fva` that is not two small
//! integers and an `o` that is not an object. Whatever it does not like (malformed
//! JSON, a duplicate key, nesting near serde_json's depth limit) makes it give up: the
//! caller then parses the payload again with `serde_json`, which decides and words the
//! error. So an accepted payload gives exactly the slots `serde_json` gives (the
//! differential tests and the `claims` fuzz target hold it to that), and a refused one
//! is refused with today's message.

use std::borrow::Cow;

use serde_json::{Map, Value};

use super::fva::FvaSlot;
use super::org::{OrgSlot, RawOrg};
use super::raw::RawClaims;
use crate::json::{Scalar, StrictValue};

/// Nesting deeper than this is left to `serde_json` (its limit is 128 levels).
const MAX_DEPTH: usize = 100;

/// Sorts `payload` into `claims`. `None`: the scanner gave up (the payload may be
/// malformed, or merely unusual) and `claims` holds partial slots: parse again with
/// `serde_json`.
pub(crate) fn scan<'a>(payload: &'a str, claims: &mut RawClaims<'a>) -> Option<()> {
    let mut s = Scanner {
        text: payload,
        pos: 0,
    };
    s.ws();
    s.eat(b'{')?;
    s.ws();
    if s.peek() == Some(b'}') {
        s.pos += 1;
    } else {
        loop {
            let key = s.key()?;
            let c = &mut *claims;
            let slot = match key.as_ref() {
                "iss" => &mut c.iss,
                "sub" => &mut c.sub,
                "sid" => &mut c.sid,
                "azp" => &mut c.azp,
                "jti" => &mut c.jti,
                "exp" => &mut c.exp,
                "nbf" => &mut c.nbf,
                "iat" => &mut c.iat,
                "aud" => &mut c.aud,
                "v" => &mut c.v,
                "sts" => &mut c.sts,
                "fea" => &mut c.fea,
                "pla" => &mut c.pla,
                "act" => &mut c.act,
                "email" => &mut c.email,
                "email_verified" => &mut c.email_verified,
                "org_id" => &mut c.org_id,
                "org_slug" => &mut c.org_slug,
                "org_role" => &mut c.org_role,
                "org_permissions" => &mut c.org_permissions,
                "fva" if c.fva.is_none() => {
                    c.fva = Some(s.fva()?);
                    if s.next_member()? {
                        continue;
                    }
                    break;
                }
                "o" if c.o.is_none() => {
                    s.org_into(&mut c.o)?;
                    if s.next_member()? {
                        continue;
                    }
                    break;
                }
                // A second `fva` or `o`: a duplicate key.
                "fva" | "o" => return None,
                _ => {
                    extra(&mut s, &mut c.extra, key, 1)?;
                    if s.next_member()? {
                        continue;
                    }
                    break;
                }
            };
            if slot.is_some() {
                return None;
            }
            s.value_into(slot, 1)?;
            if !s.next_member()? {
                break;
            }
        }
    }
    s.ws();
    (s.pos == s.text.len()).then_some(())
}

/// An unknown member: kept as JSON, refused when its key was seen before.
fn extra<'a>(
    s: &mut Scanner<'a>,
    map: &mut Map<String, Value>,
    key: Cow<'a, str>,
    depth: usize,
) -> Option<()> {
    if map.contains_key(key.as_ref()) {
        return None;
    }
    let value = match s.peek()? {
        b'[' | b'{' => s.nested::<StrictValue>(depth)?.0,
        _ => s.value(depth)?.into_value(),
    };
    map.insert(key.into_owned(), value);
    Some(())
}

struct Scanner<'a> {
    text: &'a str,
    pos: usize,
}

impl<'a> Scanner<'a> {
    fn bytes(&self) -> &'a [u8] {
        self.text.as_bytes()
    }

    fn peek(&self) -> Option<u8> {
        self.bytes().get(self.pos).copied()
    }

    fn ws(&mut self) {
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.peek() {
            self.pos += 1;
        }
    }

    fn eat(&mut self, byte: u8) -> Option<()> {
        (self.peek()? == byte).then(|| self.pos += 1)
    }

    /// A member's key and its colon, with the whitespace around them.
    #[inline(always)]
    fn key(&mut self) -> Option<Cow<'a, str>> {
        self.ws();
        let start = self.pos;
        let key = match self.plain_string() {
            Some(key) => Cow::Borrowed(key),
            None => {
                self.pos = start;
                self.string()?
            }
        };
        self.ws();
        self.eat(b':')?;
        self.ws();
        Some(key)
    }

    /// After a member's value: `true` at a comma (another member follows), `false` at
    /// the closing brace.
    fn next_member(&mut self) -> Option<bool> {
        self.ws();
        match self.peek()? {
            b',' => {
                self.pos += 1;
                Some(true)
            }
            b'}' => {
                self.pos += 1;
                Some(false)
            }
            _ => None,
        }
    }

    /// A string, borrowed unless it holds escapes.
    #[inline]
    fn string(&mut self) -> Option<Cow<'a, str>> {
        self.eat(b'"')?;
        let bytes = self.bytes();
        let start = self.pos;
        let mut i = plain_run(bytes, start);
        loop {
            match *bytes.get(i)? {
                b'"' => {
                    self.pos = i + 1;
                    // Both ends are ASCII quotes: char boundaries of valid UTF-8.
                    return self.text.get(start..i).map(Cow::Borrowed);
                }
                b'\\' => return self.escaped(start, i),
                b if b < 0x20 => return None,
                _ => i += 1,
            }
        }
    }

    /// The rest of a string from its first backslash at `i` (it started at `start`):
    /// unescaped into an owned string. Apart, so the common string above stays small.
    #[cold]
    #[inline(never)]
    fn escaped(&mut self, start: usize, i: usize) -> Option<Cow<'a, str>> {
        let bytes = self.bytes();
        let mut out = String::with_capacity(i - start + 8);
        out.push_str(self.text.get(start..i)?);
        self.pos = i;
        loop {
            let run = self.pos;
            self.pos = plain_run(bytes, self.pos);
            loop {
                match *bytes.get(self.pos)? {
                    b'"' | b'\\' => break,
                    b if b < 0x20 => return None,
                    _ => self.pos += 1,
                }
            }
            out.push_str(self.text.get(run..self.pos)?);
            if bytes[self.pos] == b'"' {
                self.pos += 1;
                return Some(Cow::Owned(out));
            }
            self.pos += 1;
            let escaped = match *bytes.get(self.pos)? {
                b'"' => '"',
                b'\\' => '\\',
                b'/' => '/',
                b'b' => '\u{8}',
                b'f' => '\u{c}',
                b'n' => '\n',
                b'r' => '\r',
                b't' => '\t',
                b'u' => {
                    self.pos += 1;
                    let unit = self.hex4()?;
                    match unit {
                        0xD800..=0xDBFF => {
                            // A leading surrogate: its trailing half must follow.
                            if bytes.get(self.pos..self.pos + 2)? != b"\\u" {
                                return None;
                            }
                            self.pos += 2;
                            let low = self.hex4()?;
                            if !(0xDC00..=0xDFFF).contains(&low) {
                                return None;
                            }
                            let code = 0x1_0000 + ((unit - 0xD800) << 10) + (low - 0xDC00);
                            out.push(char::from_u32(code)?);
                        }
                        0xDC00..=0xDFFF => return None,
                        _ => out.push(char::from_u32(unit)?),
                    }
                    continue;
                }
                _ => return None,
            };
            out.push(escaped);
            self.pos += 1;
        }
    }

    /// Four hex digits of a `\u` escape.
    fn hex4(&mut self) -> Option<u32> {
        let digits = self.bytes().get(self.pos..self.pos + 4)?;
        let mut n = 0;
        for &d in digits {
            n = n * 16 + char::from(d).to_digit(16)?;
        }
        self.pos += 4;
        Some(n)
    }

    /// Reads a value at nesting `depth` into `slot`, where it lives. A claim's
    /// `Scalar` returned through memory and then stored was read back while its bytes
    /// were still being written (a store-forwarding stall on every claim), so the two
    /// common cases (a string without escapes, a small integer) come back in registers
    /// and are written straight into the slot; the others take the general path.
    #[inline(always)]
    fn value_into(&mut self, slot: &mut Option<Scalar<'a>>, depth: usize) -> Option<()> {
        let start = self.pos;
        match self.peek()? {
            b'"' => {
                if let Some(text) = self.plain_string() {
                    *slot = Some(Scalar::Str(Cow::Borrowed(text)));
                    return Some(());
                }
            }
            b'-' | b'1'..=b'9' => {
                if let Some(n) = self.small_int() {
                    *slot = Some(Scalar::Int(n));
                    return Some(());
                }
            }
            _ => {}
        }
        self.pos = start;
        *slot = Some(self.value(depth)?);
        Some(())
    }

    /// A string without escapes or control characters, borrowed; `None` (with the
    /// position anywhere) for any other string or malformed text, which
    /// [`Scanner::string`] then reads or refuses.
    #[inline]
    fn plain_string(&mut self) -> Option<&'a str> {
        self.eat(b'"')?;
        let bytes = self.bytes();
        let start = self.pos;
        let mut i = plain_run(bytes, start);
        loop {
            match *bytes.get(i)? {
                b'"' => {
                    self.pos = i + 1;
                    // Both ends are ASCII quotes: char boundaries of valid UTF-8.
                    return self.text.get(start..i);
                }
                b'\\' => return None,
                b if b < 0x20 => return None,
                _ => i += 1,
            }
        }
    }

    /// An integer of 1 to 18 digits without a leading zero, fraction or exponent: the
    /// value [`Scanner::number`] gives it. `None` (with the position anywhere) for any
    /// other number or text, which [`Scanner::number`] then reads or refuses.
    #[inline]
    fn small_int(&mut self) -> Option<i64> {
        let bytes = self.bytes();
        let mut i = self.pos;
        let negative = *bytes.get(i)? == b'-';
        if negative {
            i += 1;
        }
        let digits = i;
        if !matches!(bytes.get(i)?, b'1'..=b'9') {
            return None;
        }
        let mut n: i64 = 0;
        while let Some(&d) = bytes.get(i).filter(|d| d.is_ascii_digit()) {
            if i - digits == 18 {
                return None;
            }
            n = n * 10 + i64::from(d - b'0');
            i += 1;
        }
        if let Some(b'.' | b'e' | b'E') = bytes.get(i) {
            return None;
        }
        self.pos = i;
        Some(if negative { -n } else { n })
    }

    /// Any value at nesting `depth` (the top-level object is depth 1).
    fn value(&mut self, depth: usize) -> Option<Scalar<'a>> {
        match self.peek()? {
            b'"' => self.string().map(Scalar::Str),
            b't' => self.literal("true", Scalar::Bool(true)),
            b'f' => self.literal("false", Scalar::Bool(false)),
            b'n' => self.literal("null", Scalar::Null),
            b'-' | b'0'..=b'9' => self.number(),
            b'[' | b'{' => self
                .nested::<StrictValue>(depth)
                .map(|StrictValue(v)| Scalar::Nested(v)),
            _ => None,
        }
    }

    fn literal(&mut self, word: &str, value: Scalar<'a>) -> Option<Scalar<'a>> {
        let end = self.pos + word.len();
        (self.bytes().get(self.pos..end)? == word.as_bytes()).then(|| {
            self.pos = end;
            value
        })
    }

    /// A number. Integers of up to 18 digits (every real date and id) are read here;
    /// anything else is read by `serde_json`, so its floats and large integers are
    /// exactly as before.
    fn number(&mut self) -> Option<Scalar<'a>> {
        let bytes = self.bytes();
        let start = self.pos;
        let mut i = start;
        let negative = *bytes.get(i)? == b'-';
        if negative {
            i += 1;
        }
        let digits = i;
        match bytes.get(i)? {
            b'0' => i += 1,
            b'1'..=b'9' => {
                while bytes.get(i).is_some_and(u8::is_ascii_digit) {
                    i += 1;
                }
            }
            _ => return None,
        }
        let integer_end = i;
        if bytes.get(i) == Some(&b'.') {
            i += 1;
            let frac = i;
            while bytes.get(i).is_some_and(u8::is_ascii_digit) {
                i += 1;
            }
            if i == frac {
                return None;
            }
        }
        if let Some(b'e' | b'E') = bytes.get(i) {
            i += 1;
            if let Some(b'+' | b'-') = bytes.get(i) {
                i += 1;
            }
            let exp = i;
            while bytes.get(i).is_some_and(u8::is_ascii_digit) {
                i += 1;
            }
            if i == exp {
                return None;
            }
        }
        self.pos = i;
        let count = integer_end - digits;
        if i == integer_end && count <= 18 {
            let mut n: i64 = 0;
            for &d in &bytes[digits..integer_end] {
                n = n * 10 + i64::from(d - b'0');
            }
            // `-0` is a float to serde_json: left to it below.
            if !negative {
                return Some(Scalar::Int(n));
            }
            if n != 0 {
                return Some(Scalar::Int(-n));
            }
        }
        number_serde(self.text.get(start..i)?)
    }

    /// The end of the array or object starting here, and its nesting depth. Only the
    /// brackets and strings are followed: the value itself is checked by `serde_json`.
    fn skip_nested(&self) -> Option<(usize, usize)> {
        let bytes = self.bytes();
        let mut i = self.pos;
        let (mut level, mut deepest) = (0usize, 0usize);
        loop {
            match *bytes.get(i)? {
                b'[' | b'{' => {
                    level += 1;
                    deepest = deepest.max(level);
                }
                b']' | b'}' => {
                    level = level.checked_sub(1)?;
                    if level == 0 {
                        return Some((i + 1, deepest));
                    }
                }
                b'"' => loop {
                    i += 1;
                    match *bytes.get(i)? {
                        b'"' => break,
                        b'\\' => i += 1,
                        _ => {}
                    }
                },
                _ => {}
            }
            i += 1;
        }
    }

    /// An array or object at `depth`, parsed strictly by `serde_json` as `T`.
    fn nested<T: serde::Deserialize<'a>>(&mut self, depth: usize) -> Option<T> {
        let (end, deepest) = self.skip_nested()?;
        if depth + deepest > MAX_DEPTH {
            return None;
        }
        let value = serde_json::from_str(self.text.get(self.pos..end)?).ok()?;
        self.pos = end;
        Some(value)
    }

    /// `fva`: two small integers read here; any other array by `serde_json`.
    fn fva(&mut self) -> Option<FvaSlot<'a>> {
        match self.peek()? {
            b'[' => {
                let start = self.pos;
                if let Some(pair) = self.int_pair() {
                    return Some(pair);
                }
                self.pos = start;
                self.nested::<FvaSlot<'a>>(1)
            }
            b'{' => self
                .nested::<StrictValue>(1)
                .map(|StrictValue(v)| FvaSlot::Other(Scalar::Nested(v))),
            _ => self.value(1).map(FvaSlot::Other),
        }
    }

    fn int_pair(&mut self) -> Option<FvaSlot<'a>> {
        self.eat(b'[')?;
        self.ws();
        let Scalar::Int(first) = self.number()? else {
            return None;
        };
        self.ws();
        self.eat(b',')?;
        self.ws();
        let Scalar::Int(second) = self.number()? else {
            return None;
        };
        self.ws();
        self.eat(b']')?;
        Some(FvaSlot::Pair(first, second))
    }

    /// `o`: an object sorted into its slots here, built where it lives in `slot` (it
    /// is large: built apart, it was copied in); any other value by `serde_json`.
    fn org_into(&mut self, slot: &mut Option<OrgSlot<'a>>) -> Option<()> {
        if self.peek()? != b'{' {
            let start = self.pos;
            if self.peek()? == b'[' {
                let (end, deepest) = self.skip_nested()?;
                if 1 + deepest > MAX_DEPTH {
                    return None;
                }
                self.pos = end;
            } else {
                self.value(1)?;
            }
            *slot = Some(serde_json::from_str(self.text.get(start..self.pos)?).ok()?);
            return Some(());
        }
        self.pos += 1;
        let OrgSlot::Object(o) = slot.insert(OrgSlot::Object(RawOrg::default())) else {
            return None;
        };
        self.ws();
        if self.peek()? == b'}' {
            self.pos += 1;
            return Some(());
        }
        loop {
            let key = self.key()?;
            let slot = match key.as_ref() {
                "id" => &mut o.id,
                "slg" => &mut o.slg,
                "rol" => &mut o.rol,
                "per" => &mut o.per,
                "fpm" => &mut o.fpm,
                _ => {
                    extra(self, &mut o.others, key, 2)?;
                    if self.next_member()? {
                        continue;
                    }
                    return Some(());
                }
            };
            if slot.is_some() {
                return None;
            }
            self.value_into(slot, 2)?;
            if !self.next_member()? {
                return Some(());
            }
        }
    }
}

/// Holds the scanner to `serde_json` on one payload (the `claims` fuzz target and the
/// differential tests): an accepted payload gives the same slots and the same typed
/// claims, and below the depth left to `serde_json` both accept and refuse alike.
///
/// # Panics
///
/// When they disagree.
pub(crate) fn assert_agrees(payload: &str) {
    let mut scanned = RawClaims::default();
    let fast = scan(payload, &mut scanned);
    let mut reference = RawClaims::default();
    let slow = crate::token::parse_claims_serde(payload, &mut reference);
    match (fast, &slow) {
        (Some(()), Ok(())) => {
            assert_eq!(
                format!("{scanned:?}"),
                format!("{reference:?}"),
                "the scanner and serde_json read different slots"
            );
            let (a, b) = (scanned.take_parsed(), reference.take_parsed());
            match (a, b) {
                (Ok(a), Ok(b)) => {
                    assert_eq!(a.claims, b.claims, "different claims");
                    assert_eq!(a.has_sid, b.has_sid);
                    assert_eq!(a.email_present, b.email_present);
                }
                (Err(a), Err(b)) => assert_eq!(a, b, "different claim errors"),
                _ => panic!("the claims are typed differently"),
            }
        }
        (Some(()), Err(e)) => panic!("the scanner accepted what serde_json refuses: {e:?}"),
        (None, Ok(())) => {
            let brackets = payload.bytes().filter(|b| matches!(b, b'[' | b'{')).count();
            assert!(
                brackets >= MAX_DEPTH - 2,
                "the scanner gave up on a payload serde_json accepts"
            );
        }
        (None, Err(_)) => {}
    }
}

/// A number the scanner does not read itself (a fraction, an exponent, more than 18
/// digits, `-0`), read by `serde_json`. Apart, so the common integer stays small.
#[cold]
#[inline(never)]
fn number_serde<'a>(text: &'a str) -> Option<Scalar<'a>> {
    serde_json::from_str(text).ok()
}

/// Where the run of string bytes that need no look (no quote, no backslash, no control
/// character) starting at `i` ends: eight bytes at a time, and at the first special byte
/// of the eight exactly (in each mask the lowest flagged byte is a true one: a false
/// flag only follows a true one, through the borrow), so the byte-by-byte loops after
/// it start on that byte. With fewer than eight bytes left it stops, and they decide.
fn plain_run(bytes: &[u8], mut i: usize) -> usize {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGHS: u64 = 0x8080_8080_8080_8080;
    // The high bit of every byte of `x` that is zero (and maybe of some above it).
    let zero_bytes = |x: u64| x.wrapping_sub(ONES) & !x & HIGHS;
    while let Some(chunk) = bytes.get(i..i + 8) {
        let mut word = [0u8; 8];
        word.copy_from_slice(chunk);
        let w = u64::from_le_bytes(word);
        let quote = zero_bytes(w ^ (ONES * u64::from(b'"')));
        let backslash = zero_bytes(w ^ (ONES * u64::from(b'\\')));
        // Bytes below 0x20 (and none at or above 0x80, whose high bit `!w` clears).
        let control = w.wrapping_sub(ONES * 0x20) & !w & HIGHS;
        let special = quote | backslash | control;
        if special != 0 {
            // Little-endian: the lowest set bit is the first byte in the text.
            return i + (special.trailing_zeros() / 8) as usize;
        }
        i += 8;
    }
    i
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A small deterministic generator (xorshift), so the corpus is the same every run.
    struct Gen(u64);

    impl Gen {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }
        fn below(&mut self, n: usize) -> usize {
            usize::try_from(self.next() % n as u64).unwrap()
        }
        fn pick<'p>(&mut self, items: &[&'p str]) -> &'p str {
            items[self.below(items.len())]
        }
        fn chance(&mut self, percent: usize) -> bool {
            self.below(100) < percent
        }
    }

    const KEYS: &[&str] = &[
        "iss",
        "sub",
        "sid",
        "azp",
        "jti",
        "exp",
        "nbf",
        "iat",
        "aud",
        "v",
        "sts",
        "fva",
        "fea",
        "pla",
        "act",
        "o",
        "email",
        "email_verified",
        "org_id",
        "org_slug",
        "org_role",
        "org_permissions",
        "custom",
        "x",
        "id",
        "slg",
        "rol",
        "per",
        "fpm",
        "s\\u0075b",
        "\\u0065xp",
        "fv\\u0061",
        "\\u006f",
        "cust\\u006fm",
        "\\ud83d\\ude00",
        "\\n",
        "",
        "é",
        "\\\"q",
    ];

    const STRINGS: &[&str] = &[
        "user_2abc",
        "sess_1",
        "https://clerk.example.com",
        "",
        "a@b.co",
        "active",
        "pending",
        "true",
        "false",
        "u:chat,o:billing",
        "1,2",
        " 3 , x",
        "org:admin",
        "with \\\"quote\\\"",
        "back\\\\slash",
        "sl\\/ash",
        "\\b\\f\\n\\r\\t",
        "\\u00e9t\\u00E9",
        "\\ud83d\\ude00",
        "\\ud800",
        "\\udc00",
        "\\ud800\\u0041",
        "\\ud800x",
        "\\u12",
        "\\x",
        "raw é ✓",
        "tab\tin",
        "nul\\u0000",
        "ctl\u{1}",
        "del\u{7f}",
        "{{user.email}}",
    ];

    const NUMBERS: &[&str] = &[
        "0",
        "-0",
        "1",
        "-1",
        "5",
        "1700000000",
        "-1700000000",
        "123456789012345678",
        "-123456789012345678",
        "1234567890123456789",
        "9223372036854775807",
        "9223372036854775808",
        "-9223372036854775808",
        "-9223372036854775809",
        "18446744073709551615",
        "18446744073709551616",
        "99999999999999999999999",
        "1.5",
        "12.9",
        "-0.0",
        "0.0",
        "1e3",
        "1E+3",
        "1e-3",
        "-2.5e2",
        "1e400",
        "-1e400",
        "4294967295",
        "4294967296",
        "01",
        "1.",
        ".5",
        "-",
        "2e",
        "2e+",
        "+1",
        "0x10",
        "1.7e9",
        "1700000000.999",
    ];

    const SPACE: &[&str] = &["", "", "", " ", "\n", "\t ", "\r\n"];

    fn value(g: &mut Gen, depth: usize, out: &mut String) {
        let ws = |g: &mut Gen, out: &mut String| out.push_str(g.pick(SPACE));
        match g.below(if depth > 4 { 4 } else { 7 }) {
            0 => {
                out.push('"');
                out.push_str(g.pick(STRINGS));
                out.push('"');
            }
            1 => out.push_str(g.pick(NUMBERS)),
            2 => out.push_str(g.pick(&["true", "false", "null", "tru", "nul", "True"])),
            3 if depth > 4 => out.push_str(g.pick(&["[]", "{}", "[1,2]", "[0,-1]"])),
            3 | 4 => {
                out.push('[');
                let n = g.below(4);
                for i in 0..n {
                    if i > 0 {
                        out.push(',');
                    }
                    ws(g, out);
                    value(g, depth + 1, out);
                    ws(g, out);
                }
                if g.chance(3) {
                    out.push(',');
                }
                out.push(']');
            }
            _ => object(g, depth + 1, out),
        }
    }

    fn object(g: &mut Gen, depth: usize, out: &mut String) {
        out.push('{');
        let n = g.below(if depth == 1 { 10 } else { 5 });
        let mut keys = Vec::new();
        for i in 0..n {
            if i > 0 {
                out.push(',');
            }
            out.push_str(g.pick(SPACE));
            let key = if !keys.is_empty() && g.chance(5) {
                keys[g.below(keys.len())]
            } else {
                g.pick(KEYS)
            };
            keys.push(key);
            out.push('"');
            out.push_str(key);
            out.push('"');
            out.push_str(g.pick(SPACE));
            if !g.chance(1) {
                out.push(':');
            }
            out.push_str(g.pick(SPACE));
            match key {
                "fva" if g.chance(50) => out.push_str(g.pick(&[
                    "[5,-1]",
                    "[ -1 , 7 ]",
                    "[1,2,3]",
                    "[1]",
                    "[]",
                    "[1.5,2]",
                    "[18446744073709551615,1]",
                    "[1,\"2\"]",
                    "[{\"k\":1,\"k\":2},2]",
                    "[-0,1]",
                    "[1,2,]",
                ])),
                "o" if g.chance(50) => object(g, depth + 1, out),
                "aud" | "org_permissions" if g.chance(50) => {
                    out.push_str(g.pick(&["[\"a\",\"b\"]", "[\"a,b\"]", "[1]", "[]"]));
                }
                _ => value(g, depth, out),
            }
            out.push_str(g.pick(SPACE));
        }
        if g.chance(2) {
            out.push(',');
        }
        out.push('}');
    }

    fn payload(g: &mut Gen) -> String {
        let mut out = String::new();
        out.push_str(g.pick(SPACE));
        if g.chance(3) {
            value(g, 1, &mut out);
        } else {
            object(g, 1, &mut out);
        }
        out.push_str(g.pick(SPACE));
        if g.chance(3) {
            out.push_str(g.pick(&["x", "}", ",", "{}", "\"\"", "0"]));
        }
        if g.chance(10) && !out.is_empty() {
            // A cut or a stray structural byte somewhere.
            let mut bytes = out.into_bytes();
            let at = g.below(bytes.len());
            if g.chance(50) {
                bytes.truncate(at);
            } else {
                bytes[at] = b"{}[],:\"\\ 0"[g.below(10)];
            }
            out = String::from_utf8_lossy(&bytes).into_owned();
        }
        out
    }

    #[test]
    fn the_scanner_agrees_with_serde_json_on_a_generated_corpus() {
        let mut g = Gen(0x9e37_79b9_7f4a_7c15);
        let (mut accepted, mut refused) = (0, 0);
        for _ in 0..40_000 {
            let text = payload(&mut g);
            assert_agrees(&text);
            let mut claims = RawClaims::default();
            if scan(&text, &mut claims).is_some() {
                accepted += 1;
            } else {
                refused += 1;
            }
        }
        // The corpus reaches both sides.
        assert!(
            accepted > 5_000 && refused > 5_000,
            "{accepted} / {refused}"
        );
    }

    #[test]
    fn nasty_payloads_agree() {
        let deep = |n: usize, open: &str, close: &str| {
            format!(
                r#"{{"sub":"u","x":{}1{}}}"#,
                open.repeat(n),
                close.repeat(n)
            )
        };
        let mut cases = vec![
            r#"{"sub":"user_1","exp":1,"iat":12.9,"nbf":1e3}"#.to_owned(),
            r#"{"sub":"a","s\u0075b":"b"}"#.to_owned(),
            r#"{"o":{"id":"x","\u0069d":"y"}}"#.to_owned(),
            r#"{"x":{"k":1,"k":2}}"#.to_owned(),
            r#"{"exp":99999999999999999999,"iat":-0,"nbf":-9223372036854775809}"#.to_owned(),
            r#"{"exp":1e400}"#.to_owned(),
            r#"{"exp":1}garbage"#.to_owned(),
            r#"{"exp":1} "#.to_owned(),
            r#"{"exp":1}{}"#.to_owned(),
            r#"{"exp":1,}"#.to_owned(),
            r#"{"o":5,"fva":{"a":1}}"#.to_owned(),
            r#"{"o":[1,{"a":1}],"v":2}"#.to_owned(),
            r#"{"o":"org","v":1,"org_id":"org_1"}"#.to_owned(),
            r#"{"o":{"id":"o","per":"a,b","x":{"k":[1,{"z":null}]},"x":1}}"#.to_owned(),
            "{\"a\":\"\\ud83d\\ude00\",\"\\ud83d\\ude00\":1}".to_owned(),
            "{\"a\":\"\\ud83d\"}".to_owned(),
            "{\"a\":\"\\ude00\"}".to_owned(),
            "{\"a\":\"\u{1}\"}".to_owned(),
            "{\"a\":\"[\\\"]\"}".to_owned(),
            r#"{"x":["]",{"}":"{"}]}"#.to_owned(),
            // The fast paths of claim slots: integers at and past 18 digits, signs,
            // leading zeros, fractions and exponents; strings with escapes, control
            // characters or no end; the same in `o`.
            r#"{"exp":123456789012345678,"iat":-123456789012345678,"nbf":-7}"#.to_owned(),
            r#"{"exp":1234567890123456789,"iat":-1234567890123456789}"#.to_owned(),
            r#"{"exp":01}"#.to_owned(),
            r#"{"exp":-01}"#.to_owned(),
            r#"{"exp":0,"iat":-0,"nbf":10}"#.to_owned(),
            r#"{"exp":1.0,"iat":2E3,"nbf":3e-1,"v":4.}"#.to_owned(),
            r#"{"exp":-,"sub":"u"}"#.to_owned(),
            r#"{"exp":--1}"#.to_owned(),
            r#"{"exp":12x}"#.to_owned(),
            r#"{"exp":12"#.to_owned(),
            r#"{"sub":"a\"b","sid":"sess_\u0031","iss":"https:\/\/x"}"#.to_owned(),
            "{\"sub\":\"ab\tcd\"}".to_owned(),
            "{\"sub\":\"abcdefghij\u{7f}\u{e9}\"}".to_owned(),
            r#"{"sub":"abcdefghijklmnop"#.to_owned(),
            r#"{"sub":"abc"#.to_owned(),
            r#"{"o":{"id":"a\"b","rol":-5,"per":12345678901234567890,"fpm":01}}"#.to_owned(),
            String::new(),
            "[]".to_owned(),
            "null".to_owned(),
            "{".to_owned(),
            "{\"".to_owned(),
        ];
        for n in [90, 97, 98, 99, 100, 126, 127, 128, 129] {
            cases.push(deep(n, "[", "]"));
            cases.push(deep(n, r#"{"k":"#, "}"));
        }
        for case in &cases {
            assert_agrees(case);
        }
    }

    #[test]
    fn clerk_payloads_are_read_by_the_scanner() {
        for payload in [
            r#"{"azp":"https://app.example.com","email":"user1@example.com","exp":1700003600,"fea":"u:chat,o:dashboard","fva":[0,-1],"iat":1700000000,"iss":"https://clerk.example.com","jti":"0123","nbf":1699999990,"o":{"fpm":"3,2","id":"org_1","per":"read,manage","rol":"admin","slg":"acme"},"pla":"o:pro","sid":"sess_1","sts":"active","sub":"user_1","v":2}"#,
            r#"{"sub":"user_1","exp":1,"aud":["a","b"],"act":{"sub":"user_2"},"custom":{"plan":[1,2]}}"#,
            r#"{"sub":"user_1","exp":1.5,"email":"caf\u00e9@x.io","url":"https:\/\/x"}"#,
        ] {
            let mut claims = RawClaims::default();
            assert!(scan(payload, &mut claims).is_some(), "{payload}");
            assert_agrees(payload);
        }
    }

    #[test]
    fn a_plain_run_ends_exactly_at_the_first_special_byte() {
        for (text, from, end) in [
            // Found within a word of eight: the exact byte, not the word's start.
            ("abc\"defghijklmnop", 0, 3),
            ("abcdefghij\\klmnopqrstu", 0, 10),
            ("abcdefghijklm\u{1}nopqrstu", 2, 13),
            // Two in one word, and a byte above 0x7f (not special) before them.
            ("ab\u{e9}cd\\\"fghijkl", 0, 6),
            // With fewer than eight bytes left, the run stops where they start.
            ("abcdefghijk", 0, 8),
            ("abc\"", 0, 0),
        ] {
            assert_eq!(
                plain_run(text.as_bytes(), from),
                end,
                "{text:?} from {from}"
            );
        }
    }
}
