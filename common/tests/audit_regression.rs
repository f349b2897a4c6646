//! DOMAIN.md example 9: regression with two products and a driver, model selection, savings, CUSUM and the
//! fractional savings uncertainty of ASHRAE Guideline 14 Annex B.

#![allow(clippy::unwrap_used)]

use plantmeter_common::audit::regression::{
    ols, savings_uncertainty_pct, select, Candidate, Confidence,
};

const A: [f64; 12] = [
    410.0, 380.0, 450.0, 470.0, 500.0, 520.0, 510.0, 530.0, 490.0, 470.0, 440.0, 420.0,
];
const B: [f64; 12] = [
    200.0, 210.0, 190.0, 230.0, 220.0, 250.0, 240.0, 260.0, 230.0, 210.0, 220.0, 200.0,
];
const HDD: [f64; 12] = [
    520.0, 430.0, 300.0, 150.0, 40.0, 0.0, 0.0, 0.0, 30.0, 160.0, 330.0, 480.0,
];
const Y: [f64; 12] = [
    30510.0, 28490.0, 30060.0, 29600.0, 29100.0, 30610.0, 29980.0, 31410.0, 29850.0, 29700.0,
    30250.0, 31050.0,
];

fn close(a: f64, b: f64, tol: f64) -> bool {
    (a - b).abs() <= tol
}

fn candidates() -> Vec<Candidate> {
    let p: Vec<f64> = A.iter().zip(&B).map(|(a, b)| a + 0.8 * b).collect();
    let c = |names: &[&str], cols: Vec<Vec<f64>>| Candidate {
        variables: names.iter().map(|s| s.to_string()).collect(),
        columns: cols,
    };
    vec![
        c(&["production"], vec![p.clone()]),
        c(&["A", "B"], vec![A.to_vec(), B.to_vec()]),
        c(&["production", "hdd"], vec![p, HDD.to_vec()]),
        c(
            &["A", "B", "hdd"],
            vec![A.to_vec(), B.to_vec(), HDD.to_vec()],
        ),
    ]
}

#[test]
fn example_9_candidates_and_the_chosen_model() {
    let sel = select(&candidates(), &Y);
    let pv = |i: usize| sel.tried[i].fit.as_ref().unwrap().p_value.unwrap();
    assert!(close(pv(0), 0.3118, 5e-5), "P alone {}", pv(0));
    assert!(!sel.tried[0].valid());
    assert!(close(pv(1), 0.6165, 5e-5), "A,B {}", pv(1));
    assert!(!sel.tried[1].valid());
    assert!(sel.tried[2].valid(), "{:?}", sel.tried[2].invalid_because);
    let r2a = sel.tried[2].fit.as_ref().unwrap().r2_adj.unwrap();
    assert!(close(r2a, 0.776497, 5e-7), "P + HDD adjusted R2 {r2a}");
    assert_eq!(sel.chosen, Some(3));
    let f = sel.chosen().unwrap().fit.as_ref().unwrap();
    let b = &f.coefficients;
    assert!(close(b[0], 2997.9337, 5e-5), "b0 {}", b[0]);
    assert!(close(b[1], 45.192693, 5e-7), "A {}", b[1]);
    assert!(close(b[2], 16.649607, 5e-7), "B {}", b[2]);
    assert!(close(b[3], 11.360527, 5e-7), "HDD {}", b[3]);
    let p = |j: usize| f.p_values[j].unwrap();
    assert!(close(p(1), 0.000178, 5e-7), "p A {}", p(1));
    assert!(close(p(2), 0.073042, 5e-7), "p B {}", p(2));
    assert!(close(p(3), 0.000122, 5e-7), "p HDD {}", p(3));
    assert!(close(f.r2.unwrap(), 0.871496, 5e-7));
    assert!(close(f.r2_adj.unwrap(), 0.823307, 5e-7));
    assert!(close(f.cv_rmse_pct.unwrap(), 1.125443, 5e-7));
    assert!(sel.reason().is_none());
}

#[test]
fn example_9_savings_cusum_and_uncertainty() {
    let f = ols(&[&A, &B, &HDD], &Y).unwrap();
    let ra = [430.0, 400.0, 470.0, 480.0, 510.0, 530.0];
    let rb = [210.0, 205.0, 200.0, 240.0, 230.0, 255.0];
    let rh = [510.0, 420.0, 310.0, 140.0, 30.0, 0.0];
    let ry = [29050.0, 27400.0, 28500.0, 28010.0, 27720.0, 29100.0];
    let mut expected = 0.0;
    let mut cusum = 0.0;
    for i in 0..6 {
        let e = f.predict(&[ra[i], rb[i], rh[i]], 1.0);
        expected += e;
        cusum += e - ry[i];
    }
    let actual: f64 = ry.iter().sum();
    let savings = expected - actual;
    assert!(close(expected, 183_759.814, 5e-4), "{expected}");
    assert!(close(savings, 13_979.814, 5e-4), "{savings}");
    assert!(close(savings / expected, 0.076077, 5e-7));
    assert!(close(cusum, 13_979.814, 5e-4));
    let rho = f.residual_autocorrelation().unwrap();
    assert!(close(rho, 0.263543, 5e-7), "rho {rho}");
    let fsu90 = savings_uncertainty_pct(&f, savings, expected, 6, Confidence::Pct90).unwrap();
    let fsu68 = savings_uncertainty_pct(&f, savings, expected, 6, Confidence::Pct68).unwrap();
    assert!(close(fsu90, 20.02, 0.005), "FSU 90 {fsu90}");
    assert!(close(fsu68, 11.41, 0.005), "FSU 68 {fsu68}");
}

#[test]
fn no_valid_candidate_gives_the_reason_of_each() {
    let sel = select(&candidates()[..2], &Y);
    assert_eq!(sel.chosen, None);
    let why = sel.reason().unwrap();
    assert!(why.contains("production: model p-value 0.3118"), "{why}");
    assert!(why.contains("A + B: model p-value 0.6165"), "{why}");
}

proptest::proptest! {
    /// The model does not depend on the order of its buckets (only the residuals' autocorrelation does).
    #[test]
    fn the_fit_does_not_depend_on_row_order(seed in 0u64..1000) {
        let mut idx: Vec<usize> = (0..12).collect();
        // A permutation from the seed (Fisher-Yates with a small LCG).
        let mut s = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        for i in (1..idx.len()).rev() {
            s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            idx.swap(i, (s >> 33) as usize % (i + 1));
        }
        let p = |v: &[f64]| idx.iter().map(|&i| v[i]).collect::<Vec<f64>>();
        let (a, b, h, y) = (p(&A), p(&B), p(&HDD), p(&Y));
        let base = ols(&[&A, &B, &HDD], &Y).unwrap();
        let perm = ols(&[&a, &b, &h], &y).unwrap();
        for (x, z) in base.coefficients.iter().zip(&perm.coefficients) {
            proptest::prop_assert!((x - z).abs() <= 1e-9 * x.abs().max(1.0), "{x} vs {z}");
        }
        proptest::prop_assert!((base.r2_adj.unwrap() - perm.r2_adj.unwrap()).abs() < 1e-12);
        proptest::prop_assert!((base.p_value.unwrap() - perm.p_value.unwrap()).abs() < 1e-12);
    }
}

proptest::proptest! {
    /// On random plants (two products, a driver, noise), every candidate's coefficients, p-values and
    /// adjusted R2, and the choice among them, are the same whatever the order of the buckets.
    #[test]
    fn selection_does_not_depend_on_row_order(
        rows in proptest::collection::vec(
            (100.0f64..600.0, 50.0f64..300.0, 0.0f64..500.0, -1.0f64..1.0),
            12..40,
        ),
        (b_a, b_b, b_h, noise) in (0.0f64..60.0, 0.0f64..60.0, 0.0f64..20.0, 10.0f64..2000.0),
        seed in 0u64..1000,
    ) {
        let y: Vec<f64> = rows
            .iter()
            .map(|(a, b, h, e)| 3000.0 + b_a * a + b_b * b + b_h * h + noise * e)
            .collect();
        let col = |k: usize| -> Vec<f64> {
            rows.iter().map(|r| [r.0, r.1, r.2][k]).collect()
        };
        let make = |a: &[f64], b: &[f64], h: &[f64]| -> Vec<Candidate> {
            let p: Vec<f64> = a.iter().zip(b).map(|(a, b)| a + 0.8 * b).collect();
            let c = |names: &[&str], cols: Vec<Vec<f64>>| Candidate {
                variables: names.iter().map(|s| s.to_string()).collect(),
                columns: cols,
            };
            vec![
                c(&["production"], vec![p.clone()]),
                c(&["A", "B"], vec![a.to_vec(), b.to_vec()]),
                c(&["production", "hdd"], vec![p, h.to_vec()]),
                c(&["A", "B", "hdd"], vec![a.to_vec(), b.to_vec(), h.to_vec()]),
            ]
        };
        let (a, b, h) = (col(0), col(1), col(2));
        let mut idx: Vec<usize> = (0..y.len()).collect();
        let mut s = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        for i in (1..idx.len()).rev() {
            s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            idx.swap(i, (s >> 33) as usize % (i + 1));
        }
        let p = |v: &[f64]| idx.iter().map(|&i| v[i]).collect::<Vec<f64>>();
        let base = select(&make(&a, &b, &h), &y);
        let perm = select(&make(&p(&a), &p(&b), &p(&h)), &p(&y));
        let near = |x: f64, z: f64, tol: f64| (x - z).abs() <= tol * x.abs().max(1.0);
        for (x, z) in base.tried.iter().zip(&perm.tried) {
            let (Some(fx), Some(fz)) = (&x.fit, &z.fit) else {
                proptest::prop_assert_eq!(x.fit.is_some(), z.fit.is_some());
                continue;
            };
            for (cx, cz) in fx.coefficients.iter().zip(&fz.coefficients) {
                proptest::prop_assert!(near(*cx, *cz, 1e-7), "{:?}: {} vs {}", x.variables, cx, cz);
            }
            for (px, pz) in fx.p_values.iter().zip(&fz.p_values) {
                let (px, pz) = (px.unwrap_or(f64::NAN), pz.unwrap_or(f64::NAN));
                proptest::prop_assert!(
                    (px - pz).abs() <= 1e-7 || (px.is_nan() && pz.is_nan()),
                    "{:?}: p {} vs {}", x.variables, px, pz
                );
            }
            proptest::prop_assert!(near(fx.r2_adj.unwrap(), fz.r2_adj.unwrap(), 1e-9));
        }
        // The choice is the same unless two candidates tie on adjusted R2 to rounding.
        if base.chosen != perm.chosen {
            let r = |s: &plantmeter_common::audit::regression::Selection| {
                s.chosen().and_then(|t| t.fit.as_ref()).and_then(|f| f.r2_adj)
            };
            proptest::prop_assert!(
                r(&base).zip(r(&perm)).is_some_and(|(x, z)| near(x, z, 1e-9)),
                "chosen {:?} vs {:?}", base.chosen, perm.chosen
            );
        }
    }
}
