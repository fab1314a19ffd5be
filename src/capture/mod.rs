//! `$ai_generation` events and their delivery queues.
