//! What an append to the Yjs update log costs on a SQLite file, through the journal and through
//! the database (the path when another process holds the journal), as a live room makes them:
//! one 40-byte update at a time, spread over 50 documents.
//!
//! ```sh
//! cargo run --release -p mdcreator-sql --example append_cost [appends]
//! ```
//!
//! Prints the CPU time per append of this process (all threads: the journal's folding thread
//! included) and the wall time per append of the caller.

#[path = "../tests/support/mod.rs"]
mod support;

use std::time::{Duration, Instant};

use mdcreator_domain::DocumentId;
use mdcreator_domain::collab::YjsStore;
use mdcreator_sql::{SqlSettings, SqlStore};
use support::{document, seed_document, seed_user, seed_workspace};

const DOCUMENTS: usize = 50;

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let appends: usize = std::env::args()
        .nth(1)
        .map(|n| n.parse())
        .transpose()?
        .unwrap_or(20_000);
    for journal in [true, false] {
        let dir = std::env::temp_dir().join(format!("mdc-append-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir)?;
        let path = dir.join("bench.db");
        std::fs::File::create(&path)?;
        // Without the journal: as when another process holds it.
        let lock = if journal {
            None
        } else {
            let mut lock_path = path.canonicalize()?.into_os_string();
            lock_path.push("-updates.lock");
            let lock = std::fs::File::create(lock_path)?;
            lock.try_lock()?;
            Some(lock)
        };
        let store = SqlStore::connect(
            &format!("sqlite://{}", path.display()),
            &SqlSettings::default(),
        )
        .await?;
        store.migrate().await?;
        let owner = seed_user(&store, "bench").await;
        let ws = seed_workspace(&store, &owner).await;
        let mut documents: Vec<DocumentId> = Vec::new();
        for i in 0..DOCUMENTS {
            let d = document(ws.id, owner.id, &format!("room {i}"), "");
            seed_document(&store, &d).await;
            documents.push(d.id);
        }
        let update = vec![7u8; 40];
        // Warm up: every document's last id known.
        for d in &documents {
            store.append(*d, vec![update.clone()]).await?;
        }
        let (cpu, wall) = (cpu_time(), Instant::now());
        for i in 0..appends {
            store
                .append(documents[i % DOCUMENTS], vec![update.clone()])
                .await?;
        }
        let wall = wall.elapsed();
        // The folds of what was appended belong to the cost.
        store.fold_journal().await?;
        let cpu = cpu_time() - cpu;
        let per = |d: Duration| d.as_secs_f64() * 1e6 / appends as f64;
        println!(
            "{:<16} {appends} appends: {:.1} µs CPU, {:.1} µs wall per append",
            if journal { "journal" } else { "database" },
            per(cpu),
            per(wall),
        );
        store.close().await?;
        drop(lock);
        std::fs::remove_dir_all(&dir).ok();
    }
    Ok(())
}

/// CPU time of this process so far (user + system, all threads).
fn cpu_time() -> Duration {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields after the command's closing parenthesis; utime and stime are the 14th and 15th.
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map_or("", |(_, rest)| rest)
        .split_whitespace()
        .collect();
    let ticks: u64 = [11, 12]
        .iter()
        .filter_map(|&i| fields.get(i).and_then(|f| f.parse::<u64>().ok()))
        .sum();
    // USER_HZ is 100 on Linux.
    Duration::from_millis(ticks * 10)
}
