//! `OnnxForecaster`: a learned forecaster run through ONNX Runtime, one batched inference per call.
//!
//! ONNX Runtime is a shared library loaded at run time (`ort`'s `load-dynamic`): from the file named by
//! `ORT_DYLIB_PATH`, else `libonnxruntime.so` on the library search path. It is loaded once per process;
//! when it cannot be, loading a model fails with [`ForecastError::RuntimeUnavailable`] (never a panic) and
//! [`forecaster_from_config`](super::forecaster_from_config) falls back to a baseline.

use std::f64::consts::TAU;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use ort::environment::Environment;
use ort::session::Session;
use ort::value::{Tensor, TensorElementType};

use super::{check_inputs, ForecastError, Forecaster, SeriesInput};

/// How to install ONNX Runtime so [`OnnxForecaster`] can load it.
pub const ORT_INSTALL_HINT: &str = "Install it with scripts/install-deps.sh, which puts the \
    onnxruntime 1.31 wheel (it ships libonnxruntime.so) in a venv in the cache, and set ORT_DYLIB_PATH to \
    that libonnxruntime.so.* file, as scripts/test.sh does";

const DAY_MS: u128 = 86_400_000;

/// The process's ONNX Runtime environment, or why there is none. Loaded once: `ort` allows one
/// environment per process, and a library that failed to load will not load on a second try either.
static RUNTIME: OnceLock<Result<Environment, String>> = OnceLock::new();

/// The ONNX Runtime environment, loading the library on first use.
fn runtime() -> Result<&'static Environment, ForecastError> {
    let loaded = RUNTIME.get_or_init(|| {
        // Checked here rather than left to the loader so the message names the variable.
        let path = match std::env::var_os("ORT_DYLIB_PATH").filter(|p| !p.is_empty()) {
            Some(path) => {
                let path = PathBuf::from(path);
                if !path.is_file() {
                    return Err(format!(
                        "ORT_DYLIB_PATH is {}, which is not a file",
                        path.display()
                    ));
                }
                path
            }
            None => PathBuf::from(format!(
                "{}onnxruntime{}",
                std::env::consts::DLL_PREFIX,
                std::env::consts::DLL_SUFFIX
            )),
        };
        let builder = ort::init_from(&path).map_err(|e| {
            format!(
                "loading {} failed ({e}); ORT_DYLIB_PATH is {}",
                path.display(),
                std::env::var("ORT_DYLIB_PATH").unwrap_or_else(|_| "unset".into())
            )
        })?;
        builder
            .with_name("shardcast")
            .with_telemetry(false)
            .build()
            .map_err(|e| format!("creating the ONNX Runtime environment failed: {e}"))
    });
    loaded
        .as_ref()
        .map_err(|reason| ForecastError::RuntimeUnavailable {
            reason: reason.clone(),
            hint: ORT_INSTALL_HINT,
        })
}

/// The time-of-day features of the documented model signature: `[sin, cos]` of `2π · (time of day of the
/// first forecast epoch) / 24 h`, where that epoch starts at `next_epoch · tick_ms` ms since the Unix epoch
/// (UTC).
pub fn time_of_day(next_epoch: u64, tick_ms: u64) -> [f32; 2] {
    let ms = u128::from(next_epoch) * u128::from(tick_ms) % DAY_MS;
    let angle = TAU * ms as f64 / DAY_MS as f64;
    [angle.sin() as f32, angle.cos() as f32]
}

/// A forecaster that runs an ONNX model, all series of a call in one inference.
///
/// **Model signature** (any model with it can be plugged in):
/// - input `counts`, `f32 [N, K]`: the last `K` counts of each of the `N` series, oldest first, each divided
///   by its scale `1 + mean of those K values`;
/// - input `time`, `f32 [N, 2]`: [`time_of_day`] of each series' first forecast epoch;
/// - output `forecast`, `f32 [N, H]`: the next `H` counts of each series, divided by the same scale.
///
/// `K` and `H` are read from the model (`N` may be dynamic). Here the forecasts are multiplied back by the
/// scale and clamped at 0. A history longer than `K` uses its last `K` counts; a shorter one is
/// left-padded with its first count (all zeros when it is empty), which reads as "steady at the first
/// value seen" rather than the sudden start that zero-padding would suggest for a series that is merely
/// new to this worker.
pub struct OnnxForecaster {
    session: Session,
    name: String,
    history: usize,
    horizon: usize,
}

impl std::fmt::Debug for OnnxForecaster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OnnxForecaster")
            .field("name", &self.name)
            .field("history", &self.history)
            .field("horizon", &self.horizon)
            .finish()
    }
}

impl OnnxForecaster {
    /// Loads the model at `model_path`, loading ONNX Runtime first if needed, and checks its signature.
    pub fn load(model_path: &Path) -> Result<Self, ForecastError> {
        if !model_path.is_file() {
            return Err(ForecastError::ModelMissing {
                path: model_path.to_path_buf(),
            });
        }
        let environment = runtime()?;
        let bad = |reason: String| ForecastError::BadModel {
            path: model_path.to_path_buf(),
            reason,
        };
        // One thread per session: each dataflow worker owns a session, and workers already use the cores.
        let mut builder = Session::builder(environment)
            .map_err(|e| bad(e.to_string()))?
            .with_intra_threads(1)
            .map_err(|e| bad(e.to_string()))?
            .with_inter_threads(1)
            .map_err(|e| bad(e.to_string()))?;
        let session = builder
            .commit_from_file(model_path)
            .map_err(|e| bad(e.to_string()))?;

        let dims =
            |outlets: &[ort::value::Outlet], name: &str| -> Result<Vec<i64>, ForecastError> {
                let outlet = outlets
                    .iter()
                    .find(|o| o.name() == name)
                    .ok_or_else(|| bad(format!("it has no tensor named `{name}`")))?;
                if outlet.dtype().tensor_type() != Some(TensorElementType::Float32) {
                    return Err(bad(format!("`{name}` is not an f32 tensor")));
                }
                let shape = outlet
                    .dtype()
                    .tensor_shape()
                    .ok_or_else(|| bad(format!("`{name}` is not a tensor")))?;
                if shape.len() != 2 {
                    return Err(bad(format!(
                        "`{name}` has shape {:?}, not [N, _]",
                        &shape[..]
                    )));
                }
                Ok(shape.to_vec())
            };
        if session.inputs().len() != 2 {
            return Err(bad(format!(
                "it has {} inputs; the signature has two, `counts` and `time`",
                session.inputs().len()
            )));
        }
        let counts = dims(session.inputs(), "counts")?;
        let time = dims(session.inputs(), "time")?;
        let forecast = dims(session.outputs(), "forecast")?;
        if time[1] != 2 {
            return Err(bad(format!("`time` has shape {time:?}, not [N, 2]")));
        }
        let fixed = |dim: i64, what: &str| {
            usize::try_from(dim).ok().filter(|d| *d > 0).ok_or_else(|| {
                bad(format!(
                    "the {what} must be a fixed positive size, got {dim}"
                ))
            })
        };
        let history = fixed(counts[1], "history length K of `counts`")?;
        let horizon = fixed(forecast[1], "horizon H of `forecast`")?;
        let stem = model_path
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        Ok(OnnxForecaster {
            session,
            name: format!("onnx:{stem}"),
            history,
            horizon,
        })
    }

    /// `K`: the counts per series the model reads.
    pub fn history_len(&self) -> usize {
        self.history
    }

    /// `H`: the epochs ahead the model forecasts.
    pub fn horizon(&self) -> usize {
        self.horizon
    }

    /// The model's input window for `history`: its last `K` counts, left-padded with its first one.
    fn window(&self, history: &[f64]) -> Vec<f64> {
        let k = self.history;
        let tail = &history[history.len().saturating_sub(k)..];
        let pad = tail.first().copied().unwrap_or(0.0);
        let mut window = vec![pad; k - tail.len()];
        window.extend_from_slice(tail);
        window
    }
}

impl Forecaster for OnnxForecaster {
    fn name(&self) -> &str {
        &self.name
    }

    fn forecast_batch(
        &mut self,
        inputs: &[SeriesInput<'_>],
        horizon: usize,
    ) -> Result<Vec<Vec<f64>>, ForecastError> {
        if horizon > self.horizon {
            return Err(ForecastError::HorizonTooLong {
                requested: horizon,
                supported: self.horizon,
            });
        }
        check_inputs(inputs)?;
        if inputs.is_empty() || horizon == 0 {
            return Ok(vec![Vec::new(); inputs.len()]);
        }
        let (n, k, h) = (inputs.len(), self.history, self.horizon);
        let mut counts = Vec::with_capacity(n * k);
        let mut time = Vec::with_capacity(n * 2);
        let mut scales = Vec::with_capacity(n);
        for input in inputs {
            let window = self.window(input.history);
            let scale = 1.0 + window.iter().sum::<f64>() / k as f64;
            counts.extend(window.iter().map(|c| (c / scale) as f32));
            time.extend(time_of_day(input.next_epoch, input.tick_ms));
            scales.push(scale);
        }
        let failed = |e: ort::Error| ForecastError::Inference(e.to_string());
        let counts = Tensor::from_array(([n, k], counts)).map_err(failed)?;
        let time = Tensor::from_array(([n, 2], time)).map_err(failed)?;
        let outputs = self
            .session
            .run(ort::inputs!["counts" => counts, "time" => time])
            .map_err(failed)?;
        let output = outputs
            .get("forecast")
            .ok_or_else(|| ForecastError::Inference("the model returned no `forecast`".into()))?;
        let (shape, values) = output.try_extract_tensor::<f32>().map_err(failed)?;
        if shape[..] != [n as i64, h as i64] {
            return Err(ForecastError::Inference(format!(
                "`forecast` has shape {:?} for {n} series, expected [{n}, {h}]",
                &shape[..]
            )));
        }
        if let Some(v) = values.iter().find(|v| !v.is_finite()) {
            return Err(ForecastError::Inference(format!(
                "the model forecast {v}, not a finite number"
            )));
        }
        Ok(values
            .chunks(h)
            .zip(scales)
            .map(|(row, scale)| {
                row[..horizon]
                    .iter()
                    .map(|v| (f64::from(*v) * scale).max(0.0))
                    .collect()
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn time_of_day_features() {
        let [s, c] = time_of_day(0, 1000);
        assert_eq!((s, c), (0.0, 1.0));
        // Six hours into a day (a whole number of days later) is a quarter turn.
        let [s, c] = time_of_day(3 * 86_400 + 6 * 3600, 1000);
        assert!((s - 1.0).abs() < 1e-6 && c.abs() < 1e-6, "{s} {c}");
        // No overflow at the far end of time.
        let [s, c] = time_of_day(u64::MAX, u64::MAX);
        assert!(s.is_finite() && c.is_finite());
    }

    #[test]
    fn missing_model_is_an_error() {
        let err = OnnxForecaster::load(Path::new("no/such/model.onnx")).unwrap_err();
        assert!(matches!(err, ForecastError::ModelMissing { .. }), "{err}");
    }
}
