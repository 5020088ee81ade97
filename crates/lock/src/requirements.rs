//! Hash-pinned requirements files (pip's *Requirements File Format*).
