//! Model prices and the cost of a call.
