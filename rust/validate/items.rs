//! The `items` array and each item in it, validated as they stream by.

use std::fmt;

use serde::de::{DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};

use super::scalar::{Key, Scalar, Skip};
use super::{field_pointer, is_valid_sku, Errors, MAX_ITEMS, MAX_QUANTITY, MAX_SKU_LEN};
use crate::errors::item_pointer;

pub(crate) struct ItemsSeed<'e> {
    pub(crate) errors: &'e mut Errors,
}

impl<'de> DeserializeSeed<'de> for ItemsSeed<'_> {
    type Value = Option<Vec<(String, u32)>>;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for ItemsSeed<'_> {
    type Value = Option<Vec<(String, u32)>>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an array of items")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let errors = self.errors;
        let before = errors.0.len();
        let mut items: Vec<(String, u32)> = Vec::with_capacity(seq.size_hint().unwrap_or(4).min(MAX_ITEMS));
        let mut index = 0;
        loop {
            if index == MAX_ITEMS {
                if seq.next_element::<Skip>()?.is_some() {
                    while seq.next_element::<Skip>()?.is_some() {}
                    errors.add("/items", "too_long", format!("at most {MAX_ITEMS} items per order"));
                    return Ok(None);
                }
                break;
            }
            let seed = ItemSeed { errors: &mut *errors, index, items: &items };
            match seq.next_element_seed(seed)? {
                None => break,
                Some(Some(item)) => items.push(item),
                Some(None) => {}
            }
            index += 1;
        }
        if index == 0 {
            errors.add("/items", "too_short", "an order needs at least one item");
            return Ok(None);
        }
        Ok((errors.0.len() == before).then_some(items))
    }

    wrong_scalars!(not_an_array);
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        while map.next_entry::<Skip, Skip>()?.is_some() {}
        self.not_an_array()
    }
}

impl ItemsSeed<'_> {
    fn not_an_array<E>(self) -> Result<Option<Vec<(String, u32)>>, E> {
        self.errors.add("/items", "type", "must be an array of {\"sku\", \"quantity\"} objects");
        Ok(None)
    }
}

struct ItemSeed<'e, 'i> {
    errors: &'e mut Errors,
    index: usize,
    items: &'i [(String, u32)],
}

impl<'de> DeserializeSeed<'de> for ItemSeed<'_, '_> {
    type Value = Option<(String, u32)>;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for ItemSeed<'_, '_> {
    type Value = Option<(String, u32)>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an item object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let (errors, i) = (self.errors, self.index);
        let (mut sku, mut quantity) = (None, None);
        let (mut sku_seen, mut quantity_seen, mut ok) = (false, false, true);
        while let Some(Key(key)) = map.next_key::<Key<'de>>()? {
            let seen = match key.as_ref() {
                "sku" => std::mem::replace(&mut sku_seen, true),
                "quantity" => std::mem::replace(&mut quantity_seen, true),
                _ => {
                    map.next_value::<Skip>()?;
                    errors.add(
                        field_pointer(&format!("/items/{i}"), &key),
                        "unknown_field",
                        "this field is not part of an order item",
                    );
                    ok = false;
                    continue;
                }
            };
            if seen {
                map.next_value::<Skip>()?;
                errors.add(item_pointer(i, &key), "duplicate_key", "this field appears more than once");
                ok = false;
                continue;
            }
            if key == "sku" {
                sku = item_sku(map.next_value()?, i, self.items, errors);
                ok &= sku.is_some();
            } else {
                quantity = item_quantity(map.next_value()?, i, errors);
                ok &= quantity.is_some();
            }
        }
        if !sku_seen {
            errors.add(item_pointer(i, "sku"), "required", "sku is required");
        }
        if !quantity_seen {
            errors.add(item_pointer(i, "quantity"), "required", "quantity is required");
        }
        match (sku, quantity) {
            (Some(s), Some(q)) if ok => Ok(Some((s, q))),
            _ => Ok(None),
        }
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        while seq.next_element::<Skip>()?.is_some() {}
        self.not_an_object()
    }
    wrong_scalars!(not_an_object);
}

impl ItemSeed<'_, '_> {
    fn not_an_object<E>(self) -> Result<Option<(String, u32)>, E> {
        self.errors.add(format!("/items/{}", self.index), "type", "must be an object");
        Ok(None)
    }
}

fn item_sku(value: Scalar<'_>, i: usize, items: &[(String, u32)], errors: &mut Errors) -> Option<String> {
    match value {
        Scalar::Str(s) if is_valid_sku(&s) => {
            if items.iter().any(|(seen, _)| seen == s.as_ref()) {
                errors.add(
                    item_pointer(i, "sku"),
                    "duplicate",
                    "each SKU may appear once per order; add up the quantities",
                );
                return None;
            }
            Some(s.into_owned())
        }
        Scalar::Str(_) => {
            errors.add(
                item_pointer(i, "sku"),
                "invalid_sku",
                format!("1 to {MAX_SKU_LEN} characters of A-Z, a-z, 0-9, '.', '_' or '-'"),
            );
            None
        }
        _ => {
            errors.add(item_pointer(i, "sku"), "type", "must be a string");
            None
        }
    }
}

fn item_quantity(value: Scalar<'_>, i: usize, errors: &mut Errors) -> Option<u32> {
    match value {
        Scalar::Unsigned(q) if (1..=MAX_QUANTITY).contains(&q) => Some(q as u32),
        Scalar::Unsigned(_) | Scalar::Signed => {
            errors.add(
                item_pointer(i, "quantity"),
                "out_of_range",
                format!("must be between 1 and {MAX_QUANTITY}"),
            );
            None
        }
        _ => {
            errors.add(item_pointer(i, "quantity"), "type", "must be an integer");
            None
        }
    }
}
