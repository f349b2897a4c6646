//! Units and conversions of the audit (DOMAIN.md): standard coal, CO2, oxygen correction, ppm to
//! mg/m3, pollutant loads. Pure functions on `f64`; every argument and result names its unit.
//!
//! Factors that are conventions rather than constants (coefficients, grid factors) are arguments, so
//! the caller can use the configured value and report which one it used.

/// Lower heating value of 1 kgce, in kJ (GB/T 2589-2020).
pub const KJ_PER_KGCE: f64 = 29_307.0;

/// Molar volume of an ideal gas at 0 °C and 101.325 kPa, in L/mol (flue-gas standard state).
pub const MOLAR_VOLUME_L_PER_MOL: f64 = 22.4;

/// Molar mass of SO2, in g/mol.
pub const MOLAR_MASS_SO2: f64 = 64.06;

/// Molar mass of NO2, in g/mol (NOx is reported as NO2).
pub const MOLAR_MASS_NO2: f64 = 46.01;

/// Oxygen fraction of dry air, in % by volume: the pivot of the oxygen correction.
pub const AIR_O2_PCT: f64 = 21.0;

/// Standard coal equivalent of a consumption: `consumption` (in the carrier's unit: kWh, m3, kg, t,
/// MJ) x `kgce_per_unit` (kgce per that unit) = kgce.
pub fn kgce(consumption: f64, kgce_per_unit: f64) -> f64 {
    consumption * kgce_per_unit
}

/// kgce to tce (tonnes of standard coal equivalent).
pub fn kgce_to_tce(kgce: f64) -> f64 {
    kgce / 1000.0
}

/// tce to kgce.
pub fn tce_to_kgce(tce: f64) -> f64 {
    tce * 1000.0
}

/// Heat in MJ to kgce from the definition 1 kgce = 29 307 kJ (about 0.03412 kgce/MJ).
pub fn mj_to_kgce(mj: f64) -> f64 {
    mj * 1000.0 / KJ_PER_KGCE
}

/// kWh to MWh.
pub fn kwh_to_mwh(kwh: f64) -> f64 {
    kwh / 1000.0
}

/// CO2 of purchased electricity: `mwh` (MWh) x `grid_t_per_mwh` (tCO2/MWh, the configured grid
/// factor, e.g. 0.5703) = tCO2.
pub fn tco2_from_mwh(mwh: f64, grid_t_per_mwh: f64) -> f64 {
    mwh * grid_t_per_mwh
}

/// CO2 of a fuel: `consumption` (in the fuel's unit) x `kg_per_unit` (kgCO2 per unit, e.g. natural
/// gas 2.1622 kgCO2/m3) = kgCO2.
pub fn co2_kg(consumption: f64, kg_per_unit: f64) -> f64 {
    consumption * kg_per_unit
}

/// A per-unit-of-product indicator: `total` (any unit) / `production` (product unit). None when
/// production is zero, negative or not a number, where the ratio means nothing.
pub fn per_unit(total: f64, production: f64) -> Option<f64> {
    (production > 0.0 && production.is_finite()).then(|| total / production)
}

/// Oxygen correction (折算浓度): the concentration `c` (mg/m3) measured at `o2_measured` (% O2, dry)
/// restated at the reference oxygen `o2_ref` (%): `c x (21 - o2_ref) / (21 - o2_measured)`.
///
/// None when `o2_measured` is 21 % or more (the stack is drawing plain air: the correction has no
/// meaning) or an input is not finite.
pub fn o2_corrected(c: f64, o2_measured: f64, o2_ref: f64) -> Option<f64> {
    let denominator = AIR_O2_PCT - o2_measured;
    if !(c.is_finite() && o2_ref.is_finite() && denominator.is_finite()) || denominator <= 0.0 {
        return None;
    }
    Some(c * (AIR_O2_PCT - o2_ref) / denominator)
}

/// Volume fraction (ppm) to mass concentration (mg/m3) at 0 °C: `molar_mass` (g/mol) / 22.4 x ppm.
/// Use [`MOLAR_MASS_SO2`] for SO2 and [`MOLAR_MASS_NO2`] for NOx (NO is reported as NO2).
pub fn ppm_to_mg_m3(ppm: f64, molar_mass: f64) -> f64 {
    molar_mass / MOLAR_VOLUME_L_PER_MOL * ppm
}

/// Mass concentration (mg/m3, 0 °C) to volume fraction (ppm): inverse of [`ppm_to_mg_m3`].
pub fn mg_m3_to_ppm(mg_m3: f64, molar_mass: f64) -> f64 {
    mg_m3 * MOLAR_VOLUME_L_PER_MOL / molar_mass
}

/// Flue-gas pollutant mass rate: `c_mg_m3` (mg/m3, dry, standard state) x `q_m3_h` (m3/h, dry,
/// standard) x 1e-6 = kg/h.
pub fn flue_gas_kg_per_h(c_mg_m3: f64, q_m3_h: f64) -> f64 {
    c_mg_m3 * q_m3_h * 1e-6
}

/// Flue-gas pollutant load over a volume: `c_mg_m3` (mg/m3) x `v_m3` (m3) x 1e-6 = kg.
pub fn flue_gas_load_kg(c_mg_m3: f64, v_m3: f64) -> f64 {
    c_mg_m3 * v_m3 * 1e-6
}

/// Wastewater pollutant load: `c_mg_l` (mg/L) x `v_m3` (m3) x 1e-3 = kg.
pub fn water_load_kg(c_mg_l: f64, v_m3: f64) -> f64 {
    c_mg_l * v_m3 * 1e-3
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `x` rounded to `decimals` places, so a result compares with the figure DOMAIN.md prints.
    fn printed(x: f64, decimals: i32) -> f64 {
        let f = 10f64.powi(decimals);
        (x * f).round() / f
    }

    #[test]
    fn example_1_electricity_to_tce() {
        // 1 250 000 kWh x 0.1229 kgce/kWh = 153.625 tce
        let tce = kgce_to_tce(kgce(1_250_000.0, 0.1229));
        assert_eq!(printed(tce, 3), 153.625);
    }

    #[test]
    fn example_2_comprehensive_energy_per_unit() {
        let electricity = kgce_to_tce(kgce(1_250_000.0, 0.1229));
        let gas = kgce_to_tce(kgce(85_000.0, 1.2143));
        let steam = kgce_to_tce(kgce(1_800.0, 128.6));
        let diesel = kgce_to_tce(kgce(12_000.0, 1.4571));
        assert_eq!(printed(gas, 4), 103.2155);
        assert_eq!(printed(steam, 2), 231.48);
        assert_eq!(printed(diesel, 4), 17.4852);
        let total = electricity + gas + steam + diesel;
        assert_eq!(printed(total, 4), 505.8057);
        let kgce_per_t = per_unit(tce_to_kgce(total), 5_000.0).unwrap_or(f64::NAN);
        assert_eq!(printed(kgce_per_t, 3), 101.161);
    }

    #[test]
    fn example_3_co2() {
        assert_eq!(printed(tco2_from_mwh(1_250.0, 0.5703), 3), 712.875);
        assert_eq!(printed(kwh_to_mwh(1_250_000.0), 3), 1_250.0);
        let gas_t = co2_kg(85_000.0, 2.1622) / 1000.0;
        assert_eq!(printed(gas_t, 3), 183.787);
    }

    #[test]
    fn example_5_pollutant_loads() {
        assert_eq!(printed(flue_gas_kg_per_h(35.0, 120_000.0), 1), 4.2);
        assert_eq!(printed(water_load_kg(48.0, 2_400.0), 1), 115.2);
        assert_eq!(printed(water_load_kg(2.5, 2_400.0), 1), 6.0);
        // One hour at that rate is the same mass as a load over the hour's volume.
        assert_eq!(
            printed(flue_gas_load_kg(35.0, 120_000.0), 6),
            printed(flue_gas_kg_per_h(35.0, 120_000.0), 6)
        );
    }

    #[test]
    fn example_6_oxygen_correction_and_ppm() {
        assert_eq!(
            o2_corrected(120.0, 11.5, 9.0).map(|c| printed(c, 3)),
            Some(151.579)
        );
        assert_eq!(
            o2_corrected(30.0, 8.0, 3.5).map(|c| printed(c, 3)),
            Some(40.385)
        );
        assert_eq!(printed(ppm_to_mg_m3(100.0, MOLAR_MASS_SO2), 3), 285.982);
        assert_eq!(printed(ppm_to_mg_m3(50.0, MOLAR_MASS_NO2), 3), 102.701);
    }

    #[test]
    fn oxygen_correction_without_meaning_is_none() {
        assert_eq!(o2_corrected(120.0, 21.0, 9.0), None);
        assert_eq!(o2_corrected(120.0, 25.0, 9.0), None);
        assert_eq!(o2_corrected(f64::NAN, 8.0, 9.0), None);
        // At the reference oxygen the concentration is unchanged.
        assert_eq!(o2_corrected(50.0, 6.0, 6.0), Some(50.0));
    }

    #[test]
    fn ppm_and_mg_m3_are_inverse() {
        let mg = ppm_to_mg_m3(37.5, MOLAR_MASS_SO2);
        assert!((mg_m3_to_ppm(mg, MOLAR_MASS_SO2) - 37.5).abs() < 1e-12);
    }

    #[test]
    fn heat_coefficient_follows_from_the_kgce_definition() {
        // DOMAIN.md's 0.03412 kgce/MJ is 1000 / 29 307 rounded.
        assert_eq!(printed(mj_to_kgce(1.0), 5), 0.03412);
    }

    #[test]
    fn per_unit_needs_production() {
        assert_eq!(per_unit(2_400_000.0, 60_000.0), Some(40.0));
        assert_eq!(per_unit(1.0, 0.0), None);
        assert_eq!(per_unit(1.0, -5.0), None);
        assert_eq!(per_unit(1.0, f64::NAN), None);
    }
}
