use std::path::{Path, PathBuf};

use proptest::prelude::*;

use super::*;
use crate::readers::open;
use crate::shared_data::require;

/// A fresh scratch folder holding copies of record 100's files, the data
/// file cut to `dat_len` bytes.
fn scratch_copy_of_100(tag: &str, dat_len: usize, header: Option<&str>) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("sigfab-readers-{}-{tag}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("temp dir");
    let hea = require("wfdb/100.hea");
    let text = std::fs::read_to_string(&hea).expect("header");
    std::fs::write(dir.join("100.hea"), header.unwrap_or(&text)).expect("write header");
    let dat = std::fs::read(hea.with_extension("dat")).expect("data");
    std::fs::write(dir.join("100.dat"), &dat[..dat_len.min(dat.len())]).expect("write data");
    dir.join("100")
}

fn read_to_end(reader: &mut dyn RecordingReader) -> Result<usize, ReadError> {
    let mut out = vec![Vec::new(); reader.header().signals.len()];
    let mut total = 0;
    loop {
        match reader.read_blocks(4096, &mut out)? {
            0 => return Ok(total),
            n => total += n,
        }
        out.iter_mut().for_each(Vec::clear);
    }
}

#[test]
fn truncated_data_file_is_a_typed_error() {
    let record = scratch_copy_of_100("trunc", 3000, None);
    let err = open(&record).err().expect("short data file");
    assert!(
        matches!(
            err,
            ReadError::ShortSignalFile {
                expected: 650_000,
                actual: 1000,
                ..
            }
        ),
        "{err}"
    );
    assert!(err.to_string().contains("100.dat"), "{err}");
    let _ = std::fs::remove_dir_all(record.parent().unwrap_or(Path::new("")));
}

#[test]
fn missing_sample_count_reads_what_the_file_holds() {
    let header =
        "100 2 360\n100.dat 212 200 11 1024 995 -22131 0 MLII\n100.dat 212 200 11 1024 1011 20052 0 V5\n";
    let record = scratch_copy_of_100("nolen", 3003, Some(header));
    let mut reader = open_wfdb(&record, None).expect("opens");
    assert_eq!(reader.header().total_blocks, 1001);
    assert_eq!(read_to_end(reader.as_mut()).expect("reads"), 1001);
    let _ = std::fs::remove_dir_all(record.parent().unwrap_or(Path::new("")));
}

#[test]
fn missing_files_and_unknown_formats_are_errors() {
    let record = scratch_copy_of_100(
        "unknown",
        3000,
        Some("100 1 360 10\n100.dat 8 200 11 1024 0 0 0 X\n"),
    );
    assert!(matches!(open(&record).err(), Some(ReadError::Unsupported { .. })));
    assert!(matches!(
        open_wfdb(&record, Some("qrs")).err(),
        Some(ReadError::Io { .. })
    ));
    let nothing = record.with_file_name("nothing");
    assert!(matches!(
        open(&nothing).err(),
        Some(ReadError::UnknownFormat { .. })
    ));
    std::fs::write(&nothing, b"not a recording").expect("write");
    assert!(matches!(
        open(&nothing).err(),
        Some(ReadError::UnknownFormat { .. })
    ));
    let _ = std::fs::remove_dir_all(record.parent().unwrap_or(Path::new("")));
}

#[test]
fn header_and_patient_comments() {
    let reader = open(&require("wfdb/100.hea")).expect("opens");
    let h = reader.header();
    assert_eq!(h.format, crate::readers::RecordingFormat::Wfdb);
    assert_eq!(
        (h.total_blocks, h.samples_per_block.clone()),
        (650_000, vec![1, 1])
    );
    assert!(h.patient.contains("Aldomet"));
    assert_eq!(h.start_ns, None, "100.hea has no base time or date");
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, failure_persistence: None, ..ProptestConfig::default() })]

    /// Random truncations and byte flips of a real header never panic.
    #[test]
    fn corrupted_real_header_never_panics(
        cut in 0usize..205,
        flips in proptest::collection::vec((0usize..204, any::<u8>()), 0..6),
    ) {
        let mut bytes = std::fs::read(require("wfdb/03700181.hea")).expect("header");
        let len = bytes.len();
        for (at, value) in flips {
            bytes[at % len] = value;
        }
        bytes.truncate(cut);
        let _ = header::parse(Path::new("x.hea"), &String::from_utf8_lossy(&bytes));
    }

    /// Random truncations and byte flips of a real annotation file never panic.
    #[test]
    fn corrupted_real_annotations_never_panic(
        cut in 0usize..4558,
        flips in proptest::collection::vec((0usize..4558, any::<u8>()), 0..16),
    ) {
        let mut bytes = std::fs::read(require("wfdb/100.atr")).expect("annotations");
        let len = bytes.len();
        for (at, value) in flips {
            bytes[at % len] = value;
        }
        bytes.truncate(cut);
        let _ = annot::parse(Path::new("x.atr"), &bytes, 360.0);
    }
}

/// A scratch folder with a copy of the MIMIC record's data file.
fn mimic_scratch() -> PathBuf {
    let dir = std::env::temp_dir().join(format!("sigfab-readers-{}-mimic", std::process::id()));
    if !dir.join("03700181.dat").is_file() {
        std::fs::create_dir_all(&dir).expect("temp dir");
        std::fs::copy(require("wfdb/03700181.dat"), dir.join("03700181.dat")).expect("copy");
    }
    dir
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, failure_persistence: None, ..ProptestConfig::default() })]

    /// Corrupted headers over real data: open and a few reads never panic
    /// nor allocate without bound.
    #[test]
    fn corrupted_header_over_real_data_never_panics(
        cut in 60usize..205,
        flips in proptest::collection::vec((0usize..204, any::<u8>()), 1..6),
    ) {
        let mut bytes = std::fs::read(require("wfdb/03700181.hea")).expect("header");
        let len = bytes.len();
        for (at, value) in flips {
            bytes[at % len] = value;
        }
        bytes.truncate(cut);
        let dir = mimic_scratch();
        std::fs::write(dir.join("03700181.hea"), &bytes).expect("write header");
        if let Ok(mut reader) = open_wfdb(&dir.join("03700181"), None) {
            let mut out = vec![Vec::new(); reader.header().signals.len()];
            for _ in 0..3 {
                if !matches!(reader.read_blocks(4096, &mut out), Ok(n) if n > 0) {
                    break;
                }
            }
        }
    }
}
