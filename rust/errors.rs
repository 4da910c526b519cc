//! The one error shape the core reports for client input: a field error located by JSON pointer.

use std::fmt::Write as _;

/// One problem with one place in a request body (RFC 6901 pointer, stable code, human message).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    pub pointer: String,
    pub code: &'static str,
    pub message: String,
}

impl FieldError {
    pub fn new(pointer: impl Into<String>, code: &'static str, message: impl Into<String>) -> Self {
        FieldError { pointer: pointer.into(), code, message: message.into() }
    }
}

/// Appends one reference token to a JSON pointer, escaping `~` and `/` as RFC 6901 requires.
pub fn push_token(pointer: &mut String, token: &str) {
    pointer.push('/');
    for ch in token.chars() {
        match ch {
            '~' => pointer.push_str("~0"),
            '/' => pointer.push_str("~1"),
            c => pointer.push(c),
        }
    }
}

/// `/items/3/sku` style pointer for a field of an array element.
pub fn item_pointer(index: usize, field: &str) -> String {
    let mut p = String::with_capacity(16 + field.len());
    let _ = write!(p, "/items/{index}");
    push_token(&mut p, field);
    p
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pointer_tokens_are_escaped() {
        let mut p = String::new();
        push_token(&mut p, "a/b~c");
        assert_eq!(p, "/a~1b~0c");
        assert_eq!(item_pointer(2, "sku"), "/items/2/sku");
    }
}
