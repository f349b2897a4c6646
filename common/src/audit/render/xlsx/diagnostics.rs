//! The models' diagnostics in the workbook (README "Model diagnostics"): a child of the workbook's module,
//! so it is built exactly when the workbook is.

use rust_xlsxwriter::{Workbook, XlsxError};

use super::super::diagnostics::{convention_rows, csv_header, labels, models};
use super::super::engine_text::{engine_text, variable_label};
use super::super::i18n::{yes_no, Lang};
use super::{text, Cell, Formats, Sheet};
use crate::audit::report::Report;

/// XLSX: one sheet of the models' diagnostics (a row per indicator, every figure in its own cell), one of
/// the extrapolation per variable, one of the conventions.
pub(super) fn sheets(
    wb: &mut Workbook,
    f: &Formats,
    report: &Report,
    lang: Lang,
) -> Result<(), XlsxError> {
    let l = labels(lang);
    let h = csv_header(lang);
    let zh = lang == Lang::Zh;
    let mut s = Sheet::add(
        wb,
        if zh {
            "模型诊断"
        } else {
            "Model diagnostics"
        },
        f,
        &[
            l.indicator,
            if zh { "键" } else { "Key" },
            h[0],
            if zh { "天数" } else { "Days" },
            l.days_with_data,
            if zh { "覆盖率" } else { "Coverage" },
            l.longest_gap,
            l.zero_days,
            l.outlier_days,
            l.failed_rules,
            l.cv_fitted,
            l.cv_loo,
            l.rho,
            "n",
            l.n_eff_formula,
            l.n_eff,
            l.note,
        ],
    )?;
    let sep = if zh { "；" } else { "; " };
    for (label, key, d, cv) in models(report, lang) {
        let x = &d.sufficiency;
        let a = &d.autocorrelation;
        let failed: Vec<String> = x.failed.iter().map(|t| engine_text(lang, t)).collect();
        let notes: Vec<String> = d
            .cv_rmse_loo_reason
            .iter()
            .chain(&a.note)
            .map(|n| engine_text(lang, n))
            .collect();
        s.line(vec![
            text(label.clone()),
            text(key),
            text(yes_no(lang, x.pass)),
            Cell::Int(x.days),
            Cell::Int(x.days_with_data),
            Cell::Pct(x.coverage),
            Cell::Int(x.longest_gap_days),
            Cell::Int(x.zero_days),
            x.outlier_days.map_or(Cell::Num(None), Cell::Int),
            text(failed.join(sep)),
            Cell::Num(cv),
            Cell::Num(d.cv_rmse_loo_pct),
            Cell::Num(a.rho),
            Cell::Int(a.n as u64),
            Cell::Num(a.n_eff_formula),
            Cell::Num(a.n_eff),
            text(notes.join(sep)),
        ])?;
    }
    let mut s = Sheet::add(
        wb,
        if zh { "外推" } else { "Extrapolation" },
        f,
        &[
            l.indicator,
            if zh { "键" } else { "Key" },
            l.variable,
            if zh {
                "基准期最小值"
            } else {
                "Baseline min"
            },
            if zh {
                "基准期最大值"
            } else {
                "Baseline max"
            },
            l.buckets_checked,
            l.buckets_unchecked,
            l.below,
            l.above,
            l.days_outside,
            l.max_below,
            l.max_above,
            l.beyond_pct,
        ],
    )?;
    for (label, key, d, _) in models(report, lang) {
        for x in &d.extrapolation {
            s.line(vec![
                text(label.clone()),
                text(key),
                text(variable_label(lang, &x.variable)),
                Cell::Num(Some(x.baseline_min)),
                Cell::Num(Some(x.baseline_max)),
                Cell::Int(x.buckets_checked as u64),
                Cell::Int(x.buckets_unchecked as u64),
                Cell::Int(x.buckets_below as u64),
                Cell::Int(x.buckets_above as u64),
                Cell::Num(Some(x.days_outside)),
                Cell::Num(x.max_below),
                Cell::Num(x.max_above),
                Cell::Num(x.max_beyond_pct_of_range),
            ])?;
        }
    }
    if let Some((_, _, first, _)) = models(report, lang).into_iter().next() {
        let mut s = Sheet::add(
            wb,
            if zh { "模型约定" } else { "Conventions" },
            f,
            &[l.conventions, if zh { "定义" } else { "Definition" }],
        )?;
        for (k, v) in convention_rows(lang, &first.conventions) {
            s.line(vec![text(k), text(v)])?;
        }
        s.line(vec![text(l.eemeter)])?;
        s.ws.set_column_width(1, 60)?;
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::super::super::fixture;
    use super::*;

    #[test]
    fn the_workbook_has_a_diagnostics_sheet_with_figures_in_cells() {
        use calamine::{DataType, Reader, Xlsx};
        let r = fixture::rich();
        let bytes = super::super::xlsx(&r, Lang::En).unwrap();
        let mut wb: Xlsx<_> = Xlsx::new(std::io::Cursor::new(bytes)).unwrap();
        let range = wb.worksheet_range("Model diagnostics").unwrap();
        let rows: Vec<_> = range.rows().collect();
        let energy = rows.iter().find(|r| r[1] == "energy").unwrap();
        assert_eq!(energy[2].to_string(), "yes");
        assert_eq!(energy[4].get_float(), Some(361.0));
        assert_eq!(energy[11].get_float(), Some(5.4));
        assert_eq!(energy[15].get_float(), Some(365.0));
        let water = rows.iter().find(|r| r[1] == "water").unwrap();
        assert_eq!(water[2].to_string(), "no");
        assert!(water[9]
            .to_string()
            .contains("longest gap 182 days exceeds 14 days"));
        let x = wb.worksheet_range("Extrapolation").unwrap();
        let first = x.rows().nth(1).unwrap();
        assert_eq!(first[2].to_string(), "production");
        assert_eq!(first[11].get_float(), Some(20.0));
        assert!(wb.worksheet_range("Conventions").is_ok());
    }
}
