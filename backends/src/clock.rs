//! The server's one clock: wall time since the Unix epoch, as the pages, the timeline and the
//! consumer instances' reports count it. It sits below every other module, so anything may read
//! the time without importing the part that happens to use it most.

use std::time::{SystemTime, UNIX_EPOCH};

use grouplab_protocol::{EpochMicros, EpochMillis};

/// Now, in milliseconds since the Unix epoch.
pub fn now_ms() -> EpochMillis {
    epoch_ms(SystemTime::now())
}

/// Now, in microseconds since the Unix epoch: the clock instances stamp their reports with.
pub fn now_us() -> EpochMicros {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as EpochMicros)
}

/// A moment in milliseconds since the Unix epoch (0 for a moment before it).
pub fn epoch_ms(at: SystemTime) -> EpochMillis {
    at.duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as EpochMillis)
}
