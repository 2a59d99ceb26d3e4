//! Records (record-schema.md) and their writers.
