//! The one list of activation names, parameters and defaults: the Python package builds its
//! activation classes from it, and the command line, the dashboards, the C ABI and the type
//! stub read it, so a new activation is added here once.

use super::numerical::Pointwise;
use super::Activation;
use crate::error::{Error, Result};

/// One parameter of an activation.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Param {
    /// Its name (a keyword argument of the Python class).
    pub name: &'static str,
    /// Its default, `None` when it must be given.
    pub default: Option<f64>,
    /// Whether it is a non-negative integer (a degree).
    pub integer: bool,
    /// A typical range `(low, high)`, for controls such as sliders.
    pub range: (f64, f64),
    /// A typical value (the default when there is one), where controls start.
    pub typical: f64,
}

/// One activation kind.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Kind {
    /// neural-tangents' class name (`"LeakyRelu"`).
    pub class: &'static str,
    /// The lower-case key of the command line and the dashboards (`"leaky_relu"`).
    pub key: &'static str,
    /// Other accepted keys (`"swish"` for `"silu"`).
    pub aliases: &'static [&'static str],
    /// Its parameters, in positional order. `Polynomial` takes a list of coefficients instead.
    pub params: &'static [Param],
    /// Whether its kernel is integrated numerically (`quad_degree` applies).
    pub numerical: bool,
    /// The parameter dashboards expose, if any.
    pub tunable: Option<usize>,
    /// What it computes, in one sentence.
    pub doc: &'static str,
}

const fn p(name: &'static str, default: Option<f64>, range: (f64, f64), typical: f64) -> Param {
    Param {
        name,
        default,
        integer: false,
        range,
        typical,
    }
}

const fn degree(range: (f64, f64)) -> Param {
    Param {
        name: "degree",
        default: None,
        integer: true,
        range,
        typical: 2.0,
    }
}

const fn kind(class: &'static str, key: &'static str, params: &'static [Param], doc: &'static str) -> Kind {
    Kind {
        class,
        key,
        aliases: &[],
        params,
        numerical: false,
        tunable: None,
        doc,
    }
}

const NUM: &str = " Integrated numerically by a polar Gauss–Legendre rule of degree `quad_degree` (default 48).";

/// Every activation of ntkrs.
pub const KINDS: &[Kind] = &[
    Kind {
        aliases: &["linear"],
        ..kind("Identity", "identity", &[], "`φ(x) = x`.")
    },
    kind("Relu", "relu", &[], "`φ(x) = max(x, 0)` (no factor 2; He scaling is `W_std=√2`)."),
    Kind {
        tunable: Some(0),
        ..kind(
            "LeakyRelu",
            "leaky_relu",
            &[p("alpha", None, (-1.0, 1.0), 0.1)],
            "`φ(x) = x` for `x > 0`, `alpha·x` otherwise.",
        )
    },
    Kind {
        tunable: Some(0),
        ..kind(
        "ABRelu",
        "ab_relu",
        &[p("a", None, (-1.0, 1.0), -0.5), p("b", None, (-1.0, 2.0), 1.0)],
        "`φ(x) = a·min(x, 0) + b·max(x, 0)`.",
    )
    },
    kind("Abs", "abs", &[], "`φ(x) = |x|`."),
    Kind {
        tunable: Some(1),
        ..kind(
            "Erf",
            "erf",
            &[p("a", Some(1.0), (0.1, 4.0), 1.0), p("b", Some(1.0), (0.1, 4.0), 1.0), p("c", Some(0.0), (-1.0, 1.0), 0.0)],
            "`φ(x) = a·erf(b·x) + c`.",
        )
    },
    kind(
        "Sigmoid_like",
        "sigmoid_like",
        &[],
        "neural-tangents' `Sigmoid_like`: `Erf(a=0.5, b=1/2.4020563531719796, c=0.5)`.",
    ),
    kind("Gelu", "gelu", &[], "`φ(x) = x·Φ(x) = x/2·(1 + erf(x/√2))` (exact GELU)."),
    Kind {
        tunable: Some(1),
        ..kind(
            "Sin",
            "sin",
            &[p("a", Some(1.0), (0.1, 4.0), 1.0), p("b", Some(1.0), (0.1, 4.0), 1.0), p("c", Some(0.0), (-3.2, 3.2), 0.0)],
            "`φ(x) = a·sin(b·x + c)`.",
        )
    },
    Kind {
        tunable: Some(1),
        ..kind(
            "Cos",
            "cos",
            &[p("a", Some(1.0), (0.1, 4.0), 1.0), p("b", Some(1.0), (0.1, 4.0), 1.0), p("c", Some(0.0), (-3.2, 3.2), 0.0)],
            "`φ(x) = a·cos(b·x + c)`.",
        )
    },
    Kind {
        tunable: Some(0),
        ..kind(
            "Rbf",
            "rbf",
            &[p("gamma", Some(1.0), (0.05, 4.0), 1.0)],
            "`φ(x) = √2·sin(√(2γ)·x + π/4)`; its NNGP is `exp(−γ(q1 + q2 − 2c))`.",
        )
    },
    Kind {
        tunable: Some(1),
        ..kind(
            "Exp",
            "exp",
            &[p("a", Some(1.0), (0.1, 4.0), 1.0), p("b", Some(1.0), (0.05, 2.0), 0.5)],
            "`φ(x) = a·exp(b·x)`.",
        )
    },
    Kind {
        tunable: Some(1),
        ..kind(
            "Gaussian",
            "gaussian",
            &[p("a", Some(1.0), (0.1, 4.0), 1.0), p("b", Some(-1.0), (-4.0, -0.05), -1.0)],
            "`φ(x) = a·exp(b·x²)`; for `b > 0` the expectation must converge (`4·b·variance < 1`), else a ValueError.",
        )
    },
    kind(
        "Sign",
        "sign",
        &[],
        "`φ(x) = sign(x)`; its derivative is taken as 0 (almost everywhere), so the NTK after it is 0, as in neural-tangents.",
    ),
    Kind {
        tunable: Some(0),
        ..kind("Monomial", "monomial", &[degree((1.0, 5.0))], "`φ(x) = x**degree`.")
    },
    Kind {
        tunable: Some(0),
        ..kind(
            "RectifiedMonomial",
            "rectified_monomial",
            &[degree((0.0, 4.0))],
            "`φ(x) = (x ≥ 0)·x**degree` (arc-cosine kernels; degree 0 is the step function).",
        )
    },
    Kind {
        tunable: Some(0),
        ..kind(
            "Hermite",
            "hermite",
            &[degree((1.0, 8.0))],
            "`φ(x) = He_n(x)/√(n!)` (probabilists' Hermite, unit L² norm). The kernel is exact for any variance; at unit variance it is `ρ**degree` as in neural-tangents.",
        )
    },
    kind(
        "Polynomial",
        "polynomial",
        &[],
        "`φ(x) = coef[0] + coef[1]·x + … + coef[n]·xⁿ` (numpy's `Polynomial` order), degree ≤ 32.",
    ),
    Kind {
        numerical: true,
        ..kind("Tanh", "tanh", &[], "`φ(x) = tanh(x)`.")
    },
    Kind {
        numerical: true,
        ..kind("Sigmoid", "sigmoid", &[], "`φ(x) = 1/(1 + e^{−x})`.")
    },
    Kind {
        numerical: true,
        ..kind("Softplus", "softplus", &[], "`φ(x) = log(1 + eˣ)`.")
    },
    Kind {
        numerical: true,
        aliases: &["swish"],
        ..kind("Silu", "silu", &[], "`φ(x) = x·sigmoid(x)`.")
    },
    Kind {
        numerical: true,
        tunable: Some(0),
        ..kind(
            "Elu",
            "elu",
            &[p("alpha", Some(1.0), (0.05, 3.0), 1.0)],
            "`φ(x) = x` for `x > 0`, `alpha·(eˣ − 1)` otherwise.",
        )
    },
    Kind {
        numerical: true,
        ..kind(
            "Selu",
            "selu",
            &[],
            "`φ(x) = λ·Elu(α)` with λ = 1.0507009873554805, α = 1.6732632423543772.",
        )
    },
    Kind {
        numerical: true,
        ..kind("Mish", "mish", &[], "`φ(x) = x·tanh(softplus(x))`.")
    },
    Kind {
        numerical: true,
        ..kind(
            "Elementwise",
            "elementwise",
            &[],
            "Any vectorised function `fn` (and optionally its derivative `dfn`), integrated numerically.",
        )
    },
];

/// Suffix of the docs of numerical activations.
pub const NUMERICAL_DOC: &str = NUM;

/// The kind with key, alias or class name `name` (case-insensitive).
pub fn find(name: &str) -> Option<&'static Kind> {
    let low = name.to_ascii_lowercase();
    KINDS
        .iter()
        .find(|k| k.key == low || k.class.to_ascii_lowercase() == low || k.aliases.contains(&low.as_str()))
}

/// The activation `key` with its parameters in positional order (defaults filled in for the
/// missing trailing ones); `quad_degree` applies to numerical kinds. `Polynomial` takes its
/// coefficients as `params`; `Elementwise` needs a function and is built with
/// [`Activation::numerical`] and [`Pointwise::Custom`] instead.
pub fn build(key: &str, params: &[f64], quad_degree: usize) -> Result<Activation> {
    let k = find(key).ok_or_else(|| {
        Error::arg(
            "activation",
            format!(
                "unknown activation {key:?}; use one of {}",
                KINDS.iter().map(|k| k.key).collect::<Vec<_>>().join(", ")
            ),
        )
    })?;
    if k.key == "polynomial" {
        return Activation::polynomial(params.to_vec());
    }
    if params.len() > k.params.len() {
        return Err(Error::arg(
            "activation",
            format!(
                "{} takes at most {} parameter(s), got {}",
                k.class,
                k.params.len(),
                params.len()
            ),
        ));
    }
    let mut v = Vec::with_capacity(k.params.len());
    for (i, prm) in k.params.iter().enumerate() {
        let x = match params.get(i).copied().or(prm.default) {
            Some(x) => x,
            None => {
                return Err(Error::arg(
                    "activation",
                    format!("{} needs its parameter {:?}", k.class, prm.name),
                ))
            }
        };
        if prm.integer && !(x >= 0.0 && x.fract() == 0.0 && x <= 1e6) {
            return Err(Error::arg("degree", format!("must be a non-negative integer, got {x}")));
        }
        v.push(x);
    }
    let num = |f: Pointwise| Activation::numerical(f, quad_degree);
    match k.key {
        "identity" => Ok(Activation::Identity),
        "relu" => Ok(Activation::relu()),
        "leaky_relu" => Activation::leaky_relu(v[0]),
        "ab_relu" => Activation::ab_relu(v[0], v[1]),
        "abs" => Ok(Activation::abs()),
        "erf" => Activation::erf(v[0], v[1], v[2]),
        "sigmoid_like" => Ok(Activation::sigmoid_like()),
        "gelu" => Ok(Activation::Gelu),
        "sin" => Activation::sin(v[0], v[1], v[2]),
        "cos" => Activation::cos(v[0], v[1], v[2]),
        "rbf" => Activation::rbf(v[0]),
        "exp" => Activation::exp(v[0], v[1]),
        "gaussian" => Activation::gaussian(v[0], v[1]),
        "sign" => Ok(Activation::Sign),
        "monomial" => Activation::monomial(v[0] as usize),
        "rectified_monomial" => Activation::rectified_monomial(v[0] as usize),
        "hermite" => Activation::hermite(v[0] as usize),
        "tanh" => num(Pointwise::Tanh),
        "sigmoid" => num(Pointwise::Sigmoid),
        "softplus" => num(Pointwise::Softplus),
        "silu" => num(Pointwise::Silu),
        "elu" => num(Pointwise::Elu {
            alpha: super::common::finite("alpha", v[0])?,
        }),
        "selu" => num(Pointwise::Selu),
        "mish" => num(Pointwise::Mish),
        _ => Err(Error::arg(
            "activation",
            format!(
                "{} needs a function: build it with Activation::numerical(Pointwise::Custom(..), degree)",
                k.class
            ),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_but_the_custom_one_builds_from_its_defaults_or_a_typical_value() {
        for k in KINDS {
            let params: Vec<f64> = k.params.iter().map(|p| p.default.unwrap_or(p.typical)).collect();
            let got = if k.key == "polynomial" {
                build(k.key, &[0.0, 1.0, 0.5], 48)
            } else {
                build(k.key, &params, 48)
            };
            assert_eq!(got.is_ok(), k.key != "elementwise", "{}", k.key);
        }
    }

    #[test]
    fn keys_aliases_and_class_names_are_unique() {
        let mut seen = std::collections::HashSet::new();
        for k in KINDS {
            for name in std::iter::once(k.key).chain(k.aliases.iter().copied()) {
                assert!(seen.insert(name.to_string()), "{name} twice");
            }
            assert_eq!(find(k.class).unwrap().key, k.key);
            assert!(k.tunable.is_none_or(|t| t < k.params.len()));
        }
    }

    #[test]
    fn bad_parameters_are_errors() {
        assert!(build("leaky_relu", &[], 48).is_err());
        assert!(build("monomial", &[1.5], 48).is_err());
        assert!(build("relu", &[1.0], 48).is_err());
        assert!(build("nope", &[], 48).is_err());
    }
}
