//! Deterministic random numbers: parameters and dropout masks depend on a seed and a key only,
//! never on the number of threads.

use rand_core::{RngCore, SeedableRng};
use rand_distr::{Distribution, StandardNormal};
use rayon::prelude::*;

use crate::element::Element;

/// A generator seeded from `key` (mixed by SplitMix64).
pub(crate) fn generator(key: &[u64]) -> rand_xoshiro::Xoshiro256PlusPlus {
    let mut seed = [0u8; 32];
    let mut state = 0x6a09_e667_f3bc_c908u64;
    for (i, k) in key.iter().enumerate() {
        state = splitmix(state ^ k.wrapping_mul(0x9e37_79b9_7f4a_7c15).wrapping_add(i as u64));
    }
    for w in seed.chunks_mut(8) {
        state = splitmix(state);
        w.copy_from_slice(&state.to_le_bytes());
    }
    rand_xoshiro::Xoshiro256PlusPlus::from_seed(seed)
}

/// `count` independent N(0, scale²) draws as `T`, deterministic for `key` whatever the number of
/// threads: the buffer is cut into fixed chunks, each with its own generator seeded from `key`
/// and the chunk index.
///
/// A long draw stops early (the rest left 0) once the control of the caller's
/// [`crate::Control::scope`] is cancelled; the caller then checks it.
pub(crate) fn normals<T: Element>(count: usize, key: [u64; 4], scale: f64) -> Vec<T> {
    const CH: usize = 1 << 15;
    let mut out = vec![T::ZERO; count];
    let cancel = crate::control::Cancel::current();
    let fill = |(c, chunk): (usize, &mut [T])| {
        if cancel.is_cancelled() {
            return;
        }
        let mut rng = generator(&[key[0], key[1], key[2], key[3], c as u64]);
        for v in chunk.iter_mut() {
            let z: f64 = StandardNormal.sample(&mut rng);
            *v = T::from_f64(z * scale);
        }
    };
    if count <= CH {
        // one chunk: no thread hand-off for small layers
        out.chunks_mut(CH).enumerate().for_each(fill);
    } else {
        out.par_chunks_mut(CH).enumerate().for_each(fill);
    }
    out
}

/// A uniform number in [0, 1) (53 random bits).
pub(crate) fn uniform(rng: &mut impl RngCore) -> f64 {
    (rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64
}

/// SplitMix64's output function: a bijective 64-bit mixer.
pub(crate) fn splitmix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}
