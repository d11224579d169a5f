//! Allocation-free writers for the hot path: integers, fixed-point latencies, hex trace ids
//! and RFC 3339 timestamps with milliseconds (the date-time part cached per second).

use telltale_core::event::MICROS_PER_SEC;

/// Appends the decimal digits of `n`.
pub(crate) fn push_u64(out: &mut Vec<u8>, mut n: u64) {
    let mut buf = [0u8; 20];
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(&buf[i..]);
}

/// Appends a non-negative number rounded to 3 decimals, with trailing zeros trimmed but at
/// least one decimal kept: `41.237`, `41.2`, `41.0`. Negative and non-finite values are
/// written as `0.0`.
pub(crate) fn push_fixed3(out: &mut Vec<u8>, x: f64) {
    let m = if x.is_finite() && x > 0.0 {
        (x * 1000.0).round() as u64
    } else {
        0
    };
    push_u64(out, m / 1000);
    out.push(b'.');
    let frac = m % 1000;
    let digits = [
        b'0' + (frac / 100) as u8,
        b'0' + (frac / 10 % 10) as u8,
        b'0' + (frac % 10) as u8,
    ];
    let keep = if frac % 100 == 0 {
        1
    } else if frac % 10 == 0 {
        2
    } else {
        3
    };
    out.extend_from_slice(&digits[..keep]);
}

/// `x` rounded to 3 decimals, the value [`push_fixed3`] writes.
pub(crate) fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

const HEX: &[u8; 16] = b"0123456789abcdef";

/// Appends 32 lowercase hex digits of a 128-bit id.
pub(crate) fn push_hex128(out: &mut Vec<u8>, hi: u64, lo: u64) {
    let mut buf = [0u8; 32];
    for (i, b) in buf.iter_mut().enumerate() {
        let word = if i < 16 { hi } else { lo };
        let shift = 60 - 4 * (i % 16);
        *b = HEX[((word >> shift) & 0xf) as usize];
    }
    out.extend_from_slice(&buf);
}

/// Formats timestamps as `2025-01-01T00:00:00.123Z`, caching the text of the current second.
#[derive(Debug, Clone)]
pub(crate) struct TimestampFormatter {
    second: i64,
    text: [u8; 19],
}

impl Default for TimestampFormatter {
    fn default() -> Self {
        Self {
            second: i64::MIN,
            text: [b'0'; 19],
        }
    }
}

impl TimestampFormatter {
    /// Appends the RFC 3339 UTC text of `us` (microseconds since the epoch), truncated to
    /// milliseconds.
    pub(crate) fn push(&mut self, out: &mut Vec<u8>, us: i64) {
        let second = us.div_euclid(MICROS_PER_SEC);
        if second != self.second {
            self.second = second;
            let text = match chrono::DateTime::from_timestamp(second, 0) {
                Some(t) => t.format("%Y-%m-%dT%H:%M:%S").to_string(),
                None => "1970-01-01T00:00:00".to_owned(),
            };
            let bytes = text.as_bytes();
            // Years beyond 9999 would not fit; the simulator never gets there.
            let n = bytes.len().min(19);
            self.text[..n].copy_from_slice(&bytes[..n]);
        }
        out.extend_from_slice(&self.text);
        let ms = us.rem_euclid(MICROS_PER_SEC) / 1000;
        out.extend_from_slice(&[
            b'.',
            b'0' + (ms / 100) as u8,
            b'0' + (ms / 10 % 10) as u8,
            b'0' + (ms % 10) as u8,
            b'Z',
        ]);
    }
}

/// Truncates microseconds to whole milliseconds (what a line's timestamp can carry).
pub(crate) fn truncate_to_ms(us: i64) -> i64 {
    us - us.rem_euclid(1000)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(f: impl FnOnce(&mut Vec<u8>)) -> String {
        let mut v = Vec::new();
        f(&mut v);
        String::from_utf8(v).unwrap()
    }

    #[test]
    fn integers() {
        for n in [0u64, 7, 10, 599, 123_456_789, u64::MAX] {
            assert_eq!(s(|o| push_u64(o, n)), n.to_string());
        }
    }

    #[test]
    fn fixed3_rounds_and_trims() {
        let cases = [
            (41.2374, "41.237"),
            (41.2376, "41.238"),
            (41.2, "41.2"),
            (41.0, "41.0"),
            (0.0, "0.0"),
            (0.0004, "0.0"),
            (0.05, "0.05"),
            (-3.0, "0.0"),
            (f64::NAN, "0.0"),
            (1234.5678, "1234.568"),
        ];
        for (x, want) in cases {
            assert_eq!(s(|o| push_fixed3(o, x)), want, "for {x}");
            if x.is_finite() && x >= 0.0 {
                let back: f64 = want.parse().unwrap();
                assert_eq!(back, round3(x), "for {x}");
            }
        }
    }

    #[test]
    fn hex_ids() {
        assert_eq!(
            s(|o| push_hex128(o, 0x0123_4567_89ab_cdef, 0xfedc_ba98_7654_3210)),
            "0123456789abcdeffedcba9876543210"
        );
    }

    #[test]
    fn timestamps_match_chrono() {
        let mut f = TimestampFormatter::default();
        for us in [
            0i64,
            1_735_689_600_123_456,
            1_735_689_600_999_999,
            1_735_689_601_000_000,
            1_746_057_599_999_999,
        ] {
            let want = chrono::DateTime::from_timestamp_micros(truncate_to_ms(us))
                .unwrap()
                .to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
            assert_eq!(s(|o| f.push(o, us)), want);
        }
    }
}
