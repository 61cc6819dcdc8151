//! Sharing the encoder among concurrent requests.
//!
//! A transformer on a CPU does more per second in one batch of many windows than in many
//! batches of one (the matrix products get wide enough to use the vector units and the
//! cores), so requests do not call the encoder themselves: they queue their windows, and one
//! worker thread takes whatever is waiting (up to a batch), embeds it in one pass and sends
//! each request its rows back. Under light load a batch is one request and no time is spent
//! waiting for company.

use std::sync::mpsc::{sync_channel, Receiver, SyncSender, TrySendError};
use std::sync::Arc;

use crate::encoder::DIM;
use crate::{Scored, SemanticDetector, SemanticError};

type Reply = tokio::sync::oneshot::Sender<Result<Vec<[f32; DIM]>, String>>;

struct Job {
    windows: Vec<Vec<u32>>,
    reply: Reply,
}

/// The queue in front of the encoder's worker thread.
#[derive(Debug, Clone)]
pub struct Batcher {
    tx: SyncSender<Job>,
    detector: Arc<SemanticDetector>,
}

impl std::fmt::Debug for Job {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Job").field("windows", &self.windows.len()).finish()
    }
}

impl Batcher {
    /// Starts the worker. `max_batch` windows go through the encoder at once; `queue`
    /// requests may wait, and a request that finds the queue full gets
    /// [`SemanticError::Busy`] at once rather than an unbounded wait.
    pub fn start(detector: Arc<SemanticDetector>, max_batch: usize, queue: usize) -> Result<Batcher, SemanticError> {
        let (tx, rx) = sync_channel::<Job>(queue.max(1));
        let worker = Arc::clone(&detector);
        std::thread::Builder::new()
            .name("rampart-semantic".into())
            .spawn(move || run(&worker, &rx, max_batch.max(1)))
            .map_err(|e| SemanticError::Load(format!("cannot start the semantic worker: {e}")))?;
        Ok(Batcher { tx, detector })
    }

    /// The detector behind the queue.
    pub fn detector(&self) -> &SemanticDetector {
        &self.detector
    }

    /// Scores `text` (fast-path probability `fast`) through the shared worker.
    pub async fn score(&self, text: &str, fast: f32) -> Result<Scored, SemanticError> {
        let norm = rampart_scan::normalize::normalize(text);
        let windows = self.detector.windows(&norm.text)?;
        let (reply, rx) = tokio::sync::oneshot::channel();
        let job = Job {
            windows: windows.iter().map(|w| w.ids.clone()).collect(),
            reply,
        };
        match self.tx.try_send(job) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) => return Err(SemanticError::Busy),
            Err(TrySendError::Disconnected(_)) => return Err(SemanticError::Stopped),
        }
        let emb = rx
            .await
            .map_err(|_| SemanticError::Stopped)?
            .map_err(SemanticError::Load)?;
        Ok(self.detector.decide(&windows, &emb, fast))
    }
}

fn run(detector: &SemanticDetector, rx: &Receiver<Job>, max_batch: usize) {
    while let Ok(first) = rx.recv() {
        let mut jobs = vec![first];
        let mut n = jobs.iter().map(|j| j.windows.len()).sum::<usize>();
        while n < max_batch {
            match rx.try_recv() {
                Ok(j) => {
                    n += j.windows.len();
                    jobs.push(j);
                }
                Err(_) => break,
            }
        }
        let ids: Vec<&[u32]> = jobs.iter().flat_map(|j| j.windows.iter().map(Vec::as_slice)).collect();
        let result = detector.encoder().embed(&ids).map_err(|e| e.to_string());
        let mut at = 0usize;
        for job in jobs {
            let k = job.windows.len();
            let rows = match &result {
                Ok(all) => Ok(all.get(at..at + k).map(<[_]>::to_vec).unwrap_or_default()),
                Err(e) => Err(e.clone()),
            };
            at += k;
            // A request that gave up waiting has dropped its receiver; nothing to do.
            let _ = job.reply.send(rows);
        }
    }
}
