//! The text grammar of a network, shared by the command line (`ntkrs kernel --net`) and the C ABI:
//!
//! ```text
//! SPEC  := [KIND ":"] ACT ":" DEPTH ("," KEY "=" VALUE)*
//! KIND  := mlp (default) | resnet
//! ACT   := NAME ["(" NUMBER ("," NUMBER)* ")"]       relu, leaky_relu(0.1), erf(1, 2, 0), tanh, ...
//! KEY   := W_std (1.0) | b_std (none) | width (512) | out_dim (1) | parameterization (ntk | standard)
//!        | layer_norm (resnet only: none | pre | post)
//! ```
//!
//! `mlp:ACT:DEPTH` is `DEPTH` hidden layers `Dense(width) → φ` and a readout `Dense(out_dim)`;
//! `resnet:ACT:DEPTH` is [`resnet`]'s network. Names, keys and values are case-insensitive.

use crate::activation::registry::{self, Kind};
use crate::activation::Activation;
use crate::error::{Error, Result};
use crate::layer::{Dense, FanIn, Layer, LayerNorm, Parameterization};
use crate::network::Network;

/// Where a residual network normalises.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LayerNormPosition {
    /// At the start of every residual branch, and before the readout.
    Pre,
    /// After every residual sum.
    Post,
}

/// A parsed network spec.
#[derive(Clone, Debug, PartialEq)]
pub struct Spec {
    /// `false`: an MLP; `true`: a residual network.
    pub residual: bool,
    /// The activation's registry kind and parameters.
    pub activation: (&'static Kind, Vec<f64>),
    /// Hidden layers (MLP) or residual blocks.
    pub depth: usize,
    /// Hidden width.
    pub width: usize,
    /// Weight standard deviation of every `Dense`.
    pub w_std: f64,
    /// Bias standard deviation of every `Dense` (`None`: no bias).
    pub b_std: Option<f64>,
    /// Output width.
    pub out_dim: usize,
    /// Every `Dense`'s parameterization.
    pub parameterization: Parameterization,
    /// Residual networks: where `LayerNorm` goes (`None`: nowhere).
    pub layer_norm: Option<LayerNormPosition>,
}

fn bad(spec: &str, what: String) -> Error {
    Error::arg("net", format!("{spec:?}: {what}"))
}

/// Split at the commas outside parentheses.
fn split_top(text: &str) -> Vec<&str> {
    let (mut depth, mut start, mut out) = (0i32, 0usize, Vec::new());
    for (k, ch) in text.char_indices() {
        match ch {
            '(' => depth += 1,
            ')' => depth -= 1,
            ',' if depth == 0 => {
                out.push(&text[start..k]);
                start = k + 1;
            }
            _ => {}
        }
    }
    out.push(&text[start..]);
    out
}

/// An activation from `NAME` or `NAME(p1, p2, ...)`: its kind and parameters (defaults filled
/// in by [`registry::build`]).
pub fn parse_activation(text: &str) -> Result<(&'static Kind, Vec<f64>)> {
    let t = text.trim();
    let (name, args) = match t.find('(') {
        Some(k) if t.ends_with(')') => (&t[..k], Some(&t[k + 1..t.len() - 1])),
        Some(_) => {
            return Err(Error::arg(
                "activation",
                format!("{t:?}: expected NAME or NAME(p1, p2, ...)"),
            ))
        }
        None => (t, None),
    };
    let kind = registry::find(name.trim()).ok_or_else(|| {
        Error::arg(
            "activation",
            format!(
                "unknown name {:?}; use one of {}",
                name.trim(),
                registry::KINDS
                    .iter()
                    .filter(|k| k.key != "elementwise")
                    .map(|k| k.key)
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        )
    })?;
    let params = match args {
        None => Vec::new(),
        Some(a) if a.trim().is_empty() => Vec::new(),
        Some(a) => a
            .split(',')
            .map(|v| {
                v.trim()
                    .parse::<f64>()
                    .map_err(|_| Error::arg("activation", format!("{t:?}: {:?} is not a number", v.trim())))
            })
            .collect::<Result<_>>()?,
    };
    if kind.key == "elementwise" {
        return Err(Error::arg(
            "activation",
            "Elementwise needs a function; it cannot be named in a spec",
        ));
    }
    // build once to validate the parameters
    registry::build(kind.key, &params, crate::activation::DEFAULT_QUAD_DEGREE)?;
    Ok((kind, params))
}

impl Spec {
    /// Parse a spec (see the module docs).
    ///
    /// ```
    /// use ntkrs_core::Spec;
    /// let s = Spec::parse("resnet:relu:10,layer_norm=pre,W_std=1.4,b_std=0.1").unwrap();
    /// assert!(s.residual && s.depth == 10 && s.width == 512 && s.b_std == Some(0.1));
    /// assert_eq!(Spec::parse("leaky_relu(0.1):3").unwrap().activation.1, vec![0.1]);
    /// ```
    pub fn parse(spec: &str) -> Result<Spec> {
        let items = split_top(spec);
        let head = items[0].trim();
        // [KIND:]ACT:DEPTH, where ACT may hold ':'-free parentheses
        let parts: Vec<&str> = head.rsplitn(2, ':').collect();
        if parts.len() != 2 {
            return Err(bad(
                spec,
                "expected ACTIVATION:DEPTH first, e.g. 'relu:3,W_std=1.4,b_std=0.1' or 'resnet:relu:10,layer_norm=pre'"
                    .into(),
            ));
        }
        let (depth_s, front) = (parts[0].trim(), parts[1].trim());
        let (residual, act_s) = match front.split_once(':') {
            Some((kind, act)) => match kind.trim().to_ascii_lowercase().as_str() {
                "mlp" => (false, act),
                "resnet" => (true, act),
                other => return Err(bad(spec, format!("unknown network kind {other:?}; use mlp or resnet"))),
            },
            None => (false, front),
        };
        let depth: usize = depth_s
            .parse()
            .map_err(|_| bad(spec, format!("the depth {depth_s:?} is not an integer ≥ 0")))?;
        let activation = parse_activation(act_s).map_err(|e| bad(spec, e.to_string()))?;
        let mut s = Spec {
            residual,
            activation,
            depth,
            width: 512,
            w_std: 1.0,
            b_std: None,
            out_dim: 1,
            parameterization: Parameterization::Ntk,
            layer_norm: None,
        };
        const KEYS: &str = "W_std, b_std, width, out_dim, parameterization, layer_norm";
        for item in &items[1..] {
            let Some((key, value)) = item.split_once('=') else {
                return Err(bad(spec, format!("{:?} is not KEY=VALUE (keys: {KEYS})", item.trim())));
            };
            let (key, value) = (key.trim().to_ascii_lowercase(), value.trim());
            let num = |v: &str| -> Result<f64> {
                v.parse::<f64>()
                    .map_err(|_| bad(spec, format!("{key}={v:?} is not a number")))
            };
            let int = |v: &str| -> Result<usize> {
                v.parse::<usize>()
                    .map_err(|_| bad(spec, format!("{key}={v:?} is not a positive integer")))
            };
            match key.as_str() {
                "w_std" => s.w_std = num(value)?,
                "b_std" => {
                    s.b_std = match value.to_ascii_lowercase().as_str() {
                        "none" | "" => None,
                        v => Some(num(v)?),
                    }
                }
                "width" => s.width = int(value)?,
                "out_dim" => s.out_dim = int(value)?,
                "parameterization" => s.parameterization = value.to_ascii_lowercase().parse()?,
                "layer_norm" => {
                    s.layer_norm = match value.to_ascii_lowercase().as_str() {
                        "none" => None,
                        "pre" => Some(LayerNormPosition::Pre),
                        "post" => Some(LayerNormPosition::Post),
                        v => return Err(bad(spec, format!("layer_norm={v:?}: use none, pre or post"))),
                    }
                }
                _ => return Err(bad(spec, format!("unknown key {key:?}; use {KEYS}"))),
            }
        }
        if s.layer_norm.is_some() && !s.residual {
            return Err(bad(
                spec,
                "layer_norm applies to resnet specs ('resnet:relu:4,layer_norm=pre')".into(),
            ));
        }
        Ok(s)
    }

    /// The network the spec describes.
    pub fn network(&self) -> Result<Network> {
        let act = registry::build(
            self.activation.0.key,
            &self.activation.1,
            crate::activation::DEFAULT_QUAD_DEGREE,
        )?;
        let dense = |w: usize| Dense::new(w, self.w_std, self.b_std, self.parameterization);
        if self.residual {
            resnet(
                self.depth,
                dense(self.width)?,
                act,
                dense(self.out_dim)?,
                self.layer_norm,
            )
        } else {
            mlp(self.depth, dense(self.width)?, act, dense(self.out_dim)?)
        }
    }
}

impl Network {
    /// The network of a spec (see [`crate::spec`]).
    pub fn from_spec(spec: &str) -> Result<Network> {
        Spec::parse(spec)?.network()
    }
}

/// `serial(hidden, φ, …depth times…, readout)`.
pub fn mlp(depth: usize, hidden: Dense, act: Activation, readout: Dense) -> Result<Network> {
    let mut layers = Vec::with_capacity(2 * depth + 1);
    for _ in 0..depth {
        layers.push(Layer::Dense(hidden.clone()));
        layers.push(Layer::Activation(act.clone()));
    }
    layers.push(Layer::Dense(readout));
    Network::new(layers)
}

/// A residual MLP: an embedding `Dense(width)`, `depth` blocks
/// `serial(FanOut(2), parallel(branch, Identity()), FanInSum())` with
/// `branch = serial(Dense(width), φ, Dense(width))`, and a readout. With `Pre` layer norm each
/// branch starts with `LayerNorm()` and a final `LayerNorm()` precedes the readout; with `Post`,
/// a `LayerNorm()` follows every sum.
pub fn resnet(
    depth: usize,
    hidden: Dense,
    act: Activation,
    readout: Dense,
    layer_norm: Option<LayerNormPosition>,
) -> Result<Network> {
    let norm = || LayerNorm::new(vec![-1], 1e-12).map(Layer::LayerNorm);
    let mut layers = vec![Layer::Dense(hidden.clone())];
    for _ in 0..depth {
        let mut branch = Vec::new();
        if layer_norm == Some(LayerNormPosition::Pre) {
            branch.push(norm()?);
        }
        branch.extend([
            Layer::Dense(hidden.clone()),
            Layer::Activation(act.clone()),
            Layer::Dense(hidden.clone()),
        ]);
        let mut block = vec![
            Layer::FanOut(2),
            Layer::Parallel(vec![Layer::Serial(branch), Layer::Identity]),
            Layer::FanIn(FanIn::Sum),
        ];
        if layer_norm == Some(LayerNormPosition::Post) {
            block.push(norm()?);
        }
        layers.push(Layer::Serial(block));
    }
    if layer_norm == Some(LayerNormPosition::Pre) {
        layers.push(norm()?);
    }
    layers.push(Layer::Dense(readout));
    Network::new(layers)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn specs_parse_with_defaults_and_overrides() {
        let s = Spec::parse("relu:3").unwrap();
        assert_eq!(
            (s.residual, s.depth, s.width, s.w_std, s.b_std, s.out_dim),
            (false, 3, 512, 1.0, None, 1)
        );
        let s = Spec::parse(" Erf(0.5, 2) : 2 , W_std = 1.4 , b_std=none, parameterization=standard").unwrap();
        assert_eq!(s.activation.0.key, "erf");
        assert_eq!(s.activation.1, vec![0.5, 2.0]);
        assert_eq!(s.parameterization, Parameterization::Standard);
        let s = Spec::parse("resnet:gelu:4,layer_norm=post,width=64").unwrap();
        assert_eq!(
            (s.residual, s.layer_norm, s.width),
            (true, Some(LayerNormPosition::Post), 64)
        );
        assert_eq!(
            Network::from_spec("resnet:relu:2,layer_norm=pre").unwrap().depth(),
            2 + 2 * 2
        );
    }

    #[test]
    fn bad_specs_say_what_is_wrong() {
        for (spec, want) in [
            ("relu", "ACTIVATION:DEPTH"),
            ("relu:x", "depth"),
            ("nope:3", "unknown name"),
            ("relu:3,width", "KEY=VALUE"),
            ("relu:3,foo=1", "unknown key"),
            ("relu:3,W_std=abc", "not a number"),
            ("relu:3,layer_norm=pre", "resnet"),
            ("cnn:relu:3", "network kind"),
            ("leaky_relu:2", "alpha"),
            ("relu:2,width=0", "at least 1"),
        ] {
            let e = Spec::parse(spec).and_then(|s| s.network()).unwrap_err().to_string();
            assert!(e.contains(want), "{spec}: {e}");
        }
    }
}
