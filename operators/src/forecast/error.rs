//! Why a forecast could not be made.

use std::path::PathBuf;

/// Why a forecaster could not be built or could not forecast.
#[derive(Debug, thiserror::Error)]
pub enum ForecastError {
    /// A parameter of a forecaster is out of its range.
    #[error("invalid forecaster parameter: {0}")]
    InvalidParameter(String),
    /// A history holds a count that is not a finite, non-negative number.
    #[error("invalid forecaster input: {0}")]
    BadInput(String),
    /// The ONNX Runtime library could not be loaded.
    #[error("ONNX Runtime is not available: {reason}. {hint}")]
    RuntimeUnavailable {
        /// What went wrong.
        reason: String,
        /// How to install it.
        hint: &'static str,
    },
    /// The model file does not exist.
    #[error("forecast model {} does not exist", path.display())]
    ModelMissing {
        /// The path that was given.
        path: PathBuf,
    },
    /// The model could not be loaded or does not have the documented signature.
    #[error("forecast model {}: {reason}", path.display())]
    BadModel {
        /// The model file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// Running the model failed.
    #[error("forecast inference failed: {0}")]
    Inference(String),
    /// More epochs were asked for than the model forecasts.
    #[error("the model forecasts {supported} epochs ahead, {requested} were asked for")]
    HorizonTooLong {
        /// Epochs asked for.
        requested: usize,
        /// Epochs the model produces.
        supported: usize,
    },
}
