//! A short, stable-toolchain run of every fuzz target (fuzz/fuzz_targets/): the same harness
//! bodies (fuzz/harness.rs), fed every seed file (fuzz/seeds/<target>/) and then a few
//! thousand mutations of them from a fixed-seed generator, so a failure reproduces. A failing
//! input is written to target/fuzz-smoke/<target>.bin; `cargo fuzz run <target> <that file>`
//! replays it under the fuzzer.

#[path = "../fuzz/harness.rs"]
mod harness;

use std::panic::{self, AssertUnwindSafe};
use std::path::{Path, PathBuf};

/// Mutated inputs per target.
const ROUNDS: usize = 3000;
/// The longest input generated (libFuzzer's default `-max_len` is 4096 too).
const MAX_LEN: usize = 4096;

/// xorshift64*: small, fast and deterministic.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// A number in `0..n` (0 when `n` is 0).
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

/// Bytes the framing and HTTP parsers treat specially.
const INTERESTING: &[u8] = &[
    0x00, 0x01, 0x7d, 0x7e, 0x7f, 0x80, 0x81, 0x82, 0x88, 0x89, 0x8a, 0xc1, 0xfe, 0xff, b'\r',
    b'\n', b':', b',', b';', b'=', b' ',
];

/// One to four mutations of `input`: bit flips, byte sets, inserts, deletes, duplicated runs,
/// and splices with another seed.
fn mutate(rng: &mut Rng, input: &[u8], seeds: &[Vec<u8>]) -> Vec<u8> {
    let mut data = input.to_vec();
    for _ in 0..1 + rng.below(4) {
        let len = data.len();
        match rng.below(8) {
            0 if len > 0 => {
                let at = rng.below(len);
                data[at] ^= 1 << rng.below(8);
            }
            1 if len > 0 => {
                let at = rng.below(len);
                data[at] = INTERESTING[rng.below(INTERESTING.len())];
            }
            2 if len > 0 => {
                let at = rng.below(len);
                data[at] = rng.next() as u8;
            }
            3 => {
                let at = rng.below(len + 1);
                let count = 1 + rng.below(8);
                for _ in 0..count {
                    data.insert(at, rng.next() as u8);
                }
            }
            4 if len > 0 => {
                let at = rng.below(len);
                let count = (1 + rng.below(16)).min(len - at);
                data.drain(at..at + count);
            }
            5 if len > 0 => {
                let at = rng.below(len);
                let count = (1 + rng.below(64)).min(len - at);
                let run = data[at..at + count].to_vec();
                let to = rng.below(len + 1);
                data.splice(to..to, run);
            }
            6 => {
                let other = &seeds[rng.below(seeds.len())];
                let keep = rng.below(len + 1);
                let from = rng.below(other.len() + 1);
                data.truncate(keep);
                data.extend_from_slice(&other[from..]);
            }
            _ if len > 0 => {
                // A run of bytes set to one value: lengths, keys, padding.
                let at = rng.below(len);
                let count = (1 + rng.below(8)).min(len - at);
                let value = INTERESTING[rng.below(INTERESTING.len())];
                data[at..at + count].fill(value);
            }
            _ => data.push(rng.next() as u8),
        }
    }
    data.truncate(MAX_LEN);
    data
}

fn seed_dir(target: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz/seeds")
        .join(target)
}

/// The seed files of `target`, sorted by name so the run is the same everywhere.
fn seeds(target: &str) -> Vec<(String, Vec<u8>)> {
    let dir = seed_dir(target);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.is_file())
        .collect();
    files.sort();
    let seeds: Vec<(String, Vec<u8>)> = files
        .into_iter()
        .map(|path| {
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            (name, std::fs::read(&path).unwrap())
        })
        .collect();
    assert!(!seeds.is_empty(), "no seeds in {}", dir.display());
    seeds
}

/// The reproducers in fuzz/artifacts-found/ named `<target>-…`.
fn findings(target: &str) -> Vec<(String, Vec<u8>)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/artifacts-found");
    let Ok(entries) = std::fs::read_dir(&dir) else {
        return Vec::new();
    };
    let prefix = format!("{target}-");
    let mut found: Vec<(String, Vec<u8>)> = entries
        .map(|entry| entry.unwrap().path())
        .filter_map(|path| {
            let name = path.file_name()?.to_str()?.to_string();
            let input = std::fs::read(&path).ok()?;
            name.starts_with(&prefix).then_some((name, input))
        })
        .collect();
    found.sort();
    found
}

/// Runs `harness` on `input`; on a panic, saves the input and fails with where it came from.
fn run_one(target: &str, harness: fn(&[u8]), input: &[u8], origin: &str) {
    if panic::catch_unwind(AssertUnwindSafe(|| harness(input))).is_ok() {
        return;
    }
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/fuzz-smoke");
    let file = dir.join(format!("{target}.bin"));
    let saved = std::fs::create_dir_all(&dir).and_then(|()| std::fs::write(&file, input));
    let shown: Vec<String> = input.iter().take(64).map(|b| format!("{b:02x}")).collect();
    panic!(
        "fuzz target {target} failed on {origin} ({} bytes: {}{}), saved to {} ({saved:?})",
        input.len(),
        shown.join(" "),
        if input.len() > 64 { " …" } else { "" },
        file.display(),
    );
}

fn smoke(target: &str) {
    let harness = harness::TARGETS
        .iter()
        .find(|(name, _)| *name == target)
        .map(|&(_, harness)| harness)
        .unwrap_or_else(|| panic!("no harness named {target}"));
    let named = seeds(target);
    for (name, seed) in &named {
        run_one(target, harness, seed, &format!("seed {name}"));
    }
    // The reproducers of known findings step around them, but must not fail otherwise
    // (with WSLOOP_FUZZ_STRICT=1 they fail until fixed).
    for (name, input) in findings(target) {
        run_one(target, harness, &input, &format!("finding {name}"));
    }
    let seeds: Vec<Vec<u8>> = named.into_iter().map(|(_, seed)| seed).collect();
    // One fixed seed per target, from its name.
    let start = target.bytes().fold(0x9E37_79B9_7F4A_7C15_u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01B3)
    });
    let mut rng = Rng(start | 1);
    for round in 0..ROUNDS {
        let base = &seeds[rng.below(seeds.len())];
        let input = mutate(&mut rng, base, &seeds);
        run_one(target, harness, &input, &format!("mutation {round}"));
    }
}

#[test]
fn every_target_has_seeds_and_a_smoke_test() {
    for (target, _) in harness::TARGETS {
        assert!(seed_dir(target).is_dir(), "fuzz/seeds/{target} is missing");
        let source = format!("fuzz/fuzz_targets/{target}.rs");
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(&source);
        assert!(path.is_file(), "{source} is missing");
    }
}

#[test]
fn handshake_request() {
    smoke("handshake_request");
}

#[test]
fn client_handshake() {
    smoke("client_handshake");
}

#[test]
fn endpoint_server() {
    smoke("endpoint_server");
}

#[test]
fn endpoint_client() {
    smoke("endpoint_client");
}

#[test]
fn close_frame() {
    smoke("close_frame");
}

#[test]
fn deflate() {
    smoke("deflate");
}
