use super::i18n::Lang;
use plantmeter_common::audit::report::Report;
pub fn html(_report: &Report, _lang: Lang) -> String {
    String::new()
}
