//! FLOAT and DOUBLE numbers written the way Java's `Float.toString` / `Double.toString` write
//! them, which is what Jackson emits for Connect FLOAT32 / FLOAT64 values.
//!
//! Since JDK 19 (Debezium 3.0 images run JDK 21) Java picks the shortest decimal that reads back
//! as the same number, and the closest one among those — the digits Rust's `{:e}` gives — with
//! one twist: when one significant digit is enough, Java also looks at two-digit decimals and
//! keeps the closest (`1.4E-45`, not `1E-45`). The layout is plain (`123.45`, `0.001`) for
//! 10⁻³ ≤ |x| < 10⁷ and `d.dddE[-]n` otherwise, always with at least one fractional digit.

use std::fmt::{self, LowerExp, Write};
use std::str::FromStr;

/// The two float widths, as far as the layout needs them.
trait JavaFloat: Copy + LowerExp + FromStr + PartialEq {
    fn is_negative(self) -> bool;
    fn magnitude(self) -> Self;
    fn is_zero(self) -> bool;
    fn is_nan(self) -> bool;
    fn is_infinite(self) -> bool;
}

macro_rules! java_float {
    ($t:ty) => {
        impl JavaFloat for $t {
            fn is_negative(self) -> bool {
                self.is_sign_negative()
            }
            fn magnitude(self) -> Self {
                self.abs()
            }
            fn is_zero(self) -> bool {
                self == 0.0
            }
            fn is_nan(self) -> bool {
                <$t>::is_nan(self)
            }
            fn is_infinite(self) -> bool {
                <$t>::is_infinite(self)
            }
        }
    };
}
java_float!(f32);
java_float!(f64);

/// Writes a FLOAT as Java's `Float.toString` does.
pub(crate) fn push_f32(out: &mut Vec<u8>, value: f32) {
    push_java(out, value);
}

/// Writes a DOUBLE as Java's `Double.toString` does.
pub(crate) fn push_f64(out: &mut Vec<u8>, value: f64) {
    push_java(out, value);
}

fn push_java<F: JavaFloat>(out: &mut Vec<u8>, value: F) {
    // Java's words for these; the codec rejects them before they get here (MySQL has none).
    if value.is_nan() {
        out.extend_from_slice(b"NaN");
        return;
    }
    if value.is_negative() {
        out.push(b'-');
    }
    if value.is_infinite() {
        out.extend_from_slice(b"Infinity");
        return;
    }
    let magnitude = value.magnitude();
    if magnitude.is_zero() {
        out.extend_from_slice(b"0.0");
        return;
    }
    let mut shortest = Scratch::default();
    // A float's `{:e}` is at most 24 bytes; the scratch has room for twice that.
    let _ = write!(shortest, "{magnitude:e}");
    let shortest = shortest.as_str();
    let (mantissa, exponent) = shortest.split_once('e').unwrap_or((shortest, "0"));
    let mut exponent: i32 = exponent.parse().unwrap_or(0);
    let mut digits = Digits::default();
    for d in mantissa.bytes().filter(u8::is_ascii_digit) {
        digits.push(d);
    }
    if digits.len == 1
        && let Some((closer, closer_exponent)) = closest_two_digit(magnitude)
    {
        digits = Digits::default();
        digits.push(closer[0]);
        if closer[1] != b'0' {
            digits.push(closer[1]);
        }
        exponent = closer_exponent;
    }
    lay_out(out, digits.as_slice(), exponent);
}

/// A stack buffer to format into: floats are written per value, so no heap allocation.
struct Scratch {
    bytes: [u8; 48],
    len: usize,
}

impl Default for Scratch {
    fn default() -> Self {
        Self {
            bytes: [0; 48],
            len: 0,
        }
    }
}

impl Scratch {
    fn as_str(&self) -> &str {
        std::str::from_utf8(&self.bytes[..self.len]).unwrap_or_default()
    }
}

impl Write for Scratch {
    fn write_str(&mut self, text: &str) -> fmt::Result {
        let end = self.len + text.len();
        let slot = self.bytes.get_mut(self.len..end).ok_or(fmt::Error)?;
        slot.copy_from_slice(text.as_bytes());
        self.len = end;
        Ok(())
    }
}

/// Significant decimal digits (ASCII); a double has at most 17.
#[derive(Default)]
struct Digits {
    bytes: [u8; 24],
    len: usize,
}

impl Digits {
    fn push(&mut self, digit: u8) {
        if let Some(slot) = self.bytes.get_mut(self.len) {
            *slot = digit;
            self.len += 1;
        }
    }

    fn as_slice(&self) -> &[u8] {
        &self.bytes[..self.len]
    }
}

/// The two-digit decimal Java would pick when one digit suffices: the closest two-digit
/// decimal that still reads back as `magnitude`, as two ASCII digits and an exponent.
fn closest_two_digit<F: JavaFloat>(magnitude: F) -> Option<([u8; 2], i32)> {
    let mut nearest = Scratch::default();
    write!(nearest, "{magnitude:.1e}").ok()?;
    let (mantissa, exponent) = nearest.as_str().split_once('e')?;
    let exponent: i32 = exponent.parse().ok()?;
    let mut chars = mantissa.bytes().filter(u8::is_ascii_digit);
    let (first, second) = (chars.next()?, chars.next()?);
    let nearest_mantissa = i32::from(first - b'0') * 10 + i32::from(second - b'0');
    // The nearest two-digit decimal first; if it does not read back, the neighbour on the other
    // side of `magnitude` may (the one beyond the nearest cannot).
    for candidate in [nearest_mantissa, nearest_mantissa - 1, nearest_mantissa + 1] {
        let (candidate, candidate_exponent) = match candidate {
            9 => (99, exponent - 1),
            100 => (10, exponent + 1),
            m => (m, exponent),
        };
        let mut text = Scratch::default();
        write!(
            text,
            "{}.{}e{candidate_exponent}",
            candidate / 10,
            candidate % 10
        )
        .ok()?;
        if text.as_str().parse::<F>().ok() == Some(magnitude) {
            let digits = [b'0' + (candidate / 10) as u8, b'0' + (candidate % 10) as u8];
            return Some((digits, candidate_exponent));
        }
    }
    None
}

/// Writes significant `digits` (at least one, the first before the point) with decimal
/// exponent `exponent` in Java's layout.
fn lay_out(out: &mut Vec<u8>, digits: &[u8], exponent: i32) {
    let Some((&first, rest)) = digits.split_first() else {
        out.extend_from_slice(b"0.0");
        return;
    };
    if (-3..7).contains(&exponent) {
        if exponent >= 0 {
            let integer_len = exponent.unsigned_abs() as usize + 1;
            if digits.len() <= integer_len {
                out.extend_from_slice(digits);
                out.resize(out.len() + integer_len - digits.len(), b'0');
                out.extend_from_slice(b".0");
            } else {
                out.extend_from_slice(&digits[..integer_len]);
                out.push(b'.');
                out.extend_from_slice(&digits[integer_len..]);
            }
        } else {
            out.extend_from_slice(b"0.");
            out.resize(out.len() + exponent.unsigned_abs() as usize - 1, b'0');
            out.extend_from_slice(digits);
        }
    } else {
        out.push(first);
        out.push(b'.');
        if rest.is_empty() {
            out.push(b'0');
        } else {
            out.extend_from_slice(rest);
        }
        out.push(b'E');
        out.extend_from_slice(exponent.to_string().as_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn f32_text(value: f32) -> String {
        let mut out = Vec::new();
        push_f32(&mut out, value);
        String::from_utf8(out).expect("ASCII")
    }

    fn f64_text(value: f64) -> String {
        let mut out = Vec::new();
        push_f64(&mut out, value);
        String::from_utf8(out).expect("ASCII")
    }

    #[test]
    fn floats_match_java() {
        // Expected values are what JDK 21's Float.toString prints.
        for (value, java) in [
            (1.0f32, "1.0"),
            (0.1, "0.1"),
            (1.5, "1.5"),
            (-2.5, "-2.5"),
            (0.0, "0.0"),
            (-0.0, "-0.0"),
            (100.0, "100.0"),
            (0.001, "0.001"),
            (1.0e-4, "1.0E-4"),
            (1.0e-5, "1.0E-5"),
            (1234567.0, "1234567.0"),
            (9999999.0, "9999999.0"),
            (1.0e7, "1.0E7"),
            (12345678.0, "1.2345678E7"),
            (1.0e10, "1.0E10"),
            (3.4028235e38, "3.4028235E38"),
            (f32::MIN_POSITIVE, "1.1754944E-38"),
            (1.4e-45, "1.4E-45"),
            (123.456, "123.456"),
            (0.3, "0.3"),
            (1.1, "1.1"),
            (16777216.0, "1.6777216E7"),
        ] {
            assert_eq!(f32_text(value), java, "{value:e}");
        }
    }

    #[test]
    fn doubles_match_java() {
        // Expected values are what JDK 21's Double.toString prints.
        for (value, java) in [
            (1.0f64, "1.0"),
            (0.1, "0.1"),
            (0.1 + 0.2, "0.30000000000000004"),
            (-1234.5678, "-1234.5678"),
            (1.0e7, "1.0E7"),
            (1.0e-3, "0.001"),
            (9.99e-4, "9.99E-4"),
            (1.0e23, "1.0E23"),
            (2.0e23, "2.0E23"),
            (f64::MAX, "1.7976931348623157E308"),
            (4.9e-324, "4.9E-324"),
            (123456789.0, "1.23456789E8"),
            (1.0 / 3.0, "0.3333333333333333"),
        ] {
            assert_eq!(f64_text(value), java, "{value:e}");
        }
    }
}
