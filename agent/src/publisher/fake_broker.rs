//! A scripted MQTT 3.1.1 broker for the publisher's tests: it accepts one client, answers its
//! CONNECT, hands every PUBLISH to the test and sends PUBACKs only when the test says so, so that
//! a test can hold the window full and release it one ack at a time.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// A PUBLISH the client sent.
#[derive(Debug, Clone)]
pub struct Published {
    pub topic: String,
    /// 0 for QoS 0.
    pub pkid: u16,
    pub payload: Vec<u8>,
}

pub struct FakeBroker {
    listener: TcpListener,
}

pub struct Session {
    stream: TcpStream,
}

impl FakeBroker {
    pub async fn bind() -> FakeBroker {
        FakeBroker {
            listener: TcpListener::bind("127.0.0.1:0")
                .await
                .expect("bind a loopback port"),
        }
    }

    pub fn port(&self) -> u16 {
        self.listener.local_addr().map(|a| a.port()).unwrap_or(0)
    }

    /// Accept the client and answer its CONNECT (no session present).
    pub async fn accept(&self, within: Duration) -> Session {
        let (stream, _) = tokio::time::timeout(within, self.listener.accept())
            .await
            .expect("the publisher connects in time")
            .expect("accept");
        let mut s = Session { stream };
        let (kind, _) = s.packet().await;
        assert_eq!(kind >> 4, 1, "the first packet is CONNECT");
        s.stream
            .write_all(&[0x20, 0x02, 0x00, 0x00])
            .await
            .expect("send CONNACK");
        s
    }
}

impl Session {
    /// One packet: (first byte, body).
    async fn packet(&mut self) -> (u8, Vec<u8>) {
        let kind = self.stream.read_u8().await.expect("read a packet");
        let mut len = 0usize;
        for shift in (0..28).step_by(7) {
            let b = self.stream.read_u8().await.expect("read a length");
            len |= usize::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                break;
            }
        }
        let mut body = vec![0; len];
        self.stream
            .read_exact(&mut body)
            .await
            .expect("read a body");
        (kind, body)
    }

    /// The next PUBLISH (other packets are answered or skipped), or None after `within`.
    pub async fn next_publish(&mut self, within: Duration) -> Option<Published> {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let (kind, body) = tokio::time::timeout_at(deadline, self.packet())
                .await
                .ok()?;
            match kind >> 4 {
                3 => {
                    let tlen = usize::from(u16::from_be_bytes([body[0], body[1]]));
                    let topic = String::from_utf8_lossy(&body[2..2 + tlen]).into_owned();
                    let (pkid, at) = if (kind >> 1) & 3 > 0 {
                        (
                            u16::from_be_bytes([body[2 + tlen], body[3 + tlen]]),
                            4 + tlen,
                        )
                    } else {
                        (0, 2 + tlen)
                    };
                    let payload = body[at..].to_vec();
                    return Some(Published {
                        topic,
                        pkid,
                        payload,
                    });
                }
                12 => {
                    // PINGREQ
                    let _ = self.stream.write_all(&[0xd0, 0x00]).await;
                }
                _ => {}
            }
        }
    }

    pub async fn puback(&mut self, pkid: u16) {
        let [hi, lo] = pkid.to_be_bytes();
        self.stream
            .write_all(&[0x40, 0x02, hi, lo])
            .await
            .expect("send PUBACK");
    }
}
