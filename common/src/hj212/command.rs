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
    /// CN 1061: read the real-time data interval (answered with `RtdInterval`, seconds).
    ReadRtdInterval { qn: String },
    /// CN 1062: set the real-time data interval (`RtdInterval`, 30..=3600 s as the standard says).
    SetRtdInterval { qn: String, secs: u32 },
    /// CN 1063: read the minute data interval (answered with `MinInterval`, minutes).
    ReadMinInterval { qn: String },
    /// CN 1064: set the minute data interval (`MinInterval`, minutes, a divisor of 60 so that the
    /// minute intervals of an hour add up to it).
    SetMinInterval { qn: String, minutes: u32 },
    /// CN 1072: set the logger's access password (`NewPW`).
    SetPassword { qn: String, new_pw: String },
    /// A request this logger carries out whose parameter is wrong: answered QnRtn 1, then ExeRtn 3.
    BadCondition { qn: String, cn: String, why: String },
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
        "1061" => return Ok(Command::ReadRtdInterval { qn }),
        "1063" => return Ok(Command::ReadMinInterval { qn }),
        "1062" => {
            return Ok(match number(p, "RtdInterval") {
                Some(secs) if (30..=3600).contains(&secs) => Command::SetRtdInterval { qn, secs },
                _ => bad(qn, p, "RtdInterval missing or not 30..3600 seconds"),
            })
        }
        "1064" => {
            return Ok(match number(p, "MinInterval") {
                Some(m) if m > 0 && 60 % m == 0 => Command::SetMinInterval { qn, minutes: m },
                _ => bad(
                    qn,
                    p,
                    "MinInterval missing or not a divisor of 60 minutes (1, 2, 3, 4, 5, 6, 10, 12, 15, 20, 30, 60)",
                ),
            })
        }
        "1072" => {
            return Ok(match p.cp_get("NewPW").filter(|pw| valid_password(pw)) {
                Some(pw) => Command::SetPassword {
                    qn,
                    new_pw: pw.to_string(),
                },
                None => bad(qn, p, "NewPW missing, empty, longer than 64 or not printable ASCII"),
            })
        }
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

/// A CP value as a whole number of at most 6 digits.
fn number(p: &Packet, key: &str) -> Option<u32> {
    p.cp_get(key)
        .filter(|v| !v.is_empty() && v.len() <= 6 && v.bytes().all(|b| b.is_ascii_digit()))
        .and_then(|v| v.parse().ok())
}

fn bad(qn: String, p: &Packet, why: &str) -> Command {
    Command::BadCondition {
        qn,
        cn: p.cn.clone(),
        why: why.to_string(),
    }
}

/// A password the logger can keep in its file and send in `PW` (the frame parser already refused
/// the separators): 1..=64 printable ASCII characters.
pub fn valid_password(pw: &str) -> bool {
    !pw.is_empty() && pw.len() <= 64 && pw.bytes().all(|b| b.is_ascii_graphic())
}

/// An upload of a logger's parameter (CN 1011 `SystemTime`, 1061 `RtdInterval`, 1063
/// `MinInterval`) with the request's QN.
pub fn parameter(
    qn: &str,
    st: &str,
    cn: &str,
    pw: &str,
    mn: &str,
    key: &str,
    value: String,
) -> Packet {
    let mut p = system(qn, cn, pw, mn, vec![(key.to_string(), value)]);
    p.st = st.to_string();
    p
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

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn tz() -> FixedOffset {
        FixedOffset::east_opt(8 * 3600).unwrap()
    }

    fn req(cn: &str, flag: u8, cp: &str) -> Packet {
        Packet::parse(&format!(
            "QN=20260101000000001;ST=32;CN={cn};PW=123456;MN=010000A8900016F000169DC0;Flag={flag};CP=&&{cp}&&"
        ))
        .unwrap()
    }

    fn run(p: &Packet) -> Result<Command, QnRtn> {
        interpret(p, "123456", "010000A8900016F000169DC0", tz())
    }

    /// The interval and password commands of HJ 212-2017 (Flag 5) and 2025 (Flag 9): read, set,
    /// bad parameters (ExeRtn 3), and the PW/MN checks before anything.
    #[test]
    fn interval_and_password_commands_in_both_versions() {
        for flag in [5, 9] {
            let qn = "20260101000000001".to_string();
            assert_eq!(
                run(&req("1061", flag, "")),
                Ok(Command::ReadRtdInterval { qn: qn.clone() })
            );
            assert_eq!(
                run(&req("1063", flag, "")),
                Ok(Command::ReadMinInterval { qn: qn.clone() })
            );
            assert_eq!(
                run(&req("1062", flag, "RtdInterval=30")),
                Ok(Command::SetRtdInterval {
                    qn: qn.clone(),
                    secs: 30
                })
            );
            assert_eq!(
                run(&req("1064", flag, "MinInterval=5")),
                Ok(Command::SetMinInterval {
                    qn: qn.clone(),
                    minutes: 5
                })
            );
            assert_eq!(
                run(&req("1072", flag, "NewPW=654321")),
                Ok(Command::SetPassword {
                    qn: qn.clone(),
                    new_pw: "654321".into()
                })
            );
            for (cn, cp) in [
                ("1062", "RtdInterval=29"),
                ("1062", "RtdInterval=3601"),
                ("1062", ""),
                ("1064", "MinInterval=7"),
                ("1064", "MinInterval=0"),
                ("1064", "MinInterval=-5"),
                ("1072", "NewPW="),
                ("1072", "NewPW=a b"),
            ] {
                assert!(
                    matches!(run(&req(cn, flag, cp)), Ok(Command::BadCondition { .. })),
                    "{cn} {cp}"
                );
            }
            for cn in ["1061", "1062", "1063", "1064", "1072"] {
                let mut p = req(cn, flag, "RtdInterval=60,MinInterval=5,NewPW=1");
                p.pw = "000000".into();
                assert_eq!(run(&p), Err(QnRtn::PwError), "{cn} wrong PW");
                p.mn = "010000A8900016F000169DC1".into();
                assert_eq!(run(&p), Err(QnRtn::MnError), "{cn} wrong MN");
            }
        }
    }

    #[test]
    fn a_parameter_upload_carries_the_request_qn() {
        let p = parameter(
            "20260101000000001",
            "32",
            "1061",
            "1",
            "M",
            "RtdInterval",
            "30".into(),
        );
        assert_eq!(
            p.data_segment().unwrap(),
            "QN=20260101000000001;ST=32;CN=1061;PW=1;MN=M;Flag=4;CP=&&RtdInterval=30&&"
        );
    }
}
