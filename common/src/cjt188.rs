//! CJ/T 188 (2004 and 2018) for water, heat and gas meters without I/O (DOMAIN.md):
//! `68 T A0..A6 C L DI(2) SER DATA CS 16`, no +33H, address and values low byte first, BCD.
//! The agent reads DI 901F (the current data): the value of a point is one field of its reply, and
//! the unit byte the meter sends with it is honoured: converted to the point's unit when both are
//! the same kind of quantity, else the reading is invalid (a heat meter set to GJ read as kWh would
//! otherwise be off by 278 times).

use heapless::Vec as HVec;

use crate::frame68::{self, bcd_encode, bcd_value, BcdError};

/// Address bytes.
pub const ADDRESS_LEN: usize = 7;
/// The current data (cumulative flow or heat, settlement-day values, clock, status).
pub const DI_CURRENT: u16 = 0x901F;
/// The most wake-up bytes the config may ask for.
pub const MAX_PREAMBLE: usize = 8;
/// A request: preamble + header + DI + SER + CS + 16H.
pub type Request = HVec<u8, { MAX_PREAMBLE + 11 + 3 + 2 }>;
/// A reply as a meter sends it (simulator, tests).
pub type ReplyFrame = HVec<u8, { MAX_PREAMBLE + 11 + 46 + 2 }>;

/// How a meter wants the two DI bytes: DOMAIN.md's vector sends 1F 90 (low byte first).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, serde::Serialize)]
pub enum DiOrder {
    #[default]
    LowFirst,
    HighFirst,
}

impl DiOrder {
    pub fn parse(s: &str) -> Option<DiOrder> {
        match s {
            "low_first" => Some(DiOrder::LowFirst),
            "high_first" => Some(DiOrder::HighFirst),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            DiOrder::LowFirst => "low_first",
            DiOrder::HighFirst => "high_first",
        }
    }

    fn bytes(self, di: u16) -> [u8; 2] {
        match self {
            DiOrder::LowFirst => di.to_le_bytes(),
            DiOrder::HighFirst => di.to_be_bytes(),
        }
    }
}

/// What the type byte T says the meter measures.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
pub enum MeterKind {
    /// 10H..19H (cold, hot, drinking, reclaimed water).
    Water,
    /// 20H..29H (heat, cooling).
    Heat,
    /// 30H..39H.
    Gas,
}

impl MeterKind {
    pub fn of_type(t: u8) -> Option<MeterKind> {
        match t {
            0x10..=0x19 => Some(MeterKind::Water),
            0x20..=0x29 => Some(MeterKind::Heat),
            0x30..=0x39 => Some(MeterKind::Gas),
            _ => None,
        }
    }

    /// Data bytes of the 901F reply after DI and SER: water and gas L = 16H, heat L = 2EH.
    pub fn payload_len(self) -> usize {
        match self {
            MeterKind::Water | MeterKind::Gas => 0x16 - 3,
            MeterKind::Heat => 0x2E - 3,
        }
    }

    /// The field a point reads when it names none.
    pub fn default_field(self) -> Field {
        match self {
            MeterKind::Heat => Field::Heat,
            _ => Field::Flow,
        }
    }
}

/// A quantity of the 901F reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
pub enum Field {
    /// Cumulative volume.
    Flow,
    /// Cumulative heat (heat meters).
    Heat,
    /// Heat power (heat meters).
    Power,
    /// Volume flow rate (heat meters).
    FlowRate,
    /// Supply temperature, °C (heat meters).
    SupplyTemp,
    /// Return temperature, °C (heat meters).
    ReturnTemp,
}

impl Field {
    pub const ALL: [Field; 6] = [
        Field::Heat,
        Field::Flow,
        Field::Power,
        Field::FlowRate,
        Field::SupplyTemp,
        Field::ReturnTemp,
    ];

    pub fn parse(s: &str) -> Option<Field> {
        Field::ALL.into_iter().find(|f| f.as_str() == s)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Field::Flow => "flow",
            Field::Heat => "heat",
            Field::Power => "power",
            Field::FlowRate => "flow_rate",
            Field::SupplyTemp => "supply_temp",
            Field::ReturnTemp => "return_temp",
        }
    }

    /// A totalizer.
    pub fn is_counter(self) -> bool {
        matches!(self, Field::Flow | Field::Heat)
    }

    /// Where the field sits in the payload (after DI and SER) of a meter kind: offset, BCD bytes,
    /// decimals, and whether a unit byte follows. None when the kind has no such field.
    pub fn layout(self, kind: MeterKind) -> Option<FieldLayout> {
        let f = |offset, len, decimals, unit| FieldLayout {
            offset,
            len,
            decimals,
            unit,
        };
        match (kind, self) {
            // Water and gas: current cumulative flow, settlement-day flow, clock, status.
            (MeterKind::Water | MeterKind::Gas, Field::Flow) => Some(f(0, 4, 2, true)),
            // Heat: settlement-day heat, current heat, heat power, flow rate, cumulative flow,
            // supply and return temperature, working hours, clock, status.
            (MeterKind::Heat, Field::Heat) => Some(f(5, 4, 2, true)),
            (MeterKind::Heat, Field::Power) => Some(f(10, 4, 2, true)),
            (MeterKind::Heat, Field::FlowRate) => Some(f(15, 4, 4, true)),
            (MeterKind::Heat, Field::Flow) => Some(f(20, 4, 2, true)),
            (MeterKind::Heat, Field::SupplyTemp) => Some(f(25, 3, 2, false)),
            (MeterKind::Heat, Field::ReturnTemp) => Some(f(28, 3, 2, false)),
            _ => None,
        }
    }

    /// The unit a temperature field is in (no unit byte follows it).
    pub fn fixed_unit(self) -> Option<&'static str> {
        matches!(self, Field::SupplyTemp | Field::ReturnTemp).then_some("°C")
    }
}

/// Where a field sits in a 901F payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FieldLayout {
    pub offset: usize,
    pub len: usize,
    pub decimals: u8,
    /// A unit byte follows the value.
    pub unit: bool,
}

/// Kinds of quantity a unit byte may name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Dim {
    Energy,
    Power,
    Volume,
    FlowRate,
}

/// CJ/T 188's unit codes: name, kind, and the factor to the kind's base (kWh, kW, m3, m3/h).
const UNITS: &[(u8, &str, Dim, f64)] = &[
    (0x02, "Wh", Dim::Energy, 0.001),
    (0x05, "kWh", Dim::Energy, 1.0),
    (0x08, "MWh", Dim::Energy, 1_000.0),
    (0x0A, "MWh x 100", Dim::Energy, 100_000.0),
    (0x01, "J", Dim::Energy, 1.0 / 3_600_000.0),
    (0x0B, "kJ", Dim::Energy, 1.0 / 3_600.0),
    (0x0E, "MJ", Dim::Energy, 1.0 / 3.6),
    (0x11, "GJ", Dim::Energy, 1_000.0 / 3.6),
    (0x13, "GJ x 100", Dim::Energy, 100_000.0 / 3.6),
    (0x14, "W", Dim::Power, 0.001),
    (0x17, "kW", Dim::Power, 1.0),
    (0x1A, "MW", Dim::Power, 1_000.0),
    (0x29, "L", Dim::Volume, 0.001),
    (0x2C, "m3", Dim::Volume, 1.0),
    (0x32, "L/h", Dim::FlowRate, 0.001),
    (0x35, "m3/h", Dim::FlowRate, 1.0),
];

/// The unit code's name, for messages; None for a code the standard does not define.
pub fn unit_name(code: u8) -> Option<&'static str> {
    UNITS.iter().find(|u| u.0 == code).map(|u| u.1)
}

/// The unit code that names `unit` exactly (what a simulated meter sends).
pub fn unit_code(unit: &str) -> Option<u8> {
    UNITS.iter().find(|u| u.1 == unit).map(|u| u.0)
}

/// Whether a point's unit is one a unit byte can be converted to.
pub fn is_known_unit(unit: &str) -> bool {
    unit_code(unit).is_some()
}

/// `value` in the unit of `code` converted to `to`; None when the code is unknown or names another
/// kind of quantity.
pub fn convert(value: f64, code: u8, to: &str) -> Option<f64> {
    let from = UNITS.iter().find(|u| u.0 == code)?;
    let to = UNITS.iter().find(|u| u.1 == to)?;
    (from.2 == to.2).then(|| value * from.3 / to.3)
}

/// `[preamble] 68 T A C L DATA CS 16`.
fn build<const N: usize>(
    preamble: &[u8],
    meter_type: u8,
    address: &[u8; ADDRESS_LEN],
    control: u8,
    data: &[u8],
) -> HVec<u8, N> {
    let mut f = HVec::new();
    let _ = f.extend_from_slice(&preamble[..preamble.len().min(MAX_PREAMBLE)]);
    let start = f.len();
    let _ = f.push(0x68);
    let _ = f.push(meter_type);
    let _ = f.extend_from_slice(address);
    let _ = f.push(control);
    let _ = f.push(data.len() as u8);
    let _ = f.extend_from_slice(data);
    frame68::finish(&mut f, start);
    f
}

/// A read (01H) of `di` with sequence number `ser`.
pub fn encode_read(
    preamble: &[u8],
    meter_type: u8,
    address: &[u8; ADDRESS_LEN],
    di: u16,
    order: DiOrder,
    ser: u8,
) -> Request {
    let [a, b] = order.bytes(di);
    build(preamble, meter_type, address, 0x01, &[a, b, ser])
}

/// A frame taken apart.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    pub meter_type: u8,
    pub address: [u8; ADDRESS_LEN],
    pub control: u8,
    pub data: HVec<u8, { frame68::MAX_DATA }>,
}

impl Frame {
    /// From a checked frame of the CJ/T 188 layout.
    pub fn parse(raw: &[u8]) -> Option<Frame> {
        let len = usize::from(*raw.get(10)?);
        let mut address = [0u8; ADDRESS_LEN];
        address.copy_from_slice(raw.get(2..9)?);
        let mut data = HVec::new();
        data.extend_from_slice(raw.get(11..11 + len)?).ok()?;
        Some(Frame {
            meter_type: raw[1],
            address,
            control: raw[9],
            data,
        })
    }

    /// The DI a request asks, read in either order (the simulator's side).
    pub fn request_di(&self) -> Option<(u16, DiOrder)> {
        let d = self.data.get(..2)?;
        let low = u16::from_le_bytes([d[0], d[1]]);
        if low == DI_CURRENT {
            Some((low, DiOrder::LowFirst))
        } else {
            Some((u16::from_be_bytes([d[0], d[1]]), DiOrder::HighFirst))
        }
    }
}

/// Why a frame is not the answer to a request.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReplyError {
    #[error("not a reply to a read (control {0:02X}H)")]
    NotReply(u8),
    #[error("reply from address {got}, asked {want}")]
    WrongAddress { got: String, want: String },
    #[error("reply for data identifier {got:04X}, asked {want:04X}")]
    WrongDi { got: u16, want: u16 },
    #[error("exception reply: status {0:02X} {1:02X}{names}", names = status_names(*.0))]
    Exception(u8, u8),
    #[error("reply data of {got} bytes, a {kind:?} meter's needs {want}")]
    Short {
        got: usize,
        want: usize,
        kind: MeterKind,
    },
}

impl ReplyError {
    /// An answer from the device that says no (`device_error`).
    pub fn is_device_error(&self) -> bool {
        matches!(self, ReplyError::Exception(..))
    }
}

fn status_names(st1: u8) -> String {
    let valve = match st1 & 0x03 {
        0 => None,
        1 => Some("valve closed"),
        _ => Some("valve fault"),
    };
    let battery = (st1 & 0x04 != 0).then_some("battery low");
    let names: Vec<&str> = [valve, battery].into_iter().flatten().collect();
    if names.is_empty() {
        String::new()
    } else {
        format!(" ({})", names.join(", "))
    }
}

/// The payload (after DI and SER) of a reply to a read of `di` at `address`, checked for the
/// meter kind's length.
pub fn check_read_reply<'f>(
    address: &[u8; ADDRESS_LEN],
    di: u16,
    kind: MeterKind,
    f: &'f Frame,
) -> Result<&'f [u8], ReplyError> {
    if f.control & 0x80 == 0 || f.control & 0x3F != 0x01 {
        return Err(ReplyError::NotReply(f.control));
    }
    if f.address != *address {
        return Err(ReplyError::WrongAddress {
            got: frame68::format_address(&f.address),
            want: frame68::format_address(address),
        });
    }
    if f.control & 0x40 != 0 {
        // Abnormal reply: the status bytes close the data.
        let n = f.data.len();
        let (a, b) = match n {
            0 => (0, 0),
            1 => (f.data[0], 0),
            _ => (f.data[n - 2], f.data[n - 1]),
        };
        return Err(ReplyError::Exception(a, b));
    }
    // Meters disagree on the DI's byte order (DOMAIN.md): the echo is taken in either.
    let got = match f.data.get(..2) {
        Some(d) => [d[0], d[1]],
        None => [0, 0],
    };
    if u16::from_le_bytes(got) != di && u16::from_be_bytes(got) != di {
        return Err(ReplyError::WrongDi {
            got: u16::from_le_bytes(got),
            want: di,
        });
    }
    let payload = f.data.get(3..).unwrap_or(&[]);
    if payload.len() < kind.payload_len() {
        return Err(ReplyError::Short {
            got: f.data.len(),
            want: kind.payload_len() + 3,
            kind,
        });
    }
    Ok(payload)
}

/// Why a field's value cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ValueError {
    #[error(transparent)]
    Bcd(#[from] BcdError),
    #[error("a {0:?} meter has no field {1}")]
    NoField(MeterKind, &'static str),
    #[error("unit byte {code:02X}H ({}) cannot be read as {want}", unit_name(*.code).unwrap_or("not a CJ/T 188 unit"))]
    Unit { code: u8, want: String },
}

/// A field of a 901F payload in the point's unit `unit`.
pub fn field_value(
    kind: MeterKind,
    field: Field,
    payload: &[u8],
    unit: &str,
) -> Result<f64, ValueError> {
    let l = field
        .layout(kind)
        .ok_or(ValueError::NoField(kind, field.as_str()))?;
    let end = l.offset + l.len + usize::from(l.unit);
    if payload.len() < end {
        return Err(BcdError::Short {
            want: end,
            got: payload.len(),
        }
        .into());
    }
    let v = bcd_value(&payload[l.offset..l.offset + l.len], l.decimals, false)?;
    if !l.unit {
        return Ok(v);
    }
    let code = payload[l.offset + l.len];
    convert(v, code, unit).ok_or_else(|| ValueError::Unit {
        code,
        want: unit.to_string(),
    })
}

/// The unit byte of a field in a 901F payload (None for a field without one, or a short payload).
pub fn field_unit(kind: MeterKind, field: Field, payload: &[u8]) -> Option<u8> {
    let l = field.layout(kind)?;
    if !l.unit {
        return None;
    }
    payload.get(l.offset + l.len).copied()
}

/// Writes a field into a payload as a meter would (simulator, tests); None when it does not fit.
pub fn put_field(
    kind: MeterKind,
    field: Field,
    value: f64,
    unit_code: u8,
    payload: &mut [u8],
) -> Option<()> {
    let l = field.layout(kind)?;
    let scaled = (value * 10f64.powi(i32::from(l.decimals))).round();
    if !(0.0..1e15).contains(&scaled) {
        return None;
    }
    bcd_encode(scaled as u64, payload.get_mut(l.offset..l.offset + l.len)?)?;
    if l.unit {
        *payload.get_mut(l.offset + l.len)? = unit_code;
    }
    Some(())
}

/// A normal reply (81H) to a read: DI as the request sent it, SER, payload.
pub fn encode_read_reply(
    preamble: &[u8],
    meter_type: u8,
    address: &[u8; ADDRESS_LEN],
    di_as_sent: [u8; 2],
    ser: u8,
    payload: &[u8],
) -> ReplyFrame {
    let mut data: HVec<u8, 64> = HVec::new();
    let _ = data.extend_from_slice(&di_as_sent);
    let _ = data.push(ser);
    let _ = data.extend_from_slice(&payload[..payload.len().min(60)]);
    build(preamble, meter_type, address, 0x81, &data)
}

/// An abnormal reply (C1H) with the two status bytes.
pub fn encode_exception(
    preamble: &[u8],
    meter_type: u8,
    address: &[u8; ADDRESS_LEN],
    di_as_sent: [u8; 2],
    ser: u8,
    status: [u8; 2],
) -> ReplyFrame {
    let [a, b] = di_as_sent;
    build(
        preamble,
        meter_type,
        address,
        0xC1,
        &[a, b, ser, status[0], status[1]],
    )
}
