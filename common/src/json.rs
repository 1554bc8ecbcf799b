//! A small JSON reader and writer for the few shapes the edge reads and writes (see `wire`): the
//! text serde_json writes for them, in a fraction of the WASM bytes serde costs.
//!
//! The reader follows serde_json wherever the edge's answers depend on it: the same grammar and
//! whitespace, escapes (paired surrogates in every string it reads), integers only where an
//! integer is read (`1.0`, `1e2` and `-0` are floats), a number in a skipped value checked the
//! way serde_json checks one it parses into a `Value`, at most 127 nested arrays and objects, a
//! field given twice refused, unknown fields skipped (or refused, for the shapes that refuse
//! them). Where it differs, it is stricter: it reads a struct only from a JSON object, never
//! from the array form serde also accepts (except the verify API's body, which reads both).

use std::borrow::Cow;

/// Why a JSON text was refused. Positions are byte offsets into the text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum JsonError {
    /// Not JSON, nested too deep, or cut short.
    #[error("not valid JSON at byte {0}")]
    Syntax(usize),
    /// Valid JSON, but a value of the wrong type, or out of range.
    #[error("a value of the wrong type or out of range at byte {0}")]
    Type(usize),
    /// A required field is absent.
    #[error("the field `{0}` is missing")]
    Missing(&'static str),
    /// A field is given twice.
    #[error("a field is given twice at byte {0}")]
    Duplicate(usize),
    /// A field the shape does not have, where unknown fields are refused.
    #[error("an unknown field at byte {0}")]
    Unknown(usize),
}

/// A value that reads itself from JSON.
pub trait FromJson: Sized {
    /// Reads one value.
    ///
    /// # Errors
    /// A [`JsonError`] when the next value is not JSON of this shape.
    fn read(r: &mut Reader<'_>) -> Result<Self, JsonError>;
}

/// A value that writes itself as JSON.
pub trait ToJson {
    /// Writes the value.
    fn write(&self, w: &mut Writer);
}

/// Reads `text`, one value and nothing but whitespace after it.
///
/// # Errors
/// A [`JsonError`] when `text` is not one JSON value of `T`'s shape.
pub fn from_str<T: FromJson>(text: &str) -> Result<T, JsonError> {
    let mut r = Reader::new(text);
    let value = T::read(&mut r)?;
    r.end()?;
    Ok(value)
}

/// `value` as compact JSON text.
#[must_use]
pub fn to_string<T: ToJson + ?Sized>(value: &T) -> String {
    let mut w = Writer::default();
    value.write(&mut w);
    w.finish()
}

/// The value of a required field.
///
/// # Errors
/// [`JsonError::Missing`] naming it when it was not given.
pub fn need<T>(slot: Option<T>, name: &'static str) -> Result<T, JsonError> {
    slot.ok_or(JsonError::Missing(name))
}

/// serde_json's nesting limit: a value may hold at most 127 levels of arrays and objects.
const MAX_DEPTH: u8 = 128;

/// A number as serde_json parses it: an integer that fits a `u64` (and its sign), or a float.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Number {
    Int { negative: bool, magnitude: u64 },
    Float,
}

/// `1e289` to `1e308`: the powers of ten with which serde_json's float parsing can overflow.
#[allow(clippy::unreadable_literal)]
const POW10_FROM_289: [f64; 20] = [
    1e289, 1e290, 1e291, 1e292, 1e293, 1e294, 1e295, 1e296, 1e297, 1e298, 1e299, 1e300, 1e301,
    1e302, 1e303, 1e304, 1e305, 1e306, 1e307, 1e308,
];

/// Whether serde_json refuses the float `significand × 10^exponent` as out of range (it computes
/// the product in `f64`, and a significand below 2^64 times at most 1e288 cannot overflow).
#[allow(clippy::cast_precision_loss, clippy::cast_sign_loss)]
fn out_of_range(significand: u64, exponent: i32) -> bool {
    match exponent {
        ..289 => false,
        289..=308 => (significand as f64 * POW10_FROM_289[(exponent - 289) as usize]).is_infinite(),
        _ => significand != 0,
    }
}

/// A pull reader over one JSON text.
#[derive(Debug)]
pub struct Reader<'a> {
    text: &'a str,
    at: usize,
    depth: u8,
}

impl<'a> Reader<'a> {
    /// A reader at the start of `text`.
    #[must_use]
    pub fn new(text: &'a str) -> Self {
        Self {
            text,
            at: 0,
            depth: MAX_DEPTH,
        }
    }

    fn bytes(&self) -> &'a [u8] {
        self.text.as_bytes()
    }

    /// The next byte after whitespace, not consumed.
    pub fn peek(&mut self) -> Option<u8> {
        let b = self.bytes();
        while let Some(b' ' | b'\n' | b'\r' | b'\t') = b.get(self.at) {
            self.at += 1;
        }
        b.get(self.at).copied()
    }

    /// A syntax error here.
    #[must_use]
    pub fn syntax(&self) -> JsonError {
        JsonError::Syntax(self.at)
    }

    /// A type error here.
    #[must_use]
    pub fn type_error(&self) -> JsonError {
        JsonError::Type(self.at)
    }

    /// An unknown-field error here.
    #[must_use]
    pub fn unknown(&self) -> JsonError {
        JsonError::Unknown(self.at)
    }

    fn eat(&mut self, c: u8) -> bool {
        let found = self.peek() == Some(c);
        if found {
            self.at += 1;
        }
        found
    }

    fn expect(&mut self, c: u8) -> Result<(), JsonError> {
        if self.eat(c) {
            Ok(())
        } else {
            Err(self.syntax())
        }
    }

    fn word(&mut self, word: &str) -> Result<(), JsonError> {
        if self.bytes()[self.at..].starts_with(word.as_bytes()) {
            self.at += word.len();
            Ok(())
        } else {
            Err(self.syntax())
        }
    }

    /// Only whitespace is left.
    ///
    /// # Errors
    /// [`JsonError::Syntax`] at anything else.
    pub fn end(&mut self) -> Result<(), JsonError> {
        match self.peek() {
            None => Ok(()),
            Some(_) => Err(self.syntax()),
        }
    }

    /// Consumes a `null` if one comes next.
    ///
    /// # Errors
    /// When the next value starts like `null` but is not.
    pub fn null(&mut self) -> Result<bool, JsonError> {
        if self.peek() == Some(b'n') {
            self.word("null")?;
            return Ok(true);
        }
        Ok(false)
    }

    /// A boolean.
    ///
    /// # Errors
    /// When the next value is not `true` or `false`.
    pub fn bool(&mut self) -> Result<bool, JsonError> {
        match self.peek() {
            Some(b't') => self.word("true").map(|()| true),
            Some(b'f') => self.word("false").map(|()| false),
            _ => Err(self.type_error()),
        }
    }

    /// Parses a number after whitespace, as serde_json does; with `check_range`, a float that
    /// serde_json would parse to infinity is refused.
    fn number(&mut self, check_range: bool) -> Result<Number, JsonError> {
        let b = self.bytes();
        let digit = |at: usize| match b.get(at) {
            Some(c @ b'0'..=b'9') => Some(u64::from(c - b'0')),
            _ => None,
        };
        let negative = b.get(self.at) == Some(&b'-');
        if negative {
            self.at += 1;
        }
        let mut significand: u64 = 0;
        // Decimal exponent of the digits dropped or after the point (serde_json's arithmetic).
        let mut exponent: i32 = 0;
        let mut overflowed = false;
        match digit(self.at) {
            Some(0) => {
                self.at += 1;
                if digit(self.at).is_some() {
                    return Err(self.syntax());
                }
            }
            Some(_) => {
                while let Some(d) = digit(self.at) {
                    self.at += 1;
                    match significand.checked_mul(10).and_then(|s| s.checked_add(d)) {
                        Some(s) if !overflowed => significand = s,
                        _ => {
                            overflowed = true;
                            exponent = exponent.saturating_add(1);
                        }
                    }
                }
            }
            None => return Err(self.syntax()),
        }
        let mut float = overflowed;
        if b.get(self.at) == Some(&b'.') {
            self.at += 1;
            float = true;
            if digit(self.at).is_none() {
                return Err(self.syntax());
            }
            let mut dropping = false;
            while let Some(d) = digit(self.at) {
                self.at += 1;
                match significand.checked_mul(10).and_then(|s| s.checked_add(d)) {
                    Some(s) if !dropping => {
                        significand = s;
                        exponent -= 1;
                    }
                    _ => dropping = true,
                }
            }
        }
        if let Some(b'e' | b'E') = b.get(self.at) {
            self.at += 1;
            float = true;
            let exp_negative = match b.get(self.at) {
                Some(b'-') => {
                    self.at += 1;
                    true
                }
                Some(b'+') => {
                    self.at += 1;
                    false
                }
                _ => false,
            };
            if digit(self.at).is_none() {
                return Err(self.syntax());
            }
            let mut exp: Option<i32> = Some(0);
            while let Some(d) = digit(self.at) {
                self.at += 1;
                #[allow(clippy::cast_possible_truncation)]
                let d = d as i32;
                exp = exp.and_then(|e| e.checked_mul(10)?.checked_add(d));
            }
            exponent = match exp {
                Some(e) if exp_negative => exponent.saturating_sub(e),
                Some(e) => exponent.saturating_add(e),
                // Past `i32`: infinity (refused) unless zero or negative, then 0.
                None if exp_negative || significand == 0 => i32::MIN,
                None => i32::MAX,
            };
        }
        if float || (negative && (significand == 0 || significand > 1 << 63)) {
            if check_range && out_of_range(significand, exponent) {
                return Err(self.type_error());
            }
            return Ok(Number::Float);
        }
        Ok(Number::Int {
            negative,
            magnitude: significand,
        })
    }

    fn integer(&mut self) -> Result<(bool, u64), JsonError> {
        let at = self.at;
        match self.peek() {
            Some(b'-' | b'0'..=b'9') => match self.number(true)? {
                Number::Int {
                    negative,
                    magnitude,
                } => Ok((negative, magnitude)),
                Number::Float => Err(JsonError::Type(at)),
            },
            _ => Err(self.type_error()),
        }
    }

    /// A whole number from 0 to `u64::MAX`.
    ///
    /// # Errors
    /// When the next value is not one.
    pub fn u64(&mut self) -> Result<u64, JsonError> {
        match self.integer()? {
            (false, n) => Ok(n),
            (true, _) => Err(self.type_error()),
        }
    }

    /// A whole number that fits an `i64`.
    ///
    /// # Errors
    /// When the next value is not one.
    pub fn i64(&mut self) -> Result<i64, JsonError> {
        let (negative, n) = self.integer()?;
        let value = if negative {
            // 1 ..= 2^63 (`integer` made anything else a float).
            Some(0_i64.wrapping_sub_unsigned(n))
        } else {
            i64::try_from(n).ok()
        };
        value.ok_or_else(|| self.type_error())
    }

    /// A whole number that fits `T` (`u64`, `u32`, `u16`, `u8`).
    ///
    /// # Errors
    /// When the next value is not one.
    pub fn whole<T: TryFrom<u64>>(&mut self) -> Result<T, JsonError> {
        let n = self.u64()?;
        T::try_from(n).map_err(|_| self.type_error())
    }

    /// A string, escapes decoded (borrowed from the text when it has none).
    ///
    /// # Errors
    /// When the next value is not a string, or it has a bad escape or a control character.
    pub fn str(&mut self) -> Result<Cow<'a, str>, JsonError> {
        if self.peek() != Some(b'"') {
            return Err(self.type_error());
        }
        self.at += 1;
        let b = self.bytes();
        let mut owned: Option<String> = None;
        let mut run = self.at;
        loop {
            match b.get(self.at) {
                Some(b'"') => {
                    let tail = &self.text[run..self.at];
                    self.at += 1;
                    return Ok(match owned {
                        None => Cow::Borrowed(tail),
                        Some(mut s) => {
                            s.push_str(tail);
                            Cow::Owned(s)
                        }
                    });
                }
                Some(b'\\') => {
                    let before = &self.text[run..self.at];
                    self.at += 1;
                    let c = self.escape()?;
                    let s = owned.get_or_insert_with(String::new);
                    s.push_str(before);
                    s.push(c);
                    run = self.at;
                }
                Some(0..=0x1f) | None => return Err(self.syntax()),
                Some(_) => self.at += 1,
            }
        }
    }

    /// A string, owned.
    ///
    /// # Errors
    /// As [`Reader::str`].
    pub fn string(&mut self) -> Result<String, JsonError> {
        self.str().map(Cow::into_owned)
    }

    fn hex4(&mut self) -> Result<u32, JsonError> {
        let digits = self
            .bytes()
            .get(self.at..self.at + 4)
            .ok_or(self.syntax())?;
        let mut n = 0;
        for &c in digits {
            let d = char::from(c).to_digit(16).ok_or(self.syntax())?;
            n = n * 16 + d;
        }
        self.at += 4;
        Ok(n)
    }

    /// The character of the escape after a `\`; a surrogate must be followed by its pair.
    fn escape(&mut self) -> Result<char, JsonError> {
        let c = *self.bytes().get(self.at).ok_or(self.syntax())?;
        self.at += 1;
        let code = match c {
            b'"' => return Ok('"'),
            b'\\' => return Ok('\\'),
            b'/' => return Ok('/'),
            b'b' => return Ok('\u{8}'),
            b'f' => return Ok('\u{c}'),
            b'n' => return Ok('\n'),
            b'r' => return Ok('\r'),
            b't' => return Ok('\t'),
            b'u' => self.hex4()?,
            _ => return Err(self.syntax()),
        };
        let code = match code {
            0xD800..=0xDBFF => {
                if !self.bytes()[self.at..].starts_with(b"\\u") {
                    return Err(self.syntax());
                }
                self.at += 2;
                let low = self.hex4()?;
                if !(0xDC00..=0xDFFF).contains(&low) {
                    return Err(self.syntax());
                }
                (((code - 0xD800) << 10) | (low - 0xDC00)) + 0x1_0000
            }
            _ => code,
        };
        char::from_u32(code).ok_or(self.syntax())
    }

    /// Skips a string as serde_json skips one it ignores: escapes checked, surrogates not.
    fn skip_str(&mut self) -> Result<(), JsonError> {
        self.at += 1;
        loop {
            match self.bytes().get(self.at) {
                Some(b'"') => {
                    self.at += 1;
                    return Ok(());
                }
                Some(b'\\') => {
                    self.at += 1;
                    match self.bytes().get(self.at) {
                        Some(b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't') => {
                            self.at += 1;
                        }
                        Some(b'u') => {
                            self.at += 1;
                            self.hex4()?;
                        }
                        _ => return Err(self.syntax()),
                    }
                }
                Some(0..=0x1f) | None => return Err(self.syntax()),
                Some(_) => self.at += 1,
            }
        }
    }

    fn skip_key(&mut self, strict: bool) -> Result<(), JsonError> {
        if self.peek() != Some(b'"') {
            return Err(self.syntax());
        }
        if strict {
            self.str()?;
        } else {
            self.skip_str()?;
        }
        self.expect(b':')
    }

    /// Skips one value. Not `strict`: as serde_json skips an unknown field's value (any depth,
    /// strings not decoded). `strict`: as serde_json reads a `serde_json::Value` (surrogates
    /// paired, floats within `f64`, at most the nesting left).
    ///
    /// # Errors
    /// When the next value is not JSON (or, when `strict`, not a `Value` serde_json reads).
    pub fn skip(&mut self, strict: bool) -> Result<(), JsonError> {
        // The open arrays and objects, innermost last.
        let mut open: Vec<u8> = Vec::new();
        loop {
            match self.peek() {
                Some(c @ (b'[' | b'{')) => {
                    self.at += 1;
                    if strict && open.len() + 1 >= usize::from(self.depth) {
                        return Err(self.syntax());
                    }
                    if !self.eat(c + 2) {
                        open.push(c);
                        if c == b'{' {
                            self.skip_key(strict)?;
                        }
                        continue;
                    }
                }
                Some(b'"') if strict => {
                    self.str()?;
                }
                Some(b'"') => self.skip_str()?,
                Some(b'-' | b'0'..=b'9') => {
                    self.number(strict)?;
                }
                Some(b't') => self.word("true")?,
                Some(b'f') => self.word("false")?,
                Some(b'n') => self.word("null")?,
                _ => return Err(self.syntax()),
            }
            // A value is complete: close what it completes, or go on after a comma.
            loop {
                let Some(&c) = open.last() else {
                    return Ok(());
                };
                if self.eat(b',') {
                    if c == b'{' {
                        self.skip_key(strict)?;
                    }
                    break;
                }
                // `]` is `[` + 2, `}` is `{` + 2.
                self.expect(c + 2)?;
                open.pop();
            }
        }
    }

    /// The text of one value, checked as [`Reader::skip`] does when `strict`, without its
    /// insignificant whitespace.
    ///
    /// # Errors
    /// As [`Reader::skip`].
    pub fn raw(&mut self) -> Result<Cow<'a, str>, JsonError> {
        self.peek();
        let start = self.at;
        self.skip(true)?;
        Ok(compact(&self.text[start..self.at]))
    }

    /// Reads any value as serde_json reads a `serde_json::Value`, keeping it only when it is a
    /// string.
    ///
    /// # Errors
    /// As [`Reader::skip`] when `strict`.
    pub fn any_string(&mut self) -> Result<Option<String>, JsonError> {
        if self.peek() == Some(b'"') {
            return self.string().map(Some);
        }
        self.skip(true).map(|()| None)
    }

    /// Reads any value as serde_json reads a `serde_json::Value`, keeping it only when it is a
    /// whole number from 0 to `u64::MAX` (what `Value::as_u64` gives).
    ///
    /// # Errors
    /// As [`Reader::skip`] when `strict`.
    pub fn any_u64(&mut self) -> Result<Option<u64>, JsonError> {
        if let Some(b'-' | b'0'..=b'9') = self.peek() {
            return Ok(match self.number(true)? {
                Number::Int {
                    negative: false,
                    magnitude,
                } => Some(magnitude),
                _ => None,
            });
        }
        self.skip(true).map(|()| None)
    }

    fn enter(&mut self) -> Result<(), JsonError> {
        self.at += 1;
        self.depth -= 1;
        if self.depth == 0 {
            return Err(self.syntax());
        }
        Ok(())
    }

    /// Reads an array (`open` is `[`) or an object (`{`), calling `item` for each element.
    fn sequence(
        &mut self,
        open: u8,
        mut item: impl FnMut(&mut Self) -> Result<(), JsonError>,
    ) -> Result<(), JsonError> {
        if self.peek() != Some(open) {
            return Err(self.type_error());
        }
        self.enter()?;
        // `]` is `[` + 2, `}` is `{` + 2.
        if !self.eat(open + 2) {
            loop {
                item(self)?;
                if !self.eat(b',') {
                    self.expect(open + 2)?;
                    break;
                }
            }
        }
        self.depth += 1;
        Ok(())
    }

    /// Reads an object: `field` gets each key and either reads its value and returns `true`, or
    /// returns `false` and the value is skipped (an unknown field).
    ///
    /// # Errors
    /// When the next value is not an object, or `field` fails.
    pub fn object(
        &mut self,
        mut field: impl FnMut(&mut Self, &str) -> Result<bool, JsonError>,
    ) -> Result<(), JsonError> {
        self.sequence(b'{', |r| {
            if r.peek() != Some(b'"') {
                return Err(r.syntax());
            }
            let key = r.str()?;
            r.expect(b':')?;
            if !field(r, &key)? {
                r.skip(false)?;
            }
            Ok(())
        })
    }

    /// Reads an array, calling `item` for each element.
    ///
    /// # Errors
    /// When the next value is not an array, or `item` fails.
    pub fn array(
        &mut self,
        item: impl FnMut(&mut Self) -> Result<(), JsonError>,
    ) -> Result<(), JsonError> {
        self.sequence(b'[', item)
    }

    /// Reads a field's value into `slot`.
    ///
    /// # Errors
    /// [`JsonError::Duplicate`] when the field was given already, else as `T::read`.
    pub fn take<T: FromJson>(&mut self, slot: &mut Option<T>) -> Result<bool, JsonError> {
        if slot.is_some() {
            return Err(JsonError::Duplicate(self.at));
        }
        *slot = Some(T::read(self)?);
        Ok(true)
    }
}

/// `text` without whitespace outside its strings.
fn compact(text: &str) -> Cow<'_, str> {
    let (mut in_string, mut escaped) = (false, false);
    let mut out = String::new();
    let mut from = 0;
    for (i, c) in text.bytes().enumerate() {
        if in_string {
            if escaped {
                escaped = false;
            } else if c == b'\\' {
                escaped = true;
            } else if c == b'"' {
                in_string = false;
            }
        } else if c == b'"' {
            in_string = true;
        } else if matches!(c, b' ' | b'\n' | b'\r' | b'\t') {
            out.push_str(&text[from..i]);
            from = i + 1;
        }
    }
    if from == 0 {
        return Cow::Borrowed(text);
    }
    out.push_str(&text[from..]);
    Cow::Owned(out)
}

/// Builds compact JSON text as serde_json writes it.
#[derive(Debug, Default)]
pub struct Writer {
    out: String,
    /// Whether a value was just completed, so the next one needs a comma.
    comma: bool,
}

impl Writer {
    /// The text written.
    #[must_use]
    pub fn finish(self) -> String {
        self.out
    }

    fn sep(&mut self) {
        if self.comma {
            self.out.push(',');
        }
    }

    /// Writes an object whose fields `fields` writes.
    pub fn object(&mut self, fields: impl FnOnce(&mut Self)) {
        self.sep();
        self.out.push('{');
        self.comma = false;
        fields(self);
        self.out.push('}');
        self.comma = true;
    }

    /// Writes an array of `items`.
    pub fn array<T: ToJson>(&mut self, items: &[T]) {
        self.sep();
        self.out.push('[');
        self.comma = false;
        for item in items {
            item.write(self);
        }
        self.out.push(']');
        self.comma = true;
    }

    /// Writes a field: `name` (plain ASCII, no escapes needed) and `value`.
    pub fn field<T: ToJson + ?Sized>(&mut self, name: &str, value: &T) {
        self.sep();
        self.out.push('"');
        self.out.push_str(name);
        self.out.push_str("\":");
        self.comma = false;
        value.write(self);
    }

    /// Writes text that is already one compact JSON value.
    pub fn raw(&mut self, json: &str) {
        self.sep();
        self.out.push_str(json);
        self.comma = true;
    }

    /// Writes a string, escaped as serde_json escapes it.
    pub fn string(&mut self, s: &str) {
        const HEX: &[u8; 16] = b"0123456789abcdef";
        self.sep();
        self.out.push('"');
        let mut from = 0;
        for (i, b) in s.bytes().enumerate() {
            let escape = match b {
                b'"' => "\\\"",
                b'\\' => "\\\\",
                b'\n' => "\\n",
                b'\r' => "\\r",
                b'\t' => "\\t",
                0x08 => "\\b",
                0x0c => "\\f",
                0..=0x1f => "",
                _ => continue,
            };
            self.out.push_str(&s[from..i]);
            if escape.is_empty() {
                self.out.push_str("\\u00");
                self.out.push(char::from(HEX[usize::from(b >> 4)]));
                self.out.push(char::from(HEX[usize::from(b & 15)]));
            } else {
                self.out.push_str(escape);
            }
            from = i + 1;
        }
        self.out.push_str(&s[from..]);
        self.out.push('"');
        self.comma = true;
    }

    /// Writes a whole number.
    pub fn int(&mut self, negative: bool, mut magnitude: u64) {
        self.sep();
        if negative {
            self.out.push('-');
        }
        let mut digits = [0u8; 20];
        let mut i = digits.len();
        loop {
            i -= 1;
            #[allow(clippy::cast_possible_truncation)]
            let d = (magnitude % 10) as u8;
            digits[i] = b'0' + d;
            magnitude /= 10;
            if magnitude == 0 {
                break;
            }
        }
        for &d in &digits[i..] {
            self.out.push(char::from(d));
        }
        self.comma = true;
    }
}

impl ToJson for str {
    fn write(&self, w: &mut Writer) {
        w.string(self);
    }
}

impl ToJson for String {
    fn write(&self, w: &mut Writer) {
        w.string(self);
    }
}

impl ToJson for bool {
    fn write(&self, w: &mut Writer) {
        w.raw(if *self { "true" } else { "false" });
    }
}

/// Unsigned integers: written as they are, read when in range.
macro_rules! unsigned {
    ($($ty:ty),+) => {$(
        impl ToJson for $ty {
            fn write(&self, w: &mut Writer) {
                w.int(false, u64::from(*self));
            }
        }

        impl FromJson for $ty {
            fn read(r: &mut Reader<'_>) -> Result<Self, JsonError> {
                r.whole()
            }
        }
    )+};
}

unsigned!(u64, u32, u16, u8);

impl ToJson for i64 {
    fn write(&self, w: &mut Writer) {
        w.int(*self < 0, self.unsigned_abs());
    }
}

impl<T: ToJson> ToJson for Option<T> {
    fn write(&self, w: &mut Writer) {
        match self {
            Some(v) => v.write(w),
            None => w.raw("null"),
        }
    }
}

impl<T: ToJson> ToJson for Vec<T> {
    fn write(&self, w: &mut Writer) {
        w.array(self);
    }
}

impl<T: ToJson + ?Sized> ToJson for &T {
    fn write(&self, w: &mut Writer) {
        (**self).write(w);
    }
}

impl FromJson for String {
    fn read(r: &mut Reader<'_>) -> Result<Self, JsonError> {
        r.string()
    }
}

impl FromJson for bool {
    fn read(r: &mut Reader<'_>) -> Result<Self, JsonError> {
        r.bool()
    }
}

impl FromJson for i64 {
    fn read(r: &mut Reader<'_>) -> Result<Self, JsonError> {
        r.i64()
    }
}

impl<T: FromJson> FromJson for Option<T> {
    fn read(r: &mut Reader<'_>) -> Result<Self, JsonError> {
        if r.null()? {
            Ok(None)
        } else {
            T::read(r).map(Some)
        }
    }
}

impl<T: FromJson> FromJson for Vec<T> {
    fn read(r: &mut Reader<'_>) -> Result<Self, JsonError> {
        let mut out = Vec::new();
        r.array(|r| {
            out.push(T::read(r)?);
            Ok(())
        })?;
        Ok(out)
    }
}

/// A value a `skip_empty` field leaves out: an empty list, `false` (serde's
/// `skip_serializing_if = "Vec::is_empty"` and `"std::ops::Not::not"`).
pub trait Empty {
    /// Whether the value is left out.
    fn is_empty_value(&self) -> bool;
}

impl<T> Empty for Vec<T> {
    fn is_empty_value(&self) -> bool {
        self.is_empty()
    }
}

impl Empty for bool {
    fn is_empty_value(&self) -> bool {
        !*self
    }
}

/// Implements [`ToJson`] for a struct (`write`), or [`ToJson`] and [`FromJson`] (`read_write`),
/// as serde's derive does: the fields in order, each with how it is written and read —
/// - `req`: always written; required;
/// - `opt`: always written (`null` for `None`); `None` when missing;
/// - `default`: always written; the default when missing (serde's `#[serde(default)]`);
/// - `skip_none`: written when `Some`; `None` when missing;
/// - `skip_empty`: written unless empty (an empty list, `false`, see [`Empty`]); the default
///   when missing.
///
/// A reader refuses unknown fields with `deny` (serde's `deny_unknown_fields`) and skips them
/// with `skip`. A written field may be renamed: `type_uri as "type": req`.
#[macro_export]
macro_rules! json_object {
    (write $ty:ty { $($field:ident $(as $name:literal)?: $mode:ident),+ $(,)? }) => {
        impl $crate::json::ToJson for $ty {
            fn write(&self, w: &mut $crate::json::Writer) {
                w.object(|w| {
                    $($crate::json_object!(
                        @write w, self.$field, $crate::json_object!(@name $field $($name)?), $mode
                    );)+
                });
            }
        }
    };
    (read_write $ty:ty, $unknown:ident { $($field:ident: $mode:ident),+ $(,)? }) => {
        $crate::json_object!(write $ty { $($field: $mode),+ });

        impl $crate::json::FromJson for $ty {
            fn read(
                r: &mut $crate::json::Reader<'_>,
            ) -> ::core::result::Result<Self, $crate::json::JsonError> {
                $(let mut $field = None;)+
                r.object(|r, key| match key {
                    $(stringify!($field) => r.take(&mut $field),)+
                    _ => $crate::json_object!(@unknown r, $unknown),
                })?;
                Ok(Self {
                    $($field: $crate::json_object!(@read $field, $mode),)+
                })
            }
        }
    };
    (@name $field:ident) => { stringify!($field) };
    (@name $field:ident $name:literal) => { $name };
    (@write $w:ident, $value:expr, $name:expr, skip_none) => {
        if let Some(v) = &$value {
            $w.field($name, v);
        }
    };
    (@write $w:ident, $value:expr, $name:expr, skip_empty) => {
        if !$crate::json::Empty::is_empty_value(&$value) {
            $w.field($name, &$value);
        }
    };
    (@write $w:ident, $value:expr, $name:expr, $mode:ident) => {
        $w.field($name, &$value)
    };
    (@read $field:ident, req) => { $crate::json::need($field, stringify!($field))? };
    (@read $field:ident, opt) => { $field.flatten() };
    (@read $field:ident, skip_none) => { $field.flatten() };
    (@read $field:ident, default) => { $field.unwrap_or_default() };
    (@read $field:ident, skip_empty) => { $field.unwrap_or_default() };
    (@unknown $r:ident, deny) => { Err($r.unknown()) };
    (@unknown $r:ident, skip) => { Ok(false) };
}

/// A JSON object kept as its compact text: an edge entry's and a verdict's `meta`, which the
/// edge copies from the KV entry into its answer without building a tree. The text is kept as
/// given, whitespace aside; the control plane writes it as serde_json does (keys sorted, one
/// each), so what the edge answers is what it answered when it parsed `meta` into a map.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JsonObject(String);

impl JsonObject {
    /// Reads one JSON object.
    ///
    /// # Errors
    /// When `text` is not one JSON object.
    pub fn parse(text: &str) -> Result<Self, JsonError> {
        from_str(text)
    }

    /// The compact text.
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The object of a serde_json map (its text as serde_json writes it).
    #[must_use]
    pub fn from_map(map: &serde_json::Map<String, serde_json::Value>) -> Self {
        Self(serde_json::to_string(map).unwrap_or_else(|_| "{}".to_owned()))
    }

    /// The object as a serde_json map.
    #[must_use]
    pub fn to_map(&self) -> serde_json::Map<String, serde_json::Value> {
        serde_json::from_str(&self.0).unwrap_or_default()
    }
}

impl FromJson for JsonObject {
    fn read(r: &mut Reader<'_>) -> Result<Self, JsonError> {
        if r.peek() != Some(b'{') {
            return Err(r.type_error());
        }
        r.raw().map(|text| Self(text.into_owned()))
    }
}

impl ToJson for JsonObject {
    fn write(&self, w: &mut Writer) {
        w.raw(&self.0);
    }
}

impl serde::Serialize for JsonObject {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serde::Serialize::serialize(&self.to_map(), serializer)
    }
}

impl<'de> serde::Deserialize<'de> for JsonObject {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        <serde_json::Map<String, serde_json::Value> as serde::Deserialize>::deserialize(
            deserializer,
        )
        .map(|m| Self::from_map(&m))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// What serde_json makes of `text` as a `Value`, and what the reader makes of it skipped
    /// strictly: both accept it or both refuse it.
    fn agree_on_value(text: &str) {
        let serde = serde_json::from_str::<serde_json::Value>(text).is_ok();
        let mut r = Reader::new(text);
        let ours = r.skip(true).and_then(|()| r.end()).is_ok();
        assert_eq!(ours, serde, "{text:?}");
    }

    #[test]
    fn values_are_accepted_and_refused_as_serde_json_does() {
        for text in [
            "0",
            "-0",
            "01",
            "-",
            "1.",
            "1.5",
            ".5",
            "1e5",
            "1E+5",
            "1e-5",
            "1e",
            "1e+",
            "-01",
            "18446744073709551615",
            "18446744073709551616",
            "-9223372036854775808",
            "-9223372036854775809",
            "1e308",
            "2e308",
            "1.7976931348623157e308",
            "1.7976931348623159e308",
            "17976931348623157e292",
            "0e99999999999",
            "1e99999999999",
            "1e-99999999999",
            "123456789012345678901234567890e280",
            "true",
            "tru",
            "nul",
            "null",
            " [ 1 , 2 ] ",
            "[1,]",
            "[,1]",
            "{}",
            "{\"a\":1,}",
            "{\"a\" 1}",
            "{1:2}",
            "\"\\ud800\"",
            "\"\\ud800\\udc00\"",
            "\"\\udc00\"",
            "\"\\u00e9\\n\"",
            "\"\\x\"",
            "\"a\u{1}\"",
            "\"\\u12\"",
            "[1] 2",
            "",
        ] {
            agree_on_value(text);
        }
        agree_on_value(&format!("{}1{}", "[".repeat(127), "]".repeat(127)));
        agree_on_value(&format!("{}1{}", "[".repeat(128), "]".repeat(128)));
        agree_on_value(&format!("[1{}]", "0".repeat(400)));
        agree_on_value(&format!("[1.{}e310]", "0".repeat(400)));
    }

    #[test]
    fn a_skipped_field_is_checked_as_serde_json_ignores_it() {
        #[derive(serde::Deserialize)]
        struct Empty {}
        for text in [
            r#"{"x":"\ud800"}"#,
            r#"{"x":1e999}"#,
            r#"{"x":[[[[]]]],"y":{"z":null}}"#,
            r#"{"x":01}"#,
            r#"{"x":"\q"}"#,
            r#"{"x":[1 2]}"#,
        ] {
            let serde = serde_json::from_str::<Empty>(text).is_ok();
            let ours = from_str::<Nothing>(text).is_ok();
            assert_eq!(ours, serde, "{text}");
        }
        let deep = format!(r#"{{"x":{}{}}}"#, "[".repeat(300), "]".repeat(300));
        assert!(serde_json::from_str::<Empty>(&deep).is_ok());
        assert!(from_str::<Nothing>(&deep).is_ok());
    }

    /// An object with no known field.
    struct Nothing;

    impl FromJson for Nothing {
        fn read(r: &mut Reader<'_>) -> Result<Self, JsonError> {
            r.object(|_, _| Ok(false)).map(|()| Nothing)
        }
    }

    #[test]
    fn integers_are_read_only_where_serde_reads_them() {
        assert_eq!(from_str::<u64>("18446744073709551615"), Ok(u64::MAX));
        assert!(from_str::<u64>("18446744073709551616").is_err());
        assert_eq!(from_str::<i64>("-9223372036854775808"), Ok(i64::MIN));
        assert!(from_str::<i64>("9223372036854775808").is_err());
        for bad in ["-0", "1.0", "1e2", "-1", "\"1\"", "null"] {
            assert!(from_str::<u64>(bad).is_err(), "{bad}");
            assert!(
                serde_json::from_str::<u64>(bad).is_err(),
                "serde also refuses {bad}"
            );
        }
        assert!(from_str::<i64>("-0").is_err() && serde_json::from_str::<i64>("-0").is_err());
        assert_eq!(from_str::<u32>("4294967295"), Ok(u32::MAX));
        assert!(from_str::<u32>("4294967296").is_err());
    }

    #[test]
    fn meta_keeps_its_text_without_whitespace() {
        let o = JsonObject::parse("{ \"a\" : [1, \"b c\"] ,\n\"d\":{}}").unwrap();
        assert_eq!(o.as_str(), r#"{"a":[1,"b c"],"d":{}}"#);
        assert!(JsonObject::parse("[1]").is_err());
    }

    fn json_value() -> impl Strategy<Value = serde_json::Value> {
        let leaf = prop_oneof![
            Just(serde_json::Value::Null),
            any::<bool>().prop_map(serde_json::Value::from),
            any::<i64>().prop_map(serde_json::Value::from),
            any::<u64>().prop_map(serde_json::Value::from),
            any::<f64>()
                .prop_filter("finite", |f| f.is_finite())
                .prop_map(serde_json::Value::from),
            any::<String>().prop_map(serde_json::Value::from),
        ];
        leaf.prop_recursive(4, 32, 6, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..6).prop_map(serde_json::Value::from),
                prop::collection::btree_map(any::<String>(), inner, 0..6)
                    .prop_map(|m| serde_json::Value::Object(m.into_iter().collect())),
            ]
        })
    }

    proptest! {
        #[test]
        fn strings_are_written_and_read_as_serde_json_does(s in any::<String>()) {
            let ours = to_string(&s);
            prop_assert_eq!(&ours, &serde_json::to_string(&s).unwrap());
            prop_assert_eq!(from_str::<String>(&ours), Ok(s));
        }

        #[test]
        fn numbers_are_written_as_serde_json_does(n in any::<i64>(), u in any::<u64>()) {
            prop_assert_eq!(to_string(&n), serde_json::to_string(&n).unwrap());
            prop_assert_eq!(to_string(&u), serde_json::to_string(&u).unwrap());
            prop_assert_eq!(from_str::<i64>(&n.to_string()), Ok(n));
            prop_assert_eq!(from_str::<u64>(&u.to_string()), Ok(u));
        }

        #[test]
        fn any_object_keeps_serde_jsons_text(v in json_value()) {
            let text = serde_json::to_string(&v).unwrap();
            agree_on_value(&text);
            let pretty = serde_json::to_string_pretty(&v).unwrap();
            agree_on_value(&pretty);
            if let serde_json::Value::Object(map) = &v {
                let o = JsonObject::parse(&pretty).unwrap();
                prop_assert_eq!(o.as_str(), text.as_str());
                prop_assert_eq!(JsonObject::from_map(map), o);
            }
        }

        #[test]
        fn any_text_is_refused_or_accepted_as_serde_json_does(text in "[ -~]{0,24}") {
            agree_on_value(&text);
        }
    }
}
