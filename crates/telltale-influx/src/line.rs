//! Line protocol text: escaping, and a builder for one line.
//!
//! ```text
//! measurement,tag_key=tag_value field_key=1.5,count=3i,text="s" 1714471200000
//! ```
//!
//! Escaping follows what every server we target parses the same way (InfluxDB 1.x and
//! 2.x share the Go parser, InfluxDB 3 has a Rust one, VictoriaMetrics its own):
//!
//! - measurement: `,` and space are escaped with a backslash;
//! - tag keys, tag values, field keys: `,`, `=` and space are escaped;
//! - string field values: `"` and `\` are escaped, inside double quotes;
//! - control characters (newline, carriage return, tab, ...) become a space everywhere:
//!   line protocol has no escape for a newline outside a string, and 2.x rejects one
//!   inside a string too;
//! - a backslash in a name or tag value is written as is when an ordinary character
//!   follows it (all parsers keep `a\b` as `a\b`). A backslash at the end, or before
//!   `\`, `,`, `=` or space, has no portable spelling: the Go parser keeps `\\` as two
//!   backslashes and rejects a trailing one, while 3.x and VictoriaMetrics read `\\` as
//!   one. Such a backslash is written as `/`, so every server stores the same text.
//!
//! Empty tag values are left out (line protocol cannot carry them), as are non-finite
//! floats; a line left without fields is not written at all.

use std::fmt::Write as _;

/// Characters escaped with a backslash in a measurement name.
const MEASUREMENT_SPECIALS: &[char] = &[',', ' '];
/// Characters escaped with a backslash in tag keys, tag values and field keys.
const KEY_SPECIALS: &[char] = &[',', '=', ' '];

/// Replaces characters line protocol cannot carry (see the module docs).
fn clean(c: char) -> char {
    if c.is_control() { ' ' } else { c }
}

/// Appends `s` escaped for a measurement (`specials` = [`MEASUREMENT_SPECIALS`]) or a
/// tag key/value or field key ([`KEY_SPECIALS`]).
fn push_escaped(out: &mut String, s: &str, specials: &[char]) {
    let mut chars = s.chars().map(clean).peekable();
    while let Some(c) = chars.next() {
        if c == '\\' {
            let ordinary_next =
                matches!(chars.peek(), Some(&n) if n != '\\' && !KEY_SPECIALS.contains(&n));
            out.push(if ordinary_next { '\\' } else { '/' });
        } else if specials.contains(&c) {
            out.push('\\');
            out.push(c);
        } else {
            out.push(c);
        }
    }
}

/// Appends a string field value, quotes included.
fn push_string_value(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars().map(clean) {
        if c == '"' || c == '\\' {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('"');
}

/// Builds one line into a `String`. Call [`tag`](Self::tag) for every tag (in ascending
/// key order: InfluxDB sorts them itself otherwise, at a cost), then the `field_*`
/// methods, then [`finish`](Self::finish) with the timestamp.
///
/// ```
/// let mut out = String::new();
/// telltale_influx::LineBuilder::new(&mut out, "service_rollup")
///     .tag("service", "auth service")
///     .field_u64("count", 3)
///     .field_f64("error_rate", 0.5)
///     .finish(1_714_471_200_000);
/// assert_eq!(out, "service_rollup,service=auth\\ service count=3i,error_rate=0.5 1714471200000\n");
/// ```
#[derive(Debug)]
pub struct LineBuilder<'a> {
    out: &'a mut String,
    /// Length of `out` before this line, to take the line back if it gets no field.
    start: usize,
    fields: usize,
}

impl<'a> LineBuilder<'a> {
    /// Starts a line for `measurement`, which must be non-empty and not start with `#`
    /// (a comment line): measurement names are constants of this crate.
    pub fn new(out: &'a mut String, measurement: &str) -> Self {
        debug_assert!(
            !measurement.is_empty() && !measurement.starts_with('#'),
            "invalid measurement name {measurement:?}"
        );
        let start = out.len();
        push_escaped(out, measurement, MEASUREMENT_SPECIALS);
        Self {
            out,
            start,
            fields: 0,
        }
    }

    /// Adds a tag. Left out when the key or the value is empty.
    pub fn tag(self, key: &str, value: &str) -> Self {
        debug_assert_eq!(self.fields, 0, "tags must come before fields");
        if key.is_empty() || value.is_empty() {
            return self;
        }
        self.out.push(',');
        push_escaped(self.out, key, KEY_SPECIALS);
        self.out.push('=');
        push_escaped(self.out, value, KEY_SPECIALS);
        self
    }

    fn field_key(&mut self, key: &str) {
        self.out.push(if self.fields == 0 { ' ' } else { ',' });
        push_escaped(self.out, key, KEY_SPECIALS);
        self.out.push('=');
        self.fields += 1;
    }

    /// Adds a float field; left out when `value` is NaN or infinite (line protocol has
    /// no spelling for them).
    pub fn field_f64(mut self, key: &str, value: f64) -> Self {
        if value.is_finite() && !key.is_empty() {
            self.field_key(key);
            // `Display` of f64 is the shortest text that parses back to the same value
            // and never uses an exponent, which every parser accepts.
            let _ = write!(self.out, "{value}");
        }
        self
    }

    /// Adds an optional float field; left out when `None` (a probe without a reply).
    pub fn field_opt_f64(self, key: &str, value: Option<f64>) -> Self {
        match value {
            Some(v) => self.field_f64(key, v),
            None => self,
        }
    }

    /// Adds an integer field (`123i`).
    pub fn field_i64(mut self, key: &str, value: i64) -> Self {
        if !key.is_empty() {
            self.field_key(key);
            let _ = write!(self.out, "{value}i");
        }
        self
    }

    /// Adds a count as an integer field. Written as a signed integer (`i`), because
    /// InfluxDB 1.x has no unsigned type; values above `i64::MAX` are clamped.
    pub fn field_u64(self, key: &str, value: u64) -> Self {
        self.field_i64(key, i64::try_from(value).unwrap_or(i64::MAX))
    }

    /// Adds a string field.
    pub fn field_str(mut self, key: &str, value: &str) -> Self {
        if !key.is_empty() {
            self.field_key(key);
            push_string_value(self.out, value);
        }
        self
    }

    /// Adds an optional string field; left out when `None`.
    pub fn field_opt_str(self, key: &str, value: Option<&str>) -> Self {
        match value {
            Some(v) => self.field_str(key, v),
            None => self,
        }
    }

    /// Adds an optional integer field; left out when `None`.
    pub fn field_opt_i64(self, key: &str, value: Option<i64>) -> Self {
        match value {
            Some(v) => self.field_i64(key, v),
            None => self,
        }
    }

    /// Ends the line with its timestamp (in the precision the sink sends: milliseconds)
    /// and a newline. Returns whether a line was written: one without fields is removed.
    pub fn finish(self, timestamp: i64) -> bool {
        if self.fields == 0 {
            self.out.truncate(self.start);
            return false;
        }
        let _ = writeln!(self.out, " {timestamp}");
        true
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use proptest::prelude::*;

    use super::*;

    /// A field value as read back.
    #[derive(Debug, Clone, PartialEq)]
    pub(crate) enum Value {
        Float(f64),
        Int(i64),
        Str(String),
    }

    /// One parsed line.
    #[derive(Debug, Clone, PartialEq)]
    pub(crate) struct Parsed {
        pub measurement: String,
        pub tags: Vec<(String, String)>,
        pub fields: Vec<(String, Value)>,
        pub timestamp: i64,
    }

    /// A small line-protocol parser with the semantics shared by the Go parser (1.x,
    /// 2.x), InfluxDB 3 and VictoriaMetrics for the subset `LineBuilder` writes: a
    /// backslash escapes a following special character and is literal otherwise.
    /// Written independently of the encoder: it scans bytes, the encoder maps chars.
    pub(crate) fn parse_line(line: &str) -> Result<Parsed, String> {
        let b = line.as_bytes();
        let mut i = 0;

        // Reads an escaped token up to one of `stops`; unescapes `\X` for X in `specials`.
        fn token(b: &[u8], i: &mut usize, stops: &[u8], specials: &[u8]) -> Result<String, String> {
            let mut out = Vec::new();
            while *i < b.len() {
                let c = b[*i];
                if c == b'\\' {
                    match b.get(*i + 1) {
                        Some(&n) if specials.contains(&n) => {
                            out.push(n);
                            *i += 2;
                        }
                        Some(&b'\\') => return Err(format!("ambiguous `\\\\` at {i}")),
                        Some(_) => {
                            out.push(c);
                            *i += 1;
                        }
                        None => return Err("trailing backslash".into()),
                    }
                    continue;
                }
                if stops.contains(&c) {
                    break;
                }
                if c == b'\n' || c == b'\r' {
                    return Err(format!("raw line break at {i}"));
                }
                out.push(c);
                *i += 1;
            }
            String::from_utf8(out).map_err(|e| e.to_string())
        }

        let measurement = token(b, &mut i, b", ", b", ")?;
        if measurement.is_empty() {
            return Err("empty measurement".into());
        }
        let mut tags = Vec::new();
        while b.get(i) == Some(&b',') {
            i += 1;
            let k = token(b, &mut i, b"=, ", b",= ")?;
            if b.get(i) != Some(&b'=') {
                return Err(format!("tag without `=` at {i}"));
            }
            i += 1;
            let v = token(b, &mut i, b", ", b",= ")?;
            if k.is_empty() || v.is_empty() {
                return Err("empty tag key or value".into());
            }
            tags.push((k, v));
        }
        if b.get(i) != Some(&b' ') {
            return Err(format!("expected a space before the fields at {i}"));
        }
        i += 1;
        let mut fields = Vec::new();
        loop {
            let k = token(b, &mut i, b"=, ", b",= ")?;
            if b.get(i) != Some(&b'=') || k.is_empty() {
                return Err(format!("bad field key at {i}"));
            }
            i += 1;
            let value = if b.get(i) == Some(&b'"') {
                i += 1;
                let mut s = Vec::new();
                loop {
                    match b.get(i) {
                        None => return Err("unterminated string".into()),
                        Some(b'"') => {
                            i += 1;
                            break;
                        }
                        Some(b'\\') => match b.get(i + 1) {
                            Some(&n @ (b'"' | b'\\')) => {
                                s.push(n);
                                i += 2;
                            }
                            _ => return Err(format!("lone backslash in a string at {i}")),
                        },
                        Some(&c) => {
                            s.push(c);
                            i += 1;
                        }
                    }
                }
                Value::Str(String::from_utf8(s).map_err(|e| e.to_string())?)
            } else {
                let start = i;
                while i < b.len() && b[i] != b',' && b[i] != b' ' {
                    i += 1;
                }
                let text = &line[start..i];
                if let Some(int) = text.strip_suffix('i') {
                    Value::Int(int.parse().map_err(|e| format!("{text}: {e}"))?)
                } else {
                    Value::Float(text.parse().map_err(|e| format!("{text}: {e}"))?)
                }
            };
            fields.push((k, value));
            match b.get(i) {
                Some(b',') => i += 1,
                Some(b' ') => break,
                _ => return Err(format!("expected `,` or a space after a field at {i}")),
            }
        }
        i += 1;
        let ts = line[i..]
            .strip_suffix('\n')
            .ok_or("no newline at the end")?;
        let timestamp = ts.parse().map_err(|e| format!("timestamp {ts:?}: {e}"))?;
        Ok(Parsed {
            measurement,
            tags,
            fields,
            timestamp,
        })
    }

    /// What a name or tag value reads back as (the module docs' rules, restated).
    pub(crate) fn expected_name(s: &str) -> String {
        let cleaned: Vec<char> = s
            .chars()
            .map(|c| if c.is_control() { ' ' } else { c })
            .collect();
        (0..cleaned.len())
            .map(|i| match (cleaned[i], cleaned.get(i + 1)) {
                ('\\', None | Some('\\' | ',' | '=' | ' ')) => '/',
                (c, _) => c,
            })
            .collect()
    }

    /// What a string field value reads back as.
    pub(crate) fn expected_string(s: &str) -> String {
        s.chars()
            .map(|c| if c.is_control() { ' ' } else { c })
            .collect()
    }

    /// Text biased towards the characters that need care.
    fn awkward() -> impl Strategy<Value = String> {
        proptest::collection::vec(
            prop_oneof![
                4 => proptest::char::range('a', 'z'),
                1 => Just(','), 1 => Just(' '), 1 => Just('='), 1 => Just('"'),
                1 => Just('\\'), 1 => Just('\n'), 1 => Just('\r'), 1 => Just('\t'),
                1 => Just('#'), 1 => Just('é'), 1 => Just('\u{1F600}'),
                1 => any::<char>(),
            ],
            0..12,
        )
        .prop_map(|v| v.into_iter().collect())
    }

    #[derive(Debug, Clone)]
    enum FieldIn {
        F(f64),
        I(i64),
        S(String),
    }

    fn field_in() -> impl Strategy<Value = FieldIn> {
        prop_oneof![
            any::<f64>().prop_map(FieldIn::F),
            any::<i64>().prop_map(FieldIn::I),
            awkward().prop_map(FieldIn::S),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2_000))]

        #[test]
        fn every_line_round_trips_through_the_parser(
            measurement in awkward().prop_filter("a measurement", |m| {
                let e = expected_name(m);
                !e.is_empty() && !e.starts_with('#')
            }),
            tags in proptest::collection::vec((awkward(), awkward()), 0..4),
            fields in proptest::collection::vec((awkward(), field_in()), 0..5),
            timestamp in any::<i64>(),
        ) {
            let mut out = String::from("previous line\n");
            let mut b = LineBuilder::new(&mut out, &measurement);
            for (k, v) in &tags {
                b = b.tag(k, v);
            }
            for (k, f) in &fields {
                b = match f {
                    FieldIn::F(x) => b.field_f64(k, *x),
                    FieldIn::I(x) => b.field_i64(k, *x),
                    FieldIn::S(x) => b.field_str(k, x),
                };
            }
            let written = b.finish(timestamp);

            let want_tags: Vec<(String, String)> = tags
                .iter()
                .filter(|(k, v)| !k.is_empty() && !v.is_empty())
                .map(|(k, v)| (expected_name(k), expected_name(v)))
                .collect();
            let want_fields: Vec<(String, Value)> = fields
                .iter()
                .filter(|(k, f)| !k.is_empty() && !matches!(f, FieldIn::F(x) if !x.is_finite()))
                .map(|(k, f)| {
                    let v = match f {
                        FieldIn::F(x) => Value::Float(*x),
                        FieldIn::I(x) => Value::Int(*x),
                        FieldIn::S(s) => Value::Str(expected_string(s)),
                    };
                    (expected_name(k), v)
                })
                .collect();

            prop_assert_eq!(written, !want_fields.is_empty());
            let line = out.strip_prefix("previous line\n").unwrap();
            if !written {
                prop_assert_eq!(line, "", "a line without fields is taken back");
                return Ok(());
            }
            prop_assert_eq!(line.matches('\n').count(), 1, "one line: {:?}", line);
            let parsed = parse_line(line).map_err(|e| TestCaseError::fail(format!("{e}: {line:?}")))?;
            prop_assert_eq!(parsed.measurement, expected_name(&measurement));
            prop_assert_eq!(parsed.tags, want_tags);
            prop_assert_eq!(parsed.fields, want_fields);
            prop_assert_eq!(parsed.timestamp, timestamp);
        }

        #[test]
        fn names_never_end_in_or_double_a_backslash(s in awkward()) {
            let mut out = String::new();
            push_escaped(&mut out, &s, KEY_SPECIALS);
            prop_assert!(!out.ends_with('\\'));
            prop_assert!(!out.contains("\\\\"));
            prop_assert!(!out.contains('\n') && !out.contains('\r'));
        }
    }

    #[test]
    fn awkward_cases_by_hand() {
        let mut out = String::new();
        LineBuilder::new(&mut out, "m m,x")
            .tag("k=1", "a,b c=d")
            .tag("path", r"C:\temp\")
            .tag("win", r"a\b")
            .tag("empty", "")
            .field_str("msg", "say \"hi\"\n\\o/")
            .field_f64("nan", f64::NAN)
            .field_f64("tiny", 1e-7)
            .field_u64("huge", u64::MAX)
            .finish(-1);
        assert_eq!(
            out,
            "m\\ m\\,x,k\\=1=a\\,b\\ c\\=d,path=C:\\temp/,win=a\\b \
             msg=\"say \\\"hi\\\" \\\\o/\",tiny=0.0000001,huge=9223372036854775807i -1\n"
        );
    }

    #[test]
    fn a_line_without_fields_is_not_written() {
        let mut out = String::from("keep\n");
        let written = LineBuilder::new(&mut out, "m")
            .tag("a", "b")
            .field_f64("x", f64::INFINITY)
            .finish(1);
        assert!(!written);
        assert_eq!(out, "keep\n");
    }
}
