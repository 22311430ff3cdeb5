//! fp16 against fp32 (filled in with the fp16 pass).
