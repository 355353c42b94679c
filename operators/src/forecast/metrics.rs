//! Forecast accuracy: mean absolute error, WAPE and MASE.
//!
//! The slices are paired element by element; slices of different lengths are a caller's mistake and give
//! `NaN` rather than a figure over some of the points.

/// Mean absolute error `Σ|actual − forecast| / n` (0 for no points, `NaN` for different lengths).
pub fn mae(actual: &[f64], forecast: &[f64]) -> f64 {
    if actual.len() != forecast.len() {
        return f64::NAN;
    }
    if actual.is_empty() {
        return 0.0;
    }
    abs_error(actual, forecast) / actual.len() as f64
}

/// Weighted absolute percentage error `Σ|actual − forecast| / Σ|actual|`: the share of the load that was
/// forecast wrongly. 0 when there is neither load nor error; infinite when there is error but no load.
pub fn wape(actual: &[f64], forecast: &[f64]) -> f64 {
    if actual.len() != forecast.len() {
        return f64::NAN;
    }
    ratio(
        abs_error(actual, forecast),
        actual.iter().map(|a| a.abs()).sum(),
    )
}

/// Mean absolute scaled error: the MAE of `forecast` divided by the MAE of `reference_forecast` on the
/// same points (the project uses the seasonal-naive forecast as the reference). Below 1 the forecast beats
/// the reference. 1 when both are exact; infinite when only the reference is.
pub fn mase(actual: &[f64], forecast: &[f64], reference_forecast: &[f64]) -> f64 {
    if actual.len() != forecast.len() || actual.len() != reference_forecast.len() {
        return f64::NAN;
    }
    let model = abs_error(actual, forecast);
    let reference = abs_error(actual, reference_forecast);
    if model == 0.0 && reference == 0.0 {
        return 1.0;
    }
    ratio(model, reference)
}

fn abs_error(actual: &[f64], forecast: &[f64]) -> f64 {
    actual
        .iter()
        .zip(forecast)
        .map(|(a, f)| (a - f).abs())
        .sum()
}

/// `num / den` with `0 / 0 = 0` and `x / 0 = ∞`.
fn ratio(num: f64, den: f64) -> f64 {
    if den == 0.0 {
        if num == 0.0 {
            0.0
        } else {
            f64::INFINITY
        }
    } else {
        num / den
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn definitions() {
        let actual = [10.0, 0.0, 30.0];
        let forecast = [12.0, 1.0, 27.0];
        assert!((mae(&actual, &forecast) - 2.0).abs() < 1e-12);
        assert!((wape(&actual, &forecast) - 6.0 / 40.0).abs() < 1e-12);
        let naive = [5.0, 10.0, 0.0];
        assert!((mase(&actual, &forecast, &naive) - 6.0 / 45.0).abs() < 1e-12);
        assert_eq!(mase(&actual, &naive, &naive), 1.0);
    }

    #[test]
    fn edge_cases() {
        assert_eq!(wape(&[0.0], &[0.0]), 0.0);
        assert_eq!(wape(&[0.0], &[1.0]), f64::INFINITY);
        assert!(wape(&[1.0], &[]).is_nan());
        assert_eq!(mase(&[1.0], &[1.0], &[1.0]), 1.0);
        assert_eq!(mase(&[1.0], &[2.0], &[1.0]), f64::INFINITY);
        assert_eq!(mae(&[], &[]), 0.0);
    }
}
