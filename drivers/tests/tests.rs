//! Integration tests: public API only; serial tests run on real pseudo-terminals.

mod it;
