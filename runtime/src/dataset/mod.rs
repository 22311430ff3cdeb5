//! Dataset readers (MVTec AD, VisA, meta.json, BTAD, MPDD, plain folders).
