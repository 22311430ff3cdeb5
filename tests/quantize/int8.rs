//! int8 against fp32 (filled in with the int8 pass).
