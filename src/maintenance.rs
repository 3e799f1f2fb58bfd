//! Maintenance: marker compaction and retention, within a time budget (being implemented).
