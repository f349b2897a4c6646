//! What a platform (上位机) sends a data logger (现场机) and what the logger answers, HJ 212-2017:
//! the data acknowledgement (CN 9014), history requests (CN 2051/2061/2031 with BeginTime/EndTime),
//! the request answer (CN 9011, QnRtn) and the execution result (CN 9012, ExeRtn).

use chrono::FixedOffset;

use super::data::{parse_time, DataCn, Flag};
use super::Packet;

/// ST of system interaction packets (9011, 9012, 9014).
pub const ST_SYSTEM: &str = "91";

/// QnRtn of CN 9011: what the logger makes of a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QnRtn {
    /// 1: ready to execute.
    Ready,
    /// 2: request refused.
    Refused,
    /// 3: PW error.
    PwError,
    /// 4: MN error.
    MnError,
    /// 5: ST error.
    StError,
    /// 6: Flag error.
    FlagError,
    /// 7: QN error.
    QnError,
    /// 8: CN error.
    CnError,
    /// 9: CRC error.
    CrcError,
    /// 100: unknown error.
    Unknown,
}

impl QnRtn {
    pub fn code(self) -> u16 {
        match self {
            QnRtn::Ready => 1,
            QnRtn::Refused => 2,
            QnRtn::PwError => 3,
            QnRtn::MnError => 4,
            QnRtn::StError => 5,
            QnRtn::FlagError => 6,
            QnRtn::QnError => 7,
            QnRtn::CnError => 8,
            QnRtn::CrcError => 9,
            QnRtn::Unknown => 100,
        }
    }
}

/// ExeRtn of CN 9012: how a request's execution ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExeRtn {
    /// 1: executed.
    Success,
    /// 2: failed, reason unknown.
    Failed,
    /// 3: the request's conditions are wrong.
    BadCondition,
    /// 4: communication timeout.
    Timeout,
    /// 5: system busy.
    Busy,
    /// 6: system fault.
    Fault,
    /// 100: no data.
    NoData,
}

impl ExeRtn {
    pub fn code(self) -> u16 {
        match self {
            ExeRtn::Success => 1,
            ExeRtn::Failed => 2,
            ExeRtn::BadCondition => 3,
            ExeRtn::Timeout => 4,
            ExeRtn::Busy => 5,
            ExeRtn::Fault => 6,
            ExeRtn::NoData => 100,
        }
    }
}

/// A platform's packet, as far as a data logger that uploads data understands it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// CN 9014: the platform received the data packet with this QN.
    DataAck { qn: String },
    /// CN 2051/2061/2031 with BeginTime and EndTime (UTC ms, both included): send the stored data.
    History {
        qn: String,
        cn: DataCn,
        begin_ms: i64,
        end_ms: i64,
    },
    /// CN 1011: read the logger's time (answered with `SystemTime`).
    ReadTime { qn: String },
    /// CN 1012: set the logger's time to `SystemTime` (as sent).
    SetTime { qn: String, time: String },
    /// CN 2011 from the platform: send real-time data.
    StartRealtime { qn: String },
    /// CN 2012: stop real-time data (a notice, answered CN 9013).
    StopRealtime { qn: String },
    /// A request this logger does not carry out (another CN, or a history request without valid
    /// times): answered with QnRtn.
    Unsupported { qn: String, cn: String, why: String },
}

/// What a platform's packet asks, once its PW and MN were checked against the logger's: Err with the
/// QnRtn to answer (3 PW error, 4 MN error, 7 QN missing).
pub fn interpret(p: &Packet, pw: &str, mn: &str, tz: FixedOffset) -> Result<Command, QnRtn> {
    if p.mn != mn {
        return Err(QnRtn::MnError);
    }
    if p.pw != pw {
        return Err(QnRtn::PwError);
    }
    let qn = p.qn.clone().ok_or(QnRtn::QnError)?;
    match p.cn.as_str() {
        "9014" => return Ok(Command::DataAck { qn }),
        "1011" => return Ok(Command::ReadTime { qn }),
        "1012" => {
            return Ok(
                match p
                    .cp_get("SystemTime")
                    .filter(|t| parse_time(t, tz).is_some())
                {
                    Some(t) => Command::SetTime {
                        qn,
                        time: t.to_string(),
                    },
                    None => Command::Unsupported {
                        qn,
                        cn: p.cn.clone(),
                        why: "SystemTime missing or not yyyyMMddHHmmss".into(),
                    },
                },
            )
        }
        "2011" => return Ok(Command::StartRealtime { qn }),
        "2012" => return Ok(Command::StopRealtime { qn }),
        _ => {}
    }
    let Some(cn) = DataCn::parse(&p.cn).filter(|c| *c != DataCn::Realtime) else {
        return Ok(Command::Unsupported {
            qn,
            cn: p.cn.clone(),
            why: "not a command this data logger carries out".into(),
        });
    };
    let time = |k: &str| p.cp_get(k).and_then(|v| parse_time(v, tz));
    match (time("BeginTime"), time("EndTime")) {
        (Some(begin_ms), Some(end_ms)) if begin_ms <= end_ms => Ok(Command::History {
            qn,
            cn,
            begin_ms,
            end_ms,
        }),
        _ => Ok(Command::Unsupported {
            qn,
            cn: p.cn.clone(),
            why: "BeginTime/EndTime missing, not yyyyMMddHHmmss, or out of order".into(),
        }),
    }
}

fn system(qn: &str, cn: &str, pw: &str, mn: &str, cp: Vec<(String, String)>) -> Packet {
    Packet {
        qn: Some(qn.to_string()),
        st: ST_SYSTEM.to_string(),
        cn: cn.to_string(),
        pw: pw.to_string(),
        mn: mn.to_string(),
        flag: Some(Flag::v2017(false).to_u8()),
        extra: Vec::new(),
        cp: if cp.is_empty() { Vec::new() } else { vec![cp] },
    }
}

/// CN 9011, the answer to a request (same QN): `CP=&&QnRtn=..&&`.
pub fn request_answer(qn: &str, pw: &str, mn: &str, rtn: QnRtn) -> Packet {
    system(
        qn,
        "9011",
        pw,
        mn,
        vec![("QnRtn".to_string(), rtn.code().to_string())],
    )
}

/// CN 9012, the end of a request's execution (same QN): `CP=&&ExeRtn=..&&`.
pub fn execution_result(qn: &str, pw: &str, mn: &str, rtn: ExeRtn) -> Packet {
    system(
        qn,
        "9012",
        pw,
        mn,
        vec![("ExeRtn".to_string(), rtn.code().to_string())],
    )
}

/// CN 9013, the answer to a notice (same QN): `CP=&&&&`.
pub fn notice_answer(qn: &str, pw: &str, mn: &str) -> Packet {
    system(qn, "9013", pw, mn, Vec::new())
}

/// CN 9014, a platform's acknowledgement of the data packet with this QN (`CP=&&&&`).
pub fn data_ack(qn: &str, pw: &str, mn: &str) -> Packet {
    system(qn, "9014", pw, mn, Vec::new())
}
