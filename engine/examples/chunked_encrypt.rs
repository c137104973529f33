//! Encrypts a file with C2SP chunked encryption (AES-256-GCM) under a given input key, for
//! interoperability checks against an independent decryptor (`tests/crypto/python_interop.sh`).
//!
//!     cargo run --example chunked_encrypt -- KEY_HEX CONTEXT_HEX INPUT OUTPUT
//!
//! The key on the command line is for tests only: real keys come from an envelope.

use std::io::Write;

use anyhow::{bail, Context};
use sigfab_engine::crypto::chunked::ChunkedWriter;
use sigfab_engine::crypto::SymmetricKey;

fn from_hex(text: &str) -> anyhow::Result<Vec<u8>> {
    if !text.len().is_multiple_of(2) {
        bail!("odd number of hex digits");
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&text[i..i + 2], 16).context("not hex"))
        .collect()
}

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [key_hex, context_hex, input, output] = args.as_slice() else {
        bail!("usage: chunked_encrypt KEY_HEX CONTEXT_HEX INPUT OUTPUT");
    };
    let key = SymmetricKey::from_slice(&zeroize::Zeroizing::new(from_hex(key_hex)?))?;
    let context = from_hex(context_hex)?;
    let plaintext = std::fs::read(input).with_context(|| format!("reading {input}"))?;
    let file = std::fs::File::create(output).with_context(|| format!("creating {output}"))?;
    let mut writer = ChunkedWriter::new(std::io::BufWriter::new(file), &key, &context)?;
    writer.write_all(&plaintext)?;
    writer.finish()?;
    Ok(())
}
