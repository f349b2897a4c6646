//! The validated configuration: what `Config` (TOML) becomes once `config::load` has proved it.
//! Nothing downstream re-checks a string: names are valid, references resolve, requests are batched.

use std::path::PathBuf;
use std::time::Duration;

use chrono::{FixedOffset, NaiveDate};
use serde::Serialize;

use crate::types::{ByteOrder, DataType, PointKind, RegisterKind};

/// The whole validated configuration.
#[derive(Debug, Clone, Serialize)]
pub struct Plan {
    /// The file it was read from (for messages).
    pub source: PathBuf,
    pub gateway: Gateway,
    pub mqtt: Mqtt,
    pub buses: Vec<Bus>,
    /// Manual meters (`manual = true`): read by hand or taken from the ERP, filled only by `import`.
    pub manual_meters: Vec<Meter>,
    pub audit: Option<AuditPlan>,
    /// Optional local Prometheus endpoint (`[metrics] listen = "127.0.0.1:9898"`); None = no listening port.
    pub metrics_listen: Option<String>,
    /// `[report] sign_key_file`: ed25519 private key (PKCS#8 PEM) signing every report.
    pub sign_key_file: Option<PathBuf>,
    /// `[hj212]`: the uplink to an environmental monitoring platform (HJ 212-2017).
    pub hj212: Option<Hj212Plan>,
    /// `[import]`: how `plantmeter import` reads a plant's spreadsheets.
    pub import: ImportPlan,
    /// A desk audit: no `[[bus]]` (only manual meters) and `[gateway]` or `[mqtt]` left out, so nothing is
    /// polled or published; `run` refuses it, `import`, `report`, `verify`, `check` work. `gateway` then
    /// holds defaults (id and site "desk", data_dir "plantmeter-data" beside the config) and `mqtt` a
    /// loopback placeholder that nothing connects to.
    pub desk: bool,
}

/// `[import]`: the header map and the rules for spreadsheets (`plantmeter import`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Default)]
pub struct ImportPlan {
    /// A date-only row (a daily logbook) is the day's reading at this local time, in seconds after
    /// midnight (`daily_at = "08:00"`; default 0, midnight).
    pub daily_at_s: u32,
    /// Headers added to the built-in map (`headers = { "抄表时间" = "ts" }`), as written.
    pub headers: Vec<(String, ImportField)>,
    /// `--wide` columns named otherwise than `meter.point` (`columns = { "1#电表" = "main-power.energy" }`).
    pub columns: Vec<(String, String)>,
}

/// What a column of a long import file holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum ImportField {
    /// The time of the reading.
    Ts,
    Meter,
    /// The point's name, or `meter.point` when there is no meter column.
    Point,
    Value,
}

impl ImportField {
    pub fn parse(s: &str) -> Option<ImportField> {
        match s {
            "ts" => Some(ImportField::Ts),
            "meter" => Some(ImportField::Meter),
            "point" => Some(ImportField::Point),
            "value" => Some(ImportField::Value),
            _ => None,
        }
    }
}

/// `[hj212]`: what the HJ 212 uplink sends, where, and how.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Hj212Plan {
    /// The platform, `host:port` (TCP).
    pub address: String,
    /// MN, the monitoring point's identifier (1..=24 letters and digits).
    pub mn: String,
    /// The access password (PW) is read from this file at start, never from the config.
    pub password_file: PathBuf,
    /// ST, the system code (31 flue gas, 32 waste water), two digits.
    pub st: u8,
    /// CN 2051 every this many minutes (a divisor of 60); 0: off.
    pub minute: u32,
    /// CN 2061 hourly statistics.
    pub hour: bool,
    /// CN 2031 daily statistics.
    pub day: bool,
    /// CN 2011 real-time data every this long; None: off.
    pub realtime: Option<Duration>,
    /// Ask for CN 9014 and re-send each packet until it arrives.
    pub ack: bool,
    /// 2017 or 2025 (HJ 212-2025: Flag version 000010, SM4, heartbeat, RF=1 on re-sent data).
    pub version: u16,
    /// 2025: the SM4 key (16 characters or 32 hex digits); None: not encrypted.
    pub sm4_key_file: Option<PathBuf>,
    /// 2025: cipher text as raw bytes or `{0x..}` text, length field of the plain or sent bytes.
    pub sm4_form: crate::hj212::sm4::Form,
    pub sm4_length: crate::hj212::sm4::LengthOf,
    /// Apply the platform's set-time command (CN 1012); else it is refused (QnRtn 2).
    pub allow_set_time: bool,
    /// 2025: heartbeat (CN 9015) this often while connected.
    pub heartbeat: Option<Duration>,
    /// HJ 212 times (DataTime, QN, BeginTime/EndTime) are local: `[audit] timezone`, else +08:00.
    #[serde(serialize_with = "ser_offset")]
    pub timezone: FixedOffset,
    pub factors: Vec<Hj212Factor>,
}

/// One `[[hj212.factor]]`: a pollutant code and the point its values come from.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Hj212Factor {
    /// The pollutant code (`w01018` COD, `w00000` waste-water flow, `a21026` SO2, ...).
    pub code: String,
    pub point: PointRef,
    /// Gauge: -Min -Avg -Max (-Rtd); counter: -Cou = the interval's increase, in `unit`.
    pub kind: PointKind,
    pub unit: String,
    /// A concentration's flow: -Cou = the interval's load in kg.
    pub flow: Option<Hj212Flow>,
    /// A concentration of an `[[audit.pollutant]]` with `o2`: its O2 point and reference O2 % (-ZsAvg).
    pub o2: Option<(PointRef, f64)>,
    /// Sent in packets of its own ST instead of `[hj212] st`: 44, the electricity of a production or
    /// treatment facility (分表计电, HJ 212-2025).
    pub st: Option<u8>,
}

/// The flow of a concentration factor, and how concentration x flow becomes kg.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Hj212Flow {
    pub point: PointRef,
    /// Counter in m3, or gauge in m3/h.
    pub kind: PointKind,
    /// kg per (concentration unit x m3): 1e-3 for mg/L, 1e-6 for mg/m3.
    pub kg_per_unit_m3: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct Gateway {
    /// `[A-Za-z0-9_-]`, 1..64 characters.
    pub id: String,
    pub site: String,
    /// Directory of the sled store.
    pub data_dir: PathBuf,
    /// Bound on the store, in MiB.
    pub store_max_mb: u64,
    /// Delivered records kept for `P/cmd/replay` (MiB, within `store_max_mb`; default a quarter).
    pub retain_delivered_mb: u64,
    /// The enterprise's name and its industry, shown on reports.
    pub enterprise: Option<String>,
    pub industry: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Mqtt {
    /// The URL as written (`mqtt://host:port` or `mqtts://host:port`).
    pub url: String,
    pub host: String,
    pub port: u16,
    /// True for `mqtts://`.
    pub tls: bool,
    pub client_id: String,
    /// Topic prefix P, without a trailing slash.
    pub topic_prefix: String,
    pub username: Option<String>,
    /// The password is read from this file at start, never from the config itself.
    pub password_file: Option<PathBuf>,
    /// Environment variable holding the password (`password_env`), as an alternative to `password_file`.
    pub password_env: Option<String>,
    pub ca_file: Option<PathBuf>,
    pub client_cert_file: Option<PathBuf>,
    pub client_key_file: Option<PathBuf>,
    /// MQTT keep-alive (default 30 s).
    pub keep_alive: Duration,
    /// Maximum unacknowledged QoS 1 publishes in flight (default 100).
    pub max_inflight: u16,
}

/// How a bus reaches its meters.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub enum Transport {
    /// Modbus TCP (MBAP framing).
    Tcp { address: String },
    /// RTU frames (with CRC) carried over a TCP stream, as by a transparent serial-to-Ethernet converter.
    RtuOverTcp { address: String },
    /// RTU on a local serial line.
    Rtu(SerialSettings),
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SerialSettings {
    pub device: PathBuf,
    pub baud: u32,
    pub parity: Parity,
    /// 5..=8
    pub data_bits: u8,
    /// 1 or 2
    pub stop_bits: u8,
}

impl SerialSettings {
    /// Start bit, data bits, parity bit, stop bits: 11 for 8E1.
    pub fn bits_per_char(&self) -> u32 {
        1 + u32::from(self.data_bits)
            + u32::from(self.stop_bits)
            + u32::from(self.parity != Parity::None)
    }

    /// The Modbus RTU inter-frame silence: 3.5 character times, at least 1.75 ms above 19200 baud.
    pub fn inter_frame_gap(&self) -> Duration {
        let bits_per_char = 1
            + u32::from(self.data_bits)
            + u32::from(self.stop_bits)
            + u32::from(self.parity != Parity::None);
        if self.baud > 19_200 {
            Duration::from_micros(1750)
        } else {
            Duration::from_secs_f64(3.5 * f64::from(bits_per_char) / f64::from(self.baud.max(1)))
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Parity {
    None,
    Even,
    Odd,
}

#[derive(Debug, Clone, Serialize)]
pub struct Bus {
    pub name: String,
    pub transport: Transport,
    /// Per-request timeout.
    pub timeout: Duration,
    /// Retries after a failed request (0 = one attempt).
    pub retries: u32,
    pub meters: Vec<Meter>,
    /// Modbus, or DL/T 645 / CJ/T 188 (then `Transport::Rtu` is the serial line and
    /// `Transport::RtuOverTcp` a serial server in transparent mode).
    pub protocol: Protocol,
}

/// What a bus speaks.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub enum Protocol {
    Modbus,
    Meter(MeterBus),
}

/// A DL/T 645 or CJ/T 188 bus: one request at a time, meters in config order.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MeterBus {
    pub kind: MeterProtocol,
    /// Wake-up bytes sent before each request (default FE FE FE FE).
    pub preamble: Vec<u8>,
    /// Silence between a reply (or timeout) and the next request.
    pub gap: Duration,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum MeterProtocol {
    Dlt645(crate::dlt645::Version),
    Cjt188,
}

impl MeterBus {
    /// Bytes on the line for one point's read: (request, reply), each with this bus's preamble
    /// (meters echo a preamble of their own, usually as long).
    pub fn exchange_bytes(&self, point: &LinkPoint) -> (usize, usize) {
        let pre = self.preamble.len();
        match point {
            // 68 A(6) 68 C L DI CS 16 (+ the value in the reply).
            LinkPoint::Dlt645 { spec, .. } => {
                let head = pre + 12 + self.kind.di_len();
                (head, head + usize::from(spec.len))
            }
            // 68 T A(7) C L DI(2) SER CS 16 (+ the meter kind's payload in the reply).
            LinkPoint::Cjt188 { kind, .. } => (pre + 16, pre + 16 + kind.payload_len()),
        }
    }

    /// Line time of one read at `baud` with `bits_per_char` (11 for 8E1), plus the gap; the
    /// meter's own answer delay (20..500 ms in the standard) comes on top.
    pub fn exchange_time(&self, point: &LinkPoint, baud: u32, bits_per_char: u32) -> Duration {
        let (req, rep) = self.exchange_bytes(point);
        self.line_time(req + rep, baud, bits_per_char)
    }

    /// Line time of `bytes` (a request and its reply) at `baud`, plus the gap.
    pub fn line_time(&self, bytes: usize, baud: u32, bits_per_char: u32) -> Duration {
        let bits = bytes as f64 * f64::from(bits_per_char);
        Duration::from_secs_f64(bits / f64::from(baud.max(1))) + self.gap
    }
}

impl MeterProtocol {
    /// Bytes of a data identifier on the wire.
    pub fn di_len(self) -> usize {
        match self {
            MeterProtocol::Dlt645(v) => v.di_len(),
            MeterProtocol::Cjt188 => 2,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            MeterProtocol::Dlt645(v) => v.as_str(),
            MeterProtocol::Cjt188 => "cjt188",
        }
    }
}

/// How a DL/T 645 or CJ/T 188 meter is addressed and what each point reads.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MeterLink {
    /// Wire bytes, low first (6 for DL/T 645, 7 for CJ/T 188).
    pub address: Vec<u8>,
    /// The address as configured (12 or 14 digits).
    pub address_text: String,
    /// CJ/T 188 type byte T (0 for DL/T 645).
    pub meter_type: u8,
    pub di_order: crate::cjt188::DiOrder,
    /// Parallel to `Meter::points`.
    pub points: Vec<LinkPoint>,
    /// The requests of one poll, in order (`meter_read::plan_reads`): points sharing a data block
    /// (DL/T 645-2007) or a reply (CJ/T 188's 901F) are read together.
    pub reads: Vec<LinkRead>,
}

/// One request of a poll of a DL/T 645 / CJ/T 188 meter.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LinkRead {
    /// The data identifier sent: a point's own, or its data block's (DI1 = FFH).
    pub di: u32,
    /// The points it answers: (index in `Meter::points`, the item's place in a block's reply).
    pub items: Vec<(usize, usize)>,
    /// A DL/T 645 data block: a meter that refuses it is read point by point instead.
    pub block: bool,
}

/// What one point of a DL/T 645 or CJ/T 188 meter reads.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub enum LinkPoint {
    Dlt645 {
        di: u32,
        spec: crate::dlt645::Spec,
    },
    Cjt188 {
        di: u16,
        kind: crate::cjt188::MeterKind,
        field: crate::cjt188::Field,
        /// A counter's default rollover is 1 000 000.00 in the unit the meter counts in (its
        /// register's range), converted to the point's unit: the unit code it assumed (the
        /// template's), checked against each reply's unit byte. None: a gauge, or a rollover set
        /// in the config.
        modulus_unit: Option<u8>,
    },
}

/// 倍率: the meter counts on the secondary side of its transformers (DOMAIN.md).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Multiplier {
    /// PT x CT (or `multiplier`) for energy and power points, from the start.
    pub energy: f64,
    /// Voltage points (V, kV) are scaled by the PT ratio.
    pub pt: f64,
    /// Current points (A) by the CT ratio.
    pub ct: f64,
    /// Dated changes of the energy multiplier, in time order.
    pub changes: Vec<MultiplierChange>,
}

/// `[[meter.multiplier_change]]`: from `at` on, `value` applies to new readings.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MultiplierChange {
    /// Unix milliseconds.
    pub at_ms: i64,
    /// As written (RFC 3339), for messages and the report.
    pub at: String,
    pub value: f64,
}

/// Which factor of a multiplier a point's unit takes.
fn multiplier_class(unit: &str) -> Option<u8> {
    match unit {
        "kWh" | "Wh" | "MWh" | "kvarh" | "kVAh" | "kW" | "W" | "MW" | "kvar" | "kVA" => Some(0),
        "V" | "kV" => Some(1),
        "A" | "kA" => Some(2),
        _ => None,
    }
}

impl Multiplier {
    /// The energy multiplier in force at `ts_ms`.
    pub fn energy_at(&self, ts_ms: i64) -> f64 {
        self.changes
            .iter()
            .rev()
            .find(|c| c.at_ms <= ts_ms)
            .map_or(self.energy, |c| c.value)
    }

    /// The factor a point of `unit` is scaled by at `ts_ms` (1 for units it does not touch).
    pub fn factor(&self, unit: &str, ts_ms: i64) -> f64 {
        match multiplier_class(unit) {
            Some(0) => self.energy_at(ts_ms),
            Some(1) => self.pt,
            Some(2) => self.ct,
            _ => 1.0,
        }
    }

    /// Whether a point of `unit` is scaled by the (changing) energy multiplier.
    pub fn scales_energy(unit: &str) -> bool {
        multiplier_class(unit) == Some(0)
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Meter {
    /// `[a-z0-9_-]`, unique in the config.
    pub name: String,
    /// 0..=247
    pub unit_id: u8,
    /// Poll period in the (possibly virtual) clock's time; may be below one second.
    pub poll_interval: Duration,
    /// The template it was expanded from, if any (`template = "sdm630"`).
    pub template: Option<String>,
    /// Points in config order.
    pub points: Vec<Point>,
    /// Read requests after batching, covering every point exactly once.
    pub requests: Vec<ReadRequest>,
    /// A manual meter (`manual = true`): no bus, never polled, filled only by `import`.
    pub manual: bool,
    /// DL/T 645 / CJ/T 188 address and data identifiers (None on a Modbus bus).
    pub link: Option<MeterLink>,
    /// 倍率 (None: values as read).
    pub multiplier: Option<Multiplier>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Point {
    /// `[a-z0-9_-]` (and `.`-free), unique within its meter.
    pub name: String,
    pub register: RegisterKind,
    /// 0-based protocol address.
    pub address: u16,
    pub data_type: DataType,
    /// Resolved for this point's width (a meter default applies by family).
    pub byte_order: ByteOrder,
    /// value = raw * scale + offset
    pub scale: f64,
    pub offset: f64,
    pub unit: String,
    pub kind: PointKind,
    /// Counter modulus in scaled units: configured, or the type's range times scale. None for gauges of floats.
    pub rollover: Option<f64>,
    /// Values outside [min, max] are quality `invalid`.
    pub min: Option<f64>,
    pub max: Option<f64>,
}

/// One Modbus read request of a batched plan.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ReadRequest {
    pub register: RegisterKind,
    pub start: u16,
    /// Registers (or bits) to read: at most 125 (2000 for bits).
    pub count: u16,
    /// Indices into `Meter::points` of the points this request covers.
    pub points: Vec<usize>,
}

/// A resolved `meter.point` reference.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
pub struct PointRef {
    pub meter: String,
    pub point: String,
}

impl PointRef {
    /// `meter.point`
    pub fn qualified(&self) -> String {
        format!("{}.{}", self.meter, self.point)
    }
}

impl std::fmt::Display for PointRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{}", self.meter, self.point)
    }
}

/// Model granularity of the regression baseline.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Granularity {
    Hour,
    Day,
    Week,
    Month,
}

impl Granularity {
    pub fn as_str(self) -> &'static str {
        match self {
            Granularity::Hour => "hour",
            Granularity::Day => "day",
            Granularity::Week => "week",
            Granularity::Month => "month",
        }
    }
}

/// Energy and resource carriers of `[[audit.input]]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Carrier {
    Electricity,
    NaturalGas,
    Coal,
    Diesel,
    Steam,
    Heat,
    Water,
    Material,
}

impl Carrier {
    pub const ALL: [Carrier; 8] = [
        Carrier::Electricity,
        Carrier::NaturalGas,
        Carrier::Coal,
        Carrier::Diesel,
        Carrier::Steam,
        Carrier::Heat,
        Carrier::Water,
        Carrier::Material,
    ];

    /// The key used in config and report JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            Carrier::Electricity => "electricity",
            Carrier::NaturalGas => "natural_gas",
            Carrier::Coal => "coal",
            Carrier::Diesel => "diesel",
            Carrier::Steam => "steam",
            Carrier::Heat => "heat",
            Carrier::Water => "water",
            Carrier::Material => "material",
        }
    }

    /// The unit the carrier is accounted in.
    pub fn unit(self) -> &'static str {
        match self {
            Carrier::Electricity => "kWh",
            Carrier::NaturalGas => "m3",
            Carrier::Coal => "kg",
            Carrier::Diesel => "kg",
            Carrier::Steam => "t",
            Carrier::Heat => "MJ",
            Carrier::Water => "m3",
            Carrier::Material => "t",
        }
    }

    /// GB/T 2589-2020 reference coefficient in kgce per unit (electricity: equivalent value); 0 for water and material.
    pub fn default_kgce_per_unit(self) -> f64 {
        match self {
            Carrier::Electricity => 0.1229,
            Carrier::NaturalGas => 1.2143,
            Carrier::Coal => 0.7143,
            Carrier::Diesel => 1.4571,
            Carrier::Steam => 128.6,
            Carrier::Heat => 0.03412,
            Carrier::Water | Carrier::Material => 0.0,
        }
    }

    /// True when the carrier counts towards comprehensive energy (water and material never do).
    pub fn is_energy(self) -> bool {
        !matches!(self, Carrier::Water | Carrier::Material)
    }

    pub fn parse(s: &str) -> Option<Carrier> {
        Carrier::ALL.into_iter().find(|c| c.as_str() == s)
    }
}

/// Electricity to standard coal: equivalent value (default) or equal value (the year's coal rate).
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
#[serde(tag = "method", rename_all = "snake_case")]
pub enum ElectricityMethod {
    /// 当量值, 0.1229 kgce/kWh.
    Equivalent,
    /// 等价值: a thermal-power coal rate in kgce/kWh, with its year.
    Equal {
        kgce_per_kwh: f64,
        year: Option<i32>,
    },
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AuditInput {
    pub point: PointRef,
    pub carrier: Carrier,
    /// Carrier `material`: the material's name, which is its indicator's key (inputs of one material add up).
    pub material: Option<String>,
    /// Effective coefficient (override, or the default of the carrier and method).
    pub kgce_per_unit: f64,
    /// Effective CO2 factor in kg per unit (electricity from `grid_co2_t_per_mwh`).
    pub co2_kg_per_unit: f64,
}

/// The ten pollutant indicators of the audit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub enum PollutantName {
    SO2,
    NOx,
    #[serde(rename = "dust")]
    Dust,
    CO2,
    VOCs,
    COD,
    #[serde(rename = "NH3-N")]
    Nh3N,
    TN,
    TP,
    #[serde(rename = "heavy_metals")]
    HeavyMetals,
}

impl PollutantName {
    pub const ALL: [PollutantName; 10] = [
        PollutantName::SO2,
        PollutantName::NOx,
        PollutantName::Dust,
        PollutantName::CO2,
        PollutantName::VOCs,
        PollutantName::COD,
        PollutantName::Nh3N,
        PollutantName::TN,
        PollutantName::TP,
        PollutantName::HeavyMetals,
    ];

    /// The key in config and report JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            PollutantName::SO2 => "SO2",
            PollutantName::NOx => "NOx",
            PollutantName::Dust => "dust",
            PollutantName::CO2 => "CO2",
            PollutantName::VOCs => "VOCs",
            PollutantName::COD => "COD",
            PollutantName::Nh3N => "NH3-N",
            PollutantName::TN => "TN",
            PollutantName::TP => "TP",
            PollutantName::HeavyMetals => "heavy_metals",
        }
    }

    /// Water pollutants are in mg/L over m3 of wastewater; the others in mg/m3 over m3 of flue gas.
    pub fn medium(self) -> Medium {
        match self {
            PollutantName::COD
            | PollutantName::Nh3N
            | PollutantName::TN
            | PollutantName::TP
            | PollutantName::HeavyMetals => Medium::Water,
            _ => Medium::FlueGas,
        }
    }

    pub fn parse(s: &str) -> Option<PollutantName> {
        PollutantName::ALL.into_iter().find(|p| p.as_str() == s)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Medium {
    /// mg/L x m3 x 1e-3 = kg
    Water,
    /// mg/m3 x m3 x 1e-6 = kg
    FlueGas,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AuditPollutant {
    pub name: PollutantName,
    /// A gauge in mg/L (water) or mg/m3 (flue gas).
    pub concentration: PointRef,
    /// A counter in m3, or a gauge in m3/h (see `flow_kind`).
    pub flow: PointRef,
    pub flow_kind: PointKind,
    /// The stack or outfall, when one pollutant has several sources (they add up).
    pub source: Option<String>,
    /// Flue gas: the measured O2 % gauge and the reference O2 % for the converted concentration (折算浓度).
    pub o2: Option<(PointRef, f64)>,
    /// Emission-standard limit of the hourly (converted) concentration, in the concentration's unit.
    pub limit: Option<f64>,
}

impl AuditPollutant {
    /// The name its figures go by: its `source`, else the pollutant's name (one source).
    pub fn source_name(&self) -> String {
        self.source
            .clone()
            .unwrap_or_else(|| self.name.as_str().to_string())
    }
}

/// One product of the plant (`[[audit.product]]`): a counter of its quantity and its factor to the
/// standard product.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AuditProduct {
    /// `production` for the single product of `production = { point }`.
    pub name: String,
    pub point: PointRef,
    /// Standard-product conversion factor (production unit per unit of the product's quantity).
    pub factor: f64,
}

/// A permitted total of one pollutant, all sources together (`[[audit.permit]]`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AuditPermit {
    pub pollutant: PollutantName,
    pub t_per_year: f64,
}

/// A measure (`[[audit.measure]]`): IPMVP Option B with a sub-meter of what it saves, else listed only.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AuditMeasure {
    pub name: String,
    pub in_service: NaiveDate,
    pub investment_yuan: f64,
    /// The sub-meter (a counter) and the carrier it meters.
    pub point: Option<(PointRef, Carrier)>,
}

/// 分表计电 (`[[audit.facility]]`): a production line's power point and its treatment facility's.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AuditFacility {
    pub name: String,
    pub production: PointRef,
    pub treatment: PointRef,
    /// Production runs at or above this power (kW).
    pub running_kw: f64,
    /// Treatment runs at or above this power (kW); default `running_kw`.
    pub treatment_running_kw: f64,
    /// How long treatment may lag production (default 15 min).
    pub grace: Duration,
    /// Treatment "far below its usual level" under this share of it; None: not checked.
    pub low_ratio: Option<f64>,
}

/// How a driver's point becomes one value per model bucket.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DriverTransform {
    /// Heating degree-days: sum over the bucket's hours of max(0, base - T) / 24.
    Hdd { base: f64 },
    /// Cooling degree-days: sum over the bucket's hours of max(0, T - base) / 24.
    Cdd { base: f64 },
    /// The bucket's mean of a gauge.
    Mean,
    /// The bucket's sum of a counter.
    Sum,
}

impl DriverTransform {
    pub fn as_str(self) -> &'static str {
        match self {
            DriverTransform::Hdd { .. } => "hdd",
            DriverTransform::Cdd { .. } => "cdd",
            DriverTransform::Mean => "mean",
            DriverTransform::Sum => "sum",
        }
    }
}

/// A regression variable besides production (`[[audit.driver]]`): weather, a second activity.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AuditDriver {
    pub name: String,
    pub point: PointRef,
    pub transform: DriverTransform,
}

/// Grade thresholds of one indicator (per unit of product).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AuditLevel {
    /// An indicator key of the report (`energy`, `water`, `COD`, ...).
    pub indicator: String,
    pub level_i: f64,
    pub level_ii: f64,
    pub level_iii: f64,
    /// Whether a higher figure is better (a recovery rate); lower is better by default.
    pub higher_is_better: bool,
    /// Weight in the overall grade (weights of all levels sum to 1; equal when none is given).
    pub weight: f64,
    /// A limiting indicator (限定性指标): the enterprise reaches a level only if this indicator does.
    pub limiting: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AuditPlan {
    /// Local time of the plant, for day/week/month boundaries.
    #[serde(serialize_with = "ser_offset")]
    pub timezone: FixedOffset,
    /// Half-open local dates [from, to).
    pub baseline: (NaiveDate, NaiveDate),
    pub reporting: Option<(NaiveDate, NaiveDate)>,
    pub granularity: Granularity,
    /// Grid emission factor, tCO2/MWh, and the year it is for when given (`grid_factor_year`).
    pub grid_co2_t_per_mwh: f64,
    pub grid_factor_year: Option<i32>,
    pub electricity_method: ElectricityMethod,
    /// The products (one with factor 1 for `production = { point }`): production = sum of factor x
    /// quantity, in `production_unit` (DOMAIN.md, standard product).
    pub products: Vec<AuditProduct>,
    pub production_unit: String,
    /// Regression variables besides production (`[[audit.driver]]`).
    pub drivers: Vec<AuditDriver>,
    /// Savings are claimed only when the reporting period's completeness of an indicator reaches this.
    pub min_completeness: f64,
    /// Rules of the baseline's data sufficiency (`[audit.sufficiency]`), judged before each model.
    pub sufficiency: crate::audit::diagnostics::SufficiencyRules,
    /// Permitted totals per pollutant (排污许可 许可排放量), t per calendar year.
    pub permits: Vec<AuditPermit>,
    /// Energy quota (能耗限额), kgce per unit of product.
    pub energy_quota_kgce_per_unit: Option<f64>,
    /// Cleaner-production measures (方案) with their investment and, optionally, their own sub-meter.
    pub measures: Vec<AuditMeasure>,
    /// 分表计电: production and treatment facilities' electricity.
    pub facilities: Vec<AuditFacility>,
    /// Meter trees and the water balance (`parent`, `reuse`, `[[audit.tree]]`, `[audit.water]`).
    pub balance: crate::audit::balance::BalancePlan,
    /// The metering ledger and coverage thresholds (`[[audit.ledger]]`, `[[audit.coverage]]`).
    pub ledger: crate::audit::coverage::LedgerPlan,
    /// Solid and hazardous waste (`[[audit.waste]]`).
    pub waste: Vec<crate::audit::waste::WastePlan>,
    /// Prices in yuan per unit of each carrier (`[audit.prices]`).
    pub prices: Vec<(Carrier, f64)>,
    pub inputs: Vec<AuditInput>,
    pub pollutants: Vec<AuditPollutant>,
    pub levels: Vec<AuditLevel>,
    /// How often `run` publishes the report retained on `P/audit` (default 1 h, wall time).
    pub publish_interval: Duration,
}

impl Point {
    /// A point no register holds: a manual meter's, or one known only by its readings (the park's view of a
    /// gateway's point from `P/meta`). Values are taken as they come (f64, scale 1).
    pub fn unregistered(
        name: String,
        unit: String,
        kind: PointKind,
        rollover: Option<f64>,
    ) -> Point {
        Point {
            name,
            register: RegisterKind::Holding,
            address: 0,
            data_type: DataType::F64,
            byte_order: ByteOrder::BIG,
            scale: 1.0,
            offset: 0.0,
            unit,
            kind,
            rollover,
            min: None,
            max: None,
        }
    }
}

impl Plan {
    /// Find a polled meter by name, with its bus.
    pub fn meter(&self, name: &str) -> Option<(&Bus, &Meter)> {
        self.buses
            .iter()
            .flat_map(|b| b.meters.iter().map(move |m| (b, m)))
            .find(|(_, m)| m.name == name)
    }

    /// Find a point by reference, on a polled or a manual meter.
    pub fn point(&self, r: &PointRef) -> Option<&Point> {
        self.meters()
            .find(|m| m.name == r.meter)
            .and_then(|m| m.points.iter().find(|p| p.name == r.point))
    }

    /// All meters, polled (in bus order) then manual.
    pub fn meters(&self) -> impl Iterator<Item = &Meter> {
        self.polled_meters().chain(self.manual_meters.iter())
    }

    /// The meters the agent polls.
    pub fn polled_meters(&self) -> impl Iterator<Item = &Meter> {
        self.buses.iter().flat_map(|b| b.meters.iter())
    }
}

fn ser_offset<S: serde::Serializer>(o: &FixedOffset, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(o)
}
