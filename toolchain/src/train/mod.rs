//! Training: the losses and the optimizer (DESIGN.md section 2, Training).

pub mod adam;
pub mod loss;
