//! The text of the numbers and keys in Redis commands, written into a stack buffer (no
//! allocation): feature values as `f64`'s `Display` writes them (the text other systems read in
//! the feature hash), integers in decimal, keys as `CustomerKey` names them.

use super::CustomerKey;

/// A number's or a key's text. Floats are never in exponent form (up to 309 digits for the
/// largest, 326 characters for the smallest subnormal).
pub(super) struct NumberText {
    buf: [u8; 400],
    spill: String,
}

impl Default for NumberText {
    fn default() -> Self {
        Self {
            buf: [0; 400],
            spill: String::new(),
        }
    }
}

/// Whole numbers below this are written as integers (exact in an `f64` and in an `i64`).
const WHOLE: f64 = 1e15;

impl NumberText {
    /// `x` as `format!("{x}")` writes it. The usual values take a faster way to the same text:
    /// whole numbers (counts, most amounts) as integers; others as ryu's shortest digits when
    /// ryu writes them without an exponent and they end in an odd digit. Both write the
    /// shortest digits that read back as `x`, the nearest to `x` of them; they part only on a
    /// tie between two nearest, which ryu settles to the even digit and `Display` upwards, so an
    /// odd last digit is never a tie's. `Display` writes the rest.
    pub(super) fn float(&mut self, x: f64) -> &[u8] {
        if x.fract() == 0.0 && x.abs() < WHOLE && !(x == 0.0 && x.is_sign_negative()) {
            return self.integer(x as i64);
        }
        let mut shortest = ryu::Buffer::new();
        let text = shortest.format(x).as_bytes();
        // ryu writes a whole number with ".0", which `Display` leaves off.
        let text = text.strip_suffix(b".0").unwrap_or(text);
        let odd_last = matches!(text.last(), Some(b'1' | b'3' | b'5' | b'7' | b'9'));
        if odd_last && !text.contains(&b'e') {
            self.buf[..text.len()].copy_from_slice(text);
            return &self.buf[..text.len()];
        }
        self.write(format_args!("{x}"))
    }

    /// `n` in decimal.
    pub(super) fn integer(&mut self, n: i64) -> &[u8] {
        let mut digits = itoa::Buffer::new();
        let text = digits.format(n).as_bytes();
        self.buf[..text.len()].copy_from_slice(text);
        &self.buf[..text.len()]
    }

    /// `<prefix>{<customer-key>}`.
    pub(super) fn key(&mut self, prefix: &str, customer: &CustomerKey) -> &[u8] {
        let len = prefix.len() + customer.0.len() + 2;
        if len > self.buf.len() {
            return self.write(format_args!("{prefix}{{{}}}", customer.0));
        }
        let (p, k) = (prefix.len(), customer.0.len());
        self.buf[..p].copy_from_slice(prefix.as_bytes());
        self.buf[p] = b'{';
        self.buf[p + 1..p + 1 + k].copy_from_slice(customer.0.as_bytes());
        self.buf[p + 1 + k] = b'}';
        &self.buf[..len]
    }

    fn write(&mut self, args: std::fmt::Arguments<'_>) -> &[u8] {
        use std::io::Write;
        let mut cursor = std::io::Cursor::new(&mut self.buf[..]);
        if cursor.write_fmt(args).is_ok() {
            let len = cursor.position() as usize;
            return &self.buf[..len];
        }
        // Longer than any number's text: written on the heap rather than cut.
        self.spill = args.to_string();
        self.spill.as_bytes()
    }
}

/// The usual length of a feature value's text: a number's is at most 24 characters but for
/// magnitudes past 1e17 or below 1e-7.
pub(super) fn value_len(value: &crate::features::FeatureValue) -> usize {
    match value {
        crate::features::FeatureValue::Num(_) => 24,
        crate::features::FeatureValue::Text(t) => t.len(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn text(x: f64) -> String {
        String::from_utf8(NumberText::default().float(x).to_vec()).unwrap()
    }

    #[test]
    fn edge_values_read_as_display_writes_them() {
        let values = [
            0.0,
            -0.0,
            1.0,
            -3.0,
            0.1 + 0.2,
            12.5,
            1e-5,
            1e-7,
            123456.789,
            999_999_999_999_999.0,
            1e15,
            1e16,
            1e300,
            5e-324,
            f64::MAX,
            f64::MIN_POSITIVE,
            -1234567.875,
            // Exactly between two shortest texts (…82812 and …82813).
            82_219_653_793.0 + 53.0 / 64.0,
            3_164_617_377_170_982.0,
            f64::NAN,
            f64::INFINITY,
            f64::NEG_INFINITY,
        ];
        for x in values {
            assert_eq!(text(x), x.to_string(), "{x:?}");
        }
        let key = CustomerKey("ab12".into());
        let mut t = NumberText::default();
        assert_eq!(t.key("nbo:state:", &key), b"nbo:state:{ab12}");
        let long = CustomerKey("k".repeat(500));
        assert_eq!(
            t.key("nbo:state:", &long),
            format!("nbo:state:{{{}}}", long.0).as_bytes()
        );
        assert_eq!(t.integer(i64::MIN), i64::MIN.to_string().as_bytes());
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(20_000))]

        #[test]
        fn any_float_reads_as_display_writes_it(bits in any::<u64>()) {
            let x = f64::from_bits(bits);
            prop_assert_eq!(text(x), x.to_string());
        }

        /// Numbers with a short exact decimal (a whole number over a power of two): the ones
        /// that can fall exactly between two shortest texts.
        #[test]
        fn binary_fractions_read_as_display_writes_them(k in -(1i64 << 53)..(1i64 << 53), j in 0i32..30) {
            let x = k as f64 / 2f64.powi(j);
            prop_assert_eq!(text(x), x.to_string());
        }

        #[test]
        fn amounts_and_rates_read_as_display_writes_them(cents in -1e12f64..1e12, scale in 0u32..7) {
            let x = (cents / 10f64.powi(scale as i32)).trunc() / 100.0;
            prop_assert_eq!(text(x), x.to_string());
            let y = cents / 7.0;
            prop_assert_eq!(text(y), y.to_string());
        }
    }
}
