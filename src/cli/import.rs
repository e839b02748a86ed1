//! `users import`: JSON lines into a tenant's directory, a batch at a
//! time, with a progress bar when stderr is a terminal.

use std::io::{IsTerminal, Read};
use std::path::Path;
use std::time::Duration;

use super::Outcome;
use crate::engine::import::{ImportCounts, Importer, Lines, Refused};
use crate::{config, store};

/// Bytes read from the file at a time.
const CHUNK: usize = 256 * 1024;
/// Refused lines kept for `--json`; the others are only counted.
const MAX_REPORTED: usize = 1000;

pub(super) async fn run(
    dir: &Path,
    tenant_id: &str,
    file: &Path,
    json: bool,
) -> anyhow::Result<Outcome> {
    match import(dir, tenant_id, file, json).await {
        Ok(outcome) => Ok(outcome),
        Err(Usage(message)) => {
            eprintln!("error: {message}");
            Ok(Outcome::Usage)
        }
    }
}

/// A usage or configuration error: exit status 2.
struct Usage(String);

impl<E: std::fmt::Display> From<E> for Usage {
    fn from(error: E) -> Self {
        Self(format!("{error:#}"))
    }
}

async fn import(dir: &Path, tenant_id: &str, file: &Path, json: bool) -> Result<Outcome, Usage> {
    let loaded = config::load(dir)?;
    let tenant = super::tenant_of(&loaded, dir, tenant_id).map_err(Usage)?;
    let (input, size): (Box<dyn Read + Send>, Option<u64>) = if file == Path::new("-") {
        (Box::new(std::io::stdin()), None)
    } else {
        let opened = std::fs::File::open(file)
            .map_err(|e| Usage(format!("cannot read {}: {e}", file.display())))?;
        let size = opened.metadata().ok().map(|m| m.len());
        (Box::new(opened), size)
    };
    let settings = loaded.server.store.settings().map_err(Usage)?;
    let store = store::open(settings).await.map_err(|error| {
        match error.downcast_ref::<store::StoreInUse>() {
            Some(in_use) => Usage(format!(
                "{in_use}: stop the gateway before importing into the embedded store \
                 (with the redis store it may keep running)"
            )),
            None => Usage::from(error),
        }
    })?;
    let accounts = tenant.config.file_accounts();

    let progress = Progress::new(size);
    let mut importer = Importer::new(store.as_ref(), tenant_id, &accounts);
    let mut reported = Vec::new();
    let mut report = |refused: Vec<Refused>, progress: &Progress| {
        for line in refused {
            progress.println(&format!("line {}: {}", line.line, line.error));
            if reported.len() < MAX_REPORTED {
                reported.push(line);
            }
        }
    };
    let mut lines = Lines::default();
    let (chunks, mut read) = reader(input);
    let mut failed = None;
    'read: while let Some(chunk) = read.recv().await {
        let chunk = match chunk {
            Ok(chunk) => chunk,
            Err(error) => {
                failed = Some(format!("cannot read {}: {error}", file.display()));
                break;
            }
        };
        progress.advance(chunk.len() as u64, &importer.counts);
        for (number, line) in lines.feed(&chunk) {
            match importer.line(number, &line).await {
                Ok(refused) => report(refused, &progress),
                Err(error) => {
                    failed = Some(error.to_string());
                    break 'read;
                }
            }
        }
    }
    drop(read);
    let _ = chunks.join();
    if failed.is_none() {
        let rest = match lines.rest() {
            Some((number, line)) => importer.line(number, &line).await,
            None => Ok(Vec::new()),
        };
        match rest {
            Ok(refused) => report(refused, &progress),
            Err(error) => failed = Some(error.to_string()),
        }
    }
    if failed.is_none() {
        match importer.finish().await {
            Ok(refused) => report(refused, &progress),
            Err(error) => failed = Some(error.to_string()),
        }
    }
    progress.finish();
    store.flush().await.map_err(Usage::from)?;
    let counts = importer.counts;
    summary(&counts, &reported, json);
    if let Some(reason) = failed {
        // What came before was imported; running the file again goes on.
        eprintln!("error: the import stopped: {reason}");
        return Ok(Outcome::Failed);
    }
    Ok(match counts.refused {
        0 => Outcome::Done,
        _ => Outcome::Failed,
    })
}

fn summary(counts: &ImportCounts, reported: &[Refused], json: bool) {
    if json {
        let answer = serde_json::json!({
            "imported": counts.imported,
            "unchanged": counts.unchanged,
            "refused": counts.refused,
            "errors": reported,
        });
        println!("{answer}");
    } else {
        println!(
            "imported {}, unchanged {}, refused {}",
            counts.imported, counts.unchanged, counts.refused
        );
    }
}

/// Reads `input` on a thread of its own, a chunk at a time, two ahead at most.
fn reader(
    mut input: Box<dyn Read + Send>,
) -> (
    std::thread::JoinHandle<()>,
    tokio::sync::mpsc::Receiver<std::io::Result<Vec<u8>>>,
) {
    let (send, receive) = tokio::sync::mpsc::channel(2);
    let thread = std::thread::spawn(move || {
        loop {
            let mut chunk = vec![0u8; CHUNK];
            let read = match input.read(&mut chunk) {
                Ok(0) => return,
                Ok(n) => {
                    chunk.truncate(n);
                    Ok(chunk)
                }
                Err(error) if error.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(error) => Err(error),
            };
            let stop = read.is_err();
            if send.blocking_send(read).is_err() || stop {
                return;
            }
        }
    });
    (thread, receive)
}

/// A progress bar on stderr when it is a terminal; nothing otherwise.
struct Progress(Option<indicatif::ProgressBar>);

impl Progress {
    fn new(size: Option<u64>) -> Self {
        if !std::io::stderr().is_terminal() {
            return Self(None);
        }
        let bar = match size {
            Some(size) => indicatif::ProgressBar::new(size).with_style(
                indicatif::ProgressStyle::with_template(
                    "{bar:30} {percent:>3}% {binary_bytes}/{binary_total_bytes} · {msg} · {elapsed}",
                )
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
            ),
            None => indicatif::ProgressBar::new_spinner(),
        };
        bar.enable_steady_tick(Duration::from_millis(200));
        Self(Some(bar))
    }

    fn advance(&self, bytes: u64, counts: &ImportCounts) {
        if let Some(bar) = &self.0 {
            bar.inc(bytes);
            bar.set_message(format!(
                "imported {} · unchanged {} · refused {}",
                counts.imported, counts.unchanged, counts.refused
            ));
        }
    }

    /// A line above the bar (or on stderr without one).
    fn println(&self, line: &str) {
        match &self.0 {
            Some(bar) => bar.println(line),
            None => eprintln!("{line}"),
        }
    }

    fn finish(&self) {
        if let Some(bar) = &self.0 {
            bar.finish_and_clear();
        }
    }
}
