//! JSON text written byte by byte, the way Kafka Connect's `JsonConverter` (Jackson) writes it.
//!
//! Jackson's defaults decide what "the same bytes" means: compact output, characters of the Basic
//! Multilingual Plane as raw UTF-8, characters beyond it (emoji) as their UTF-16 surrogate pair
//! escaped (`\uD83D\uDE00`, Jackson's `COMBINE_UNICODE_SURROGATES_IN_UTF8` being off), `"` and
//! `\` escaped, `\b \t \n \f \r` as short escapes, every other control character as `\u00XX`,
//! hex in upper case, and nothing else escaped (not `/`, not U+007F, not U+2028). `byte[]`
//! values are standard base64 with padding, without line breaks.

/// What follows the backslash for each byte that starts an escape (0: written as is; `u`: an
/// ASCII control written as `\u00XX`; `s`: the first byte of a 4-byte UTF-8 sequence, written
/// as a surrogate pair).
const ESCAPES: [u8; 256] = {
    let mut table = [0u8; 256];
    let mut i = 0;
    while i < 0x20 {
        table[i] = b'u';
        i += 1;
    }
    table[0x08] = b'b';
    table[0x09] = b't';
    table[0x0A] = b'n';
    table[0x0C] = b'f';
    table[0x0D] = b'r';
    table[b'"' as usize] = b'"';
    table[b'\\' as usize] = b'\\';
    let mut lead = 0xF0;
    while lead < 0xF8 {
        table[lead] = b's';
        lead += 1;
    }
    table
};

const HEX_UPPER: &[u8; 16] = b"0123456789ABCDEF";

/// Writes `text` as a quoted JSON string.
pub(crate) fn push_string(out: &mut Vec<u8>, text: &str) {
    out.push(b'"');
    push_string_content(out, text);
    out.push(b'"');
}

/// Writes the escaped characters of `text` without the surrounding quotes, so that callers can
/// build one JSON string from several pieces (SET members).
pub(crate) fn push_string_content(out: &mut Vec<u8>, text: &str) {
    let bytes = text.as_bytes();
    let mut clean_from = 0;
    let mut i = 0;
    while let Some(&byte) = bytes.get(i) {
        let escape = ESCAPES[usize::from(byte)];
        if escape == 0 {
            i += 1;
            continue;
        }
        out.extend_from_slice(&bytes[clean_from..i]);
        match escape {
            b'u' => {
                push_unicode_escape(out, u16::from(byte));
                i += 1;
            }
            b's' => {
                // `text` is valid UTF-8, so a 4-byte lead starts a whole character.
                let c = text[i..]
                    .chars()
                    .next()
                    .unwrap_or(char::REPLACEMENT_CHARACTER);
                let mut units = [0u16; 2];
                for unit in c.encode_utf16(&mut units) {
                    push_unicode_escape(out, *unit);
                }
                i += c.len_utf8();
            }
            short => {
                out.push(b'\\');
                out.push(short);
                i += 1;
            }
        }
        clean_from = i;
    }
    out.extend_from_slice(&bytes[clean_from..]);
}

/// `\uXXXX` with upper-case hex.
fn push_unicode_escape(out: &mut Vec<u8>, unit: u16) {
    out.extend_from_slice(&[
        b'\\',
        b'u',
        HEX_UPPER[usize::from(unit >> 12)],
        HEX_UPPER[usize::from((unit >> 8) & 0xF)],
        HEX_UPPER[usize::from((unit >> 4) & 0xF)],
        HEX_UPPER[usize::from(unit & 0xF)],
    ]);
}

/// Writes an unsigned integer in decimal.
pub(crate) fn push_u64(out: &mut Vec<u8>, mut value: u64) {
    let mut digits = [0u8; 20];
    let mut start = digits.len();
    loop {
        start -= 1;
        digits[start] = b'0' + (value % 10) as u8;
        value /= 10;
        if value == 0 {
            break;
        }
    }
    out.extend_from_slice(&digits[start..]);
}

/// Writes a signed integer in decimal.
pub(crate) fn push_i64(out: &mut Vec<u8>, value: i64) {
    if value < 0 {
        out.push(b'-');
    }
    push_u64(out, value.unsigned_abs());
}

const BASE64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/// Writes `bytes` as a quoted base64 string (standard alphabet, `=` padding), as Jackson writes
/// a `byte[]`.
pub(crate) fn push_base64(out: &mut Vec<u8>, bytes: &[u8]) {
    out.push(b'"');
    out.reserve(bytes.len().div_ceil(3) * 4 + 1);
    let mut chunks = bytes.chunks_exact(3);
    for chunk in &mut chunks {
        let n = u32::from(chunk[0]) << 16 | u32::from(chunk[1]) << 8 | u32::from(chunk[2]);
        out.extend_from_slice(&[
            BASE64[(n >> 18) as usize & 63],
            BASE64[(n >> 12) as usize & 63],
            BASE64[(n >> 6) as usize & 63],
            BASE64[n as usize & 63],
        ]);
    }
    match *chunks.remainder() {
        [a] => {
            let n = u32::from(a) << 16;
            out.extend_from_slice(&[
                BASE64[(n >> 18) as usize & 63],
                BASE64[(n >> 12) as usize & 63],
                b'=',
                b'=',
            ]);
        }
        [a, b] => {
            let n = u32::from(a) << 16 | u32::from(b) << 8;
            out.extend_from_slice(&[
                BASE64[(n >> 18) as usize & 63],
                BASE64[(n >> 12) as usize & 63],
                BASE64[(n >> 6) as usize & 63],
                b'=',
            ]);
        }
        _ => {}
    }
    out.push(b'"');
}

#[cfg(test)]
mod tests {
    use super::*;

    fn string(text: &str) -> String {
        let mut out = Vec::new();
        push_string(&mut out, text);
        String::from_utf8(out).expect("escaped JSON is UTF-8")
    }

    #[test]
    fn escapes_like_jackson() {
        assert_eq!(string(r#"say "hi" \ bye"#), r#""say \"hi\" \\ bye""#);
        assert_eq!(string("a\nb\tc\rd\u{8}e\u{c}f"), r#""a\nb\tc\rd\be\ff""#);
        assert_eq!(string("\u{0}\u{1}\u{1f}"), r#""\u0000\u0001\u001F""#);
        // Not escaped by Jackson's defaults: slash, DEL, line separators, BMP characters.
        assert_eq!(string("/\u{7f}\u{2028}"), "\"/\u{7f}\u{2028}\"");
        assert_eq!(string("é中\u{ffff}"), "\"é中\u{ffff}\"");
        // Beyond the BMP: the UTF-16 surrogate pair, escaped.
        assert_eq!(string("a😀b\u{10000}"), r#""a\uD83D\uDE00b\uD800\uDC00""#);
        assert_eq!(string(""), "\"\"");
    }

    #[test]
    fn writes_integers() {
        let mut out = Vec::new();
        for value in [0, 7, -1, i64::MIN, i64::MAX] {
            out.clear();
            push_i64(&mut out, value);
            assert_eq!(out, value.to_string().as_bytes());
        }
        out.clear();
        push_u64(&mut out, u64::MAX);
        assert_eq!(out, b"18446744073709551615");
    }

    #[test]
    fn writes_padded_base64() {
        let cases: [(&[u8], &str); 6] = [
            (b"", r#""""#),
            (b"f", r#""Zg==""#),
            (b"fo", r#""Zm8=""#),
            (b"foo", r#""Zm9v""#),
            (b"foobar", r#""Zm9vYmFy""#),
            (&[0x00, 0xFF, 0xFE, 0x3F], r#""AP/+Pw==""#),
        ];
        for (bytes, expected) in cases {
            let mut out = Vec::new();
            push_base64(&mut out, bytes);
            assert_eq!(String::from_utf8_lossy(&out), expected, "{bytes:?}");
        }
    }
}
