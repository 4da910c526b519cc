use super::*;

fn invalid(body: &str) -> Vec<FieldError> {
    match parse_order(body.as_bytes()) {
        Err(ParseError::Invalid(errors)) => errors,
        other => panic!("expected field errors for {body}, got {other:?}"),
    }
}

fn pointers(errors: &[FieldError]) -> Vec<(&str, &str)> {
    errors.iter().map(|e| (e.pointer.as_str(), e.code)).collect()
}

#[test]
fn accepts_a_valid_order() {
    let draft = parse_order(
        br#"{"currency":"USD","items":[{"sku":"SKU-1","quantity":2},{"quantity":1,"sku":"b.2"}],"expected_total":"199.5","coupon":"spring-10"}"#,
    )
    .unwrap();
    assert_eq!(draft.currency, "USD");
    assert_eq!(draft.exponent, 2);
    assert_eq!(draft.items, vec![("SKU-1".into(), 2), ("b.2".into(), 1)]);
    assert_eq!(draft.expected_total, Some(19950));
    assert_eq!(draft.coupon.as_deref(), Some("SPRING-10"));
}

#[test]
fn field_order_does_not_matter() {
    let a = parse_order(br#"{"expected_total":"1.00","items":[{"sku":"A","quantity":1}],"currency":"USD"}"#);
    let b = parse_order(br#"{"currency":"USD","items":[{"sku":"A","quantity":1}],"expected_total":"1.00"}"#);
    assert_eq!(a, b);
    assert_eq!(a.unwrap().expected_total, Some(100));
}

#[test]
fn optional_fields_may_be_null_or_absent() {
    let draft = parse_order(
        br#"{"currency":"JPY","items":[{"sku":"A","quantity":1}],"expected_total":null,"coupon":null}"#,
    )
    .unwrap();
    assert_eq!((draft.expected_total, draft.coupon, draft.exponent), (None, None, 0));
}

#[test]
fn escaped_strings_are_decoded() {
    let draft = parse_order(br#"{"currency":"\u0055SD","items":[{"sku":"A\u002d1","quantity":1}]}"#).unwrap();
    assert_eq!((draft.currency.as_str(), draft.items[0].0.as_str()), ("USD", "A-1"));
}

#[test]
fn reports_every_field_error_at_once() {
    let errors = invalid(
        r#"{"currency":"usd","items":[{"sku":"","quantity":0},{"quantity":"2"},{"sku":"A","quantity":1.5}],"status":"PAID"}"#,
    );
    assert_eq!(
        pointers(&errors),
        vec![
            ("/currency", "invalid_currency"),
            ("/items/0/sku", "invalid_sku"),
            ("/items/0/quantity", "out_of_range"),
            ("/items/1/quantity", "type"),
            ("/items/1/sku", "required"),
            ("/items/2/quantity", "type"),
            ("/status", "unknown_field"),
        ]
    );
}

#[test]
fn duplicate_keys_are_field_errors() {
    let errors =
        invalid(r#"{"currency":"USD","currency":"EUR","items":[{"sku":"A","sku":"B","quantity":1}]}"#);
    assert_eq!(pointers(&errors), vec![("/currency", "duplicate_key"), ("/items/0/sku", "duplicate_key")]);
}

#[test]
fn rejects_duplicate_skus_and_bad_quantities() {
    let errors = invalid(
        r#"{"currency":"USD","items":[{"sku":"A","quantity":1},{"sku":"A","quantity":-3},{"sku":"B","quantity":10001},{"sku":"C","quantity":18446744073709551615}]}"#,
    );
    assert_eq!(
        pointers(&errors),
        vec![
            ("/items/1/sku", "duplicate"),
            ("/items/1/quantity", "out_of_range"),
            ("/items/2/quantity", "out_of_range"),
            ("/items/3/quantity", "out_of_range"),
        ]
    );
}

#[test]
fn numbers_as_strings_and_strings_as_numbers_are_type_errors() {
    let errors =
        invalid(r#"{"currency":840,"items":[{"sku":7,"quantity":"1"}],"expected_total":1.5,"coupon":5}"#);
    assert_eq!(
        pointers(&errors),
        vec![
            ("/currency", "type"),
            ("/items/0/sku", "type"),
            ("/items/0/quantity", "type"),
            ("/expected_total", "type"),
            ("/coupon", "type"),
        ]
    );
}

#[test]
fn checks_expected_total_against_the_currency() {
    let errors = invalid(r#"{"currency":"JPY","items":[{"sku":"A","quantity":1}],"expected_total":"1.5"}"#);
    assert_eq!(pointers(&errors), vec![("/expected_total", "invalid_amount")]);
    let errors = invalid(r#"{"items":[{"sku":"A","quantity":1}],"expected_total":"1.5","currency":"KWD1"}"#);
    assert_eq!(pointers(&errors), vec![("/currency", "invalid_currency")]);
}

#[test]
fn requires_the_top_level_fields() {
    assert_eq!(pointers(&invalid("{}")), vec![("/currency", "required"), ("/items", "required")]);
    for body in ["[]", "1", "\"x\"", "null", "true", "[[1],{}]"] {
        assert_eq!(pointers(&invalid(body)), vec![("", "type")], "{body}");
    }
    // A number no JSON parser can hold is malformed wherever it stands, skipped or not.
    assert!(matches!(parse_order(b"[1e309]"), Err(ParseError::Malformed(_))));
    assert_eq!(pointers(&invalid(r#"{"currency":"USD","items":[]}"#)), vec![("/items", "too_short")]);
    assert_eq!(pointers(&invalid(r#"{"currency":"USD","items":{}}"#)), vec![("/items", "type")]);
    assert_eq!(
        pointers(&invalid(r#"{"currency":"USD","items":[1, []]}"#)),
        vec![("/items/0", "type"), ("/items/1", "type")]
    );
}

#[test]
fn too_many_items_is_one_error() {
    let items: Vec<String> = (0..=MAX_ITEMS).map(|i| format!(r#"{{"sku":"S{i}","quantity":1}}"#)).collect();
    let body = format!(r#"{{"currency":"USD","items":[{}]}}"#, items.join(","));
    assert_eq!(pointers(&invalid(&body)), vec![("/items", "too_long")]);
    let items: Vec<String> = (0..MAX_ITEMS).map(|i| format!(r#"{{"sku":"S{i}","quantity":1}}"#)).collect();
    let body = format!(r#"{{"currency":"USD","items":[{}]}}"#, items.join(","));
    assert_eq!(parse_order(body.as_bytes()).unwrap().items.len(), MAX_ITEMS);
}

#[test]
fn unknown_field_names_are_escaped_in_pointers() {
    let errors =
        invalid(r#"{"currency":"USD","items":[{"sku":"A","quantity":1,"x~y":0}],"a/b":{"deep":[1]}}"#);
    assert_eq!(pointers(&errors), vec![("/items/0/x~0y", "unknown_field"), ("/a~1b", "unknown_field")]);
}

#[test]
fn coupon_codes_are_checked() {
    let errors = invalid(r#"{"currency":"USD","items":[{"sku":"A","quantity":1}],"coupon":"no spaces"}"#);
    assert_eq!(pointers(&errors), vec![("/coupon", "invalid_coupon")]);
}

#[test]
fn malformed_json_is_not_a_field_error() {
    let cases: &[&[u8]] = &[
        b"{",
        b"",
        b"\xff\xfe",
        b"{\"currency\": NaN}",
        b"{\"currency\": Infinity}",
        b"{\"items\": [{\"quantity\": 1e400}]}",
        b"{\"currency\": \"\xff\"}",
        b"{} {}",
        b"{\"a\":1,}",
        b"{'a': 1}",
    ];
    for body in cases {
        assert!(matches!(parse_order(body), Err(ParseError::Malformed(_))), "{body:?}");
    }
}

#[test]
fn deep_nesting_is_malformed_not_a_stack_overflow() {
    for body in ["[".repeat(100_000), format!("{{\"x\":{}", "[".repeat(100_000)), "{\"a\":".repeat(50_000)] {
        assert!(matches!(parse_order(body.as_bytes()), Err(ParseError::Malformed(_))));
    }
    let ok_depth = format!(
        "{{\"currency\":\"USD\",\"items\":[{{\"sku\":\"A\",\"quantity\":1}}],\"x\":{}1{}}}",
        "[".repeat(100),
        "]".repeat(100)
    );
    assert_eq!(pointers(&invalid(&ok_depth)), vec![("/x", "unknown_field")]);
}

#[test]
fn error_count_is_bounded() {
    let items: Vec<String> = (0..MAX_ITEMS).map(|_| r#"{"sku":"","quantity":0}"#.to_string()).collect();
    let body = format!(r#"{{"currency":"USD","items":[{}]}}"#, items.join(","));
    assert_eq!(invalid(&body).len(), MAX_ERRORS);
}

#[test]
fn nesting_past_the_limit_is_malformed_even_where_a_value_is_skipped() {
    let deep = format!("{}{}", "[".repeat(30_000), "]".repeat(30_000));
    for body in [
        format!(r#"{{"currency": "USD", "items": {deep}}}"#),
        format!(r#"{{"currency": "USD", "items": [{deep}]}}"#),
        format!(r#"{{"currency": "USD", "items": [{{"sku": "A", "quantity": 1}}], "x": {deep}}}"#),
        format!(r#"{{"currency": "USD", "currency": {deep}, "items": []}}"#),
        format!(r#"{{"currency": {deep}, "items": []}}"#),
    ] {
        assert!(matches!(parse_order(body.as_bytes()), Err(ParseError::Malformed(_))), "{}", &body[..60]);
    }
}

/// The bodies clients send, which the fast path must take (else it is never used).
const WELL_FORMED: &[&str] = &[
    r#"{"currency":"USD","items":[{"sku":"SKU-0","quantity":1},{"sku":"SKU-1","quantity":2}],"coupon":"SAVE10"}"#,
    r#"{ "items": [ { "quantity": 10000, "sku": "a.b_c-D" } ], "currency": "JPY", "expected_total": null }"#,
    "{\"currency\":\"EUR\",\n\t\"items\":[{\"sku\":\"X\",\"quantity\":3}],\r\n\"expected_total\":\"12.30\",\"coupon\":null}\n",
    r#"{"currency":"BHD","items":[{"sku":"A","quantity":7}],"expected_total":"1.5"}"#,
];

#[test]
fn the_fast_path_takes_well_formed_orders() {
    for body in WELL_FORMED {
        let fields = fast::scan(body.as_bytes()).unwrap_or_else(|| panic!("fast path refused {body}"));
        assert_eq!(finish(fields, Errors(Vec::new())), parse_streaming(body.as_bytes()));
    }
}

#[test]
fn fast_path_agrees_with_the_validator() {
    // Bodies near the well-formed ones: each mutated by a few random edits (a byte replaced by a
    // JSON-significant one, deleted, or a slice repeated). Wherever the fast path answers, it must
    // answer what the streaming validator does; where it gives up, the validator alone answers.
    const BYTES: &[u8] = b"\"\\09-.eE{}[],: \tnulA\x01\xc3";
    let mut seed = 0x9e37_79b9_7f4a_7c15_u64;
    let mut next = move |n: usize| {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        (seed % n as u64) as usize
    };
    let (mut taken, mut total) = (0, 0);
    for round in 0..60_000 {
        let mut body = WELL_FORMED[round % WELL_FORMED.len()].as_bytes().to_vec();
        for _ in 0..1 + next(3) {
            let at = next(body.len());
            match next(3) {
                0 => body[at] = BYTES[next(BYTES.len())],
                1 => {
                    body.remove(at);
                }
                _ => {
                    let end = (at + 1 + next(24)).min(body.len());
                    let slice = body[at..end].to_vec();
                    body.splice(at..at, slice);
                }
            }
        }
        total += 1;
        if let Some(fields) = fast::scan(&body) {
            taken += 1;
            assert_eq!(
                finish(fields, Errors(Vec::new())),
                parse_streaming(&body),
                "{}",
                String::from_utf8_lossy(&body)
            );
        }
    }
    // Enough mutated bodies stay well-formed for the comparison to mean something.
    assert!(taken > total / 50, "the fast path took {taken} of {total}");
}
