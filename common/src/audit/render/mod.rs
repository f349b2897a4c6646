//! Rendering the audit `Report`: CSV (Excel), HTML with charts, console table; English and Chinese.
//!
//! Everything here is pure: a `Report` in, bytes or text out. Text that comes from the report (names from
//! the user's config) is escaped for each target: CSV quoting and formula guard, HTML escaping, control
//! characters removed for the terminal.

mod csv;
mod depth;
mod diagnostics;
mod engine_text;
mod facility;
mod format;
mod html;
mod i18n;
mod multiplier;
mod seal;
mod svg;
mod text;
// Feature `xlsx`: the workbook writer is left out of the agent's gateway build (its size budget). Sections
// written only for the workbook (with rust_xlsxwriter types) belong in this module or under the same cfg.
#[cfg(feature = "xlsx")]
mod xlsx;
#[cfg(all(test, feature = "xlsx"))]
mod zh_complete;

/// Reports that hold every field, for the renderings' tests and the agent's (feature `fixture`).
#[cfg(any(test, feature = "fixture"))]
pub mod fixture;

pub use self::csv::csv;
pub use self::engine_text::{engine_text, variable_label, variables_label};
pub use self::html::html;
pub use self::i18n::{indicator_label, Lang};
pub use self::seal::{report_id, seal_line, seal_view, signed_label, SealView};
pub use self::text::{display_width, text_table};
#[cfg(feature = "xlsx")]
pub use self::xlsx::xlsx;
