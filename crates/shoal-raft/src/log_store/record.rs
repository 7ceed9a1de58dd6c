//! Record framing and segment file naming: the byte-level format of the log.
//!
//! Everything here is pure (no I/O), so the parsing rules — which bytes are a
//! torn tail, which are corruption — are unit-tested without touching a disk.

use std::fmt;

use serde::de::DeserializeOwned;
use serde::Serialize;
use shoal_common::{Error, SqlState};

/// The first 8 bytes of every segment file.
pub(super) const SEGMENT_MAGIC: &[u8; 8] = b"SHOALSEG";
/// Bumped whenever the record format or the payload codec changes.
pub(super) const SEGMENT_FORMAT_VERSION: u32 = 1;
/// Magic (8) + format version (4) + reserved (4).
pub(super) const SEGMENT_HEADER_BYTES: u64 = 16;
/// `len: u32` + `crc: u32` in front of every payload.
pub(super) const RECORD_HEADER_BYTES: usize = 8;
/// The largest payload we write or accept. A corrupt length field must not
/// make recovery allocate gigabytes, and no sane Raft entry is this large
/// (the SQL layer batches statements well below it).
pub(super) const MAX_PAYLOAD_BYTES: u32 = 256 << 20;

/// The 16-byte header every segment starts with.
pub(super) fn segment_header() -> [u8; SEGMENT_HEADER_BYTES as usize] {
    let mut header = [0u8; SEGMENT_HEADER_BYTES as usize];
    header[..8].copy_from_slice(SEGMENT_MAGIC);
    header[8..12].copy_from_slice(&SEGMENT_FORMAT_VERSION.to_le_bytes());
    header
}

/// Why a segment header is unusable.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum HeaderError {
    /// Fewer than 16 bytes: a segment created just before a crash.
    Truncated,
    /// Not a Shoal segment, or a format this build cannot read. Never torn:
    /// a torn write cannot produce a wrong magic in the first sector.
    Foreign(String),
}

pub(super) fn check_segment_header(bytes: &[u8]) -> Result<(), HeaderError> {
    if bytes.len() < SEGMENT_HEADER_BYTES as usize {
        return Err(HeaderError::Truncated);
    }
    if &bytes[..8] != SEGMENT_MAGIC {
        return Err(HeaderError::Foreign("bad magic (not a Shoal log segment)".into()));
    }
    let version = u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]);
    if version != SEGMENT_FORMAT_VERSION {
        return Err(HeaderError::Foreign(format!(
            "segment format version {version}, this build reads version {SEGMENT_FORMAT_VERSION}"
        )));
    }
    Ok(())
}

/// `00000000000000000042.seg`: zero padded so that a directory listing sorts
/// in log order, which is handy when debugging and for the archiver.
pub(super) fn segment_file_name(first_index: u64) -> String {
    format!("{first_index:020}.seg")
}

/// The inverse of [`segment_file_name`]; `None` for any other name.
pub(super) fn parse_segment_file_name(name: &str) -> Option<u64> {
    let digits = name.strip_suffix(".seg")?;
    if digits.len() != 20 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// The checksum covers the length field too, so a flipped bit in `len` is
/// caught by the checksum instead of silently re-framing the rest of the file.
fn checksum(len_bytes: [u8; 4], payload: &[u8]) -> u32 {
    let mut hasher = crc32fast::Hasher::new();
    hasher.update(&len_bytes);
    hasher.update(payload);
    hasher.finalize()
}

/// Appends `[len][crc][payload]` to `out`.
pub(super) fn frame(payload: &[u8], out: &mut Vec<u8>) -> Result<(), Error> {
    let len = u32::try_from(payload.len()).ok().filter(|len| *len <= MAX_PAYLOAD_BYTES).ok_or_else(|| {
        Error::new(
            SqlState::PROGRAM_LIMIT_EXCEEDED,
            format!("log entry of {} bytes exceeds the limit of {MAX_PAYLOAD_BYTES} bytes", payload.len()),
        )
    })?;
    let len_bytes = len.to_le_bytes();
    out.reserve(RECORD_HEADER_BYTES + payload.len());
    out.extend_from_slice(&len_bytes);
    out.extend_from_slice(&checksum(len_bytes, payload).to_le_bytes());
    out.extend_from_slice(payload);
    Ok(())
}

/// Why the bytes at some offset are not a valid record.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum RecordError {
    /// The header or payload runs past the end of the data.
    Incomplete { needed_bytes: usize, available_bytes: usize },
    /// A zero length: what a pre-extended, zero-filled tail looks like
    /// (every real payload is at least one byte).
    ZeroLength,
    /// A length no writer would have produced.
    TooLong { len: u32 },
    /// The checksum does not match the length and payload.
    Checksum { stored: u32, computed: u32 },
}

impl fmt::Display for RecordError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RecordError::Incomplete { needed_bytes, available_bytes } => {
                write!(f, "incomplete record: needs {needed_bytes} bytes, {available_bytes} left in the file")
            }
            RecordError::ZeroLength => write!(f, "zero-length record"),
            RecordError::TooLong { len } => write!(f, "record length {len} exceeds {MAX_PAYLOAD_BYTES}"),
            RecordError::Checksum { stored, computed } => {
                write!(f, "checksum mismatch: stored {stored:#010x}, computed {computed:#010x}")
            }
        }
    }
}

/// Parses the record at the start of `bytes`; returns its payload and its
/// total framed length.
pub(super) fn unframe(bytes: &[u8]) -> Result<(&[u8], usize), RecordError> {
    if bytes.len() < RECORD_HEADER_BYTES {
        return Err(RecordError::Incomplete { needed_bytes: RECORD_HEADER_BYTES, available_bytes: bytes.len() });
    }
    let len_bytes = [bytes[0], bytes[1], bytes[2], bytes[3]];
    let len = u32::from_le_bytes(len_bytes);
    let stored = u32::from_le_bytes([bytes[4], bytes[5], bytes[6], bytes[7]]);
    if len == 0 {
        return Err(RecordError::ZeroLength);
    }
    if len > MAX_PAYLOAD_BYTES {
        return Err(RecordError::TooLong { len });
    }
    let total = RECORD_HEADER_BYTES + len as usize;
    if bytes.len() < total {
        return Err(RecordError::Incomplete { needed_bytes: total, available_bytes: bytes.len() });
    }
    let payload = &bytes[RECORD_HEADER_BYTES..total];
    let computed = checksum(len_bytes, payload);
    if computed != stored {
        return Err(RecordError::Checksum { stored, computed });
    }
    Ok((payload, total))
}

/// The payload codec. Varint bincode: compact, and the entry's own fields
/// carry no schema, so `C::Entry` must round-trip through bincode (no
/// `#[serde(untagged)]`, `flatten`, `skip_serializing_if`, or
/// `serde_json::Value` inside the application data).
fn codec() -> impl bincode::Options {
    use bincode::Options;
    bincode::DefaultOptions::new().with_limit(u64::from(MAX_PAYLOAD_BYTES))
}

/// Serializes an entry and frames it as one record.
pub(super) fn encode_entry<E: Serialize>(entry: &E) -> Result<Vec<u8>, Error> {
    use bincode::Options;
    let payload =
        codec().serialize(entry).map_err(|err| Error::internal(format!("cannot encode a Raft log entry: {err}")))?;
    let mut record = Vec::with_capacity(RECORD_HEADER_BYTES + payload.len());
    frame(&payload, &mut record)?;
    Ok(record)
}

/// Deserializes a payload that passed its checksum. A failure here is not a
/// torn write (the checksum matched) but a codec mismatch or a bug, so the
/// caller reports it as corruption everywhere, tail included.
pub(super) fn decode_entry<E: DeserializeOwned>(payload: &[u8]) -> Result<E, String> {
    use bincode::Options;
    codec().deserialize(payload).map_err(|err| err.to_string())
}

/// `XX001 data corrupted`, the error for anything recovery cannot explain as a
/// torn tail. Non-deterministic: it is this replica's disk, not the statement.
pub(super) fn corrupted(message: impl Into<String>) -> Error {
    Error::environment(SqlState::DATA_CORRUPTED, message).with_hint(
        "the Raft log of this replica is damaged; remove the replica's data directory and let it rejoin \
         from a snapshot of a healthy replica",
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segment_names_sort_and_round_trip() {
        assert_eq!(segment_file_name(42), "00000000000000000042.seg");
        assert_eq!(parse_segment_file_name(&segment_file_name(u64::MAX)), Some(u64::MAX));
        assert_eq!(parse_segment_file_name("42.seg"), None);
        assert_eq!(parse_segment_file_name("0000000000000000004x.seg"), None);
        assert_eq!(parse_segment_file_name("00000000000000000042.tmp"), None);
    }

    #[test]
    fn frame_round_trips_and_rejects_damage() {
        let mut buf = Vec::new();
        frame(b"hello", &mut buf).unwrap();
        assert_eq!(unframe(&buf), Ok((&b"hello"[..], buf.len())));

        // Every strict prefix is incomplete, never a panic.
        for cut in 0..buf.len() {
            assert!(matches!(unframe(&buf[..cut]), Err(RecordError::Incomplete { .. })), "cut at {cut}");
        }
        // A flipped bit anywhere is caught: in the payload by the checksum, in
        // the length by the checksum or the bounds.
        for byte in 0..buf.len() {
            let mut bad = buf.clone();
            bad[byte] ^= 0x10;
            assert!(unframe(&bad).is_err(), "flip at byte {byte} went unnoticed");
        }
        assert_eq!(unframe(&[0u8; 16]), Err(RecordError::ZeroLength));
    }

    #[test]
    fn headers_distinguish_torn_from_foreign() {
        let header = segment_header();
        assert_eq!(check_segment_header(&header), Ok(()));
        assert_eq!(check_segment_header(&header[..5]), Err(HeaderError::Truncated));
        assert!(matches!(check_segment_header(b"NOTASEGMENTFILE!"), Err(HeaderError::Foreign(_))));
    }
}
