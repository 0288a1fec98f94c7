//! Legacy password-hash formats: parse, detect and verify in constant time.
