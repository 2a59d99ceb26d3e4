//! Include/exclude filters for wirelens (issue #4 grows this into the full language).
