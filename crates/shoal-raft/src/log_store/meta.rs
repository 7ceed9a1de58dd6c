//! The `meta` file: vote, committed log id and last purged log id.
//!
//! Small and rarely written, so it is replaced atomically rather than
//! appended to: write `meta.tmp`, fsync it, rename it over `meta`, fsync the
//! directory. After a crash either the old or the new version is visible,
//! never a mixture. The content is one framed record (same `[len][crc]`
//! framing as segments) holding JSON, so an operator can read it with
//! `tail -c +9 meta` and a damaged file is detected rather than misread.

use std::fs;
use std::io::Write;
use std::path::Path;

use openraft::alias::{LogIdOf, VoteOf};
use openraft::RaftTypeConfig;
use serde::{Deserialize, Serialize};
use shoal_common::Error;

use super::record::{corrupted, frame, unframe};
use super::Fsync;

pub(super) const META_FILE: &str = "meta";
pub(super) const META_TMP_FILE: &str = "meta.tmp";

/// The durable non-entry state of the log.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(bound = "")] // the vote and log id are serde already (openraft feature "serde")
pub(super) struct Meta<C: RaftTypeConfig> {
    pub vote: Option<VoteOf<C>>,
    pub committed: Option<LogIdOf<C>>,
    pub last_purged: Option<LogIdOf<C>>,
}

impl<C: RaftTypeConfig> Default for Meta<C> {
    fn default() -> Self {
        Meta { vote: None, committed: None, last_purged: None }
    }
}

impl<C: RaftTypeConfig> Meta<C> {
    /// Reads `dir/meta`; a missing file is a fresh log.
    pub fn read(dir: &Path) -> Result<Meta<C>, Error> {
        let path = dir.join(META_FILE);
        let bytes = match fs::read(&path) {
            Ok(bytes) => bytes,
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(Meta::default()),
            Err(err) => return Err(Error::io(format!("reading {}", path.display()), err)),
        };
        // The file is only ever renamed into place complete, so any damage is
        // real corruption, not a torn write.
        let (payload, len) =
            unframe(&bytes).map_err(|err| corrupted(format!("log meta file {} is damaged: {err}", path.display())))?;
        if len != bytes.len() {
            return Err(corrupted(format!("log meta file {} has trailing bytes", path.display())));
        }
        serde_json::from_slice(payload)
            .map_err(|err| corrupted(format!("log meta file {} cannot be decoded: {err}", path.display())))
    }

    /// Atomically replaces `dir/meta`; durable on return unless fsync is disabled.
    pub fn write(&self, dir: &Path, fsync: &Fsync) -> Result<(), Error> {
        let json = serde_json::to_vec(self).map_err(|err| Error::internal(format!("cannot encode log meta: {err}")))?;
        let mut record = Vec::with_capacity(json.len() + 8);
        frame(&json, &mut record)?;

        let tmp = dir.join(META_TMP_FILE);
        let io = |err| Error::io(format!("writing {}", tmp.display()), err);
        let mut file = fs::File::create(&tmp).map_err(io)?;
        file.write_all(&record).map_err(io)?;
        fsync.file(&file).map_err(io)?;
        drop(file);
        fs::rename(&tmp, dir.join(META_FILE)).map_err(io)?;
        fsync.dir(dir)
    }
}
