//! Chinese for the texts the audit engine writes into the report: notes, why the ratio method was used,
//! why a candidate model is not valid, why no savings are claimed, why a measure has no figure. The report
//! JSON keeps them in English (free text of the contract); a Chinese rendering matches each text against
//! the engine's templates (the `format!` strings of `crate::audit`) and fills the Chinese one.
//! Captured parts are translated in turn (a reason inside a reason, a list joined by `; `). A text that
//! no template matches is shown as it is.

use super::i18n::{indicator_label, Lang};

/// (English template, Chinese template). `{}` captures a part in the English; `{0}`, `{1}` ... place the
/// captured parts, translated, in the Chinese. Specific templates before general ones.
const TEMPLATES: &[(&str, &str)] = &[
    // Periods and the clock.
    (
        "reporting period set on the command line: {} .. {}",
        "报告期由命令行指定：{0} 至 {1}",
    ),
    (
        "no reporting period configured: the baseline period was set on the command line: {} .. {}",
        "未设置报告期：基准期由命令行指定：{0} 至 {1}",
    ),
    (
        "figures as of {} (the last completed local hour); later hours of the periods are not counted",
        "数据截至 {0}（最后一个完整的当地小时），期内此后的小时未计入",
    ),
    // Points.
    (
        "{}: {} hours without a reading inside polling gaps were substituted with the mean of the valid hourly values before and after the gap (counted as its apportioned hours)",
        "{0}：采集中断内 {1} 个无读数小时以中断前后有效小时值的平均值替代（计入该测点的分摊小时数）",
    ),
    (
        "{}: {} low reading{} not counted (step backs: a drop to at least half the reading before, or a single low reading the next one contradicted); the higher reading stayed the reference",
        "{0}：{1} 个偏低读数未计入（回退：读数降至前一读数的一半及以上，或下一读数否定的单个偏低读数），以较高读数为基准",
    ),
    ("{}: read in {}, converted to {} (x {})", "{0}：读数单位为 {1}，换算为 {2}（× {3}）"),
    (
        "{}: unit {} is not a known multiple of {}; values taken as {}",
        "{0}：单位 {1} 不是 {2} 的已知倍数，数值按 {3} 计",
    ),
    (
        "{}: {} of {} baseline {} buckets left out of the model (incomplete data or partial bucket)",
        "{0}：基准期 {2} 个{3}时段中有 {1} 个未纳入模型（数据不完整或时段不完整）",
    ),
    (
        "grade thresholds for {}: no such indicator in this audit",
        "{0} 的等级限值：本次审核无此指标",
    ),
    ("measure {}: ratio method ({})", "方案 {0}：采用比值法（{1}）"),
    (
        "energy quota: the audit has no comprehensive energy indicator (no energy input)",
        "能耗限额：本次审核无综合能耗指标（未配置能源输入）",
    ),
    // Conventions (compute::conventions).
    (
        "counters: a drop to at least half the reading before is a step back (nothing counted, the higher reading stays the reference until the counter passes it); a deeper drop is a rollover when the wrapped delta is at most 10 % of the modulus, otherwise an inferred meter replacement whose new meter is taken to start at zero (never negative consumption)",
        "累计量表：读数降至前一读数的一半及以上为回退（不计量，以较高读数为基准，直至表计读数超过它）；降幅更大时，若翻转后的增量不超过量程的 10 % 视为计数器溢出，否则推定为换表，新表从零起算（用量不会为负）",
    ),
    (
        "a delta across a polling gap or a non-good reading is apportioned linearly over the gap's hours and does not count as covered time",
        "跨越采集中断或非正常读数的增量按小时线性分摊，不计入有效覆盖时间",
    ),
    (
        "a counter drop is decided at the next good reading: if that reading continues the old sequence (at least the reading before the drop, and less above it than the drop was deep) the low reading was a glitch and is discarded (counted per point), otherwise it is the rollover or replacement it looked like",
        "计数器读数下降在下一个正常读数时判定：若该读数延续原序列（不低于下降前的读数，且高出的幅度小于下降幅度），偏低读数为干扰并剔除（按测点计数），否则按溢出或换表处理",
    ),
    (
        "gauges: an hour's value is the mean of the good readings taken within it (HJ 75 hourly average); a covered hour without a reading takes the linear interpolation between the readings around it; an hour without any reading inside a polling gap is substituted with the mean of the valid hourly values before and after the gap (HJ 75-2017 convention for missing hours), flagged as apportioned hours of the point; hours before a point's first or after its last reading are not substituted",
        "瞬时量表：小时值为该小时内正常读数的平均值（HJ 75 小时均值）；有覆盖但无读数的小时取前后读数的线性插值；采集中断内无读数的小时以中断前后有效小时值的平均值替代（HJ 75-2017 缺失小时的处理），计为该测点的分摊小时；测点首个读数之前和最后读数之后的小时不作替代",
    ),
    (
        "pollutant load per hour = the hour's mean concentration x the hour's flow volume (a flow counter's apportioned advance, or a flow gauge's hourly mean x 1 h); water mg/L x m3 x 1e-3, flue gas mg/m3 x m3 x 1e-6",
        "小时污染物排放量 = 小时平均浓度 × 小时流量（累计流量表的分摊增量，或瞬时流量表的小时均值 × 1 h）；废水 mg/L × m3 × 1e-3，废气 mg/m3 × m3 × 1e-6",
    ),
    (
        "valid hour >= 45 min covered; valid day >= {} valid hours; valid week >= {} valid days; valid month >= 25 valid days (February 23)",
        "有效小时：覆盖不少于 45 分钟；有效日：有效小时不少于 {0} 个；有效周：有效日不少于 {1} 个；有效月：有效日不少于 25 个（二月 23 个）",
    ),
    (
        "ASHRAE Guideline 14: monthly thresholds (CV(RMSE) 15 %, NMBE 5 %) also apply to daily and weekly models; hourly 30 % and 10 %; p = the number of the model's coefficients, intercept included (2 for production alone, one more per product or driver of the model), 1 for ratio",
        "ASHRAE Guideline 14：月度阈值（CV(RMSE) 15 %，NMBE 5 %）同样适用于日和周模型；小时模型为 30 % 和 10 %；p 为模型系数个数（含截距；仅产量时为 2，模型每多一个产品或变量加 1），比值法 p = 1",
    ),
    (
        "savings: the model's expected consumption is summed over the days (hours with an hourly model) that carry the indicator's measured total; a day without data adds to neither expected nor actual and is counted as left out",
        "节能量：模型预期消耗量只在载有该指标实测总量的日期（小时模型为小时）上累加；无数据的日期既不计入预期值也不计入实际值，并计为剔除天数",
    ),
    (
        "the reporting period {} .. {} overlaps the baseline period {} .. {}: over the shared days the savings compare a period with itself",
        "报告期 {0} 至 {1} 与基准期 {2} 至 {3} 重叠：重叠日期内的节能量是该时段与自身的比较",
    ),
    // What savings rest on (compute::savings_basis).
    (
        "ratio method, no valid regression ({}): expected = baseline consumption per unit x reporting production, without uncertainty",
        "比值法，无有效回归模型（{0}）：预期值 = 基准期单位产品消耗 × 报告期产量，不计算不确定度",
    ),
    (
        "the baseline model does not meet ASHRAE Guideline 14 (CV(RMSE) {} % against {} %, NMBE {} % against ±{} %): indicative savings",
        "基准模型不符合 ASHRAE Guideline 14（CV(RMSE) {0} %，阈值 {1} %；NMBE {2} %，阈值 ±{3} %）：节能量仅供参考",
    ),
    // Savings not claimed.
    (
        "the model's driver {} has {} % of the reporting period's hours, below min_completeness {} %",
        "模型变量 {0} 在报告期的有效小时占 {1} %，低于 min_completeness {2} %",
    ),
    (
        "in service {}: no elapsed day of the reporting period from then on",
        "{0} 投入使用：此后报告期内尚无已过去的日期",
    ),
    (
        "no data of this indicator in the reporting period",
        "报告期无该指标数据",
    ),
    (
        "no data of this indicator in the baseline period",
        "基准期无该指标数据",
    ),
    ("no production in the reporting period", "报告期无产量"),
    (
        "reporting completeness {} % is below min_completeness {} %",
        "报告期数据完整率 {0} % 低于要求的最低完整率 {1} %，不计节能量",
    ),
    // Measures.
    ("no reporting period", "未设置报告期"),
    (
        "no data of {} in service and baseline periods",
        "{0} 在实施后和基准期均无数据",
    ),
    ("no price for {} in [audit.prices]", "未配置 {0} 的价格"),
    (
        "no sub-meter: whole-plant savings (IPMVP Option C) only",
        "无分表计量：仅有全厂节能量（IPMVP 方案 C）",
    ),
    // Why the ratio method (baseline.rs) and why a candidate is not valid (regression.rs).
    (
        "{}; no baseline production, so no per-unit baseline either",
        "{0}；基准期无产量，因此也无单位产品基准值",
    ),
    (
        "only {} complete {} buckets in the baseline (a regression needs at least {})",
        "基准期仅有 {0} 个完整的{1}时段（回归至少需要 {2} 个）",
    ),
    (
        "production does not vary between baseline buckets",
        "基准期各时段产量无变化",
    ),
    ("no valid regression model ({})", "无有效回归模型（{0}）"),
    ("no valid regression model", "无有效回归模型"),
    (
        "no regression candidate (no variable)",
        "无候选回归模型（无自变量）",
    ),
    (
        "{} buckets for {} coefficients (at least {} needed)",
        "{0} 个时段对应 {1} 个系数（至少需要 {2} 个）",
    ),
    ("{} buckets for {} coefficients", "{0} 个时段对应 {1} 个系数"),
    (
        "model p-value {} is not below {}",
        "模型 p 值 {0} 不低于 {1}",
    ),
    ("model p-value undefined", "模型 p 值无定义"),
    ("a variable's p-value is undefined", "某自变量的 p 值无定义"),
    (
        "a variable's p-value {} is not below {}",
        "某自变量的 p 值 {0} 不低于 {1}",
    ),
    (
        "no variable's p-value is below {}",
        "没有自变量的 p 值低于 {0}",
    ),
    ("R2 {} is below {}", "R² {0} 低于 {1}"),
    (
        "R2 undefined (consumption does not vary)",
        "R² 无定义（用量无变化）",
    ),
    (
        "the variables are collinear or do not vary",
        "自变量共线或无变化",
    ),
    ("not valid", "无效"),
    // Balances, coverage and waste (audit::balance, coverage, waste).
    ("{} was not read", "{0} 未读取"),
    (
        "no hour in which {} and all its sub-meters have data",
        "没有 {0} 及其全部下级表同时有数据的小时",
    ),
    ("no data in the period from {}", "本期无数据：{0}"),
    (
        "no hour in which every water balance point has data",
        "没有水平衡全部测点同时有数据的小时",
    ),
    (
        "no [[audit.input]] of carrier water (取水量)",
        "未配置取水量测点（水的审核输入）",
    ),
    (
        "no point marked reuse = true (重复利用水量)",
        "未标记重复利用水量测点",
    ),
    (
        "no discharge point ([audit.water] discharge or a water pollutant's flow)",
        "无排水量测点（未配置排水量，也无水污染物的流量）",
    ),
    (
        "no consumption point ([audit.water] consumption)",
        "无耗水量测点，漏失水量未计",
    ),
    ("no reading of {} in the period", "本期无 {0} 的读数"),
    (
        "no production in the hours with waste data",
        "有废物数据的小时内无产量",
    ),
    (
        "no [[audit.ledger]] item of this carrier at this level",
        "该介质在该级别无台账条目",
    ),
    ("no data", "无数据"),
    // Granularities inside the templates above.
    ("hour", "小时"),
    ("day", "日"),
    ("week", "周"),
    ("month", "月"),
    // Model diagnostics (audit::diagnostics).
    (
        "coverage {} % of the baseline's days is below {} %",
        "覆盖率 {0} % 低于 {1} %",
    ),
    ("no elapsed day in the baseline period", "基准期内尚无已过去的日"),
    ("longest gap {} days exceeds {} days", "最长缺数 {0} 天，超过 {1} 天"),
    (
        "zero days {} % of the days with data exceed {} %",
        "零值天数占有数据天数的 {0} %，超过 {1} %",
    ),
    (
        "outlier days {} % of the days with data exceed {} %",
        "离群天数占有数据天数的 {0} %，超过 {1} %",
    ),
    (
        "{} non-zero days with data: at least {} are needed to judge outliers",
        "非零有数据日 {0} 天：判定离群值至少需要 {1} 天",
    ),
    (
        "{} buckets for {} coefficients: too few to leave one out",
        "{0} 个时段、{1} 个系数：时段过少，无法留一验证",
    ),
    (
        "the variables are collinear: no leave-one-out fit",
        "变量共线：无法进行留一拟合",
    ),
    (
        "mean consumption is zero: CV(RMSE) undefined",
        "平均消耗量为零：CV(RMSE) 无定义",
    ),
    (
        "bucket {} alone determines a coefficient (leverage 1): no prediction without it",
        "第 {0} 个时段单独决定一个系数（杠杆值为 1）：去掉它后无法预测",
    ),
    (
        "leave-one-out CV(RMSE) is not finite",
        "留一法 CV(RMSE) 不是有限值",
    ),
    (
        "ratio method: no regression to cross-validate",
        "比值法：无回归模型可交叉验证",
    ),
    (
        "ratio method: no regression residuals, no savings uncertainty",
        "比值法：无回归残差，不计算节能量不确定度",
    ),
    (
        "the residuals are all zero: rho undefined, n' = n",
        "残差全为零：ρ 无定义，n′ = n",
    ),
    (
        "rho {} < 0: n (1 - rho)/(1 + rho) = {} exceeds n = {}; n' = n is used",
        "ρ = {0} < 0：n(1−ρ)/(1+ρ) = {1} 大于 n = {2}，采用 n′ = n",
    ),
    ("rho {} <= -1: n' = n = {} is used", "ρ = {0} ≤ −1：采用 n′ = n = {1}"),
    (
        "rho {} >= 1: n' <= 0, no savings uncertainty",
        "ρ = {0} ≥ 1：n′ ≤ 0，不计算节能量不确定度",
    ),
    ("no reporting period", "无报告期"),
    (
        "no baseline bucket in the model: no range to compare with",
        "模型中无基准期时段：无范围可比较",
    ),
    // Last, tried after splitting a list: a candidate's variables and why it failed
    // (`production + hdd: R2 0.41 is below 0.75`).
    ("{}: {}", "{0}：{1}"),
];

/// `text` in `lang`: as it is in English; in Chinese, the engine's text translated where a template
/// matches, as it is otherwise.
pub fn engine_text(lang: Lang, text: &str) -> String {
    match lang {
        Lang::En => text.to_string(),
        Lang::Zh => zh(text, 0),
    }
}

/// What savings rest on, as one cell: the basis, and with a weak model or the ratio method the reason.
pub fn savings_basis_text(
    lang: Lang,
    basis: Option<crate::audit::report::SavingsBasis>,
    note: Option<&str>,
) -> String {
    let label = super::i18n::savings_basis_label(lang, basis);
    match note {
        Some(n) => format!("{label}: {}", engine_text(lang, n)),
        None => label.to_string(),
    }
}

/// A model variable: `production` is 产量 in Chinese; product and driver names are the config's.
pub fn variable_label(lang: Lang, v: &str) -> String {
    match (lang, v) {
        (Lang::Zh, "production") => "产量".to_string(),
        (Lang::Zh, "intercept") => "截距".to_string(),
        _ => v.to_string(),
    }
}

/// The unit of a model coefficient: the intercept in the indicator's unit per model bucket (`kgce/day`),
/// production's in the unit per production unit (`kgce/t`), any other variable's in the unit per unit of
/// that variable (`kgce per unit of hdd`).
pub fn coefficient_unit(
    lang: Lang,
    var: &str,
    total_unit: &str,
    granularity: &str,
    production_unit: &str,
) -> String {
    match (lang, var) {
        (Lang::En, "intercept") => format!("{total_unit}/{granularity}"),
        (Lang::Zh, "intercept") => format!(
            "{total_unit}/{}",
            super::i18n::granularity_label(lang, granularity)
        ),
        (_, "production") => format!("{total_unit}/{production_unit}"),
        (Lang::En, v) => format!("{total_unit} per unit of {v}"),
        (Lang::Zh, v) => format!("{total_unit}/单位{v}"),
    }
}

/// Variables joined as in the engine's reasons: `production + hdd`.
pub fn variables_label(lang: Lang, vars: &[String]) -> String {
    vars.iter()
        .map(|v| variable_label(lang, v))
        .collect::<Vec<_>>()
        .join(" + ")
}

fn zh(text: &str, depth: usize) -> String {
    if depth > 4 {
        return text.to_string();
    }
    let (generic, specific) = TEMPLATES.split_last().unwrap_or((&("", ""), &[]));
    for (en, target) in specific {
        if let Some(parts) = capture(en, text) {
            return fill(target, &parts, depth);
        }
    }
    // A list of reasons (`a; b; c`) that is not itself a template.
    if text.contains("; ") {
        return text
            .split("; ")
            .map(|p| zh(p, depth + 1))
            .collect::<Vec<_>>()
            .join("；");
    }
    if let Some(parts) = capture(generic.0, text) {
        return fill(generic.1, &parts, depth);
    }
    // An indicator or carrier key inside a text (`energy: 3 of 365 ...`, `no price for electricity`).
    let label = indicator_label(Lang::Zh, text);
    if label != text {
        return label;
    }
    // Variables of a candidate (`production + hdd`).
    if text.contains(" + ") || text == "production" {
        let vars: Vec<String> = text.split(" + ").map(str::to_string).collect();
        return variables_label(Lang::Zh, &vars);
    }
    text.to_string()
}

fn fill(target: &str, parts: &[&str], depth: usize) -> String {
    let mut out = target.to_string();
    for (i, p) in parts.iter().enumerate() {
        let p = p.trim_matches('"');
        out = out.replace(&format!("{{{i}}}"), &zh(p, depth + 1));
    }
    out
}

/// The parts of `text` captured by the `{}` of `template`, when it matches the whole text. A part ends at
/// the first occurrence of the literal after it; the last part at the end of the text (minus the
/// template's tail).
fn capture<'t>(template: &str, text: &'t str) -> Option<Vec<&'t str>> {
    let lits: Vec<&str> = template.split("{}").collect();
    let mut rest = text.strip_prefix(lits[0])?;
    if lits.len() == 1 {
        return rest.is_empty().then(Vec::new);
    }
    let mut parts = Vec::with_capacity(lits.len() - 1);
    for (i, lit) in lits.iter().enumerate().skip(1) {
        let last = i == lits.len() - 1;
        let end = if last {
            rest.strip_suffix(lit).map(str::len)?
        } else if lit.is_empty() {
            return None;
        } else {
            rest.find(lit)?
        };
        let part = &rest[..end];
        if part.is_empty() {
            // "low reading{}": the plural is the only part allowed to be empty
            if !(i > 1 && lits[i - 1].ends_with("reading")) {
                return None;
            }
        }
        parts.push(part);
        rest = &rest[end + lit.len()..];
    }
    rest.is_empty().then_some(parts)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn z(s: &str) -> String {
        engine_text(Lang::Zh, s)
    }

    #[test]
    fn english_is_left_as_it_is() {
        let s = "no valid regression model (production: R2 0.4100 is below 0.75)";
        assert_eq!(engine_text(Lang::En, s), s);
    }

    #[test]
    fn savings_basis_overlap_and_driver_texts_in_chinese() {
        assert_eq!(
            z("the baseline model does not meet ASHRAE Guideline 14 (CV(RMSE) 17.2 % against 15 %, NMBE 0.0 % against ±5 %): indicative savings"),
            "基准模型不符合 ASHRAE Guideline 14（CV(RMSE) 17.2 %，阈值 15 %；NMBE 0.0 %，阈值 ±5 %）：节能量仅供参考"
        );
        assert_eq!(
            z("ratio method, no valid regression (production does not vary between baseline buckets): expected = baseline consumption per unit x reporting production, without uncertainty"),
            "比值法，无有效回归模型（基准期各时段产量无变化）：预期值 = 基准期单位产品消耗 × 报告期产量，不计算不确定度"
        );
        assert_eq!(
            z("the reporting period 2024-01-20 .. 2024-02-10 overlaps the baseline period 2024-01-01 .. 2024-01-31: over the shared days the savings compare a period with itself"),
            "报告期 2024-01-20 至 2024-02-10 与基准期 2024-01-01 至 2024-01-31 重叠：重叠日期内的节能量是该时段与自身的比较"
        );
        assert_eq!(
            z("the model's driver hdd has 50.0 % of the reporting period's hours, below min_completeness 75.0 %"),
            "模型变量 hdd 在报告期的有效小时占 50.0 %，低于 min_completeness 75.0 %"
        );
    }

    #[test]
    fn notes_and_reasons_in_chinese() {
        assert_eq!(
            z("reporting period set on the command line: 2026-01-01 .. 2026-07-01"),
            "报告期由命令行指定：2026-01-01 至 2026-07-01"
        );
        assert_eq!(
            z("gas.volume: read in Nm3, converted to m3 (x 1)"),
            "gas.volume：读数单位为 Nm3，换算为 m3（× 1）"
        );
        assert_eq!(
            z("no price for natural_gas in [audit.prices]"),
            "未配置 天然气 的价格"
        );
        assert_eq!(
            z("energy: 12 of 365 baseline day buckets left out of the model (incomplete data or partial bucket)"),
            "综合能耗：基准期 365 个日时段中有 12 个未纳入模型（数据不完整或时段不完整）"
        );
        assert_eq!(
            z("main-power.energy_import: 1 low reading not counted (step backs: a drop to at least half the reading before, or a single low reading the next one contradicted); the higher reading stayed the reference"),
            "main-power.energy_import：1 个偏低读数未计入（回退：读数降至前一读数的一半及以上，或下一读数否定的单个偏低读数），以较高读数为基准"
        );
        assert_eq!(
            z("main-power.energy_import: 3 low readings not counted (step backs: a drop to at least half the reading before, or a single low reading the next one contradicted); the higher reading stayed the reference")
                .chars()
                .take(26)
                .collect::<String>(),
            "main-power.energy_import：3"
        );
        assert_eq!(
            z("measure \"dye-bath heat recovery\": ratio method (only 20 complete day buckets in the baseline (a regression needs at least 30))"),
            "方案 dye-bath heat recovery：采用比值法（基准期仅有 20 个完整的日时段（回归至少需要 30 个））"
        );
    }

    #[test]
    fn nested_reasons_and_lists() {
        assert_eq!(
            z("no valid regression model (production: R2 0.4100 is below 0.75; production + hdd: a variable's p-value 0.2000 is not below 0.1)"),
            "无有效回归模型（产量：R² 0.4100 低于 0.75；产量 + hdd：某自变量的 p 值 0.2000 不低于 0.1）"
        );
        assert_eq!(
            z("production does not vary between baseline buckets; no baseline production, so no per-unit baseline either"),
            "基准期各时段产量无变化；基准期无产量，因此也无单位产品基准值"
        );
        assert_eq!(
            z("reporting completeness 62.5 % is below min_completeness 90.0 %"),
            "报告期数据完整率 62.5 % 低于要求的最低完整率 90.0 %，不计节能量"
        );
    }

    #[test]
    fn unknown_text_is_shown_as_it_is() {
        assert_eq!(z("something new"), "something new");
        assert_eq!(z(""), "");
        assert_eq!(
            variables_label(Lang::Zh, &["production".into(), "dyeing".into()]),
            "产量 + dyeing"
        );
    }
}
