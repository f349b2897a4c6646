use super::i18n::Lang;
use plantmeter_common::audit::report::Report;
pub struct Truth;
pub enum TruthPeriod {
    Baseline,
}
pub fn display_width(_s: &str) -> usize {
    0
}
pub fn text_table(_report: &Report, _lang: Lang) -> String {
    String::new()
}
pub fn text_table_with_truth(
    _report: &Report,
    _lang: Lang,
    _p: TruthPeriod,
    _t: &[Truth],
) -> String {
    String::new()
}
