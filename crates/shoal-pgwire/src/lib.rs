//! shoal-pgwire
