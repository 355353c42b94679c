//! `forecaster_from_config`: a forecaster by name, falling back to Holt when the learned one cannot run.

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};

use super::{Ewma, Forecaster, Holt, LastValue, OnnxForecaster, SeasonalNaive};

/// The kinds [`forecaster_from_config`] knows.
pub const FORECASTER_KINDS: [&str; 5] = ["last", "ewma", "holt", "seasonal-naive", "onnx"];

/// Whether a fallback has been logged in this process: every worker builds its own forecaster, and one
/// warning says it for all of them.
static WARNED: AtomicBool = AtomicBool::new(false);

/// The forecaster of kind `kind` (one of [`FORECASTER_KINDS`]), with the default parameters of the
/// baselines, and a warning when it is not the one asked for.
///
/// `"seasonal-naive"` uses `season` epochs per season (0 is taken as 1). `"onnx"` loads `model` with
/// [`OnnxForecaster::load`]; when no model is given, the file is missing or invalid, or ONNX Runtime cannot
/// be loaded, the job still runs: the result is [`Holt::default`] and the warning says what is missing and
/// how to install it. An unknown kind also falls back to Holt with a warning (configuration checks should
/// reject it earlier). The first warning in a process is also logged with `tracing::warn!`.
pub fn forecaster_from_config(
    kind: &str,
    model: Option<&Path>,
    season: usize,
) -> (Box<dyn Forecaster>, Option<String>) {
    let fallback = |why: String| -> (Box<dyn Forecaster>, Option<String>) {
        let warning = format!("forecaster `{kind}` is not available, using holt instead: {why}");
        if !WARNED.swap(true, Ordering::Relaxed) {
            tracing::warn!("{warning}");
        }
        (Box::new(Holt::default()), Some(warning))
    };
    match kind {
        "last" => (Box::new(LastValue), None),
        "ewma" => (Box::new(Ewma::default()), None),
        "holt" => (Box::new(Holt::default()), None),
        "seasonal-naive" => (
            Box::new(SeasonalNaive {
                season: season.max(1),
            }),
            None,
        ),
        "onnx" => match model {
            None => fallback("no model file was configured for it".into()),
            Some(path) => match OnnxForecaster::load(path) {
                Ok(onnx) => (Box::new(onnx), None),
                Err(e) => fallback(e.to_string()),
            },
        },
        other => fallback(format!(
            "`{other}` is not a forecaster kind; use one of {}",
            FORECASTER_KINDS.join(", ")
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn baselines_by_name() {
        for kind in ["last", "ewma", "holt", "seasonal-naive"] {
            let (f, warning) = forecaster_from_config(kind, None, 0);
            assert_eq!(f.name(), kind);
            assert!(warning.is_none());
        }
    }

    #[test]
    fn onnx_without_a_model_falls_back_to_holt() {
        let (f, warning) = forecaster_from_config("onnx", None, 1);
        assert_eq!(f.name(), "holt");
        assert!(warning.unwrap().contains("no model file"));
        let (f, warning) = forecaster_from_config("onnx", Some(Path::new("missing.onnx")), 1);
        assert_eq!(f.name(), "holt");
        let warning = warning.unwrap();
        assert!(
            warning.contains("missing.onnx") && warning.contains("does not exist"),
            "{warning}"
        );
        // A runtime that cannot be loaded: the only test in this binary that reaches ONNX Runtime, so
        // pointing the variable elsewhere cannot disturb another test.
        std::env::set_var("ORT_DYLIB_PATH", "/nonexistent/libonnxruntime.so");
        let model = Path::new(env!("CARGO_MANIFEST_DIR")).join("Cargo.toml");
        let (f, warning) = forecaster_from_config("onnx", Some(&model), 1);
        assert_eq!(f.name(), "holt");
        let warning = warning.unwrap();
        assert!(
            warning.contains("ONNX Runtime is not available")
                && warning.contains("ORT_DYLIB_PATH")
                && warning.contains("scripts/install-deps.sh"),
            "{warning}"
        );
        let (f, warning) = forecaster_from_config("prophet", None, 1);
        assert_eq!(f.name(), "holt");
        assert!(warning.unwrap().contains("not a forecaster kind"));
    }
}
