//! crashdrop wire protocol.
