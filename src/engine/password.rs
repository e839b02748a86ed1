//! Password verification (argon2id, and the foreign schemes of
//! [`super::hashes`]) on a few dedicated threads, never on async workers.

use std::sync::{Arc, Mutex, mpsc};
use std::time::Instant;

use argon2::password_hash::{Output, PasswordHash, PasswordHasher, SaltString};
use argon2::{Algorithm, Argon2, Block, Params, Version};
use metrics::{Gauge, Histogram};
use secrecy::{ExposeSecret, SecretString};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, oneshot};

/// Largest argon2 memory cost accepted in a PHC string: 1 GiB, in KiB.
pub const MAX_MEMORY_KIB: u32 = 1024 * 1024;
/// Largest time cost accepted: beyond this a login takes seconds.
pub const MAX_TIME_COST: u32 = 64;
/// Largest parallelism accepted.
pub const MAX_PARALLELISM: u32 = 64;

/// OWASP's first recommended argon2id setting (m=19 MiB, t=2, p=1).
pub fn default_params() -> Params {
    Params::new(19 * 1024, 2, 1, None).expect("valid argon2 parameters")
}

/// Checks that `phc` is an argon2id PHC string with sane parameters.
pub fn validate_phc(phc: &str) -> Result<Params, String> {
    let hash = PasswordHash::new(phc).map_err(|e| format!("malformed PHC string ({e})"))?;
    if hash.algorithm.as_str() != "argon2id" {
        return Err(format!(
            "the hash uses `{}`; only argon2id is accepted",
            hash.algorithm
        ));
    }
    bounded_params(&hash)
}

/// The argon2 parameters of `hash`, within the bounds above, when it has a
/// salt and a hash.
pub(super) fn bounded_params(hash: &PasswordHash) -> Result<Params, String> {
    let params = Params::try_from(hash).map_err(|e| format!("bad argon2 parameters ({e})"))?;
    if params.m_cost() > MAX_MEMORY_KIB {
        return Err(format!(
            "argon2 memory cost m={} KiB exceeds the 1 GiB bound",
            params.m_cost()
        ));
    }
    if params.t_cost() > MAX_TIME_COST {
        return Err(format!(
            "argon2 time cost t={} exceeds the bound of {MAX_TIME_COST}",
            params.t_cost()
        ));
    }
    if params.p_cost() > MAX_PARALLELISM {
        return Err(format!(
            "argon2 parallelism p={} exceeds the bound of {MAX_PARALLELISM}",
            params.p_cost()
        ));
    }
    if hash.hash.is_none() || hash.salt.is_none() {
        return Err("the PHC string has no salt or no hash".into());
    }
    Ok(params)
}

/// Whether `phc` is an argon2id hash made with exactly `params` (what a
/// login need not rehash).
pub fn is_argon2id_with(phc: &str, params: &Params) -> bool {
    let Ok(hash) = PasswordHash::new(phc) else {
        return false;
    };
    hash.algorithm.as_str() == "argon2id"
        && hash.version == Some(Version::V0x13 as u32)
        && Params::try_from(&hash).is_ok_and(|p| {
            (p.m_cost(), p.t_cost(), p.p_cost())
                == (params.m_cost(), params.t_cost(), params.p_cost())
        })
}

/// Hashes a password with argon2id and a fresh salt (for `hash-password`).
pub fn hash_password(password: &SecretString, params: Params) -> anyhow::Result<String> {
    let salt = SaltString::generate(&mut rand::rngs::OsRng);
    let argon2 = Argon2::new(Algorithm::Argon2id, Version::V0x13, params);
    let hash = argon2
        .hash_password(password.expose_secret().as_bytes(), &salt)
        .map_err(|e| anyhow::anyhow!("argon2 failed: {e}"))?;
    Ok(hash.to_string())
}

/// How long a login waits for a hashing slot before it is answered
/// `unavailable`: under a flood, queues stay short instead of growing forever.
const QUEUE_WAIT: std::time::Duration = std::time::Duration::from_secs(10);

/// Why a verification did not happen.
#[derive(Debug, thiserror::Error)]
pub enum HashError {
    #[error("every hashing slot stayed busy for {0:?}")]
    Busy(std::time::Duration),
    #[error("argon2 task failed: {0}")]
    Failed(String),
}

/// Runs argon2 verifications on `max_concurrent` dedicated threads, each
/// owning the block memory it hashes in, so the process holds at most
/// `max_concurrent` argon2 buffers however many logins come (freeing one per
/// login left it to the allocator, which kept most of them resident).
///
/// A login first takes one of `max_concurrent` permits and holds it until its
/// job is done, so no more jobs are queued or running than there are threads;
/// waiting logins queue on the permits and hold no thread.
#[derive(Clone)]
pub struct Hasher {
    permits: Arc<Semaphore>,
    jobs: mpsc::Sender<Job>,
    /// Logins waiting for a permit.
    queue_depth: Gauge,
    /// How long they waited.
    waited: Histogram,
}

/// One login waiting for a permit, counted in the queue depth until it
/// has one or gives up (or its client leaves).
struct Waiting<'a>(&'a Gauge);

impl<'a> Waiting<'a> {
    fn new(depth: &'a Gauge) -> Self {
        depth.increment(1.0);
        Self(depth)
    }
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.decrement(1.0);
    }
}

/// What a hashing thread is asked to do.
enum Work {
    /// Check the password against `phc`; when it matches and `rehash` is
    /// given, also hash it afresh with those argon2id parameters.
    Verify {
        phc: Arc<str>,
        rehash: Option<Params>,
    },
    /// Hash the password with these argon2id parameters.
    Hash(Params),
}

/// What a hashing thread answers.
#[derive(Debug, Default)]
pub struct Done {
    pub matches: bool,
    /// A new argon2id PHC string of the password, when one was asked for.
    pub hashed: Option<String>,
}

/// One job handed to a hashing thread.
struct Job {
    work: Work,
    password: SecretString,
    span: tracing::Span,
    answer: oneshot::Sender<Done>,
    _permit: OwnedSemaphorePermit,
}

impl Hasher {
    /// Starts the hashing threads; they end when the last clone is dropped.
    pub fn new(max_concurrent: usize) -> std::io::Result<Self> {
        let threads = max_concurrent.max(1);
        let (jobs, queue) = mpsc::channel::<Job>();
        let queue = Arc::new(Mutex::new(queue));
        let ran = metrics::histogram!(crate::meters::ARGON2_RUN);
        for n in 0..threads {
            let queue = Arc::clone(&queue);
            let ran = ran.clone();
            std::thread::Builder::new()
                .name(format!("polyauth-argon2-{n}"))
                .spawn(move || run_jobs(&queue, &ran))?;
        }
        Ok(Self {
            permits: Arc::new(Semaphore::new(threads)),
            jobs,
            queue_depth: metrics::gauge!(crate::meters::ARGON2_QUEUE_DEPTH),
            waited: metrics::histogram!(crate::meters::ARGON2_WAIT),
        })
    }

    /// `true` when `password` matches `phc`. A malformed hash verifies as false.
    pub async fn verify(&self, phc: Arc<str>, password: SecretString) -> Result<bool, HashError> {
        let work = Work::Verify { phc, rehash: None };
        Ok(self.run(work, password).await?.matches)
    }

    /// Checks `password` against `phc` and, when it matches and `rehash` is
    /// given, hashes it again with those parameters, in one job.
    pub async fn verify_and_rehash(
        &self,
        phc: Arc<str>,
        password: SecretString,
        rehash: Option<Params>,
    ) -> Result<Done, HashError> {
        self.run(Work::Verify { phc, rehash }, password).await
    }

    /// An argon2id PHC string of `password` with `params` and a fresh salt.
    pub async fn hash(&self, password: SecretString, params: Params) -> Result<String, HashError> {
        self.run(Work::Hash(params), password)
            .await?
            .hashed
            .ok_or_else(|| HashError::Failed("argon2 could not hash".into()))
    }

    #[tracing::instrument(name = "argon2", skip_all)]
    async fn run(&self, work: Work, password: SecretString) -> Result<Done, HashError> {
        let waiting = Waiting::new(&self.queue_depth);
        let started = Instant::now();
        let permit =
            tokio::time::timeout(QUEUE_WAIT, Arc::clone(&self.permits).acquire_owned()).await;
        self.waited.record(started.elapsed());
        drop(waiting);
        let permit = permit
            .map_err(|_| HashError::Busy(QUEUE_WAIT))?
            .map_err(|e| HashError::Failed(e.to_string()))?;
        let (answer, answered) = oneshot::channel();
        let job = Job {
            work,
            password,
            span: tracing::Span::current(),
            answer,
            _permit: permit,
        };
        self.jobs
            .send(job)
            .map_err(|_| HashError::Failed("the hashing threads are gone".into()))?;
        answered
            .await
            .map_err(|_| HashError::Failed("no hashing thread answered".into()))
    }
}

/// The nice value of the hashing threads. A verification is sub-millisecond
/// work whose latency matters; argon2 is tens of milliseconds of pure CPU.
/// While both want the cores, the scheduler gives a worker that wakes the
/// core at once, so verify stays fast while logins saturate hashing; with
/// idle workers, hashing has the cores to itself and runs at full speed.
const HASHING_NICE: libc::c_int = 10;

/// Lowers the calling thread's priority to [`HASHING_NICE`] (on Linux the
/// nice value is per thread); failing that, it keeps running as it is.
fn yield_to_workers() {
    #[cfg(target_os = "linux")]
    {
        // SAFETY: setpriority has no memory effects; it only changes the
        // scheduling weight of the thread `gettid` names, this one.
        let done = unsafe {
            libc::setpriority(
                libc::PRIO_PROCESS,
                libc::gettid() as libc::id_t,
                HASHING_NICE,
            )
        };
        if done != 0 {
            let error = std::io::Error::last_os_error();
            tracing::warn!(%error, "hashing thread keeps its priority: logins may slow verify down");
        }
    }
}

/// A hashing thread: takes jobs until the [`Hasher`] is dropped, all in one
/// block buffer grown to the largest memory cost it has met (at most
/// [`MAX_MEMORY_KIB`]: larger hashes are refused before any allocation).
fn run_jobs(queue: &Mutex<mpsc::Receiver<Job>>, ran: &Histogram) {
    yield_to_workers();
    let mut memory = Vec::new();
    loop {
        let next = match queue.lock() {
            Ok(queue) => queue.recv(),
            Err(_) => return,
        };
        let Ok(job) = next else { return };
        // The login went away while it queued (its client left): skip the work.
        if job.answer.is_closed() {
            continue;
        }
        let _entered = job.span.enter();
        tracing::debug!("argon2 job running");
        let started = Instant::now();
        let done = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            let password = job.password.expose_secret().as_bytes();
            let (matches, rehash) = match &job.work {
                Work::Verify { phc, rehash } => {
                    let matches = super::hashes::verify(&mut memory, phc, password);
                    (matches.unwrap_or(false), rehash.clone())
                }
                Work::Hash(params) => (false, Some(params.clone())),
            };
            let wanted = matches || matches!(job.work, Work::Hash(_));
            let hashed = rehash
                .filter(|_| wanted)
                .and_then(|params| hash_password(&job.password, params).ok());
            Done { matches, hashed }
        }));
        ran.record(started.elapsed());
        match done {
            Ok(done) => {
                let _ = job.answer.send(done);
            }
            Err(_) => tracing::error!("argon2 job panicked"),
        }
    }
}

/// Verifies `password` against the argon2 PHC string `phc` (argon2id,
/// argon2i or argon2d, by its own identifier) with `memory` as the argon2
/// blocks; `None` for a hash it cannot read or whose parameters are out of
/// bounds. The comparison is constant-time ([`Output`]'s `PartialEq`).
pub(super) fn verify_in(memory: &mut Vec<Block>, phc: &str, password: &[u8]) -> Option<bool> {
    let hash = PasswordHash::new(phc).ok()?;
    let algorithm = Algorithm::try_from(hash.algorithm).ok()?;
    let version = hash.version.map(Version::try_from).transpose().ok()?;
    let params = bounded_params(&hash).ok()?;
    let expected = hash.hash?;
    let mut salt = [0u8; 64];
    let salt = hash.salt?.decode_b64(&mut salt).ok()?;
    let blocks = params.block_count();
    if memory.len() < blocks {
        // The old buffer goes first: one buffer per thread, even while growing.
        drop(std::mem::take(memory));
        *memory = vec![Block::new(); blocks];
    }
    let argon2 = Argon2::new(algorithm, version.unwrap_or_default(), params);
    let computed = Output::init_with(expected.len(), |out| {
        argon2
            .hash_password_into_with_memory(password, salt, out, &mut memory[..])
            .map_err(Into::into)
    })
    .ok()?;
    Some(computed == expected)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejects_absurd_and_foreign_hashes() {
        assert!(validate_phc("not a hash").is_err());
        let huge = "$argon2id$v=19$m=2097152,t=2,p=1$c29tZXNhbHQ$iWh06vD8Fy27wf9npn6FXWiCX4K6pW6Ue1Bnzz07Z8A";
        assert!(validate_phc(huge).unwrap_err().contains("1 GiB"));
        let argon2i =
            "$argon2i$v=19$m=19456,t=2,p=1$c29tZXNhbHQ$iWh06vD8Fy27wf9npn6FXWiCX4K6pW6Ue1Bnzz07Z8A";
        assert!(validate_phc(argon2i).unwrap_err().contains("argon2id"));
    }

    #[tokio::test]
    async fn verifies_what_it_hashed() {
        let phc = hash_password(&SecretString::from("correct horse"), default_params()).unwrap();
        assert!(validate_phc(&phc).is_ok());
        let hasher = Hasher::new(1).unwrap();
        let phc: Arc<str> = phc.into();
        assert!(
            hasher
                .verify(phc.clone(), SecretString::from("correct horse"))
                .await
                .unwrap()
        );
        assert!(
            !hasher
                .verify(phc, SecretString::from("wrong"))
                .await
                .unwrap()
        );
    }

    /// A PHC string made by argon2 itself, with `algorithm` and `m` KiB.
    fn phc(algorithm: Algorithm, m_kib: u32, password: &str) -> String {
        let params = Params::new(m_kib, 1, 1, None).unwrap();
        let salt = SaltString::generate(&mut rand::rngs::OsRng);
        Argon2::new(algorithm, Version::V0x13, params)
            .hash_password(password.as_bytes(), &salt)
            .unwrap()
            .to_string()
    }

    #[test]
    fn verifies_each_argon2_variant_by_its_own_identifier() {
        let right: &[u8] = b"right";
        let wrong: &[u8] = b"wrong";
        let mut memory = Vec::new();
        for algorithm in [Algorithm::Argon2id, Algorithm::Argon2i, Algorithm::Argon2d] {
            let hash = phc(algorithm, 64, "right");
            assert!(hash.starts_with(&format!("${}$", algorithm.ident())));
            assert_eq!(verify_in(&mut memory, &hash, right), Some(true));
            assert_eq!(verify_in(&mut memory, &hash, wrong), Some(false));
            // The same hash under another variant's name does not match.
            let other = if algorithm == Algorithm::Argon2d {
                "argon2i"
            } else {
                "argon2d"
            };
            let renamed = hash.replacen(algorithm.ident().as_str(), other, 1);
            assert_eq!(verify_in(&mut memory, &renamed, right), Some(false));
        }
        // PHC strings without a version are argon2 1.3 hashes.
        let hash = phc(Algorithm::Argon2id, 64, "right").replacen("$v=19", "", 1);
        assert_eq!(verify_in(&mut memory, &hash, right), Some(true));
        assert_eq!(
            verify_in(&mut memory, "$scrypt$ln=4,r=8,p=1$c2FsdA$aGFzaA", right),
            None
        );
    }

    #[test]
    fn the_buffer_grows_to_the_largest_memory_cost_and_no_further() {
        let password: &[u8] = b"pw";
        let mut memory = Vec::new();
        let small = phc(Algorithm::Argon2id, 256, "pw");
        let large = phc(Algorithm::Argon2id, 1024, "pw");
        assert_eq!(verify_in(&mut memory, &small, password), Some(true));
        assert_eq!(memory.len(), 256);
        assert_eq!(verify_in(&mut memory, &large, password), Some(true));
        assert_eq!(memory.len(), 1024);
        // A smaller hash after a larger one reuses the larger buffer.
        assert_eq!(verify_in(&mut memory, &small, password), Some(true));
        assert_eq!(memory.len(), 1024);
        // Beyond the 1 GiB bound nothing is allocated at all.
        let huge = "$argon2id$v=19$m=2097152,t=2,p=1$c29tZXNhbHQ$iWh06vD8Fy27wf9npn6FXWiCX4K6pW6Ue1Bnzz07Z8A";
        assert_eq!(verify_in(&mut memory, huge, password), None);
        assert_eq!(memory.len(), 1024);
    }

    #[tokio::test]
    async fn runs_on_its_own_named_threads() {
        let hasher = Hasher::new(2).unwrap();
        let phc: Arc<str> = phc(Algorithm::Argon2id, 64, "pw").into();
        let checks = (0..8).map(|_| hasher.verify(Arc::clone(&phc), SecretString::from("pw")));
        for matched in futures_util::future::join_all(checks).await {
            assert!(matched.unwrap());
        }
        let named = || {
            std::fs::read_dir("/proc/self/task")
                .unwrap()
                .filter_map(|task| std::fs::read_to_string(task.ok()?.path().join("comm")).ok())
                .filter(|name| name.starts_with("polyauth-argon2"))
                .count()
        };
        // A thread takes its name once it first runs; under load one of the
        // two may not have run yet.
        let mut threads = named();
        for _ in 0..100 {
            if threads >= 2 {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            threads = named();
        }
        assert!(threads >= 2, "{threads} hashing threads");
    }
}
