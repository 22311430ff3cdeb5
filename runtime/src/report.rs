//! The evaluation report: JSON (DESIGN.md section 3) and a Markdown table.
