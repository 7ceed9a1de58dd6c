//! shoal-sql
