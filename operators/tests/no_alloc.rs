//! Steady-state processing allocates nothing: a counting global allocator
//! (counting only on the test's own thread, while armed) watches frames go
//! through butterworth, notch, an iir cascade, fir (direct and
//! overlap-save), resample (down-sampling) and montage after a warm-up.
//!
//! What is reused: each operator keeps its scratch (offsets, history lines,
//! FFT buffers) and, for the shape-changing ones (resample, montage), swaps
//! the input frame's buffers in as the spare for the next output
//! ([`Frame::reshape`]); the caller reuses one [`Output`]. The frames
//! themselves are made before measuring, as a source would hand them over.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::sync::Arc;

use sigfab_operators::filters::design::Band;
use sigfab_operators::filters::fir::{FirDesign, FirLength, FirWindow};
use sigfab_operators::filters::sos::Kernel;
use sigfab_operators::filters::{
    ChannelSelection, FirFilter, FirMethod, IirDesign, IirFilter, Resample, ResampleFactors,
};
use sigfab_operators::montage::{Montage, MontageConfig, MontageKind};
use sigfab_operators::{ChannelLayout, ChannelSpec, Frame, Item, Modality, Operator, Output};

struct Counting;

thread_local! {
    static ARMED: Cell<bool> = const { Cell::new(false) };
    static COUNT: Cell<u64> = const { Cell::new(0) };
}

fn note() {
    // try_with: the thread-locals may be gone while a thread exits.
    let _ = ARMED.try_with(|armed| {
        if armed.get() {
            let _ = COUNT.try_with(|c| c.set(c.get() + 1));
        }
    });
}

// SAFETY: forwards every call to the system allocator unchanged; the
// bookkeeping touches only const-initialised thread-locals, which never
// allocate.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        note();
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        note();
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        note();
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// Allocations made by `f` on this thread.
fn allocations(f: impl FnOnce()) -> u64 {
    COUNT.with(|c| c.set(0));
    ARMED.with(|a| a.set(true));
    f();
    ARMED.with(|a| a.set(false));
    COUNT.with(|c| c.get())
}

const NAMES: [&str; 19] = [
    "Fp1", "Fp2", "F3", "F4", "C3", "C4", "P3", "P4", "O1", "O2", "F7", "F8", "T3", "T4", "T5", "T6", "Fz",
    "Cz", "Pz",
];

/// 40 ms frames of 19 EEG channels at 250 Hz.
fn frames(count: usize) -> Vec<Frame> {
    let layout = Arc::new(ChannelLayout::new(
        NAMES
            .iter()
            .map(|n| ChannelSpec {
                name: n.to_string(),
                unit: "uV".into(),
                sample_rate: 250.0,
            })
            .collect(),
    ));
    (0..count)
        .map(|k| {
            let samples = (0..NAMES.len() * 10)
                .map(|i| ((k * 190 + i) as f32 * 0.37).sin() * 50.0)
                .collect();
            Frame::new(
                "bed".into(),
                Modality::Eeg,
                layout.clone(),
                k as i64 * 40_000_000,
                k as u64,
                vec![10; NAMES.len()],
                samples,
            )
            .expect("frame")
        })
        .collect()
}

fn chain() -> Vec<(&'static str, Box<dyn Operator>)> {
    let fir = |taps, method| {
        FirFilter::new(
            FirDesign {
                band: Band::Bandpass(1.0, 40.0),
                length: FirLength::Taps(taps, FirWindow::Hamming),
                minimum_phase: false,
            },
            ChannelSelection::All,
            method,
        )
    };
    vec![
        (
            "butterworth",
            Box::new(IirFilter::new(
                IirDesign::Butterworth {
                    order: 4,
                    band: Band::Bandpass(0.5, 45.0),
                },
                ChannelSelection::All,
                true,
            )),
        ),
        (
            "notch",
            Box::new(IirFilter::new(
                IirDesign::Notch {
                    frequency: 50.0,
                    q: 30.0,
                    harmonics: 1,
                },
                ChannelSelection::All,
                false,
            )),
        ),
        (
            "iir (odd-order low-pass + notch, one cascade, unordered channels)",
            Box::new(IirFilter::cascade(
                vec![
                    IirDesign::Butterworth {
                        order: 3,
                        band: Band::Lowpass(40.0),
                    },
                    IirDesign::Notch {
                        frequency: 50.0,
                        q: 30.0,
                        harmonics: 0,
                    },
                ],
                ChannelSelection::Named(vec!["Fz".into(), "Cz".into(), "Fp1".into()]),
                true,
                Kernel::detect(),
            )),
        ),
        ("fir direct", Box::new(fir(63, FirMethod::Direct))),
        ("fir overlap-save", Box::new(fir(301, FirMethod::Fft))),
        (
            "montage",
            Box::new(Montage::new(MontageConfig {
                kind: MontageKind::DoubleBanana,
                gain: vec![("Fz-Cz".into(), 2.0)],
                offset: vec![],
                dc_time_constant_s: Some(5.0),
            })),
        ),
        ("resample", Box::new(Resample::new(ResampleFactors::ToHz(128.0)))),
    ]
}

#[test]
fn operators_do_not_allocate_in_steady_state() {
    let mut chain = chain();
    let operators = chain.len();
    let mut out = Output::default();
    let mut all = frames(600);
    let steady = all.split_off(100);
    let mut run = |frames: Vec<Frame>, counts: &mut Vec<(&'static str, u64)>| {
        for frame in frames {
            let mut items = vec![Item::Frame(frame)];
            items.reserve(4);
            for (name, operator) in chain.iter_mut() {
                let mut next = Vec::new();
                let mut made = 0;
                for item in items.drain(..) {
                    made += allocations(|| {
                        operator.process(item, &mut out).expect("accepted");
                    });
                    next.extend(out.drain());
                }
                if let Some(entry) = counts.iter_mut().find(|(n, _)| n == name) {
                    entry.1 += made;
                } else {
                    counts.push((name, made));
                }
                items = next;
            }
        }
    };
    let mut warm_up = Vec::new();
    run(all, &mut warm_up);
    let mut counts = Vec::new();
    run(steady, &mut counts);
    eprintln!("allocations during warm-up: {warm_up:?}; in steady state: {counts:?}");
    assert_eq!(counts.len(), operators, "every operator was measured");
    assert!(
        counts.iter().all(|&(_, n)| n == 0),
        "steady state allocates: {counts:?}"
    );
    // The counter does count: a fresh operator's first frame allocates.
    assert!(warm_up.iter().all(|&(_, n)| n > 0), "{warm_up:?}");
}
