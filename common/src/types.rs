//! The vocabulary of a Modbus point: register kinds, data types, byte orders, point kinds.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// Which Modbus table a point lives in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RegisterKind {
    /// Function 03, 16-bit read/write registers.
    Holding,
    /// Function 04, 16-bit read-only registers.
    Input,
    /// Function 01, single bits, read/write.
    Coil,
    /// Function 02, single bits, read-only.
    Discrete,
}

impl RegisterKind {
    /// The Modbus read function code.
    pub fn function_code(self) -> u8 {
        match self {
            RegisterKind::Coil => 1,
            RegisterKind::Discrete => 2,
            RegisterKind::Holding => 3,
            RegisterKind::Input => 4,
        }
    }

    /// True for coils and discrete inputs (bit tables).
    pub fn is_bit(self) -> bool {
        matches!(self, RegisterKind::Coil | RegisterKind::Discrete)
    }

    /// Largest quantity one read request may carry (Modbus application protocol v1.1b3).
    pub fn max_per_request(self) -> u16 {
        if self.is_bit() {
            MAX_BITS_PER_READ
        } else {
            MAX_REGISTERS_PER_READ
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            RegisterKind::Holding => "holding",
            RegisterKind::Input => "input",
            RegisterKind::Coil => "coil",
            RegisterKind::Discrete => "discrete",
        }
    }
}

/// At most 125 registers per read (function 03/04).
pub const MAX_REGISTERS_PER_READ: u16 = 125;
/// At most 2000 bits per read (function 01/02).
pub const MAX_BITS_PER_READ: u16 = 2000;

impl fmt::Display for RegisterKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for RegisterKind {
    type Err = ();
    fn from_str(s: &str) -> Result<Self, ()> {
        Ok(match s {
            "holding" => RegisterKind::Holding,
            "input" => RegisterKind::Input,
            "coil" => RegisterKind::Coil,
            "discrete" => RegisterKind::Discrete,
            _ => return Err(()),
        })
    }
}

/// The type of the value a point holds in its registers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DataType {
    U16,
    I16,
    U32,
    I32,
    U64,
    I64,
    F32,
    F64,
    /// One coil/discrete bit, or a register read as zero / non-zero.
    Bool,
}

impl DataType {
    pub const ALL: [DataType; 9] = [
        DataType::U16,
        DataType::I16,
        DataType::U32,
        DataType::I32,
        DataType::U64,
        DataType::I64,
        DataType::F32,
        DataType::F64,
        DataType::Bool,
    ];

    /// Number of 16-bit registers the type occupies (bool: one register, or one bit in a bit table).
    pub fn words(self) -> u16 {
        match self {
            DataType::U16 | DataType::I16 | DataType::Bool => 1,
            DataType::U32 | DataType::I32 | DataType::F32 => 2,
            DataType::U64 | DataType::I64 | DataType::F64 => 4,
        }
    }

    /// Width in bits (16, 32 or 64); bool counts as 16.
    pub fn bits(self) -> u16 {
        self.words() * 16
    }

    pub fn is_float(self) -> bool {
        matches!(self, DataType::F32 | DataType::F64)
    }

    /// The modulus of an integer counter of this type (its range), used as the default rollover.
    /// None for floats and bool, which have no natural wrap.
    pub fn modulus(self) -> Option<f64> {
        match self {
            DataType::U16 | DataType::I16 => Some(65_536.0),
            DataType::U32 | DataType::I32 => Some(4_294_967_296.0),
            DataType::U64 | DataType::I64 => Some(18_446_744_073_709_551_616.0),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            DataType::U16 => "u16",
            DataType::I16 => "i16",
            DataType::U32 => "u32",
            DataType::I32 => "i32",
            DataType::U64 => "u64",
            DataType::I64 => "i64",
            DataType::F32 => "f32",
            DataType::F64 => "f64",
            DataType::Bool => "bool",
        }
    }
}

impl fmt::Display for DataType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for DataType {
    type Err = ();
    fn from_str(s: &str) -> Result<Self, ()> {
        DataType::ALL
            .into_iter()
            .find(|t| t.as_str() == s)
            .ok_or(())
    }
}

/// Byte order of a multi-register value, as two independent swaps:
/// `word_swap` (low word first) and `byte_swap` (low byte first within each word).
///
/// Written per width as in the contract: 16-bit `AB`/`BA`; 32-bit `ABCD` (no swap), `CDAB` (word swap),
/// `BADC` (byte swap), `DCBA` (both); 64-bit `ABCDEFGH`, `GHEFCDAB`, `BADCFEHG`, `HGFEDCBA` likewise.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
pub struct ByteOrder {
    pub word_swap: bool,
    pub byte_swap: bool,
}

impl ByteOrder {
    /// Big-endian, high word first: ABCD / AB / ABCDEFGH.
    pub const BIG: ByteOrder = ByteOrder {
        word_swap: false,
        byte_swap: false,
    };

    /// All byte orders.
    pub const ALL: [ByteOrder; 4] = [
        ByteOrder {
            word_swap: false,
            byte_swap: false,
        },
        ByteOrder {
            word_swap: true,
            byte_swap: false,
        },
        ByteOrder {
            word_swap: false,
            byte_swap: true,
        },
        ByteOrder {
            word_swap: true,
            byte_swap: true,
        },
    ];

    /// Parse a written byte order; returns the order and the width in bits it is written for.
    pub fn parse(s: &str) -> Option<(ByteOrder, u16)> {
        let (w, b, bits) = match s {
            "AB" => (false, false, 16),
            "BA" => (false, true, 16),
            "ABCD" => (false, false, 32),
            "CDAB" => (true, false, 32),
            "BADC" => (false, true, 32),
            "DCBA" => (true, true, 32),
            "ABCDEFGH" => (false, false, 64),
            "GHEFCDAB" => (true, false, 64),
            "BADCFEHG" => (false, true, 64),
            "HGFEDCBA" => (true, true, 64),
            _ => return None,
        };
        Some((
            ByteOrder {
                word_swap: w,
                byte_swap: b,
            },
            bits,
        ))
    }

    /// The written form for a width of 16, 32 or 64 bits. A 16-bit value has no word order.
    pub fn name(self, bits: u16) -> &'static str {
        match (bits, self.word_swap, self.byte_swap) {
            (16, _, false) => "AB",
            (16, _, true) => "BA",
            (32, false, false) => "ABCD",
            (32, true, false) => "CDAB",
            (32, false, true) => "BADC",
            (32, true, true) => "DCBA",
            (_, false, false) => "ABCDEFGH",
            (_, true, false) => "GHEFCDAB",
            (_, false, true) => "BADCFEHG",
            (_, true, true) => "HGFEDCBA",
        }
    }
}

/// How a point's value evolves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PointKind {
    /// A totalizer: consumption is the difference between readings.
    Counter,
    /// An instantaneous value (power, flow rate, concentration).
    Gauge,
}

impl PointKind {
    pub fn as_str(self) -> &'static str {
        match self {
            PointKind::Counter => "counter",
            PointKind::Gauge => "gauge",
        }
    }
}
