//! Dead letters: rejected lines kept with why they were rejected, as NDJSON under
//! `deadletter/date=YYYY-MM-DD/` (the UTC date they were received).
//!
//! NDJSON rather than Parquet because dead letters are read by people with `jq` and
//! `grep`, are few, and must keep bytes that are not even UTF-8.

use base64::Engine;
use serde::Serialize;
use telltale_core::Rejection;
use telltale_core::event::{rfc3339, utc_date};

use crate::error::{LakeError, Result};

/// Longest raw line kept in a dead letter; longer lines are cut (and marked so).
pub const MAX_RAW_BYTES: usize = 65_536;

/// A rejected line on its way to the dead-letter files.
#[derive(Debug, Clone, PartialEq)]
pub struct DeadLetter {
    /// When the line was received, µs since the epoch (UTC); picks the date directory.
    pub received_at_us: i64,
    /// Where it came from: `http`, `stdin` or `file:<path>`.
    pub source: String,
    /// Why it was rejected.
    pub rejection: Rejection,
    /// The line as received.
    pub raw: Vec<u8>,
}

impl DeadLetter {
    /// The UTC date directory this dead letter belongs in.
    pub fn date(&self) -> String {
        utc_date(self.received_at_us)
    }
}

/// One line of a dead-letter file; field order is the output order.
#[derive(Serialize)]
struct Line<'a> {
    received_at: String,
    source: &'a str,
    line: u64,
    field: Option<&'a str>,
    reason: &'a str,
    message: &'a str,
    raw: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    raw_base64: Option<String>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    raw_truncated: bool,
}

/// The bytes kept of a raw line: at most [`MAX_RAW_BYTES`], and when the line is UTF-8
/// the cut falls on a character boundary so the kept text stays valid.
fn kept(raw: &[u8]) -> (&[u8], bool) {
    if raw.len() <= MAX_RAW_BYTES {
        return (raw, false);
    }
    let mut end = MAX_RAW_BYTES;
    if std::str::from_utf8(raw).is_ok() {
        // Back up over continuation bytes (0b10xx_xxxx) to the start of a character.
        while end > 0 && raw[end] & 0xC0 == 0x80 {
            end -= 1;
        }
    }
    (&raw[..end], true)
}

/// One dead letter as a JSON object (no trailing newline).
pub fn to_json_line(dl: &DeadLetter) -> Result<String> {
    let (raw, raw_truncated) = kept(&dl.raw);
    let valid_utf8 = std::str::from_utf8(&dl.raw).is_ok();
    let line = Line {
        received_at: rfc3339(dl.received_at_us),
        source: &dl.source,
        line: dl.rejection.line,
        field: dl.rejection.field,
        reason: dl.rejection.reason.as_str(),
        message: &dl.rejection.message,
        raw: String::from_utf8_lossy(raw).into_owned(),
        // Lossy text replaces bad bytes with U+FFFD; keep the exact bytes alongside.
        raw_base64: (!valid_utf8).then(|| base64::engine::general_purpose::STANDARD.encode(raw)),
        raw_truncated,
    };
    serde_json::to_string(&line).map_err(|source| LakeError::Json {
        context: format!("dead letter from {} line {}", dl.source, dl.rejection.line),
        source,
    })
}

/// A dead-letter file's content: one JSON object per line, in the given order.
pub fn to_ndjson(letters: &[DeadLetter]) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    for dl in letters {
        out.extend_from_slice(to_json_line(dl)?.as_bytes());
        out.push(b'\n');
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures::mixed_letters;

    #[test]
    fn dead_letter_file_golden() {
        let letters = mixed_letters();
        let text = String::from_utf8(to_ndjson(&letters[..4]).unwrap()).unwrap();
        insta::assert_snapshot!(text);
    }

    #[test]
    fn long_lines_are_cut_on_a_character_boundary() {
        let letters = mixed_letters();
        let json: serde_json::Value =
            serde_json::from_str(&to_json_line(&letters[4]).unwrap()).unwrap();
        let raw = json["raw"].as_str().unwrap();
        assert_eq!(
            raw.len(),
            MAX_RAW_BYTES - 1,
            "the 2-byte `é` straddling the limit is dropped whole"
        );
        assert!(!raw.contains('\u{FFFD}'));
        assert_eq!(json["raw_truncated"], true);
        assert!(json.get("raw_base64").is_none());
        assert_eq!(json["source"], "file:/var/log/app.jsonl");
    }

    #[test]
    fn base64_keeps_the_exact_bytes() {
        let letters = mixed_letters();
        let json: serde_json::Value =
            serde_json::from_str(&to_json_line(&letters[2]).unwrap()).unwrap();
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(json["raw_base64"].as_str().unwrap())
            .unwrap();
        assert_eq!(bytes, letters[2].raw);
    }
}
