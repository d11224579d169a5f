//! The floor under line ingest: how fast ONE core can read an NDJSON file, split it into
//! lines, and parse those lines with serde_json into the least a service event needs,
//! with no validation, no allocation per line and no output.
//!
//! The processor cannot ingest faster per core than this; the gap between its figure and
//! `parse_lines_per_s` is what validation, flagging, rollups and the lake cost.
//!
//! ```text
//! cargo run --release -p telltale-core --example parse_floor -- FILE
//! ```
//!
//! Prints one JSON object on stdout:
//! `{"lines":N,"bytes":B,"split_secs":s1,"parse_secs":s2, ...derived rates}`, where
//! `split_secs` is reading + splitting and `parse_secs` is reading + splitting + parsing
//! (each a full pass over the file). The file is read twice; the first pass (split) also
//! warms the page cache when the file was not in it, which then shows in `split_secs`.

use std::borrow::Cow;
use std::fs::File;
use std::hint::black_box;
use std::io::Read;
use std::process::ExitCode;
use std::time::Instant;

use serde::Deserialize;

/// Read size: a few MiB amortises the system calls and stays in L2/L3.
const CHUNK: usize = 4 << 20;

/// The fields a service event needs, borrowed from the line (serde skips the rest).
/// `Cow` borrows unless a string holds a JSON escape, so escaped lines still parse.
#[derive(Deserialize)]
struct Line<'a> {
    #[serde(borrow)]
    service: Cow<'a, str>,
    #[serde(borrow)]
    timestamp: Cow<'a, str>,
    status_code: u16,
    latency_ms: f64,
    error: Option<bool>,
}

/// Calls `f` on every non-empty line of `path` (without its `\n` or `\r\n`), reading
/// `CHUNK` bytes at a time; returns the bytes read.
fn for_each_line(path: &str, mut f: impl FnMut(&[u8])) -> std::io::Result<u64> {
    let mut file = File::open(path)?;
    let mut buf = vec![0u8; CHUNK];
    // Bytes of an unfinished line carried over at the front of `buf`.
    let mut carry = 0;
    let mut total = 0u64;
    let mut emit = |line: &[u8]| {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if !line.is_empty() {
            f(line);
        }
    };
    loop {
        if carry == buf.len() {
            // One line longer than the buffer: grow it.
            buf.resize(buf.len() * 2, 0);
        }
        let n = file.read(&mut buf[carry..])?;
        if n == 0 {
            emit(&buf[..carry]);
            return Ok(total);
        }
        total += n as u64;
        let filled = carry + n;
        match buf[..filled].iter().rposition(|&b| b == b'\n') {
            Some(last) => {
                let mut rest = &buf[..last];
                while let Some(i) = find_newline(rest) {
                    emit(&rest[..i]);
                    rest = &rest[i + 1..];
                }
                emit(rest);
                buf.copy_within(last + 1..filled, 0);
                carry = filled - last - 1;
            }
            None => carry = filled,
        }
    }
}

/// Index of the first `\n` in `hay`, eight bytes at a time (std's `position` goes byte by
/// byte; this halves the split time). With `x` = eight bytes XOR `0x0a0a..0a`,
/// `(x - 0x0101..01) & !x & 0x8080..80` is non-zero exactly when a byte of `x` is zero (a
/// `\n`), and its lowest set bit marks the first such byte.
fn find_newline(hay: &[u8]) -> Option<usize> {
    const ONES: u64 = u64::from_ne_bytes([0x01; 8]);
    const HIGHS: u64 = u64::from_ne_bytes([0x80; 8]);
    const NL: u64 = u64::from_ne_bytes([b'\n'; 8]);
    let mut words = hay.chunks_exact(8);
    for (i, w) in words.by_ref().enumerate() {
        let x = u64::from_le_bytes(w.try_into().expect("8 bytes")) ^ NL;
        let found = x.wrapping_sub(ONES) & !x & HIGHS;
        if found != 0 {
            return Some(i * 8 + (found.trailing_zeros() / 8) as usize);
        }
    }
    let tail = words.remainder();
    tail.iter()
        .position(|&b| b == b'\n')
        .map(|j| hay.len() - tail.len() + j)
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [path] = args.as_slice() else {
        eprintln!("usage: parse_floor FILE");
        return ExitCode::from(2);
    };
    match run(path) {
        Ok(out) => {
            println!("{out}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("parse_floor: {path}: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(path: &str) -> std::io::Result<serde_json::Value> {
    // (a) Read + split: count lines and touch their length, so the split is not elided.
    let start = Instant::now();
    let (mut lines, mut line_bytes) = (0u64, 0u64);
    let bytes = for_each_line(path, |line| {
        lines += 1;
        line_bytes += line.len() as u64;
    })?;
    let split_secs = start.elapsed().as_secs_f64();
    black_box(line_bytes);

    // (b) Read + split + parse every line; sum fields so nothing is optimised away.
    let start = Instant::now();
    let mut errors = 0u64;
    let (mut status_sum, mut latency_sum, mut text_len, mut flagged) = (0u64, 0f64, 0u64, 0u64);
    for_each_line(path, |line| {
        match serde_json::from_slice::<Line<'_>>(line) {
            Ok(l) => {
                status_sum += u64::from(l.status_code);
                latency_sum += l.latency_ms;
                text_len += (l.service.len() + l.timestamp.len()) as u64;
                flagged += u64::from(l.error == Some(true));
            }
            Err(_) => errors += 1,
        }
    })?;
    let parse_secs = start.elapsed().as_secs_f64();
    black_box((status_sum, latency_sum, text_len, flagged));

    let rate = |n: f64, secs: f64| if secs > 0.0 { n / secs } else { 0.0 };
    Ok(serde_json::json!({
        "lines": lines,
        "bytes": bytes,
        "split_secs": split_secs,
        "parse_secs": parse_secs,
        "split_mb_per_s": rate(bytes as f64 / 1e6, split_secs),
        "parse_mb_per_s": rate(bytes as f64 / 1e6, parse_secs),
        "parse_lines_per_s": rate(lines as f64, parse_secs),
        "parse_errors": errors,
    }))
}

#[cfg(test)]
mod tests {
    use super::find_newline;

    /// `cargo test -p telltale-core --example parse_floor`
    #[test]
    fn find_newline_agrees_with_position() {
        // Near-misses of `\n` (0x0a) around it, in every alignment and length.
        for fill in [b'a', 0x00, 0x09, 0x0b, 0x8a, 0xff] {
            for len in 0..40 {
                let mut hay = vec![fill; len];
                assert_eq!(find_newline(&hay), None);
                for at in 0..len {
                    hay[at] = b'\n';
                    assert_eq!(find_newline(&hay), Some(at), "{fill} {len} {at}");
                    for later in at + 1..len {
                        hay[later] = b'\n';
                        assert_eq!(find_newline(&hay), Some(at), "{fill} {len} {at} {later}");
                        hay[later] = fill;
                    }
                    hay[at] = fill;
                }
            }
        }
    }
}
