//! `$ai_generation` events and their delivery queues.
//!
//! `properties` makes client-supplied properties and ids safe, `event` builds
//! the event and the batch body, `outbox` queues and retries delivery per
//! destination. All pure: the filter supplies the clock and does the I/O.

pub mod event;
pub mod outbox;
pub mod properties;
pub mod timestamp;
