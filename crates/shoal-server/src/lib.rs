//! shoal-server
