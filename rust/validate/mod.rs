//! Create-order request validation, straight from the body's bytes, in one streaming pass.
//!
//! A serde visitor walks the JSON once: no value tree is built, known fields are checked as they
//! stream by, unknown ones are skipped (and reported). Every problem in the body is reported at
//! once, each located by a JSON pointer, so a client fixes its request in one round trip. Limits
//! are explicit constants, documented in the README.

use std::fmt;

/// The `visit_*` methods of a visitor to which every scalar is the wrong type: each reports it
/// through `$wrong` and yields no value. (Defined before the child modules, which use it too.)
macro_rules! wrong_scalars {
    ($wrong:ident) => {
        fn visit_unit<E>(self) -> Result<Self::Value, E> {
            self.$wrong()
        }
        fn visit_bool<E>(self, _: bool) -> Result<Self::Value, E> {
            self.$wrong()
        }
        fn visit_u64<E>(self, _: u64) -> Result<Self::Value, E> {
            self.$wrong()
        }
        fn visit_i64<E>(self, _: i64) -> Result<Self::Value, E> {
            self.$wrong()
        }
        fn visit_f64<E>(self, _: f64) -> Result<Self::Value, E> {
            self.$wrong()
        }
        fn visit_str<E>(self, _: &str) -> Result<Self::Value, E> {
            self.$wrong()
        }
    };
}

mod fast;
mod items;
mod scalar;

use serde::de::{DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};

use crate::errors::{push_token, FieldError};
use crate::money;
use items::ItemsSeed;
use scalar::{Key, Scalar, Skip};

/// Most lines one order may carry.
pub const MAX_ITEMS: usize = 100;
/// Largest quantity of one line.
pub const MAX_QUANTITY: u64 = 10_000;
/// Longest SKU, in bytes (SKUs are ASCII).
pub const MAX_SKU_LEN: usize = 64;
/// Longest coupon code.
pub const MAX_COUPON_LEN: usize = 64;
/// At most this many field errors are reported.
pub const MAX_ERRORS: usize = 50;
/// JSON nesting deeper than this is malformed (serde_json's recursion limit).
pub const MAX_DEPTH: usize = 128;

/// A syntactically valid create-order request: nothing priced, nothing looked up yet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrderDraft {
    pub currency: String,
    pub exponent: u8,
    /// (sku, quantity) in request order; SKUs are unique.
    pub items: Vec<(String, u32)>,
    /// The total the client expects to pay, in minor units of `currency`.
    pub expected_total: Option<i64>,
    /// A coupon code, upper-cased (codes are case-insensitive).
    pub coupon: Option<String>,
}

/// Why a body is not a create-order request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ParseError {
    /// Not JSON at all (syntax, encoding, nesting, numbers out of range): the request is malformed.
    Malformed(String),
    /// JSON, but fields are wrong: every one of them.
    Invalid(Vec<FieldError>),
}

/// A SKU is 1..=64 characters of `A-Z a-z 0-9 . _ -`.
pub fn is_valid_sku(sku: &str) -> bool {
    !sku.is_empty()
        && sku.len() <= MAX_SKU_LEN
        && sku.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

/// A coupon code is 1..=64 characters of `A-Z a-z 0-9 _ -`.
pub fn is_valid_coupon(code: &str) -> bool {
    !code.is_empty()
        && code.len() <= MAX_COUPON_LEN
        && code.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-'))
}

pub fn parse_order(body: &[u8]) -> Result<OrderDraft, ParseError> {
    match fast::scan(body) {
        Some(fields) => finish(fields, Errors(Vec::new())),
        None => parse_streaming(body),
    }
}

/// The streaming validator: any body, every problem reported.
fn parse_streaming(body: &[u8]) -> Result<OrderDraft, ParseError> {
    let mut errors = Errors(Vec::new());
    let mut de = serde_json::Deserializer::from_slice(body);
    let fields = OrderSeed { errors: &mut errors }.deserialize(&mut de).map_err(|e| malformed(&e))?;
    de.end().map_err(|e| malformed(&e))?;
    let Some(fields) = fields else {
        return Err(ParseError::Invalid(errors.0));
    };
    finish(fields, errors)
}

#[cold]
#[inline(never)]
fn malformed(e: &serde_json::Error) -> ParseError {
    ParseError::Malformed(format!("the body is not valid JSON: {e}"))
}

pub(crate) struct Errors(Vec<FieldError>);

impl Errors {
    pub(crate) fn add(&mut self, pointer: impl Into<String>, code: &'static str, message: impl Into<String>) {
        if self.0.len() < MAX_ERRORS {
            self.0.push(FieldError::new(pointer, code, message));
        }
    }
}

/// The top-level fields as they streamed by; checked against each other in `finish`.
#[derive(Default)]
struct Fields {
    currency: Option<(String, u8)>,
    currency_seen: bool,
    items: Option<Vec<(String, u32)>>,
    items_seen: bool,
    expected_total: Option<String>,
    coupon: Option<String>,
}

fn finish(f: Fields, mut errors: Errors) -> Result<OrderDraft, ParseError> {
    if !f.currency_seen {
        errors.add("/currency", "required", "currency is required");
    }
    if !f.items_seen {
        errors.add("/items", "required", "items is required");
    }
    let mut expected_total = None;
    if let (Some(text), Some((_, exp))) = (&f.expected_total, &f.currency) {
        match money::parse_amount(text, *exp) {
            Ok(minor) => expected_total = Some(minor),
            Err(e) => errors.add("/expected_total", "invalid_amount", e.to_string()),
        }
    }
    match (f.currency, f.items) {
        (Some((currency, exponent)), Some(items)) if errors.0.is_empty() => {
            Ok(OrderDraft { currency, exponent, items, expected_total, coupon: f.coupon })
        }
        _ => Err(ParseError::Invalid(errors.0)),
    }
}

pub(crate) fn field_pointer(prefix: &str, key: &str) -> String {
    let mut p = String::from(prefix);
    push_token(&mut p, key);
    p
}

struct OrderSeed<'e> {
    errors: &'e mut Errors,
}

impl<'de> DeserializeSeed<'de> for OrderSeed<'_> {
    type Value = Option<Fields>;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        match d.deserialize_any(OrderVisitor { errors: self.errors })? {
            Some(fields) => Ok(Some(fields)),
            None => Ok(None),
        }
    }
}

struct OrderVisitor<'e> {
    errors: &'e mut Errors,
}

impl<'de> Visitor<'de> for OrderVisitor<'_> {
    type Value = Option<Fields>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let errors = self.errors;
        let mut f = Fields::default();
        let (mut seen_total, mut seen_coupon) = (false, false);
        while let Some(Key(key)) = map.next_key::<Key<'de>>()? {
            let seen = match key.as_ref() {
                "currency" => std::mem::replace(&mut f.currency_seen, true),
                "items" => std::mem::replace(&mut f.items_seen, true),
                "expected_total" => std::mem::replace(&mut seen_total, true),
                "coupon" => std::mem::replace(&mut seen_coupon, true),
                _ => {
                    map.next_value::<Skip>()?;
                    errors.add(
                        field_pointer("", &key),
                        "unknown_field",
                        "this field is not part of an order request",
                    );
                    continue;
                }
            };
            if seen {
                map.next_value::<Skip>()?;
                errors.add(field_pointer("", &key), "duplicate_key", "this field appears more than once");
                continue;
            }
            match key.as_ref() {
                "items" => f.items = map.next_value_seed(ItemsSeed { errors: &mut *errors })?,
                "currency" => f.currency = currency(map.next_value()?, errors),
                "expected_total" => match map.next_value()? {
                    Scalar::Null => {}
                    Scalar::Str(s) => f.expected_total = Some(s.into_owned()),
                    _ => errors.add("/expected_total", "type", "must be a decimal string such as \"199.00\""),
                },
                _ => f.coupon = coupon(map.next_value()?, errors),
            }
        }
        Ok(Some(f))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        while seq.next_element::<Skip>()?.is_some() {}
        self.not_an_object()
    }
    wrong_scalars!(not_an_object);
}

impl OrderVisitor<'_> {
    fn not_an_object<E>(self) -> Result<Option<Fields>, E> {
        self.errors.add("", "type", "the body must be a JSON object");
        Ok(None)
    }
}

fn currency(value: Scalar<'_>, errors: &mut Errors) -> Option<(String, u8)> {
    match value {
        Scalar::Str(code) => match money::exponent(&code) {
            Some(exp) => return Some((code.into_owned(), exp)),
            None => errors.add(
                "/currency",
                "invalid_currency",
                "must be an active ISO 4217 code in upper case, such as \"USD\"",
            ),
        },
        _ => errors.add("/currency", "type", "must be a string"),
    }
    None
}

fn coupon(value: Scalar<'_>, errors: &mut Errors) -> Option<String> {
    match value {
        Scalar::Null => None,
        Scalar::Str(code) if is_valid_coupon(&code) => Some(code.to_ascii_uppercase()),
        Scalar::Str(_) => {
            errors.add(
                "/coupon",
                "invalid_coupon",
                format!("1 to {MAX_COUPON_LEN} characters of A-Z, a-z, 0-9, '_' or '-'"),
            );
            None
        }
        _ => {
            errors.add("/coupon", "type", "must be a string");
            None
        }
    }
}

#[cfg(test)]
mod tests;
