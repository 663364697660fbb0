//! Transport-only throughput of paperboy's SMTP pool (`mail::pool`), for `bench/throughput.sh`.
//!
//! What for: separating the delivery engine's own speed from the cost of rendering digests.
//! It sends one ready-made message (a real digest, read from a file) COUNT times through the
//! same pool `paperboy send` uses, CONNECTIONS at a time, and prints messages per second.
//! Not for: anything a user runs; it has no database, no rendering, no retries.
//!
//! Usage: smtp_pool_bench SMTP_URL MESSAGE_FILE COUNT CONNECTIONS NODELAY(true|false)

use lettre::Address;
use lettre::address::Envelope;
use paperboy::config::SmtpUrl;
use paperboy::mail::Trust;
use paperboy::mail::pool::SmtpPool;
use std::sync::Arc;
use std::time::{Duration, Instant};

#[tokio::main]
async fn main() -> Result<(), String> {
    let args: Vec<String> = std::env::args().collect();
    let [_, url, file, count, connections, nodelay] = args.as_slice() else {
        return Err(
            "usage: smtp_pool_bench SMTP_URL MESSAGE_FILE COUNT CONNECTIONS NODELAY".into(),
        );
    };
    let count: usize = count.parse().map_err(|_| "COUNT is a number")?;
    let connections: u32 = connections.parse().map_err(|_| "CONNECTIONS is a number")?;
    let nodelay = nodelay == "true";
    // The file may have LF line ends (as smtp-source -F wants); SMTP needs CRLF.
    let text = std::fs::read_to_string(file).map_err(|e| format!("{file}: {e}"))?;
    let body = Arc::new(
        text.replace("\r\n", "\n")
            .replace('\n', "\r\n")
            .into_bytes(),
    );
    let from: Address = "digest@paperboy.example.org".parse().map_err(|_| "from")?;
    let to: Address = "reader@example.net".parse().map_err(|_| "to")?;
    let envelope = Arc::new(Envelope::new(Some(from), vec![to]).map_err(|e| e.to_string())?);
    let target = SmtpUrl::parse(url).map_err(|e| e.to_string())?;
    let pool = Arc::new(SmtpPool::new(
        target,
        Trust::load(None),
        connections,
        Duration::from_secs(30),
        nodelay,
    )?);
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    // As the send job does: at most CONNECTIONS messages in flight, each task one message.
    let limiter = Arc::new(tokio::sync::Semaphore::new(connections as usize));
    for _ in 0..count {
        let permit = limiter
            .clone()
            .acquire_owned()
            .await
            .map_err(|e| e.to_string())?;
        let (pool, envelope, body) = (pool.clone(), envelope.clone(), body.clone());
        tasks.spawn(async move {
            let r = pool.send(&envelope, &body).await;
            drop(permit);
            r
        });
    }
    let mut failed = 0;
    while let Some(r) = tasks.join_next().await {
        if !matches!(r, Ok(Ok(()))) {
            failed += 1;
        }
    }
    let secs = started.elapsed().as_secs_f64();
    if failed > 0 {
        return Err(format!("{failed} of {count} messages failed"));
    }
    println!("{:.0}", count as f64 / secs);
    Ok(())
}
