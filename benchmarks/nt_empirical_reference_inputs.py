"""Write the input spec from which neural-tangents computes tests/data/nt_empirical_reference.json.

    python benchmarks/nt_empirical_reference_inputs.py /tmp/nt_emp_ref_input.json
    /tmp/ntkrs-peer-venv/bin/python benchmarks/_nt_peer_empirical.py --reference /tmp/nt_emp_ref_input.json \\
        > tests/data/nt_empirical_reference.json

Small finite networks (d=3, hidden widths 5 and 4, O=3) with explicit parameters, so that the test
needs no random generator of either library: ``W ~ N(0, 1)`` and ``b ~ N(0, 1)`` in the NTK
parameterization, ``W ~ N(0, W_std²/n_in)`` and ``b ~ N(0, b_std²)`` in the standard one (what
each library's ``init`` draws), from ``default_rng(2024)``; x1 (4 x 3) and x2 (3 x 3) from
``default_rng(7)``. neural-tangents records the empirical NTK and NNGP, traced and full, for
(x1, None) and (x1, x2). Uses only numpy (not ntkrs, not neural-tangents).
"""

import json
import sys

import numpy as np

D, HIDDEN, OUT = 3, (5, 4), 3


def layer(name, *args, **kwargs):
    d = {"layer": name}
    if args:
        d["args"] = list(args)
    if kwargs:
        d["kwargs"] = kwargs
    return d


def network(act, param="ntk", bias=True, hidden=HIDDEN, w_std=(1.3, 0.9, 1.1), b_std=(0.2, 0.1, 0.3)):
    """Dense(h1) act Dense(h2) act ... Dense(OUT): layers and matching parameters."""
    rng = np.random.default_rng(2024)
    widths = [D, *hidden, OUT]
    layers, params = [], []
    for i, (n_in, n_out) in enumerate(zip(widths[:-1], widths[1:], strict=True)):
        ws, bs = w_std[i % len(w_std)], b_std[i % len(b_std)]
        kw = {"W_std": ws, "b_std": bs if bias else None}
        if param != "ntk":
            kw["parameterization"] = param
        layers.append(layer("Dense", n_out, **kw))
        w = rng.standard_normal((n_in, n_out))
        b = rng.standard_normal(n_out) if bias else None
        if param == "standard":
            w = w * ws / np.sqrt(n_in)
            b = None if b is None else b * bs
        params.append([w.tolist(), None if b is None else b.tolist()])
        if i < len(widths) - 2 and act is not None:
            layers.append(act)
    return layers, params


def main(path):
    rng = np.random.default_rng(7)
    x1 = rng.standard_normal((4, D)).tolist()
    x2 = rng.standard_normal((3, D)).tolist()
    acts = {
        "Relu": layer("Relu"),
        "LeakyRelu(0.1)": layer("LeakyRelu", 0.1),
        "ABRelu(-0.3,0.7)": layer("ABRelu", -0.3, 0.7),
        "Abs": layer("Abs"),
        "Erf": layer("Erf"),
        "Erf(a=1.2,b=0.7,c=0.1)": layer("Erf", a=1.2, b=0.7, c=0.1),
        "Sigmoid_like": layer("Sigmoid_like"),
        "Gelu": layer("Gelu"),
        "Sin(a=0.8,b=1.3,c=0.4)": layer("Sin", a=0.8, b=1.3, c=0.4),
        "Cos": layer("Cos"),
        "Exp(a=0.6,b=0.3)": layer("Exp", a=0.6, b=0.3),
        "Monomial(3)": layer("Monomial", 3),
        "Identity": layer("Identity"),
        "Tanh": layer("Tanh"),
        "Sigmoid": layer("Sigmoid"),
        "Softplus": layer("Softplus"),
        "Silu": layer("Silu"),
    }
    nets = {}
    for name, act in acts.items():
        nets[name] = network(act)
    nets["nobias/Relu"] = network(layer("Relu"), bias=False)
    nets["standard/Relu"] = network(layer("Relu"), param="standard")
    nets["standard/Erf"] = network(layer("Erf"), param="standard")
    nets["standard_nobias/Tanh"] = network(layer("Tanh"), param="standard", bias=False)
    nets["deep/Relu"] = network(layer("Relu"), hidden=(6, 5, 4, 3))
    nets["deep/Gelu"] = network(layer("Gelu"), hidden=(6, 5, 4, 3))
    nets["dense_only"] = network(None, hidden=())
    spec = {"dtype": "float64",
            "networks": {name: {"layers": ls, "params": ps, "x1": x1, "x2": x2} for name, (ls, ps) in nets.items()}}
    with open(path, "w") as f:
        json.dump(spec, f, indent=1)


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "nt_emp_ref_input.json")
