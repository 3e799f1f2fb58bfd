//! `lab raw` on PostgreSQL: tokio-postgres connections, the plain `unnest` insert and the call of
//! the service's apply function, one statement per batch.

use super::*;
use tokio_postgres::{Client, NoTls};

/// A column as the service packs it for `edgelog_apply_v7`: each value preceded by U+001E, a
/// missing one U+001F (the plan's values never hold either).
fn packed<'a>(values: impl Iterator<Item = Option<&'a str>>) -> String {
    let mut s = String::new();
    for v in values {
        s.push('\u{1e}');
        s.push_str(v.unwrap_or("\u{1f}"));
    }
    s
}

async fn connect(url: &str) -> Result<Client> {
    let (client, conn) = tokio_postgres::connect(url, NoTls)
        .await
        .with_context(|| "connecting to PostgreSQL".to_string())?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    Ok(client)
}

pub async fn run(url: &str, config: &RawConfig, work: Arc<Work>) -> Result<(Tally, Duration, u64)> {
    let admin = connect(url).await?;
    if config.migrate {
        admin
            .batch_execute(&pg_schema())
            .await
            .context("applying migrations/postgres/")?;
    }
    let mut clients = Vec::with_capacity(config.shape.concurrency);
    for _ in 0..config.shape.concurrency {
        clients.push(connect(url).await?);
    }
    let next = Arc::new(AtomicUsize::new(0));
    let start = Instant::now();
    let mut workers = Vec::new();
    for client in clients {
        let work = Arc::clone(&work);
        let next = Arc::clone(&next);
        workers.push(tokio::spawn(async move {
            let mut tally = Tally::default();
            let text = match work.statement {
                Statement::Plain => PG_PLAIN,
                Statement::Service => PG_SERVICE,
            };
            let stmt = match client.prepare(text).await {
                Ok(s) => s,
                Err(e) => {
                    tally.error(format!("prepare: {e:?}"));
                    return tally;
                }
            };
            while let Some(i) = next_index(&next, &work) {
                let tx = &work.txs[i];
                let topics = work.column(tx, |e| &e.topic);
                let ids = work.column(tx, |e| &e.event_id);
                let ts = work.column(tx, |e| &e.timestamp);
                let sources = vec![SOURCE; tx.events.len()];
                let payloads = work.column(tx, |e| &e.payload);
                let levels: Vec<Option<i32>> = tx
                    .events
                    .iter()
                    .map(|&i| work.events[i as usize].level)
                    .collect();
                let messages: Vec<Option<&str>> = tx
                    .events
                    .iter()
                    .map(|&i| work.events[i as usize].message.as_deref())
                    .collect();
                let t0 = Instant::now();
                let result = match work.statement {
                    Statement::Plain => {
                        client
                            .execute(&stmt, &[&topics, &ids, &ts, &sources, &payloads])
                            .await
                    }
                    Statement::Service => {
                        let pack = |column: &[&str]| packed(column.iter().map(|s| Some(*s)));
                        let (topics, ids, ts) = (pack(&topics), pack(&ids), pack(&ts));
                        let (sources, payloads) = (pack(&sources), pack(&payloads));
                        let messages = packed(messages.iter().copied());
                        let keys = vec![work.batch_key(i)];
                        let received = vec![tx.received as i64];
                        let batch = vec![1i64; tx.events.len()];
                        let shard = (i % 16) as i16;
                        let settles: Option<&str> = None;
                        client
                            .query_one(
                                &stmt,
                                &[
                                    &keys, &received, &batch, &topics, &ids, &ts, &sources,
                                    &payloads, &shard, &levels, &messages, &settles,
                                ],
                            )
                            .await
                            .and_then(|row| row.try_get::<_, i64>(2))
                            .map(|n| n as u64)
                    }
                };
                match result {
                    Ok(n) => {
                        tally.done(tx.received, t0.elapsed());
                        tally.inserted += n;
                    }
                    Err(e) => tally.error(format!("transaction {i}: {e:?}")),
                }
            }
            tally
        }));
    }
    let tally = Tally::join(workers).await;
    let elapsed = start.elapsed();
    let row = admin
        .query_one(
            "SELECT count(*) FROM events WHERE topic LIKE $1",
            &[&format!("{}.%", work.run_id)],
        )
        .await
        .context("counting stored rows")?;
    let stored: i64 = row.get(0);
    Ok((tally, elapsed, stored as u64))
}
