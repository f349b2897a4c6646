//! Indicator arithmetic: standard coal, CO2, pollutant loads, and units of input points.

use crate::plan::{Carrier, Medium};

/// Comprehensive energy in kgce of a consumption in the carrier's unit.
pub fn kgce(consumption: f64, kgce_per_unit: f64) -> f64 {
    consumption * kgce_per_unit
}

/// CO2 in kg of a consumption in the carrier's unit.
pub fn co2_kg(consumption: f64, co2_kg_per_unit: f64) -> f64 {
    consumption * co2_kg_per_unit
}

/// kg of CO2 per kWh from a grid factor in tCO2/MWh (numerically equal: t/MWh = kg/kWh).
pub fn grid_co2_kg_per_kwh(t_per_mwh: f64) -> f64 {
    t_per_mwh
}

/// Pollutant load in kg of a concentration (mg/L for water, mg/m3 for flue gas) over a volume in m3:
/// water mg/L x m3 x 1e-3; flue gas mg/m3 x m3 x 1e-6.
pub fn pollutant_kg(medium: Medium, concentration: f64, volume_m3: f64) -> f64 {
    concentration * volume_m3 * medium_factor(medium)
}

/// kg per (concentration unit x m3) of a medium.
pub fn medium_factor(medium: Medium) -> f64 {
    match medium {
        Medium::Water => 1e-3,
        Medium::FlueGas => 1e-6,
    }
}

/// The factor that turns a value in `point_unit` into the carrier's unit, when the units are known multiples
/// of each other (MWh -> kWh x 1000, t -> kg x 1000, GJ -> MJ x 1000, ...). None when they are not related.
pub fn unit_factor(point_unit: &str, carrier: Carrier) -> Option<f64> {
    let u = point_unit.trim();
    let norm = |s: &str| s.replace('³', "3").to_ascii_lowercase();
    let u = norm(u);
    let target = norm(carrier.unit());
    if u == target {
        return Some(1.0);
    }
    let f = match (target.as_str(), u.as_str()) {
        ("kwh", "wh") => 1e-3,
        ("kwh", "mwh") => 1e3,
        ("kwh", "gwh") => 1e6,
        ("m3", "nm3") => 1.0,
        ("m3", "l") => 1e-3,
        ("m3", "km3") => 1e3,
        ("kg", "t") => 1e3,
        ("kg", "g") => 1e-3,
        ("t", "kg") => 1e-3,
        ("mj", "kj") => 1e-3,
        ("mj", "gj") => 1e3,
        ("mj", "kwh") => 3.6,
        _ => return None,
    };
    Some(f)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() <= 1e-9 * b.abs().max(1.0)
    }

    #[test]
    fn domain_example_1_electricity_to_tce() {
        assert!(close(kgce(1_250_000.0, 0.1229) / 1000.0, 153.625));
    }

    #[test]
    fn domain_example_2_one_month_of_comprehensive_energy() {
        let e = kgce(1_250_000.0, Carrier::Electricity.default_kgce_per_unit());
        let g = kgce(85_000.0, Carrier::NaturalGas.default_kgce_per_unit());
        let s = kgce(1_800.0, Carrier::Steam.default_kgce_per_unit());
        let d = kgce(12_000.0, Carrier::Diesel.default_kgce_per_unit());
        assert!(close(g / 1000.0, 103.2155));
        assert!(close(s / 1000.0, 231.48));
        assert!(close(d / 1000.0, 17.4852));
        let total = e + g + s + d;
        assert!(close(total / 1000.0, 505.8057));
        assert!((total / 5_000.0 - 101.161).abs() < 0.0005);
    }

    #[test]
    fn domain_example_3_co2() {
        assert!(close(
            co2_kg(1_250_000.0, grid_co2_kg_per_kwh(0.5703)) / 1000.0,
            712.875
        ));
        assert!(close(co2_kg(85_000.0, 2.1622) / 1000.0, 183.787));
    }

    #[test]
    fn domain_example_5_pollutant_loads() {
        // SO2 35 mg/m3 x 120 000 m3 (one hour at 120 000 m3/h) = 4.2 kg
        assert!(close(pollutant_kg(Medium::FlueGas, 35.0, 120_000.0), 4.2));
        assert!(close(pollutant_kg(Medium::Water, 48.0, 2_400.0), 115.2));
        assert!(close(pollutant_kg(Medium::Water, 2.5, 2_400.0), 6.0));
    }

    #[test]
    fn units_convert_to_the_carrier_unit() {
        assert_eq!(unit_factor("kWh", Carrier::Electricity), Some(1.0));
        assert_eq!(unit_factor("MWh", Carrier::Electricity), Some(1000.0));
        assert_eq!(unit_factor("m³", Carrier::NaturalGas), Some(1.0));
        assert_eq!(unit_factor("t", Carrier::Diesel), Some(1000.0));
        assert_eq!(unit_factor("bananas", Carrier::Water), None);
    }
}
