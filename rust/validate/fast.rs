//! The fast path for the request every client sends: a well-formed create-order body.
//!
//! A scanner that knows the schema reads the bytes once, with no visitor between it and them. It
//! takes only what it is sure of — the four known fields at most once each, strings without
//! escapes or control characters, quantities as plain digits, items with exactly `sku` and `quantity` — and
//! gives up (`None`) at the first byte that is anything else. Then the streaming validator reads the
//! body from the start and reports every problem, so errors come from one place and the two paths
//! cannot disagree on them: on every body the scanner accepts, both build the same draft
//! (`tests::fast_path_agrees_with_the_validator` checks it over generated bodies).

use super::{is_valid_coupon, is_valid_sku, Fields, MAX_ITEMS, MAX_QUANTITY};
use crate::money;

struct Scanner<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Scanner<'a> {
    #[inline]
    fn skip_ws(&mut self) {
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.bytes.get(self.at) {
            self.at += 1;
        }
    }

    /// The next byte after any whitespace, consumed.
    #[inline]
    fn next(&mut self) -> Option<u8> {
        self.skip_ws();
        let b = *self.bytes.get(self.at)?;
        self.at += 1;
        Some(b)
    }

    #[inline]
    fn expect(&mut self, want: u8) -> Option<()> {
        (self.next()? == want).then_some(())
    }

    /// The rest of a string whose opening quote was consumed, when it holds no escape and no
    /// control character (UTF-8 is checked as a whole, quickly, once its end is known).
    #[inline]
    fn string_body(&mut self) -> Option<&'a str> {
        let rest = &self.bytes[self.at..];
        let len = rest.iter().position(|&b| b == b'"' || b == b'\\' || b < 0x20)?;
        if rest[len] != b'"' {
            return None;
        }
        self.at += len + 1;
        std::str::from_utf8(&rest[..len]).ok()
    }

    fn string(&mut self) -> Option<&'a str> {
        self.expect(b'"')?;
        self.string_body()
    }

    /// `null` or a string.
    fn optional_string(&mut self) -> Option<Option<&'a str>> {
        match self.next()? {
            b'"' => self.string_body().map(Some),
            b'n' if self.bytes[self.at..].starts_with(b"ull") => {
                self.at += 3;
                Some(None)
            }
            _ => None,
        }
    }

    /// A quantity: plain digits, no leading zero, within 1..=MAX_QUANTITY.
    fn quantity(&mut self) -> Option<u32> {
        self.skip_ws();
        let rest = &self.bytes[self.at..];
        let len = rest.iter().position(|b| !b.is_ascii_digit()).unwrap_or(rest.len());
        if len == 0 || len > 5 || rest[0] == b'0' {
            return None;
        }
        if matches!(rest.get(len), Some(b'.' | b'e' | b'E')) {
            return None;
        }
        let value = rest[..len].iter().fold(0u32, |n, &d| n * 10 + u32::from(d - b'0'));
        self.at += len;
        (u64::from(value) <= MAX_QUANTITY).then_some(value)
    }

    fn item(&mut self, items: &[(String, u32)]) -> Option<(String, u32)> {
        self.expect(b'{')?;
        let (mut sku, mut quantity) = (None, None);
        loop {
            let key = self.string()?;
            self.expect(b':')?;
            match key {
                "sku" if sku.is_none() => {
                    let s = self.string()?;
                    if !is_valid_sku(s) || items.iter().any(|(seen, _)| seen == s) {
                        return None;
                    }
                    sku = Some(s);
                }
                "quantity" if quantity.is_none() => quantity = Some(self.quantity()?),
                _ => return None,
            }
            match self.next()? {
                b',' => {}
                b'}' => break,
                _ => return None,
            }
        }
        Some((sku?.to_owned(), quantity?))
    }

    fn items(&mut self) -> Option<Vec<(String, u32)>> {
        self.expect(b'[')?;
        let mut items = Vec::with_capacity(8);
        loop {
            if items.len() == MAX_ITEMS {
                return None;
            }
            let item = self.item(&items)?;
            items.push(item);
            match self.next()? {
                b',' => {}
                b']' => return Some(items),
                _ => return None,
            }
        }
    }
}

/// The body's fields when it is a well-formed order the scanner is sure of; `None` otherwise.
pub(super) fn scan(body: &[u8]) -> Option<Fields> {
    let mut s = Scanner { bytes: body, at: 0 };
    let mut f = Fields::default();
    let (mut seen_total, mut seen_coupon) = (false, false);
    s.expect(b'{')?;
    loop {
        let key = s.string()?;
        s.expect(b':')?;
        match key {
            "currency" if !f.currency_seen => {
                f.currency_seen = true;
                let code = s.string()?;
                f.currency = Some((code.to_owned(), money::exponent(code)?));
            }
            "items" if !f.items_seen => {
                f.items_seen = true;
                f.items = Some(s.items()?);
            }
            "expected_total" if !seen_total => {
                seen_total = true;
                f.expected_total = s.optional_string()?.map(str::to_owned);
            }
            "coupon" if !seen_coupon => {
                seen_coupon = true;
                f.coupon = match s.optional_string()? {
                    Some(code) if is_valid_coupon(code) => Some(code.to_ascii_uppercase()),
                    Some(_) => return None,
                    None => None,
                };
            }
            _ => return None,
        }
        match s.next()? {
            b',' => {}
            b'}' => break,
            _ => return None,
        }
    }
    s.skip_ws();
    (s.at == body.len()).then_some(f)
}
