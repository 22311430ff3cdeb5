//! Evaluation metrics, equal to scikit-learn and anomalib.
