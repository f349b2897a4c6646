//! English and Chinese labels for every rendered report. Chinese uses the terms of the cleaner-production
//! audit (清洁生产审核): 单位产品综合能耗, 节能量, 清洁生产等级, 基准期, 报告期 ...

use crate::audit::report::{BaselineMethod, Level, PeriodKind, SavingsBasis};

/// The language of a rendered report.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lang {
    En,
    Zh,
}

impl Lang {
    /// `"en"` or `"zh"` (also `zh-CN`, `zh_CN`, any case); anything else is `None`.
    pub fn parse(s: &str) -> Option<Lang> {
        match s.trim().to_ascii_lowercase().as_str() {
            "en" | "en-us" | "en_us" | "en-gb" | "en_gb" => Some(Lang::En),
            "zh" | "zh-cn" | "zh_cn" | "zh-hans" => Some(Lang::Zh),
            _ => None,
        }
    }

    /// The labels of this language.
    pub fn labels(self) -> &'static Labels {
        match self {
            Lang::En => &EN,
            Lang::Zh => &ZH,
        }
    }

    /// The HTML `lang` attribute.
    pub fn html_tag(self) -> &'static str {
        match self {
            Lang::En => "en",
            Lang::Zh => "zh-CN",
        }
    }
}

/// Every fixed text of the renderers, one field per label, so a label missing in one language does not
/// compile.
pub struct Labels {
    pub title: &'static str,
    pub gateway: &'static str,
    pub site: &'static str,
    pub generated_at: &'static str,
    pub period: &'static str,
    pub baseline: &'static str,
    pub reporting: &'static str,
    /// Scatter series of model buckets with incomplete data (left out of the fit).
    pub incomplete_buckets: &'static str,
    pub other: &'static str,
    pub from: &'static str,
    pub to_inclusive: &'static str,
    pub days: &'static str,
    pub production: &'static str,
    pub completeness: &'static str,
    pub no_reporting: &'static str,
    pub summary: &'static str,
    pub indicators: &'static str,
    pub indicator: &'static str,
    pub key: &'static str,
    pub unit: &'static str,
    pub per_unit_unit: &'static str,
    pub baseline_total: &'static str,
    pub baseline_per_unit: &'static str,
    pub reporting_total: &'static str,
    pub reporting_per_unit: &'static str,
    pub expected: &'static str,
    pub savings: &'static str,
    pub savings_pct: &'static str,
    pub model_method: &'static str,
    pub granularity: &'static str,
    pub n: &'static str,
    pub r2: &'static str,
    pub r2_adj: &'static str,
    pub overall_grade: &'static str,
    pub compliance: &'static str,
    pub over_standard: &'static str,
    pub over_total: &'static str,
    pub over_energy_quota: &'static str,
    pub limit: &'static str,
    pub valid_hours: &'static str,
    pub exceedance_hours: &'static str,
    pub max_converted: &'static str,
    pub year: &'static str,
    pub permit_t: &'static str,
    pub emitted_t: &'static str,
    pub share: &'static str,
    pub energy_quota: &'static str,
    pub emission_source: &'static str,
    pub measures: &'static str,
    pub measure: &'static str,
    pub in_service: &'static str,
    pub investment_yuan: &'static str,
    pub savings_yuan: &'static str,
    pub payback_years: &'static str,
    pub p_value: &'static str,
    pub cv_rmse_pct: &'static str,
    pub nmbe_pct: &'static str,
    pub meets_ashrae14: &'static str,
    pub level: &'static str,
    pub date: &'static str,
    pub month: &'static str,
    pub yes: &'static str,
    pub no: &'static str,
    pub regression: &'static str,
    pub ratio: &'static str,
    pub reason: &'static str,
    pub intercept: &'static str,
    pub slope: &'static str,
    pub charts: &'static str,
    pub chart_scatter: &'static str,
    pub chart_scatter_x: &'static str,
    pub chart_scatter_y: &'static str,
    pub fitted_line: &'static str,
    pub chart_monthly: &'static str,
    pub chart_cusum: &'static str,
    pub chart_cusum_note: &'static str,
    pub cusum_axis: &'static str,
    pub per_unit: &'static str,
    pub baseline_average: &'static str,
    pub no_data: &'static str,
    pub method: &'static str,
    pub factors: &'static str,
    pub point: &'static str,
    pub carrier: &'static str,
    pub kgce_per_unit: &'static str,
    pub co2_kg_per_unit: &'static str,
    pub source: &'static str,
    pub electricity_method: &'static str,
    pub equivalent_value: &'static str,
    pub equal_value: &'static str,
    pub grid_factor: &'static str,
    pub grid_factor_year: &'static str,
    pub timezone: &'static str,
    pub model_statistics: &'static str,
    pub thresholds: &'static str,
    pub data_quality: &'static str,
    pub rollovers: &'static str,
    pub replacements: &'static str,
    pub apportioned_hours: &'static str,
    pub notes: &'static str,
    pub method_intro: &'static str,
    pub level_below_iii: &'static str,
    pub variables: &'static str,
}

const EN: Labels = Labels {
    title: "Cleaner-production audit data annex (baseline data and performance accounting)",
    gateway: "Gateway",
    site: "Site",
    generated_at: "Generated at",
    period: "Period",
    baseline: "Baseline period",
    reporting: "Reporting period",
    incomplete_buckets: "Incomplete data (not in the model)",
    other: "Other",
    from: "From",
    to_inclusive: "To (inclusive)",
    days: "Days",
    production: "Production",
    completeness: "Data completeness",
    no_reporting: "No reporting period configured",
    summary: "Summary",
    indicators: "Indicators",
    indicator: "Indicator",
    key: "Key",
    unit: "Unit",
    per_unit_unit: "Per-unit unit",
    baseline_total: "Baseline total",
    baseline_per_unit: "Baseline per unit",
    reporting_total: "Reporting total",
    reporting_per_unit: "Reporting per unit",
    expected: "Expected (baseline model)",
    savings: "Savings",
    savings_pct: "Savings %",
    model_method: "Model method",
    granularity: "Granularity",
    n: "n",
    r2: "R²",
    r2_adj: "Adjusted R²",
    overall_grade: "Overall grade",
    compliance: "Limits and triggers",
    over_standard: "Over the emission standard",
    over_total: "Over the permitted total",
    over_energy_quota: "Over the energy quota",
    emission_source: "Source",
    measures: "Measures and money",
    measure: "Measure",
    in_service: "In service",
    investment_yuan: "Investment (yuan)",
    savings_yuan: "Savings (yuan)",
    payback_years: "Simple payback (years)",
    limit: "Limit",
    valid_hours: "Valid hours",
    exceedance_hours: "Exceedance hours",
    max_converted: "Highest hourly (converted)",
    year: "Year",
    permit_t: "Permitted (t/year)",
    emitted_t: "Emitted (t)",
    share: "Share of the pro-rata permit",
    energy_quota: "Energy quota (per unit)",
    p_value: "p-value (F test)",
    cv_rmse_pct: "CV(RMSE) %",
    nmbe_pct: "NMBE %",
    meets_ashrae14: "Meets ASHRAE 14",
    level: "Cleaner-production level",
    date: "Date",
    month: "Month",
    yes: "yes",
    no: "no",
    regression: "Regression",
    ratio: "Ratio method",
    reason: "Reason",
    intercept: "Intercept",
    slope: "Slope",
    charts: "Charts",
    chart_scatter: "Energy consumption vs production",
    chart_scatter_x: "Production",
    chart_scatter_y: "Comprehensive energy",
    fitted_line: "Baseline model",
    chart_monthly: "Per unit of product by month",
    chart_cusum: "CUSUM of savings over the reporting period",
    chart_cusum_note:
        "Cumulative sum of (expected − actual) comprehensive energy; a rising line means savings.",
    cusum_axis: "Cumulative savings",
    per_unit: "per unit",
    baseline_average: "Baseline average",
    no_data: "no data",
    method: "Method",
    factors: "Conversion factors",
    point: "Point",
    carrier: "Carrier",
    kgce_per_unit: "kgce per unit",
    co2_kg_per_unit: "CO2 kg per unit",
    source: "Source",
    electricity_method: "Electricity to standard coal",
    equivalent_value: "equivalent value (当量值)",
    equal_value: "equal value (等价值)",
    grid_factor: "Grid emission factor",
    grid_factor_year: "year",
    timezone: "Time zone",
    model_statistics: "Baseline model statistics",
    thresholds: "ASHRAE Guideline 14 thresholds",
    data_quality: "Data completeness per point",
    rollovers: "Rollovers",
    replacements: "Meter replacements",
    apportioned_hours: "Apportioned hours",
    notes: "Notes",
    method_intro:
        "Comprehensive energy in standard coal equivalent per GB/T 2589-2020: totals in tonnes (tce), \
        per unit of product in kilograms (kgce). \
        Baseline model: ordinary least squares of consumption on production (ISO 50006 / IPMVP), \
        or the ratio method where the data cannot support a model. Savings = expected − actual. \
        A valid hour has at least 45 minutes of data.",
    level_below_iii: "below III",
    variables: "Variables",
};

const ZH: Labels = Labels {
    title: "清洁生产审核数据附件（基础数据与绩效核算）",
    gateway: "网关",
    site: "厂区",
    generated_at: "生成时间",
    period: "时期",
    baseline: "基准期",
    reporting: "报告期",
    incomplete_buckets: "数据不完整（未纳入模型）",
    other: "其他",
    from: "起",
    to_inclusive: "止（含）",
    days: "天数",
    production: "产量",
    completeness: "数据完整率",
    no_reporting: "未设置报告期",
    summary: "概况",
    indicators: "指标",
    indicator: "指标",
    key: "代码",
    unit: "单位",
    per_unit_unit: "单位产品指标单位",
    baseline_total: "基准期总量",
    baseline_per_unit: "基准期单位产品值",
    reporting_total: "报告期总量",
    reporting_per_unit: "报告期单位产品值",
    expected: "报告期预期值（基准模型）",
    savings: "节能量/节水量/减排量",
    savings_pct: "节能率/节约率 %",
    model_method: "基准模型",
    granularity: "时间粒度",
    n: "样本数 n",
    r2: "决定系数 R²",
    r2_adj: "调整后 R²",
    overall_grade: "综合评价等级",
    compliance: "限值与审核触发条件",
    over_standard: "超标排放",
    over_total: "超总量排放",
    over_energy_quota: "超能耗限额",
    emission_source: "排放源",
    measures: "清洁生产方案及经济效益",
    measure: "方案",
    in_service: "实施日期",
    investment_yuan: "投资（元）",
    savings_yuan: "节约金额（元）",
    payback_years: "静态投资回收期（年）",
    limit: "排放限值",
    valid_hours: "有效小时数",
    exceedance_hours: "超标小时数",
    max_converted: "最高小时折算浓度",
    year: "年份",
    permit_t: "许可排放量（吨/年）",
    emitted_t: "实际排放量（吨）",
    share: "占按比例许可量",
    energy_quota: "能耗限额（单位产品）",
    p_value: "p 值（F 检验）",
    cv_rmse_pct: "CV(RMSE) %",
    nmbe_pct: "NMBE %",
    meets_ashrae14: "符合 ASHRAE 14",
    level: "清洁生产等级",
    date: "日期",
    month: "月份",
    yes: "是",
    no: "否",
    regression: "回归模型",
    ratio: "比值法",
    reason: "原因",
    intercept: "截距",
    slope: "斜率",
    charts: "图表",
    chart_scatter: "综合能耗与产量",
    chart_scatter_x: "产量",
    chart_scatter_y: "综合能耗",
    fitted_line: "基准模型",
    chart_monthly: "各月单位产品指标",
    chart_cusum: "报告期累积和 (CUSUM)",
    chart_cusum_note: "（预期值 − 实际值）综合能耗的累积和；曲线上升表示节能。",
    cusum_axis: "累积节能量",
    per_unit: "单位产品",
    baseline_average: "基准期平均",
    no_data: "无数据",
    method: "方法说明",
    factors: "折标系数与排放因子",
    point: "测点",
    carrier: "能源/介质",
    kgce_per_unit: "折标系数 kgce/单位",
    co2_kg_per_unit: "CO2 排放因子 kg/单位",
    source: "来源",
    electricity_method: "电力折标方法",
    equivalent_value: "当量值",
    equal_value: "等价值",
    grid_factor: "电网排放因子",
    grid_factor_year: "年份",
    timezone: "时区",
    model_statistics: "基准模型统计",
    thresholds: "ASHRAE Guideline 14 阈值",
    data_quality: "各测点数据完整率",
    rollovers: "计数器溢出次数",
    replacements: "换表次数",
    apportioned_hours: "分摊小时数",
    notes: "备注",
    method_intro: "综合能耗按 GB/T 2589-2020 折算为标准煤：总量以吨标准煤 (tce) 计，单位产品综合能耗以千克标准煤 (kgce) 计。\
        基准模型：能耗对产量的最小二乘回归模型 (ISO 50006 / IPMVP)，数据不足以建立模型时采用比值法。\
        节能量 = 预期值 − 实际值。有效小时须有不少于 45 分钟的数据。",
    level_below_iii: "未达Ⅲ级",
    variables: "自变量",
};

/// The label of an indicator key (`energy`, `electricity`, `COD`, ...); unknown keys are shown as they are.
pub fn indicator_label(lang: Lang, key: &str) -> String {
    let known = match lang {
        Lang::En => match key {
            "energy" => Some("Comprehensive energy consumption"),
            "electricity" => Some("Electricity"),
            "natural_gas" => Some("Natural gas"),
            "coal" => Some("Coal"),
            "diesel" => Some("Diesel"),
            "steam" => Some("Steam"),
            "heat" => Some("Heat"),
            "water" => Some("Water intake"),
            "material" => Some("Material"),
            "co2" => Some("CO2 emissions"),
            "SO2" => Some("Sulphur dioxide SO2"),
            "NOx" => Some("Nitrogen oxides NOx"),
            "dust" => Some("Smoke and dust"),
            "CO2" => Some("Carbon dioxide CO2"),
            "VOCs" => Some("Volatile organic compounds VOCs"),
            "COD" => Some("Chemical oxygen demand COD"),
            "NH3-N" => Some("Ammonia nitrogen NH3-N"),
            "TN" => Some("Total nitrogen TN"),
            "TP" => Some("Total phosphorus TP"),
            "heavy_metals" => Some("Heavy metals"),
            _ => None,
        },
        Lang::Zh => match key {
            "energy" => Some("综合能耗"),
            "electricity" => Some("电"),
            "natural_gas" => Some("天然气"),
            "coal" => Some("煤"),
            "diesel" => Some("柴油"),
            "steam" => Some("蒸汽"),
            "heat" => Some("热力"),
            "water" => Some("取水量"),
            "material" => Some("物料"),
            "co2" => Some("二氧化碳排放量"),
            "SO2" => Some("二氧化硫"),
            "NOx" => Some("氮氧化物"),
            "dust" => Some("烟(粉)尘"),
            "CO2" => Some("二氧化碳"),
            "VOCs" => Some("挥发性有机物"),
            "COD" => Some("化学需氧量 COD"),
            "NH3-N" => Some("氨氮 NH3-N"),
            "TN" => Some("总氮"),
            "TP" => Some("总磷"),
            "heavy_metals" => Some("重金属"),
            _ => None,
        },
    };
    known.map_or_else(|| key.to_string(), str::to_string)
}

/// The label of an indicator's per-unit figure: 单位产品综合能耗, 单位产品取水量, ...
pub fn per_unit_label(lang: Lang, key: &str) -> String {
    match (lang, key) {
        (Lang::En, "energy") => "Comprehensive energy consumption per unit of product".to_string(),
        (Lang::En, "water") => "Water intake per unit of product".to_string(),
        (Lang::En, _) => format!("{} per unit of product", indicator_label(lang, key)),
        (Lang::Zh, "energy") => "单位产品综合能耗".to_string(),
        (Lang::Zh, "water") => "单位产品取水量".to_string(),
        (Lang::Zh, "co2") => "单位产品二氧化碳排放量".to_string(),
        (Lang::Zh, _) => format!("单位产品{}", indicator_label(lang, key)),
    }
}

/// The label of an energy carrier of `[[audit.input]]`; unknown carriers as they are.
pub fn carrier_label(lang: Lang, carrier: &str) -> String {
    match carrier {
        "electricity" | "natural_gas" | "coal" | "diesel" | "steam" | "heat" | "material" => {
            indicator_label(lang, carrier)
        }
        "water" => match lang {
            Lang::En => "Water".to_string(),
            Lang::Zh => "水".to_string(),
        },
        other => other.to_string(),
    }
}

/// A grade of the cleaner-production indicator system: `I` -> Ⅰ级 / `Level I`; `below III` -> 未达Ⅲ级.
pub fn level_label(lang: Lang, level: Level) -> String {
    match (lang, level) {
        (_, Level::BelowIII) => lang.labels().level_below_iii.to_string(),
        (Lang::En, l) => format!("Level {}", l.as_str()),
        (Lang::Zh, Level::I) => "Ⅰ级".to_string(),
        (Lang::Zh, Level::II) => "Ⅱ级".to_string(),
        (Lang::Zh, Level::III) => "Ⅲ级".to_string(),
    }
}

/// `baseline` / `reporting` / `other` -> 基准期 / 报告期 / 其他.
pub fn period_label(lang: Lang, period: PeriodKind) -> String {
    let l = lang.labels();
    match period {
        PeriodKind::Baseline => l.baseline.to_string(),
        PeriodKind::Reporting => l.reporting.to_string(),
        PeriodKind::Other => l.other.to_string(),
    }
}

/// `regression` / `ratio` -> 回归模型 / 比值法.
pub fn method_label(lang: Lang, method: BaselineMethod) -> String {
    let l = lang.labels();
    match method {
        BaselineMethod::Regression => l.regression.to_string(),
        BaselineMethod::Ratio => l.ratio.to_string(),
    }
}

/// What savings rest on, as a column value: valid model, weak model (outside ASHRAE 14), ratio method; empty
/// without savings.
pub fn savings_basis_label(lang: Lang, basis: Option<SavingsBasis>) -> &'static str {
    match (basis, lang) {
        (None, _) => "",
        (Some(SavingsBasis::ValidModel), Lang::En) => "valid model",
        (Some(SavingsBasis::ValidModel), Lang::Zh) => "有效模型",
        (Some(SavingsBasis::WeakModel), Lang::En) => "weak model (outside ASHRAE 14)",
        (Some(SavingsBasis::WeakModel), Lang::Zh) => "模型未达 ASHRAE 14 要求",
        (Some(SavingsBasis::Ratio), Lang::En) => "ratio method (no valid model)",
        (Some(SavingsBasis::Ratio), Lang::Zh) => "比值法（无有效模型）",
    }
}

/// The caveat shown beside savings from a weak model or the ratio method (DOMAIN.md "Honest figures");
/// None beside savings from a valid model.
pub fn savings_caveat(lang: Lang, basis: Option<SavingsBasis>) -> Option<&'static str> {
    match (basis?, lang) {
        (SavingsBasis::ValidModel, _) => None,
        (SavingsBasis::WeakModel, Lang::En) => Some("⚠ weak model, indicative only"),
        (SavingsBasis::WeakModel, Lang::Zh) => Some("⚠ 模型未达标，仅供参考"),
        (SavingsBasis::Ratio, Lang::En) => Some("⚠ ratio method, no valid model"),
        (SavingsBasis::Ratio, Lang::Zh) => Some("⚠ 比值法，无有效模型"),
    }
}

/// Beside savings: how many days of the reporting period had no data and were left out of them.
pub fn days_left_out(lang: Lang, days: u64) -> String {
    match (lang, days) {
        (Lang::En, 1) => "1 day without data left out".to_string(),
        (Lang::En, n) => format!("{n} days without data left out"),
        (Lang::Zh, n) => format!("{n} 天无数据，未计入"),
    }
}

/// The first chart when the energy model has several variables (measured against predicted): caption, x
/// axis, y axis, the 1:1 line's legend.
pub fn predicted_chart_text(lang: Lang) -> [&'static str; 4] {
    match lang {
        Lang::En => [
            "Energy per model bucket: measured against the baseline model's prediction",
            "Predicted by the baseline model",
            "Measured",
            "1:1 (measured = predicted)",
        ],
        Lang::Zh => [
            "各模型时段综合能耗：实测值与基准模型预测值",
            "基准模型预测值",
            "实测值",
            "1:1 线（实测值 = 预测值）",
        ],
    }
}

/// `hour` / `day` / `week` / `month` -> 小时 / 日 / 周 / 月.
pub fn granularity_label(lang: Lang, g: &str) -> String {
    match (lang, g) {
        (Lang::En, _) => g.to_string(),
        (Lang::Zh, "hour") => "小时".to_string(),
        (Lang::Zh, "day") => "日".to_string(),
        (Lang::Zh, "week") => "周".to_string(),
        (Lang::Zh, "month") => "月".to_string(),
        (Lang::Zh, other) => other.to_string(),
    }
}

/// `equivalent` / `equal` -> 当量值 / 等价值.
pub fn electricity_method_label(lang: Lang, m: &str) -> String {
    let l = lang.labels();
    match m {
        "equivalent" => l.equivalent_value.to_string(),
        "equal" => l.equal_value.to_string(),
        other => other.to_string(),
    }
}

/// The source of a factor: `default (GB/T 2589-2020)` -> 默认值 (GB/T 2589-2020); `configured` -> 配置值.
pub fn source_label(lang: Lang, source: &str) -> String {
    match lang {
        Lang::En => source.to_string(),
        Lang::Zh => {
            if let Some(rest) = source.strip_prefix("default") {
                format!("默认值{rest}")
            } else if source == "configured" {
                "配置值".to_string()
            } else {
                source.to_string()
            }
        }
    }
}

/// yes / no, 是 / 否.
pub fn yes_no(lang: Lang, b: bool) -> &'static str {
    if b {
        lang.labels().yes
    } else {
        lang.labels().no
    }
}

// Balances, metering coverage and waste (render/depth.rs).

/// Labels of the balances, coverage and waste tables.
pub struct DepthLabels {
    pub balances: &'static str,
    pub water_balance: &'static str,
    pub coverage: &'static str,
    pub ledger: &'static str,
    pub waste: &'static str,
    pub carrier: &'static str,
    pub parent: &'static str,
    pub children: &'static str,
    pub parent_total: &'static str,
    pub children_total: &'static str,
    pub unmetered: &'static str,
    pub unmetered_pct: &'static str,
    pub tolerance_pct: &'static str,
    pub status: &'static str,
    pub hours: &'static str,
    pub balanced: &'static str,
    pub unmetered_beyond: &'static str,
    pub meter_fault: &'static str,
    pub no_data: &'static str,
    pub intake: &'static str,
    pub reuse: &'static str,
    pub total_use: &'static str,
    pub discharge: &'static str,
    pub consumption: &'static str,
    pub losses: &'static str,
    pub losses_pct: &'static str,
    pub reuse_rate: &'static str,
    pub level: &'static str,
    pub level_site: &'static str,
    pub level_sub_unit: &'static str,
    pub level_equipment: &'static str,
    pub item: &'static str,
    pub required: &'static str,
    pub installed: &'static str,
    pub rate: &'static str,
    pub min_pct: &'static str,
    pub meets: &'static str,
    pub meters: &'static str,
    pub class: &'static str,
    pub multiplier: &'static str,
    pub waste_name: &'static str,
    pub kind: &'static str,
    pub solid: &'static str,
    pub hazardous: &'static str,
    pub total_t: &'static str,
    pub per_unit: &'static str,
    pub hazardous_per_year: &'static str,
    pub trigger: &'static str,
}

const DEPTH_EN: DepthLabels = DepthLabels {
    balances: "Meter balances",
    water_balance: "Water balance",
    coverage: "Metering coverage",
    ledger: "Metering ledger",
    waste: "Solid and hazardous waste",
    carrier: "Carrier",
    parent: "Parent meter",
    children: "Sub-meters",
    parent_total: "Parent reading",
    children_total: "Sum of sub-meters",
    unmetered: "Unmetered (losses and unmetered use)",
    unmetered_pct: "Unmetered share",
    tolerance_pct: "Tolerance",
    status: "Status",
    hours: "Hours with data",
    balanced: "within tolerance",
    unmetered_beyond: "unmetered beyond tolerance",
    meter_fault: "meter fault: sub-meters above the parent",
    no_data: "no data",
    intake: "Intake",
    reuse: "Reused water",
    total_use: "Total use",
    discharge: "Discharge",
    consumption: "Consumption",
    losses: "Losses",
    losses_pct: "Losses, share of intake",
    reuse_rate: "Water reuse rate",
    level: "Level",
    level_site: "site boundary",
    level_sub_unit: "main sub-unit",
    level_equipment: "main equipment",
    item: "Unit or equipment",
    required: "Meters required",
    installed: "Meters installed",
    rate: "Coverage",
    min_pct: "Required coverage",
    meets: "Meets",
    meters: "Meters (accuracy class, multiplier)",
    class: "class",
    multiplier: "multiplier",
    waste_name: "Waste",
    kind: "Kind",
    solid: "solid",
    hazardous: "hazardous",
    total_t: "Total",
    per_unit: "Per unit of product",
    hazardous_per_year: "Hazardous waste a year",
    trigger: "100 t/a or more (mandatory audit)",
};

const DEPTH_ZH: DepthLabels = DepthLabels {
    balances: "计量平衡（能量平衡、水平衡）",
    water_balance: "水平衡",
    coverage: "计量器具配备率",
    ledger: "计量器具台账",
    waste: "固体废物与危险废物",
    carrier: "介质",
    parent: "上级表",
    children: "下级表",
    parent_total: "上级表计量值",
    children_total: "下级表合计",
    unmetered: "未计量量（损失及未计量用量）",
    unmetered_pct: "未计量占比",
    tolerance_pct: "允许偏差",
    status: "状态",
    hours: "有数据小时数",
    balanced: "在允许偏差内",
    unmetered_beyond: "未计量量超出允许偏差",
    meter_fault: "表计故障：下级表大于上级表",
    no_data: "无数据",
    intake: "取水量",
    reuse: "重复利用水量",
    total_use: "总用水量",
    discharge: "排水量",
    consumption: "耗水量",
    losses: "漏失水量",
    losses_pct: "漏失率（占取水量）",
    reuse_rate: "水重复利用率",
    level: "级别",
    level_site: "进出用能单位",
    level_sub_unit: "主要次级用能单位",
    level_equipment: "主要用能设备",
    item: "用能单位或设备",
    required: "应配数量",
    installed: "实配数量",
    rate: "配备率",
    min_pct: "要求配备率",
    meets: "是否达标",
    meters: "计量器具（准确度等级、倍率）",
    class: "准确度等级",
    multiplier: "倍率",
    waste_name: "废物",
    kind: "类别",
    solid: "一般工业固体废物",
    hazardous: "危险废物",
    total_t: "产生量",
    per_unit: "单位产品产生量",
    hazardous_per_year: "危险废物年产生量",
    trigger: "年产生量 100 t 及以上（强制审核）",
};

/// The labels of the balances, coverage and waste tables in `lang`.
pub fn depth_labels(lang: Lang) -> &'static DepthLabels {
    match lang {
        Lang::En => &DEPTH_EN,
        Lang::Zh => &DEPTH_ZH,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_accepts_en_and_zh_only() {
        assert_eq!(Lang::parse("en"), Some(Lang::En));
        assert_eq!(Lang::parse("zh"), Some(Lang::Zh));
        assert_eq!(Lang::parse("ZH-CN"), Some(Lang::Zh));
        assert_eq!(Lang::parse("fr"), None);
        assert_eq!(Lang::parse(""), None);
    }

    #[test]
    fn audit_terms_in_chinese() {
        let z = Lang::Zh;
        assert_eq!(per_unit_label(z, "energy"), "单位产品综合能耗");
        assert_eq!(per_unit_label(z, "water"), "单位产品取水量");
        assert_eq!(indicator_label(z, "energy"), "综合能耗");
        assert_eq!(indicator_label(z, "NH3-N"), "氨氮 NH3-N");
        assert_eq!(indicator_label(z, "dust"), "烟(粉)尘");
        assert_eq!(indicator_label(z, "VOCs"), "挥发性有机物");
        assert_eq!(level_label(z, Level::I), "Ⅰ级");
        assert_eq!(level_label(z, Level::II), "Ⅱ级");
        assert_eq!(level_label(z, Level::III), "Ⅲ级");
        assert_eq!(level_label(z, Level::BelowIII), "未达Ⅲ级");
        assert_eq!(level_label(Lang::En, Level::II), "Level II");
        assert_eq!(level_label(Lang::En, Level::BelowIII), "below III");
        assert_eq!(method_label(z, BaselineMethod::Ratio), "比值法");
        assert_eq!(method_label(z, BaselineMethod::Regression), "回归模型");
        assert_eq!(
            savings_caveat(z, Some(SavingsBasis::Ratio)),
            Some("⚠ 比值法，无有效模型")
        );
        assert_eq!(savings_caveat(z, Some(SavingsBasis::ValidModel)), None);
        assert_eq!(
            savings_basis_label(z, Some(SavingsBasis::WeakModel)),
            "模型未达 ASHRAE 14 要求"
        );
        assert_eq!(carrier_label(z, "natural_gas"), "天然气");
        assert_eq!(carrier_label(z, "water"), "水");
        assert_eq!(electricity_method_label(z, "equal"), "等价值");
        assert!(z.labels().savings.contains("节能量"));
        assert_eq!(z.labels().level, "清洁生产等级");
    }

    #[test]
    fn unknown_keys_are_shown_as_they_are() {
        assert_eq!(indicator_label(Lang::Zh, "xylene"), "xylene");
        assert_eq!(indicator_label(Lang::En, "<b>x</b>"), "<b>x</b>");
    }
}
