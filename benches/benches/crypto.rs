//! AES-256-GCM and C2SP chunked-encryption throughput on one core, with OpenSSL measured in the
//! same run (`openssl speed -evp aes-256-gcm -bytes 16384 -seconds 3`) as the peer.
//!
//!     cargo bench -p sigfab-benches --bench crypto
//!
//! Rows: our AES-256-GCM (ring backend) sealing 16 KiB messages; RustCrypto `aes-gcm` on the
//! same messages (the backend we did not pick); the C2SP chunked writer and reader on a 1 MiB
//! message (cache-resident) and a 64 MiB one (read from DRAM): 16 KiB chunks, so AES-GCM plus
//! one copy per chunk and the I/O plumbing. A second table
//! times the per-file public-key work: X-Wing key expansion, encapsulation, decapsulation, and
//! wrapping/unwrapping a data key for one recipient (no peer: OpenSSL 3.0 has no ML-KEM).

use std::io::{Read, Write};
use std::process::Command;
use std::time::{Duration, Instant};

use aes_gcm::aead::{AeadInOut, KeyInit};
use sigfab_benches::pin_to_one_core;
use sigfab_engine::crypto::aead::Aes256Gcm;
use sigfab_engine::crypto::chunked::{ChunkedReader, ChunkedWriter};
use sigfab_engine::crypto::envelope::{open_data_key, seal_data_key};
use sigfab_engine::crypto::xwing::DecapsulationKey;
use sigfab_engine::crypto::SymmetricKey;

const BLOCK: usize = 16 * 1024;
const SECONDS: f64 = 3.0;
/// Message sizes for the chunked rows: one that stays in cache, one that streams from DRAM.
const SMALL_MESSAGE: usize = 1 << 20;
const LARGE_MESSAGE: usize = 64 << 20;

/// Bytes per second of `f`, which processes `bytes_per_call` bytes, run for about `SECONDS`.
fn throughput(bytes_per_call: usize, mut f: impl FnMut()) -> f64 {
    f();
    let start = Instant::now();
    let mut calls = 0u64;
    while start.elapsed() < Duration::from_secs_f64(SECONDS) {
        for _ in 0..16 {
            f();
        }
        calls += 16;
    }
    (calls as f64 * bytes_per_call as f64) / start.elapsed().as_secs_f64()
}

fn ring_seal(key: &SymmetricKey) -> f64 {
    let aead = Aes256Gcm::new(key);
    let mut buffer = vec![0x42u8; BLOCK];
    let mut counter = 0u64;
    throughput(BLOCK, || {
        counter += 1;
        let mut nonce = [0; 12];
        nonce[4..].copy_from_slice(&counter.to_be_bytes());
        let tag = aead.seal_in_place(nonce, &[], &mut buffer).expect("seal");
        std::hint::black_box(tag);
    })
}

fn rustcrypto_seal() -> f64 {
    let cipher = aes_gcm::Aes256Gcm::new(&[0x11u8; 32].into());
    let mut buffer = vec![0x42u8; BLOCK];
    let mut counter = 0u64;
    throughput(BLOCK, || {
        counter += 1;
        let mut nonce = [0u8; 12];
        nonce[4..].copy_from_slice(&counter.to_be_bytes());
        let tag = cipher
            .encrypt_inout_detached(&nonce.into(), &[], buffer.as_mut_slice().into())
            .expect("seal");
        std::hint::black_box(tag);
    })
}

fn chunked_write(key: &SymmetricKey, message: &[u8]) -> f64 {
    throughput(message.len(), || {
        let mut writer = ChunkedWriter::new(std::io::sink(), key, b"bench").expect("writer");
        writer.write_all(message).expect("write");
        writer.finish().expect("finish");
    })
}

fn chunked_read(key: &SymmetricKey, message: &[u8]) -> f64 {
    let mut writer = ChunkedWriter::new(Vec::new(), key, b"bench").expect("writer");
    writer.write_all(message).expect("write");
    let sealed = writer.finish().expect("finish");
    let mut out = vec![0u8; 1 << 20];
    throughput(message.len(), || {
        let mut reader = ChunkedReader::new(&sealed[..], key, b"bench").expect("header");
        while reader.read(&mut out).expect("read") > 0 {}
    })
}

/// Microseconds per call of `f`, run for about one second.
fn micros_per_op(mut f: impl FnMut()) -> f64 {
    f();
    let start = Instant::now();
    let mut calls = 0u64;
    while start.elapsed() < Duration::from_secs(1) {
        f();
        calls += 1;
    }
    start.elapsed().as_secs_f64() * 1e6 / calls as f64
}

fn print_public_key_table() {
    let recipient = DecapsulationKey::from_seed(&[7; 32]);
    let public = recipient.encapsulation_key().clone();
    let (ciphertext, _) = public.encapsulate().expect("rng");
    let data_key = SymmetricKey::generate().expect("rng");
    let envelope = seal_data_key(&data_key, std::slice::from_ref(&public), b"bench").expect("seal");
    let rows: [(&str, f64); 5] = [
        (
            "X-Wing key pair from seed",
            micros_per_op(|| drop(std::hint::black_box(DecapsulationKey::from_seed(&[7; 32])))),
        ),
        (
            "X-Wing encapsulate",
            micros_per_op(|| drop(std::hint::black_box(public.encapsulate().expect("rng")))),
        ),
        (
            "X-Wing decapsulate",
            micros_per_op(|| drop(std::hint::black_box(recipient.decapsulate(&ciphertext)))),
        ),
        (
            "envelope: wrap a data key for 1 recipient",
            micros_per_op(|| {
                drop(std::hint::black_box(seal_data_key(
                    &data_key,
                    std::slice::from_ref(&public),
                    b"bench",
                )));
            }),
        ),
        (
            "envelope: unwrap it",
            micros_per_op(|| {
                drop(std::hint::black_box(open_data_key(
                    &envelope, &recipient, b"bench",
                )))
            }),
        ),
    ];
    println!("\n| per-file public-key work | µs/op |");
    println!("|---|---:|");
    for (name, micros) in rows {
        println!("| {name} | {micros:.1} |");
    }
}

/// OpenSSL's 16384-byte figure in bytes/s, pinned to the same core; `None` (with the reason
/// on stderr) when openssl is missing or its output cannot be parsed.
fn openssl_speed() -> Option<f64> {
    let args = [
        "-c",
        "0",
        "openssl",
        "speed",
        "-evp",
        "aes-256-gcm",
        "-bytes",
        "16384",
        "-seconds",
        "3",
    ];
    let output = Command::new("taskset").args(args).output();
    let output = match output {
        Ok(output) if output.status.success() => output,
        Ok(output) => {
            eprintln!(
                "openssl speed failed: {}",
                String::from_utf8_lossy(&output.stderr)
            );
            return None;
        }
        Err(error) => {
            eprintln!("cannot run openssl speed: {error}");
            return None;
        }
    };
    let stdout = String::from_utf8_lossy(&output.stdout);
    eprintln!("{}", stdout.trim_end());
    let parsed = parse_openssl(&stdout);
    if parsed.is_none() {
        eprintln!("could not find the 16384-byte column in openssl's output");
    }
    parsed
}

/// The result line is `AES-256-GCM  <1000s of bytes/s>k` under a `type 16384 bytes` header.
fn parse_openssl(stdout: &str) -> Option<f64> {
    let line = stdout
        .lines()
        .rev()
        .find(|line| line.to_ascii_lowercase().starts_with("aes-256-gcm"))?;
    let kilobytes = line.split_whitespace().last()?.strip_suffix('k')?;
    Some(kilobytes.parse::<f64>().ok()? * 1000.0)
}

fn main() {
    let pinned = pin_to_one_core();
    let key = SymmetricKey::generate().expect("rng");
    let small = vec![0x5Au8; SMALL_MESSAGE];
    let large = vec![0x5Au8; LARGE_MESSAGE];
    let openssl = openssl_speed();
    let rows = [
        ("AES-256-GCM seal, 16 KiB (ours: ring)", ring_seal(&key)),
        (
            "AES-256-GCM seal, 16 KiB (RustCrypto aes-gcm 0.11)",
            rustcrypto_seal(),
        ),
        ("C2SP chunked writer, 1 MiB message", chunked_write(&key, &small)),
        ("C2SP chunked reader, 1 MiB message", chunked_read(&key, &small)),
        ("C2SP chunked writer, 64 MiB message", chunked_write(&key, &large)),
        ("C2SP chunked reader, 64 MiB message", chunked_read(&key, &large)),
    ];
    println!(
        "\nOne core{}; openssl: `openssl speed -evp aes-256-gcm -bytes 16384 -seconds 3`\n",
        if pinned { " (CPU 0)" } else { " (not pinned)" }
    );
    println!("| case | GB/s | × OpenSSL |");
    println!("|---|---:|---:|");
    match openssl {
        Some(peer) => println!("| OpenSSL AES-256-GCM, 16 KiB | {:.2} | 1.00 |", peer / 1e9),
        None => println!("| OpenSSL AES-256-GCM, 16 KiB | n/a | |"),
    }
    for (name, bytes_per_second) in rows {
        let ratio = openssl.map_or_else(
            || "n/a".to_string(),
            |peer| format!("{:.2}", bytes_per_second / peer),
        );
        println!("| {name} | {:.2} | {ratio} |", bytes_per_second / 1e9);
    }
    print_public_key_table();
}
