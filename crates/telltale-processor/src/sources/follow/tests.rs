use std::fs::{self, OpenOptions};
use std::io::Write;
use std::sync::atomic::Ordering;

use super::*;

fn settings(dir: &Path) -> FollowSettings {
    FollowSettings {
        checkpoint_dir: dir.join("follow"),
        poll_interval: Duration::from_millis(5),
        max_line_bytes: 1024,
    }
}

fn append(path: &Path, text: &str) {
    let mut f = OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .unwrap();
    f.write_all(text.as_bytes()).unwrap();
}

/// Every line the source hands out until it ends, with its number, acknowledging each
/// batch when `ack`.
fn read_all(source: &mut FollowSource, ck: &Checkpointer, ack: bool) -> Vec<(u64, String)> {
    let mut out = Vec::new();
    while let Some(b) = source.next_batch().unwrap() {
        for (n, line) in telltale_core::parse::lines(&b.data) {
            out.push((
                b.first_line + n - 1,
                String::from_utf8_lossy(line).into_owned(),
            ));
        }
        if ack {
            ck.acked().unwrap();
        }
    }
    out
}

fn numbered(lines: &[(u64, &str)]) -> Vec<(u64, String)> {
    lines.iter().map(|(n, l)| (*n, (*l).to_owned())).collect()
}

#[test]
fn rename_rotation_reads_the_old_file_to_its_end_then_the_new_one() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("access.log");
    append(&log, "a1\na2\n");
    let stop = Arc::new(AtomicBool::new(true));
    let (mut src, ck) = open(&log, &settings(dir.path()), Arc::clone(&stop)).unwrap();
    // The writer goes on in the old file after the rename, then reopens.
    fs::rename(&log, dir.path().join("access.log.1")).unwrap();
    append(&dir.path().join("access.log.1"), "a3\n");
    append(&log, "b1\n");
    let got = read_all(&mut src, &ck, true);
    assert_eq!(got, numbered(&[(1, "a1"), (2, "a2"), (3, "a3"), (4, "b1")]));
    // The checkpoint is in the new file, after its line.
    let saved = checkpoint::load(&checkpoint::path_for(&dir.path().join("follow"), &log))
        .unwrap()
        .unwrap();
    assert_eq!((saved.offset, saved.next_line), (3, 5));
    assert_eq!(
        saved.file,
        checkpoint::FileId::of(&fs::metadata(&log).unwrap())
    );
}

#[test]
fn copytruncate_reads_the_file_again_from_its_start() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("access.log");
    append(&log, "first-line-1\nfirst-line-2\n");
    let stop = Arc::new(AtomicBool::new(false));
    let (mut src, ck) = open(&log, &settings(dir.path()), Arc::clone(&stop)).unwrap();
    let b = src.next_batch().unwrap().unwrap();
    assert_eq!(&b.data[..], b"first-line-1\nfirst-line-2\n");
    ck.acked().unwrap();
    // copytruncate: the content went to a copy, the file is emptied and written again.
    fs::OpenOptions::new()
        .write(true)
        .truncate(true)
        .open(&log)
        .unwrap();
    append(&log, "x\n");
    let b = src.next_batch().unwrap().unwrap();
    assert_eq!(&b.data[..], b"x\n");
    assert_eq!(b.first_line, 3);
    ck.acked().unwrap();
    stop.store(true, Ordering::Release);
    assert!(src.next_batch().unwrap().is_none());
    let saved = checkpoint::load(&ck.file).unwrap().unwrap();
    assert_eq!((saved.offset, saved.next_line), (2, 4));
}

#[test]
fn a_restart_resumes_after_the_last_acknowledged_batch_and_rereads_the_rest() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("access.log");
    append(&log, "l1\nl2\n");
    let stop = Arc::new(AtomicBool::new(true));
    let (mut src, ck) = open(&log, &settings(dir.path()), Arc::clone(&stop)).unwrap();
    assert_eq!(read_all(&mut src, &ck, true).len(), 2);
    drop((src, ck));
    // Read but never acknowledged (a crash before the write-ahead log had it).
    append(&log, "l3\n");
    let (mut src, ck) = open(&log, &settings(dir.path()), Arc::clone(&stop)).unwrap();
    assert_eq!(read_all(&mut src, &ck, false), numbered(&[(3, "l3")]));
    drop((src, ck));
    append(&log, "l4\n");
    let (mut src, ck) = open(&log, &settings(dir.path()), stop).unwrap();
    assert_eq!(
        read_all(&mut src, &ck, true),
        numbered(&[(3, "l3"), (4, "l4")])
    );
}

#[test]
fn a_rotation_while_stopped_finishes_the_rotated_file_first() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("access.log");
    append(&log, "l1\n");
    let stop = Arc::new(AtomicBool::new(true));
    let (mut src, ck) = open(&log, &settings(dir.path()), Arc::clone(&stop)).unwrap();
    read_all(&mut src, &ck, true);
    drop((src, ck));
    append(&log, "l2\n");
    fs::rename(&log, dir.path().join("access.log.1")).unwrap();
    append(&log, "n1\n");
    let (mut src, ck) = open(&log, &settings(dir.path()), stop).unwrap();
    assert_eq!(
        read_all(&mut src, &ck, true),
        numbered(&[(2, "l2"), (3, "n1")])
    );
}

#[test]
fn an_unfinished_last_line_is_left_for_later() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("access.log");
    append(&log, "whole\nhal");
    let stop = Arc::new(AtomicBool::new(true));
    let (mut src, ck) = open(&log, &settings(dir.path()), Arc::clone(&stop)).unwrap();
    assert_eq!(read_all(&mut src, &ck, true), numbered(&[(1, "whole")]));
    drop((src, ck));
    append(&log, "f\n");
    let (mut src, ck) = open(&log, &settings(dir.path()), stop).unwrap();
    assert_eq!(read_all(&mut src, &ck, true), numbered(&[(2, "half")]));
}
