//! The report's multiplier (倍率) changes, rendered beside the meter replacements (the data-quality
//! table): a dated change is a discontinuity handled like a replacement, and a reader checking the
//! figures needs to see when the factor changed and from what to what.

use super::i18n::Lang;
use crate::audit::report::Report;

/// The section's title and its column heads.
pub(super) fn labels(lang: Lang) -> (&'static str, [&'static str; 4]) {
    match lang {
        Lang::En => (
            "Multiplier changes (PT x CT)",
            [
                "Meter",
                "From (UTC)",
                "Multiplier before",
                "Multiplier after",
            ],
        ),
        Lang::Zh => (
            "倍率变更（PT × CT）",
            ["表计", "变更时间（UTC）", "原倍率", "新倍率"],
        ),
    }
}

/// One row per change, in the report's order: meter, instant, old and new multiplier.
pub(super) fn rows(report: &Report) -> impl Iterator<Item = (&str, &str, f64, f64)> {
    report
        .events
        .multiplier_changes
        .iter()
        .map(|c| (c.meter.as_str(), c.at.as_str(), c.from, c.to))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::audit::render::fixture;
    use crate::audit::report::MultiplierEvent;

    #[test]
    fn html_and_xlsx_list_multiplier_changes_beside_the_replacements() {
        let mut r = fixture::report();
        let h = super::super::html(&r, Lang::En);
        assert!(!h.contains("Multiplier changes"), "none: no section");
        r.events.multiplier_changes.push(MultiplierEvent {
            meter: "main-power".into(),
            at: "2026-03-01T00:00:00Z".into(),
            from: 6000.0,
            to: 8000.0,
        });
        let h = super::super::html(&r, Lang::En);
        let at = h.find("Multiplier changes (PT x CT)").expect("section");
        let row = &h[at..];
        for cell in ["main-power", "2026-03-01T00:00:00Z", "6,000", "8,000"] {
            assert!(row.contains(cell), "missing {cell}: {row:.600}");
        }
        assert!(
            h.find("Meter replacements").is_some_and(|m| m < at),
            "after the data-quality table"
        );
        let z = super::super::html(&r, Lang::Zh);
        assert!(z.contains("倍率变更（PT × CT）") && z.contains("原倍率"));

        use calamine::{open_workbook_from_rs, Data, Reader, Xlsx};
        for (lang, sheet) in [(Lang::En, "Multiplier changes"), (Lang::Zh, "倍率变更")] {
            let bytes = super::super::xlsx(&r, lang).unwrap();
            let mut wb: Xlsx<_> = open_workbook_from_rs(std::io::Cursor::new(bytes)).unwrap();
            let range = wb.worksheet_range(sheet).unwrap();
            let rows: Vec<Vec<Data>> = range.rows().map(<[Data]>::to_vec).collect();
            assert_eq!(rows.len(), 2, "{rows:?}");
            assert_eq!(rows[1][0], Data::String("main-power".into()));
            assert_eq!(rows[1][1], Data::String("2026-03-01T00:00:00Z".into()));
            assert_eq!(
                (&rows[1][2], &rows[1][3]),
                (&Data::Float(6000.0), &Data::Float(8000.0))
            );
        }
    }
}
