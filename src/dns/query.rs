//! What the authoritative server answers: one non-recursive query over UDP, repeated over TCP
//! when the answer is truncated.

use std::net::SocketAddr;
use std::time::Duration;

use hickory_proto::op::{Message, Query};
use hickory_proto::rr::{Name, RData, RecordType};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// The answer section's records of the asked type (and CNAMEs), as text: addresses as
/// written, names lowercase with a trailing dot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    pub records: Vec<(RecordType, String)>,
    pub authoritative: bool,
}

pub async fn query(
    server: SocketAddr,
    name: &str,
    rtype: RecordType,
    timeout: Duration,
) -> Result<Answer, String> {
    let name = Name::from_ascii(name).map_err(|e| format!("bad DNS name {name}: {e}"))?;
    let mut msg = Message::query();
    msg.add_query(Query::query(name, rtype));
    // An authoritative check: the server must answer from its own data.
    msg.metadata.recursion_desired = false;
    let bytes = msg.to_vec().map_err(|e| e.to_string())?;
    let id = msg.metadata.id;

    let udp = tokio::time::timeout(timeout, udp_exchange(server, &bytes))
        .await
        .map_err(|_| {
            format!(
                "no DNS answer from {server} within {}s",
                timeout.as_secs_f32()
            )
        })??;
    let mut answer = Message::from_vec(&udp).map_err(|e| format!("bad DNS answer: {e}"))?;
    if answer.metadata.truncation {
        let tcp = tokio::time::timeout(timeout, tcp_exchange(server, &bytes))
            .await
            .map_err(|_| {
                format!(
                    "no DNS answer over TCP from {server} within {}s",
                    timeout.as_secs_f32()
                )
            })??;
        answer = Message::from_vec(&tcp).map_err(|e| format!("bad DNS answer: {e}"))?;
    }
    if answer.metadata.id != id {
        return Err("DNS answer with a foreign id".into());
    }
    let records = answer
        .answers
        .iter()
        .filter(|r| r.record_type() == rtype || r.record_type() == RecordType::CNAME)
        .map(|r| {
            let text = match &r.data {
                RData::A(a) => a.to_string(),
                RData::AAAA(a) => a.to_string(),
                other => other.to_string().to_ascii_lowercase(),
            };
            (r.record_type(), text)
        })
        .collect();
    Ok(Answer {
        records,
        authoritative: answer.metadata.authoritative,
    })
}

async fn udp_exchange(server: SocketAddr, bytes: &[u8]) -> Result<Vec<u8>, String> {
    let bind = if server.is_ipv4() {
        "0.0.0.0:0"
    } else {
        "[::]:0"
    };
    let socket = tokio::net::UdpSocket::bind(bind)
        .await
        .map_err(|e| format!("UDP socket: {e}"))?;
    socket
        .send_to(bytes, server)
        .await
        .map_err(|e| format!("DNS query to {server}: {e}"))?;
    let mut buf = vec![0u8; 4096];
    let len = socket
        .recv(&mut buf)
        .await
        .map_err(|e| format!("DNS answer from {server}: {e}"))?;
    buf.truncate(len);
    Ok(buf)
}

async fn tcp_exchange(server: SocketAddr, bytes: &[u8]) -> Result<Vec<u8>, String> {
    let mut stream = tokio::net::TcpStream::connect(server)
        .await
        .map_err(|e| format!("DNS over TCP to {server}: {e}"))?;
    let len = u16::try_from(bytes.len()).map_err(|_| "DNS query too long".to_owned())?;
    let mut framed = len.to_be_bytes().to_vec();
    framed.extend_from_slice(bytes);
    let io = |e: std::io::Error| format!("DNS over TCP to {server}: {e}");
    stream.write_all(&framed).await.map_err(io)?;
    let mut len = [0u8; 2];
    stream.read_exact(&mut len).await.map_err(io)?;
    let mut buf = vec![0u8; usize::from(u16::from_be_bytes(len))];
    stream.read_exact(&mut buf).await.map_err(io)?;
    Ok(buf)
}
