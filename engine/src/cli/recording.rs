//! `sigfab inspect` and `sigfab dump`.

use std::fmt::Write as _;
use std::io::Write;
use std::path::Path;
use std::process::ExitCode;

use anyhow::Context;

use crate::readers::{self, RecordingReader};
use crate::sources::framing::ceil_index;

const HIDDEN: &str = "<hidden: may identify the patient; use --show-phi>";

pub fn inspect(path: &Path, show_phi: bool) -> anyhow::Result<ExitCode> {
    let mut reader = readers::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    let header = reader.header().clone();
    let mut text = String::new();
    let duration = header.block_duration_s * header.total_blocks as f64;
    let _ = writeln!(text, "recording: {}", path.display());
    let _ = writeln!(text, "format:    {:?}", header.format);
    let _ = writeln!(
        text,
        "start:     {}",
        header.start_ns.map_or_else(|| "unknown".to_string(), format_utc)
    );
    let _ = writeln!(
        text,
        "duration:  {duration:.3} s ({} blocks of {} s)",
        header.total_blocks, header.block_duration_s
    );
    let phi = |value: &str| {
        if show_phi {
            value.to_string()
        } else {
            HIDDEN.to_string()
        }
    };
    let _ = writeln!(text, "patient:   {}", phi(&header.patient));
    let _ = writeln!(text, "recording: {}", phi(&header.recording));
    let _ = writeln!(text, "channels:  {}", header.signals.len());
    let _ = writeln!(
        text,
        "  {:<4} {:<20} {:<8} {:>12} {:>14} {:>24}",
        "#", "name", "unit", "rate (Hz)", "resolution", "physical range"
    );
    for (i, s) in header.signals.iter().enumerate() {
        let range = match (s.physical_min, s.physical_max) {
            (Some(lo), Some(hi)) => format!("{lo} .. {hi}"),
            _ => "-".to_string(),
        };
        let _ = writeln!(
            text,
            "  {:<4} {:<20} {:<8} {:>12} {:>14.6e} {:>24}",
            i, s.name, s.unit, s.sample_rate, s.resolution, range
        );
    }
    let annotations =
        read_all_annotations(reader.as_mut()).with_context(|| format!("cannot read {}", path.display()))?;
    let _ = writeln!(text, "annotations: {}", annotations.len());
    if show_phi {
        for a in annotations.iter().take(50) {
            let code = a.code.as_deref().unwrap_or("");
            let _ = writeln!(
                text,
                "  {:>12.3} s  {code:<3} {}",
                a.onset_ns as f64 / 1e9,
                a.text
            );
        }
    } else if !annotations.is_empty() {
        let _ = writeln!(
            text,
            "  (texts hidden: free text may identify the patient; use --show-phi)"
        );
    }
    print!("{text}");
    Ok(ExitCode::SUCCESS)
}

/// Reads the whole recording: EDF+ keeps its annotations inside the data
/// records. Also proves every block is readable.
fn read_all_annotations(reader: &mut dyn RecordingReader) -> anyhow::Result<Vec<readers::Annotation>> {
    let mut annotations = reader.take_annotations();
    let mut scratch = vec![Vec::new(); reader.header().signals.len()];
    loop {
        scratch.iter_mut().for_each(Vec::clear);
        if reader.read_blocks(64, &mut scratch)? == 0 {
            break;
        }
        annotations.extend(reader.take_annotations());
    }
    annotations.extend(reader.take_annotations());
    Ok(annotations)
}

pub fn dump(
    path: &Path,
    channels: &[String],
    start: &str,
    duration: Option<&str>,
) -> anyhow::Result<ExitCode> {
    let start_s = super::parse_seconds(start).context("--start")?;
    let duration_s = duration
        .map(super::parse_seconds)
        .transpose()
        .context("--duration")?;
    let mut reader = readers::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    let selected = select_channels(reader.as_ref(), channels)?;
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    write_csv(reader.as_mut(), &selected, start_s, duration_s, &mut out)?;
    out.flush()?;
    Ok(ExitCode::SUCCESS)
}

fn select_channels(reader: &dyn RecordingReader, names: &[String]) -> anyhow::Result<Vec<usize>> {
    let signals = &reader.header().signals;
    if names.is_empty() {
        return Ok((0..signals.len()).collect());
    }
    names
        .iter()
        .map(|name| {
            signals.iter().position(|s| &s.name == name).with_context(|| {
                let known: Vec<&str> = signals.iter().map(|s| s.name.as_str()).collect();
                format!("no channel named '{name}'; channels: {}", known.join(", "))
            })
        })
        .collect()
}

/// Writes rows at the highest selected rate: the first column is the time in
/// seconds from the start of the recording; a lower-rate channel has a value
/// on the rows where one of its samples falls and an empty cell elsewhere.
/// Missing samples print as NaN.
pub fn write_csv(
    reader: &mut dyn RecordingReader,
    selected: &[usize],
    start_s: f64,
    duration_s: Option<f64>,
    out: &mut dyn Write,
) -> anyhow::Result<()> {
    let header = reader.header().clone();
    let rates: Vec<f64> = selected.iter().map(|&i| header.signals[i].sample_rate).collect();
    let top_rate = rates.iter().copied().fold(0.0, f64::max);
    let names: Vec<&str> = selected
        .iter()
        .map(|&i| header.signals[i].name.as_str())
        .collect();
    writeln!(out, "time_s,{}", names.join(","))?;
    let first_row = ceil_index(start_s * top_rate);
    let end_row = duration_s.map(|d| ceil_index((start_s + d) * top_rate));
    // Per selected channel: samples read so far and how many were dropped
    // from the front of the buffer.
    let mut buffers = vec![Vec::new(); header.signals.len()];
    let mut dropped = vec![0u64; header.signals.len()];
    let mut row = first_row;
    let mut line = String::new();
    let mut exhausted = false;
    while end_row.is_none_or(|end| row < end) {
        let due: Vec<Option<u64>> = rates.iter().map(|&r| sample_on_row(row, top_rate, r)).collect();
        let ready = |buffers: &Vec<Vec<f32>>, dropped: &Vec<u64>| {
            selected
                .iter()
                .zip(&due)
                .all(|(&c, d)| d.is_none_or(|i| i < dropped[c] + buffers[c].len() as u64))
        };
        while !exhausted && !ready(&buffers, &dropped) {
            exhausted = reader.read_blocks(16, &mut buffers)? == 0;
        }
        if !ready(&buffers, &dropped) {
            break;
        }
        line.clear();
        let _ = write!(line, "{}", row as f64 / top_rate);
        for (&c, d) in selected.iter().zip(&due) {
            line.push(',');
            if let Some(i) = d {
                let value = buffers[c][(i - dropped[c]) as usize];
                let _ = write!(line, "{value}");
            }
        }
        writeln!(out, "{line}")?;
        row += 1;
        trim_consumed(&mut buffers, &mut dropped, 1 << 16);
    }
    Ok(())
}

/// Index of the channel sample (rate `rate`) that falls on `row` of a table
/// at `top_rate`, if any.
fn sample_on_row(row: u64, top_rate: f64, rate: f64) -> Option<u64> {
    let position = row as f64 * rate / top_rate;
    let index = position.round();
    ((position - index).abs() < 1e-6).then_some(index as u64)
}

/// Drops samples the table has passed, once a buffer is large, so memory
/// stays bounded on long recordings.
fn trim_consumed(buffers: &mut [Vec<f32>], dropped: &mut [u64], limit: usize) {
    for (buffer, dropped) in buffers.iter_mut().zip(dropped.iter_mut()) {
        if buffer.len() > limit {
            let keep_from = buffer.len() - limit / 2;
            buffer.drain(..keep_from);
            *dropped += keep_from as u64;
        }
    }
}

/// `YYYY-MM-DDTHH:MM:SS.mmmZ` for ns since the Unix epoch.
pub fn format_utc(ns: i64) -> String {
    let seconds = ns.div_euclid(1_000_000_000);
    let millis = ns.rem_euclid(1_000_000_000) / 1_000_000;
    let days = seconds.div_euclid(86_400);
    let of_day = seconds.rem_euclid(86_400);
    let (year, month, day) = civil_from_days(days);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{millis:03}Z",
        of_day / 3600,
        of_day % 3600 / 60,
        of_day % 60
    )
}

/// Proleptic Gregorian date of a day count since 1970-01-01 (H. Hinnant's
/// algorithm).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_utc_times() {
        assert_eq!(format_utc(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(format_utc(951_782_400_000_000_000), "2000-02-29T00:00:00.000Z");
        assert_eq!(format_utc(1_250_000_000_123_000_000), "2009-08-11T14:13:20.123Z");
    }

    #[test]
    fn lower_rate_samples_fall_on_every_nth_row() {
        assert_eq!(sample_on_row(0, 500.0, 125.0), Some(0));
        assert_eq!(sample_on_row(1, 500.0, 125.0), None);
        assert_eq!(sample_on_row(4, 500.0, 125.0), Some(1));
        assert_eq!(sample_on_row(7, 500.0, 500.0), Some(7));
    }
}
