//! The raw argon2id verification rate, the baseline of the login benchmark
//! (`bench/run.py`): `threads` threads each verify one password against one
//! hash in a loop for `seconds`, every thread reusing its own block buffer
//! (as the server's hashing threads do). Prints one JSON line.
//!
//! cargo run --release --example argon2_rate -- --m 19456 --t 2 --p 1 --threads 2 --seconds 10

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use argon2::{Algorithm, Argon2, Block, Params, Version};

struct Args {
    m: u32,
    t: u32,
    p: u32,
    threads: usize,
    seconds: f64,
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        m: 19 * 1024,
        t: 2,
        p: 1,
        threads: 2,
        seconds: 10.0,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let value = it.next().ok_or_else(|| format!("{flag} needs a value"))?;
        let bad = |e: &dyn std::fmt::Display| format!("{flag} {value}: {e}");
        match flag.as_str() {
            "--m" => args.m = value.parse().map_err(|e| bad(&e))?,
            "--t" => args.t = value.parse().map_err(|e| bad(&e))?,
            "--p" => args.p = value.parse().map_err(|e| bad(&e))?,
            "--threads" => args.threads = value.parse().map_err(|e| bad(&e))?,
            "--seconds" => args.seconds = value.parse().map_err(|e| bad(&e))?,
            other => return Err(format!("unknown option {other}")),
        }
    }
    if args.threads == 0 || args.seconds <= 0.0 {
        return Err("--threads and --seconds must be positive".into());
    }
    Ok(args)
}

/// Verifies `password` against `expected` in a loop until `stop`; answers
/// how many verifications ran.
fn verify_loop(params: Params, salt: &[u8], expected: &[u8], stop: &AtomicBool) -> u64 {
    let argon2 = Argon2::new(Algorithm::Argon2id, Version::V0x13, params.clone());
    let mut memory = vec![Block::new(); params.block_count()];
    let mut out = vec![0u8; expected.len()];
    let mut done = 0;
    while !stop.load(Ordering::Relaxed) {
        argon2
            .hash_password_into_with_memory(b"bench-password", salt, &mut out, &mut memory[..])
            .expect("argon2 runs");
        assert_eq!(out, expected, "the hash verifies");
        done += 1;
    }
    done
}

fn main() {
    let args = match parse_args() {
        Ok(args) => args,
        Err(problem) => {
            eprintln!("argon2_rate: {problem}");
            std::process::exit(2);
        }
    };
    let params = Params::new(args.m, args.t, args.p, Some(32)).expect("valid argon2 parameters");
    let salt: [u8; 16] = rand::random();
    let mut expected = [0u8; 32];
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params.clone())
        .hash_password_into(b"bench-password", &salt, &mut expected)
        .expect("argon2 runs");

    let stop = Arc::new(AtomicBool::new(false));
    let started = Instant::now();
    let workers: Vec<_> = (0..args.threads)
        .map(|_| {
            let (params, stop) = (params.clone(), Arc::clone(&stop));
            std::thread::spawn(move || verify_loop(params, &salt, &expected, &stop))
        })
        .collect();
    std::thread::sleep(Duration::from_secs_f64(args.seconds));
    stop.store(true, Ordering::Relaxed);
    let verifications: u64 = workers.into_iter().map(|w| w.join().expect("worker")).sum();
    let elapsed = started.elapsed().as_secs_f64();
    println!(
        "{}",
        serde_json::json!({
            "m": args.m,
            "t": args.t,
            "p": args.p,
            "threads": args.threads,
            "seconds": elapsed,
            "verifications": verifications,
            "per_second": verifications as f64 / elapsed,
        })
    );
}
