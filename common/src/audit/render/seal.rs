//! What every rendering shows of the report's seal: the SHA-256 of the report JSON's canonical form
//! (README "Report integrity"), whether that digest is signed, and the report's id. A printed page, a
//! workbook or a CSV thereby names the one JSON it was rendered from, and `plantmeter verify --json`
//! checks that they agree.

use crate::audit::report::Report;

use super::i18n::Lang;

/// The seal as the renderings show it.
#[derive(Debug, Clone, PartialEq)]
pub struct SealView<'a> {
    /// The JSON's SHA-256 (lower-case hex); `None` for a report that was never sealed.
    pub sha256: Option<&'a str>,
    /// Whether the JSON carries an ed25519 signature of that digest.
    pub signed: bool,
    /// [`report_id`].
    pub id: String,
}

/// The report's id: its gateway and the UTC instant it was computed, `gw-01-20260702T010000Z`; unique
/// per gateway and second, and readable on a printed page.
pub fn report_id(report: &Report) -> String {
    let at = chrono::DateTime::parse_from_rfc3339(&report.generated_at).map_or_else(
        |_| report.generated_at.clone(),
        |t| {
            t.with_timezone(&chrono::Utc)
                .format("%Y%m%dT%H%M%SZ")
                .to_string()
        },
    );
    format!("{}-{at}", report.gateway)
}

/// The seal of `report`.
pub fn seal_view(report: &Report) -> SealView<'_> {
    let integrity = report.integrity.as_ref();
    SealView {
        sha256: integrity.map(|i| i.sha256.as_str()),
        signed: integrity.is_some_and(|i| i.signature.is_some()),
        id: report_id(report),
    }
}

/// "signed (ed25519)", "not signed" or "not sealed", in `lang`.
pub fn signed_label(lang: Lang, seal: &SealView<'_>) -> &'static str {
    match (lang, seal.sha256.is_some(), seal.signed) {
        (Lang::En, true, true) => "signed (ed25519)",
        (Lang::En, true, false) => "not signed",
        (Lang::En, false, _) => "not sealed",
        (Lang::Zh, true, true) => "已签名（ed25519）",
        (Lang::Zh, true, false) => "未签名",
        (Lang::Zh, false, _) => "未封存",
    }
}

/// One line for a page footer or a note: `Report gw-01-20260702T010000Z · SHA-256 of report.json 3f2a…
/// · signed (ed25519)`.
pub fn seal_line(lang: Lang, seal: &SealView<'_>) -> String {
    let sha = seal.sha256.unwrap_or("–");
    match lang {
        Lang::En => format!(
            "Report {} · SHA-256 of report.json {sha} · {}",
            seal.id,
            signed_label(lang, seal)
        ),
        Lang::Zh => format!(
            "报告编号 {} · 报告 JSON 文件的 SHA-256 {sha} · {}",
            seal.id,
            signed_label(lang, seal)
        ),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::audit::report::Integrity;

    #[test]
    fn the_seal_names_digest_signature_and_id() {
        let mut r = super::super::fixture::report();
        assert_eq!(report_id(&r), "gw-01-20260702T010000Z");
        let s = seal_view(&r);
        assert_eq!((s.sha256, s.signed), (None, false));
        assert!(seal_line(Lang::En, &s).ends_with("not sealed"));
        r.integrity = Some(Integrity {
            sha256: "ab".repeat(32),
            signature: Some("cd".repeat(64)),
            public_key: None,
        });
        let s = seal_view(&r);
        assert!(s.signed);
        assert_eq!(
            seal_line(Lang::En, &s),
            format!(
                "Report gw-01-20260702T010000Z · SHA-256 of report.json {} · signed (ed25519)",
                "ab".repeat(32)
            )
        );
        assert!(seal_line(Lang::Zh, &s).contains("已签名"));
    }
}
