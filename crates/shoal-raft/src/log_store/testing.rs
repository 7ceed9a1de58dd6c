//! A store builder for openraft's conformance suite
//! (`openraft::testing::log::Suite`): every test case gets a fresh temporary
//! directory holding a [`LogStore`] in `log/` and a state machine made by the
//! caller's factory in `state/`.
//!
//! ```ignore
//! // In a test of the real state machine (crate feature `testing`):
//! let builder = LogStoreBuilder::new(|dir: &Path| SqliteStateMachine::open(dir));
//! openraft::testing::log::Suite::test_all(builder).await?;
//! ```

use std::marker::PhantomData;
use std::path::Path;

use openraft::errors::ErrorSource;
use openraft::storage::RaftStateMachine;
use openraft::testing::log::StoreBuilder;
use openraft::{RaftTypeConfig, StorageError};
use serde::de::DeserializeOwned;
use serde::Serialize;
use tempfile::TempDir;

use super::{LogOptions, LogStore};

/// Builds `(TempDir, LogStore, SM)` for each suite case. The `TempDir` is the
/// suite's guard: it is dropped (and the directory removed) after the case.
pub struct LogStoreBuilder<SM, F> {
    make_state_machine: F,
    options: LogOptions,
    _state_machine: PhantomData<fn() -> SM>,
}

impl<SM, F> LogStoreBuilder<SM, F> {
    /// `make_state_machine` receives an empty directory the state machine may use.
    /// fsync is off: the suite checks behaviour, not crash safety, and runs
    /// hundreds of appends.
    pub fn new(make_state_machine: F) -> Self {
        let options = LogOptions { fsync: false, ..LogOptions::default() };
        LogStoreBuilder { make_state_machine, options, _state_machine: PhantomData }
    }

    /// Overrides the log options (e.g. a tiny `segment_size_bytes` so that the
    /// suite crosses segment boundaries).
    pub fn with_options(mut self, options: LogOptions) -> Self {
        self.options = options;
        self
    }
}

impl<C, SM, F> StoreBuilder<C, LogStore<C>, SM, TempDir> for LogStoreBuilder<SM, F>
where
    C: RaftTypeConfig,
    C::Entry: Clone + Serialize + DeserializeOwned,
    SM: RaftStateMachine<C>,
    F: Fn(&Path) -> Result<SM, StorageError<C>> + Send + Sync,
{
    async fn build(&self) -> Result<(TempDir, LogStore<C>, SM), StorageError<C>> {
        let setup = |err: &dyn std::fmt::Display| StorageError::write(C::ErrorSource::from_string(err));
        let dir = tempfile::tempdir().map_err(|err| setup(&err))?;
        let state_dir = dir.path().join("state");
        std::fs::create_dir_all(&state_dir).map_err(|err| setup(&err))?;
        let log = LogStore::open(&dir.path().join("log"), self.options.clone()).map_err(|err| setup(&err))?;
        let state_machine = (self.make_state_machine)(&state_dir)?;
        Ok((dir, log, state_machine))
    }
}
