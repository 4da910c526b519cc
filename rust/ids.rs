//! Order identifiers: UUIDv7, time-ordered so that newest-first listing is an index scan.

/// A new UUIDv7 in its canonical lower-case hyphenated form. Within one process the ids are
/// strictly increasing (the uuid crate keeps a counter inside each millisecond).
pub fn new_order_id() -> String {
    uuid::Uuid::now_v7().hyphenated().to_string()
}

/// Whether `text` is a canonical (lower-case, hyphenated) UUID: anything else is no order's id.
pub fn is_canonical_uuid(text: &str) -> bool {
    let b = text.as_bytes();
    b.len() == 36
        && b.iter().enumerate().all(|(i, c)| match i {
            8 | 13 | 18 | 23 => *c == b'-',
            _ => c.is_ascii_digit() || (b'a'..=b'f').contains(c),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_v7_and_increase() {
        let ids: Vec<String> = (0..1000).map(|_| new_order_id()).collect();
        assert!(ids.windows(2).all(|w| w[0] < w[1]));
        assert!(ids.iter().all(|id| is_canonical_uuid(id) && id.as_bytes()[14] == b'7'));
    }

    #[test]
    fn canonical_form_only() {
        assert!(is_canonical_uuid("0190b6a4-7c2e-7a33-8d4e-0123456789ab"));
        assert!(!is_canonical_uuid("0190B6A4-7C2E-7A33-8D4E-0123456789AB"));
        assert!(!is_canonical_uuid("0190b6a47c2e7a338d4e0123456789ab"));
        assert!(!is_canonical_uuid("not-a-uuid"));
        assert!(!is_canonical_uuid("0190b6a4-7c2e-7a33-8d4e-0123456789ag"));
    }
}
