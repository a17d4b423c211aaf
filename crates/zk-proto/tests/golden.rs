//! Golden frames captured from a real Apache ZooKeeper 3.8 by `scripts/capture-golden.py`
//! (`tests/golden/zookeeper-3.8.txt`): every frame must decode with our codec, leave no byte
//! unread, and re-encode to exactly the captured bytes.
//!
//! File format, one frame per line: `<dir> <kind> <op> <hex>`; `#` starts a comment. See the
//! script for the details. Every failure is collected and reported with its line number,
//! kind/op and both hex strings.

use std::collections::{BTreeMap, BTreeSet};

use bytes::{Bytes, BytesMut};
use zk_proto::{
    decode_request, encode_frame, encode_reply, encode_request, from_bytes, to_bytes,
    ConnectRequest, ConnectResponse, DecodeError, EventType, FourLetterWord, FrameDecoder, Jute,
    KeeperState, OpCode, Reader, ReplyHeader, Response, WatcherEvent,
};

const GOLDEN: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/golden/zookeeper-3.8.txt"
);

/// Every opcode that must appear as a captured request (and, except where noted, a reply).
const REQUIRED_REQUEST_OPS: [i32; 28] = [
    1, 2, 3, 4, 5, 6, 7, 8, 9, 11, 12, 14, 15, 16, 17, 18, 19, 21, 22, 100, 101, 102, 103, 104,
    105, 106, 107, -11,
];

/// Four-letter words that must appear.
const REQUIRED_WORDS: [&str; 11] = [
    "ruok", "srvr", "stat", "conf", "cons", "envi", "mntr", "isro", "wchs", "dirs", "xxxx",
];

/// Watch events that must appear in notifications: created, deleted, data and children
/// changed.
const REQUIRED_EVENTS: [EventType; 4] = [
    EventType::NodeCreated,
    EventType::NodeDeleted,
    EventType::NodeDataChanged,
    EventType::NodeChildrenChanged,
];

/// The opcode the golden file uses for a request ZooKeeper does not know.
const UNKNOWN_OP: i32 = 999;

/// One frame line of the golden file.
#[derive(Debug)]
struct Line {
    no: usize,
    dir: String,
    kind: String,
    op: String,
    bytes: Vec<u8>,
}

impl Line {
    fn what(&self) -> String {
        format!("line {}: {} {} {}", self.no, self.dir, self.kind, self.op)
    }

    fn fail(&self, msg: impl std::fmt::Display) -> String {
        format!("{}: {msg}\n  frame: {}", self.what(), hex(&self.bytes))
    }

    fn op_code(&self) -> Result<i32, String> {
        self.op
            .parse()
            .map_err(|_| self.fail(format!("op column {:?} is not an integer", self.op)))
    }
}

/// What the checks saw, to make sure the file exercised everything.
#[derive(Debug, Default)]
struct Seen {
    kinds: BTreeMap<String, usize>,
    request_ops: BTreeSet<i32>,
    reply_ops: BTreeSet<i32>,
    events: BTreeSet<i32>,
    words: BTreeSet<String>,
    connect_request_lens: BTreeSet<usize>,
    connect_response_lens: BTreeSet<usize>,
    expired_connects: usize,
    /// Notifications between a closeSession request and its reply.
    notifications_in_close: usize,
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(s: &str) -> Option<Vec<u8>> {
    if s.len() % 2 != 0 || !s.bytes().all(|c| matches!(c, b'0'..=b'9' | b'a'..=b'f')) {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).ok())
        .collect()
}

fn parse(text: &str) -> Result<Vec<Line>, Vec<String>> {
    let mut lines = Vec::new();
    let mut errors = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let no = i + 1;
        let raw = raw.trim_end();
        if raw.is_empty() || raw.starts_with('#') {
            continue;
        }
        let fields: Vec<&str> = raw.split(' ').collect();
        // An s2c 4lw answer may be empty: then there is no hex column.
        let (dir, kind, op, hex_col) = match fields.as_slice() {
            [dir, kind, op, h] => (*dir, *kind, *op, *h),
            [dir, kind, op] if *kind == "4lw" && *dir == "s2c" => (*dir, *kind, *op, ""),
            _ => {
                errors.push(format!("line {no}: malformed line {raw:?}"));
                continue;
            }
        };
        if dir != "c2s" && dir != "s2c" {
            errors.push(format!("line {no}: bad direction {dir:?}"));
            continue;
        }
        let Some(bytes) = unhex(hex_col) else {
            errors.push(format!("line {no}: bad hex {hex_col:?}"));
            continue;
        };
        lines.push(Line {
            no,
            dir: dir.to_owned(),
            kind: kind.to_owned(),
            op: op.to_owned(),
            bytes,
        });
    }
    if errors.is_empty() {
        Ok(lines)
    } else {
        Err(errors)
    }
}

/// Splits the one frame of the line: exactly one payload, nothing left over.
fn unframe(line: &Line) -> Result<Bytes, String> {
    let mut buf = BytesMut::from(&line.bytes[..]);
    let payload = FrameDecoder::default()
        .decode(&mut buf)
        .map_err(|e| line.fail(format!("FrameDecoder failed: {e:?}")))?
        .ok_or_else(|| line.fail("FrameDecoder wants more bytes than the frame has"))?;
    if !buf.is_empty() {
        return Err(line.fail(format!(
            "{} bytes left after the frame: {}",
            buf.len(),
            hex(&buf)
        )));
    }
    Ok(payload)
}

/// Frames `payload` with our encoder and compares it with the captured frame.
fn compare(line: &Line, encoded_payload: &[u8]) -> Result<(), String> {
    let mut frame = BytesMut::new();
    encode_frame(&mut frame, |out| out.extend_from_slice(encoded_payload));
    if frame[..] == line.bytes[..] {
        Ok(())
    } else {
        Err(format!(
            "{}: re-encoded bytes differ\n  captured: {}\n  encoded:  {}",
            line.what(),
            hex(&line.bytes),
            hex(&frame)
        ))
    }
}

fn ensure_consumed(line: &Line, r: &Reader, what: &str) -> Result<(), String> {
    if r.is_empty() {
        Ok(())
    } else {
        Err(line.fail(format!(
            "{} bytes left unread after the {what}",
            r.remaining()
        )))
    }
}

fn check_connect(line: &Line, seen: &mut Seen) -> Result<(), String> {
    let payload = unframe(line)?;
    let encoded = if line.dir == "c2s" {
        let req = from_bytes::<ConnectRequest>(payload.clone())
            .map_err(|e| line.fail(format!("ConnectRequest decode failed: {e:?}")))?;
        seen.connect_request_lens.insert(payload.len());
        to_bytes(&req)
    } else {
        let resp = from_bytes::<ConnectResponse>(payload.clone())
            .map_err(|e| line.fail(format!("ConnectResponse decode failed: {e:?}")))?;
        seen.connect_response_lens.insert(payload.len());
        if resp.session_id == 0 && resp.time_out == 0 {
            seen.expired_connects += 1;
        }
        to_bytes(&resp)
    };
    compare(line, &encoded)
}

fn check_request(line: &Line, seen: &mut Seen) -> Result<(), String> {
    let op = line.op_code()?;
    let payload = unframe(line)?;
    let mut r = Reader::new(payload);
    let (hdr, body) = decode_request(&mut r)
        .map_err(|e| line.fail(format!("RequestHeader decode failed: {e:?}")))?;
    if hdr.r#type != op {
        return Err(line.fail(format!("header type {} != op column", hdr.r#type)));
    }
    seen.request_ops.insert(op);
    if op == UNKNOWN_OP {
        return match body {
            Err(DecodeError::UnknownOpCode(UNKNOWN_OP)) => Ok(()),
            other => Err(line.fail(format!("expected UnknownOpCode(999), got {other:?}"))),
        };
    }
    let body = body.map_err(|e| line.fail(format!("request body decode failed: {e:?}")))?;
    if body.op_code().code() != op {
        return Err(line.fail(format!("decoded as {:?}", body.op_code())));
    }
    ensure_consumed(line, &r, "request body")?;
    let expected_xid = match OpCode::from_code(op) {
        Some(OpCode::Ping) => Some(zk_proto::xid::PING),
        Some(OpCode::Auth) => Some(zk_proto::xid::AUTH),
        Some(OpCode::SetWatches | OpCode::SetWatches2) => Some(zk_proto::xid::SET_WATCHES),
        _ => None,
    };
    if let Some(xid) = expected_xid {
        if hdr.xid != xid {
            return Err(line.fail(format!("xid {} where {xid} was expected", hdr.xid)));
        }
    }
    let mut out = Vec::new();
    encode_request(hdr.xid, &body, &mut out);
    compare(line, &out)
}

fn check_reply(line: &Line, seen: &mut Seen) -> Result<(), String> {
    let op = line.op_code()?;
    let payload = unframe(line)?;
    let mut r = Reader::new(payload);
    let hdr = <ReplyHeader as Jute>::read(&mut r)
        .map_err(|e| line.fail(format!("ReplyHeader decode failed: {e:?}")))?;
    if hdr.xid == zk_proto::xid::NOTIFICATION {
        return Err(line.fail("a reply with the notification xid -1"));
    }
    seen.reply_ops.insert(op);
    if op == UNKNOWN_OP {
        // UNIMPLEMENTED: a header alone.
        if hdr.err != -6 {
            return Err(line.fail(format!(
                "err {} where UNIMPLEMENTED (-6) was expected",
                hdr.err
            )));
        }
        ensure_consumed(line, &r, "reply header")?;
        return compare(line, &to_bytes(&hdr));
    }
    let code = OpCode::from_code(op).ok_or_else(|| line.fail("unknown opcode in op column"))?;
    let body = Response::read(code, hdr.err, &mut r)
        .map_err(|e| line.fail(format!("reply body decode failed (err {}): {e:?}", hdr.err)))?;
    ensure_consumed(
        line,
        &r,
        &format!("reply body (err {}, decoded {body:?})", hdr.err),
    )?;
    let mut out = Vec::new();
    encode_reply(&hdr, &body, &mut out);
    compare(line, &out)
}

fn check_notification(line: &Line, seen: &mut Seen) -> Result<(), String> {
    if line.op != "0" {
        return Err(line.fail("notification op column must be 0"));
    }
    let payload = unframe(line)?;
    let mut r = Reader::new(payload);
    let hdr = <ReplyHeader as Jute>::read(&mut r)
        .map_err(|e| line.fail(format!("ReplyHeader decode failed: {e:?}")))?;
    if hdr.xid != zk_proto::xid::NOTIFICATION {
        return Err(line.fail(format!("notification xid {} != -1", hdr.xid)));
    }
    let event = <WatcherEvent as Jute>::read(&mut r)
        .map_err(|e| line.fail(format!("WatcherEvent decode failed: {e:?}")))?;
    ensure_consumed(line, &r, "WatcherEvent")?;
    if EventType::from_code(event.r#type).is_none() {
        return Err(line.fail(format!("unknown event type {}", event.r#type)));
    }
    if KeeperState::from_code(event.state).is_none() {
        return Err(line.fail(format!("unknown keeper state {}", event.state)));
    }
    seen.events.insert(event.r#type);
    let mut out = Vec::new();
    hdr.write(&mut out);
    event.write(&mut out);
    compare(line, &out)
}

fn check_four_letter_word(line: &Line, seen: &mut Seen) -> Result<(), String> {
    if line.dir == "s2c" {
        if line.op == "ruok" && line.bytes != b"imok" {
            return Err(line.fail("ruok must be answered imok"));
        }
        return Ok(());
    }
    seen.words.insert(line.op.clone());
    match FourLetterWord::detect(&line.bytes) {
        None if line.op == "xxxx" => Ok(()),
        None => Err(line.fail("FourLetterWord::detect found no command")),
        Some(word) if line.op == "xxxx" => Err(line.fail(format!("xxxx detected as {word:?}"))),
        Some(word) if word.name() != line.op => {
            Err(line.fail(format!("detected as {:?}", word.name())))
        }
        Some(word) if line.bytes.len() != 4 + word.extra_bytes() => Err(line.fail(format!(
            "{} bytes, but {} takes {}",
            line.bytes.len(),
            word.name(),
            4 + word.extra_bytes()
        ))),
        Some(_) => Ok(()),
    }
}

fn check(line: &Line, seen: &mut Seen) -> Result<(), String> {
    match line.kind.as_str() {
        "connect" => check_connect(line, seen),
        "request" if line.dir == "c2s" => check_request(line, seen),
        "reply" if line.dir == "s2c" => check_reply(line, seen),
        "notification" if line.dir == "s2c" => check_notification(line, seen),
        "4lw" => check_four_letter_word(line, seen),
        _ => Err(line.fail("unknown kind for this direction")),
    }
}

/// Checks that the file covers everything it is meant to, so the test cannot pass vacuously.
fn coverage_errors(seen: &Seen) -> Vec<String> {
    let mut errors = Vec::new();
    for op in REQUIRED_REQUEST_OPS {
        if !seen.request_ops.contains(&op) {
            errors.push(format!("no request with opcode {op}"));
        }
        if !seen.reply_ops.contains(&op) {
            errors.push(format!("no reply to opcode {op}"));
        }
    }
    if !seen.request_ops.contains(&UNKNOWN_OP) || !seen.reply_ops.contains(&UNKNOWN_OP) {
        errors.push(format!(
            "no request/reply with the unknown opcode {UNKNOWN_OP}"
        ));
    }
    for word in REQUIRED_WORDS {
        if !seen.words.contains(word) {
            errors.push(format!("no 4lw {word}"));
        }
    }
    for event in REQUIRED_EVENTS {
        if !seen.events.contains(&event.code()) {
            errors.push(format!("no notification of {event:?}"));
        }
    }
    // With and without the trailing readOnly byte.
    for (what, lens, want) in [
        ("ConnectRequest", &seen.connect_request_lens, [44, 45]),
        ("ConnectResponse", &seen.connect_response_lens, [36, 37]),
    ] {
        for len in want {
            if !lens.contains(&len) {
                errors.push(format!("no {what} of {len} bytes"));
            }
        }
    }
    if seen.notifications_in_close == 0 {
        errors.push("no notification between a closeSession request and its reply".to_owned());
    }
    if seen.expired_connects == 0 {
        errors.push("no expired-session ConnectResponse".to_owned());
    }
    let min = [
        ("c2s connect", 5),
        ("s2c connect", 5),
        ("c2s request", 80),
        ("s2c reply", 80),
        ("s2c notification", 10),
        ("c2s 4lw", 11),
        ("s2c 4lw", 11),
    ];
    for (key, n) in min {
        let got = seen.kinds.get(key).copied().unwrap_or(0);
        if got < n {
            errors.push(format!("only {got} `{key}` lines, expected at least {n}"));
        }
    }
    errors
}

#[test]
fn golden_frames_decode_and_reencode_exactly() {
    let text = std::fs::read_to_string(GOLDEN)
        .unwrap_or_else(|e| panic!("cannot read {GOLDEN}: {e} (run scripts/capture-golden.py)"));
    let lines = match parse(&text) {
        Ok(lines) => lines,
        Err(errors) => panic!("{GOLDEN} is malformed:\n{}", errors.join("\n")),
    };
    let mut seen = Seen::default();
    let mut failures = Vec::new();
    let mut in_close = false;
    for line in &lines {
        *seen
            .kinds
            .entry(format!("{} {}", line.dir, line.kind))
            .or_default() += 1;
        // Notifications interleaved right after a closeSession request, before its reply.
        if line.kind == "request" && line.op == "-11" {
            in_close = true;
        } else if line.kind == "notification" && in_close {
            seen.notifications_in_close += 1;
        } else {
            in_close = false;
        }
        if let Err(e) = check(line, &mut seen) {
            failures.push(e);
        }
    }
    let coverage = coverage_errors(&seen);

    println!("golden file {GOLDEN}: {} frames", lines.len());
    for (kind, n) in &seen.kinds {
        println!("  {kind:<18} {n}");
    }
    println!(
        "  request opcodes ({}): {:?}",
        seen.request_ops.len(),
        seen.request_ops
    );
    println!(
        "  reply opcodes ({}): {:?}",
        seen.reply_ops.len(),
        seen.reply_ops
    );
    println!("  notification event types: {:?}", seen.events);
    println!(
        "  notifications between a closeSession and its reply: {}",
        seen.notifications_in_close
    );
    println!(
        "  failures: {}, coverage gaps: {}",
        failures.len(),
        coverage.len()
    );

    assert!(
        failures.is_empty() && coverage.is_empty(),
        "{} of {} golden frames failed:\n\n{}\n\ncoverage gaps:\n{}",
        failures.len(),
        lines.len(),
        failures.join("\n\n"),
        coverage.join("\n")
    );
}
