//! Exact money: ISO 4217 minor-unit exponents, decimal strings in, integer minor units inside.
//!
//! Amounts never touch floating point. A decimal string is parsed digit by digit into an `i64`
//! count of minor units with checked arithmetic; formatting is the exact inverse.

use std::fmt;

/// Why a decimal string is not an amount of a currency.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MoneyError {
    /// Not of the form `digits[.digits]`.
    Syntax,
    /// More fractional digits than the currency's minor unit allows (`"100.5"` JPY).
    TooPrecise { exponent: u8 },
    /// Does not fit in 63 bits of minor units.
    Overflow,
}

impl fmt::Display for MoneyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MoneyError::Syntax => f.write_str("must be a decimal string such as \"12.50\""),
            MoneyError::TooPrecise { exponent: 0 } => {
                f.write_str("this currency has no minor unit; use a whole number")
            }
            MoneyError::TooPrecise { exponent } => {
                write!(f, "at most {exponent} decimal places for this currency")
            }
            MoneyError::Overflow => f.write_str("amount is too large"),
        }
    }
}

/// Active ISO 4217 codes and their minor-unit exponents, sorted by code for binary search.
static CURRENCIES: [([u8; 3], u8); 165] = [
    (*b"AED", 2),
    (*b"AFN", 2),
    (*b"ALL", 2),
    (*b"AMD", 2),
    (*b"AOA", 2),
    (*b"ARS", 2),
    (*b"AUD", 2),
    (*b"AWG", 2),
    (*b"AZN", 2),
    (*b"BAM", 2),
    (*b"BBD", 2),
    (*b"BDT", 2),
    (*b"BGN", 2),
    (*b"BHD", 3),
    (*b"BIF", 0),
    (*b"BMD", 2),
    (*b"BND", 2),
    (*b"BOB", 2),
    (*b"BOV", 2),
    (*b"BRL", 2),
    (*b"BSD", 2),
    (*b"BTN", 2),
    (*b"BWP", 2),
    (*b"BYN", 2),
    (*b"BZD", 2),
    (*b"CAD", 2),
    (*b"CDF", 2),
    (*b"CHE", 2),
    (*b"CHF", 2),
    (*b"CHW", 2),
    (*b"CLF", 4),
    (*b"CLP", 0),
    (*b"CNY", 2),
    (*b"COP", 2),
    (*b"COU", 2),
    (*b"CRC", 2),
    (*b"CUP", 2),
    (*b"CVE", 2),
    (*b"CZK", 2),
    (*b"DJF", 0),
    (*b"DKK", 2),
    (*b"DOP", 2),
    (*b"DZD", 2),
    (*b"EGP", 2),
    (*b"ERN", 2),
    (*b"ETB", 2),
    (*b"EUR", 2),
    (*b"FJD", 2),
    (*b"FKP", 2),
    (*b"GBP", 2),
    (*b"GEL", 2),
    (*b"GHS", 2),
    (*b"GIP", 2),
    (*b"GMD", 2),
    (*b"GNF", 0),
    (*b"GTQ", 2),
    (*b"GYD", 2),
    (*b"HKD", 2),
    (*b"HNL", 2),
    (*b"HTG", 2),
    (*b"HUF", 2),
    (*b"IDR", 2),
    (*b"ILS", 2),
    (*b"INR", 2),
    (*b"IQD", 3),
    (*b"IRR", 2),
    (*b"ISK", 0),
    (*b"JMD", 2),
    (*b"JOD", 3),
    (*b"JPY", 0),
    (*b"KES", 2),
    (*b"KGS", 2),
    (*b"KHR", 2),
    (*b"KMF", 0),
    (*b"KPW", 2),
    (*b"KRW", 0),
    (*b"KWD", 3),
    (*b"KYD", 2),
    (*b"KZT", 2),
    (*b"LAK", 2),
    (*b"LBP", 2),
    (*b"LKR", 2),
    (*b"LRD", 2),
    (*b"LSL", 2),
    (*b"LYD", 3),
    (*b"MAD", 2),
    (*b"MDL", 2),
    (*b"MGA", 2),
    (*b"MKD", 2),
    (*b"MMK", 2),
    (*b"MNT", 2),
    (*b"MOP", 2),
    (*b"MRU", 2),
    (*b"MUR", 2),
    (*b"MVR", 2),
    (*b"MWK", 2),
    (*b"MXN", 2),
    (*b"MXV", 2),
    (*b"MYR", 2),
    (*b"MZN", 2),
    (*b"NAD", 2),
    (*b"NGN", 2),
    (*b"NIO", 2),
    (*b"NOK", 2),
    (*b"NPR", 2),
    (*b"NZD", 2),
    (*b"OMR", 3),
    (*b"PAB", 2),
    (*b"PEN", 2),
    (*b"PGK", 2),
    (*b"PHP", 2),
    (*b"PKR", 2),
    (*b"PLN", 2),
    (*b"PYG", 0),
    (*b"QAR", 2),
    (*b"RON", 2),
    (*b"RSD", 2),
    (*b"RUB", 2),
    (*b"RWF", 0),
    (*b"SAR", 2),
    (*b"SBD", 2),
    (*b"SCR", 2),
    (*b"SDG", 2),
    (*b"SEK", 2),
    (*b"SGD", 2),
    (*b"SHP", 2),
    (*b"SLE", 2),
    (*b"SOS", 2),
    (*b"SRD", 2),
    (*b"SSP", 2),
    (*b"STN", 2),
    (*b"SVC", 2),
    (*b"SYP", 2),
    (*b"SZL", 2),
    (*b"THB", 2),
    (*b"TJS", 2),
    (*b"TMT", 2),
    (*b"TND", 3),
    (*b"TOP", 2),
    (*b"TRY", 2),
    (*b"TTD", 2),
    (*b"TWD", 2),
    (*b"TZS", 2),
    (*b"UAH", 2),
    (*b"UGX", 0),
    (*b"USD", 2),
    (*b"USN", 2),
    (*b"UYI", 0),
    (*b"UYU", 2),
    (*b"UYW", 4),
    (*b"UZS", 2),
    (*b"VED", 2),
    (*b"VES", 2),
    (*b"VND", 0),
    (*b"VUV", 0),
    (*b"WST", 2),
    (*b"XAF", 0),
    (*b"XCD", 2),
    (*b"XCG", 2),
    (*b"XOF", 0),
    (*b"XPF", 0),
    (*b"YER", 2),
    (*b"ZAR", 2),
    (*b"ZMW", 2),
    (*b"ZWG", 2),
];

/// The minor-unit exponent of an active ISO 4217 currency code, or `None` for an unknown code.
/// A binary search over 165 entries: about eight three-byte comparisons.
pub fn exponent(code: &str) -> Option<u8> {
    let key: [u8; 3] = code.as_bytes().try_into().ok()?;
    CURRENCIES.binary_search_by(|(c, _)| c.cmp(&key)).ok().map(|i| CURRENCIES[i].1)
}

/// Every active ISO 4217 code, in order (what the published API contract lists as its currencies).
pub fn codes() -> impl Iterator<Item = &'static str> {
    CURRENCIES.iter().map(|(code, _)| std::str::from_utf8(code).expect("ASCII codes"))
}

/// Parses a non-negative decimal string (`"12"`, `"12.5"`, `"12.50"`) into minor units.
///
/// Fewer fractional digits than the exponent are padded (`"12.5"` USD is 1250); more are an
/// error, never a silent rounding.
pub fn parse_amount(text: &str, exponent: u8) -> Result<i64, MoneyError> {
    let (int_part, frac_part) = match text.split_once('.') {
        Some((i, f)) => {
            if f.is_empty() {
                return Err(MoneyError::Syntax);
            }
            (i, f)
        }
        None => (text, ""),
    };
    if int_part.is_empty() || !int_part.bytes().all(|b| b.is_ascii_digit()) {
        return Err(MoneyError::Syntax);
    }
    if !frac_part.bytes().all(|b| b.is_ascii_digit()) {
        return Err(MoneyError::Syntax);
    }
    if frac_part.len() > exponent as usize {
        return Err(MoneyError::TooPrecise { exponent });
    }
    let mut minor: i64 = 0;
    let padding = exponent as usize - frac_part.len();
    let digits = int_part.bytes().chain(frac_part.bytes()).chain(std::iter::repeat_n(b'0', padding));
    for d in digits {
        minor = minor
            .checked_mul(10)
            .and_then(|m| m.checked_add(i64::from(d - b'0')))
            .ok_or(MoneyError::Overflow)?;
    }
    Ok(minor)
}

/// Appends minor units as a decimal string with exactly `exponent` fractional digits, without
/// allocating: the hot path of rendering a priced order.
pub fn write_amount(out: &mut Vec<u8>, minor: i64, exponent: u8) {
    if minor < 0 {
        out.push(b'-');
    }
    let mut abs = minor.unsigned_abs();
    let mut digits = [0u8; 24];
    let mut i = digits.len();
    let mut written = 0u32;
    // At least exponent + 1 digits: "0.05" for 5 cents.
    while abs > 0 || written <= u32::from(exponent) {
        i -= 1;
        digits[i] = b'0' + (abs % 10) as u8;
        abs /= 10;
        written += 1;
    }
    let int_len = digits.len() - i - exponent as usize;
    out.extend_from_slice(&digits[i..i + int_len]);
    if exponent > 0 {
        out.push(b'.');
        out.extend_from_slice(&digits[i + int_len..]);
    }
}

/// Formats minor units as a decimal string with exactly `exponent` fractional digits.
pub fn format_amount(minor: i64, exponent: u8) -> String {
    let sign = if minor < 0 { "-" } else { "" };
    let abs = minor.unsigned_abs();
    if exponent == 0 {
        return format!("{sign}{abs}");
    }
    let scale = 10u64.pow(u32::from(exponent));
    let width = exponent as usize;
    format!("{sign}{}.{:0width$}", abs / scale, abs % scale)
}

/// A percentage held exactly, in millionths of a percent: `"15"` is 15 000 000, `"5.5"` 5 500 000.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub struct Percent(pub i64);

/// Decimal places a percentage may carry.
pub const PERCENT_DECIMALS: u8 = 6;
const PERCENT_ONE: i128 = 1_000_000; // 1 %, in Percent units
const HUNDRED_PERCENT: i128 = 100 * PERCENT_ONE;

impl Percent {
    pub const ZERO: Percent = Percent(0);
    pub const HUNDRED: Percent = Percent(HUNDRED_PERCENT as i64);

    /// Parses `"15"`, `"5.5"`, `"0.125"` (at most six decimals) exactly.
    pub fn parse(text: &str) -> Result<Percent, MoneyError> {
        parse_amount(text, PERCENT_DECIMALS).map(Percent)
    }

    pub fn format(self) -> String {
        let text = format_amount(self.0, PERCENT_DECIMALS);
        let text = text.trim_end_matches('0');
        text.trim_end_matches('.').to_owned()
    }

    pub fn is_zero(self) -> bool {
        self.0 == 0
    }
}

/// `n / d` rounded half to even (banker's rounding); `n >= 0`, `d > 0`.
pub fn div_half_even(n: i128, d: i128) -> i128 {
    debug_assert!(n >= 0 && d > 0);
    let (q, r) = (n / d, n % d);
    match (2 * r).cmp(&d) {
        std::cmp::Ordering::Greater => q + 1,
        std::cmp::Ordering::Equal => q + (q & 1),
        std::cmp::Ordering::Less => q,
    }
}

/// `n / d` rounded half to even in 64-bit arithmetic (the common case: 128-bit division is several
/// times slower); `n >= 0`, `d > 0`.
fn div_half_even_u64(n: u64, d: u64) -> u64 {
    let (q, r) = (n / d, n % d);
    match r.cmp(&(d - r)) {
        std::cmp::Ordering::Greater => q + 1,
        std::cmp::Ordering::Equal => q + (q & 1),
        std::cmp::Ordering::Less => q,
    }
}

/// `p` percent of a non-negative `amount`, rounded half-even to the minor unit.
pub fn percent_of(amount: i64, p: Percent) -> Result<i64, MoneyError> {
    if let (Ok(a), Ok(p64)) = (u64::try_from(amount), u64::try_from(p.0)) {
        if let Some(n) = a.checked_mul(p64) {
            return Ok(div_half_even_u64(n, HUNDRED_PERCENT as u64) as i64);
        }
    }
    let v = div_half_even(i128::from(amount) * i128::from(p.0), HUNDRED_PERCENT);
    i64::try_from(v).map_err(|_| MoneyError::Overflow)
}

/// The tax contained in a tax-inclusive `gross` at `rate`: gross × rate / (100 + rate), half-even.
pub fn tax_included(gross: i64, rate: Percent) -> i64 {
    if let (Ok(g), Ok(r)) = (u64::try_from(gross), u64::try_from(rate.0)) {
        if let Some(n) = g.checked_mul(r) {
            return div_half_even_u64(n, HUNDRED_PERCENT as u64 + r) as i64;
        }
    }
    // rate ≥ 0 so the quotient never exceeds gross: no overflow possible.
    div_half_even(i128::from(gross) * i128::from(rate.0), HUNDRED_PERCENT + i128::from(rate.0)) as i64
}

/// Splits `total` over `weights` in proportion, by the largest-remainder rule: every share is the
/// floor of its exact share, then the minor units left over go one each to the largest fractional
/// parts, ties to the earlier line. The shares always sum to `total` exactly. Weights and total are
/// non-negative; with all weights zero the whole total goes to the first line.
pub fn allocate(total: i64, weights: &[i64]) -> Vec<i64> {
    let sum: i128 = weights.iter().map(|&w| i128::from(w)).sum();
    if weights.is_empty() {
        return Vec::new();
    }
    if sum == 0 {
        let mut shares = vec![0; weights.len()];
        shares[0] = total;
        return shares;
    }
    let t = i128::from(total);
    let mut shares = Vec::with_capacity(weights.len());
    let mut remainders = Vec::with_capacity(weights.len());
    let mut given: i128 = 0;
    for (i, &w) in weights.iter().enumerate() {
        let exact = t * i128::from(w);
        let share = exact / sum;
        given += share;
        shares.push(share as i64);
        remainders.push((exact % sum, i));
    }
    let left = (t - given) as usize;
    // Largest fractional part first; equal parts go to the earlier line (stable, deterministic).
    remainders.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
    for &(_, i) in remainders.iter().take(left) {
        shares[i] += 1;
    }
    shares
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn currency_table_is_sorted_and_unique() {
        assert!(CURRENCIES.windows(2).all(|w| w[0].0 < w[1].0));
    }

    #[test]
    fn codes_are_the_table_and_each_has_its_exponent() {
        let codes: Vec<&str> = codes().collect();
        assert_eq!(codes.len(), CURRENCIES.len());
        assert_eq!(exponent(codes[0]), Some(CURRENCIES[0].1));
        assert!(codes.contains(&"USD") && codes.contains(&"JPY") && !codes.contains(&"XXX"));
        assert!(codes.iter().all(|c| exponent(c).is_some()));
    }

    #[test]
    fn exponents_follow_iso_4217() {
        assert_eq!(exponent("USD"), Some(2));
        assert_eq!(exponent("EUR"), Some(2));
        assert_eq!(exponent("JPY"), Some(0));
        assert_eq!(exponent("KRW"), Some(0));
        assert_eq!(exponent("KWD"), Some(3));
        assert_eq!(exponent("CLF"), Some(4));
        assert_eq!(exponent("usd"), None);
        assert_eq!(exponent("XYZ"), None);
    }

    #[test]
    fn parses_exact_minor_units() {
        assert_eq!(parse_amount("199.00", 2), Ok(19900));
        assert_eq!(parse_amount("199.5", 2), Ok(19950));
        assert_eq!(parse_amount("199", 2), Ok(19900));
        assert_eq!(parse_amount("0.01", 2), Ok(1));
        assert_eq!(parse_amount("100", 0), Ok(100));
        assert_eq!(parse_amount("1.234", 3), Ok(1234));
    }

    #[test]
    fn rejects_excess_precision_instead_of_rounding() {
        assert_eq!(parse_amount("100.5", 0), Err(MoneyError::TooPrecise { exponent: 0 }));
        assert_eq!(parse_amount("1.001", 2), Err(MoneyError::TooPrecise { exponent: 2 }));
    }

    #[test]
    fn rejects_malformed_text() {
        for bad in ["", ".", "1.", ".5", "-1", "+1", "1e3", "1,00", " 1", "1.2.3", "NaN", "١"] {
            assert_eq!(parse_amount(bad, 2), Err(MoneyError::Syntax), "{bad:?}");
        }
    }

    #[test]
    fn overflow_is_an_error_not_a_wrap() {
        assert_eq!(parse_amount("92233720368547758.07", 2), Ok(i64::MAX));
        assert_eq!(parse_amount("92233720368547758.08", 2), Err(MoneyError::Overflow));
        assert_eq!(parse_amount("99999999999999999999999", 0), Err(MoneyError::Overflow));
    }

    #[test]
    fn formats_with_the_currency_exponent() {
        assert_eq!(format_amount(19900, 2), "199.00");
        assert_eq!(format_amount(5, 2), "0.05");
        assert_eq!(format_amount(100, 0), "100");
        assert_eq!(format_amount(1234, 3), "1.234");
        assert_eq!(format_amount(-5, 2), "-0.05");
        assert_eq!(format_amount(i64::MIN, 2), "-92233720368547758.08");
    }

    #[test]
    fn write_amount_matches_format_amount() {
        for exp in 0..=6u8 {
            for minor in [0, 1, 5, 9, 10, 99, 100, 12345, 1_000_000, i64::MAX, -1, -12345, i64::MIN] {
                let mut out = Vec::new();
                write_amount(&mut out, minor, exp);
                assert_eq!(String::from_utf8(out).unwrap(), format_amount(minor, exp), "{minor} e{exp}");
            }
        }
    }

    #[test]
    fn format_inverts_parse() {
        for (text, exp) in [("0.00", 2), ("12.34", 2), ("7", 0), ("0.001", 3), ("1.0000", 4)] {
            assert_eq!(format_amount(parse_amount(text, exp).unwrap(), exp), text);
        }
    }
    #[test]
    fn percentages_are_exact() {
        assert_eq!(Percent::parse("15"), Ok(Percent(15_000_000)));
        assert_eq!(Percent::parse("5.5"), Ok(Percent(5_500_000)));
        assert_eq!(Percent::parse("0.0000001"), Err(MoneyError::TooPrecise { exponent: 6 }));
        assert_eq!(Percent(5_500_000).format(), "5.5");
        assert_eq!(Percent(20_000_000).format(), "20");
    }

    #[test]
    fn the_64_bit_fast_path_agrees_with_128_bit_rounding() {
        for n in [0u64, 1, 5, 15, 25, 49, 50, 51, 99, 100, 101, 12_345_678_901, u64::MAX / 3] {
            for d in [1u64, 2, 3, 7, 10, 100, 100_000_000, 105_500_000] {
                assert_eq!(
                    i128::from(div_half_even_u64(n, d)),
                    div_half_even(i128::from(n), i128::from(d)),
                    "{n}/{d}"
                );
            }
        }
    }

    #[test]
    fn half_even_rounding() {
        let cases = [(5, 10, 0), (15, 10, 2), (25, 10, 2), (35, 10, 4), (14, 10, 1), (16, 10, 2), (0, 7, 0)];
        for (n, d, want) in cases {
            assert_eq!(div_half_even(n, d), want, "{n}/{d}");
        }
        // 12.5 % of 1.00 is 12.5 minor units → 12; of 3.00 is 37.5 → 38.
        assert_eq!(percent_of(100, Percent::parse("12.5").unwrap()), Ok(12));
        assert_eq!(percent_of(300, Percent::parse("12.5").unwrap()), Ok(38));
    }

    #[test]
    fn included_tax_is_extracted() {
        // 120.00 gross at 20 % holds 20.00 of tax; 1.00 at 5.5 % holds 0.0521… → 0.05.
        assert_eq!(tax_included(12000, Percent::parse("20").unwrap()), 2000);
        assert_eq!(tax_included(100, Percent::parse("5.5").unwrap()), 5);
        assert_eq!(tax_included(i64::MAX, Percent::parse("100").unwrap()), i64::MAX / 2 + 1);
        // .5 → even
    }

    #[test]
    fn largest_remainder_allocation() {
        assert_eq!(allocate(100, &[100, 100, 100]), vec![34, 33, 33]);
        assert_eq!(allocate(200, &[100, 100, 100]), vec![67, 67, 66]);
        assert_eq!(allocate(10, &[1, 2, 7]), vec![1, 2, 7]);
        assert_eq!(allocate(5, &[0, 0]), vec![5, 0]);
        assert_eq!(allocate(0, &[3, 4]), vec![0, 0]);
        assert_eq!(allocate(7, &[]), Vec::<i64>::new());
        // The remainder goes to the largest fractional part, not merely the first line.
        assert_eq!(allocate(10, &[1, 1, 3]), vec![2, 2, 6]);
        assert_eq!(
            allocate(i64::MAX, &[i64::MAX, i64::MAX]).iter().map(|&x| i128::from(x)).sum::<i128>(),
            i128::from(i64::MAX)
        );
    }
}
