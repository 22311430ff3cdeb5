//! Training: losses, Adam, the data loader, run directories and the loop.

pub mod adam;
pub mod data;
pub mod loss;
pub mod model;
pub mod run;
pub mod trainer;
pub mod transaction;
