//! Finite-width convolutional networks: the gathers behind `Conv`, local and global pooling on
//! batches, and their transposes, for [`crate::empirical`].
//!
//! A spatial value of a batch is stored per sample as neural-tangents' NHWC example flattened in
//! C order: position-major, channels fastest (`[p][c]`), so that a `Dense` on every position is
//! one product over `C × (P·n)` columns. A convolution gathers each output position's receptive
//! field ("im2col": `taps·C_in` entries, tap-major as the rows of a filter in HWIO layout, zeros
//! in the padding, wrapped under `CIRCULAR`) and multiplies by the filter seen as a
//! `(taps·C_in) × C_out` matrix; its transpose scatters back.

use crate::element::Element;
use crate::layer::conv::Axis;

/// For every output position and filter tap (tap fastest), the input position it reads (`None`
/// in the padding), positions flattened in C order.
pub(crate) fn gather_table(axes: &[Axis]) -> Vec<Option<usize>> {
    let out: Vec<usize> = axes.iter().map(|a| a.l_out).collect();
    let win: Vec<usize> = axes.iter().map(|a| a.f).collect();
    let n_out: usize = out.iter().product();
    let taps: usize = win.iter().product();
    let mut table = Vec::with_capacity(n_out * taps);
    let mut o = vec![0usize; axes.len()];
    for _ in 0..n_out {
        let mut t = vec![0usize; axes.len()];
        for _ in 0..taps {
            let mut at = Some(0usize);
            for (k, a) in axes.iter().enumerate() {
                at = match (at, a.at(o[k], t[k])) {
                    (Some(acc), Some(i)) => Some(acc * a.l_in + i),
                    _ => None,
                };
            }
            table.push(at);
            increment(&mut t, &win);
        }
        increment(&mut o, &out);
    }
    table
}

/// The C-order successor of multi-index `i` in a box of sizes `dims` (wrapping to 0).
fn increment(i: &mut [usize], dims: &[usize]) {
    for k in (0..i.len()).rev() {
        i[k] += 1;
        if i[k] < dims[k] {
            return;
        }
        i[k] = 0;
    }
}

/// The weight of each output position of a local pool: the product of its axes' weights.
pub(crate) fn pool_weights(axes: &[Axis], weights: &[Vec<f64>]) -> Vec<f64> {
    let out: Vec<usize> = axes.iter().map(|a| a.l_out).collect();
    let n_out: usize = out.iter().product();
    let mut o = vec![0usize; axes.len()];
    let mut w = Vec::with_capacity(n_out);
    for _ in 0..n_out {
        w.push(o.iter().zip(weights).map(|(&i, wk)| wk[i]).product());
        increment(&mut o, &out);
    }
    w
}

/// Receptive fields of `cols` columns (each `p_in` positions × `c` channels): column-major
/// `(taps·c) × (p_out·cols)`.
pub(crate) fn im2col<T: Element>(h: &[T], table: &[Option<usize>], taps: usize, c: usize, p_in: usize) -> Vec<T> {
    let p_out = table.len() / taps;
    let cols = h.len() / (p_in * c);
    let mut out = vec![T::ZERO; taps * c * p_out * cols];
    for (col, src) in h.chunks_exact(p_in * c).enumerate() {
        let dst = &mut out[col * p_out * taps * c..(col + 1) * p_out * taps * c];
        for (e, at) in table.iter().enumerate() {
            if let Some(i) = at {
                dst[e * c..(e + 1) * c].copy_from_slice(&src[i * c..(i + 1) * c]);
            }
        }
    }
    out
}

/// The transpose of [`im2col`]: receptive-field signals `(taps·c) × (p_out·cols)` added back
/// into `cols` columns of `p_in × c`.
pub(crate) fn col2im<T: Element>(g: &[T], table: &[Option<usize>], taps: usize, c: usize, p_in: usize) -> Vec<T> {
    let p_out = table.len() / taps;
    let cols = g.len() / (p_out * taps * c);
    let mut out = vec![T::ZERO; p_in * c * cols];
    for (col, src) in g.chunks_exact(p_out * taps * c).enumerate() {
        let dst = &mut out[col * p_in * c..(col + 1) * p_in * c];
        for (e, at) in table.iter().enumerate() {
            if let Some(i) = at {
                for (d, &s) in dst[i * c..(i + 1) * c].iter_mut().zip(&src[e * c..(e + 1) * c]) {
                    *d += s;
                }
            }
        }
    }
    out
}

/// A local pool of `cols` columns: output position `o` is `w[o]·Σ_tap h[table(o, tap)]`.
pub(crate) fn pool<T: Element>(h: &[T], table: &[Option<usize>], w: &[f64], c: usize, p_in: usize) -> Vec<T> {
    let p_out = w.len();
    let taps = table.len() / p_out;
    let cols = h.len() / (p_in * c);
    let mut out = vec![T::ZERO; p_out * c * cols];
    for (col, src) in h.chunks_exact(p_in * c).enumerate() {
        let dst = &mut out[col * p_out * c..(col + 1) * p_out * c];
        for o in 0..p_out {
            let d = &mut dst[o * c..(o + 1) * c];
            for at in table[o * taps..(o + 1) * taps].iter().flatten() {
                for (x, &s) in d.iter_mut().zip(&src[at * c..(at + 1) * c]) {
                    *x += s;
                }
            }
            let wo = T::from_f64(w[o]);
            d.iter_mut().for_each(|x| *x *= wo);
        }
    }
    out
}

/// The transpose of [`pool`].
pub(crate) fn pool_back<T: Element>(g: &[T], table: &[Option<usize>], w: &[f64], c: usize, p_in: usize) -> Vec<T> {
    let p_out = w.len();
    let taps = table.len() / p_out;
    let cols = g.len() / (p_out * c);
    let mut out = vec![T::ZERO; p_in * c * cols];
    for (col, src) in g.chunks_exact(p_out * c).enumerate() {
        let dst = &mut out[col * p_in * c..(col + 1) * p_in * c];
        for o in 0..p_out {
            let wo = T::from_f64(w[o]);
            for at in table[o * taps..(o + 1) * taps].iter().flatten() {
                for (x, &s) in dst[at * c..(at + 1) * c].iter_mut().zip(&src[o * c..(o + 1) * c]) {
                    *x += wo * s;
                }
            }
        }
    }
    out
}

/// A global pool of `cols` columns of `p × c`: `scale·Σ_p`.
pub(crate) fn global_pool<T: Element>(h: &[T], c: usize, p: usize, scale: f64) -> Vec<T> {
    let s = T::from_f64(scale);
    h.chunks_exact(p * c)
        .flat_map(|col| {
            let mut acc = vec![T::ZERO; c];
            for pos in col.chunks_exact(c) {
                for (a, &v) in acc.iter_mut().zip(pos) {
                    *a += v;
                }
            }
            acc.into_iter().map(move |a| a * s)
        })
        .collect()
}

/// The transpose of [`global_pool`]: each column of `c` copied to every one of `p` positions.
pub(crate) fn global_pool_back<T: Element>(g: &[T], c: usize, p: usize, scale: f64) -> Vec<T> {
    let s = T::from_f64(scale);
    let mut out = Vec::with_capacity(g.len() * p);
    for col in g.chunks_exact(c) {
        for _ in 0..p {
            out.extend(col.iter().map(|&v| v * s));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layer::conv::{axes, Padding};

    #[test]
    fn col2im_is_the_transpose_of_im2col() {
        // <im2col(h), g> = <h, col2im(g)> for random h, g
        let ax = axes(&[5, 4], &[3, 2], &[2, 1], Padding::Same).unwrap();
        let table = gather_table(&ax);
        let (c, p_in, taps) = (3, 20, 6);
        let h: Vec<f64> = (0..p_in * c * 2).map(|i| ((i * 37 % 11) as f64 - 5.0) / 3.0).collect();
        let cols = im2col(&h, &table, taps, c, p_in);
        let g: Vec<f64> = (0..cols.len()).map(|i| ((i * 13 % 7) as f64 - 3.0) / 2.0).collect();
        let back = col2im(&g, &table, taps, c, p_in);
        let lhs: f64 = cols.iter().zip(&g).map(|(a, b)| a * b).sum();
        let rhs: f64 = h.iter().zip(&back).map(|(a, b)| a * b).sum();
        assert!((lhs - rhs).abs() < 1e-12 * lhs.abs().max(1.0));
        let w = pool_weights(&ax, &ax.iter().map(|a| vec![0.5; a.l_out]).collect::<Vec<_>>());
        let pooled = pool(&h, &table, &w, c, p_in);
        let g2: Vec<f64> = (0..pooled.len()).map(|i| (i % 5) as f64 - 2.0).collect();
        let lhs: f64 = pooled.iter().zip(&g2).map(|(a, b)| a * b).sum();
        let rhs: f64 = h
            .iter()
            .zip(&pool_back(&g2, &table, &w, c, p_in))
            .map(|(a, b)| a * b)
            .sum();
        assert!((lhs - rhs).abs() < 1e-12 * lhs.abs().max(1.0));
    }
}
