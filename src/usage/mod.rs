//! Token usage from provider responses (JSON and SSE).
