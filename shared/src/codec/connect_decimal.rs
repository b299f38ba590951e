//! Kafka Connect `Decimal` values: the unscaled integer as the shortest big-endian two's
//! complement bytes, exactly what Java's `BigInteger.toByteArray()` returns.
//!
//! DECIMAL(65,30) holds 65 digits, far beyond any machine integer, so the text is converted
//! with a small fixed-width big integer (no floats, no allocation).

/// 32-bit limbs, least significant first: 288 bits hold every number of up to 86 digits.
const LIMBS: usize = 9;
const BYTES: usize = LIMBS * 4;
/// Digits accepted in an unscaled value; MySQL's maximum is 65.
const MAX_DIGITS: usize = 80;

/// Why a DECIMAL text could not become a Connect decimal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum DecimalError {
    /// Not `[-]digits[.digits]`.
    Malformed,
    /// More fractional digits than the column's scale.
    ScaleTooLarge { digits: usize, scale: u8 },
    /// More digits than any DECIMAL column has.
    TooManyDigits,
}

/// The two's complement bytes of an unscaled integer.
pub(crate) struct Unscaled {
    bytes: [u8; BYTES],
    start: usize,
}

impl Unscaled {
    /// The shortest big-endian two's complement form (at least one byte).
    pub(crate) fn as_bytes(&self) -> &[u8] {
        &self.bytes[self.start..]
    }

    fn from_magnitude(limbs: &[u32; LIMBS], negative: bool) -> Self {
        let mut bytes = [0u8; BYTES];
        for (i, limb) in limbs.iter().enumerate() {
            let at = BYTES - 4 * (i + 1);
            bytes[at..at + 4].copy_from_slice(&limb.to_be_bytes());
        }
        if negative {
            // Two's complement: invert, then add one.
            let mut carry = true;
            for byte in bytes.iter_mut().rev() {
                let (sum, overflow) = (!*byte).overflowing_add(u8::from(carry));
                *byte = sum;
                carry = overflow;
            }
        }
        let mut start = 0;
        // Drop a leading byte while the next one still carries the same sign.
        while start + 1 < BYTES {
            let (byte, next) = (bytes[start], bytes[start + 1]);
            if (byte == 0x00 && next & 0x80 == 0) || (byte == 0xFF && next & 0x80 != 0) {
                start += 1;
            } else {
                break;
            }
        }
        Self { bytes, start }
    }
}

/// The unscaled integer of DECIMAL text such as `-12.3400` at `scale` (fewer fractional digits
/// are padded with zeros: `1.5` at scale 3 is 1500).
pub(crate) fn unscaled_from_text(text: &str, scale: u8) -> Result<Unscaled, DecimalError> {
    let (negative, unsigned) = match text.as_bytes().first() {
        Some(b'-') => (true, &text[1..]),
        Some(b'+') => (false, &text[1..]),
        _ => (false, text),
    };
    let (integer, fraction) = unsigned.split_once('.').unwrap_or((unsigned, ""));
    let all_digits = |part: &str| part.bytes().all(|b| b.is_ascii_digit());
    if integer.is_empty() && fraction.is_empty() || !all_digits(integer) || !all_digits(fraction) {
        return Err(DecimalError::Malformed);
    }
    if fraction.len() > usize::from(scale) {
        return Err(DecimalError::ScaleTooLarge {
            digits: fraction.len(),
            scale,
        });
    }
    let integer = integer.trim_start_matches('0');
    let padding = usize::from(scale) - fraction.len();
    if integer.len() + fraction.len() + padding > MAX_DIGITS {
        return Err(DecimalError::TooManyDigits);
    }

    let mut limbs = [0u32; LIMBS];
    let mut chunk = 0u32;
    let mut chunk_scale = 1u32;
    let digits = integer
        .bytes()
        .chain(fraction.bytes())
        .chain(std::iter::repeat_n(b'0', padding));
    for digit in digits {
        chunk = chunk * 10 + u32::from(digit - b'0');
        chunk_scale *= 10;
        // Nine decimal digits always fit a u32 limb step.
        if chunk_scale == 1_000_000_000 {
            multiply_add(&mut limbs, chunk_scale, chunk);
            (chunk, chunk_scale) = (0, 1);
        }
    }
    if chunk_scale > 1 {
        multiply_add(&mut limbs, chunk_scale, chunk);
    }
    Ok(Unscaled::from_magnitude(&limbs, negative))
}

/// The unscaled integer of a BIGINT UNSIGNED value (Debezium's `precise` mode, scale 0).
pub(crate) fn unscaled_from_u64(value: u64) -> Unscaled {
    let mut limbs = [0u32; LIMBS];
    limbs[0] = value as u32;
    limbs[1] = (value >> 32) as u32;
    Unscaled::from_magnitude(&limbs, false)
}

/// The decimal text of a Connect `Decimal`: `bytes` (big-endian two's complement, as
/// `BigInteger.toByteArray()` writes them) as an unscaled integer, with `scale` fractional
/// digits (`[0xFB, 0x2E]` at scale 2 is `-12.34`, `[0x00]` at scale 2 is `0.00`).
pub(crate) fn text_from_unscaled(bytes: &[u8], scale: u8) -> Result<String, DecimalError> {
    let Some(&first) = bytes.first() else {
        return Err(DecimalError::Malformed);
    };
    let negative = first & 0x80 != 0;
    let mut significant = bytes;
    // Leading bytes that only repeat the sign carry no digits.
    while let [byte, next, ..] = significant {
        if (*byte == 0x00 && next & 0x80 == 0) || (*byte == 0xFF && next & 0x80 != 0) {
            significant = &significant[1..];
        } else {
            break;
        }
    }
    if significant.len() > BYTES {
        return Err(DecimalError::TooManyDigits);
    }
    let mut buffer = [if negative { 0xFF } else { 0x00 }; BYTES];
    buffer[BYTES - significant.len()..].copy_from_slice(significant);
    if negative {
        // The magnitude: invert, then add one.
        let mut carry = true;
        for byte in buffer.iter_mut().rev() {
            let (sum, overflow) = (!*byte).overflowing_add(u8::from(carry));
            *byte = sum;
            carry = overflow;
        }
    }
    let mut limbs = [0u32; LIMBS];
    for (i, limb) in limbs.iter_mut().enumerate() {
        let at = BYTES - 4 * (i + 1);
        *limb = u32::from_be_bytes([buffer[at], buffer[at + 1], buffer[at + 2], buffer[at + 3]]);
    }
    // Nine digits at a time, least significant first.
    let mut chunks = Vec::new();
    while limbs.iter().any(|&limb| limb != 0) {
        chunks.push(divide(&mut limbs, 1_000_000_000));
    }
    let mut digits = match chunks.pop() {
        Some(top) => top.to_string(),
        None => String::from("0"),
    };
    for chunk in chunks.iter().rev() {
        digits.push_str(&format!("{chunk:09}"));
    }
    let scale = usize::from(scale);
    if digits.len() <= scale {
        digits.insert_str(0, &"0".repeat(scale + 1 - digits.len()));
    }
    let mut text = String::with_capacity(digits.len() + 2);
    if negative && digits.bytes().any(|d| d != b'0') {
        text.push('-');
    }
    let (integer, fraction) = digits.split_at(digits.len() - scale);
    text.push_str(integer);
    if scale > 0 {
        text.push('.');
        text.push_str(fraction);
    }
    Ok(text)
}

/// `limbs = limbs / divisor`, returning the remainder.
fn divide(limbs: &mut [u32; LIMBS], divisor: u32) -> u32 {
    let mut remainder = 0u64;
    for limb in limbs.iter_mut().rev() {
        let current = (remainder << 32) | u64::from(*limb);
        *limb = (current / u64::from(divisor)) as u32;
        remainder = current % u64::from(divisor);
    }
    remainder as u32
}

/// `limbs = limbs * factor + addend`; the digit limit keeps the result within the limbs.
fn multiply_add(limbs: &mut [u32; LIMBS], factor: u32, addend: u32) {
    let mut carry = u64::from(addend);
    for limb in limbs.iter_mut() {
        let product = u64::from(*limb) * u64::from(factor) + carry;
        *limb = product as u32;
        carry = product >> 32;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bytes(text: &str, scale: u8) -> Vec<u8> {
        unscaled_from_text(text, scale)
            .expect("valid decimal")
            .as_bytes()
            .to_vec()
    }

    #[test]
    fn matches_big_integer_to_byte_array() {
        // Expected bytes are Java's new BigInteger(unscaled).toByteArray().
        assert_eq!(bytes("0", 0), [0x00]);
        assert_eq!(bytes("0.00", 2), [0x00]);
        assert_eq!(bytes("-0.00", 2), [0x00]);
        assert_eq!(bytes("1", 0), [0x01]);
        assert_eq!(bytes("127", 0), [0x7F]);
        assert_eq!(bytes("128", 0), [0x00, 0x80]);
        assert_eq!(bytes("-1", 0), [0xFF]);
        assert_eq!(bytes("-128", 0), [0x80]);
        assert_eq!(bytes("-129", 0), [0xFF, 0x7F]);
        assert_eq!(bytes("12.34", 2), [0x04, 0xD2]);
        assert_eq!(bytes("-12.34", 2), [0xFB, 0x2E]);
        assert_eq!(bytes("1.5", 3), [0x05, 0xDC]);
        assert_eq!(bytes(".5", 1), [0x05]);
        assert_eq!(bytes("65536", 0), [0x01, 0x00, 0x00]);
    }

    #[test]
    fn converts_65_digits_exactly() {
        // Checked against a slow digit-by-digit reference conversion.
        let nines = format!("{}.{}", "9".repeat(35), "9".repeat(30));
        assert_eq!(bytes(&nines, 30), reference_bytes(&"9".repeat(65), false));
        let negative = format!(
            "-{}.{}",
            "1234567890".repeat(3) + "12345",
            "0".repeat(29) + "1"
        );
        let digits = "1234567890".repeat(3) + "12345" + &"0".repeat(29) + "1";
        assert_eq!(bytes(&negative, 30), reference_bytes(&digits, true));
    }

    /// Base-256 long multiplication, one digit at a time, then two's complement.
    fn reference_bytes(digits: &str, negative: bool) -> Vec<u8> {
        let mut magnitude = vec![0u8];
        for digit in digits.bytes() {
            let mut carry = u32::from(digit - b'0');
            for byte in magnitude.iter_mut().rev() {
                let value = u32::from(*byte) * 10 + carry;
                *byte = value as u8;
                carry = value >> 8;
            }
            while carry > 0 {
                magnitude.insert(0, carry as u8);
                carry >>= 8;
            }
        }
        magnitude.insert(0, 0);
        if negative {
            for byte in magnitude.iter_mut() {
                *byte = !*byte;
            }
            for byte in magnitude.iter_mut().rev() {
                let (sum, overflow) = byte.overflowing_add(1);
                *byte = sum;
                if !overflow {
                    break;
                }
            }
        }
        while magnitude.len() > 1
            && ((magnitude[0] == 0 && magnitude[1] & 0x80 == 0)
                || (magnitude[0] == 0xFF && magnitude[1] & 0x80 != 0))
        {
            magnitude.remove(0);
        }
        magnitude
    }

    #[test]
    fn text_from_unscaled_reverses_unscaled_from_text() {
        for (text, scale) in [
            ("0", 0),
            ("0.00", 2),
            ("1", 0),
            ("127", 0),
            ("128", 0),
            ("-1", 0),
            ("-128", 0),
            ("-129", 0),
            ("12.34", 2),
            ("-12.34", 2),
            ("-0.05", 2),
            ("0.500", 3),
            ("65536", 0),
            (
                "12345678901234567890123456789012345.123456789012345678901234567890",
                30,
            ),
            (
                "-99999999999999999999999999999999999.999999999999999999999999999999",
                30,
            ),
        ] {
            let unscaled = unscaled_from_text(text, scale).expect("valid decimal");
            assert_eq!(
                text_from_unscaled(unscaled.as_bytes(), scale),
                Ok(text.to_owned()),
                "{text}"
            );
        }
        // Redundant sign bytes are accepted; nothing and too much are not.
        assert_eq!(
            text_from_unscaled(&[0x00, 0x00, 0x05], 1),
            Ok("0.5".to_owned())
        );
        assert_eq!(text_from_unscaled(&[0xFF, 0xFF], 0), Ok("-1".to_owned()));
        assert_eq!(text_from_unscaled(&[], 0), Err(DecimalError::Malformed));
        assert_eq!(
            text_from_unscaled(&[0x7F; 40], 0),
            Err(DecimalError::TooManyDigits)
        );
        assert_eq!(
            text_from_unscaled(unscaled_from_u64(u64::MAX).as_bytes(), 0),
            Ok(u64::MAX.to_string())
        );
    }

    #[test]
    fn bigint_unsigned_max_has_a_sign_byte() {
        assert_eq!(
            unscaled_from_u64(u64::MAX).as_bytes(),
            [0x00, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF]
        );
        assert_eq!(unscaled_from_u64(0).as_bytes(), [0x00]);
    }

    #[test]
    fn rejects_bad_text() {
        for text in ["", "-", ".", "1.2.3", "1e5", "abc", "--1", " 1"] {
            assert_eq!(
                unscaled_from_text(text, 5).err(),
                Some(DecimalError::Malformed),
                "{text:?}"
            );
        }
        assert_eq!(
            unscaled_from_text("1.234", 2).err(),
            Some(DecimalError::ScaleTooLarge {
                digits: 3,
                scale: 2
            })
        );
        assert_eq!(
            unscaled_from_text(&"9".repeat(81), 0).err(),
            Some(DecimalError::TooManyDigits)
        );
    }
}
