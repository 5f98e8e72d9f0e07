//! Cell values as SQLite returns them, with Python's equality (`1 == 1.0`), because the official
//! evaluators compare Python objects.

use std::hash::{Hash, Hasher};

use serde::{Serialize, Serializer};

/// One cell. Text is decoded as the official Spider evaluator decodes it (UTF-8, invalid bytes
/// dropped: `bytes.decode(errors="ignore")`).
#[derive(Debug, Clone)]
pub enum Value {
    Null,
    Integer(i64),
    Real(f64),
    Text(String),
    Blob(Vec<u8>),
}

/// Rows of a query result, each the same width.
pub type ResultSet = Vec<Vec<Value>>;

impl Value {
    /// Decodes SQLite text bytes the way Python's `b.decode(errors="ignore")` does.
    pub fn text_from_bytes(bytes: &[u8]) -> Value {
        match std::str::from_utf8(bytes) {
            Ok(s) => Value::Text(s.to_owned()),
            Err(_) => {
                let mut out = String::with_capacity(bytes.len());
                for chunk in bytes.utf8_chunks() {
                    out.push_str(chunk.valid());
                }
                Value::Text(out)
            }
        }
    }

    /// `str(x) + str(type(x))` in Python: the key the official evaluator sorts a row's cells by
    /// in its quick rejection test. Reproduced exactly because it decides ties between `1` and
    /// `1.0`.
    pub fn python_sort_key(&self) -> String {
        match self {
            Value::Null => "None<class 'NoneType'>".to_string(),
            Value::Integer(i) => format!("{i}<class 'int'>"),
            Value::Real(f) => format!("{}<class 'float'>", python_float_repr(*f)),
            Value::Text(s) => format!("{s}<class 'str'>"),
            Value::Blob(b) => format!("{}<class 'bytes'>", python_bytes_repr(b)),
        }
    }

    /// A hashable identity consistent with Python equality: an integral float equals the int.
    fn canonical(&self) -> Canonical<'_> {
        match self {
            Value::Null => Canonical::Null,
            Value::Integer(i) => Canonical::Int(*i as i128),
            Value::Real(f) => {
                if f.fract() == 0.0 && f.abs() < 1.7e38 {
                    Canonical::Int(*f as i128)
                } else if f.is_nan() {
                    Canonical::Nan
                } else {
                    Canonical::Real(f.to_bits())
                }
            }
            Value::Text(s) => Canonical::Text(s),
            Value::Blob(b) => Canonical::Blob(b),
        }
    }
}

#[derive(PartialEq, Eq, Hash)]
enum Canonical<'a> {
    Null,
    Int(i128),
    Real(u64),
    Nan,
    Text(&'a str),
    Blob(&'a [u8]),
}

impl PartialEq for Value {
    fn eq(&self, other: &Self) -> bool {
        let (a, b) = (self.canonical(), other.canonical());
        // NaN is never equal to itself in Python; SQLite turns NaN into NULL, so this is moot
        // in practice, but keep the law.
        a != Canonical::Nan && a == b
    }
}

impl Eq for Value {}

impl Hash for Value {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.canonical().hash(state)
    }
}

impl Serialize for Value {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Value::Null => s.serialize_none(),
            Value::Integer(i) => s.serialize_i64(*i),
            Value::Real(f) => s.serialize_f64(*f),
            Value::Text(t) => s.serialize_str(t),
            Value::Blob(b) => s.serialize_str(&format!("x'{}'", hex::encode(b))),
        }
    }
}

/// Python's `repr(float)`: the shortest digits that round-trip, in positional notation when the
/// decimal exponent is in [-4, 16), scientific otherwise (`1e-05`, `1e+16`).
pub fn python_float_repr(f: f64) -> String {
    if f.is_nan() {
        return "nan".into();
    }
    if f.is_infinite() {
        return if f > 0.0 { "inf".into() } else { "-inf".into() };
    }
    // Rust's `{:e}` prints the shortest round-trip digits as d.ddddde±x.
    let sci = format!("{:e}", f.abs());
    let (mantissa, exp) = sci.split_once('e').expect("{:e} always has an exponent");
    let exp: i32 = exp.parse().expect("exponent is an integer");
    let digits: String = mantissa.chars().filter(|c| *c != '.').collect();
    let sign = if f.is_sign_negative() { "-" } else { "" };
    let decpt = exp + 1; // position of the decimal point relative to the digits
    let n = digits.len() as i32;
    if !(-4 < decpt && decpt <= 16) {
        let mut out = format!("{sign}{}", &digits[..1]);
        if n > 1 {
            out.push('.');
            out.push_str(&digits[1..]);
        }
        let esign = if exp < 0 { '-' } else { '+' };
        out.push_str(&format!("e{esign}{:02}", exp.abs()));
        out
    } else if decpt <= 0 {
        format!("{sign}0.{}{digits}", "0".repeat((-decpt) as usize))
    } else if decpt >= n {
        format!("{sign}{digits}{}.0", "0".repeat((decpt - n) as usize))
    } else {
        let (a, b) = digits.split_at(decpt as usize);
        format!("{sign}{a}.{b}")
    }
}

/// Python's `repr(bytes)`.
pub fn python_bytes_repr(b: &[u8]) -> String {
    let quote = if b.contains(&b'\'') && !b.contains(&b'"') {
        '"'
    } else {
        '\''
    };
    let mut out = String::from("b");
    out.push(quote);
    for &c in b {
        match c {
            b'\\' => out.push_str("\\\\"),
            b'\t' => out.push_str("\\t"),
            b'\n' => out.push_str("\\n"),
            b'\r' => out.push_str("\\r"),
            c if c as char == quote => {
                out.push('\\');
                out.push(quote)
            }
            0x20..=0x7e => out.push(c as char),
            c => out.push_str(&format!("\\x{c:02x}")),
        }
    }
    out.push(quote);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn float_repr_matches_python() {
        for (f, want) in [
            (1.0, "1.0"),
            (0.1, "0.1"),
            (1e16, "1e+16"),
            (1e15, "1000000000000000.0"),
            (0.0001, "0.0001"),
            (0.00001, "1e-05"),
            (-2.5, "-2.5"),
            (123456.789, "123456.789"),
            (1.5e-7, "1.5e-07"),
            (-0.0, "-0.0"),
            (1.2345e20, "1.2345e+20"),
            (f64::INFINITY, "inf"),
        ] {
            assert_eq!(python_float_repr(f), want, "repr({f})");
        }
    }

    #[test]
    fn int_equals_integral_float_like_python() {
        assert_eq!(Value::Integer(1), Value::Real(1.0));
        assert_ne!(Value::Integer(1), Value::Real(1.5));
        assert_ne!(
            Value::Integer(9_007_199_254_740_993),
            Value::Real(9_007_199_254_740_992.0)
        );
        assert_eq!(Value::Real(0.0), Value::Real(-0.0));
        assert_ne!(Value::Text("1".into()), Value::Integer(1));
        assert_eq!(Value::Null, Value::Null);
    }

    #[test]
    fn invalid_utf8_is_dropped_like_python_ignore() {
        assert_eq!(
            Value::text_from_bytes(b"caf\xc3\xa9 \xff\xfeok"),
            Value::Text("café ok".into())
        );
    }

    #[test]
    fn bytes_repr_matches_python() {
        assert_eq!(python_bytes_repr(b"a'b\x00\n"), "b\"a'b\\x00\\n\"");
        assert_eq!(python_bytes_repr(b"ab"), "b'ab'");
    }
}
